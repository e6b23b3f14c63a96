"""GEMM paths on this machine: the denominator of FLOP utilisation (the best rate over every path torch offers for a
dtype, beside the theoretical peak of the cores the job uses), and the routing of an encoder's linear layers, for
inference, through the path that is fastest at their shapes.

A path is a way of calling one matrix product ``a (M, K) @ w (N, K).T``: ``torch.matmul`` and ``F.linear`` (the
BLAS torch was built with: MKL on x86 in fp32, oneDNN in bf16), and on the CPU the two packed-weight kernels that
torch's compiler uses for linear layers (oneDNN's ``mkldnn._linear_pointwise``, MKL's ``mkl._mkl_linear``). The
fused kernels the encoders run (oneDNN's LSTM and convolutions) can beat the first two; measuring only
``torch.matmul`` once put the LSTM's utilisation at 1.5, which is impossible. The same gap would make a speed
ranking a statement about which library torch dispatches a linear layer to, so the speed suite routes every
``nn.Linear`` of an encoder, for inference, through the path measured fastest at its shape (``choose_routes``,
``route_linears``), and records the choice.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench.env import cpu_flags
from bench.timing import DTYPES, autocast, set_precision, time_calls

GEMM_SHAPES = ((4096, 256, 1024), (4096, 1024, 1024), (2048, 2048, 2048), (16384, 512, 2048))
CUDA_SHAPES = ((8192, 8192, 8192),)


def _blas(dtype: torch.dtype) -> str:
    if dtype != torch.float32:
        return "oneDNN"  # ATen sends CPU bf16 and fp16 products to oneDNN
    return "MKL" if torch.backends.mkl.is_available() else "BLAS"


def _matmul(a: torch.Tensor, w: torch.Tensor) -> Callable[[], torch.Tensor]:
    b = w.t().contiguous()  # (K, N)
    return lambda: a @ b


def _linear(a: torch.Tensor, w: torch.Tensor) -> Callable[[], torch.Tensor]:
    return lambda: F.linear(a, w)


def _onednn_packed(a: torch.Tensor, w: torch.Tensor) -> Callable[[], torch.Tensor]:
    packed = torch.ops.mkldnn._reorder_linear_weight(w, a.shape[0])
    return lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], "")


def _mkl_packed(a: torch.Tensor, w: torch.Tensor) -> Callable[[], torch.Tensor]:
    packed = torch.ops.mkl._mkl_reorder_linear_weight(w, a.shape[0])
    return lambda: torch.ops.mkl._mkl_linear(a, packed, w, None, a.shape[0])


def gemm_paths(device: torch.device, dtype: torch.dtype) -> dict[str, tuple[str, Callable]]:
    """name -> (kernel library, make): ``make(a (M, K), w (N, K))`` prepares the path (packs the weight) and returns
    a call computing ``a @ w.T``. Only paths this build of torch has on ``device`` for ``dtype``."""
    if device.type == "cuda":
        return {"matmul": ("cuBLAS", _matmul), "linear": ("cuBLAS", _linear)}
    paths = {"matmul": (_blas(dtype), _matmul), "linear": (_blas(dtype), _linear)}
    if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        paths["onednn_packed"] = ("oneDNN", _onednn_packed)
    if dtype == torch.float32 and torch.backends.mkl.is_available() and hasattr(torch.ops.mkl, "_mkl_linear"):
        paths["mkl_packed"] = ("MKL", _mkl_packed)
    return paths


def gemm_peak(device: torch.device, dtype: str, min_run_time: float = 0.3) -> dict:
    """The best FLOP/s of matrix products in ``dtype`` over every path and a few large shapes.

    Returns ``{"flops", "path", "library", "noise", "paths": {name: {"flops", "library", "shape"} or
    {"error"}}}``; ``noise`` is the relative interquartile range of the timed calls that set the best."""
    set_precision(device, dtype)
    shapes = GEMM_SHAPES + (CUDA_SHAPES if device.type == "cuda" else ())
    paths: dict[str, dict] = {}
    best = {"flops": 0.0, "path": None, "library": None, "noise": 0.0}
    for name, (library, make) in gemm_paths(device, DTYPES[dtype]).items():
        result = {"flops": 0.0, "library": library}
        for m, k, n in shapes:
            a = torch.randn(m, k, device=device, dtype=DTYPES[dtype])
            w = torch.randn(n, k, device=device, dtype=DTYPES[dtype])
            try:
                call = make(a, w)
                timing = time_calls(call, device, min_run_time=min_run_time, min_repeats=3, warmup=1)  # packed at make
            except (RuntimeError, NotImplementedError) as err:  # a path this build cannot run for this dtype
                result = {"error": str(err).splitlines()[0][:200], "library": library}
                break
            flops = 2 * m * k * n / timing.median
            if flops > result["flops"]:
                result.update(flops=flops, shape=[m, k, n])
                if flops > best["flops"]:
                    best = {"flops": flops, "path": name, "library": library, "noise": timing.iqr / timing.median}
        paths[name] = result
    return {**best, "paths": paths}


# ---- the theoretical peak --------------------------------------------------------------------------------------


@functools.cache
def _clock_ghz() -> tuple[float | None, str]:
    """The cores' clock and where it was read: the highest frequency cpufreq allows, else /proc/cpuinfo's."""
    top = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    try:
        return int(top.read_text()) / 1e6, "cpufreq cpuinfo_max_freq"
    except (OSError, ValueError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1]) / 1e3, "'cpu MHz' in /proc/cpuinfo"
    except (OSError, ValueError):
        pass
    return None, "no clock readable"


FMA_UNITS = 2  # vector FMA pipes per core: two on every AVX-512 server core of recent years; an upper bound


def theoretical_peak(device: torch.device, dtype: str, threads: int) -> dict:
    """The cores' peak FLOP/s for ``dtype`` from their ISA, count and clock, with how it was derived
    (``flops`` None where it cannot be derived, e.g. on a GPU or an ISA this does not know)."""
    if device.type != "cpu":
        return {"flops": None, "derivation": "not derived on this device (needs its per-architecture unit rates)"}
    flags, (ghz, clock_from) = cpu_flags(), _clock_ghz()
    cores = min(threads, os.cpu_count() or threads)
    lanes = 16 if "avx512f" in flags else 8 if {"avx2", "fma"} <= flags else None  # fp32 lanes per FMA
    if ghz is None or lanes is None:
        return {"flops": None, "derivation": f"not derived: {clock_from if ghz is None else 'no AVX2/AVX-512 FMA'}"}
    per_cycle, how = FMA_UNITS * lanes * 2, f"{FMA_UNITS} FMA units (assumed) x {lanes} fp32 lanes x 2 FLOP"
    if dtype in ("bf16", "fp16"):
        if dtype == "bf16" and "amx_bf16" in flags:
            per_cycle, how = 2048, "AMX: 1024 bf16 multiply-adds x 2 FLOP"
        elif dtype == "bf16" and "avx512_bf16" in flags:
            per_cycle, how = 2 * per_cycle, how + " x 2 (avx512_bf16 dot products take bf16 pairs)"
    return {
        "flops": cores * ghz * 1e9 * per_cycle,
        "derivation": f"{cores} cores x {ghz:.2f} GHz ({clock_from}) x {per_cycle} FLOP per cycle ({how})",
    }


# ---- routing an encoder's linear layers ------------------------------------------------------------------------

ROUTES = ("linear", "onednn_packed", "mkl_packed")  # "linear": torch's own dispatch (under autocast for bf16)


def linear_shapes(module: nn.Module) -> list[tuple[int, int]]:
    """The distinct (in_features, out_features) of the module's linear layers."""
    return sorted({(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)})


