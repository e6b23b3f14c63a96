"""Speed suite: throughput, latency, peak memory, FLOPs and FLOP utilisation against T.

Units, in order, for the job's encoder: the GEMM peak of each dtype (the
denominator of utilisation: the best over every GEMM path, bench.gemm, measured
once per process), beside the cores' theoretical peak; throughput at batch
``speed.batch_size`` for each dtype and sequence length (inference and one
training step, FLOPs, peak memory from a fresh process on the CPU), and again
at each batch size of the grid ``speed.batch_sizes``; latency at batch 1; and
the scaling exponents, fitted on this job's records at ``speed.batch_size``. And once for the whole sweep (the
first of its speed jobs to get there measures it, the others find it done): its encoders timed side by side in one
process, call by call over ``speed.rounds`` rounds, the source of the speed claims' ratios.
"""

from __future__ import annotations

import math
import statistics

from omegaconf import DictConfig

from bench import speedplan
from bench.gemm import theoretical_peak
from bench.suite import Context, Unit
from bench.timing import Timing, in_fresh_process, interleaved_config, measure_config

SECTIONS = ("speed",)


def units(cfg: DictConfig) -> list[Unit]:
    from bench.env import resolve_device

    device = resolve_device(cfg.device)
    chosen = speedplan.dtypes(cfg, device)
    out = [Unit("gemm_peak", params={"dtype": d}) for d in chosen]
    out += [
        Unit("throughput", params={"dtype": d, "T": T, "B": speedplan.batch_for(cfg, T, device)})
        for d in chosen
        for T in speedplan.seq_lens(cfg, device)
    ]
    for d in chosen:  # the grid: a batch the main sweep already measures (after the token cap) is not measured twice
        for T in speedplan.seq_lens(cfg, device):
            grid = {speedplan.batch_for(cfg, T, device, b) for b in cfg.speed.batch_sizes} - {
                speedplan.batch_for(cfg, T, device)
            }
            out += [Unit("throughput", params={"dtype": d, "T": T, "B": B, "grid": True}) for B in sorted(grid)]
    out += [Unit("latency", params={"dtype": d, "T": T, "B": 1}) for d in chosen for T in cfg.speed.latency_seq_lens]
    if len(speedplan.seq_lens(cfg, device)) >= 2:
        out += [Unit("scaling", params={"dtype": d}, always=True) for d in chosen]
    names = speedplan.compared(cfg)
    if "fp32" in chosen and len(names) >= 2 and (cfg.model.get("label") or cfg.model.name) in names:
        lens = speedplan.compare_seq_lens(cfg, device)
        shapes = [[T, speedplan.batch_for(cfg, T, device)] for T in lens]
        builds = {name: speedplan.model_build(cfg, name) for name in names}
        params = {"dtype": "fp32", "encoders": ",".join(names), "T": ",".join(map(str, lens))}
        out.append(Unit("interleaved", params=params, shared=True, inputs={"builds": builds, "shapes": shapes}))
    return out


def run(ctx: Context, unit: Unit) -> tuple[list[dict], dict]:
    kind, p = unit.task, unit.params
    if kind == "gemm_peak":
        peak, theory = speedplan.peak(ctx, p["dtype"]), theoretical_peak(ctx.device, p["dtype"], ctx.threads)
        rows = [{"setting": p["dtype"], "metric": "gemm_peak_flops", "value": peak["flops"]}]
        rows += [
            {"setting": p["dtype"], "metric": f"gemm_{path}_flops", "value": result["flops"]}
            for path, result in peak["paths"].items()
            if "flops" in result
        ]
        if theory["flops"]:
            rows.append({"setting": p["dtype"], "metric": "theoretical_peak_flops", "value": theory["flops"]})
        return rows, {"dtype": p["dtype"], **peak, "theoretical": theory}
    if kind == "scaling":
        return _scaling(ctx, p["dtype"])
    if kind == "interleaved":
        return _interleaved(ctx, unit)
    T, B, dtype = p["T"], p["B"], p["dtype"]
    if kind == "latency":
        m = speedplan.measure(
            ctx, measure_config, dtype=dtype, batch=1, seq_len=T, train=False, memory=False, min_repeats=20
        )
        t = Timing(m["infer_times"])
        info = {**p, "params": m["params"], "d_model": m["d_model"], "threads": ctx.threads, "times_s": t.times}
        info.update(routes=m["routes"], routed_linears=m["routed_linears"])
        rows = {"p50_ms": 1e3 * t.quantile(0.5), "p90_ms": 1e3 * t.quantile(0.9)}
        return [{"setting": T, "metric": k, "value": v} for k, v in rows.items()], info
    peak = speedplan.peak(ctx, dtype)
    m = speedplan.measure(
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
        "infer_mfu": flops / t_inf.median / peak["flops"],
    }
    if "train_times" in m:
        t_tr = Timing(m["train_times"])
        rows.update(
            train_tokens_per_s=tokens / t_tr.median,
            train_ms=1e3 * t_tr.median,
            train_iqr_ms=1e3 * t_tr.iqr,
            train_mfu=3 * flops / t_tr.median / peak["flops"],  # backward ~ 2x forward
        )
    rows.update({k: m[k] for k in ("infer_peak_mb", "train_peak_mb") if k in m})
    info = {
        **p,
        "params": m["params"],
        "d_model": m["d_model"],
        "threads": ctx.threads,
        "compile_s": m["compile_s"],
        "gemm_peak_flops": peak["flops"],
        "gemm_peak_path": peak["path"],
        "routes": m["routes"],  # the GEMM path of each linear layer's shape at inference, and each path's rate there
        "routed_linears": m["routed_linears"],
        "infer_times_s": m["infer_times"],
        "train_times_s": m.get("train_times"),
    }
    return [{"setting": T, "metric": k, "value": v} for k, v in rows.items()], info


