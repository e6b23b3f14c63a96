"""The comparison report, built from stored records only: ``build_report(run_dir)``.

Writes ``report.md``, a self-contained ``report.html`` and the figures (PNG and
SVG) under ``run_dir`` (or ``out_dir``). Any results folder works: a sweep, one
job, one encoder, or one with failed runs (listed as failed).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from bench.convergence import CONVERGED, Rule
from bench.errors import UserError
from bench.metrics import LOWER_IS_BETTER
from bench.records import load_records
from bench.report import answer, figures, frames, reproductions
from bench.report import claims as claims_mod
from bench.report.render import Section, human, to_html, to_markdown
from bench.report.stats import RANGES, mean_ci

TITLE = "fxbench: LSTM vs dilated CNN vs Transformer"


def _ci_text(values, metric: str | None = None) -> str:
    ci = mean_ci(values, *RANGES.get(metric, (None, None)))
    return "" if ci.n == 0 else str(ci)


def _ci_of(metric: str):
    return lambda values: _ci_text(values, metric)


def _ci_by_metric(frame: pd.DataFrame, keys: list[str], column: str = "value") -> pd.Series:
    """The mean [95% CI] of ``column`` per group of ``keys``, each clipped to its group's metric's range."""
    return frame.groupby(keys, sort=False)[[column, "metric"]].apply(lambda g: _ci_text(g[column], g["metric"].iloc[0]))


def _converged_share(statuses: pd.Series) -> str:
    """'2/3': how many of the runs converged (bench.convergence); '?' counts runs that kept no status."""
    known = statuses.dropna()
    return f"{int((known == CONVERGED).sum())}/{len(statuses)}" + ("" if len(known) == len(statuses) else " (?)")


def _batch_grid_table(grid: pd.DataFrame, order) -> pd.DataFrame | None:
    """Inference and training throughput against batch size, where the batch-size grid was measured."""
    if grid.empty or grid.groupby(["encoder", "dtype", "T"])["B"].nunique().max() < 2:
        return None
    columns = [c for c in ("infer_tokens_per_s", "train_tokens_per_s") if c in grid]
    table = grid.melt(id_vars=["encoder", "dtype", "T", "B"], value_vars=columns, var_name="mode", value_name="tok/s")
    table["mode"] = table["mode"].str.replace("_tokens_per_s", "")
    table = table.pivot_table(index=["encoder", "dtype", "mode", "T"], columns="B", values="tok/s").round(0)
    table = table.reindex([i for e in order for i in table.index if i[0] == e])
    table.columns = [f"B={b}" for b in table.columns]
    return table.reset_index()


def _speed_section(speed, tables: dict[str, pd.DataFrame], order, fig_dir, device: str | None = None) -> Section:
    """The speed tables and figures of one device (``device`` names it where the records hold several); ``tables``
    holds its latency, scaling, gemm, routes, grid and breakdown frames."""
    s = Section(f"Speed on {device}" if device else "Speed")
    stem = "speed" if device is None else "speed_" + re.sub(r"[^a-z0-9]+", "_", device.lower()).strip("_")
    latency, scaling, gemm, routes, grid, breakdown, inter, runtimes = (
        tables[k].drop(columns="device", errors="ignore")
        for k in ("latency", "scaling", "gemm", "routes", "grid", "breakdown", "interleaved", "runtimes")
    )
    s.text(
        "Throughput is tokens per second at batch size speed.batch_size, capped at speed.max_tokens tokens per "
        "batch (8192 on a CPU, so B shrinks at long T), median over timed calls after warm-up; "
        "a training step is forward, backward and an AdamW step. Peak memory is what one forward (or step) "
        "adds at its high-water mark, measured in a fresh process on the CPU. FLOP utilisation (MFU) divides "
        "achieved FLOP/s by the best rate of matrix products of the same dtype measured on the same machine over "
        "every GEMM path torch offers (the table of peaks names the path and kernel library that set it)."
        + _peak_sentence(gemm)
        + _routes_sentence(routes)
    )
    s.figure(
        figures.save(
            figures.speed_lines(
                speed, {"infer_tokens_per_s": "inference", "train_tokens_per_s": "training step"}, "tokens / s", order
            ),
            fig_dir,
            f"{stem}_throughput",
        ),
        "Throughput against sequence length (log-log).",
    )
    side = _side_by_side_table(inter, speed, order)
    if side is not None:
        table, reference, rounds = side
        s.table(
            table,
            f"speed over the {reference}'s, fp32: measured side by side in one process ({rounds} rounds, call by "
            "call, the order rotated each round; geometric mean of the per-round ratios, 95% t interval over rounds) "
            "and, beside it, the same ratio from each encoder's own job (medians of its calls, bootstrap interval). "
            "The speed claims use the side-by-side ratios.",
        )
    more = Section("More speed tables")  # behind a fold at the end of the section
    for budget, part in _by_comparison(speed):
        of = f" ({budget / 1e6:.3g}M-parameter comparison)" if budget else ""
        for mode, label in (("infer", "inference"), ("train", "training step")):
            column = f"{mode}_tokens_per_s"
            if column not in part or part[column].isna().all():
                continue
            table = _by_T(part, column, order)
            s.table(table, f"{label} throughput (tokens/s) by sequence length T{of}")
            fastest = part.groupby(["dtype", "T"])[column].transform("max")
            rel = _by_T(part.assign(relative=(part[column] / fastest).round(2)), "relative", order)
            more.table(
                rel, f"relative {label} speed: each encoder over the fastest at that T and dtype (1 = fastest){of}"
            )
    batch_table = _batch_grid_table(grid, order)
    if batch_table is not None:
        more.table(batch_table, "throughput (tokens/s) against batch size B (the batch-size grid, speed.batch_sizes)")
    memory = {c: n for c, n in (("infer_peak_mb", "inference"), ("train_peak_mb", "training step")) if c in speed}
    if memory:
        s.figure(
            figures.save(
                figures.speed_lines(speed, memory, "peak memory added (MB)", order), fig_dir, f"{stem}_memory"
            ),
            "Peak memory against sequence length (log-log).",
        )
    mfu = {c: n for c, n in (("infer_mfu", "inference"), ("train_mfu", "training step")) if c in speed}
    if mfu:
        above = int(sum((speed[c] > 1).sum() for c in mfu))
        why = (
            f" {above} measurement{'s exceed' if above > 1 else ' exceeds'} 1, which is impossible: an encoder's "
            "kernel ran faster than the denominator, the best matrix-product rate measured (records measured against "
            "torch.matmul alone, before every GEMM path was timed, show this where oneDNN's fused kernels beat MKL), "
            "so these utilisations are overstated; they are ringed in red."
            if above
            else ""
        )
        s.figure(
            figures.save(
                figures.speed_lines(speed, mfu, "FLOP utilisation", order, log_y=False, limit=1.0),
                fig_dir,
                f"{stem}_mfu",
            ),
            "FLOP utilisation against sequence length." + why,
        )
    if not breakdown.empty:
        s.figure(
            figures.save(figures.breakdown_bars(breakdown, order), fig_dir, f"{stem}_breakdown"),
            "Where an inference call's time goes (torch.profiler, suite=speed_detail): the share of each category "
            "of operator, at the shortest and longest T." + _why_sentence(breakdown, speed),
        )
    if not runtimes.empty:
        table, caption = _runtimes_table(runtimes, order)
        s.table(table, caption)
    if not latency.empty:
        table = latency.sort_values(["encoder", "dtype", "T"]).drop(
            columns=["budget", "name", "family", "preset"], errors="ignore"
        )
        more.table(
            table.rename(columns={"T": "T (tokens)", "p50_ms": "p50 (ms)", "p90_ms": "p90 (ms)"}), "latency at batch 1"
        )
    if not scaling.empty:
        table = scaling.drop(columns=["budget", "name", "family", "preset"], errors="ignore").round(2)
        more.table(table, "scaling exponent: slope of log time per sequence against log T (1: linear, 2: quadratic)")
    if not gemm.empty:
        more.table(_peak_table(gemm), "GEMM peaks: the denominator of utilisation, best rate of each path (GFLOP/s)")
    if more.blocks:
        s.details(
            "More tables: relative speed, batch sizes, latency at batch 1, scaling exponents, GEMM peaks"
        ).blocks += more.blocks
    return s


def _side_by_side_table(inter: pd.DataFrame, speed: pd.DataFrame, order) -> tuple[pd.DataFrame, str, int] | None:
    """Each encoder's speed over the RNN's (the first recurrent encoder timed side by side, else the first) at each
    T and mode of the latest side-by-side measurement, with the per-job ratio beside it; None without one."""
    if inter.empty:
        return None
    inter = inter[inter["key"] == inter.sort_values("key")["key"].iloc[-1]]
    names = frames.encoder_order(inter["encoder"])
    recurrent = [n for n in names if frames.roles.family_of(frames.name_of(n)) == "rnn"]
    reference = (recurrent or names)[0]
    rows = []
    for (mode, T), g in inter.groupby(["mode", "T"]):
        times = dict(zip(g["encoder"], g["times"]))
        for name in names:
            if name == reference or name not in times:
                continue
            side = claims_mod.times_ratio(times[name], times[reference], claims_mod.SIDE_BY_SIDE)
            own = claims_mod.timings(speed[speed["dtype"] == "fp32"], None, [name, reference], mode, "fp32")[0]
            job = own.get(int(T), {})
            per_job = (
                claims_mod.times_ratio(job[name], job[reference], claims_mod.PER_JOB)
                if job.get(name) is not None and job.get(reference) is not None
                else None
            )
            rows.append(
                {
                    "mode": "inference" if mode == "infer" else "training step",
                    "T": int(T),
                    "B": int(g["B"].iloc[0]),
                    "encoder": name,
                    f"x {reference}, side by side": str(side),
                    f"x {reference}, per job": "" if per_job is None else str(per_job),
                }
            )
    table = pd.DataFrame(rows)
    if table.empty:
        return None
    table["_rank"] = table["encoder"].map({n: i for i, n in enumerate(order)})
    table = table.sort_values(["mode", "T", "_rank"]).drop(columns="_rank")
    rounds = min(len(t) for t in inter["times"])
    return table, reference, rounds


def _runtimes_table(runtimes: pd.DataFrame, order) -> tuple[pd.DataFrame, str]:
    """Inference throughput per encoder and T under each runtime of speed.runtime (tokens/s; a failed runtime
    shows why), the fastest, and the largest difference from eager's output; with its caption."""
    rows = []
    for (encoder, T), g in runtimes.groupby(["encoder", "T"], sort=False):
        row = {"encoder": encoder, "T": int(T), "B": int(g["B"].iloc[0])}
        ok = g[g["status"] == "ok"]
        for _, r in g.iterrows():
            row[r["runtime"]] = human(r["tokens_per_s"]) if r["status"] == "ok" else f"failed: {r['reason']}"[:90]
        if not ok.empty:
            best = ok.loc[ok["tokens_per_s"].idxmax()]
            eager = ok[ok["runtime"] == "eager"]["tokens_per_s"]
            row["fastest"] = best["runtime"] + (
                f" ({best['tokens_per_s'] / eager.iloc[0]:.2f}x eager)"
                if len(eager) and best["runtime"] != "eager"
                else ""
            )
            row["largest |difference| from eager"] = f"{ok['max_abs_error'].max():.1e}"
        rows.append(row)
    table = pd.DataFrame(rows)
    table["_rank"] = table["encoder"].map({n: i for i, n in enumerate(order)})
    table = table.sort_values(["_rank", "T"]).drop(columns="_rank")
    exporters = sorted(
        {r["facts"].get("exporter", "") for _, r in runtimes.iterrows() if r["runtime"] == "onnxruntime"}
    )
    caption = (
        "inference throughput (tokens/s, fp32) under each runtime a user deploys with (speed.runtime, "
        "suite=speed_detail): eager PyTorch (linear layers routed as above), torch.compile (default backend) and "
        "ONNX Runtime's CPU provider on the encoder exported through torch.onnx; each runtime's outputs checked "
        "against eager's first (tolerance 1e-4 + 1e-3 x the largest output), then the runtimes timed call by call "
        "in one process. The speed claims are judged again with each encoder under its fastest runtime."
    )
    if any(exporters):
        caption += f" Export: {'; '.join(e for e in exporters if e)}."
    return table, caption


