"""LSTM encoder: bidirectional by default, one direction in causal mode.

Padding is handled by packing, so the backward direction starts at each row's
last real token; a batch without padding skips packing and runs the bare
``nn.LSTM`` kernel.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from models.attention import CrossAttention
from models.chunking import in_row_chunks


class LSTMEncoder(nn.Module):
    def __init__(
        self,
        d_model: int = 256,
        causal: bool = False,
        n_layers: int = 4,
        dropout: float = 0.1,
        infer_chunk_tokens: int = 16384,
    ):
        super().__init__()
        bidirectional = not causal
        if d_model < 1 or (bidirectional and d_model % 2):
            raise ValueError(
                f"d_model={d_model} must be a positive even number for the bidirectional LSTM "
                "(half the width runs each direction)"
            )
        if n_layers < 1:
            raise ValueError(f"n_layers={n_layers} must be at least 1")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout={dropout} must be in [0, 1)")
        if infer_chunk_tokens < 0:
            raise ValueError(f"infer_chunk_tokens={infer_chunk_tokens} must be >= 0 (0: never chunk)")
        self.d_model, self.causal, self.receptive_field = d_model, causal, None
        self.infer_chunk_tokens = infer_chunk_tokens
        self.lstm = nn.LSTM(
            d_model,
            d_model // 2 if bidirectional else d_model,
            num_layers=n_layers,
            dropout=dropout if n_layers > 1 else 0.0,
            bidirectional=bidirectional,
            batch_first=True,
        )

    @staticmethod
    def width_multiple(causal: bool = False, **_) -> int:
        return 1 if causal else 2

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return in_row_chunks(self._encode, x, mask, self.infer_chunk_tokens)

    def _encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if bool(mask.all()):
            return self.lstm(x)[0]
        lengths = mask.sum(1).clamp(min=1).cpu()  # an empty row is run as one pad token, then zeroed
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])  # (B, T, D)
        return out.masked_fill(~mask[..., None], 0.0)


class LSTMDecoder(nn.Module):
    """A one-direction LSTM over the target prefix whose states attend over the encoder's
    (Luong et al. 2015): output ``tanh(W [h; context])``."""

    def __init__(self, d_model: int = 256, n_layers: int = 4, dropout: float = 0.1):
        super().__init__()
        self.d_model = d_model
        self.lstm = nn.LSTM(d_model, d_model, num_layers=n_layers, dropout=dropout if n_layers > 1 else 0.0,
                            batch_first=True)  # fmt: skip
        self.attn = CrossAttention(d_model, 1, 0.0)
        self.combine = nn.Linear(2 * d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, y, y_mask, memory, memory_mask):
        h, _ = self.lstm(y)  # (B, S, D); right padding cannot reach real positions of a forward LSTM
        context = self.attn(h, memory, memory_mask)
        out = torch.tanh(self.combine(self.dropout(torch.cat([h, context], dim=-1))))
        return out.masked_fill(~y_mask[..., None], 0.0)


ENCODER = LSTMEncoder
DECODER = LSTMDecoder
