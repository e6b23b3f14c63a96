"""LSTM encoder: bidirectional by default, one direction in causal mode.

Padding never reaches real positions, and no sequence is packed (packing made
a training step 3x slower on the CPU): a forward direction reads real tokens
before any padding, and the backward direction runs, layer by layer with the
same weights and fused kernel, on each row reversed within its length. A batch
without padding runs the bare ``nn.LSTM``.

``stacking="separate"`` runs the two directions as independent stacks (ELMo
style), so that no layer of one direction sees the other's states: the forward
half of the output at t has read only tokens up to t, the backward half only
tokens from t on, which a pair of language models needs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.attention import CrossAttention, DecoderState


def row_reversal(mask: torch.Tensor):
    """A function that reverses each row of a (B, T, H) tensor within its real length (mask (B, T));
    padding stays in place, and the function is its own inverse."""
    T = mask.shape[1]
    steps = torch.arange(T, device=mask.device)[None, :]  # (1, T)
    lengths = mask.sum(1, keepdim=True)  # (B, 1)
    order = torch.where(steps < lengths, lengths - 1 - steps, steps)

    def reverse(h: torch.Tensor) -> torch.Tensor:
        return h.gather(1, order[..., None].expand_as(h))

    return reverse


class LSTMEncoder(nn.Module):
    family = "rnn"
    separate_directions = True  # stacking="separate": ELMo's pair of language models

    def __init__(
        self,
        d_model: int = 256,
        causal: bool = False,
        n_layers: int = 2,
        dropout: float = 0.1,
        stacking: str = "joint",
    ):
        super().__init__()
        bidirectional = not causal
        if stacking not in ("joint", "separate"):
            raise ValueError(f"stacking={stacking!r} must be joint or separate")
        if d_model < 1 or (bidirectional and d_model % 2):
            raise ValueError(
                f"d_model={d_model} must be a positive even number for the bidirectional LSTM "
                "(half the width runs each direction)"
            )
        self.d_model, self.causal, self.receptive_field = d_model, causal, None
        self.separate = bidirectional and stacking == "separate"

        def stack(hidden: int, both: bool) -> nn.LSTM:
            return nn.LSTM(
                d_model,
                hidden,
                num_layers=n_layers,
                dropout=dropout if n_layers > 1 else 0.0,
                bidirectional=both,
                batch_first=True,
            )

        if self.separate:
            self.lstm, self.lstm_backward = stack(d_model // 2, False), stack(d_model // 2, False)
        else:
            self.lstm = stack(d_model // 2 if bidirectional else d_model, bidirectional)

    @staticmethod
    def width_multiple(causal: bool = False, **_) -> int:
        return 1 if causal else 2

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.separate:
            reverse = row_reversal(mask)
            h = torch.cat([self.lstm(x)[0], reverse(self.lstm_backward(reverse(x))[0])], dim=-1)
            return h.masked_fill(~mask[..., None], 0.0)
        if self.causal or bool(mask.all()):
            return self.lstm(x)[0].masked_fill(~mask[..., None], 0.0)
        return self._bidirectional_padded(x, mask).masked_fill(~mask[..., None], 0.0)

    def _bidirectional_padded(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lstm = self.lstm
        B = x.shape[0]
        reverse = row_reversal(mask)
        h = x
        zeros = x.new_zeros(1, B, lstm.hidden_size)
        for layer in range(lstm.num_layers):
            outputs = []
            for suffix, backward in (("", False), ("_reverse", True)):
                weights = [
                    getattr(lstm, f"{name}_l{layer}{suffix}")
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                ]
                out = torch.lstm(
                    reverse(h) if backward else h, (zeros, zeros), weights, True, 1, 0.0, self.training, False, True
                )[0]
                outputs.append(reverse(out) if backward else out)
            h = torch.cat(outputs, dim=-1)  # (B, T, D)
            if layer < lstm.num_layers - 1:
                h = F.dropout(h, lstm.dropout, self.training)
        return h


class LSTMDecoder(nn.Module):
    """A one-direction LSTM over the target prefix whose states attend over the encoder's
    (Luong et al. 2015): output ``tanh(W [h; context])``."""

    def __init__(self, d_model: int = 256, n_layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.d_model = d_model
        self.lstm = nn.LSTM(
            d_model, d_model, num_layers=n_layers, dropout=dropout if n_layers > 1 else 0.0, batch_first=True
        )
        self.attn = CrossAttention(d_model, 1, 0.0)
        self.combine = nn.Linear(2 * d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, y, y_mask, memory, memory_mask):
        h, _ = self.lstm(y)  # (B, S, D); right padding cannot reach real positions of a forward LSTM
        context = self.attn(h, memory, memory_mask)
        out = torch.tanh(self.combine(self.dropout(torch.cat([h, context], dim=-1))))
        return out.masked_fill(~y_mask[..., None], 0.0)

    def start(self, memory, memory_mask) -> DecoderState:
        """Decoding state: the attention's keys and values, and zero LSTM states (N, layers, D)."""
        zeros = memory.new_zeros(memory.shape[0], self.lstm.num_layers, self.d_model)
        return DecoderState(
            fixed={"memory_kv": self.attn.keys_values(memory), "mask": memory_mask}, rows={"h": zeros, "c": zeros}
        )

    def step(self, y, state: DecoderState):
        """The output (N, 1, D) at the next position, from its input there (N, 1, D) and the state."""
        h0, c0 = (state.rows[k].transpose(0, 1).contiguous() for k in ("h", "c"))
        h, (hn, cn) = self.lstm(y, (h0, c0))
        state.rows["h"], state.rows["c"] = hn.transpose(0, 1), cn.transpose(0, 1)
        context = self.attn.attend(h, state.fixed["memory_kv"], state.fixed["mask"])
        return torch.tanh(self.combine(self.dropout(torch.cat([h, context], dim=-1)))), state


ENCODER = LSTMEncoder
DECODER = LSTMDecoder
