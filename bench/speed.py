"""Speed suite: throughput, latency, peak memory, FLOPs and FLOP utilisation against T.

Units, in order, for the job's encoder: the GEMM peak of each dtype (the
denominator of utilisation, measured in this job); throughput at batch
``speed.batch_size`` for each dtype and sequence length (inference and one
training step, FLOPs, peak memory from a fresh process on the CPU); latency at
batch 1; and last the scaling exponents fitted on this job's records.
"""

from __future__ import annotations

import logging
import math
import time

import torch
from omegaconf import DictConfig

import models
from bench.env import supports_bf16
from bench.records import iter_records
from bench.runner import Context, Unit
from bench.schema import model_kwargs
from bench.timing import (
    autocast,
    can_measure_cpu_memory,
    forward_flops,
    gemm_peak,
    in_fresh_process,
    memory_child,
    time_calls,
)

log = logging.getLogger("bench")

SECTIONS = ("speed",)


def dtypes(cfg: DictConfig, device: torch.device) -> list[str]:
    usable = []
    for dtype in cfg.speed.dtypes:
        if dtype == "bf16" and not supports_bf16(device):
            log.info("bf16 skipped: this device has no bf16 support")
        elif dtype == "fp16" and device.type != "cuda":
            log.info("fp16 skipped: autocast to fp16 is for CUDA devices")
        else:
            usable.append(dtype)
    return usable


def units(cfg: DictConfig) -> list[Unit]:
    from bench.env import resolve_device

    chosen = dtypes(cfg, resolve_device(cfg.device))
    out = [Unit("gemm_peak", params={"dtype": d}) for d in chosen]
    B = cfg.speed.batch_size
    out += [Unit("throughput", params={"dtype": d, "T": T, "B": B}) for d in chosen for T in cfg.speed.seq_lens]
    out += [Unit("latency", params={"dtype": d, "T": T, "B": 1}) for d in chosen for T in cfg.speed.latency_seq_lens]
    out += [Unit("scaling", params={"dtype": d}, always=True) for d in chosen]
    return out


class Measure:
    """An encoder, its inputs and its optimiser, built once and timed many times."""

    def __init__(self, build: dict, device: torch.device, batch: int, seq_len: int, compile: bool = False):
        self.build, self.device = build, device
        self.encoder = models.build_encoder(**build).to(device)
        self.x = torch.randn(batch, seq_len, self.encoder.d_model, device=device)
        self.mask = torch.ones(batch, seq_len, dtype=torch.bool, device=device)
        self.opt = torch.optim.AdamW(self.encoder.parameters(), lr=1e-4)
        self.model = self.encoder
        self.compile_s = None
        if compile:
            t0 = time.perf_counter()
            self.model = torch.compile(self.encoder)
            self.infer("fp32")
            self.compile_s = time.perf_counter() - t0

    def infer(self, dtype: str):
        self.model.eval()
        with torch.no_grad(), autocast(self.device, dtype):
            return self.model(self.x, self.mask)

    def train_step(self, dtype: str) -> None:
        self.model.train()
        with autocast(self.device, dtype):
            loss = self.model(self.x, self.mask).float().pow(2).mean()
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)


def _peak(ctx: Context, dtype: str) -> float:
    """This job's GEMM peak for dtype, measured once per job."""
    key = ("gemm_peak", dtype)
    if key not in ctx.cache:
        ctx.cache[key] = gemm_peak(ctx.device, dtype)
    return ctx.cache[key]


