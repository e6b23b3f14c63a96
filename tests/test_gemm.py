"""The denominator of utilisation (every GEMM path, the theoretical peak) and the routing of linear layers."""

import copy

import pytest
import torch

import models
from bench import gemm
from bench.env import supports_bf16
from bench.gemm import FusedGELU, choose_routes, gemm_peak, linear_shapes, route_linears, theoretical_peak
from bench.schema import model_kwargs
from bench.timing import Timing, autocast, forward_flops, measure_config

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def peak() -> dict:
    return gemm_peak(CPU, "fp32", min_run_time=0.1)


def test_the_peak_is_the_best_path_and_names_it(peak):
    rates = {name: p["flops"] for name, p in peak["paths"].items() if "flops" in p}
    assert {"matmul", "linear"} <= set(rates)
    assert peak["flops"] == max(rates.values()) and rates[peak["path"]] == peak["flops"]
    assert peak["library"] == peak["paths"][peak["path"]]["library"]


def test_the_theoretical_peak_says_how_it_was_derived(monkeypatch):
    monkeypatch.setattr(gemm, "cpu_flags", lambda: frozenset({"avx512f", "avx2", "fma", "avx512_bf16"}))
    monkeypatch.setattr(gemm, "_clock_ghz", lambda: (2.5, "a test clock"))
    fp32, bf16 = theoretical_peak(CPU, "fp32", threads=2), theoretical_peak(CPU, "bf16", threads=2)
    assert fp32["flops"] == 2 * 2.5e9 * 2 * 16 * 2  # cores x clock x FMA units x lanes x 2 FLOP
    assert bf16["flops"] == 2 * fp32["flops"]
    assert "2 cores x 2.50 GHz (a test clock)" in fp32["derivation"] and "avx512_bf16" in bf16["derivation"]
    monkeypatch.setattr(gemm, "cpu_flags", lambda: frozenset({"avx512f", "amx_bf16"}))
    assert theoretical_peak(CPU, "bf16", threads=1)["flops"] == 2.5e9 * 2048
    monkeypatch.setattr(gemm, "cpu_flags", lambda: frozenset())  # an ISA it does not know: no number, a reason
    unknown = theoretical_peak(CPU, "fp32", threads=1)
    assert unknown["flops"] is None and "not derived" in unknown["derivation"]


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_a_routed_encoder_computes_what_it_did(dtype):
    if dtype == "bf16" and not supports_bf16(CPU):
        pytest.skip("no bf16 on this CPU")
    torch.manual_seed(0)
    enc = models.build_encoder(name="transformer", d_model=24, n_layers=2, n_heads=2).eval()
    everywhere = {f"{k}x{n}": {"path": "onednn_packed"} for k, n in linear_shapes(enc)}
    routed = copy.deepcopy(enc)
    assert route_linears(routed, everywhere, dtype, rows=33) == 8  # qkv, out and two FFN layers per block
    x, mask = torch.randn(3, 11, 24), torch.ones(3, 11, dtype=torch.bool)
    with torch.no_grad(), autocast(CPU, dtype):
        expected, got = enc(x, mask), routed(x, mask)
    assert torch.allclose(got.float(), expected.float(), atol=1e-5 if dtype == "fp32" else 2e-2)
    ff = routed.blocks[0].ff  # the GELU after the first FFN layer runs inside its oneDNN kernel
    assert ff[0].post == "gelu" and type(ff[1]) is FusedGELU
    routed.train(), enc.train()
    with autocast(CPU, dtype):  # training takes nn.Linear's own path and the GELU its own: the same as before
        torch.manual_seed(1)
        trained = routed(x, mask)
        torch.manual_seed(1)
        assert torch.allclose(trained.float(), enc(x, mask).float(), atol=1e-5 if dtype == "fp32" else 2e-2)
    routed(x, mask).sum().backward()  # with gradients
    assert all(p.grad is not None for p in routed.parameters() if p.requires_grad)
    with torch.no_grad():
        routed.blocks[0].ff[0].weight.add_(1.0)  # a changed weight is packed again
        enc.blocks[0].ff[0].weight.add_(1.0)
        with autocast(CPU, dtype):
            assert torch.allclose(
                routed.eval()(x, mask).float(), enc.eval()(x, mask).float(), atol=1e-4 if dtype == "fp32" else 5e-2
            )


