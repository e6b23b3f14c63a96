"""Measurement primitives: a timed loop, FLOPs per forward, peak memory (the GEMM peak: bench.gemm).

Every timed region is warm-up, synchronise, time, synchronise; inputs are made
before it. The thread count is whatever the caller set with torch.set_num_threads.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from bench.train import adamw

DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def set_precision(device: torch.device, dtype: str) -> None:
    """fp32 means true fp32: CUDA's TF32 is off for matmuls and cuDNN (cuDNN has it on by
    default, which made fp32 convolutions beat the fp32 GEMM peak); "tf32" turns it on."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
        torch.backends.cudnn.allow_tf32 = dtype == "tf32"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, dtype: str):
    """Mixed precision for bf16/fp16 (weights stay fp32), nothing for fp32 and tf32."""
    if dtype in ("fp32", "tf32"):
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
    analytically, and so is what any module of the encoder declares it does beyond
    the operators the counter sees (``uncounted_flops(seq_len)``, e.g. a scan's
    element-wise arithmetic).
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(1, seq_len, encoder.d_model, device=device)
    mask = torch.ones(1, seq_len, dtype=torch.bool, device=device)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        encoder(x, mask)
    rnn = sum(_rnn_flops(m, seq_len) for m in encoder.modules() if isinstance(m, nn.RNNBase))
    declared = sum(m.uncounted_flops(seq_len) for m in encoder.modules() if hasattr(m, "uncounted_flops"))
    return counter.get_total_flops() + rnn + declared


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