POST_OPS = {"none": ("none", ""), "gelu": ("gelu", "none"), "gelu_tanh": ("gelu", "tanh")}  # oneDNN post-op, algorithm


def _route_call(
    path: str, weight: torch.Tensor, bias: torch.Tensor | None, dtype: str, rows: int, post: str = "none"
) -> Callable:
    """``fn(x)`` computing ``F.linear(x, weight, bias)`` through ``path`` as inference under ``dtype`` would: in
    bf16 or fp16 with low-precision weights packed once instead of cast at every call as autocast does. ``post``
    (oneDNN only): the activation that follows, applied by the same kernel (``POST_OPS``)."""
    if path == "linear":
        return lambda x: F.linear(x, weight, bias)
    low = DTYPES[dtype]
    w, b = weight.detach().to(low), None if bias is None else bias.detach().to(low)
    if path == "onednn_packed":
        packed = torch.ops.mkldnn._reorder_linear_weight(w, rows)
        op, algorithm = POST_OPS[post]
        return lambda x: torch.ops.mkldnn._linear_pointwise(x.to(low), packed, b, op, [], algorithm)
    if path == "mkl_packed" and low == torch.float32:
        packed = torch.ops.mkl._mkl_reorder_linear_weight(w, rows)
        return lambda x: torch.ops.mkl._mkl_linear(x, packed, w, b, rows)
    raise ValueError(f"no route {path!r} for {dtype}")


ROUTE_ROWS = 2048  # rows a route is timed at: the rate has settled by then, and timing stays short


