"""Cross-attention over encoder states, and the state of step-by-step decoding: shared by the
decoders of every family."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class DecoderState:
    """What a decoder carries from one generated position to the next (its ``start`` and ``step``):
    ``fixed`` per source, the same for every beam of it; ``rows`` per hypothesis, hypotheses on dim 0."""

    fixed: dict
    rows: dict

    def reorder(self, index: torch.Tensor) -> None:
        """Keep the hypotheses ``index`` names, in its order (beam search's choice at each step)."""
        self.rows = {name: value.index_select(0, index) for name, value in self.rows.items()}


class CrossAttention(nn.Module):
    """Queries from the decoder, keys and values from the encoder's memory; padded memory is hidden."""

    def __init__(self, d_model: int, n_heads: int = 1, dropout: float = 0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"n_heads={n_heads} must divide d_model={d_model}")
        self.n_heads, self.dropout = n_heads, dropout
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        return self.attend(x, self.keys_values(memory), memory_mask)

    def keys_values(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The memory's keys and values, 2 x (B, nh, T, hs): computed once per source when decoding step by step."""
        B, T, D = memory.shape
        k, v = self.kv(memory).view(B, T, 2, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        return k, v

    def attend(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor], memory_mask: torch.Tensor) -> torch.Tensor:
        B, S, D = x.shape
        nh = self.n_heads
        q = self.q(x).view(B, S, nh, D // nh).transpose(1, 2)  # (B, nh, S, hs)
        k, v = kv
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=memory_mask[:, None, None, :], dropout_p=self.dropout if self.training else 0.0
        )  # (B, nh, S, hs)
        return self.out(y.transpose(1, 2).reshape(B, S, D))