def _why_sentence(breakdown: pd.DataFrame, speed: pd.DataFrame) -> str:
    """Per dtype, at the longest T profiled: the encoders from fastest to slowest in inference, each with the
    categories that take most of its call and the library that ran them."""
    out = []
    for dtype, part in breakdown.groupby("dtype", sort=False):
        T = part["T"].max()
        at = part[part["T"] == T]
        rates = speed[(speed["dtype"] == dtype) & (speed["T"] == T)].set_index("encoder")["infer_tokens_per_s"]
        encoders = sorted(set(at["encoder"]), key=lambda e: -rates.get(e, 0.0))
        parts = []
        for encoder in encoders:
            cats = at[at["encoder"] == encoder].sort_values("share", ascending=False)
            main = cats.iloc[: 1 if cats["share"].iloc[0] >= 0.6 else 2]
            where = " and ".join(f"{100 * r.share:.0f}% {r.category} ({r.library})" for r in main.itertuples())
            speedtext = f", {human(rates[encoder])} tok/s" if encoder in rates else ""
            parts.append(f"{encoder}{speedtext}: {where}")
        order = "fastest first" if len(rates) else "speed not measured"
        out.append(f" {dtype}, T={T} ({order}): " + "; ".join(parts) + "." + _why_order(speed, dtype, T, encoders))
    return "".join(out)


