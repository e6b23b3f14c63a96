"""Verdicts on the claims of the published comparison this suite was built to test.

Each claim is judged on the stored records alone, by a stated rule, and says
so when its data is missing. Verdicts: "holds", "does not hold", or
"inconclusive" (at this sample size, or the evidence is mixed).

The claims name roles, not encoders: the RNN, the CNN and the Transformer are the
encoders that declare the families rnn, cnn and attention (``models.capabilities``),
sized to the comparison's budget (fixed-size presets such as transformer_base are
named by the claims about them). Where a role has several encoders (an LSTM and a
GRU are both RNNs), each claim is judged once per way of filling the roles, and
says which encoder stood for which role.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.convergence import CONVERGED
from bench.report.frames import sized
from bench.report.stats import LEVEL, Interval, holm, paired_ratio, ratio_of_medians, welch_diff, welch_p
from bench.roles import CNN, DEFAULT_CAST, RNN, ROLE_FAMILIES, ROLE_NAMES, TRANSFORMER

HOLDS, FAILS, UNSURE, MIXED, MISSING = "holds", "does not hold", "inconclusive", "mixed", "missing data"
MARGIN = 0.10  # practical margin of speed claims: drift between processes on a shared machine reaches 10-24%
SPEED_RULE = (
    "at every T measured, each neighbour pair in the claimed order is faster by a ratio of times whose 95% "
    f"interval lies at or above {1 + MARGIN:.2f} ('faster' means by more than the {MARGIN:.0%} practical "
    f"margin); does not hold if any pair is reversed by as much (interval at or below 1/{1 + MARGIN:.2f}); a pair "
    "within the margin leaves the claim inconclusive. The ratios come from the encoders timed side by side in one "
    "process (geometric mean over rounds, t interval over rounds) where one measurement holds them all, else from "
    "each encoder's own job (ratio of median call times, bootstrap interval)"
)
SIDE_BY_SIDE, PER_JOB = "side by side", "per job"
DIFF_RULE = "95% Welch t interval of the difference of means over seeds excludes 0"
HOLM_RULE = (
    "Welch t test of the difference of means over seeds, Holm-adjusted over the claim's sub-tests (p < 0.05 with "
    "the chance of any false positive among them held at 5%); 'mixed' where sub-tests are significant both ways"
)
CONVERGED_RULE = "judged only on converged runs (bench.convergence), else inconclusive: not converged"


@dataclass
class Subtest:
    """One comparison inside a claim: ``diff`` is expected above 0 where the claim holds."""

    label: str
    diff: Interval
    p: float
    adjusted: float = math.nan

    @property
    def supports(self) -> bool:
        return self.adjusted < 1 - LEVEL and self.diff.estimate > 0

    @property
    def refutes(self) -> bool:
        return self.adjusted < 1 - LEVEL and self.diff.estimate < 0

    def __str__(self) -> str:
        if math.isnan(self.p):
            return f"{self.label} {self.diff}"
        return f"{self.label} {self.diff}, p {self.p:.2g} (Holm {self.adjusted:.2g})"


def subtests(pairs: list[tuple[str, list, list]]) -> list[Subtest]:
    """Per (label, a, b), mean(a) - mean(b) with its Welch interval and p-value, the p-values Holm-adjusted
    together."""
    tests = [Subtest(label, welch_diff(a, b), welch_p(a, b)) for label, a, b in pairs]
    for test, adjusted in zip(tests, holm([t.p for t in tests])):
        test.adjusted = adjusted
    return tests


def holm_verdict(tests: list[Subtest]) -> str:
    """Holds if every sub-test supports the claim, does not hold if some refute it and none supports it,
    mixed if some do each; inconclusive otherwise."""
    supports, refutes = any(t.supports for t in tests), any(t.refutes for t in tests)
    if supports and refutes:
        return MIXED
    if refutes:
        return FAILS
    return HOLDS if tests and all(t.supports for t in tests) else UNSURE


def unconverged(table: pd.DataFrame, task: str) -> list[str]:
    """The training runs in ``table`` (one per encoder, ``task`` and seed) whose convergence status is not
    'converged', named; none where the table does not carry statuses."""
    if table.empty or "convergence" not in table:
        return []
    runs = table.groupby(["encoder", task, "seed"], sort=True)["convergence"].first()
    return [
        f"{e} {t} seed {int(s)} ({c if isinstance(c, str) else 'not recorded'})"
        for (e, t, s), c in runs.items()
        if c != CONVERGED
    ]


def only_converged(row: dict, table: pd.DataFrame, task: str) -> dict:
    """``row`` as judged, or inconclusive with the runs that had not converged named first."""
    row["rule"] = f"{row['rule']}; {CONVERGED_RULE}"
    runs = unconverged(table, task)
    if not runs or row["verdict"] == MISSING:
        return row
    named = ", ".join(runs[:4]) + (f" and {len(runs) - 4} more" if len(runs) > 4 else "")
    prefix = f"not converged: {named}; on these runs it would read '{row['verdict']}'"
    row["verdict"] = UNSURE
    row["evidence"] = f"{prefix}. {row['evidence']}"
    row["headline"] = one_line(f"not converged: {named}")
    return row


def unsized(table: pd.DataFrame) -> pd.DataFrame:
    """Claims name encoders without their size ('lstm', not 'lstm (0.3M)'): the bare names, kept in ``name``;
    each comparison (``budget``) is judged on its own."""
    if table.empty or "name" not in table:
        return table
    return table.assign(encoder=table["name"])


def casts(*tables: pd.DataFrame) -> list[dict[str, str]]:
    """Every way to fill the roles ({role: encoder}) with the budget-sized encoders of the tables that declare
    each role's family; a role nobody fills keeps the published comparison's encoder name (its claims then say
    which records are missing)."""
    members = {role: set() for role in ROLE_FAMILIES}
    for table in tables:
        if table.empty or "family" not in table:
            continue
        part = sized(table)
        for role, family in ROLE_FAMILIES.items():
            members[role] |= set(part.loc[part["family"] == family, "encoder"])
    choices = [
        sorted(members[role], key=lambda e: (e != DEFAULT_CAST[role], e)) or [DEFAULT_CAST[role]]
        for role in ROLE_FAMILIES
    ]
    return [dict(zip(ROLE_FAMILIES, combo)) for combo in itertools.product(*choices)]


def cast_text(cast: dict[str, str]) -> str:
    return ", ".join(f"{ROLE_NAMES[role]}: {encoder}" for role, encoder in cast.items())


def comparison(table: pd.DataFrame, encoders) -> pd.DataFrame:
    """The rows of the one comparison (parameter budget) that holds all ``encoders``, the largest
    such if several; empty if none does."""
    if table.empty or "budget" not in table:
        return table
    groups = [g for _, g in table.groupby(table["budget"].fillna(-1)) if set(encoders) <= set(g["encoder"])]
    return max(groups, key=len) if groups else table.iloc[0:0]


def _row(claim, verdict, evidence, rule, conditions, headline=None):
    """One verdict; ``headline`` is its evidence in one line for the report's first screen (default: the
    evidence, cut at a clause)."""
    return {
        "claim": claim,
        "verdict": verdict,
        "evidence": evidence,
        "rule": rule,
        "conditions": conditions,
        "headline": headline or one_line(evidence),
    }


def one_line(text: str, width: int = 150) -> str:
    """``text`` cut at the last clause boundary ('; ' or '. ') before ``width`` characters."""
    if len(text) <= width:
        return text
    cut = max(text.rfind("; ", 0, width), text.rfind(". ", 0, width))
    return text[: cut if cut > width // 3 else width].rstrip() + " …"


def _orders_by_T(observed: list[tuple[int, str]]) -> str:
    """'lstm > cnn > transformer at T=32-512; cnn > lstm > transformer at T=1024': each observed order once,
    with the runs of neighbouring measured T it was seen at."""
    lens = [T for T, _ in observed]
    by_order: dict[str, list[int]] = {}
    for i, (_, order) in enumerate(observed):
        by_order.setdefault(order, []).append(i)
    parts = []
    for order, indices in by_order.items():
        runs, start = [], indices[0]
        for prev, i in zip(indices, indices[1:] + [None]):
            if i != prev + 1:
                runs.append(f"{lens[start]}" if start == prev else f"{lens[start]}-{lens[prev]}")
                start = i
        parts.append(f"{order} at T={', '.join(runs)}")
    return "; ".join(parts)


def _speed_conditions(speed: pd.DataFrame, encoders) -> str:
    part = speed[speed["encoder"].isin(encoders)]
    sizes = ", ".join(f"{e} {int(p) / 1e6:.2f}M" for e, p in part.groupby("encoder")["params"].first().items())
    return (
        f"{'; '.join(sorted(set(part['device'].dropna())))}; T {part['T'].min()}-{part['T'].max()}, "
        f"batch {', '.join(map(str, sorted(set(part['B']))))}; encoder parameters: {sizes}"
    )


def _times(speed, encoder, T, mode, dtype):
    rows = speed[(speed["encoder"] == encoder) & (speed["T"] == T) & (speed["dtype"] == dtype)]
    column = f"{mode}_times_s"
    return None if rows.empty or column not in rows or rows[column].iloc[0] is None else rows[column].iloc[0]


def timings(speed: pd.DataFrame, inter: pd.DataFrame | None, encoders, mode: str, dtype: str) -> tuple[dict, str]:
    """{T: {encoder: seconds per call}} of ``encoders`` and how they were timed: side by side in one process
    (``frames.interleaved``: one time per round, rounds paired) where one such measurement at the comparison's
    budget holds them all, else each encoder's own job's calls (``frames.speed``), at the T every job measured."""
    if inter is not None and not inter.empty:
        part = inter[(inter["mode"] == mode) & (inter["dtype"] == dtype)]
        if "budget" in speed and not speed.empty:
            part = part[part["budget"].isin(set(speed["budget"]))]
        for _, g in part.groupby("key"):
            if set(encoders) <= set(g["encoder"]):
                return {int(T): dict(zip(gT["encoder"], gT["times"])) for T, gT in g.groupby("T")}, SIDE_BY_SIDE
    if speed.empty:
        return {}, PER_JOB
    lens = set.intersection(*(set(speed[speed["encoder"] == e]["T"]) for e in encoders))
    return {int(T): {e: _times(speed, e, T, mode, dtype) for e in encoders} for T in sorted(lens)}, PER_JOB


def times_ratio(times_a, times_b, how: str) -> Interval:
    """How many times faster a is than b, with its 95% interval (``timings`` says how they were timed)."""
    return paired_ratio(times_a, times_b) if how == SIDE_BY_SIDE else ratio_of_medians(times_a, times_b)


def _how_text(how: str, by_T: dict) -> str:
    if how != SIDE_BY_SIDE:
        return "each encoder timed in its own job (no side-by-side measurement holds them all)"
    rounds = min((len(t) for per in by_T.values() for t in per.values() if t is not None), default=0)
    return f"timed side by side in one process, {rounds} rounds"


def speed_order(
    speed: pd.DataFrame, claimed: list[str], label: str, mode: str, dtype: str = "fp32", inter=None
) -> dict:
    claim = f"Speed order {label} ({'inference' if mode == 'infer' else 'training step'}, {dtype})"
    speed = comparison(speed, claimed) if not comparison(speed, claimed).empty else speed
    if speed.empty or not set(claimed) <= set(speed["encoder"]):
        missing = sorted(set(claimed) - set(speed.get("encoder", [])))
        run = "experiment=seed_claims" if any("_" in m for m in missing) else "suite=speed"
        return _row(
            claim, MISSING, f"no speed records for {', '.join(missing)} (run `python -m bench {run}`)", SPEED_RULE, ""
        )
    by_T, how = timings(speed[speed["dtype"] == dtype], inter, claimed, mode, dtype)
    ok, reversed_at, observed, orders = True, [], [], []
    for T, times in by_T.items():
        if any(times.get(e) is None for e in claimed):
            ok = False
            continue
        orders.append((T, " > ".join(sorted(claimed, key=lambda e: float(np.median(times[e]))))))
        observed.append(f"T={T}: {orders[-1][1]}")
        for a, b in itertools.pairwise(claimed):
            ratio = times_ratio(times[a], times[b], how)
            if ratio.high <= 1 / (1 + MARGIN):
                reversed_at.append(f"{b} faster than {a} at T={T} ({1 / ratio.estimate:.2f}x)")
            if not ratio.low >= 1 + MARGIN:
                ok = False
    verdict = FAILS if reversed_at else HOLDS if ok and observed else UNSURE
    evidence = f"{_how_text(how, by_T)}; observed: " + "; ".join(observed)
    if reversed_at:
        evidence += ". Reversed: " + "; ".join(reversed_at[:4]) + (" ..." if len(reversed_at) > 4 else "")
    headline = f"observed {_orders_by_T(orders)}" + (
        f"; {len(reversed_at)} reversals beyond the {MARGIN:.0%} margin" if reversed_at else ""
    )
    return _row(claim, verdict, evidence, SPEED_RULE, _speed_conditions(speed, claimed), one_line(headline, 200))


def rnn_slowdown(speed: pd.DataFrame, mode: str, dtype: str = "fp32", cast: dict = DEFAULT_CAST, inter=None) -> dict:
    claim = f"The RNN is 3x to tens of times slower ({'inference' if mode == 'infer' else 'training step'}, {dtype})"
    rule = (
        "per T, the speed of the faster of the parameter-matched CNN and Transformer over the RNN's, with a 95% "
        f"interval (as in the speed orders: side by side where measured so): holds if the interval is >= 3 at every "
        f"T, does not hold if it lies below 3 by more than the {MARGIN:.0%} practical margin (below "
        f"{3 / (1 + MARGIN):.2f}) at some T; a T within the margin of 3 leaves it inconclusive"
    )
    rnn, roles = cast[RNN], list(cast.values())
    speed = comparison(speed, roles) if not comparison(speed, roles).empty else speed
    others = [e for e in (cast[CNN], cast[TRANSFORMER]) if e in set(speed.get("encoder", []))]
    if speed.empty or rnn not in set(speed["encoder"]) or not others:
        return _row(claim, MISSING, f"needs speed records of the {rnn} and of another encoder", rule, "")
    by_T, how = timings(speed[speed["dtype"] == dtype], inter, [rnn, *others], mode, dtype)
    ratios = []
    for T, times in by_T.items():
        present = [e for e in others if times.get(e) is not None]
        if not present or times.get(rnn) is None:
            continue
        fastest = min(present, key=lambda e: float(np.median(times[e])))
        ratios.append((T, fastest, times_ratio(times[fastest], times[rnn], how)))
    if not ratios:
        return _row(claim, MISSING, f"no {dtype} {mode} timings", rule, "")
    below = [(T, e, r) for T, e, r in ratios if r.high < 3 / (1 + MARGIN)]
    verdict = FAILS if below else HOLDS if all(r.low >= 3 for _, _, r in ratios) else UNSURE
    evidence = f"{_how_text(how, by_T)}; fastest other / {rnn}: " + "; ".join(
        f"T={T} {e} {r.estimate:.2f}x" for T, e, r in ratios
    )
    return _row(claim, verdict, evidence, rule, _speed_conditions(speed, [rnn, *others]))


def fastest_runtimes(runtimes: pd.DataFrame) -> pd.DataFrame:
    """A speed table (``frames.speed``'s columns the claims read) in which each encoder's inference at each T is
    that of its fastest runtime (``frames.runtimes``, ok runs only), named in ``runtime``."""
    if runtimes.empty:
        return pd.DataFrame()
    ok = runtimes[runtimes["status"] == "ok"]
    keys = ["encoder", "budget", "dtype", "T", "device"]
    best = ok.loc[ok.groupby(keys, dropna=False)["tokens_per_s"].idxmax()]
    return best.rename(columns={"times": "infer_times_s", "tokens_per_s": "infer_tokens_per_s"}).reset_index(drop=True)


def under_fastest_runtime(runtimes: pd.DataFrame, cast: dict = DEFAULT_CAST) -> list[dict]:
    """The parameter-matched speed claims again, inference only, with each encoder under its fastest runtime
    (eager, torch.compile or ONNX Runtime: ``speed.runtime``), so that no verdict rests on eager kernels alone."""
    fast = fastest_runtimes(runtimes)
    if fast.empty:
        return []
    label = "Transformer > CNN > RNN, parameter-matched, each under its fastest runtime"
    rows = [
        speed_order(fast, [cast[TRANSFORMER], cast[CNN], cast[RNN]], label, "infer"),
        rnn_slowdown(fast, "infer", cast=cast),
    ]
    rows[1]["claim"] = rows[1]["claim"].replace("(inference", "(inference under each encoder's fastest runtime")
    used = "; ".join(
        f"{e} T={T}: {r}" for e, T, r in fast[fast["encoder"].isin(cast.values())][["encoder", "T", "runtime"]].values
    )
    for row in rows:
        if row["verdict"] == MISSING:
            lacking = sorted(set(cast.values()) - set(fast["encoder"]))
            row["evidence"] = f"no runtime records (`python -m bench suite=speed_detail`) for {', '.join(lacking)}"
        else:
            row["evidence"] += f". Runtimes (the fastest of speed.runtime per encoder and T, timed in its job): {used}"
    return rows


def _per_seed(dist: pd.DataFrame, encoder: str, select) -> pd.Series:
    part = dist[(dist["encoder"] == encoder) & select(dist)]
    return part.groupby("seed")["value"].mean()


INFORMATIVE = 0.95  # a probe is informative where some encoder reaches this accuracy at its shortest distance
INFORMATIVE_MSE = 0.10  # or, for a regression probe, an MSE below this fraction of the chance MSE


def informative(dist: pd.DataFrame) -> dict[str, bool]:
    """Per probe: whether some encoder clearly beats chance at the probe's shortest distance (mean over seeds:
    accuracy >= INFORMATIVE, or MSE below INFORMATIVE_MSE of chance). A probe nobody learns at its easiest
    setting says nothing about distance, only about the budget."""
    out = {}
    for probe, part in dist.groupby("probe"):
        shortest = part[part["distance"] == part["distance"].min()]
        by_encoder = shortest.groupby("encoder")[["value", "chance"]].mean()
        if shortest["metric"].iloc[0] == "mse":
            out[probe] = bool((by_encoder["value"] < INFORMATIVE_MSE * by_encoder["chance"]).any())
        else:
            out[probe] = bool((by_encoder["value"] >= INFORMATIVE - 1e-9).any())
    return out


def uninformative_text(probe: str) -> str:
    return (
        f"uninformative at this budget: no encoder reaches accuracy {INFORMATIVE} (or an MSE below "
        f"{INFORMATIVE_MSE:.0%} of chance) at {probe}'s shortest distance"
    )


def agreement_beyond(dist: pd.DataFrame, threshold: int = 13, cast: dict = DEFAULT_CAST) -> dict:
    claim = f"Beyond ~{threshold} tokens the Transformer is weaker than the RNN on agreement"
    rule = (
        f"per seed, mean accuracy over agreement distances > {threshold} (far) and <= {threshold} (near); two "
        "sub-tests: the RNN's far accuracy minus the Transformer's, and the distance interaction (the RNN's far "
        "minus near) minus (the Transformer's far minus near), so that a gap that is there at every distance does "
        f"not count as a long-distance one; holds if both are above 0, does not hold if one is below 0 and none "
        f"above; {HOLM_RULE}"
    )
    rnn, trans_name = cast[RNN], cast[TRANSFORMER]
    part = dist[dist["probe"] == "agreement"] if not dist.empty else dist
    part = comparison(part, [rnn, trans_name]) if not comparison(part, [rnn, trans_name]).empty else part
    far = lambda d: d["distance"] > threshold
    near = lambda d: d["distance"] <= threshold
    if part.empty or not {rnn, trans_name} <= set(part["encoder"]) or not far(part).any():
        return _row(
            claim, MISSING, f"needs agreement records of {rnn} and {trans_name} at distances > {threshold}", rule, ""
        )
    if not informative(part).get("agreement", True):
        return _row(claim, UNSURE, uninformative_text("agreement"), rule, "")
    part = part[part["encoder"].isin([rnn, trans_name])]
    r_far, t_far = _per_seed(part, rnn, far), _per_seed(part, trans_name, far)
    pairs = [(f"far: {rnn} - {trans_name}", r_far.tolist(), t_far.tolist())]
    evidence = f"accuracy at d > {threshold}: {rnn} {r_far.mean():.3f}, {trans_name} {t_far.mean():.3f}"
    if near(part).any():
        r_near, t_near = _per_seed(part, rnn, near), _per_seed(part, trans_name, near)
        pairs.append(
            ("interaction: far gap - near gap", (r_far - r_near).dropna().tolist(), (t_far - t_near).dropna().tolist())
        )
        evidence += f"; at d <= {threshold}: {rnn} {r_near.mean():.3f}, {trans_name} {t_near.mean():.3f}"
    else:
        evidence += f"; no distance <= {threshold} was measured, so the interaction is untested"
    tests = subtests(pairs)
    verdict = holm_verdict(tests)
    if (
        verdict == HOLDS and len(tests) < 2
    ):  # a gap with no shorter distances to compare is not shown to be about distance
        verdict = UNSURE
    evidence += "; " + "; ".join(map(str, tests))
    if len(tests) == 2 and tests[0].supports and not tests[1].supports:
        evidence += " (the RNN leads at short distances as much, so the gap is not about distance)"
    conditions = (
        f"distances {sorted(set(part['distance']))}; {min(len(r_far), len(t_far))} seeds; encoder parameters "
        f"{', '.join(f'{e} {int(p):,}' for e, p in part.groupby('encoder')['encoder_params'].first().items())}"
    )
    return only_converged(_row(claim, verdict, evidence, rule, conditions), part, "probe")


def _normalised_far(dist: pd.DataFrame) -> pd.DataFrame:
    """Per probe, the longer half of its distances, scored 0 at chance and 1 at perfect."""
    rows = []
    for probe, part in dist.groupby("probe"):
        distances = sorted(set(part["distance"]))
        far = part[part["distance"] >= distances[len(distances) // 2]].copy()
        if far["metric"].iloc[0] == "mse":
            far["score"] = (far["chance"] - far["value"]) / far["chance"]
        else:
            far["score"] = (far["value"] - far["chance"]) / (1 - far["chance"])
        rows.append(far)
    return pd.concat(rows)


def cnn_behind(dist: pd.DataFrame, cast: dict = DEFAULT_CAST) -> dict:
    claim = "A plain CNN falls behind on long distances"
    rule = (
        "per seed, the score (0 = chance, 1 = perfect) averaged over the longer half of the distances of every probe "
        "all three ran; the RNN's and the Transformer's minus the CNN's: holds if the CNN is below both, does not hold if it is "
        f"above one and below none; {HOLM_RULE}; only informative probes count (some encoder reaches accuracy "
        f"{INFORMATIVE}, or an MSE below {INFORMATIVE_MSE:.0%} of chance, at the probe's shortest distance)"
    )
    cnn_name = cast[CNN]
    if not dist.empty and not comparison(dist, [cnn_name]).empty:
        dist = comparison(dist, [cnn_name])
    dist = dist[dist["encoder"].isin(cast.values())] if not dist.empty else dist
    if dist.empty or cnn_name not in set(dist["encoder"]) or len(set(dist["encoder"])) < 2:
        return _row(claim, MISSING, f"needs distance records of the {cnn_name} and another encoder", rule, "")
    useful = informative(dist)
    left_out = sorted(p for p, ok in useful.items() if not ok)
    dist = dist[dist["probe"].isin([p for p, ok in useful.items() if ok])]
    if dist.empty:
        return _row(
            claim, UNSURE, f"no probe is informative: {', '.join(left_out)} (uninformative at this budget)", rule, ""
        )
    everyone = set(dist["encoder"])  # a probe only some of the encoders ran would average unlike with unlike
    dist = dist[dist.groupby("probe")["encoder"].transform(lambda e: set(e) == everyone)]
    if dist.empty:
        return _row(claim, MISSING, f"no informative probe was run by all of {', '.join(sorted(everyone))}", rule, "")
    scored = _normalised_far(dist)
    per_seed = scored.groupby(["encoder", "seed"])["score"].mean()
    cnn = per_seed.loc[cnn_name].tolist()
    others = sorted(set(dist["encoder"]) - {cnn_name})
    tests = subtests([(f"{e} - {cnn_name}", per_seed.loc[e].tolist(), cnn) for e in others])
    verdict = holm_verdict(tests)
    evidence = (
        "mean long-distance score: "
        + ", ".join(f"{e} {per_seed.loc[e].mean():.3f}" for e in sorted(set(dist["encoder"])))
        + "; "
        + "; ".join(map(str, tests))
    )
    rf = int(dist[dist["encoder"] == cnn_name]["receptive_field"].iloc[0])
    conditions = (
        f"probes {', '.join(sorted(set(dist['probe'])))}; {cnn_name} receptive field {rf} tokens: "
        f"{(rf - 1) // 2} each side when bidirectional, {rf - 1} back when causal"
    )
    if left_out:
        conditions += f"; left out as uninformative at this budget: {', '.join(left_out)}"
    return only_converged(_row(claim, verdict, evidence, rule, conditions), dist, "probe")


def task_order(acc: pd.DataFrame, cast: dict = DEFAULT_CAST) -> dict:
    claim = "Task accuracy Transformer > CNN > RNN"
    rule = (
        "per task, the Transformer's minus the CNN's and the CNN's minus the RNN's test metric: holds if both are "
        f"above 0 on every task, does not hold if some are below 0 and none above; {HOLM_RULE}"
    )
    t, c, r = cast[TRANSFORMER], cast[CNN], cast[RNN]
    acc = comparison(acc, [r, c, t]) if not comparison(acc, [r, c, t]).empty else acc
    if acc.empty or not {r, c, t} <= set(acc["encoder"]):
        return _row(claim, MISSING, f"needs accuracy records of {r}, {c} and {t}", rule, "")
    acc = acc[acc["encoder"].isin([r, c, t])]
    pairs, rankings, single = [], {}, []
    for task, part in acc.groupby("task", sort=False):
        seeds = {e: part[part["encoder"] == e]["value"].tolist() for e in (t, c, r)}
        if min(map(len, seeds.values())) < 2:  # one seed gives no interval: such a task cannot enter the verdict
            single.append(task)
            continue
        pairs += [(f"{t} - {c}", seeds[t], seeds[c]), (f"{c} - {r}", seeds[c], seeds[r])]
        rankings[task] = " > ".join(part.groupby("encoder")["value"].mean().sort_values(ascending=False).index)
    tests = subtests(pairs)
    by_task = {task: tests[2 * i : 2 * i + 2] for i, task in enumerate(rankings)}
    status = {task: holm_verdict(pair) for task, pair in by_task.items()}
    evidence = "; ".join(
        f"{task}: {rankings[task]} ({status[task]}; {', '.join(map(str, by_task[task]))})" for task in rankings
    )
    short = "; ".join(f"{task}: {rankings[task]} ({status[task]})" for task in rankings)
    params = acc.groupby("encoder")[["encoder_params", "params"]].median() if "params" in acc else None
    conditions = f"{acc['seed'].nunique()} seeds; encoder parameters " + ", ".join(
        f"{e} {int(p):,}" for e, p in acc.groupby("encoder")["encoder_params"].median().items()
    )
    if params is not None and params["params"].notna().all():
        conditions += "; whole models with heads (median over tasks) " + ", ".join(
            f"{e} {int(p):,}" for e, p in params["params"].items()
        )
    row = _row(claim, holm_verdict(tests), evidence, rule, conditions, one_line(short, 200))
    if single:
        row["conditions"] += f"; not judged, fewer than two seeds per encoder: {', '.join(single)}"
    return only_converged(row, acc[acc["task"].isin(list(rankings))], "task")


def split_by(table: pd.DataFrame, column: str) -> list[tuple]:
    """``table`` split by ``column`` (the device, or the parameter budget of a comparison), so that no claim
    mixes two; a single part named None where the table holds one value."""
    values = sorted(table[column].dropna().unique()) if column in table else []
    return [(None, table)] if len(values) <= 1 else [(v, table[table[column] == v]) for v in values]


def all_claims(
    speed: pd.DataFrame,
    dist: pd.DataFrame,
    acc: pd.DataFrame,
    pre: pd.DataFrame | None = None,
    inter: pd.DataFrame | None = None,
    runtimes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every claim's verdict, once per device (speed) or comparison (pre-training), and once per way of filling
    the roles (``casts``): where a role has several encoders, the claim names who stood for it. The speed claims
    take their ratios from ``inter`` (``frames.interleaved``) where it holds their encoders, and are judged again
    under each encoder's fastest runtime where ``runtimes`` (``frames.runtimes``) holds any."""
    pre = pd.DataFrame() if pre is None else pre
    inter = pd.DataFrame() if inter is None else inter
    runtimes = pd.DataFrame() if runtimes is None else runtimes
    every_cast = casts(speed, dist, acc, pre)
    several = [role for role in ROLE_FAMILIES if len({c[role] for c in every_cast}) > 1]
    rows = []
    for cast in every_cast:
        cast_rows = []
        for device, part in split_by(speed, "device"):  # speed is judged on one device at a time, never across devices
            side = inter if device is None or inter.empty else inter[inter["device"] == device]
            for mode in ("infer", "train"):
                device_rows = [
                    speed_order(
                        part,
                        [cast[TRANSFORMER], cast[CNN], cast[RNN]],
                        "Transformer > CNN > RNN, parameter-matched",
                        mode,
                        inter=side,
                    ),
                    speed_order(
                        part,
                        ["transformer_base", cast[CNN], "transformer_big", cast[RNN]],
                        "Transformer-Base > CNN > Transformer-Big > RNN",
                        mode,
                        inter=side,
                    ),
                    rnn_slowdown(part, mode, cast=cast, inter=side),
                ]
                if mode == "infer" and not runtimes.empty:
                    on = runtimes if device is None else runtimes[runtimes["device"] == device]
                    device_rows += under_fastest_runtime(on, cast)
                for row in device_rows:
                    row["judged_on"] = f" on {device}" if device else ""
                cast_rows += device_rows
        cast_rows += [agreement_beyond(dist, cast=cast), cnn_behind(dist, cast), task_order(acc, cast)]
        for budget, part in split_by(pre, "budget"):  # one comparison (model size, data) at a time: gains never average
            budget_rows = [pretrain_helps_transformer_most(part, cast), small_data_gap_closes(part, cast)]
            for row in budget_rows:
                row["judged_on"] = f" ({budget / 1e6:.3g}M-parameter comparison)" if budget else ""
            cast_rows += budget_rows
        for row in cast_rows:
            who = ", ".join(f"{ROLE_NAMES[role]}: {cast[role]}" for role in several)
            row["judged_on"] = row.get("judged_on", "") + (f" [{who}]" if who else "")
            row["claim"] += row["judged_on"]
            row["cast"] = cast_text(cast)
            row["conditions"] = f"roles filled by {cast_text(cast)}" + (
                f"; {row['conditions']}" if row["conditions"] else ""
            )
        rows += cast_rows
    for row in (attention_wins_recall(dist), selection_solves_selective_copy(dist), recurrence_tracks_state(dist)):
        rows.append({**row, "judged_on": "", "cast": ""})
    return pd.DataFrame(rows)


