"""Dilated residual CNN encoder, after locuslab/TCN and iterated dilated CNNs.

Each layer is a pre-norm residual block ``x + dropout(act(conv(norm(x))))`` whose
``Conv1d`` has the dilation given by the schedule: ``dilations`` (default
1, 2, 4, 8) repeated ``n_blocks`` times. Centred padding in the default mode,
left padding in causal mode; the mask is re-applied after every norm and every
block, so padding never leaks into real positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.attention import CrossAttention, DecoderState

NORMS = ("layer", "rms", "none")


def _norm(kind: str, d: int) -> nn.Module:
    return {"layer": lambda: nn.LayerNorm(d), "rms": lambda: nn.RMSNorm(d), "none": nn.Identity}[kind]()


class DilatedBlock(nn.Module):
    def __init__(self, d_model: int, kernel_size: int, dilation: int, causal: bool, norm: str, dropout: float):
        super().__init__()
        span = (kernel_size - 1) * dilation
        self.span = span
        self.pad = (span, 0) if causal else (span // 2, span - span // 2)
        self.norm = _norm(norm, d_model)
        self.conv = nn.Conv1d(d_model, d_model, kernel_size, dilation=dilation)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm(x)
        if keep is not None:  # a norm's bias would turn zero padding into values the conv carries over
            h = h.masked_fill(~keep, 0.0)
        h = h.transpose(1, 2)  # (B, D, T)
        h = self.conv(F.pad(h, self.pad))  # (B, D, T): the padding keeps the length
        return x + self.dropout(F.gelu(h.transpose(1, 2)))  # (B, T, D)

    def step(self, x: torch.Tensor, past: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A causal block at one new position x (N, 1, D), given the normed inputs of the ``span``
        positions before it (N, span, D; zeros before the start, like the padding)."""
        window = torch.cat([past, self.norm(x)], dim=1)  # (N, span + 1, D): exactly the kernel's reach
        h = self.conv(window.transpose(1, 2))  # (N, D, 1)
        return x + self.dropout(F.gelu(h.transpose(1, 2))), window[:, 1:]


class CNNEncoder(nn.Module):
    family = "cnn"

    def __init__(
        self,
        d_model: int = 256,
        causal: bool = False,
        kernel_size: int = 3,
        dilations: tuple[int, ...] = (1, 2, 4, 8),
        n_blocks: int = 1,
        norm: str = "layer",
        dropout: float = 0.1,
    ):
        super().__init__()
        if d_model < 1:
            raise ValueError(f"d_model={d_model} must be a positive integer")
        if kernel_size < 2:
            raise ValueError(f"kernel_size={kernel_size} must be at least 2")
        if not dilations or min(dilations) < 1:
            raise ValueError(f"dilations={list(dilations)} must be a non-empty list of positive integers")
        if n_blocks < 1:
            raise ValueError(f"n_blocks={n_blocks} must be at least 1")
        if norm not in NORMS:
            raise ValueError(f"norm={norm!r} must be one of {', '.join(NORMS)}")
        self.d_model, self.causal = d_model, causal
        schedule = list(dilations) * n_blocks
        self.blocks = nn.ModuleList(DilatedBlock(d_model, kernel_size, d, causal, norm, dropout) for d in schedule)
        self.norm = _norm(norm, d_model)
        self.receptive_field = 1 + sum((kernel_size - 1) * d for d in schedule)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask[..., None]  # (B, T, 1)
        x = x.masked_fill(~keep, 0.0)
        for block in self.blocks:
            x = block(x, keep).masked_fill(~keep, 0.0)
        return self.norm(x).masked_fill(~keep, 0.0)


class CNNDecoder(nn.Module):
    """Causal dilated blocks, each followed by attention over the encoder's states (ConvS2S style)."""

    def __init__(
        self,
        d_model: int = 256,
        kernel_size: int = 3,
        dilations: tuple[int, ...] = (1, 2, 4, 8),
        n_blocks: int = 1,
        norm: str = "layer",
        dropout: float = 0.1,
    ):
        super().__init__()
        self.d_model = d_model
        schedule = list(dilations) * n_blocks
        self.blocks = nn.ModuleList(DilatedBlock(d_model, kernel_size, d, True, norm, dropout) for d in schedule)
        self.attn_norms = nn.ModuleList(_norm(norm, d_model) for _ in schedule)
        self.attns = nn.ModuleList(CrossAttention(d_model, 1) for _ in schedule)  # no attention dropout: fused kernels
        self.norm = _norm(norm, d_model)

    def forward(self, y, y_mask, memory, memory_mask):
        keep = y_mask[..., None]  # (B, S, 1)
        y = y.masked_fill(~keep, 0.0)
        for block, norm, attn in zip(self.blocks, self.attn_norms, self.attns):
            y = block(y, keep)
            y = (y + attn(norm(y), memory, memory_mask)).masked_fill(~keep, 0.0)
        return self.norm(y).masked_fill(~keep, 0.0)

    def start(self, memory, memory_mask) -> DecoderState:
        """Decoding state: each attention's keys and values, and each block's last ``span`` normed inputs."""
        past = {f"b{i}": memory.new_zeros(memory.shape[0], b.span, self.d_model) for i, b in enumerate(self.blocks)}
        return DecoderState(
            fixed={"memory_kv": [a.keys_values(memory) for a in self.attns], "mask": memory_mask}, rows=past
        )

    def step(self, y, state: DecoderState):
        """The output (N, 1, D) at the next position, from its input there (N, 1, D) and the state."""
        for i, (block, norm, attn) in enumerate(zip(self.blocks, self.attn_norms, self.attns)):
            y, state.rows[f"b{i}"] = block.step(y, state.rows[f"b{i}"])
            y = y + attn.attend(norm(y), state.fixed["memory_kv"][i], state.fixed["mask"])
        return self.norm(y), state


ENCODER = CNNEncoder
DECODER = CNNDecoder
