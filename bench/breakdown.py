"""Where an encoder's time goes: inference calls under ``torch.profiler``, each operator's own time put in a
category (matrix multiply, attention, recurrence, convolution, normalisation, elementwise, memory copy, other)
with the kernel library that ran it (MKL, oneDNN, native).

An operator inside a recurrence or attention operator (the GEMMs of a GRU cell, the products of SDPA's math
kernel) counts for the recurrence or the attention: the category says what the encoder was doing, the library
what ran it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys

import torch

CATEGORIES = (
    "matrix multiply",
    "attention",
    "recurrence",
    "convolution",
    "normalisation",
    "elementwise",
    "memory copy",
    "other",
)
_ENCLOSING = (("recurrence", r"rnn|lstm|gru"), ("attention", r"scaled_dot_product"))
_RULES = (
    ("attention", r"scaled_dot_product|softmax"),
    ("recurrence", r"rnn|lstm|gru|_thnn_fused"),
    ("convolution", r"conv"),
    ("matrix multiply", r"addmm|::mm$|bmm|matmul|linear|einsum|mkl_linear"),
    ("normalisation", r"norm"),
    ("memory copy", r"copy|clone|contiguous|::cat$|stack|::to$|pad|flip|gather|index|empty|zero|fill|resize|new_|ones"),
    ("elementwise", r"add|mul|sub|div|gelu|silu|sigmoid|tanh|exp|softplus|elu|relu|masked_fill|where|neg|pow"),
    ("elementwise", r"sqrt|cumsum|sum|mean|tril|::lt$|::gt$|bitwise|dropout"),
)


def category(name: str, enclosing: list[str]) -> str:
    """The category of operator ``name`` run inside the operators ``enclosing`` (outermost first)."""
    for outer in enclosing:
        for cat, pattern in _ENCLOSING:
            if re.search(pattern, outer):
                return cat
    for cat, pattern in _RULES:
        if re.search(pattern, name):
            return cat
    return "other"


def library(name: str, dtype: torch.dtype) -> str:
    """The kernel library behind operator ``name`` on the CPU (ATen's products: MKL in fp32, oneDNN below it)."""
    if "mkldnn" in name:
        return "oneDNN"
    if name.startswith("mkl::"):
        return "MKL"
    if re.search(r"addmm|::mm$|bmm|baddbmm", name):
        return "MKL" if dtype == torch.float32 and torch.backends.mkl.is_available() else "oneDNN"
    return "native"


@contextlib.contextmanager
def _quiet_stderr():
    """Send file descriptor 2 to /dev/null for the block: the profiler's C++ side writes a 'USDT: ...
    profiler_start/stop' line there on every use, which no setting turns off (python errors still raise)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def profile_calls(fn, calls: int, dtype: torch.dtype) -> dict:
    """Profile ``calls`` calls of ``fn`` (warmed up by the caller): milliseconds per call of each category, by
    library, and the operators that took most time. Returns ``{"ms": {category: {library: ms}}, "top": [...]}``."""
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    ms: dict[str, dict[str, float]] = {}
    by_op: dict[str, float] = {}
    for event in prof.events():
        own = event.self_cpu_time_total / 1e3 / calls
        if own <= 0:
            continue
        enclosing, parent = [], event.cpu_parent
        while parent is not None:
            enclosing.insert(0, parent.name)
            parent = parent.cpu_parent
        cat, lib = category(event.name, enclosing), library(event.name, dtype)
        ms.setdefault(cat, {}).setdefault(lib, 0.0)
        ms[cat][lib] += own
        by_op[event.name] = by_op.get(event.name, 0.0) + own
    top = sorted(by_op.items(), key=lambda kv: -kv[1])[:8]
    return {"ms": ms, "top": [{"op": op, "ms": round(t, 4)} for op, t in top]}


def profile_config(
    build: dict,
    device: str,
    dtype: str,
    batch: int,
    seq_len: int,
    threads: int,
    min_run_time: float,
    routes: dict | None = None,
    **_,
) -> dict:
    """Build the encoder (its linear layers routed as ``routes`` says), time inference calls, then profile as
    many as fill ``min_run_time`` (at least 1, at most 5: shares settle by then). The speed suites run this in a fresh process."""
    import models
    from bench.gemm import route_linears
    from bench.timing import DTYPES, autocast, set_precision, time_calls

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = torch.device(device)
    set_precision(dev, dtype)
    encoder = models.build_encoder(**build).to(dev).eval()
    if routes:
        route_linears(encoder, routes, dtype, batch * seq_len)
    x = torch.randn(batch, seq_len, encoder.d_model, device=dev)
    mask = torch.ones(batch, seq_len, dtype=torch.bool, device=dev)

    def infer():
        with torch.no_grad(), autocast(dev, dtype):
            encoder(x, mask)

    timing = time_calls(infer, dev, min_run_time, min_repeats=3, warmup=2)
    calls = max(1, min(5, round(min_run_time / timing.median)))
    return {
        **profile_calls(infer, calls, DTYPES[dtype]),
        "calls": calls,
        "infer_ms": 1e3 * timing.median,
        "params": models.count_parameters(encoder),
        "d_model": encoder.d_model,
        "routes": routes or {},
    }
