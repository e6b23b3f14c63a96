"""pytest-benchmark timings of every encoder at a few shapes (off in `make test`; on with `make benchmarks`).

The speed gate (`python -m bench.gate`) runs this file against two trees and compares medians
normalised by the GEMM calibration below, measured in the same run.
"""

import os

import pytest
import torch

import models
from bench.timing import forward_flops

BUDGET = 1_000_000
SHAPES = [(32, 128), (8, 512)]  # (batch, sequence length)
THREADS = int(os.environ.get("FXBENCH_THREADS", os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(THREADS)


def setup(name, B, T, benchmark):
    torch.manual_seed(0)
    encoder = models.build_encoder(name, param_budget=BUDGET)
    x, mask = torch.randn(B, T, encoder.d_model), torch.ones(B, T, dtype=torch.bool)
    benchmark.extra_info.update(
        encoder=name,
        B=B,
        T=T,
        params=models.count_parameters(encoder),
        threads=torch.get_num_threads(),
        device="cpu",
        flops=forward_flops(encoder, T, torch.device("cpu")) * B,
        models_path=models.__file__,
    )
    return encoder, x, mask


def test_gemm_calibration(benchmark):
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    benchmark.extra_info.update(flops=2 * 2048**3, threads=torch.get_num_threads(), models_path=models.__file__)
    benchmark.pedantic(torch.mm, args=(a, b), rounds=15, warmup_rounds=3)


@pytest.mark.parametrize("B,T", SHAPES)
@pytest.mark.parametrize("name", models.available())
def test_inference(benchmark, name, B, T):
    encoder, x, mask = setup(name, B, T, benchmark)
    encoder.eval()

    def forward():
        with torch.no_grad():
            encoder(x, mask)

    benchmark.pedantic(forward, rounds=7, warmup_rounds=2)


@pytest.mark.parametrize("B,T", SHAPES[:1])
@pytest.mark.parametrize("name", models.available())
def test_training_step(benchmark, name, B, T):
    encoder, x, mask = setup(name, B, T, benchmark)
    opt = torch.optim.AdamW(encoder.parameters(), lr=1e-4)
    encoder.train()

    def step():
        encoder(x, mask).pow(2).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    benchmark.pedantic(step, rounds=5, warmup_rounds=1)
