"""Speed in detail (``suite=speed_detail``): the speed suite's measurements in every dtype of speed.dtypes but the
first (which is the comparison's, suite=speed's: bf16 by default on a CPU that has it); where each encoder's
inference time goes, per dtype at the shortest
and the longest sequence length of the speed suite: milliseconds per call in each category of operator, by the
kernel library that ran it, from torch.profiler (``bench.breakdown``), with the linear layers routed as the speed
suite routes them. And, at the same two lengths, inference under each runtime of ``speed.runtime`` a user deploys
with (eager, torch.compile, ONNX Runtime; ``bench.runtimes``), in fp32, each checked against eager's outputs. Both
are of the CPU, so it runs on the CPU only.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from bench import speedplan
from bench.breakdown import CATEGORIES, profile_config
from bench.runtimes import runtime_config
from bench.suite import Context, Unit

log = logging.getLogger("bench")

SECTIONS = ("speed",)


def units(cfg: DictConfig) -> list[Unit]:
    from bench.env import resolve_device

    device = resolve_device(cfg.device)
    out = speedplan.dtype_units(cfg, device, speedplan.dtypes(cfg, device)[1:])  # the comparison's is suite=speed's
    if device.type != "cpu":
        log.info(
            f"speed_detail: no profile or runtimes, which are of CPU operators, and this job runs on {device.type}"
        )
        return out
    lens = sorted({min(speedplan.seq_lens(cfg, device)), max(speedplan.seq_lens(cfg, device))})
    out += [
        Unit("breakdown", params={"dtype": d, "T": T, "B": speedplan.batch_for(cfg, T, device)})
        for d in speedplan.dtypes(cfg, device)
        for T in lens
    ]
    if set(cfg.speed.runtime) - {"eager"}:
        if set(cfg.speed.dtypes) - {"fp32"}:
            log.info("speed.runtime is measured in fp32 only: other dtypes' runtimes are not measured")
        out += [
            Unit("runtime", params={"dtype": "fp32", "T": T, "B": speedplan.batch_for(cfg, T, device)}) for T in lens
        ]
    return out


def run(ctx: Context, unit: Unit) -> tuple[list[dict], dict]:
    p = unit.params
    if unit.task in speedplan.PER_DTYPE:
        return speedplan.run_dtype(ctx, unit)
    if unit.task == "runtime":
        return _runtimes(ctx, p)
    m = speedplan.measure(ctx, profile_config, dtype=p["dtype"], batch=p["B"], seq_len=p["T"])
    rows = [
        {"setting": cat, "metric": "ms_per_call", "value": sum(m["ms"][cat].values())}
        for cat in CATEGORIES
        if cat in m["ms"]
    ]
    info = {
        **p,
        "threads": ctx.threads,
        **{k: m[k] for k in ("params", "d_model", "calls", "infer_ms", "routes", "top")},
    }
    info.update(ms_by_library=m["ms"], distinct_by=["T"])  # the settings are categories, so T tells records apart
    return rows, info


def _runtimes(ctx: Context, p: dict) -> tuple[list[dict], dict]:
    """Each runtime of speed.runtime, timed interleaved in one fresh process; eager's linear layers routed as the
    speed suite routes them, even under speed.compile (the compile runtime is the compiled one)."""
    m = speedplan.measure(
        ctx,
        runtime_config,
        route_under_compile=True,
        dtype=p["dtype"],
        batch=p["B"],
        seq_len=p["T"],
        runtimes=list(ctx.cfg.speed.runtime),
    )
    ok = {name: r for name, r in m["runtimes"].items() if r["status"] == "ok"}
    failed = {name: r["reason"] for name, r in m["runtimes"].items() if r["status"] != "ok"}
    if not ok:
        raise RuntimeError("no runtime ran: " + "; ".join(f"{name}: {why}" for name, why in failed.items()))
    rows = [
        {"setting": name, "metric": metric, "value": r[key]}
        for name, r in ok.items()
        for metric, key in (
            ("infer_tokens_per_s", "tokens_per_s"),
            ("infer_ms", "median_ms"),
            ("max_abs_error", "max_abs_error"),
        )
    ]
    info = {**p, "threads": ctx.threads, **{k: m[k] for k in ("params", "d_model", "routes")}}
    info.update(runtimes=m["runtimes"], failed=failed, distinct_by=["T"])  # settings are runtimes: T tells them apart
    return rows, info


def headline(record: dict) -> str:
    if record["task"] in speedplan.PER_DTYPE:
        return speedplan.dtype_headline(record)
    if record["task"] == "runtime":
        return _runtime_headline(record)
    ms = {r["setting"]: r["value"] for r in record["metrics"]}
    total = sum(ms.values()) or 1.0
    top = sorted(ms.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{cat} {100 * v / total:.0f}%" for cat, v in top) + f" of {total:.1f} ms per call (profiled)"


def _runtime_headline(record: dict) -> str:
    m = {(r["setting"], r["metric"]): r["value"] for r in record["metrics"]}
    parts = []
    for name in dict.fromkeys(r["setting"] for r in record["metrics"]):
        rate = f"{m[(name, 'infer_tokens_per_s')] / 1e3:.1f}k"
        parts.append(f"{name} {rate} tok/s" if not parts else f"{name} {rate} ({m[(name, 'max_abs_error')]:.0e})")
    failed = record["info"].get("failed") or {}
    tail = "; failed: " + "; ".join(f"{name} ({why[:100]})" for name, why in failed.items()) if failed else ""
    return ", ".join(parts) + tail
