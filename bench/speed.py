"""Speed suite: the comparison. Throughput, latency, peak memory, FLOPs and FLOP utilisation against T in the first
dtype of speed.dtypes (fp32 by default; the others are suite=speed_detail's), for the job's encoder
(``bench.speedplan.dtype_units``): the GEMM peak (the denominator of utilisation: the best over every GEMM path,
bench.gemm, measured once per process) beside the cores' theoretical peak; throughput at batch ``speed.batch_size``
for each sequence length (inference and one training step, FLOPs, peak memory from a fresh process on the CPU), and
again at each batch size of the grid ``speed.batch_sizes``; latency at batch 1; the scaling exponents. And once for
the whole sweep (the first of its speed jobs to get there measures it, the others find it done): its encoders timed
side by side in one process, call by call over ``speed.rounds`` rounds, the source of the speed claims' ratios.
"""

from __future__ import annotations

import statistics

from omegaconf import DictConfig

from bench import speedplan
from bench.suite import Context, Unit
from bench.timing import in_fresh_process, interleaved_config

SECTIONS = ("speed",)


def units(cfg: DictConfig) -> list[Unit]:
    from bench.env import resolve_device

    device = resolve_device(cfg.device)
    chosen = speedplan.dtypes(cfg, device)[:1]  # the comparison's dtype; the others are suite=speed_detail's
    out = speedplan.dtype_units(cfg, device, chosen)
    names = speedplan.compared(cfg)
    if chosen and len(names) >= 2 and (cfg.model.get("label") or cfg.model.name) in names:
        lens = speedplan.compare_seq_lens(cfg, device)
        shapes = [[T, speedplan.batch_for(cfg, T, device)] for T in lens]
        builds = {name: speedplan.model_build(cfg, name) for name in names}
        params = {"dtype": chosen[0], "encoders": ",".join(names), "T": ",".join(map(str, lens))}
        out.append(Unit("interleaved", params=params, shared=True, inputs={"builds": builds, "shapes": shapes}))
    return out


def run(ctx: Context, unit: Unit) -> tuple[list[dict], dict]:
    if unit.task == "interleaved":
        return _interleaved(ctx, unit)
    return speedplan.run_dtype(ctx, unit)


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


def headline(record: dict) -> str:
    if record["task"] == "interleaved":
        times = record["info"]["times_s"]["infer"]
        longest = max(times, key=int)
        fastest = sorted(times[longest], key=lambda name: statistics.median(times[longest][name]))
        rounds = record["info"]["rounds"]
        return f"side by side, {rounds} rounds; inference at T={longest}, fastest first: {' > '.join(fastest)}"
    return speedplan.dtype_headline(record)
