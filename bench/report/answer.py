"""The report's first screen: which encoder to pick, per device and task, by a stated rule; and the
state of the evidence (how many runs, how many still improving when stopped, what was not measured)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.convergence import CONVERGED, STATUSES
from bench.report.frames import name_of
from bench.report.render import human
from bench.report.stats import RANGES, mean_ci, welch_diff

PICK_RULE = (
    "Per task, device and comparison (parameter budget, one table each): the best encoder has the "
    "highest mean test metric over seeds; another is tied with it when the 95% Welch interval of their "
    "difference includes 0; the pick is the fastest in training (tokens/s measured in those very runs) among "
    "the best and those tied with it. With one seed there is no interval: the pick is the highest mean, untested."
)

SMOKE_STEPS = 100  # a quality run trained for fewer steps than this shows that the pipeline works, nothing more


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _span(low, high) -> str:
    return f"{low}" if low == high else f"{low}-{high}"


def _widest_comparison(speed: pd.DataFrame) -> pd.DataFrame:
    """The comparison (parameter budget) measured over the most sequence lengths."""
    groups = [g for _, g in speed.groupby(speed["budget"].fillna(-1))]
    return max(groups, key=lambda g: (g["T"].nunique(), g["encoder"].nunique()))


def picks(acc: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """One row per (device, comparison, task): the pick, why, and each encoder's test metric [95% CI] and
    training speed. Encoders are named without their size; the comparison (``budget``) says their size."""
    rows = []
    if acc.empty:
        return pd.DataFrame()
    acc = acc.assign(
        device=acc["device"].fillna("unknown device"),
        budget=acc["budget"].fillna(-1),
        name=acc["name"] if "name" in acc else acc["encoder"],
    )
    names = list(dict.fromkeys(name_of(n) for n in order))
    for (device, budget, task), part in acc.groupby(["device", "budget", "task"], sort=False):
        metric = part["metric"].iloc[0]
        present = [e for e in names if e in set(part["name"])]
        values = {e: part[part["name"] == e]["value"].dropna().tolist() for e in present}
        speed = {e: part[part["name"] == e]["train_tokens_per_s"].mean() for e in present}
        means = {e: float(np.mean(v)) for e, v in values.items() if v}
        if not means:
            continue
        best = max(means, key=means.get)
        seeds = min(len(v) for v in values.values() if v)
        tied = [e for e in means if e != best and seeds >= 2 and not welch_diff(values[best], values[e]).excludes(0)]
        group = [e for e in present if e == best or e in tied]
        pick = max(group, key=lambda e: speed[e] if pd.notna(speed[e]) else -1)
        if seeds < 2:
            why = "highest mean, one seed: untested"
        elif len(group) == 1:
            why = "best; all others significantly lower"
        else:
            slower = [e for e in group if e != pick and pd.notna(speed[e])]
            vs = min(slower, key=lambda e: speed[pick] / speed[e]) if slower else None
            low, high = min(means[e] for e in group), max(means[e] for e in group)
            why = f"{_and(group)} tied at {human(low)}-{human(high)}"
            if vs is not None:
                why += f"; {pick} {speed[pick] / speed[vs]:.1f}x faster in training"
        if "convergence" in part:  # a pick that rests on runs still improving or diverged says so
            runs = part[part["name"].isin(group)]
            known = runs[runs["convergence"].notna()]
            off = known[known["convergence"] != CONVERGED].groupby("name").size()
            if len(off):
                counts = ", ".join(f"{e} {off[e]} of {int((known['name'] == e).sum())}" for e in group if e in off)
                why += f"; not converged: {counts} runs (their scores are lower bounds)"
        kind = part["type"].iloc[0]
        row = {
            "device": device,
            "budget": None if budget == -1 else budget,
            "source": part["source"].iloc[0],
            "task": task if task == kind else f"{task} ({kind})",
            "task_name": task,
            "metric": metric,
            "pick": pick,
            "why": why,
        }
        for e in present:
            ci = mean_ci(values[e], *RANGES.get(metric, (None, None)))
            text = str(ci) if ci.n > 1 else f"{human(ci.estimate)} (1 seed)"
            row[e] = f"{text} · {human(speed[e])} tok/s" if ci.n else "–"
        rows.append(row)
    return pd.DataFrame(rows)


def speed_glance(speed: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Per mode and dtype, at the shortest and longest T measured for all encoders of the widest comparison:
    the fastest encoder and every encoder's tokens/s with its factor behind the fastest."""
    if speed.empty:
        return pd.DataFrame()
    part = _widest_comparison(speed[~speed["dtype"].str.contains("+", regex=False)])  # eager only
    present = [e for e in order if e in set(part["encoder"])]
    rows = []
    for dtype in sorted(set(part["dtype"]), key=lambda d: (d != "fp32", d)):
        d = part[part["dtype"] == dtype]
        common = sorted(set.intersection(*(set(d[d["encoder"] == e]["T"]) for e in present))) if present else []
        for mode, label in (("infer", "inference"), ("train", "training step")):
            column = f"{mode}_tokens_per_s"
            if column not in d or not common:
                continue
            for T in dict.fromkeys([common[0], common[-1]]):
                at = d[d["T"] == T].set_index("encoder")[column]
                if at.isna().all():
                    continue
                fastest = at.idxmax()
                row = {"mode": label, "dtype": dtype, "T (tokens)": T, "fastest": fastest}
                for e in present:
                    row[f"{e} (tok/s)"] = f"{human(at.get(e))}" + (
                        "" if e == fastest else f" ({at[fastest] / at[e]:.2f}x slower)"
                    )
                rows.append(row)
    return pd.DataFrame(rows)