# ---- claims from the literature on the newer families (judged once, not per cast) ---------------

SOLVED = 0.9  # accuracy at which a probe counts as solved


def _probe_seeds(part: pd.DataFrame) -> pd.Series:
    """Per (encoder, seed): mean accuracy over the probe's distances."""
    return part.groupby(["encoder", "seed"])["value"].mean()


def attention_wins_recall(dist: pd.DataFrame) -> dict:
    return _families_beat(
        dist,
        "mqar",
        winners=("attention",),
        losers=("rnn", "ssm"),
        claim="Attention beats recurrent and state-space models on multi-query associative recall at equal size",
        axis="pair counts",
        unit="pairs",
        paper="Paper: attention at ~1.0, recurrent and state-space models below it at small widths "
        "(Arora et al. 2023, Zoology, Fig. 2)",
        missing="needs mqar records of an attention encoder and of an RNN or SSM (`python -m bench experiment=literature`)",
    )


def recurrence_tracks_state(dist: pd.DataFrame) -> dict:
    return _families_beat(
        dist,
        "parity",
        winners=("rnn",),
        losers=("attention",),
        claim="Recurrent models track state (running parity) where attention of the same size does not",
        axis="lengths",
        unit="tokens",
        paper="Literature: an LSTM solves parity at every length, a Transformer stays near chance beyond the lengths "
        "it was trained on (Delétang et al. 2023, parity check); here the test lengths are the training lengths",
        missing="needs parity records of an RNN and an attention encoder (`python -m bench experiment=literature`)",
    )


