"""Speed in detail (``suite=speed_detail``): where each encoder's inference time goes, per dtype at the shortest
and the longest sequence length of the speed suite: milliseconds per call in each category of operator, by the
kernel library that ran it, from torch.profiler (``bench.breakdown``), with the linear layers routed as the speed
suite routes them. The profile is of CPU operators, so it runs on the CPU only.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from bench import speedplan
from bench.breakdown import CATEGORIES, profile_config
from bench.suite import Context, Unit

log = logging.getLogger("bench")

SECTIONS = ("speed",)


def units(cfg: DictConfig) -> list[Unit]:
    from bench.env import resolve_device

    device = resolve_device(cfg.device)
    if device.type != "cpu":
        log.info(f"speed_detail skipped: its profile is of CPU operators, and this job runs on {device.type}")
        return []
    lens = speedplan.seq_lens(cfg, device)
    return [
        Unit("breakdown", params={"dtype": d, "T": T, "B": speedplan.batch_for(cfg, T, device)})
        for d in speedplan.dtypes(cfg, device)
        for T in sorted({min(lens), max(lens)})
    ]


def run(ctx: Context, unit: Unit) -> tuple[list[dict], dict]:
    p = unit.params
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


def headline(record: dict) -> str:
    ms = {r["setting"]: r["value"] for r in record["metrics"]}
    total = sum(ms.values()) or 1.0
    top = sorted(ms.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{cat} {100 * v / total:.0f}%" for cat, v in top) + f" of {total:.1f} ms per call (profiled)"
