"""What the speed suites time and how: the dtypes this device runs, the sequence lengths and the batch at each,
the GEMM peak (once per process) and the GEMM path of each linear layer, and the call that measures one
configuration (in a fresh process on the CPU). A library of ``suite=speed`` and ``suite=speed_detail``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from omegaconf import DictConfig

import models
from bench.env import supports_bf16
from bench.gemm import ROUTE_ROWS, choose_routes, gemm_peak, linear_shapes, theoretical_peak
from bench.schema import MODEL_FILES, model_kwargs
from bench.suite import Context, Unit
from bench.timing import Timing, can_measure_cpu_memory, in_fresh_process, measure_config

log = logging.getLogger("bench")


def dtypes(cfg: DictConfig, device: torch.device) -> list[str]:
    usable = []
    for dtype in cfg.speed.dtypes:
        if dtype == "bf16" and not supports_bf16(device):
            log.info("bf16 skipped: this device has no bf16 support")
        elif dtype in ("fp16", "tf32") and device.type != "cuda":
            log.info(f"{dtype} skipped: it is for CUDA devices")
        else:
            usable.append(dtype)
    return usable


DEFAULT_SEQ_LENS = {"cpu": [32, 64, 128, 256, 512, 1024], "cuda": [32, 64, 128, 256, 512, 1024, 2048, 4096]}


def seq_lens(cfg: DictConfig, device: torch.device) -> list[int]:
    return (
        list(cfg.speed.seq_lens) if cfg.speed.seq_lens else DEFAULT_SEQ_LENS.get(device.type, DEFAULT_SEQ_LENS["cpu"])
    )


DEFAULT_MAX_TOKENS = {"cpu": 8192}


def batch_for(cfg, seq_len: int, device: torch.device, batch: int | None = None) -> int:
    """``batch`` (by default speed.batch_size), capped so that a batch holds at most speed.max_tokens tokens."""
    batch = batch or cfg.speed.batch_size
    cap = cfg.speed.max_tokens or DEFAULT_MAX_TOKENS.get(device.type)
    return max(1, min(batch, cap // seq_len)) if cap else batch


def compare_seq_lens(cfg: DictConfig, device: torch.device) -> list[int]:
    """Where the encoders are timed side by side: speed.compare_seq_lens, else the grid's shortest and longest (a
    middle T would cost the six default encoders about 50 s more on a 2-core CPU, past the suite's 5 minutes)."""
    if cfg.speed.compare_seq_lens:
        return list(cfg.speed.compare_seq_lens)
    lens = seq_lens(cfg, device)
    return sorted({min(lens), max(lens)})


def compared(cfg: DictConfig) -> list[str]:
    """The encoders timed side by side: speed.compare, else the model options this job's sweep runs (read from
    the sweep's multirun.yaml, which Hydra writes before the first job), else none."""
    if cfg.speed.compare is not None:
        return list(cfg.speed.compare)
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from bench.callbacks import swept_values

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return []
    sweep = Path(HydraConfig.get().sweep.dir) / "multirun.yaml"
    if not sweep.exists():
        return []
    return swept_values(OmegaConf.load(sweep), "model") or []


