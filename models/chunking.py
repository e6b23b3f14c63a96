"""Inference in row chunks: the same outputs, a bounded high-water mark."""

from __future__ import annotations

from collections.abc import Callable

import torch


def in_row_chunks(encode: Callable, x: torch.Tensor, mask: torch.Tensor, chunk_tokens: int) -> torch.Tensor:
    """``encode(x, mask)``, run on at most ``chunk_tokens`` tokens of rows at a time when autograd
    is off (nothing needs keeping for a backward pass); rows never interact, so the result is
    the same. 0 disables it."""
    B, T = mask.shape
    rows = max(1, chunk_tokens // max(T, 1))
    if not chunk_tokens or torch.is_grad_enabled() or B <= rows:
        return encode(x, mask)
    return torch.cat([encode(x[i : i + rows], mask[i : i + rows]) for i in range(0, B, rows)])