def _why_order(speed: pd.DataFrame, dtype: str, T: int, encoders: list[str]) -> str:
    """Why the fastest beats the slowest at (dtype, T), split into its two causes: tokens/s = utilisation x peak /
    FLOPs per token, so the ratio is the ratio of FLOPs per token times the ratio of utilisations."""
    at = speed[(speed["dtype"] == dtype) & (speed["T"] == T)].set_index("encoder")
    ranked = [e for e in encoders if e in at.index]
    if len(ranked) < 2 or not {"flops_per_token", "infer_mfu"} <= set(at.columns):
        return ""
    fast, slow = at.loc[ranked[0]], at.loc[ranked[-1]]
    work, use = slow["flops_per_token"] / fast["flops_per_token"], fast["infer_mfu"] / slow["infer_mfu"]
    return (
        f" Why: {ranked[0]} is {work * use:.2f}x as fast as {ranked[-1]}, {work:.2f}x from its FLOPs per token "
        f"({fast['flops_per_token'] / 1e6:.1f}M against {slow['flops_per_token'] / 1e6:.1f}M) and {use:.2f}x from the "
        f"share of the peak its kernels reach ({fast['infer_mfu']:.2f} against {slow['infer_mfu']:.2f})."
    )


def _peak_table(gemm: pd.DataFrame) -> pd.DataFrame:
    """Per dtype: the best rate (lowest-highest over the jobs that measured it), each path's best, and the cores'
    theoretical peak; a path that never measured is left out."""
    rows = []
    for dtype, part in gemm.groupby("dtype", sort=False):
        best = part.loc[part["GFLOP/s"].idxmax()]
        low, high = part["GFLOP/s"].min(), part["GFLOP/s"].max()
        row = {
            "dtype": dtype,
            "best (GFLOP/s)": f"{high:.0f}" if round(low) == round(high) else f"{low:.0f}-{high:.0f}",
            "set by": f"{best['path']} ({best['library']})" if isinstance(best.get("path"), str) else "torch.matmul",
        }
        for paths in part["paths"]:
            for path, value in (paths or {}).items():
                row[path] = max(row.get(path, 0.0), round(value))
        if part["theoretical GFLOP/s"].notna().any():
            row["theoretical (GFLOP/s)"] = round(part["theoretical GFLOP/s"].max())
        rows.append(row)
    return pd.DataFrame(rows)


def _routes_sentence(routes: pd.DataFrame) -> str:
    """Where the encoders' linear layers went at inference (speed.linear_path=auto), per encoder and dtype."""
    if routes.empty:
        return ""
    parts = []
    for (encoder, dtype), part in routes.groupby(["encoder", "dtype"], sort=False):
        moved, shapes = part[part["path"] != "linear"], part["shape"].nunique()
        if moved.empty:
            parts.append(f"{encoder} {dtype}: torch's own for its {shapes} shape{'s' * (shapes > 1)}")
            continue
        gains = (
            f"{moved['gain'].min():.2f}-{moved['gain'].max():.2f}x"
            if len(moved) > 1
            else f"{moved['gain'].iloc[0]:.2f}x"
        )
        parts.append(
            f"{encoder} {dtype}: {moved['shape'].nunique()} of {shapes} through "
            f"{', '.join(sorted(set(moved['path'])))} ({gains} torch's own rate there)"
        )
    return (
        " At inference each linear layer ran through the GEMM path measured fastest at its shape "
        "(speed.linear_path=auto; training keeps torch's own): " + "; ".join(parts) + "."
    )


