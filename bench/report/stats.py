"""Small-sample statistics for the report: t intervals over seeds, bootstrap ratios of medians.

Rules used for verdicts, stated once here and in the report: a difference of
means over seeds is significant when its 95% Welch t interval excludes 0; a
speed ratio is significant when its 95% interval excludes 1: over rounds for
encoders timed side by side in one process (``paired_ratio``), else the
bootstrap interval of the ratio of median times (resampling each side's calls).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from bench.metrics import RANGES  # noqa: F401  (the report's modules take it from here)

LEVEL = 0.95


@dataclass
class Interval:
    estimate: float
    low: float
    high: float
    n: int

    def excludes(self, value: float) -> bool:
        return bool(not math.isnan(self.low) and (self.low > value or self.high < value))

    def __str__(self) -> str:
        if math.isnan(self.low):
            return f"{self.estimate:.3g} (n={self.n}, no interval)"
        return f"{self.estimate:.3g} [{self.low:.3g}, {self.high:.3g}]"


def mean_ci(values, lowest: float | None = None, highest: float | None = None) -> Interval:
    """Mean and its 95% t interval, clipped to [lowest, highest] where the metric cannot go beyond
    (an accuracy above 1 says nothing); no interval for fewer than two values."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    if len(x) < 2:
        return Interval(float(x.mean()), math.nan, math.nan, 1)
    half = stats.t.ppf((1 + LEVEL) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    low, high = float(x.mean() - half), float(x.mean() + half)
    low = low if lowest is None else max(low, lowest)
    high = high if highest is None else min(high, highest)
    return Interval(float(x.mean()), low, high, len(x))


def welch_diff(a, b) -> Interval:
    """mean(a) - mean(b) with its 95% Welch t interval; no interval when either side has fewer than two
    values or neither varies (a zero-width interval would count any difference, 0.001 included, as sure)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return Interval(diff, math.nan, math.nan, min(len(a), len(b)))
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:  # every seed the same on both sides: the seeds say nothing of the noise, so no interval
        return Interval(diff, math.nan, math.nan, min(len(a), len(b)))
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf((1 + LEVEL) / 2, df) * se
    return Interval(diff, diff - half, diff + half, min(len(a), len(b)))


def ratio_of_medians(times_a, times_b, n_boot: int = 2000, seed: int = 0) -> Interval:
    """median(b) / median(a) (how many times faster a is than b) with a 95% bootstrap interval."""
    a, b = np.asarray(times_a, dtype=float), np.asarray(times_b, dtype=float)
    estimate = float(np.median(b) / np.median(a))
    if len(a) < 2 or len(b) < 2:
        return Interval(estimate, math.nan, math.nan, min(len(a), len(b)))
    rng = np.random.default_rng(seed)
    ra = np.median(rng.choice(a, (n_boot, len(a))), axis=1)
    rb = np.median(rng.choice(b, (n_boot, len(b))), axis=1)
    low, high = np.quantile(rb / ra, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return Interval(estimate, float(low), float(high), min(len(a), len(b)))


def paired_ratio(times_a, times_b) -> Interval:
    """How many times faster a is than b, from times paired by round (round r timed a and b side by side): the
    geometric mean of the per-round ratios b_r / a_r, with the 95% t interval of the mean log ratio over rounds, so
    the interval holds the drift between rounds, which the pairing cancels where it hits both alike."""
    a, b = np.asarray(times_a, dtype=float), np.asarray(times_b, dtype=float)
    logs = np.log(b[: len(a)] / a[: len(b)])
    estimate = float(np.exp(logs.mean()))
    if len(logs) < 2 or logs.std(ddof=1) < 1e-12:
        return Interval(estimate, math.nan, math.nan, len(logs))
    half = stats.t.ppf((1 + LEVEL) / 2, len(logs) - 1) * logs.std(ddof=1) / math.sqrt(len(logs))
    return Interval(estimate, float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half)), len(logs))


def welch_p(a, b) -> float:
    """Two-sided p-value of Welch's t test of mean(a) = mean(b), from the same standard error and degrees of
    freedom as ``welch_diff`` (so p < 0.05 exactly where its interval excludes 0); NaN where it gives no interval."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        return math.nan
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return float(2 * stats.t.sf(abs(a.mean() - b.mean()) / math.sqrt(va + vb), df))


def holm(pvalues) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN and counts in the family): an
    adjusted p below 0.05 is significant with the chance of any false positive in the family held at 5%."""
    p = list(pvalues)
    m = len(p)
    ranked = sorted((v, i) for i, v in enumerate(p) if not math.isnan(v))
    adjusted, running = [math.nan] * m, 0.0
    for rank, (v, i) in enumerate(ranked):
        running = max(running, min(1.0, (m - rank) * v))
        adjusted[i] = running
    return adjusted
