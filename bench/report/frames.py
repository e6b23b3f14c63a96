"""Tidy tables from stored records: the only input of the report."""

from __future__ import annotations

import pandas as pd

from bench import roles
from bench.records import compiled, tuning_trial


def name_of(label: str) -> str:
    """'lstm (0.3M)' -> 'lstm': the encoder a sized label (``label_sizes``) belongs to."""
    return label.split(" (")[0]


def _model(record) -> dict:
    return (record["config"].get("model") or {}) if isinstance(record["config"], dict) else {}


def _who(record) -> dict:
    """The encoder of a record: its label; its architecture ``family`` as declared by the encoder (read from
    this checkout's ``models/`` for records written before they carried it); and whether it is a ``preset``, a
    fixed-size configuration with a label of its own (transformer_base), rather than sized to the budget. A
    labelled variant that is sized to the budget (cnn_wide: the CNN with a longer receptive field) is no
    preset: it stands for its family in the claims beside the default encoder."""
    model = record["config"].get("model") or {} if isinstance(record["config"], dict) else {}
    family = record.get("family")
    if not isinstance(family, str):
        family = roles.family_of(model.get("name") or record["encoder"])
    sized = model.get("param_budget") is not None and model.get("d_model") is None
    return {"encoder": record["encoder"], "family": family, "preset": bool(model.get("label")) and not sized}


def sized(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of encoders sized to their comparison's budget: fixed-size presets (``preset``, e.g.
    transformer_base) left out, since the claims about families compare encoders of equal size."""
    return table[~table["preset"].fillna(False).astype(bool)] if "preset" in table else table


def encoder_order(names) -> list[str]:
    """One order for every table and figure (``bench.roles``: the published comparison's three first, then
    by family), each encoder's sizes together, smallest first."""

    def key(label: str):
        name, _, size = label.partition(" (")
        return roles.rank(name), float(size.rstrip("M)") or 0) if size else 0.0

    return sorted(set(names), key=key)


def _metrics(record) -> dict:
    return {(m.get("setting"), m["metric"]): m["value"] for m in record["metrics"]}


SPEED_SUITES = ("speed", "speed_detail")  # the comparison's dtype, and the others: the same kinds of measurement


def _ok(records: pd.DataFrame, suite: str | tuple[str, ...]) -> pd.DataFrame:
    """The suite's (or suites') finished measurements; trials of a tuning grid are shown in their own section
    (bench.recipes)."""
    suites = (suite,) if isinstance(suite, str) else suite
    keep = records["suite"].isin(suites) & (records["status"] == "ok") & ~records["config"].map(tuning_trial)
    return records[keep]


def budget(record) -> int | None:
    """The comparison a record belongs to: the parameter budget every encoder of its run was sized to."""
    config = record["config"] if isinstance(record["config"], dict) else {}
    return config.get("param_budget")


def label_sizes(*tables: pd.DataFrame) -> None:
    """Where one encoder was measured at several budgets, name each 'encoder (size)' so that
    tables and figures never merge them; ``name`` keeps the bare name for the claims."""
    pairs = (
        pd.concat([t[["encoder", "budget"]] for t in tables if not t.empty])
        if any(not t.empty for t in tables)
        else pd.DataFrame(columns=["encoder", "budget"])
    )
    several = {e for e, g in pairs.groupby("encoder") if g["budget"].nunique(dropna=False) > 1}
    for table in tables:
        if table.empty:
            continue
        table["name"] = table["encoder"]
        table["encoder"] = [
            f"{e} ({b / 1e6:.3g}M)" if e in several and pd.notna(b) else e
            for e, b in zip(table["encoder"], table["budget"])
        ]


def _dtype(record) -> str:
    """The dtype, marked '+compile' where torch.compile ran, so that compiled and eager numbers never merge
    (the claims, on 'fp32', judge eager measurements only)."""
    return record["info"]["dtype"] + ("+compile" if compiled(record["config"]) else "")