def run(ctx: Context, unit: Unit) -> tuple[list[dict], dict]:
    kind, p = unit.task, unit.params
    if kind == "gemm_peak":
        peak = _peak(ctx, p["dtype"])
        return [{"setting": p["dtype"], "metric": "gemm_peak_flops", "value": peak}], {"dtype": p["dtype"]}
    if kind == "scaling":
        return _scaling(ctx, p["dtype"])
    speed = ctx.cfg.speed
    measure = Measure(model_kwargs(ctx.cfg.model), ctx.device, p["B"], p["T"], speed.compile)
    tokens = p["B"] * p["T"]
    info = {**p, "params": models.count_parameters(measure.encoder), "d_model": measure.encoder.d_model,
            "threads": ctx.threads, "compile_s": measure.compile_s}  # fmt: skip
    if kind == "latency":
        t = time_calls(lambda: measure.infer(p["dtype"]), ctx.device, speed.min_run_time, min_repeats=20)
        info["times_s"] = t.times
        rows = {"p50_ms": 1e3 * t.quantile(0.5), "p90_ms": 1e3 * t.quantile(0.9)}
        return [{"setting": p["T"], "metric": k, "value": v} for k, v in rows.items()], info
    peak = _peak(ctx, p["dtype"])
    flops = forward_flops(measure.encoder, p["T"], ctx.device) * p["B"]
    t_inf = time_calls(lambda: measure.infer(p["dtype"]), ctx.device, speed.min_run_time, min_repeats=3)
    rows = {
        "infer_tokens_per_s": tokens / t_inf.median,
        "infer_ms": 1e3 * t_inf.median,
        "infer_iqr_ms": 1e3 * t_inf.iqr,
        "flops_per_token": flops / tokens,
        "infer_flops_per_s": flops / t_inf.median,
        "infer_mfu": flops / t_inf.median / peak,
    }
    info.update(gemm_peak_flops=peak, infer_times_s=t_inf.times)
    if speed.train:
        t_tr = time_calls(lambda: measure.train_step(p["dtype"]), ctx.device, speed.min_run_time, min_repeats=3, warmup=1)
        rows.update(
            train_tokens_per_s=tokens / t_tr.median,
            train_ms=1e3 * t_tr.median,
            train_iqr_ms=1e3 * t_tr.iqr,
            train_mfu=3 * flops / t_tr.median / peak,  # backward ~ 2x forward
        )
        info["train_times_s"] = t_tr.times
    rows.update(_memory(ctx, measure, p))
    return [{"setting": p["T"], "metric": k, "value": v} for k, v in rows.items()], info


def _memory(ctx: Context, measure: Measure, p: dict) -> dict:
    if not ctx.cfg.speed.memory:
        return {}
    if ctx.device.type == "cpu":
        if not can_measure_cpu_memory():
            return {}
        return in_fresh_process(memory_child, measure.build, p["B"], p["T"], p["dtype"], ctx.cfg.speed.train, ctx.threads)
    from bench.timing import peak_memory_mb

    out: dict = {}
    del measure.opt
    with peak_memory_mb(ctx.device, out, "infer_peak_mb"):
        measure.infer(p["dtype"])
    return out


def fit_exponent(seq_lens: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log(time) against log(T)."""
    xs, ys = [math.log(t) for t in seq_lens], [math.log(s) for s in seconds]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def _scaling(ctx: Context, dtype: str) -> tuple[list[dict], dict]:
    """Scaling exponents from this job's throughput records (time per batch against T)."""
    per_metric: dict[str, dict[int, float]] = {"infer_ms": {}, "train_ms": {}}
    for rec in iter_records(ctx.out_dir):
        if rec["status"] == "ok" and rec["task"] == "throughput" and rec["info"].get("dtype") == dtype:
            for m in rec["metrics"]:
                if m["metric"] in per_metric:
                    per_metric[m["metric"]][int(m["setting"])] = m["value"]
    rows, info = [], {"dtype": dtype}
    for metric, points in per_metric.items():
        if len(points) < 2:
            continue
        lens = sorted(points)
        setting = f"{lens[0]}-{lens[-1]}"
        rows.append({"setting": setting, "metric": metric.replace("_ms", "_exponent"),
                     "value": fit_exponent(lens, [points[t] for t in lens])})  # fmt: skip
        info[metric] = {"seq_lens": lens, "fitted_on": setting}
    if not rows:
        raise RuntimeError(f"no {dtype} throughput records to fit a scaling exponent on")
    return rows, info


def headline(record: dict) -> str:
    m = {r["metric"]: r["value"] for r in record["metrics"]}
    if record["task"] == "gemm_peak":
        return f"GEMM peak {m['gemm_peak_flops'] / 1e9:.0f} GFLOP/s"
    if record["task"] == "latency":
        return f"p50 {m['p50_ms']:.2f} ms, p90 {m['p90_ms']:.2f} ms"
    if record["task"] == "scaling":
        return ", ".join(f"{r['metric']} {r['value']:.2f} on T={r['setting']}" for r in record["metrics"])
    parts = [f"infer {m['infer_tokens_per_s'] / 1e3:.1f}k tok/s (MFU {m['infer_mfu']:.2f})"]
    if "train_tokens_per_s" in m:
        parts.append(f"train {m['train_tokens_per_s'] / 1e3:.1f}k tok/s")
    if "infer_peak_mb" in m:
        parts.append(f"peak {m['infer_peak_mb']:.0f} MB")
    return ", ".join(parts)
