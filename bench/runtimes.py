"""Inference under the runtimes a user deploys an encoder with: eager PyTorch (its linear layers routed as the speed
suite routes them, ``bench.gemm``), ``torch.compile`` (default backend) and ONNX Runtime's CPU execution provider
(through ``torch.onnx``). Each runtime's outputs are checked against eager's before it is timed; a runtime that
cannot run an encoder, or whose outputs disagree, is recorded as failed with the reason and the others go on.
fp32 only. A library of ``suite=speed_detail``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

RUNTIMES = ("eager", "compile", "onnxruntime")
ATOL, RTOL = 1e-4, 1e-3  # outputs match when max |out - eager| <= ATOL + RTOL * max |eager|
ORT_MISSING = "onnxruntime is not installed: pip install -e '.[deploy]'"
# ONNX Runtime's idle threads spin by default, waiting for the next run, and take the cores torch's next call needs:
# timed in turn with it, eager ran 15-30% slower than alone, and as fast as alone with spinning off, which costs
# ONNX Runtime itself 0-8% (CNN and Transformer, 3.2M parameters, B=32, T=128, 2 threads). So off: ORT's numbers
# here are a little conservative for a process that runs ORT alone
ORT_SPINNING = False
TRACED = "torchscript (traced: the graph keeps the branches taken at this B and T with an all-true mask)"


class Unavailable(RuntimeError):
    """A runtime this set-up cannot measure, in one sentence that is the reason as recorded."""


def tolerance(reference: torch.Tensor) -> float:
    return ATOL + RTOL * reference.abs().max().item()


def _onnx_modules():
    """onnxruntime, and the two packages torch.onnx needs (Unavailable where one is missing)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError:
        raise Unavailable(ORT_MISSING) from None
    return onnxruntime