def evidence_status(records: pd.DataFrame, suites_present: set[str]) -> tuple[str, str | None]:
    """One line on the state of the evidence, and a banner where the run is a reduced (smoke) one."""
    if records.empty:
        return "No records.", None
    ok = records[records["status"] == "ok"]
    infos = [i for i in ok["info"] if isinstance(i, dict) and i.get("steps") and i.get("best_step") is not None]
    judged = [i["convergence"] for i in infos if i.get("convergence")]  # bench.convergence's verdict, where recorded
    unjudged = [i for i in infos if not i.get("convergence")]
    still = sum(int(i["best_step"]) >= int(i["steps"]) for i in unjudged)
    quality = ok[ok["suite"].isin(["accuracy", "distance", "pretrain"])]
    seeds = quality.groupby(["suite", "encoder", "task"])["seed"].nunique() if len(quality) else pd.Series(dtype=int)
    devices = sorted(
        {str(e.get("device_name")) for e in records["env"] if isinstance(e, dict) and e.get("device_name")}
    )
    missing = sorted({"speed", "distance", "accuracy", "pretrain"} - suites_present)
    line = (
        f"Evidence: {len(records)} records ({len(ok)} ok, {len(records) - len(ok)} failed) on {', '.join(devices) or 'an unknown device'}"
        + (f"; quality runs with {_span(seeds.min(), seeds.max())} seeds per encoder and task" if len(seeds) else "")
        + (
            f"; of {len(judged)} trained runs judged by the convergence rule, "
            + ", ".join(f"{judged.count(s)} {s}" for s in STATUSES if judged.count(s))
            + ("" if judged.count(CONVERGED) == len(judged) else " (the others' scores are lower bounds)")
            if judged
            else ""
        )
        + (
            f"; {still} of {len(unjudged)} trained runs{' from before the rule' if judged else ''} picked their last "
            "checkpoint, so were still improving when stopped (their scores are lower bounds)"
            if unjudged
            else ""
        )
        + (f"; not measured: {', '.join(missing)}" if missing else "")
        + "."
    )
    short = [int(i["steps"]) for i in infos if int(i["steps"]) < SMOKE_STEPS]
    smoke = any("experiment=smoke" in (e.get("overrides") or []) for e in records["env"] if isinstance(e, dict))
    banner = None
    if short or smoke:
        banner = (
            f"Reduced run: {len(short)} of {len(infos)} trained runs had fewer than {SMOKE_STEPS} training steps"
            f"{' (experiment=smoke)' if smoke else ''}. Its picks and verdicts show that the pipeline works; "
            "they are not evidence about the encoders."
        )
    return line, banner