def _peak_sentence(gemm: pd.DataFrame) -> str:
    """How the theoretical peak was derived, once per dtype it is known for."""
    if gemm.empty or "derivation" not in gemm:
        return ""
    out = []
    for dtype, part in gemm[gemm["theoretical GFLOP/s"].notna()].groupby("dtype", sort=False):
        theory, best = part["theoretical GFLOP/s"].max(), part["GFLOP/s"].max()
        out.append(f" Theoretical {dtype} peak: {part['derivation'].iloc[0]} = {theory:.0f} GFLOP/s")
        if best > theory:  # the clock read is below the one the cores ran at (a boost clock a VM does not show)
            out.append(
                f"; the measured best, {best:.0f} GFLOP/s, is {best / theory:.2f}x that, so the cores ran faster "
                "than the clock read here (a boost clock), or with more FMA units than assumed"
            )
        out.append(".")
    return "".join(out)


def _by_comparison(table: pd.DataFrame) -> list[tuple]:
    """``table`` split by parameter budget (one comparison each), largest group first, so that tables of
    sizes measured at different T are not mostly empty."""
    if "budget" not in table or table["budget"].nunique(dropna=False) <= 1:
        return [(None, table)]
    groups = [(b, g) for b, g in table.groupby(table["budget"].fillna(-1))]
    return [(None if b == -1 else b, g) for b, g in sorted(groups, key=lambda bg: -len(bg[1]))]


def _by_T(part: pd.DataFrame, column: str, order) -> pd.DataFrame:
    """One row per encoder and dtype, one column per T measured (header 'T=128'), in the encoder order."""
    table = part.pivot_table(index=["encoder", "dtype"], columns="T", values=column)
    table = table.reindex([i for e in order for i in table.index if i[0] == e]).dropna(axis=1, how="all")
    table.columns = [f"T={T}" for T in table.columns]
    return table.reset_index()


def _on_device(table: pd.DataFrame, device: str | None) -> pd.DataFrame:
    return table if device is None or "device" not in table else table[table["device"] == device]


def _reach_back(receptive_field, causal) -> str:
    """How far back (and, bidirectional, ahead) a finite receptive field reaches from a position."""
    if pd.isna(receptive_field):
        return "unbounded"
    span = int(receptive_field) - 1
    return f"{span} back" if causal else f"{span // 2} each side"


def _symbol(probe: str) -> str:
    """The short name of a probe's distance for table headers: d, T or depth."""
    found = re.search(r"\b([dT])\b", figures.probe_axis(probe))
    return found.group(1) if found else figures.probe_axis(probe).split()[-1]


def _distance_section(dist, attract, order, fig_dir) -> Section:
    s = Section("Long-distance dependencies")
    s.text(
        "Each encoder is trained once per probe and seed on a mix of distances and scored per distance bucket "
        "on test (checkpoint picked on validation). Bands are 95% t intervals over seeds; the dashed line is "
        "chance (or the trivial predictor's MSE). The effective distance is the largest d up to which the "
        "score stays past halfway from chance to perfect."
    )
    s.figure(
        figures.save(figures.distance_curves(dist, order), fig_dir, "distance"),
        "Test metric against distance per probe (what distance means differs per probe: see each x axis).",
    )
    if dist["grad_reach"].notna().any():
        s.figure(
            figures.save(figures.reach_curves(dist, order), fig_dir, "reach"),
            "Empirical reach of the trained encoders: how strongly the output at the read-out position depends "
            "on the input d tokens before it: the norm of the gradient of a random projection of that output, "
            "averaged over test examples, each run scaled to its maximum; a missing point is exactly zero "
            "(beyond a receptive field).",
        )
    useful = claims_mod.informative(dist)
    dull = sorted(p for p, ok in useful.items() if not ok)
    if dull:
        s.text(
            f"Uninformative at this budget, so kept out of the claims: {', '.join(dull)} (no encoder reaches accuracy "
            f"{claims_mod.INFORMATIVE}, or an MSE below {claims_mod.INFORMATIVE_MSE:.0%} of chance, at the "
            "probe's shortest distance: the probe measures the budget there, not distance)."
        )
    tables = s.details("Per-probe tables: score by distance (and loss, attractors), mean [95% CI] over seeds")
    for probe, part in dist.groupby("probe", sort=False):
        table = part.groupby(["encoder", "distance"])["value"].apply(_ci_of(part["metric"].iloc[0])).unstack("distance")
        table = table.reindex([e for e in order if e in table.index])
        table.columns = [f"{_symbol(probe)}={d}" for d in table.columns]
        tables.table(
            table.reset_index(),
            f"{probe}: test {part['metric'].iloc[0]} by {figures.probe_axis(probe)}, mean [95% CI] over seeds"
            + ("" if useful.get(probe, True) else " (uninformative at this budget)"),
        )
        if "chance_loss" in part and part["chance_loss"].notna().any():
            loss = part.groupby(["encoder", "distance"])["loss"].apply(_ci_of("loss")).unstack("distance")
            loss = loss.reindex([e for e in order if e in loss.index]).reset_index()
            baseline = part.groupby("distance")["chance_loss"].first()
            loss = pd.concat([loss, pd.DataFrame([{"encoder": "trivial baseline", **baseline.round(4).to_dict()}])])
            loss.columns = [c if c == "encoder" else f"{_symbol(probe)}={c}" for c in loss.columns]
            tables.table(
                loss,
                f"{probe}: test loss per position by T, mean [95% CI], beside the trivial baseline "
                "10 ln 8 / (T + 20) (blanks right, the digits uniform)",
            )
        if not attract.empty and probe in set(attract["probe"]):
            by_count = attract[attract["probe"] == probe]
            table = by_count.groupby(["encoder", "attractors"])["value"].apply(_ci_of(by_count["metric"].iloc[0]))
            table = table.unstack("attractors")
            table = table.reindex([e for e in order if e in table.index])
            table.columns = [f"{c} attractors" for c in table.columns]
            tables.table(
                table.reset_index(),
                f"{probe}: test {by_count['metric'].iloc[0]} by number of attractors "
                "(opposite-number nouns between subject and verb), over all distances",
            )
    eff = (
        dist.groupby(["probe", "encoder", "seed"])[["effective_distance", "receptive_field", "causal", "convergence"]]
        .first()
        .reset_index()
    )
    table = (
        eff.groupby(["probe", "encoder"])
        .agg(
            effective_distance=("effective_distance", _ci_of("effective_distance")),
            receptive_field=("receptive_field", "first"),
            causal=("causal", "first"),
            seeds=("seed", "nunique"),
            converged=("convergence", _converged_share),
        )
        .reset_index()
    )
    table["reach"] = [_reach_back(rf, c) for rf, c in zip(table["receptive_field"], table["causal"])]
    table["receptive_field"] = table["receptive_field"].map(lambda v: "unbounded" if pd.isna(v) else int(v))
    s.table(
        table.drop(columns="causal"),
        "effective distance, mean [95% CI] over seeds; the theoretical receptive field "
        "(the whole window, in tokens) and how far it reaches from a position",
    )
    return s