@contextlib.contextmanager
def _quiet():
    """Send file descriptors 1 and 2 to /dev/null for the block: the exporters print their progress and, on a
    failure, the whole graph there (python errors still raise)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            yield
    finally:
        for fd, copy_ in zip((1, 2), saved):
            os.dup2(copy_, fd)
            os.close(copy_)


def _export(encoder: nn.Module, x: torch.Tensor, mask: torch.Tensor, path: Path) -> dict:
    """Write ``encoder`` as ONNX to ``path``: the TorchScript exporter first, dynamo's where that fails. Returns
    what was done. The TorchScript exporter traces: a Python decision on a shape or on the mask's values (e.g.
    ``bool(mask.all())``) stays in the graph as it was taken for these inputs, unpadded, as the suite times;
    ``traced_in`` lists where."""
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught, _quiet():
            warnings.simplefilter("always")
            torch.onnx.export(
                encoder,
                (x, mask),
                str(path),
                dynamo=False,
                input_names=["x", "mask"],
                output_names=["y"],
                dynamic_axes={"x": {0: "B", 1: "T"}, "mask": {0: "B", 1: "T"}},
                opset_version=17,
            )
        traced = sorted(
            {f"{Path(w.filename).parent.name}/{Path(w.filename).name}:{w.lineno}" for w in caught if _traced(w)}
        )
        facts = {"exporter": TRACED if traced else "torchscript", "traced_in": traced}
    except Exception as err:
        facts = {"exporter": "dynamo", "torchscript_failed": _one_line(err)}
        try:
            with warnings.catch_warnings(), _quiet():
                warnings.simplefilter("ignore")
                torch.onnx.export(encoder, (x, mask), str(path), dynamo=True)
        except Exception as again:
            raise Unavailable(
                f"neither exporter of torch.onnx could export it: torchscript {_one_line(err)}; "
                f"dynamo {_one_line(again)}"
            ) from None
    facts.update(export_s=time.perf_counter() - start, onnx_mb=path.stat().st_size / 2**20)
    return facts


def _traced(w: warnings.WarningMessage) -> bool:
    """A tracer warning raised in the encoder's code (torch's own modules raise some that change nothing)."""
    return issubclass(w.category, torch.jit.TracerWarning) and "site-packages" not in w.filename


def _onnxruntime(encoder: nn.Module, x: torch.Tensor, mask: torch.Tensor, threads: int) -> tuple[Callable, dict]:
    ort = _onnx_modules()
    with tempfile.TemporaryDirectory() as tmp:  # the session holds the model in memory: the file can go
        facts = _export(encoder, x, mask, Path(tmp) / "encoder.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if ORT_SPINNING else "0")
        session = ort.InferenceSession(str(Path(tmp) / "encoder.onnx"), options, providers=["CPUExecutionProvider"])
    given = {"x": x.numpy(), "mask": mask.numpy()}
    feeds = {i.name: given[i.name] for i in session.get_inputs()}  # an input the graph never reads is dropped
    facts.update(onnxruntime=ort.__version__, inputs=sorted(feeds), spinning=ORT_SPINNING)
    return lambda: torch.from_numpy(session.run(None, feeds)[0]), facts


def prepare(
    runtime: str, encoder: nn.Module, x: torch.Tensor, mask: torch.Tensor, threads: int, routes: dict | None, dtype: str
) -> tuple[Callable[[], torch.Tensor], dict]:
    """``call()`` running one inference of ``encoder`` (eval, unrouted; left unchanged) on ``x`` (B, T, D) and
    ``mask`` (B, T) under ``runtime`` and returning its (B, T, D) output, and what preparing it did (exporter,
    seconds spent). Raises where the runtime cannot run the encoder."""
    if dtype != "fp32":
        raise Unavailable(f"runtimes are measured in fp32 only, not {dtype}")
    if runtime == "eager":
        from bench.gemm import route_linears

        model = copy.deepcopy(encoder)  # routing swaps layers' classes in place
        rows = x.shape[0] * x.shape[1]
        routed = route_linears(model, routes, dtype, rows) if routes else 0
        return _no_grad(model, x, mask), {"routed_linears": routed}
    if runtime == "compile":
        start = time.perf_counter()
        call = _no_grad(torch.compile(encoder), x, mask)
        with _logged("torch._dynamo") as logs:
            call()  # compiles
        breaks = [r.getMessage().splitlines()[0] for r in logs if r.getMessage().startswith("Graph break")]
        facts = {"backend": "inductor", "compile_s": time.perf_counter() - start, "graph_breaks": len(breaks)}
        return call, facts | ({"first_graph_break": breaks[0]} if breaks else {})
    if runtime == "onnxruntime":
        return _onnxruntime(encoder, x, mask, threads)
    raise ValueError(f"no runtime {runtime!r}; one of {', '.join(RUNTIMES)}")


@contextlib.contextmanager
def _logged(name: str):
    """The records logger ``name`` emits in the block, kept instead of printed (dynamo warns of each graph break
    at length)."""
    logger, records = logging.getLogger(name), []
    handler = logging.Handler()
    handler.emit = records.append
    saved, logger.handlers = logger.handlers, [handler]
    try:
        yield records
    finally:
        logger.handlers = saved


def _no_grad(model: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> Callable[[], torch.Tensor]:
    def call():
        with torch.no_grad():
            return model(x, mask)

    return call


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


def time_interleaved(
    calls: dict[str, Callable], min_run_time: float, min_rounds: int = 5, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each of ``calls``, timed call by call in rounds (one call of each per round, the order
    rotated each round, so drift and cache state hit every runtime alike) until each has ``min_run_time`` seconds
    of calls and ``min_rounds`` rounds are done. CPU only: nothing to synchronise."""
    names = list(calls)
    for name in names:
        for _ in range(warmup):
            calls[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    rounds = 0
    while names and (rounds < min_rounds or min(sum(t) for t in times.values()) < min_run_time):
        k = rounds % len(names)
        for name in names[k:] + names[:k]:
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
        rounds += 1
    return times


def compare(calls: dict[str, Callable], reference: torch.Tensor) -> dict[str, dict]:
    """Each runtime's output against ``reference``: ``{"max_abs_error", "tolerance", "status"}``, with a reason
    where it disagrees (or cannot be compared)."""
    tol, out = tolerance(reference), {}
    for name, call in calls.items():
        try:
            y = call().float()
            if y.shape != reference.shape:
                raise ValueError(f"output shape {tuple(y.shape)}, eager's {tuple(reference.shape)}")
            err = (y - reference).abs().max().item()
        except Exception as e:
            out[name] = {"status": "failed", "reason": f"its output could not be compared: {_one_line(e)}"}
            continue
        out[name] = {"max_abs_error": err, "tolerance": tol, "status": "ok"}
        if not err <= tol:  # NaN fails too
            out[name].update(status="failed", reason=f"outputs differ from eager's by {err:.3g} (tolerance {tol:.3g})")
    return out


def runtime_config(
    build: dict,
    device: str,
    dtype: str,
    batch: int,
    seq_len: int,
    threads: int,
    min_run_time: float,
    runtimes: list[str],
    routes: dict | None = None,
    **_,
) -> dict:
    """Build the encoder (seed 0, eval), prepare it under each runtime, check each one's outputs against the
    unrouted encoder's in fp32, and time the runtimes that agree, interleaved. Returns ``{"params", "d_model",
    "routes", "runtimes": {name: {"status", "reason" | "times", "median_ms", "tokens_per_s", "max_abs_error",
    "tolerance", "facts"}}}``. The speed suites run this in a fresh process on the CPU."""
    import models

    if device != "cpu":
        raise ValueError(f"runtimes are measured on the CPU (ONNX Runtime's CPU provider), not {device}")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    encoder = models.build_encoder(**build).eval()
    x = torch.randn(batch, seq_len, encoder.d_model)
    mask = torch.ones(batch, seq_len, dtype=torch.bool)
    with torch.no_grad():
        reference = encoder(x, mask)
    result: dict[str, dict] = {}
    calls = {}
    for name in runtimes:
        try:
            calls[name], facts = prepare(name, encoder, x, mask, threads, routes, dtype)
            result[name] = {"facts": facts}
        except Exception as err:
            reason = str(err) if isinstance(err, Unavailable) else _one_line(err)
            result[name] = {"status": "failed", "reason": reason}
    for name, checked in compare(calls, reference).items():
        result[name].update(checked)
    ok = {name: calls[name] for name in calls if result[name]["status"] == "ok"}
    for name, times in time_interleaved(ok, min_run_time).items():
        median = statistics.median(times)
        result[name].update(times=times, median_ms=1e3 * median, tokens_per_s=batch * seq_len / median)
    return {
        "params": models.count_parameters(encoder),
        "d_model": encoder.d_model,
        "routes": routes or {},
        "runtimes": result,
    }