def _families_beat(dist, probe, winners, losers, claim, axis, unit, paper, missing) -> dict:
    """Every encoder of the ``winners`` families above every one of the ``losers`` families on ``probe``."""
    who = "/".join(winners)
    rule = (
        f"per seed, mean accuracy over the {probe} {axis}; each {who} encoder minus each {' and '.join(losers)} "
        f"encoder of the same budget: holds if {who} is above every one, does not hold if some are above "
        f"{who} and none below; {HOLM_RULE}; judged only where some encoder solves the shortest "
        f"(accuracy >= {SOLVED}), else inconclusive (uninformative at this budget). {paper}"
    )
    part = dist[dist["probe"] == probe] if not dist.empty else dist
    part = sized(part)
    first = sorted(set(part.loc[part["family"].isin(winners), "encoder"])) if not part.empty else []
    others = sorted(set(part.loc[part["family"].isin(losers), "encoder"])) if not part.empty else []
    if not first or not others:
        return _row(claim, MISSING, missing, rule, "")
    same = comparison(part, first + others)
    part = same if not same.empty else part
    per_seed = _probe_seeds(part)
    shortest = part[part["distance"] == part["distance"].min()].groupby("encoder")["value"].mean()
    tests = subtests(
        [
            (f"{a} - {o}", per_seed.loc[a].tolist(), per_seed.loc[o].tolist())
            for a in first
            for o in others
            if a in per_seed and o in per_seed
        ]
    )
    means = ", ".join(f"{e} {per_seed.loc[e].mean():.3f}" for e in first + others if e in per_seed)
    evidence = f"mean {probe} accuracy: {means}; " + "; ".join(map(str, tests))
    if shortest.max() < SOLVED:
        verdict = UNSURE
        evidence = (
            f"uninformative at this budget: no encoder solves the shortest, {int(part['distance'].min())} {unit} "
            f"(best {shortest.idxmax()} {shortest.max():.3f}); " + evidence
        )
    else:
        verdict = holm_verdict(tests)
    n = min(t.diff.n for t in tests) if tests else 0
    compared = part[part["encoder"].isin(first + others)]
    conditions = f"{axis} {sorted(set(part['distance']))}; {n} seeds; " + ", ".join(
        f"{e} {int(p):,} parameters" for e, p in compared.groupby("encoder")["encoder_params"].first().items()
    )
    return only_converged(_row(claim, verdict, evidence, rule, conditions), part, "probe")