def _accuracy_section(acc, order, fig_dir) -> Section:
    s = Section("Task accuracy")
    s.text(
        "Every encoder gets the same parameter budget and settings and trains until it has converged (or "
        "reaches the step cap: see the training section); the checkpoint is picked on validation and scored once "
        "on test. Error bars are 95% t intervals over seeds; the dashed line is the majority-class (or "
        "copy-the-source) baseline; a hollow marker: not every seed converged."
    )
    s.figure(
        figures.save(figures.accuracy_points(acc, order), fig_dir, "accuracy"),
        "Test metric per task, mean and 95% t interval over seeds (clipped to the metric's range).",
    )
    table = (
        acc.groupby(["task", "encoder"], sort=False)
        .agg(
            type=("type", "first"),
            metric=("metric", "first"),
            baseline=("baseline", "mean"),
            seeds=("seed", "nunique"),
            converged=("convergence", _converged_share),
            encoder_params=("encoder_params", "median"),
            params=("params", "median"),
            train_tokens_per_s=("train_tokens_per_s", "mean"),
        )
        .reset_index()
    )
    table.insert(4, "test", _ci_by_metric(acc, ["task", "encoder"]).to_numpy())
    table["order"] = table["encoder"].map({e: i for i, e in enumerate(order)})
    table = table.sort_values(["task", "order"]).drop(columns="order").round(3)
    for source, part in table.groupby(
        table["task"].map(acc.groupby("task")["source"].first()).fillna("embedded"), sort=False
    ):
        s.table(part, f"test metric, mean [95% CI] over seeds ({source} data)")
    s.text(_whole_model_sentence(table))
    return s


def _whole_model_sentence(table: pd.DataFrame) -> str:
    """Whether the whole models (embeddings and heads included) are as matched as the encoders: the budget
    sizes encoders; heads scale with each encoder's width, so whole models can drift apart."""
    spread = table.dropna(subset=["params"]).groupby("task")["params"]
    gaps = (spread.max() / spread.min() - 1).sort_values(ascending=False)
    if gaps.empty:
        return "Whole-model parameter counts were not recorded."
    worst = gaps.index[0]
    if gaps.iloc[0] <= 0.05:
        return (
            f"Whole models, embeddings and heads included, are matched within 5% too (largest gap {gaps.iloc[0]:.1%})."
        )
    return (
        f"Encoders are matched within 5%; whole models (embeddings and heads included, column params) are not: up to "
        f"{gaps.iloc[0]:.0%} apart ({worst}), because the heads and embeddings scale with each encoder's width."
    )


TARGET = 0.95  # learning curves: the time to reach this fraction of the best encoder's final validation metric


def _time_to_target(curves: pd.DataFrame, order) -> pd.DataFrame:
    """Per trained task and encoder: the median over seeds of the training seconds (and steps) until the validation
    metric first reached TARGET of the best encoder's (mean over seeds of its best; for MSE, the best / TARGET)."""
    rows = []
    for (suite, task), part in curves.groupby(["suite", "task"], sort=False):
        lower = part["metric"].iloc[0] in LOWER_IS_BETTER
        best = part.groupby(["encoder", "seed"])["value"].agg("min" if lower else "max").groupby("encoder").mean()
        target = best.min() / TARGET if lower else best.max() * TARGET
        for encoder in [e for e in order if e in best.index]:
            reached = []
            for _, run in part[part["encoder"] == encoder].groupby("seed"):
                hit = run[run["value"] <= target] if lower else run[run["value"] >= target]
                reached.append(hit.iloc[0] if len(hit) else None)
            times = [r["seconds"] for r in reached if r is not None]
            rows.append(
                {
                    "suite": suite,
                    "task": task,
                    "target": f"{part['metric'].iloc[0]} {'<=' if lower else '>='} {target:.3g}",
                    "encoder": encoder,
                    "reached": f"{len(times)}/{len(reached)}",
                    "seconds": round(float(np.median(times)), 1) if times else None,
                    "steps": int(np.median([r["step"] for r in reached if r is not None])) if times else None,
                }
            )
    return pd.DataFrame(rows)


