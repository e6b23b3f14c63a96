"""Cross-attention over encoder states, shared by the decoders of every family."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
        B, S, D = x.shape
        T, nh = memory.shape[1], self.n_heads
        q = self.q(x).view(B, S, nh, D // nh).transpose(1, 2)  # (B, nh, S, hs)
        k, v = self.kv(memory).view(B, T, 2, nh, D // nh).permute(2, 0, 3, 1, 4)  # 2 x (B, nh, T, hs)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=memory_mask[:, None, None, :], dropout_p=self.dropout if self.training else 0.0
        )  # (B, nh, S, hs)
        return self.out(y.transpose(1, 2).reshape(B, S, D))