def selection_solves_selective_copy(dist: pd.DataFrame) -> dict:
    claim = "A selective state-space model solves selective copying where a time-invariant one does not"
    rule = (
        f"per seed, mean accuracy over the selective_copy spans: holds if the selective SSM's is >= {SOLVED} "
        f"and above the time-invariant one's ({DIFF_RULE}); does not hold if the time-invariant one reaches "
        f"{SOLVED} too; inconclusive otherwise (uninformative where the selective one does not solve it). Paper: in a Mamba "
        "block the selective layer (S6) 99.8% against the time-invariant one (S4) 56.4% (Gu and Dao 2023, Table 1)"
    )
    part = dist[(dist["probe"] == "selective_copy") & (dist["family"] == "ssm")] if not dist.empty else dist
    if not part.empty:
        part = part[part["selective"].notna()]
    selective = sorted(set(part.loc[part["selective"].astype(bool), "encoder"])) if not part.empty else []
    invariant = sorted(set(part.loc[~part["selective"].astype(bool), "encoder"])) if not part.empty else []
    if not selective or not invariant:
        return _row(
            claim,
            MISSING,
            "needs selective_copy records of model=ssm and model=ssm_lti (`python -m bench experiment=literature`)",
            rule,
            "",
        )
    per_seed = _probe_seeds(part)
    sel, lti = selective[0], invariant[0]
    a, b = per_seed.loc[sel].tolist(), per_seed.loc[lti].tolist()
    diff = welch_diff(a, b)
    if np.mean(b) >= SOLVED:
        verdict = FAILS
    elif np.mean(a) >= SOLVED and diff.low > 0:
        verdict = HOLDS
    else:
        verdict = UNSURE
    evidence = f"mean selective-copy accuracy: {sel} {np.mean(a):.3f}, {lti} {np.mean(b):.3f}; difference {diff}"
    if np.mean(a) < SOLVED:
        evidence = f"uninformative at this budget: the selective SSM does not solve it (< {SOLVED}); " + evidence
    conditions = f"spans {sorted(set(part['distance']))}; {diff.n} seeds"
    return only_converged(_row(claim, verdict, evidence, rule, conditions), part, "probe")