def _training_section(runs: pd.DataFrame, curves: pd.DataFrame, order, fig_dir) -> Section:
    s = Section("Training: convergence and learning curves")
    judged = runs.dropna(subset=["patience"])
    patience = int(judged["patience"].mode().iloc[0]) if not judged.empty else Rule.patience
    tolerance = float(judged["tolerance"].mode().iloc[0]) if judged["tolerance"].notna().any() else Rule.tolerance
    counts = runs["convergence"].fillna("not recorded").value_counts()
    s.text(
        f"Every run is judged by one rule (bench.convergence): {Rule(patience, tolerance).describe()}. Training stops "
        f"as soon as a run has converged. Of {len(runs)} runs: "
        + ", ".join(f"{n} {status}" for status, n in counts.items())
        + ". A claim is judged only on converged runs; the runs behind it that are not are named in its evidence."
    )
    table = (
        runs.groupby(["suite", "task", "encoder"], sort=False)
        .agg(
            converged=("convergence", _converged_share),
            steps=("steps", "median"),
            best_step=("best_step", "median"),
            cap=("cap", "first"),
            lr=("lr", "first"),
            recipe=("recipe", "first"),
            train_s=("train_s", "median"),
        )
        .reset_index()
        .round({"steps": 0, "best_step": 0, "train_s": 1})
    )
    table["order"] = table["encoder"].map({e: i for i, e in enumerate(order)})
    table = table.sort_values(["suite", "task", "order"], kind="stable").drop(columns="order")
    s.table(
        table,
        "runs converged per task and encoder; median steps trained, best (selected) step and seconds; the peak "
        "learning rate and where it came from (shared: one for every family; tuned: the family's own, chosen on "
        "validation by `python -m bench.recipes`)",
    )
    stuck = runs[runs["convergence"] != CONVERGED]
    if not stuck.empty:
        s.details(f"The {len(stuck)} runs that did not converge").table(
            stuck[["suite", "task", "encoder", "seed", "convergence", "steps", "why"]].fillna("not recorded")
        )
    if not curves.empty and curves["seconds"].notna().any():
        s.figure(
            figures.save(figures.learning_curves(curves.dropna(subset=["seconds"]), order), fig_dir, "learning"),
            "Validation metric against training seconds on this machine, one line per seed: which encoder "
            "gets there first.",
        )
        s.table(
            _time_to_target(curves.dropna(subset=["seconds"]), order),
            f"time to reach {TARGET:.0%} of the best encoder's final validation metric (median over the seeds "
            "that reached it)",
        )
    return s


def _pretrain_section(pre, curves, order, fig_dir) -> Section:
    s = Section("Two-stage training")
    s.text(
        "Each family is pre-trained on the same unlabelled sentences, in the same order, up to the same token "
        "counts (its natural objective: masked tokens, the next token, or ELMo's two language models), then "
        "fine-tuned on each task with the same steps and settings as its from-scratch twin (tokens = 0), which has "
        "the same architecture, vocabulary and seed. Error bars are 95% t intervals over seeds; the dashed line is "
        "the majority-class (or copy-the-source) baseline."
    )
    s.figure(
        figures.save(figures.pretrain_gain(pre, order), fig_dir, "pretrain_gain"),
        "Fine-tuned test metric against pre-training tokens.",
    )
    table = (
        pre.groupby(["task", "encoder", "objective", "tokens"], sort=False)
        .agg(metric=("metric", "first"), seeds=("seed", "nunique"))
        .reset_index()
    )
    table["test"] = _ci_by_metric(pre, ["task", "encoder", "objective", "tokens"]).to_numpy()
    wide = table.pivot_table(
        index=["task", "metric", "encoder", "objective"], columns="tokens", values="test", aggfunc="first"
    )
    wide.columns = ["scratch" if c == 0 else f"{c:,} tokens" for c in wide.columns]
    wide = wide.reset_index()
    wide["order"] = wide["encoder"].map({e: i for i, e in enumerate(order)})
    s.table(
        wide.sort_values(["task", "order"]).drop(columns="order"),
        "test metric by pre-training tokens, mean [95% CI] over seeds",
    )
    top = pre["tokens"].max()
    gains = []
    for (task, encoder, objective), g in pre.groupby(["task", "encoder", "objective"], sort=False):
        by_seed = g.pivot_table(index="seed", columns="tokens", values="value")
        if 0 in by_seed and top in by_seed and top:
            gains.append(
                {
                    "task": task,
                    "encoder": encoder,
                    "objective": objective,
                    "gain": _ci_text((by_seed[top] - by_seed[0]).dropna()),
                }
            )
    if gains:
        s.table(pd.DataFrame(gains), f"gain of pre-training ({top:,} tokens) over scratch, same seed, mean [95% CI]")
    for column, what in (("distance", "cue distance"), ("distractors", "number of distractor cues")):
        cols = sorted([c for c in pre if str(c).startswith(f"{column}=")], key=lambda c: int(c.split("=")[1]))
        if cols:
            probe = pre.dropna(subset=cols, how="all")
            table = (
                probe.groupby(["task", "encoder", "objective", "tokens"])[cols].agg(_ci_of("accuracy")).reset_index()
            )
            s.table(table, f"sense probe: test accuracy by {what}, mean [95% CI] (chance 0.5 once the word is read)")
    if not curves.empty:
        s.figure(
            figures.save(figures.pretrain_loss(curves, order), fig_dir, "pretrain_loss"),
            "Pre-training loss against tokens seen.",
        )
        cost = curves.groupby(["encoder", "objective"]).agg(
            tokens=("tokens_seen", "max"),
            flops=("flops", "mean"),
            seconds=("train_s", "mean"),
            seeds=("seed", "nunique"),
        )
        cost["TFLOP"] = (cost.pop("flops") / 1e12).round(3)
        s.table(
            cost.reset_index().round(1), "pre-training cost per run: tokens seen, estimated training FLOPs, wall time"
        )
    return s


