"""Pre-LN Transformer encoder on ``F.scaled_dot_product_attention``.

SDPA picks a fused kernel that never stores the T x T score matrix, unlike the
fast path of ``nn.TransformerEncoder``. Dropout on the attention weights is off
by default (``attn_dropout``): the fused CPU kernels do not support it, and with
it a training step falls back to the math kernel, 3x slower at T=1024. Positions are sinusoidal by default,
learned as an option; causal mode uses SDPA's causal kernel, which relies on
right padding (a real token never has padding before it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.attention import CrossAttention, DecoderState

POSITIONS = ("sinusoidal", "learned")


def sinusoidal_positions(length: int, d_model: int) -> torch.Tensor:
    """(length, d_model) table of Vaswani et al. (2017)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : d_model // 2]
    return table


def add_positions(module: nn.Module, kind: str, max_len: int, d_model: int) -> None:
    """Give ``module.positions``: a learned (max_len, d_model) table, or the fixed sinusoidal one."""
    if kind == "learned":
        module.positions = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
    else:
        module.register_buffer("positions", sinusoidal_positions(max_len, d_model), persistent=False)


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None, causal: bool) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = (
            self.qkv(x).view(B, T, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        )  # 3 x (B, nh, T, hs)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=causal, dropout_p=self.dropout if self.training else 0.0
        )  # (B, nh, T, hs)
        return self.out(y.transpose(1, 2).reshape(B, T, D))

    def step(self, x: torch.Tensor, past_k: torch.Tensor, past_v: torch.Tensor):
        """Causal attention of one new position x (N, 1, D) over the cached keys and values of the
        earlier ones (N, nh, t, hs) and itself; returns the output and the caches grown by one."""
        N, _, D = x.shape
        q, k, v = (
            self.qkv(x).view(N, 1, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        )  # 3 x (N, nh, 1, hs)
        k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v)  # every cached key is in the past: no mask
        return self.out(y.transpose(1, 2).reshape(N, 1, D)), k, v


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, attn_dropout: float = 0.0):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, attn_dropout)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None, causal: bool) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.ln1(x), attn_mask, causal))
        return x + self.dropout(self.ff(self.ln2(x)))


class TransformerEncoder(nn.Module):
    family = "attention"
    fine_width = "d_ff"

    def __init__(
        self,
        d_model: int = 256,
        causal: bool = False,
        n_layers: int = 4,
        n_heads: int = 4,
        d_ff: int | None = None,
        dropout: float = 0.1,
        attn_dropout: float = 0.0,
        positions: str = "sinusoidal",
        max_len: int = 4096,
    ):
        super().__init__()
        if d_model < 1 or n_heads < 1 or d_model % n_heads:
            divisors = [h for h in range(1, min(d_model, 64) + 1) if d_model % h == 0] if d_model > 0 else []
            raise ValueError(
                f"n_heads={n_heads} must divide d_model={d_model}"
                + (f"; allowed n_heads: {', '.join(map(str, divisors))}" if divisors else "")
            )
        d_ff = 4 * d_model if d_ff is None else d_ff
        if d_ff < 1:
            raise ValueError(f"d_ff={d_ff} must be a positive integer")
        if not 0 <= attn_dropout < 1:
            raise ValueError(f"attn_dropout={attn_dropout} must be in [0, 1)")
        if positions not in POSITIONS:
            raise ValueError(f"positions={positions!r} must be one of {', '.join(POSITIONS)}")
        if max_len < 1:
            raise ValueError(f"max_len={max_len} must be a positive integer")
        self.d_model, self.causal, self.receptive_field = d_model, causal, None
        self.max_len = max_len
        add_positions(self, positions, max_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, d_ff, dropout, attn_dropout) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    @staticmethod
    def width_multiple(n_heads: int = 4, **_) -> int:
        return n_heads

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        if T > self.max_len:
            raise ValueError(f"sequence length {T} exceeds max_len={self.max_len}")
        x = self.dropout(x + self.positions[:T])
        # padded keys are hidden from every query; a causal kernel already hides them under right padding
        attn_mask = None if self.causal or bool(mask.all()) else mask[:, None, None, :]  # (B, 1, 1, T)
        for block in self.blocks:
            x = block(x, attn_mask, self.causal)
        return self.ln_f(x).masked_fill(~mask[..., None], 0.0)


class DecoderBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, attn_dropout: float = 0.0):
        super().__init__()
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, attn_dropout)
        self.cross = CrossAttention(d_model, n_heads, attn_dropout)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(self, y: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        y = y + self.dropout(self.attn(self.ln1(y), None, causal=True))
        y = y + self.dropout(self.cross(self.ln2(y), memory, memory_mask))
        return y + self.dropout(self.ff(self.ln3(y)))

    def step(self, y, past_k, past_v, memory_kv, memory_mask):
        """One new position (N, 1, D) against the cached keys and values of the earlier ones (N, nh, t, hs)."""
        a, k, v = self.attn.step(self.ln1(y), past_k, past_v)
        y = y + self.dropout(a)
        y = y + self.dropout(self.cross.attend(self.ln2(y), memory_kv, memory_mask))
        return y + self.dropout(self.ff(self.ln3(y))), k, v


class TransformerDecoder(nn.Module):
    """Causal self-attention and cross-attention to the encoder in every block (Vaswani et al. 2017)."""

    def __init__(
        self,
        d_model: int = 256,
        n_layers: int = 4,
        n_heads: int = 4,
        d_ff: int | None = None,
        dropout: float = 0.1,
        attn_dropout: float = 0.0,
        positions: str = "sinusoidal",
        max_len: int = 4096,
    ):
        super().__init__()
        d_ff = 4 * d_model if d_ff is None else d_ff
        self.d_model = d_model
        add_positions(self, positions, max_len, d_model)
        self.blocks = nn.ModuleList(
            DecoderBlock(d_model, n_heads, d_ff, dropout, attn_dropout) for _ in range(n_layers)
        )
        self.ln_f = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, y, y_mask, memory, memory_mask):
        y = self.dropout(y + self.positions[: y.shape[1]])
        for block in self.blocks:
            y = block(y, memory, memory_mask)
        return self.ln_f(y).masked_fill(~y_mask[..., None], 0.0)

    def start(self, memory, memory_mask) -> DecoderState:
        """Decoding state: each block's cross-attention keys and values, and empty self-attention caches."""
        N, nh, D = memory.shape[0], self.blocks[0].attn.n_heads, self.d_model
        empty = memory.new_zeros(N, nh, 0, D // nh)
        caches = {f"{kv}{i}": empty for kv in "kv" for i in range(len(self.blocks))}
        return DecoderState(
            fixed={"memory_kv": [b.cross.keys_values(memory) for b in self.blocks], "mask": memory_mask}, rows=caches
        )

    def step(self, y, state: DecoderState):
        """The output (N, 1, D) at the next position, from its input there (N, 1, D) and the state."""
        t = state.rows["k0"].shape[2]
        y = self.dropout(y + self.positions[t : t + 1])
        for i, block in enumerate(self.blocks):
            y, state.rows[f"k{i}"], state.rows[f"v{i}"] = block.step(
                y, state.rows[f"k{i}"], state.rows[f"v{i}"], state.fixed["memory_kv"][i], state.fixed["mask"]
            )
        return self.ln_f(y), state


ENCODER = TransformerEncoder
DECODER = TransformerDecoder