def _pretrain_scores(pre: pd.DataFrame) -> pd.DataFrame | None:
    """Per encoder, seed and arm (scratch, or the largest pre-training budget), the 0-to-1 score
    averaged over tasks; the mlm objective where several were run."""
    if pre.empty:
        return None
    objective = "mlm" if "mlm" in set(pre["objective"]) else min(set(pre["objective"]))
    part = pre[pre["objective"] == objective]
    top = part["tokens"].max()
    if top == 0:
        return None
    part = part[part["tokens"].isin([0, top])].assign(arm=lambda f: np.where(f["tokens"] == 0, "scratch", "pretrained"))
    return part.groupby(["encoder", "seed", "arm"])["score"].mean().unstack("arm")


SCORE = (
    "score = (test metric - baseline) / (perfect - baseline), averaged over the fine-tuning tasks per seed; "
    "gain = pre-trained (largest budget) minus scratch score"
)


def no_pretraining_effect(scores: pd.DataFrame) -> str | None:
    """Why the pre-training claims cannot be judged, or None: they compare gains, so some encoder's
    pre-trained score must beat its scratch score (Welch interval over seeds above 0) before a gain means
    anything; otherwise the pre-training step changed nothing measurable at this budget."""
    diffs = {
        e: welch_diff(part["pretrained"].dropna().tolist(), part["scratch"].dropna().tolist())
        for e, part in scores.groupby(level=0)
    }
    if any(d.low > 0 for d in diffs.values()):
        return None
    return "no measurable pre-training effect (no encoder's pre-trained score is above its scratch score: " + (
        ", ".join(f"{e} {d}" for e, d in sorted(diffs.items())) + "), so gains compare noise"
    )


