"""Measurement primitives: a timed loop, the GEMM peak, FLOPs per forward, peak memory.

Every timed region is warm-up, synchronise, time, synchronise; inputs are made
before it. The thread count is whatever the caller set with torch.set_num_threads.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, dtype: str):
    """Mixed precision for bf16/fp16 (weights stay fp32), nothing for fp32."""
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[dtype])


@dataclass
class Timing:
    times: list[float]  # seconds per call

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def iqr(self) -> float:
        if len(self.times) < 2:
            return 0.0
        q = statistics.quantiles(self.times, n=4, method="inclusive")
        return q[2] - q[0]

    def quantile(self, p: float) -> float:
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def time_calls(fn, device: torch.device, min_run_time: float = 0.5, min_repeats: int = 5, warmup: int = 2) -> Timing:
    """Time ``fn()`` call by call: ``warmup`` untimed calls, then at least ``min_repeats``
    timed calls and at least ``min_run_time`` seconds of them."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times: list[float] = []
    while len(times) < min_repeats or sum(times) < min_run_time:
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return Timing(times)


GEMM_SHAPES = ((4096, 256, 1024), (4096, 1024, 1024), (16384, 512, 2048))


def gemm_peak(device: torch.device, dtype: str, min_run_time: float = 0.3) -> float:
    """Best FLOP/s of plain matrix products in ``dtype``: the denominator of FLOP utilisation."""
    best = 0.0
    for m, k, n in GEMM_SHAPES:
        a = torch.randn(m, k, device=device, dtype=DTYPES[dtype])
        b = torch.randn(k, n, device=device, dtype=DTYPES[dtype])
        timing = time_calls(lambda: a @ b, device, min_run_time=min_run_time, min_repeats=3, warmup=2)
        best = max(best, 2 * m * k * n / timing.median)
    return best


def _rnn_flops(module: nn.RNNBase, tokens: int) -> int:
    """Analytic FLOPs of a fused RNN kernel, which FlopCounterMode cannot see: per token,
    direction and layer ``2 * gates * (in + h) * h``."""
    gates = {"LSTM": 4, "GRU": 3}.get(module.mode, 1)
    h, dirs = module.hidden_size, 2 if module.bidirectional else 1
    total = 0
    for layer in range(module.num_layers):
        inp = module.input_size if layer == 0 else h * dirs
        total += dirs * 2 * gates * (inp + h) * h
    return total * tokens


def forward_flops(encoder: nn.Module, seq_len: int, device: torch.device) -> int:
    """FLOPs of one forward over one sequence of ``seq_len`` tokens (multiply by the batch).

    Counted by FlopCounterMode with attention on SDPA's math kernel (the fused CPU
    kernel is invisible to it; the count is the same); fused RNN kernels are added
    analytically.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(1, seq_len, encoder.d_model, device=device)
    mask = torch.ones(1, seq_len, dtype=torch.bool, device=device)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        encoder(x, mask)
    rnn = sum(_rnn_flops(m, seq_len) for m in encoder.modules() if isinstance(m, nn.RNNBase))
    return counter.get_total_flops() + rnn


# ---- peak memory -------------------------------------------------------------------------


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise OSError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


@contextlib.contextmanager
def peak_memory_mb(device: torch.device, result: dict, key: str):
    """Store in ``result[key]`` the memory (MB) the block added at its peak, over what it started with."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        yield
        torch.cuda.synchronize(device)
        result[key] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    else:
        base = _rss_mb("VmRSS")
        _reset_peak_rss()
        yield
        result[key] = _rss_mb("VmHWM") - base


def memory_child(build: dict, batch: int, seq_len: int, dtype: str, train: bool, threads: int) -> dict:
    """Runs in a fresh process: peak memory of one inference forward and one training step."""
    import models

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    device = torch.device("cpu")
    encoder = models.build_encoder(**build)
    x = torch.randn(batch, seq_len, encoder.d_model)
    mask = torch.ones(batch, seq_len, dtype=torch.bool)
    out: dict = {}
    encoder.eval()
    with peak_memory_mb(device, out, "infer_peak_mb"), torch.no_grad(), autocast(device, dtype):
        encoder(x, mask)
    if train:
        encoder.train()
        opt = torch.optim.AdamW(encoder.parameters(), lr=1e-4)
        with peak_memory_mb(device, out, "train_peak_mb"):
            with autocast(device, dtype):
                loss = encoder(x, mask).float().pow(2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    return out


_FORKSERVER = None


def in_fresh_process(fn, *args):
    """Run ``fn(*args)`` in a new process forked from a server that has torch imported
    (fast, and nothing of this process's memory high-water mark carries over)."""
    global _FORKSERVER
    if _FORKSERVER is None:
        _FORKSERVER = multiprocessing.get_context("forkserver")
        _FORKSERVER.set_forkserver_preload(["torch", "models"])
    with _FORKSERVER.Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(fn, args)


def can_measure_cpu_memory() -> bool:
    return os.path.exists("/proc/self/clear_refs")