def choose_routes(
    device: torch.device, dtype: str, shapes: list[tuple[int, int]], rows: int, repeats: int = 5, margin: float = 0.03
) -> dict[str, dict]:
    """For each (in, out) shape: each available path's GFLOP/s on (min(rows, ROUTE_ROWS), in) inputs, timed call
    by call in interleaved rounds, and the chosen one: the fastest where it beats torch's own dispatch by more than
    ``margin``, else "linear". Only on the CPU (elsewhere every shape keeps "linear")."""
    if device.type != "cpu":
        return {}
    available = [p for p in ROUTES if p == "linear" or p in gemm_paths(device, DTYPES[dtype])]
    m = min(rows, ROUTE_ROWS)
    out = {}
    for k, n in shapes:
        x, weight, bias = torch.randn(m, k), torch.randn(n, k), torch.randn(n)
        calls = {}
        for path in available:
            try:
                call = _route_call(path, weight, bias, dtype, m)
                with torch.no_grad(), autocast(device, dtype):
                    call(x)
                calls[path] = call
            except (RuntimeError, NotImplementedError, ValueError):
                continue  # not offered for this dtype or shape by this build
        times = {path: [] for path in calls}
        with torch.no_grad(), autocast(device, dtype):
            for _ in range(repeats):  # interleaved, so drift hits every path alike
                for path, call in calls.items():
                    times[path] += time_calls(lambda c=call, x=x: c(x), device, 0.0, min_repeats=1, warmup=0).times
        rate = {path: 2 * m * k * n / sorted(t)[len(t) // 2] / 1e9 for path, t in times.items()}
        fastest = max(rate, key=rate.get)
        chosen = fastest if rate[fastest] > (1 + margin) * rate["linear"] else "linear"
        out[f"{k}x{n}"] = {"path": chosen, "gflops": {p: float(f"{r:.3g}") for p, r in rate.items()}}
    return out


def _routed_now(x: torch.Tensor, dtype: str) -> bool:
    """Whether a routed layer takes its route for this call: inference (no autograd) under the autocast state it
    was routed for."""
    return not torch.is_grad_enabled() and torch.is_autocast_enabled(x.device.type) == (dtype in ("bf16", "fp16"))


class RoutedLinear(nn.Linear):
    """An nn.Linear whose inference (no autograd, and the autocast state it was routed for) goes through the chosen
    path, with the activation that follows it where that path can apply it (``post``); training, state dict and
    attributes are those of nn.Linear. The packed weight is rebuilt when the weight or the route changes."""

    route: tuple[str, str, int]  # (path, dtype, rows)
    post: str = "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        path, dtype, rows = self.route
        if not _routed_now(x, dtype):
            return super().forward(x)
        packed = self.__dict__.get("_packed")
        if packed is None or packed[0] != (self.weight._version, self.route, self.post):  # weight or route changed
            packed = self.__dict__["_packed"] = (
                (self.weight._version, self.route, self.post),
                _route_call(path, self.weight, self.bias, dtype, rows, self.post),
            )
        return packed[1](x)


class FusedGELU(nn.GELU):
    """A GELU whose work the routed linear layer before it does (its ``post``): the identity where that layer takes
    its route, a GELU wherever it does not (training)."""

    dtype: str

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if _routed_now(x, self.dtype) else super().forward(x)


def route_linears(module: nn.Module, routes: dict[str, dict], dtype: str, rows: int) -> int:
    """Send each linear layer of ``module`` whose shape ``routes`` sends elsewhere than "linear" through that path
    (for inference), and a layer routed before whose shape now stays on "linear" back to nn.Linear; where a layer
    on oneDNN's path is followed by a GELU in an nn.Sequential, oneDNN applies the GELU in the same kernel (a
    post-op: one pass over the layer's output fewer). Return how many layers were routed."""
    count = 0
    for m in module.modules():
        if type(m) is FusedGELU:
            m.__class__ = nn.GELU
        choice = routes.get(f"{m.in_features}x{m.out_features}") if type(m) in (nn.Linear, RoutedLinear) else None
        if choice and choice["path"] != "linear":
            m.__class__, m.route, m.post = RoutedLinear, (choice["path"], dtype, rows), "none"
            count += 1
        elif choice and type(m) is RoutedLinear:
            m.__class__ = nn.Linear
            m.__dict__.pop("_packed", None)
    for seq in (m for m in module.modules() if isinstance(m, nn.Sequential)):
        for first, then in itertools.pairwise(seq):
            if type(first) is RoutedLinear and first.route[0] == "onednn_packed" and type(then) is nn.GELU:
                first.post = "gelu" if then.approximate == "none" else "gelu_tanh"
                then.__class__, then.dtype = FusedGELU, dtype
    return count