def pretrain_helps_transformer_most(pre: pd.DataFrame, cast: dict = DEFAULT_CAST) -> dict:
    claim = "Two-stage training helps the Transformer most"
    rule = (
        f"{SCORE}; the Transformer's gain minus the RNN's and minus the CNN's, {DIFF_RULE}: holds if above both, "
        "does not hold if below either; judged only where pre-training had a measurable effect (some encoder's "
        "pre-trained score above its scratch score)"
    )
    t = cast[TRANSFORMER]
    scores = _pretrain_scores(pre[pre["encoder"].isin(cast.values())] if not pre.empty else pre)
    if scores is None or t not in scores.index.get_level_values(0) or len(set(scores.index.get_level_values(0))) < 2:
        return _row(
            claim,
            MISSING,
            f"needs pretrain records of the {t} and another family (run `python -m bench suite=pretrain`)",
            rule,
            "",
        )
    if (why := no_pretraining_effect(scores)) is not None:
        return _row(claim, UNSURE, why, rule, _pretrain_conditions(pre))
    gain = (scores["pretrained"] - scores["scratch"]).dropna()
    trans = gain.loc[t].tolist()
    diffs = {e: welch_diff(trans, gain.loc[e].tolist()) for e in set(gain.index.get_level_values(0)) - {t}}
    verdict = (
        HOLDS
        if all(d.low > 0 for d in diffs.values())
        else FAILS
        if any(d.high < 0 for d in diffs.values())
        else UNSURE
    )
    evidence = (
        "mean gain: "
        + ", ".join(f"{e} {gain.loc[e].mean():+.3f}" for e in sorted(set(gain.index.get_level_values(0))))
        + f"; {t} minus "
        + "; ".join(f"{e}: {d}" for e, d in sorted(diffs.items()))
    )
    return _row(claim, verdict, evidence, rule, _pretrain_conditions(pre))