def speed(records: pd.DataFrame, grid: bool = False) -> pd.DataFrame:
    """One row per throughput measurement: encoder, dtype, T, B, the metrics, and the timed calls; at
    speed.batch_size only, or with ``grid`` the batch-size grid's measurements too."""
    rows = []
    for _, r in _ok(records, SPEED_SUITES).iterrows():
        if r["task"] != "throughput" or (r["info"].get("grid") and not grid):
            continue
        info = r["info"]
        row = {
            **_who(r),
            "budget": budget(r),
            "dtype": _dtype(r),
            "T": int(info["T"]),
            "B": int(info["B"]),
            "params": info.get("params"),
            "device": r["env"].get("device_name"),
            "infer_times_s": info.get("infer_times_s"),
            "train_times_s": info.get("train_times_s"),
        }
        row.update({metric: value for (_, metric), value in _metrics(r).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def interleaved(records: pd.DataFrame) -> pd.DataFrame:
    """One row per encoder, T and mode of each side-by-side measurement (speed suite, unit "interleaved"): the
    encoder's seconds per call in each round (``times``, one per round, paired across encoders by position)."""
    rows = []
    for _, r in _ok(records, SPEED_SUITES).iterrows():
        if r["task"] != "interleaved":
            continue
        info = r["info"]
        for mode, by_T in info["times_s"].items():
            for T, by_name in by_T.items():
                for name, times in by_name.items():
                    rows.append(
                        {
                            "key": r["key"],
                            "encoder": name,
                            "encoders": tuple(info["encoders"]),
                            "budget": budget(r),
                            "dtype": _dtype(r),
                            "device": r["env"].get("device_name"),
                            "mode": mode,
                            "T": int(T),
                            "B": int(info["B"][str(T)]),
                            "times": list(times),
                            "tokens_per_s": int(info["B"][str(T)]) * int(T) / float(pd.Series(times).median()),
                        }
                    )
    return pd.DataFrame(rows)


def latency(records: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in _ok(records, SPEED_SUITES).iterrows():
        if r["task"] == "latency":
            m = _metrics(r)
            T = r["info"]["T"]
            rows.append(
                {
                    **_who(r),
                    "budget": budget(r),
                    "dtype": _dtype(r),
                    "T": int(T),
                    "p50_ms": m[(T, "p50_ms")],
                    "p90_ms": m[(T, "p90_ms")],
                    "device": r["env"].get("device_name"),
                }
            )
    return pd.DataFrame(rows)


def scaling(records: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in _ok(records, SPEED_SUITES).iterrows():
        if r["task"] == "scaling":
            for m in r["metrics"]:
                rows.append(
                    {
                        **_who(r),
                        "budget": budget(r),
                        "dtype": _dtype(r),
                        "measure": m["metric"],
                        "exponent": m["value"],
                        "fitted on T": m["setting"],
                        "device": r["env"].get("device_name"),
                    }
                )
    return pd.DataFrame(rows)


def gemm(records: pd.DataFrame) -> pd.DataFrame:
    """One row per GEMM peak measured: the best rate (the denominator of utilisation), the path and kernel library
    that set it, the best rate of every path, and the cores' theoretical peak with its derivation (records written
    before paths were measured have the best rate alone)."""
    rows = []
    for _, r in _ok(records, SPEED_SUITES).iterrows():
        if r["task"] != "gemm_peak":
            continue
        info, m = r["info"], {row["metric"]: row["value"] for row in r["metrics"]}
        theory = info.get("theoretical") or {}
        rows.append(
            {
                **_who(r),
                "budget": budget(r),
                "dtype": info["dtype"],
                "GFLOP/s": m["gemm_peak_flops"] / 1e9,
                "path": info.get("path"),
                "library": info.get("library"),
                "paths": {k: v["flops"] / 1e9 for k, v in (info.get("paths") or {}).items() if "flops" in v},
                "theoretical GFLOP/s": (theory.get("flops") or float("nan")) / 1e9,
                "derivation": theory.get("derivation"),
                "device": r["env"].get("device_name"),
            }
        )
    return pd.DataFrame(rows)


def routes(records: pd.DataFrame) -> pd.DataFrame:
    """One row per encoder, dtype and linear-layer shape routed at inference (speed.linear_path=auto): the path
    chosen and its rate over torch's own dispatch at that shape, from the throughput records at speed.batch_size."""
    rows = []
    for _, r in _ok(records, SPEED_SUITES).iterrows():
        info = r["info"]
        if r["task"] != "throughput" or info.get("grid"):
            continue
        for shape, choice in (info.get("routes") or {}).items():
            rates = choice["gflops"]
            rows.append(
                {
                    **_who(r),
                    "budget": budget(r),
                    "dtype": _dtype(r),
                    "T": int(info["T"]),
                    "shape": shape,
                    "path": choice["path"],
                    "gain": rates[choice["path"]] / rates["linear"] if rates.get("linear") else float("nan"),
                    "device": r["env"].get("device_name"),
                }
            )
    return pd.DataFrame(rows)


def breakdown(records: pd.DataFrame) -> pd.DataFrame:
    """One row per profiled inference (suite=speed_detail) and category of operator: milliseconds per call, its
    share of the profiled call, and the kernel library that ran most of it."""
    rows = []
    for _, r in _ok(records, "speed_detail").iterrows():
        if r["task"] not in ("breakdown", None):  # None: records from before the task was written down
            continue
        info = r["info"]
        total = sum(m["value"] for m in r["metrics"]) or 1.0
        for m in r["metrics"]:
            libraries = (info.get("ms_by_library") or {}).get(m["setting"], {})
            rows.append(
                {
                    **_who(r),
                    "budget": budget(r),
                    "dtype": _dtype(r),
                    "T": int(info["T"]),
                    "B": int(info["B"]),
                    "category": m["setting"],
                    "ms": m["value"],
                    "share": m["value"] / total,
                    "library": max(libraries, key=libraries.get) if libraries else None,
                    "device": r["env"].get("device_name"),
                }
            )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    keys = ["encoder", "family", "preset", "budget", "dtype", "T", "B", "device", "category"]
    # profiles of one configuration under other settings (e.g. speed.min_run_time): their mean
    return (
        frame.groupby(keys, dropna=False, sort=False)
        .agg(ms=("ms", "mean"), share=("share", "mean"), library=("library", "first"))
        .reset_index()
    )


def runtimes(records: pd.DataFrame) -> pd.DataFrame:
    """One row per encoder, T and runtime of speed.runtime (suite=speed_detail, fp32 inference): its status, the
    times of its interleaved calls, tokens/s, its largest difference from eager's output, and how it ran."""
    rows = []
    for _, r in _ok(records, "speed_detail").iterrows():
        if r["task"] != "runtime":
            continue
        info = r["info"]
        for name, run in info["runtimes"].items():
            rows.append(
                {
                    **_who(r),
                    "budget": budget(r),
                    "dtype": info["dtype"],
                    "T": int(info["T"]),
                    "B": int(info["B"]),
                    "params": info.get("params"),
                    "runtime": name,
                    "status": run["status"],
                    "reason": run.get("reason"),
                    "times": run.get("times"),
                    "tokens_per_s": run.get("tokens_per_s"),
                    "max_abs_error": run.get("max_abs_error"),
                    "tolerance": run.get("tolerance"),
                    "facts": run.get("facts") or {},
                    "device": r["env"].get("device_name"),
                }
            )
    return pd.DataFrame(rows)


def distance(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (probe, encoder, seed, distance): the metric, chance and gradient reach."""
    rows = []
    for _, r in _ok(records, "distance").iterrows():
        info, m = r["info"], _metrics(r)
        metric = info["metric"]
        for d in info["distances"]:
            if (d, metric) not in m:
                continue
            rows.append(
                {
                    "probe": r["task"],
                    **_who(r),
                    "budget": budget(r),
                    "seed": r["seed"],
                    "distance": int(d),
                    "metric": metric,
                    "value": m[(d, metric)],
                    "chance": m.get((d, "chance")),
                    "grad_reach": m.get((d, "grad_reach")),
                    "receptive_field": info.get("receptive_field"),
                    "causal": info.get("causal"),
                    "loss": m.get((d, "loss")),
                    "chance_loss": m.get((d, "chance_loss")),
                    "effective_distance": m.get(("all", "effective_distance")),
                    "encoder_params": info.get("encoder_params"),
                    "params": info.get("params"),
                    "convergence": info.get("convergence"),
                    "steps": info.get("steps"),
                    "selective": _model(r).get("selective"),  # a state-space encoder's selection (ssm_lti: False)
                }
            )
    return pd.DataFrame(rows)


def attractors(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (probe, encoder, seed, number of attractors): the score over all distances."""
    rows = []
    for _, r in _ok(records, "distance").iterrows():
        metric = r["info"]["metric"]
        for (setting, name), value in _metrics(r).items():
            if name == metric and str(setting).startswith("attractors="):
                rows.append(
                    {
                        "probe": r["task"],
                        **_who(r),
                        "budget": budget(r),
                        "seed": r["seed"],
                        "attractors": int(str(setting).split("=")[1]),
                        "metric": metric,
                        "value": value,
                    }
                )
    return pd.DataFrame(rows)


def accuracy(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, encoder, seed): the selection metric on test, its baseline, and cost."""
    rows = []
    for _, r in _ok(records, "accuracy").iterrows():
        info, m = r["info"], _metrics(r)
        metric = info["selection_metric"]
        row = {
            "task": r["task"],
            "type": info["type"],
            **_who(r),
            "budget": budget(r),
            "seed": r["seed"],
            "metric": metric,
            "value": m.get(("test", metric)),
            "baseline": m.get(("test", f"baseline_{metric}")),
            "validation": m.get(("validation", metric)),
            "train_tokens_per_s": info.get("train_tokens_per_s"),
            "encoder_params": info.get("encoder_params"),
            "params": info.get("params"),
            "train_s": info.get("train_s"),
            "steps": info.get("steps"),
            "best_step": info.get("best_step"),
            "convergence": info.get("convergence"),
            "source": info.get("source"),
            "device": r["env"].get("device_name"),
        }
        for (setting, name), value in m.items():
            if setting == "test" and not name.startswith("baseline_") and name != metric:
                row[name] = value
        rows.append(row)
    return pd.DataFrame(rows)


def failures(records: pd.DataFrame) -> pd.DataFrame:
    failed = records[records["status"] != "ok"]
    return failed[["suite", "encoder", "task", "seed", "reason"]].reset_index(drop=True)


def environment(records: pd.DataFrame) -> dict:
    """What the records were measured on; several values where they differ."""
    envs = [e for e in records["env"] if isinstance(e, dict)]

    def values(get):
        return sorted({str(v) for v in (get(e) for e in envs) if v not in (None, "")})

    return {
        "device": values(lambda e: f"{e.get('device')}: {e.get('device_name')}"),
        "matrix units": values(lambda e: ", ".join(e.get("matrix_units") or []) or "none detected"),
        "threads": values(lambda e: e.get("threads")),
        "torch": values(lambda e: e.get("versions", {}).get("torch")),
        "python": values(lambda e: e.get("versions", {}).get("python")),
        "libraries": values(
            lambda e: ", ".join(
                f"{k} {v}" for k, v in sorted(e.get("versions", {}).items()) if k not in ("torch", "python")
            )
        ),
        "git commit": values(
            lambda e: f"{(e.get('git_commit') or 'unknown')[:10]}{' (dirty)' if e.get('git_dirty') else ''}"
        ),
        "host": values(lambda e: e.get("hostname")),
        "command": values(lambda e: e.get("command")),
        "measured": [f"{records['started'].min()} to {records['ended'].max()}"] if len(records) else [],
    }


def pretrain(records: pd.DataFrame) -> pd.DataFrame:
    """One row per fine-tuning run of the pretrain suite: task, encoder, objective, pre-training tokens
    (0: from scratch), seed, the test metric, its baseline and a score from 0 (baseline) to 1 (perfect)."""
    rows = []
    for _, r in _ok(records, "pretrain").iterrows():
        if r["task"] == "pretrain":
            continue
        info, m = r["info"], _metrics(r)
        metric = info["selection_metric"]
        value, base = m.get(("test", metric)), m.get(("test", f"baseline_{metric}"))
        top = 100.0 if metric in ("bleu", "chrf") else 1.0
        score = (value - base) / (top - base) if value is not None and base is not None and top != base else None
        rows.append(
            {
                "task": r["task"],
                "type": info["type"],
                **_who(r),
                "budget": budget(r),
                "seed": r["seed"],
                "objective": info["objective"],
                "tokens": int(info["pretrain_tokens"]),
                "metric": metric,
                "value": value,
                "baseline": base,
                "score": score,
                "pretrain_flops": (info.get("checkpoint") or {}).get("flops"),
                "encoder_params": info.get("encoder_params"),
                **{setting: v for (setting, _), v in m.items() if setting.startswith(("distance=", "distractors="))},
            }
        )
    return pd.DataFrame(rows)


def pretrain_curves(records: pd.DataFrame) -> pd.DataFrame:
    """Pre-training loss against tokens seen, one row per logged point."""
    rows = []
    for _, r in _ok(records, "pretrain").iterrows():
        if r["task"] != "pretrain":
            continue
        info = r["info"]
        for point in info["curve"]:
            rows.append(
                {
                    **_who(r),
                    "budget": budget(r),
                    "objective": info["objective"],
                    "seed": r["seed"],
                    "tokens": point["tokens"],
                    "loss": point["loss"],
                    "heldout_loss": point.get("cross_entropy"),  # on held-out corpus sentences (older records: none)
                    "flops": info["flops"],
                    "tokens_seen": info["tokens_seen"],
                    "train_s": info["train_s"],
                    "encoder_params": info.get("encoder_params"),
                }
            )
    return pd.DataFrame(rows)


TRAINED = ("distance", "accuracy")


def runs(records: pd.DataFrame) -> pd.DataFrame:
    """One row per training run of the distance and accuracy suites: how it ended (bench.convergence), its
    step cap and the settings of the rule that judged it."""
    rows = []
    for suite in TRAINED:
        for _, r in _ok(records, suite).iterrows():
            info = r["info"]
            config = r["config"] if isinstance(r["config"], dict) else {}
            task_train = (((config.get("tasks") or {}).get(r["task"]) or {}).get("train")) or {}
            train = {**(config.get("train") or {}), **task_train}  # a task's own settings over the suite's
            rows.append(
                {
                    "suite": suite,
                    "task": r["task"],
                    **_who(r),
                    "budget": budget(r),
                    "seed": r["seed"],
                    "convergence": info.get("convergence"),
                    "why": info.get("convergence_why"),
                    "steps": info.get("steps"),
                    "best_step": info.get("best_step"),
                    "cap": train.get("steps"),
                    "lr": train.get("lr"),
                    "warmup": train.get("warmup"),
                    "recipe": "tuned"
                    if (((r["config"].get("recipes") or {}).get(_model(r).get("name")) or {}).get(suite))
                    else "shared",
                    "patience": train.get("patience"),
                    "tolerance": train.get("tolerance"),
                    "train_s": info.get("train_s"),
                }
            )
    return pd.DataFrame(rows)


def curves(records: pd.DataFrame) -> pd.DataFrame:
    """Validation curves of the distance and accuracy runs: one row per evaluation, with the steps, seconds
    and (where counted) training tokens spent by then."""
    rows = []
    for suite in TRAINED:
        for _, r in _ok(records, suite).iterrows():
            info = r["info"]
            metric = info.get("selection_metric") or info.get("metric")
            for point in info.get("curve") or []:
                if metric not in point:
                    continue
                rows.append(
                    {
                        "suite": suite,
                        "task": r["task"],
                        **_who(r),
                        "budget": budget(r),
                        "seed": r["seed"],
                        "metric": metric,
                        "step": point["step"],
                        "seconds": point.get("seconds"),
                        "tokens": point.get("tokens"),
                        "value": point[metric],
                    }
                )
    return pd.DataFrame(rows)
