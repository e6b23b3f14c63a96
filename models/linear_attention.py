"""Linear-attention encoder (Katharopoulos et al. 2020, "Transformers are RNNs").

The Transformer's pre-LN blocks with softmax attention replaced by a kernel
feature map: ``phi(x) = elu(x) + 1`` and

    out_t = phi(q_t) . S / (phi(q_t) . z),   S = sum_s phi(k_s) v_s^T,   z = sum_s phi(k_s)

over every real position s (bidirectional) or s <= t (causal), so the cost grows
linearly in T and a causal step carries only (S, z), like an RNN's state. Causal
mode runs in chunks of ``chunk_size`` positions: inside a chunk the masked
(chunk x chunk) products, across chunks the running sums, so there is no Python
loop over time steps. Padded keys are zeroed, so padding never reaches a real
position; positions are sinusoidal, added as in ``models.transformer``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.attention import CrossAttention, DecoderState
from models.transformer import POSITIONS, add_positions

EPS = 1e-6  # keeps the normaliser away from 0; phi > 0, so it is positive wherever a key is real


def phi(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x) + 1.0


def linear_attention(q, k, v, mask: torch.Tensor, causal: bool, chunk_size: int) -> torch.Tensor:
    """Attention with features phi(q), phi(k): q, k, v (B, nh, T, hs), mask (B, T) -> (B, nh, T, hs)."""
    q, k = phi(q), phi(k) * mask[:, None, :, None]  # a padded key adds nothing to S or z
    if not causal:
        S = k.transpose(-2, -1) @ v  # (B, nh, hs, hs)
        z = k.sum(dim=2, keepdim=True)  # (B, nh, 1, hs)
        return (q @ S) / ((q * z).sum(-1, keepdim=True) + EPS)
    B, nh, T, hs = q.shape
    C = min(chunk_size, T)
    pad = -T % C
    q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))  # padded positions: zero keys, outputs cut below
    n = (T + pad) // C
    q, k, v = (t.view(B, nh, n, C, hs) for t in (q, k, v))  # (B, nh, n, C, hs)
    scores = (q @ k.transpose(-2, -1)).tril()  # (B, nh, n, C, C): within the chunk, s <= t
    chunk_S = k.transpose(-2, -1) @ v  # (B, nh, n, hs, hs)
    chunk_z = k.sum(dim=3)  # (B, nh, n, hs)
    S_before = chunk_S.cumsum(dim=2) - chunk_S  # the sums over every earlier chunk
    z_before = chunk_z.cumsum(dim=2) - chunk_z
    num = scores @ v + q @ S_before  # (B, nh, n, C, hs)
    den = scores.sum(-1, keepdim=True) + q @ z_before[..., None]  # (B, nh, n, C, 1)
    return (num / (den + EPS)).view(B, nh, n * C, hs)[:, :, :T]


class LinearSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, chunk_size: int):
        super().__init__()
        self.n_heads, self.chunk_size = n_heads, chunk_size
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, causal: bool) -> torch.Tensor:
        B, T, D = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        y = linear_attention(*qkv, mask, causal, self.chunk_size)  # (B, nh, T, hs)
        return self.out(y.transpose(1, 2).reshape(B, T, D))

    def step(self, x: torch.Tensor, S: torch.Tensor, z: torch.Tensor):
        """One new position x (N, 1, D), given the sums S (N, nh, hs, hs) and z (N, nh, hs) over the
        earlier ones; returns the output and the sums with this position added."""
        N, _, D = x.shape
        q, k, v = self.qkv(x).view(N, 3, self.n_heads, D // self.n_heads).unbind(1)  # 3 x (N, nh, hs)
        q, k = phi(q), phi(k)
        S, z = S + k[..., :, None] * v[..., None, :], z + k
        y = (q[..., None, :] @ S).squeeze(-2) / ((q * z).sum(-1, keepdim=True) + EPS)  # (N, nh, hs)
        return self.out(y.reshape(N, 1, D)), S, z


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, chunk_size: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = LinearSelfAttention(d_model, n_heads, chunk_size)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, causal: bool) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.ln1(x), mask, causal))
        return x + self.dropout(self.ff(self.ln2(x)))


class LinearAttentionEncoder(nn.Module):
    family = "linear_attention"
    fine_width = "d_ff"

    def __init__(
        self,
        d_model: int = 256,
        causal: bool = False,
        n_layers: int = 4,
        n_heads: int = 4,
        d_ff: int | None = None,
        dropout: float = 0.1,
        chunk_size: int = 64,
        positions: str = "sinusoidal",
        max_len: int = 4096,
    ):
        super().__init__()
        if d_model < 1 or n_heads < 1 or d_model % n_heads:
            raise ValueError(f"n_heads={n_heads} must divide d_model={d_model}")
        d_ff = 4 * d_model if d_ff is None else d_ff
        if d_ff < 1:
            raise ValueError(f"d_ff={d_ff} must be a positive integer")
        if chunk_size < 1:
            raise ValueError(f"chunk_size={chunk_size} must be a positive integer")
        if positions not in POSITIONS:
            raise ValueError(f"positions={positions!r} must be one of {', '.join(POSITIONS)}")
        if max_len < 1:
            raise ValueError(f"max_len={max_len} must be a positive integer")
        self.d_model, self.causal, self.receptive_field = d_model, causal, None
        self.max_len = max_len
        add_positions(self, positions, max_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, d_ff, dropout, chunk_size) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    @staticmethod
    def width_multiple(n_heads: int = 4, **_) -> int:
        return n_heads

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.max_len:
            raise ValueError(f"sequence length {x.shape[1]} exceeds max_len={self.max_len}")
        x = self.dropout(x + self.positions[: x.shape[1]])
        for block in self.blocks:
            x = block(x, mask, self.causal)
        return self.ln_f(x).masked_fill(~mask[..., None], 0.0)


class DecoderBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, chunk_size: int):
        super().__init__()
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = LinearSelfAttention(d_model, n_heads, chunk_size)
        self.cross = CrossAttention(d_model, n_heads, 0.0)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(self, y, y_mask, memory, memory_mask):
        y = y + self.dropout(self.attn(self.ln1(y), y_mask, causal=True))
        y = y + self.dropout(self.cross(self.ln2(y), memory, memory_mask))
        return y + self.dropout(self.ff(self.ln3(y)))

    def step(self, y, S, z, memory_kv, memory_mask):
        a, S, z = self.attn.step(self.ln1(y), S, z)
        y = y + self.dropout(a)
        y = y + self.dropout(self.cross.attend(self.ln2(y), memory_kv, memory_mask))
        return y + self.dropout(self.ff(self.ln3(y))), S, z


class LinearAttentionDecoder(nn.Module):
    """Causal linear self-attention and (softmax) cross-attention to the encoder in every block; a decoding
    step carries each block's sums (S, z), so it costs the same at any length."""

    def __init__(
        self,
        d_model: int = 256,
        n_layers: int = 4,
        n_heads: int = 4,
        d_ff: int | None = None,
        dropout: float = 0.1,
        chunk_size: int = 64,
        positions: str = "sinusoidal",
        max_len: int = 4096,
    ):
        super().__init__()
        d_ff = 4 * d_model if d_ff is None else d_ff
        self.d_model, self.n_heads = d_model, n_heads
        add_positions(self, positions, max_len, d_model)
        self.blocks = nn.ModuleList(DecoderBlock(d_model, n_heads, d_ff, dropout, chunk_size) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, y, y_mask, memory, memory_mask):
        y = self.dropout(y + self.positions[: y.shape[1]])
        for block in self.blocks:
            y = block(y, y_mask, memory, memory_mask)
        return self.ln_f(y).masked_fill(~y_mask[..., None], 0.0)

    def start(self, memory, memory_mask) -> DecoderState:
        """Decoding state: each block's cross-attention keys and values; zero sums; position 0."""
        N, nh = memory.shape[0], self.n_heads
        hs = self.d_model // nh
        rows = {"t": torch.zeros(N, dtype=torch.long, device=memory.device)}
        for i in range(len(self.blocks)):
            rows[f"S{i}"], rows[f"z{i}"] = memory.new_zeros(N, nh, hs, hs), memory.new_zeros(N, nh, hs)
        fixed = {"memory_kv": [b.cross.keys_values(memory) for b in self.blocks], "mask": memory_mask}
        return DecoderState(fixed=fixed, rows=rows)

    def step(self, y, state: DecoderState):
        """The output (N, 1, D) at the next position, from its input there (N, 1, D) and the state."""
        y = self.dropout(y + self.positions[state.rows["t"]][:, None])
        for i, block in enumerate(self.blocks):
            y, state.rows[f"S{i}"], state.rows[f"z{i}"] = block.step(
                y, state.rows[f"S{i}"], state.rows[f"z{i}"], state.fixed["memory_kv"][i], state.fixed["mask"]
            )
        state.rows["t"] = state.rows["t"] + 1
        return self.ln_f(y), state


ENCODER = LinearAttentionEncoder
DECODER = LinearAttentionDecoder
