"""GRU encoder (Cho et al. 2014): bidirectional by default, one direction in causal mode.

The LSTM's twin with three gates instead of four and no separate cell state, so
about 3/4 of its parameters per width. Padding is handled as in ``models.lstm``:
the forward direction reads real tokens before any padding, and the backward
direction runs, layer by layer with the same weights and fused kernel, on each
row reversed within its length; a batch without padding runs the bare ``nn.GRU``.
``stacking="separate"`` runs the two directions as independent stacks, as the
ELMo objective's pair of language models needs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.attention import CrossAttention, DecoderState
from models.lstm import row_reversal


class GRUEncoder(nn.Module):
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
                f"d_model={d_model} must be a positive even number for the bidirectional GRU "
                "(half the width runs each direction)"
            )
        self.d_model, self.causal, self.receptive_field = d_model, causal, None
        self.separate = bidirectional and stacking == "separate"

        def stack(hidden: int, both: bool) -> nn.GRU:
            between = dropout if n_layers > 1 else 0.0
            return nn.GRU(d_model, hidden, num_layers=n_layers, dropout=between, bidirectional=both, batch_first=True)

        if self.separate:
            self.gru, self.gru_backward = stack(d_model // 2, False), stack(d_model // 2, False)
        else:
            self.gru = stack(d_model // 2 if bidirectional else d_model, bidirectional)

    @staticmethod
    def width_multiple(causal: bool = False, **_) -> int:
        return 1 if causal else 2

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.separate:
            reverse = row_reversal(mask)
            h = torch.cat([self.gru(x)[0], reverse(self.gru_backward(reverse(x))[0])], dim=-1)
        elif self.causal or bool(mask.all()):
            h = self.gru(x)[0]
        else:
            h = self._bidirectional_padded(x, mask)
        return h.masked_fill(~mask[..., None], 0.0)

    def _bidirectional_padded(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        gru = self.gru
        reverse = row_reversal(mask)
        h = x
        zeros = x.new_zeros(1, x.shape[0], gru.hidden_size)
        for layer in range(gru.num_layers):
            outputs = []
            for suffix, backward in (("", False), ("_reverse", True)):
                names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                weights = [getattr(gru, f"{name}_l{layer}{suffix}") for name in names]
                # torch.gru(input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first)
                out = torch.gru(
                    reverse(h) if backward else h, zeros, weights, True, 1, 0.0, self.training, False, True
                )[0]
                outputs.append(reverse(out) if backward else out)
            h = torch.cat(outputs, dim=-1)  # (B, T, D)
            if layer < gru.num_layers - 1:
                h = F.dropout(h, gru.dropout, self.training)
        return h


class GRUDecoder(nn.Module):
    """A one-direction GRU over the target prefix whose states attend over the encoder's
    (Luong et al. 2015): output ``tanh(W [h; context])``."""

    def __init__(self, d_model: int = 256, n_layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.d_model = d_model
        between = dropout if n_layers > 1 else 0.0
        self.gru = nn.GRU(d_model, d_model, num_layers=n_layers, dropout=between, batch_first=True)
        self.attn = CrossAttention(d_model, 1, 0.0)
        self.combine = nn.Linear(2 * d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, y, y_mask, memory, memory_mask):
        h, _ = self.gru(y)  # (B, S, D); right padding cannot reach real positions of a forward GRU
        context = self.attn(h, memory, memory_mask)
        out = torch.tanh(self.combine(self.dropout(torch.cat([h, context], dim=-1))))
        return out.masked_fill(~y_mask[..., None], 0.0)

    def start(self, memory, memory_mask) -> DecoderState:
        """Decoding state: the attention's keys and values, and zero GRU states (N, layers, D)."""
        zeros = memory.new_zeros(memory.shape[0], self.gru.num_layers, self.d_model)
        fixed = {"memory_kv": self.attn.keys_values(memory), "mask": memory_mask}
        return DecoderState(fixed=fixed, rows={"h": zeros})

    def step(self, y, state: DecoderState):
        """The output (N, 1, D) at the next position, from its input there (N, 1, D) and the state."""
        h, hn = self.gru(y, state.rows["h"].transpose(0, 1).contiguous())
        state.rows["h"] = hn.transpose(0, 1)
        context = self.attn.attend(h, state.fixed["memory_kv"], state.fixed["mask"])
        return torch.tanh(self.combine(self.dropout(torch.cat([h, context], dim=-1)))), state


ENCODER = GRUEncoder
DECODER = GRUDecoder