def _tuning_section(records: pd.DataFrame) -> Section | None:
    """Per encoder: the tuning budget, and the trial with the best mean validation score."""
    rows = []
    for _, r in records[records["status"] == "ok"].iterrows():
        tune = (r["config"] or {}).get("tune") or {}
        if not tune.get("trials"):
            continue
        metric = r["info"].get("selection_metric")
        values = {(m["setting"], m["metric"]): m["value"] for m in r["metrics"]}
        rows.append(
            {
                "encoder": r["encoder"],
                "trial": str(Path(r["path"]).parent.parent.name),
                "task": r["task"],
                "seed": r["seed"],
                "validation": values.get(("validation", metric)),
                "test": values.get(("test", metric)),
                "metric": metric,
                "trials": tune["trials"],
                "space": tune.get("space"),
                "settings": ", ".join(
                    o for o in r["env"].get("overrides", []) if not o.startswith(("suite=", "model="))
                ),
            }
        )
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    s = Section("Tuning")
    s.text(
        "Each encoder was tuned with the same number of trials (Optuna, TPE, seeded) over its own search space; "
        "trials are compared on the mean validation metric of the tuning tasks over their seeds, and the test "
        "metric of the chosen trial is shown beside it, mean [95% CI] over seeds of the mean over tasks. "
        "Test never enters the choice."
    )
    best = []
    for encoder, part in frame.groupby("encoder"):
        trials = part.groupby("trial").agg(validation=("validation", "mean"), settings=("settings", "first"))
        chosen = trials["validation"].idxmax()
        per_seed = part[part["trial"] == chosen].groupby("seed")[["validation", "test"]].mean()
        best.append(
            {
                "encoder": encoder,
                "trials run": len(trials),
                "trial budget": int(part["trials"].iloc[0]),
                "search space": part["space"].iloc[0],
                "chosen settings": trials.loc[chosen, "settings"],
                "validation": _ci_text(per_seed["validation"], part["metric"].iloc[0]),
                "test": _ci_text(per_seed["test"], part["metric"].iloc[0]),
                "seeds": len(per_seed),
            }
        )
    s.table(pd.DataFrame(best), "the chosen trial of each encoder (mean over the tuning tasks)")
    return s


def _recipes_section(records: pd.DataFrame) -> Section | None:
    """The equal-tuning grid (experiment=tune) where its trials are among the records: every trial's validation
    score per encoder and suite, the chosen one marked, test beside it (never used for the choice)."""
    from bench import recipes

    runs = recipes.trials(records)
    if runs.empty:
        return None
    s = Section("Equal tuning: the grid")
    try:
        table = recipes.choose(runs)
    except UserError as err:
        s.text(str(err))
        return s
    tried = "; ".join(  # from the trials themselves: a grid extended by a later sweep shows its every point
        f"{suite}: "
        + ", ".join(f"{k} in {{{', '.join(f'{v:g}' for v in sorted(set(part[k])))}}}" for k in recipes.KNOBS)
        + f", {part['seed'].nunique()} seed(s) per point"
        for suite, part in runs.groupby("suite")
    )
    s.text(
        f"Every family was trained at each point of the same grid per suite ({tried}). A point's score is each "
        "task's validation metric relative to the best point's on that task, averaged over tasks and seeds; the "
        "chosen point (per encoder and suite) has the best score. Test metrics are shown beside it and never "
        "entered the choice. `python -m bench.recipes DIR --write conf/recipe/tuned.yaml` writes the choice; "
        "`recipe=tuned` runs with it."
    )
    s.table(table.round(4), "every trial; chosen: the family's recipe for that suite")
    return s


def _answer_section(records, speed, acc, order, fig_dir, suites, run_dir) -> Section:
    """The first screen: the state of the evidence, then which encoder to pick per device and task."""
    s = Section("Which encoder?")
    line, banner = answer.evidence_status(records, suites)
    if banner:
        s.banner(banner)
    s.text(line)
    chosen = answer.picks(acc, order)
    for device, on_device in chosen.groupby("device", sort=False) if not chosen.empty else []:
        for budget, part in on_device.groupby(on_device["budget"].fillna(-1), sort=False):
            size = f"{budget / 1e6:.3g}M-parameter encoders" if budget != -1 else "encoders"
            table = part.drop(columns=["device", "budget", "source", "task_name"]).dropna(axis=1, how="all")
            s.table(
                table,
                f"on {device}, {size}, {part['source'].iloc[0]} data: the pick per task, and each encoder's "
                "test metric, mean [95% CI] over seeds · training throughput in those runs",
            )
        stem = "answer_" + re.sub(r"[^a-z0-9]+", "_", device.lower()).strip("_")
        runs = acc[acc["device"].fillna("unknown device") == device]
        ringed = {
            t: [e for e in order if frames.name_of(e) == pick]
            for t, pick in zip(on_device["task_name"], on_device["pick"])
        }
        s.figure(
            figures.save(figures.pareto(runs, order, ringed), fig_dir, stem),
            f"Test metric (95% interval) against training throughput per task on {device}; the pick is ringed, "
            "the grey line joins encoders no other beats on both.",
        )
    quality_devices = set(chosen["device"]) if not chosen.empty else set()
    for device, part in claims_mod.split_by(speed, "device"):
        glance = answer.speed_glance(part, order)
        if device and quality_devices and device not in quality_devices:
            s.text(
                f"On {device} only speed was measured: the quality picks above come from "
                f"{', '.join(sorted(quality_devices))}; where they are tied, the speed below decides on {device}."
            )
        if not glance.empty:
            s.table(
                glance,
                f"speed on {device or 'this device'} at the shortest and longest T measured "
                "(the comparison measured over the most T; full tables below)",
            )
    rule = s.details("How the pick is made, and where these numbers come from")
    rule.text(answer.PICK_RULE)
    rule.text(
        f"Built from the records under {run_dir}; encoders: {', '.join(order) or 'none'}; suites: "
        f"{', '.join(sorted(suites)) or 'none'}. Every number on this page comes from those records; "
        "`python -m bench.report DIR` rebuilds it."
    )
    if records.attrs.get("duplicates"):
        rule.text(
            f"{records.attrs['duplicates']} more record files repeated a measurement already read (the same "
            "key in several job folders, as older trees could hold) and were read once: each measurement "
            "counts once in every table and interval."
        )
    return s


