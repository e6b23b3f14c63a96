"""Size a module to a parameter budget.

The width is solved, the depth stays as configured: first ``d_model`` in the
steps the module accepts, then, for modules that name a ``fine_width`` (the
Transformer's FFN width), that inner width closes the rest of the gap.
Parameters are counted on the meta device, so nothing is allocated.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

TOLERANCE = 0.05


def count_on_meta(factory: Callable[..., nn.Module], **kwargs) -> int:
    with torch.device("meta"):
        module = factory(**kwargs)
    return sum(p.numel() for p in module.parameters())


def _search(count, step: int, budget: int, hi: int) -> tuple[int, int]:
    """The (value, count) closest to budget over multiples of step up to hi; count grows with value."""
    lo_k, hi_k = 1, max(1, hi // step)
    while hi_k - lo_k > 1:
        mid = (lo_k + hi_k) // 2
        if count(mid * step) <= budget:
            lo_k = mid
        else:
            hi_k = mid
    return min(((k * step, count(k * step)) for k in (lo_k, hi_k)), key=lambda vc: abs(vc[1] - budget))


def _search_affine(count, step: int, budget: int, hi: int) -> tuple[int, int]:
    """``_search``'s answer in three counts when count is affine in value (as in an FFN's inner width),
    checked on the answer; else ``_search``'s."""
    c0, c1 = count(step), count(2 * step)
    slope = (c1 - c0) / step
    if slope > 0:
        k = min(max(1, round((budget - c0) / slope / step) + 1), max(1, hi // step))
        predicted = c0 + slope * (k - 1) * step
        if count(k * step) == predicted:
            return k * step, int(predicted)
    return _search(count, step, budget, hi)


def solve_for_budget(
    factory: Callable[..., nn.Module],
    budget: int,
    step: int = 1,
    fine_width: str | None = None,
    **options,
) -> dict:
    """Keyword arguments (``d_model``, maybe ``fine_width``) that size ``factory(**options)`` to
    ``budget`` parameters within 5%; ValueError when no width does."""
    if budget <= 0:
        raise ValueError(f"param_budget={budget} must be a positive number of parameters")

    def count_width(d: int) -> int:
        return count_on_meta(factory, d_model=d, **options)

    d_model, total = _search(count_width, step, budget, 1 << 16)
    sized = {"d_model": d_model}
    if fine_width and options.get(fine_width) is None and abs(total - budget) > 0.01 * budget:

        def count_fine(w: int) -> int:
            return count_on_meta(factory, d_model=d_model, **{**options, fine_width: w})

        # the coarsest step of the inner width that lands within 1%, for fast kernels
        for fine_step in (64, 32, 16, 8, 4, 2, 1):
            w, fine_total = _search_affine(count_fine, fine_step, budget, 1 << 18)
            if abs(fine_total - budget) <= 0.01 * budget:
                break
        if abs(fine_total - budget) < abs(total - budget):
            sized[fine_width], total = w, fine_total
    if abs(total - budget) > TOLERANCE * budget:
        raise ValueError(
            f"param_budget={budget} cannot be met within 5% with {options or 'the defaults'}: "
            f"the nearest size has {total} parameters"
        )
    return sized
