"""Selective state-space encoder in the manner of Mamba (Gu and Dao 2023), in plain PyTorch.

Each layer is a pre-norm residual block around a selective SSM mixer:

    u, g = in_proj(x)                        two branches of width E = expand * d_model
    u = silu(causal depthwise conv(u))       a short convolution (d_conv taps)
    dt, B, C = softplus(.), ., .             all three depend on the input: the "selection"
    h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t^T   per head, a (head width x d_state) state
    y_t = h_t C_t + D u_t,   out = out_proj(y * silu(g))

with one decay rate A per head, as in Mamba-2 (Dao and Gu 2024), so that the
recurrence over a chunk of ``chunk_size`` positions is a masked matrix product
(the "state-space duality"), and the state is carried from chunk to chunk: the
Python loop is over chunks, never time steps, and the arithmetic is products
the CPU's GEMM kernels run. ``selective=False`` is the time-invariant ablation
(dt, B and C learned constants, as in S4D): the contrast of Gu and Dao's selective copying. Bidirectional mode adds a second mixer that reads
each row reversed within its length (so right padding stays behind the real
tokens and never reaches them); causal mode has the forward one. The scan's
element-wise FLOPs, which FlopCounterMode cannot see, are declared by
``uncounted_flops``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.attention import CrossAttention, DecoderState
from models.lstm import row_reversal


def ssd_scan(x, dt, A, B, C, chunk_size: int) -> torch.Tensor:
    """h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T, y_t = h_t C_t, h_0 = 0, per head: x (b, T, H, P); dt (b, T, H);
    A (H,) negative; B, C (b, T, N) -> y (b, T, H, P). Within a chunk the recurrence is a masked matrix product
    (decays exp(cum_t - cum_s), s <= t: exponents <= 0, so nothing overflows); across chunks the state is carried."""
    b, T, H, P = x.shape
    L = min(chunk_size, T)
    pad = -T % L  # padded steps at the end: dt = 0 (no decay, no input), their outputs cut below
    x, B, C = (F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad)) for t in (x, B, C))
    dt = F.pad(dt, (0, 0, 0, pad))
    n = (T + pad) // L
    x, dt, B, C = x.view(b, n, L, H, P), dt.view(b, n, L, H), B.view(b, n, L, -1), C.view(b, n, L, -1)
    cum = (dt * A).cumsum(dim=2)  # (b, n, L, H): log of the decay since the chunk began
    below = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()[..., None]  # (L, L, 1): s <= t
    seg = (cum[:, :, :, None] - cum[:, :, None]).masked_fill(~below, float("-inf"))  # (b, n, L_t, L_s, H)
    xdt = x * dt[..., None]  # (b, n, L, H, P)
    weights = (C @ B.transpose(-1, -2))[..., None] * torch.exp(seg)  # (b, n, L_t, L_s, H)
    y = torch.einsum("bntsh,bnshp->bnthp", weights, xdt)  # inside the chunk
    tail = torch.exp(cum[:, :, -1:] - cum)  # (b, n, L, H): decay from each step to the chunk's end
    chunk_states = torch.einsum("bnsh,bnshp,bnsk->bnhpk", tail, xdt, B)  # (b, n, H, P, N), each from zero
    chunk_decay = torch.exp(cum[:, :, -1])  # (b, n, H)
    h, entering = x.new_zeros(b, H, P, B.shape[-1]), []
    for c in range(n):  # a loop over chunks, not time steps
        entering.append(h)
        h = chunk_decay[:, c, :, None, None] * h + chunk_states[:, c]
    y = y + torch.einsum("bnth,bntk,bnhpk->bnthp", torch.exp(cum), C, torch.stack(entering, dim=1))
    return y.reshape(b, n * L, H, P)[:, :T]


class SelectiveSSM(nn.Module):
    """The causal mixer: the input's projections, the short convolution, the selective scan, the gate."""

    def __init__(
        self, d_model: int, d_state: int, expand: int, d_conv: int, n_heads: int, chunk_size: int, selective: bool
    ):
        super().__init__()
        E = expand * d_model
        if E % n_heads:
            raise ValueError(f"n_heads={n_heads} must divide the inner width expand * d_model = {E}")
        self.d_inner, self.d_state, self.d_conv, self.chunk_size = E, d_state, d_conv, chunk_size
        self.n_heads = n_heads
        self.in_proj = nn.Linear(d_model, 2 * E, bias=False)
        self.conv = nn.Conv1d(E, E, d_conv, groups=E)
        if selective:
            self.x_proj = nn.Linear(E, 2 * d_state + n_heads, bias=False)  # B, C and each head's step size
        else:  # time-invariant (an S4D-like ablation): B, C and the step sizes are parameters, not functions of u
            self.x_proj = None
            self.B_fixed = nn.Parameter(torch.randn(d_state) / math.sqrt(d_state))
            self.C_fixed = nn.Parameter(torch.randn(d_state) / math.sqrt(d_state))
        self.dt_bias = nn.Parameter(torch.empty(n_heads))
        self.A_log = nn.Parameter(torch.log(torch.linspace(1, 16, n_heads)))  # decay rates, one per head
        self.D = nn.Parameter(torch.ones(E))
        self.out_proj = nn.Linear(E, d_model, bias=False)
        with torch.no_grad():  # step sizes start log-uniform in [0.001, 0.1], as in Mamba
            dt = torch.exp(torch.rand(n_heads) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
            self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)

    def _selection(self, u: torch.Tensor):
        if self.x_proj is None:
            shape = u.shape[:-1]
            dt = F.softplus(self.dt_bias).expand(*shape, self.n_heads)
            return dt, self.B_fixed.expand(*shape, self.d_state), self.C_fixed.expand(*shape, self.d_state)
        B, C, dt = self.x_proj(u).split([self.d_state, self.d_state, self.n_heads], dim=-1)
        return F.softplus(dt + self.dt_bias), B, C

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, gate = self.in_proj(x).chunk(2, dim=-1)  # (b, T, E) each
        u = F.silu(self.conv(F.pad(u.transpose(1, 2), (self.d_conv - 1, 0))).transpose(1, 2))  # causal
        dt, B, C = self._selection(u)
        b, T, E = u.shape
        heads = u.view(b, T, self.n_heads, E // self.n_heads)  # (b, T, H, P)
        y = ssd_scan(heads, dt, -torch.exp(self.A_log), B, C, self.chunk_size).reshape(b, T, E) + u * self.D
        return self.out_proj(y * F.silu(gate))

    def step(self, x: torch.Tensor, window: torch.Tensor, h: torch.Tensor):
        """One new position x (N, 1, D), given the last d_conv - 1 conv inputs (N, d_conv - 1, E) and the
        state h (N, H, P, d_state); returns the output and the updated window and state."""
        u, gate = self.in_proj(x).chunk(2, dim=-1)  # (N, 1, E)
        window = torch.cat([window, u], dim=1)  # (N, d_conv, E): exactly the convolution's reach
        u = F.silu(self.conv(window.transpose(1, 2)).transpose(1, 2))  # (N, 1, E)
        dt, B, C = (t[:, 0] for t in self._selection(u))  # (N, H), (N, d_state), (N, d_state)
        heads = u[:, 0].view(u.shape[0], self.n_heads, -1)  # (N, H, P)
        decay = torch.exp(dt * -torch.exp(self.A_log))[..., None, None]  # (N, H, 1, 1)
        h = decay * h + (heads * dt[..., None])[..., None] * B[:, None, None, :]
        y = (h @ C[:, None, :, None]).squeeze(-1).reshape(u.shape[0], 1, -1) + u * self.D
        return self.out_proj(y * F.silu(gate)), window[:, 1:], h

    def uncounted_flops(self, seq_len: int) -> int:
        """The scan's element-wise FLOPs over one sequence that FlopCounterMode does not see (it counts the
        products): per head, the chunk's masked decays (difference, exp, product: 3 per pair) and the carry."""
        L = min(self.chunk_size, seq_len)
        chunks = -(-seq_len // L)
        state = self.d_inner * self.d_state
        return 3 * chunks * L * L * self.n_heads + 2 * chunks * state


class Block(nn.Module):
    def __init__(self, d_model: int, bidirectional: bool, dropout: float, **mixer):
        super().__init__()
        self.norm = nn.RMSNorm(d_model)
        self.forward_mixer = SelectiveSSM(d_model, **mixer)
        self.backward_mixer = SelectiveSSM(d_model, **mixer) if bidirectional else None
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, reverse) -> torch.Tensor:
        h = self.norm(x)
        out = self.forward_mixer(h)
        if self.backward_mixer is not None:
            out = out + reverse(self.backward_mixer(reverse(h)))
        return x + self.dropout(out)


class SSMEncoder(nn.Module):
    family = "ssm"

    def __init__(
        self,
        d_model: int = 256,
        causal: bool = False,
        n_layers: int = 4,
        d_state: int = 16,
        expand: int = 2,
        d_conv: int = 4,
        n_heads: int = 4,
        chunk_size: int = 64,
        dropout: float = 0.1,
        selective: bool = True,
    ):
        super().__init__()
        sizes = {"d_model": d_model, "d_state": d_state, "expand": expand, "d_conv": d_conv}
        for name, value in {**sizes, "n_heads": n_heads, "chunk_size": chunk_size}.items():
            if value < 1:
                raise ValueError(f"{name}={value} must be a positive integer")
        self.d_model, self.causal, self.receptive_field = d_model, causal, None
        mixer = {"d_state": d_state, "expand": expand, "d_conv": d_conv, "n_heads": n_heads, "chunk_size": chunk_size}
        mixer["selective"] = selective
        self.blocks = nn.ModuleList(Block(d_model, not causal, dropout, **mixer) for _ in range(n_layers))
        self.norm_f = nn.RMSNorm(d_model)

    @staticmethod
    def width_multiple(n_heads: int = 4, expand: int = 2, **_) -> int:
        return n_heads // math.gcd(n_heads, expand)  # n_heads divides expand * d_model

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        reverse = None if self.causal else row_reversal(mask)
        for block in self.blocks:
            x = block(x, reverse)
        return self.norm_f(x).masked_fill(~mask[..., None], 0.0)


class DecoderBlock(nn.Module):
    def __init__(self, d_model: int, dropout: float, **mixer):
        super().__init__()
        self.norm1, self.norm2 = nn.RMSNorm(d_model), nn.RMSNorm(d_model)
        self.mixer = SelectiveSSM(d_model, **mixer)
        self.cross = CrossAttention(d_model, 1, 0.0)
        self.dropout = nn.Dropout(dropout)

    def forward(self, y, memory, memory_mask):
        y = y + self.dropout(self.mixer(self.norm1(y)))
        return y + self.dropout(self.cross(self.norm2(y), memory, memory_mask))

    def step(self, y, window, h, memory_kv, memory_mask):
        out, window, h = self.mixer.step(self.norm1(y), window, h)
        y = y + self.dropout(out)
        return y + self.dropout(self.cross.attend(self.norm2(y), memory_kv, memory_mask)), window, h


class SSMDecoder(nn.Module):
    """Causal selective-SSM blocks, each followed by cross-attention to the encoder; a decoding step carries
    each block's convolution window and state, so it costs the same at any length."""

    def __init__(
        self,
        d_model: int = 256,
        n_layers: int = 4,
        d_state: int = 16,
        expand: int = 2,
        d_conv: int = 4,
        n_heads: int = 4,
        chunk_size: int = 64,
        dropout: float = 0.1,
        selective: bool = True,
    ):
        super().__init__()
        self.d_model = d_model
        mixer = {"d_state": d_state, "expand": expand, "d_conv": d_conv, "n_heads": n_heads, "chunk_size": chunk_size}
        mixer["selective"] = selective
        self.blocks = nn.ModuleList(DecoderBlock(d_model, dropout, **mixer) for _ in range(n_layers))
        self.norm_f = nn.RMSNorm(d_model)

    def forward(self, y, y_mask, memory, memory_mask):
        for block in self.blocks:  # right padding comes after every real target position: causal hides it
            y = block(y, memory, memory_mask)
        return self.norm_f(y).masked_fill(~y_mask[..., None], 0.0)

    def start(self, memory, memory_mask) -> DecoderState:
        """Decoding state: each block's cross-attention keys and values; zero windows and states."""
        N, rows = memory.shape[0], {}
        for i, block in enumerate(self.blocks):
            m = block.mixer
            rows[f"window{i}"] = memory.new_zeros(N, m.d_conv - 1, m.d_inner)
            rows[f"h{i}"] = memory.new_zeros(N, m.n_heads, m.d_inner // m.n_heads, m.d_state)
        fixed = {"memory_kv": [b.cross.keys_values(memory) for b in self.blocks], "mask": memory_mask}
        return DecoderState(fixed=fixed, rows=rows)

    def step(self, y, state: DecoderState):
        """The output (N, 1, D) at the next position, from its input there (N, 1, D) and the state."""
        for i, block in enumerate(self.blocks):
            y, state.rows[f"window{i}"], state.rows[f"h{i}"] = block.step(
                y, state.rows[f"window{i}"], state.rows[f"h{i}"], state.fixed["memory_kv"][i], state.fixed["mask"]
            )
        return self.norm_f(y), state


ENCODER = SSMEncoder
DECODER = SSMDecoder
