"""Equal tuning effort: every family's training recipe picked on validation from one grid.

``python -m bench experiment=tune`` trains every encoder on every task of the distance and accuracy
suites once per point of the same grid (the same trials for every family, ``tune.grid``). Then

    python -m bench.recipes RESULTS_DIR [--write conf/recipe/tuned.yaml]

picks, per encoder and suite, the grid point with the best validation score and writes the choice as a
recipe (``recipes.<encoder>.<suite>``), which the suites read through ``train.lr`` and
``train.warmup`` when ``recipe=tuned``. Test metrics never enter the choice: the score is each task's
validation metric relative to the best trial's on that task (for a lower-is-better metric, the best over
it), averaged over tasks and seeds, so no task outweighs another and no test label is read.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from bench.errors import UserError
from bench.metrics import LOWER_IS_BETTER
from bench.records import load_records, tuning_trial

KNOBS = ("lr", "warmup")  # the train settings a recipe sets


def trials(records: pd.DataFrame) -> pd.DataFrame:
    """One row per tuning run: encoder, suite, task, seed, the trial's settings, its validation metric and
    (shown beside the choice, never used for it) its test metric."""
    rows = []
    for _, r in records[records["status"] == "ok"].iterrows():
        config = r["config"] if isinstance(r["config"], dict) else {}
        if not tuning_trial(config):
            continue
        info = r["info"]
        metric = info.get("selection_metric") or info.get("metric")
        values = {(m["setting"], m["metric"]): m["value"] for m in r["metrics"]}
        validation = values.get(("validation", metric), (info.get("validation") or {}).get(metric))
        test = values.get(("test", metric), values.get(("all", metric)))
        train = config.get("train") or {}
        rows.append(
            {
                "encoder": (config.get("model") or {}).get("name", r["encoder"]),
                "suite": r["suite"],
                "task": r["task"],
                "seed": r["seed"],
                **{k: train.get(k) for k in KNOBS},
                "metric": metric,
                "validation": validation,
                "test": test,
                "convergence": info.get("convergence"),
            }
        )
    return pd.DataFrame(rows)


def choose(runs: pd.DataFrame) -> pd.DataFrame:
    """Per encoder and suite: every trial's validation score (and, for show, the same score from test) and whether
    it was chosen. Raises UserError when
    the families did not get the same trials (equal tuning effort is the point)."""
    if runs.empty:
        raise UserError("no tuning records here: run `python -m bench experiment=tune hydra.run.dir=DIR` first.")
    per_trial = runs.groupby(["suite", "encoder"])[list(KNOBS)].apply(lambda g: len(g.drop_duplicates()))
    for suite, counts in per_trial.groupby(level=0):
        if counts.nunique() > 1:
            detail = ", ".join(f"{e} {n}" for (_, e), n in counts.items())
            raise UserError(f"the {suite} trials are not equal across families ({detail}); rerun the tune sweep.")
    scored = runs.copy()
    scored["score"] = _relative(scored, "validation").fillna(0.0)  # 1 for the task's best trial, less for the others
    scored["test_score"] = _relative(scored, "test")  # the same from test: shown beside the choice, never used for it
    table = (
        scored.groupby(["suite", "encoder", *KNOBS])
        .agg(
            score=("score", "mean"),
            test_score=("test_score", "mean"),
            converged=("convergence", lambda s: f"{int((s == 'converged').sum())}/{len(s)}"),
            runs=("task", "size"),
        )
        .reset_index()
    )
    top = table.groupby(["suite", "encoder"])["score"].transform("max")
    table["chosen"] = False
    for _, part in table[table["score"] == top].groupby(["suite", "encoder"]):
        table.loc[part.sort_values(list(KNOBS)).index[0], "chosen"] = True  # a tie: the smallest rate
    table["at_edge"] = False  # a choice at the end of a swept range: the best may lie beyond it
    for _, part in table.groupby(["suite", "encoder"]):
        chosen = part[part["chosen"]].iloc[0]
        table.loc[chosen.name, "at_edge"] = any(
            part[k].nunique() > 1 and chosen[k] in (part[k].min(), part[k].max()) for k in KNOBS
        )
    return table


def _relative(runs: pd.DataFrame, column: str) -> pd.Series:
    """Each run's trial mean of ``column`` relative to the best trial's on its task (best / it for a lower-is-better
    metric), so that every task counts alike whatever its metric."""
    mean = runs.groupby(["suite", "encoder", "task", *KNOBS])[column].transform("mean")
    by_task = [runs["suite"], runs["encoder"], runs["task"]]
    high = mean / mean.groupby(by_task).transform("max").where(lambda v: v > 0)
    low = mean.groupby(by_task).transform("min") / mean.where(mean > 0)
    return low.where(runs["metric"].isin(LOWER_IS_BETTER), high)


def recipe_yaml(table: pd.DataFrame, source: str) -> str:
    """The chosen settings as conf/recipe/tuned.yaml, with the search that produced them in its comments."""
    lines = [
        "# @package _global_",
        f"# Written by `python -m bench.recipes {source}` from the tuning sweep there (`experiment=tune`): per encoder",
        "# and suite, the grid point with the best validation score (each task's validation metric relative to its",
        "# best trial's, averaged over tasks and seeds); test metrics never entered the choice. The search:",
    ]
    for (suite, encoder), part in table.groupby(["suite", "encoder"]):
        trials_text = "; ".join(
            f"{'*' if c else ''}lr={lr:g} warmup={w:g}: {s:.3f}"
            for lr, w, s, c in zip(part["lr"], part["warmup"], part["score"], part["chosen"])
        )
        lines.append(f"#   {suite} {encoder}: {trials_text}")
    edge = table[table["at_edge"]]
    if len(edge):
        where = ", ".join(f"{suite} {encoder}" for suite, encoder in zip(edge["suite"], edge["encoder"]))
        lines.append(f"# At the edge of the grid (the best may lie beyond it: extend the search there): {where}.")
    lines.append("recipes:")
    for encoder, part in table[table["chosen"]].groupby("encoder"):
        lines.append(f"  {encoder}:")
        for _, row in part.iterrows():
            knobs = ", ".join(f"{k}: {float(row[k]):g}" for k in KNOBS if not _missing(row[k]))
            lines.append(f"    {row['suite']}: {{{knobs}}}")
    return "\n".join(lines) + "\n"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recipes", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="the folder of an `experiment=tune` sweep")
    parser.add_argument("--write", type=Path, help="write the chosen recipes there (conf/recipe/tuned.yaml)")
    args = parser.parse_args(argv)
    try:
        table = choose(trials(load_records(args.results)))
    except UserError as err:
        print(f"fxbench: {err}", file=sys.stderr)
        return 2
    print(table.to_string(index=False))
    for _, row in table[table["at_edge"]].iterrows():
        print(f"{row['suite']} {row['encoder']}: the choice is at the edge of the grid; the best may lie beyond it")
    if args.write:
        args.write.write_text(recipe_yaml(table, str(args.results)))
        print(f"recipes: {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