def test_a_layer_routed_back_to_torch_gives_up_its_fused_gelu():
    enc = models.build_encoder(name="transformer", d_model=24, n_layers=1, n_heads=2).eval()
    shapes = linear_shapes(enc)
    route_linears(enc, {f"{k}x{n}": {"path": "onednn_packed"} for k, n in shapes}, "fp32", rows=33)
    route_linears(enc, {f"{k}x{n}": {"path": "linear"} for k, n in shapes}, "fp32", rows=33)
    assert type(enc.blocks[0].ff[0]) is torch.nn.Linear and type(enc.blocks[0].ff[1]) is torch.nn.GELU
    route_linears(enc, {f"{k}x{n}": {"path": "mkl_packed"} for k, n in shapes}, "fp32", rows=33)
    assert type(enc.blocks[0].ff[1]) is torch.nn.GELU  # MKL's kernel has no post-ops: the GELU stays its own pass


def test_a_route_is_chosen_only_where_it_beats_torch():
    routes = choose_routes(CPU, "fp32", [(32, 96)], rows=64, margin=1e9)  # no path can beat torch by that margin
    assert routes["32x96"]["path"] == "linear" and "linear" in routes["32x96"]["gflops"]
    assert choose_routes(torch.device("meta"), "fp32", [(32, 96)], rows=64) == {}  # CPU only


@pytest.mark.parametrize("name", models.available())
def test_no_encoder_runs_faster_than_the_peak(compose, peak, name):
    """Utilisation above 1 is impossible: each encoder at the speed suite's size, fp32 inference at T=128 with its
    linear layers routed as the suite routes them, stays under the measured peak by more than the noise of the
    two timings (their relative interquartile ranges)."""
    cfg = compose("suite=speed", f"model={name}")
    build = models.fixed_width(**model_kwargs(cfg.model))
    with torch.device("meta"):
        shapes = linear_shapes(models.build_encoder(**build))
    B, T = 32, 128
    routes = choose_routes(CPU, "fp32", shapes, B * T)
    m = measure_config(build, "cpu", "fp32", B, T, False, False, torch.get_num_threads(), 0.3, routes=routes)
    timing = Timing(m["infer_times"])
    mfu = m["flops"] / timing.median / peak["flops"]
    if mfu > 1:  # the module's peak may have been timed while a neighbour on this VM slowed it: the peak is the
        again = gemm_peak(CPU, "fp32", min_run_time=0.1)  # best rate the machine reaches, so time it again now
        peak = max(peak, again, key=lambda p: p["flops"])
        mfu = m["flops"] / timing.median / peak["flops"]
    noise = timing.iqr / timing.median + peak["noise"]
    assert 0 < mfu <= 1 + noise, f"{name}: utilisation {mfu:.2f} against {peak['path']} {peak['flops'] / 1e9:.0f}"
    assert forward_flops(models.build_encoder(**build), T, CPU) * B == m["flops"]


def test_a_training_step_that_fills_the_run_time_alone_is_timed_twice_else_at_least_three_times():
    build = models.fixed_width(name="cnn", d_model=32)
    args = ("cpu", "fp32", 4, 16, True, False, 1)
    long = measure_config(build, *args, 1e-9)  # every step "fills" a run time of a nanosecond
    assert len(long["train_times"]) == 2 and len(long["infer_times"]) == 3
    short = measure_config(build, *args, 0.05)  # a step of a few ms does not
    assert len(short["train_times"]) >= 3 and sum(short["train_times"]) >= 0.05