def _interleaved(ctx: Context, unit: Unit) -> tuple[list[dict], dict]:
    """The encoders of the sweep timed side by side in one fresh process (``bench.timing.interleaved_config``),
    inference and training step, each linear layer routed for inference as the encoder's own job routes it."""
    dtype, builds, shapes = unit.params["dtype"], unit.inputs["builds"], [tuple(s) for s in unit.inputs["shapes"]]
    routes = None
    if ctx.cfg.speed.linear_path == "auto" and ctx.device.type == "cpu":
        routes = {
            name: {B * T: speedplan.linear_routes(ctx, build, dtype, B * T) for T, B in shapes}
            for name, build in builds.items()
        }
    args = {
        "builds": builds,
        "device": ctx.device.type,
        "dtype": dtype,
        "shapes": shapes,
        "threads": ctx.threads,
        "rounds": ctx.cfg.speed.rounds,
        "train": ctx.cfg.speed.train,
        "routes": routes,
        "min_round_time": ctx.cfg.speed.min_run_time / ctx.cfg.speed.rounds,  # as much timing as a job's own
    }
    m = in_fresh_process(interleaved_config, **args) if ctx.device.type == "cpu" else interleaved_config(**args)
    batch = {T: B for T, B in shapes}
    rows = [
        {"setting": f"{name} T={T}", "metric": f"{mode}_tokens_per_s", "value": batch[T] * T / statistics.median(t)}
        for mode, by_T in m["times"].items()
        for T, by_name in by_T.items()
        for name, t in by_name.items()
    ]
    info = {
        "dtype": dtype,
        "encoders": list(builds),
        "B": {str(T): B for T, B in shapes},
        "rounds": ctx.cfg.speed.rounds,
        "threads": ctx.threads,
        "params": m["params"],
        "times_s": {mode: {str(T): v for T, v in by_T.items()} for mode, by_T in m["times"].items()},
        "calls_per_round": {mode: {str(T): v for T, v in by_T.items()} for mode, by_T in m["calls"].items()},
        "measured_by": ctx.encoder,
        "distinct_by": ["encoders"],
    }
    return rows, info


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


def headline(record: dict) -> str:
    m = {r["metric"]: r["value"] for r in record["metrics"]}
    if record["task"] == "gemm_peak":
        paths = ", ".join(
            f"{k[5:-6]} {v / 1e9:.0f}" for k, v in m.items() if k.startswith("gemm_") and k != "gemm_peak_flops"
        )
        theory = f"; theoretical {m['theoretical_peak_flops'] / 1e9:.0f}" if "theoretical_peak_flops" in m else ""
        return f"GEMM peak {m['gemm_peak_flops'] / 1e9:.0f} GFLOP/s (by path: {paths}{theory})"
    if record["task"] == "interleaved":
        times = record["info"]["times_s"]["infer"]
        longest = max(times, key=int)
        fastest = sorted(times[longest], key=lambda name: statistics.median(times[longest][name]))
        rounds = record["info"]["rounds"]
        return f"side by side, {rounds} rounds; inference at T={longest}, fastest first: {' > '.join(fastest)}"
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
