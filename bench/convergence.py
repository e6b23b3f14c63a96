"""Did a training run learn what it could? One stated rule over its validation curve.

A run is *converged* when its validation metric reached the metric's ceiling (within the
tolerance), or when its last ``patience`` evaluations gained no more than the tolerance over the
best before them; *diverged* when its training loss became NaN or infinite; otherwise it is
*still improving* when the step cap ends it. The tolerance is a fraction of the metric's range
(accuracy 0.01, BLEU 1 at the default), or, for a metric with no upper bound such as MSE, the larger of
a fraction of its best value and the same fraction of its first (so that a curve that has fallen by
orders of magnitude does not run to the cap on gains nobody would notice).

The training loop stops a run as soon as the rule calls it converged; the report shows every
run's status, and a claim is judged only on converged runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.metrics import RANGES

CONVERGED, IMPROVING, DIVERGED = "converged", "still improving", "diverged"
STATUSES = (CONVERGED, IMPROVING, DIVERGED)
AT_CEILING = "at its ceiling"  # how the reason of a run converged at its metric's ceiling begins


@dataclass(frozen=True)
class Rule:
    patience: int = 5  # evaluations without a gain beyond the tolerance (0: no plateau test)
    tolerance: float = 0.01  # of the metric's range (of its first value where it has no upper bound)
    relative_tolerance: float = 0.02  # of the best value, for a metric with no upper bound

    @classmethod
    def of(cls, cfg) -> Rule:
        """The rule of a run's ``train`` settings."""
        return cls(int(cfg.get("patience", cls.patience)), float(cfg.get("tolerance", cls.tolerance)))

    def gain(self, metric: str, best: float, first: float) -> float:
        """The smallest change of ``metric`` that counts as a gain, for a curve at ``best`` that began at ``first``."""
        low, high = RANGES.get(metric, (None, None))
        if low is not None and high is not None:
            return self.tolerance * (high - low)
        return max(self.relative_tolerance * abs(best), self.tolerance * abs(first))

    def describe(self) -> str:
        return (
            f"converged: the validation metric within {self.tolerance:g} of its range from its ceiling, or no gain "
            f"beyond {self.tolerance:g} of its range (where it has no upper bound: the larger of "
            f"{self.relative_tolerance:g} of its best value and {self.tolerance:g} of its first) over the last "
            f"{self.patience} evaluations; diverged: the training loss became NaN or infinite; otherwise still "
            "improving at the step cap"
        )

    def status(self, scores, metric: str, higher_is_better: bool, diverged: bool = False) -> tuple[str, str]:
        """(status, why) of a validation curve ``scores`` (one value per evaluation, in order)."""
        if diverged:
            return DIVERGED, "the training loss became NaN or infinite"
        sign = 1 if higher_is_better else -1
        oriented = [sign * s for s in scores if s is not None and not math.isnan(s)]
        if not oriented:
            return IMPROVING, "no evaluation yet"
        best = max(oriented)
        gain = self.gain(metric, best, oriented[0])
        low, high = RANGES.get(metric, (None, None))
        ceiling = (high if higher_is_better else low) if low is not None and high is not None else None
        if ceiling is not None and sign * best >= sign * ceiling - gain:
            return CONVERGED, f"{AT_CEILING}: {metric} {sign * best:.4g} (ceiling {ceiling:g}, tolerance {gain:.3g})"
        if self.patience <= 0 or len(oriented) <= self.patience:
            return IMPROVING, f"{len(oriented)} evaluations, fewer than the {self.patience + 1} the plateau test needs"
        recent = max(oriented[-self.patience :]) - max(oriented[: -self.patience])
        if recent <= gain:
            return CONVERGED, (
                f"a plateau: the best {metric} gained {max(recent, 0.0):.3g} over the last {self.patience} evaluations "
                f"(tolerance {gain:.3g})"
            )
        return IMPROVING, (
            f"the best {metric} gained {recent:.3g} over the last {self.patience} evaluations (tolerance {gain:.3g})"
        )