def small_data_gap_closes(pre: pd.DataFrame, cast: dict = DEFAULT_CAST) -> dict:
    claim = "With pre-training, the small-data gap between the Transformer and the RNN closes"
    rule = (
        f"{SCORE}; gap = the RNN's minus the Transformer's score per seed, {DIFF_RULE.replace('difference of means', 'gap')}: "
        "holds if the scratch gap is above 0 and the pre-trained gap is not, and the gap shrank (interval of "
        "pre-trained minus scratch gap below 0); does not hold if the pre-trained gap stays above 0; inconclusive "
        "if there is no scratch gap to close"
    )
    r, t = cast[RNN], cast[TRANSFORMER]
    scores = _pretrain_scores(pre)
    if scores is None or not {r, t} <= set(scores.index.get_level_values(0)):
        return _row(claim, MISSING, f"needs pretrain records of the {r} and the {t}", rule, "")
    if (why := no_pretraining_effect(scores)) is not None:
        return _row(claim, UNSURE, why, rule, _pretrain_conditions(pre))
    gaps = {
        arm: welch_diff(scores.loc[r][arm].dropna().tolist(), scores.loc[t][arm].dropna().tolist())
        for arm in ("scratch", "pretrained")
    }
    per_seed = {arm: (scores.loc[r][arm] - scores.loc[t][arm]).dropna() for arm in gaps}
    shrink = welch_diff(per_seed["pretrained"].tolist(), per_seed["scratch"].tolist())
    if not gaps["scratch"].low > 0:
        verdict = UNSURE
    elif gaps["pretrained"].low > 0:
        verdict = FAILS
    else:
        verdict = HOLDS if shrink.high < 0 else UNSURE
    evidence = f"{r} minus {t} score: scratch {gaps['scratch']}, pre-trained {gaps['pretrained']}; change {shrink}"
    return _row(claim, verdict, evidence, rule, _pretrain_conditions(pre))


def _pretrain_conditions(pre: pd.DataFrame) -> str:
    tasks = ", ".join(dict.fromkeys(pre["task"]))
    return (
        f"tasks {tasks}; {pre['seed'].nunique()} seeds; pre-training tokens {sorted(set(pre['tokens']) - {0})}; "
        "encoder parameters "
        + ", ".join(f"{e} {int(p):,}" for e, p in pre.groupby("encoder")["encoder_params"].median().items())
    )