def model_build(cfg: DictConfig, name: str) -> dict:
    """The fixed-width build of model option ``name`` as a job of this sweep composes it: this job's own model
    node for its own option, else conf/model/<name>.yaml at this job's parameter budget."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if name == (cfg.model.get("label") or cfg.model.name):
        return models.fixed_width(**model_kwargs(cfg.model))
    key = (name, cfg.param_budget)
    if key not in _BUILDS:  # every speed job of a sweep asks for the same ones: composed once per process
        overrides = [f"model={name}", f"param_budget={cfg.param_budget}"]
        if GlobalHydra.instance().is_initialized():  # inside the running app
            node = compose("config", overrides=overrides).model
        else:
            with initialize_config_dir(config_dir=str(MODEL_FILES.parent), version_base="1.3"):
                node = compose("config", overrides=overrides).model
        _BUILDS[key] = models.fixed_width(**model_kwargs(node))
    return _BUILDS[key]


_BUILDS: dict[tuple, dict] = {}


_PEAKS: dict[tuple, dict] = {}


def peak(ctx: Context, dtype: str) -> dict:
    """The GEMM peak for dtype on this device and thread count (``bench.gemm.gemm_peak``), measured once per
    process: every job of a sweep run by one process (the local launcher's) divides by the same peak."""
    key = (str(ctx.device), dtype, ctx.threads)
    if key not in _PEAKS:
        _PEAKS[key] = gemm_peak(ctx.device, dtype, min_run_time=ctx.cfg.speed.min_run_time)
    return _PEAKS[key]


_ROUTES: dict[tuple, dict] = {}


def linear_routes(ctx: Context, build: dict, dtype: str, rows: int) -> dict:
    """Where each linear layer of the encoder goes for inference (``bench.gemm.choose_routes``), chosen once per
    process, dtype and shape: the grid and latency units at the same rows reuse it."""
    with torch.device("meta"):
        shapes = linear_shapes(models.build_encoder(**build))
    rows = min(rows, ROUTE_ROWS)
    missing = [s for s in shapes if (str(ctx.device), dtype, ctx.threads, rows, s) not in _ROUTES]
    for shape, choice in zip(missing, choose_routes(ctx.device, dtype, missing, rows).values()):
        _ROUTES[(str(ctx.device), dtype, ctx.threads, rows, shape)] = choice
    return {f"{k}x{n}": _ROUTES[(str(ctx.device), dtype, ctx.threads, rows, (k, n))] for k, n in shapes}


def measure(ctx: Context, fn, route_under_compile: bool = False, **kwargs) -> dict:
    """``fn(build=..., device=..., threads=..., min_run_time=..., compile=..., routes=..., **kwargs)`` (e.g.
    ``bench.timing.measure_config``) in a fresh process on the CPU; in this process on CUDA, whose allocator
    peak is reset per configuration. With speed.linear_path=auto (and no torch.compile, which picks its own
    kernels, unless ``route_under_compile``: ``fn`` compiles a copy of its own) the encoder's linear layers run
    through the GEMM path measured fastest at their shapes."""
    speed = ctx.cfg.speed
    build = models.fixed_width(**model_kwargs(ctx.cfg.model))  # the child builds without solving
    routes = None
    if speed.linear_path == "auto" and (route_under_compile or not speed.compile) and ctx.device.type == "cpu":
        routes = linear_routes(ctx, build, kwargs["dtype"], kwargs["batch"] * kwargs["seq_len"])
    args = dict(
        build=build,
        device=ctx.device.type,
        threads=ctx.threads,
        min_run_time=speed.min_run_time,
        compile=speed.compile,
        routes=routes,
        **kwargs,
    )
    if ctx.device.type == "cpu":
        if "memory" in args:
            args["memory"] = args["memory"] and can_measure_cpu_memory()
        return in_fresh_process(fn, **args)
    return fn(**args)


# ---- the units of one dtype (suite=speed: the comparison's dtype; suite=speed_detail: the others) ----


PER_DTYPE = ("gemm_peak", "throughput", "latency", "scaling")  # the units ``dtype_units`` makes, ``run_dtype`` runs


def dtype_units(cfg: DictConfig, device: torch.device, chosen: list[str]) -> list[Unit]:
    """For each dtype of ``chosen``: the GEMM peak (utilisation's denominator), throughput at speed.batch_size and
    each batch of the grid speed.batch_sizes at every T, latency at batch 1, and the scaling exponents (fitted on
    the job's records at speed.batch_size)."""
    out = [Unit("gemm_peak", params={"dtype": d}) for d in chosen]
    out += [
        Unit("throughput", params={"dtype": d, "T": T, "B": batch_for(cfg, T, device)})
        for d in chosen
        for T in seq_lens(cfg, device)
    ]
    for d in chosen:  # the grid: a batch the main sweep already measures (after the token cap) is not measured twice
        for T in seq_lens(cfg, device):
            grid = {batch_for(cfg, T, device, b) for b in cfg.speed.batch_sizes} - {batch_for(cfg, T, device)}
            out += [Unit("throughput", params={"dtype": d, "T": T, "B": B, "grid": True}) for B in sorted(grid)]
    out += [Unit("latency", params={"dtype": d, "T": T, "B": 1}) for d in chosen for T in cfg.speed.latency_seq_lens]
    if len(seq_lens(cfg, device)) >= 2:
        out += [Unit("scaling", params={"dtype": d}, always=True) for d in chosen]
    return out


def run_dtype(ctx: Context, unit: Unit) -> tuple[list[dict], dict]:
    """Run one unit of ``dtype_units``."""
    kind, p = unit.task, unit.params
    if kind == "gemm_peak":
        best, theory = peak(ctx, p["dtype"]), theoretical_peak(ctx.device, p["dtype"], ctx.threads)
        rows = [{"setting": p["dtype"], "metric": "gemm_peak_flops", "value": best["flops"]}]
        rows += [
            {"setting": p["dtype"], "metric": f"gemm_{path}_flops", "value": result["flops"]}
            for path, result in best["paths"].items()
            if "flops" in result
        ]
        if theory["flops"]:
            rows.append({"setting": p["dtype"], "metric": "theoretical_peak_flops", "value": theory["flops"]})
        return rows, {"dtype": p["dtype"], **best, "theoretical": theory}
    if kind == "scaling":
        return _scaling(ctx, p["dtype"])
    T, B, dtype = p["T"], p["B"], p["dtype"]
    if kind == "latency":
        m = measure(ctx, measure_config, dtype=dtype, batch=1, seq_len=T, train=False, memory=False, min_repeats=20)
        t = Timing(m["infer_times"])
        info = {**p, "params": m["params"], "d_model": m["d_model"], "threads": ctx.threads, "times_s": t.times}
        info.update(routes=m["routes"], routed_linears=m["routed_linears"])
        rows = {"p50_ms": 1e3 * t.quantile(0.5), "p90_ms": 1e3 * t.quantile(0.9)}
        return [{"setting": T, "metric": k, "value": v} for k, v in rows.items()], info
    best = peak(ctx, dtype)
    m = measure(
        ctx, measure_config, dtype=dtype, batch=B, seq_len=T, train=ctx.cfg.speed.train, memory=ctx.cfg.speed.memory
    )
    tokens, flops = B * T, m["flops"]
    t_inf = Timing(m["infer_times"])
    rows = {
        "infer_tokens_per_s": tokens / t_inf.median,
        "infer_ms": 1e3 * t_inf.median,
        "infer_iqr_ms": 1e3 * t_inf.iqr,
        "flops_per_token": flops / tokens,
        "infer_flops_per_s": flops / t_inf.median,
        "infer_mfu": flops / t_inf.median / best["flops"],
    }
    if "train_times" in m:
        t_tr = Timing(m["train_times"])
        rows.update(
            train_tokens_per_s=tokens / t_tr.median,
            train_ms=1e3 * t_tr.median,
            train_iqr_ms=1e3 * t_tr.iqr,
            train_mfu=3 * flops / t_tr.median / best["flops"],  # backward ~ 2x forward
        )
    rows.update({k: m[k] for k in ("infer_peak_mb", "train_peak_mb") if k in m})
    info = {
        **p,
        "params": m["params"],
        "d_model": m["d_model"],
        "threads": ctx.threads,
        "compile_s": m["compile_s"],
        "gemm_peak_flops": best["flops"],
        "gemm_peak_path": best["path"],
        "routes": m["routes"],  # the GEMM path of each linear layer's shape at inference, and each path's rate there
        "routed_linears": m["routed_linears"],
        "infer_times_s": m["infer_times"],
        "train_times_s": m.get("train_times"),
    }
    return [{"setting": T, "metric": k, "value": v} for k, v in rows.items()], info


def fit_exponent(seq_lens: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log(time) against log(T)."""
    xs, ys = [math.log(t) for t in seq_lens], [math.log(s) for s in seconds]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def _scaling(ctx: Context, dtype: str) -> tuple[list[dict], dict]:
    """Scaling exponents from this job's throughput records (wherever in the results tree they are kept):
    time per sequence (a batch's time over its size, which shrinks at long T under speed.max_tokens) against T."""
    per_metric: dict[str, dict[int, float]] = {"infer_ms": {}, "train_ms": {}}
    batches: dict[int, int] = {}
    for rec in ctx.job_records():
        info = rec["info"]
        if (
            rec["status"] == "ok"
            and rec["task"] == "throughput"
            and info.get("dtype") == dtype
            and not info.get("grid")
        ):
            for m in rec["metrics"]:
                if m["metric"] in per_metric:
                    T = int(m["setting"])
                    batches[T] = rec["info"]["B"]
                    per_metric[m["metric"]][T] = m["value"] / batches[T]
    rows, info = [], {"dtype": dtype}
    for metric, points in per_metric.items():
        if len(points) < 2:
            continue
        lens = sorted(points)
        setting = f"{lens[0]}-{lens[-1]}"
        rows.append(
            {
                "setting": setting,
                "metric": metric.replace("_ms", "_exponent"),
                "value": fit_exponent(lens, [points[t] for t in lens]),
            }
        )
        info[metric] = {
            "seq_lens": lens,
            "fitted_on": setting,
            "batch_sizes": [batches[t] for t in lens],
            "ms_per_sequence": [points[t] for t in lens],
        }
    if not rows:
        raise RuntimeError(f"no {dtype} throughput records to fit a scaling exponent on")
    return rows, info


def dtype_headline(record: dict) -> str:
    """One line for a record of ``dtype_units``."""
    m = {r["metric"]: r["value"] for r in record["metrics"]}
    if record["task"] == "gemm_peak":
        paths = ", ".join(
            f"{k[5:-6]} {v / 1e9:.0f}" for k, v in m.items() if k.startswith("gemm_") and k != "gemm_peak_flops"
        )
        theory = f"; theoretical {m['theoretical_peak_flops'] / 1e9:.0f}" if "theoretical_peak_flops" in m else ""
        return f"GEMM peak {m['gemm_peak_flops'] / 1e9:.0f} GFLOP/s (by path: {paths}{theory})"
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