def _claims_section(verdicts: pd.DataFrame) -> Section:
    """The claims, one line each; the full evidence, conditions and rules behind a fold."""
    s = Section("Claims of the published comparison")
    s.text(
        "Each claim is judged by the rule given for it, on this run's records only; 'inconclusive' means "
        "the intervals do not separate at this sample size or the evidence is mixed."
    )
    s.table(verdicts[["verdict", "claim", "headline"]].rename(columns={"headline": "evidence, in short"}))
    more = s.details("Full evidence and conditions of each verdict")
    more.table(verdicts[["claim", "evidence", "conditions"]])
    # a claim judged on several devices or comparisons: its rule once
    judged_on = verdicts["judged_on"].fillna("") if "judged_on" in verdicts else pd.Series("", index=verdicts.index)
    rules = (
        verdicts[["claim", "rule"]]
        .assign(claim=[c.removesuffix(j) if j else c for c, j in zip(verdicts["claim"], judged_on)])
        .drop_duplicates("claim")
    )
    s.details("The rule behind each verdict").table(rules)
    return s


def _reproductions_section(dist: pd.DataFrame, attract: pd.DataFrame) -> Section:
    s = Section("Published results, reproduced at CPU scale")
    s.text(
        "Each row is a published finding beside ours, with the criterion (and tolerance) under which our run "
        "reproduces it. Our probes are smaller and shorter than the papers', so most criteria test the shape "
        "of the finding; a failed reproduction is reported with its numbers."
    )
    s.table(reproductions.all_reproductions(dist, attract)[["verdict", "study", "paper", "criterion", "ours"]])
    return s


def build_report(run_dir: Path, out_dir: Path | None = None) -> dict[str, Path]:
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir
    fig_dir = out_dir / "figures"
    records = load_records(run_dir)
    order = frames.encoder_order(records["encoder"].dropna()) if len(records) else []
    speed, latency, scaling, gemm, routes, breakdown = (
        frames.speed(records),
        frames.latency(records),
        frames.scaling(records),
        frames.gemm(records),
        frames.routes(records),
        frames.breakdown(records),
    )
    dist, acc, failed = frames.distance(records), frames.accuracy(records), frames.failures(records)
    pre, curves, attract = frames.pretrain(records), frames.pretrain_curves(records), frames.attractors(records)
    runs, learning = frames.runs(records), frames.curves(records)
    grid = frames.speed(records, grid=True)
    runtimes, inter = frames.runtimes(records), frames.interleaved(records)
    frames.label_sizes(
        inter,
        speed,
        grid,
        latency,
        scaling,
        gemm,
        routes,
        breakdown,
        runtimes,
        dist,
        acc,
        pre,
        curves,
        attract,
        runs,
        learning,
    )
    order = (
        frames.encoder_order(set().union(*(set(t["encoder"]) for t in (speed, dist, acc, pre) if not t.empty))) or order
    )

    verdicts = claims_mod.all_claims(
        *(claims_mod.unsized(t) for t in (speed, dist, acc, pre)),
        inter=claims_mod.unsized(inter),
        runtimes=claims_mod.unsized(runtimes),
    )
    suites = set(records["suite"]) if len(records) else set()
    first = _answer_section(records, speed, acc, order, fig_dir, suites, run_dir)
    claims = _claims_section(verdicts)
    verdicts = verdicts.drop(columns=["judged_on", "headline"], errors="ignore")
    env = Section("Environment")
    env.table(pd.DataFrame([{"what": k, "value": "; ".join(v)} for k, v in frames.environment(records).items()]))

    sections = [first, claims, env]
    for device, part in claims_mod.split_by(
        speed, "device"
    ):  # one speed section per device: never merged across devices
        if not part.empty:
            by_kind = {
                "latency": latency,
                "scaling": scaling,
                "gemm": gemm,
                "routes": routes,
                "grid": grid,
                "interleaved": inter,
            }
            tables = {
                k: _on_device(t, device) for k, t in {**by_kind, "breakdown": breakdown, "runtimes": runtimes}.items()
            }
            sections.append(_speed_section(part, tables, order, fig_dir, device))
    if not dist.empty:
        sections.append(_distance_section(dist, attract, order, fig_dir))
        sections.append(_reproductions_section(claims_mod.unsized(dist), claims_mod.unsized(attract)))
    if not acc.empty:
        sections.append(_accuracy_section(acc, order, fig_dir))
    if not runs.empty:
        sections.append(_training_section(runs, learning, order, fig_dir))
    if not pre.empty:
        sections.append(_pretrain_section(pre, curves, order, fig_dir))
    for extra in (_tuning_section(records), _recipes_section(records)):
        if extra is not None:
            sections.append(extra)
    fails = Section("Failed runs")
    if failed.empty:
        fails.text("None.")
    else:
        fails.table(failed, "runs that ended in an error; rerun into the same folder to retry them")
    sections.append(fails)

    out_dir.mkdir(parents=True, exist_ok=True)
    md, page = out_dir / "report.md", out_dir / "report.html"
    md.write_text(to_markdown(TITLE, sections, out_dir))
    page.write_text(to_html(TITLE, sections))
    verdicts.to_csv(out_dir / "claims.csv", index=False)
    return {"md": md, "html": page, "figures": fig_dir, "claims": out_dir / "claims.csv"}