def measure_config(
    build: dict,
    device: str,
    dtype: str,
    batch: int,
    seq_len: int,
    train: bool,
    memory: bool,
    threads: int,
    min_run_time: float,
    min_repeats: int = 3,
    compile: bool = False,
    routes: dict | None = None,
) -> dict:
    """Time one configuration: inference calls and, if ``train``, training steps (forward,
    backward, AdamW), at least ``min_repeats`` of each (two training steps where the first alone took
    ``min_run_time``). The first call of each doubles as warm-up and as the peak-memory
    measurement. On the CPU the harness runs this in a fresh process, so no high-water
    mark or allocator cache carries over from another configuration. ``routes`` (``bench.gemm.choose_routes``)
    sends linear layers through other GEMM paths for inference; FLOPs are counted before."""
    import models
    from bench.gemm import route_linears

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = torch.device(device)
    set_precision(dev, dtype)
    encoder = models.build_encoder(**build).to(dev)
    x = torch.randn(batch, seq_len, encoder.d_model, device=dev)
    mask = torch.ones(batch, seq_len, dtype=torch.bool, device=dev)
    out = {
        "params": models.count_parameters(encoder),
        "d_model": encoder.d_model,
        "flops": forward_flops(encoder, seq_len, dev) * batch,
        "compile_s": None,
        "routes": routes or {},
    }
    out["routed_linears"] = route_linears(encoder, routes, dtype, batch * seq_len) if routes else 0  # after counting
    model = encoder
    if compile:
        start = time.perf_counter()
        model = torch.compile(encoder)
        with torch.no_grad():
            model(x, mask)
        synchronize(dev)
        out["compile_s"] = time.perf_counter() - start

    def infer():
        with torch.no_grad(), autocast(dev, dtype):
            model(x, mask)

    encoder.eval()
    with peak_memory_mb(dev, out, "infer_peak_mb") if memory else contextlib.nullcontext():
        infer()
    out["infer_times"] = time_calls(infer, dev, min_run_time, min_repeats, warmup=0).times  # warmed up above
    if train:
        opt = adamw(encoder.parameters(), lr=1e-4)

        def step():
            with autocast(dev, dtype):
                loss = model(x, mask).float().pow(2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        encoder.train()
        start = time.perf_counter()
        with peak_memory_mb(dev, out, "train_peak_mb") if memory else contextlib.nullcontext():
            step()  # also creates the optimiser state, part of a training step's memory
        synchronize(dev)
        # a step that alone fills min_run_time (1-3 s at T=1024 here) is timed twice: the speed claims take their
        # ratios from the side-by-side rounds, and a third step cost the speed suite half a minute
        repeats = min(min_repeats, 2) if time.perf_counter() - start > min_run_time else min_repeats
        out["train_times"] = time_calls(step, dev, min_run_time, repeats, warmup=0).times
    return out


def interleaved_config(
    builds: dict[str, dict],
    device: str,
    dtype: str,
    shapes: list[tuple[int, int]],
    threads: int,
    rounds: int,
    train: bool = True,
    routes: dict | None = None,
    min_round_time: float = 0.05,
) -> dict:
    """Time several encoders in one process, interleaved: at each (T, B) of ``shapes``, ``rounds`` rounds in which
    every encoder runs its inference (and, with ``train``, a training step) in turn, the order rotated each round,
    so that whatever slows the machine for a while slows every encoder of that round alike. A round's time of one
    encoder is the median of as many calls as fill ``min_round_time`` (at least one). ``routes``:
    {encoder: {rows: routes}} as ``bench.gemm.choose_routes`` gives them, for inference.

    Returns ``{"times": {mode: {T: {encoder: [seconds per call, one per round]}}}, "params": {...},
    "d_model": {...}, "calls": {mode: {T: {encoder: calls per round}}}}``."""
    import models
    from bench.gemm import route_linears

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = torch.device(device)
    set_precision(dev, dtype)
    encoders = {name: models.build_encoder(**build).to(dev) for name, build in builds.items()}
    modes = ("infer", "train") if train else ("infer",)
    out = {
        "params": {n: models.count_parameters(e) for n, e in encoders.items()},
        "d_model": {n: e.d_model for n, e in encoders.items()},
        "times": {m: {} for m in modes},
        "calls": {m: {} for m in modes},
    }
    optimisers = {n: adamw(e.parameters(), lr=1e-4) for n, e in encoders.items()}
    names = list(encoders)
    for T, B in shapes:
        calls = {}
        for name, encoder in encoders.items():
            x = torch.randn(B, T, encoder.d_model, device=dev)
            mask = torch.ones(B, T, dtype=torch.bool, device=dev)
            rows = B * T
            if routes and routes.get(name, {}).get(rows):
                route_linears(encoder, routes[name][rows], dtype, rows)  # a class swap: routing again is harmless

            def infer(encoder=encoder, x=x, mask=mask):
                with torch.no_grad(), autocast(dev, dtype):
                    encoder(x, mask)

            def step(encoder=encoder, x=x, mask=mask, opt=optimisers[name]):
                with autocast(dev, dtype):
                    loss = encoder(x, mask).float().pow(2).mean()
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            calls[name] = {"infer": infer, "train": step}
        for mode in modes:
            for encoder in encoders.values():  # once per mode, outside the timed calls
                encoder.train(mode == "train")
            per_round = {}
            for name in names:  # one call to warm up, timed to tell how many calls fill a round (it runs slow: fewer)
                first = time_calls(calls[name][mode], dev, 0.0, min_repeats=1, warmup=0).median
                per_round[name] = max(1, math.ceil(min_round_time / max(first, 1e-9)))
            times = {name: [] for name in names}
            for r in range(rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    t = time_calls(calls[name][mode], dev, 0.0, min_repeats=per_round[name], warmup=0)
                    times[name].append(t.median)
            out["times"][mode][T] = times
            out["calls"][mode][T] = per_round
    return out


_FORKSERVER = None
# glibc adapts its mmap and trim thresholds only after a process has freed large blocks, so a
# fresh process runs its first hundreds of calls with page faults on every activation (measured:
# the CNN 10% slower than in a warm process). Fixed thresholds make a fresh process as fast.
_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(256 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def tune_malloc() -> None:
    """Give this process the fixed glibc thresholds above (no-op where glibc is absent)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, int(_MALLOC["MALLOC_MMAP_THRESHOLD_"]))  # M_MMAP_THRESHOLD
        libc.mallopt(-1, int(_MALLOC["MALLOC_TRIM_THRESHOLD_"]))  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def in_fresh_process(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` in a new process forked from a server that has imported torch, torch's
    compiler stack (which the FLOP counter imports on first use: 1.3 s) and this module (fast, and nothing of
    this process's memory high-water mark carries over)."""
    global _FORKSERVER
    if _FORKSERVER is None:
        _FORKSERVER = multiprocessing.get_context("forkserver")
        _FORKSERVER.set_forkserver_preload(["torch", "torch._dynamo", "models", "bench.timing"])
        saved = {k: os.environ.get(k) for k in _MALLOC}
        os.environ.update(_MALLOC)
        try:
            from multiprocessing import forkserver

            forkserver.ensure_running()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    with _FORKSERVER.Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(fn, args, kwargs)


def can_measure_cpu_memory() -> bool:
    return os.path.exists("/proc/self/clear_refs")
