"""Size an encoder to a parameter budget.

The width is solved, the depth stays as configured: first ``d_model`` in the
steps the encoder accepts (``width_multiple``), then, for encoders that name a
``fine_width`` (the Transformer's FFN width), that inner width closes the rest
of the gap. Parameters are counted on the meta device, so no memory is used.
"""

from __future__ import annotations

import torch
from torch import nn

TOLERANCE = 0.05


def count_on_meta(cls: type[nn.Module], **kwargs) -> int:
    with torch.device("meta"):
        module = cls(**kwargs)
    return sum(p.numel() for p in module.parameters())


def _closest(values_counts: list[tuple[int, int]], budget: int) -> tuple[int, int]:
    return min(values_counts, key=lambda vc: abs(vc[1] - budget))


def _search(count, lo: int, hi: int, step: int, budget: int) -> tuple[int, int]:
    """Closest (value, count) to budget over multiples of step in [lo, hi]; count grows with value."""
    lo_k, hi_k = max(1, lo // step), max(1, hi // step)
    while hi_k - lo_k > 1:
        mid = (lo_k + hi_k) // 2
        if count(mid * step) <= budget:
            lo_k = mid
        else:
            hi_k = mid
    return _closest([(k * step, count(k * step)) for k in (lo_k, hi_k)], budget)


def solve_for_budget(cls: type[nn.Module], budget: int, causal: bool = False, **options) -> dict:
    """Keyword arguments (``d_model`` and maybe ``fine_width``) that meet ``budget`` to within 5%."""
    if budget <= 0:
        raise ValueError(f"param_budget={budget} must be a positive number of parameters")
    step = cls.width_multiple(causal=causal, **options) if hasattr(cls, "width_multiple") else 1

    def count_width(d: int) -> int:
        return count_on_meta(cls, d_model=d, causal=causal, **options)

    d_model, total = _search(count_width, step, 1 << 16, step, budget)
    sized = {"d_model": d_model}
    fine = getattr(cls, "fine_width", None)
    if fine and options.get(fine) is None and abs(total - budget) > 0.01 * budget:

        def count_fine(w: int) -> int:
            return count_on_meta(cls, d_model=d_model, causal=causal, **{**options, fine: w})

        # the coarsest step of the inner width that lands within 1%, for fast kernels
        for fine_step in (64, 32, 16, 8, 4, 2, 1):
            w, fine_total = _search(count_fine, fine_step, 1 << 18, fine_step, budget)
            if abs(fine_total - budget) <= 0.01 * budget:
                break
        if abs(fine_total - budget) < abs(total - budget):
            sized[fine], total = w, fine_total
    if abs(total - budget) > TOLERANCE * budget:
        raise ValueError(
            f"param_budget={budget} cannot be met within 5% by {cls.__name__} "
            f"with {options or 'its defaults'}: the nearest size has {total} parameters"
        )
    return sized
