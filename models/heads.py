"""Inputs and task heads around an encoder: identical for every family.

A task model is ``input layer -> encoder -> head``; the input layer maps token
ids (or features) to width ``d_model`` and the heads read the encoder's
``(B, T, D)`` output, so families differ only in how they mix positions. The
embedding has its own width ``embed_dim``, projected to ``d_model`` when they
differ, so that every family gets the same embedding table.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class TokenEmbedding(nn.Module):
    """Token ids (B, T) -> (B, T, d_model); id 0 is padding. Initialised at std dim^-0.5 and
    scaled by sqrt(dim), so it can also serve as a tied output projection."""

    def __init__(self, vocab_size: int, d_model: int, embed_dim: int | None = None):
        super().__init__()
        embed_dim = embed_dim or d_model
        self.table = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        nn.init.normal_(self.table.weight, std=embed_dim**-0.5)
        with torch.no_grad():
            self.table.weight[0].zero_()
        self.scale = math.sqrt(embed_dim)
        self.proj = nn.Linear(embed_dim, d_model) if embed_dim != d_model else nn.Identity()
        self.unproj = nn.Linear(d_model, embed_dim) if embed_dim != d_model else nn.Identity()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.table(ids) * self.scale)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """(B, T, d_model) -> (B, T, vocab): the tied output projection."""
        return self.unproj(h) @ self.table.weight.T


class FeatureInput(nn.Module):
    """Real-valued features (B, T, F) -> (B, T, d_model)."""

    def __init__(self, n_features: int, d_model: int):
        super().__init__()
        self.proj = nn.Linear(n_features, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


POOLINGS = ("mean", "max", "attention")


class Pooling(nn.Module):
    """(B, T, D) and mask (B, T) -> (B, D), over real positions only."""

    def __init__(self, d_model: int, kind: str = "mean"):
        super().__init__()
        if kind not in POOLINGS:
            raise ValueError(f"pooling={kind!r} must be one of {', '.join(POOLINGS)}")
        self.kind = kind
        self.score = nn.Linear(d_model, 1) if kind == "attention" else None

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask[..., None]  # (B, T, 1)
        if self.kind == "mean":
            return (h * keep).sum(1) / keep.sum(1).clamp(min=1)
        if self.kind == "max":
            return h.masked_fill(~keep, float("-inf")).amax(1).nan_to_num(neginf=0.0)
        weights = self.score(h).masked_fill(~keep, float("-inf")).softmax(1).nan_to_num()  # (B, T, 1)
        return (weights * h).sum(1)


def mlp(d_in: int, d_hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Dropout(dropout), nn.Linear(d_in, d_hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_hidden, d_out)
    )


class TokenClassifier(nn.Module):
    """(B, T, D) -> (B, T, n_classes)."""

    def __init__(self, d_model: int, n_classes: int, dropout: float = 0.1):
        super().__init__()
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(d_model, n_classes))

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.out(h)


class SequenceClassifier(nn.Module):
    """Pooled features -> (B, n_classes)."""

    def __init__(self, d_model: int, n_classes: int, pooling: str = "mean", dropout: float = 0.1):
        super().__init__()
        self.pool = Pooling(d_model, pooling)
        self.out = mlp(d_model, d_model, n_classes, dropout)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.pool(h, mask))


class PairClassifier(nn.Module):
    """Siamese: pooled u, v -> [u; v; |u-v|; u*v] -> (B, n_classes). Cross: one pooled vector of
    the jointly encoded pair -> (B, n_classes)."""

    def __init__(self, d_model: int, n_classes: int, mode: str = "siamese", pooling: str = "max", dropout: float = 0.1):
        super().__init__()
        if mode not in ("siamese", "cross"):
            raise ValueError(f"pair mode={mode!r} must be siamese or cross")
        self.mode = mode
        self.pool = Pooling(d_model, pooling)
        self.out = mlp(4 * d_model if mode == "siamese" else d_model, d_model, n_classes, dropout)

    def forward(self, h_a, mask_a, h_b=None, mask_b=None) -> torch.Tensor:
        if self.mode == "cross":
            return self.out(self.pool(h_a, mask_a))
        u, v = self.pool(h_a, mask_a), self.pool(h_b, mask_b)
        return self.out(torch.cat([u, v, (u - v).abs(), u * v], dim=-1))


class Regressor(nn.Module):
    """(B, T, D) -> (B, T): one real number per position."""

    def __init__(self, d_model: int):
        super().__init__()
        self.out = nn.Linear(d_model, 1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.out(h).squeeze(-1)


class Tagger(nn.Module):
    """Token ids -> per-token logits (B, T, n_classes); also the probes read out at positions."""

    def __init__(self, encoder: nn.Module, inputs: nn.Module, head: nn.Module):
        super().__init__()
        self.inputs, self.encoder, self.head = inputs, encoder, head

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.inputs(x), mask), mask)


class Classifier(Tagger):
    """Token ids -> one prediction per sequence (the head pools)."""


class PairModel(nn.Module):
    """Two token sequences -> (B, n_classes), siamese (one encoder, twice) or cross-encoded
    (the caller joins A, separator, B into ``a`` and passes no ``b``)."""

    def __init__(self, encoder: nn.Module, inputs: nn.Module, head: PairClassifier):
        super().__init__()
        self.inputs, self.encoder, self.head = inputs, encoder, head

    def forward(self, a, mask_a, b=None, mask_b=None) -> torch.Tensor:
        h_a = self.encoder(self.inputs(a), mask_a)
        if self.head.mode == "cross":
            return self.head(h_a, mask_a)
        return self.head(h_a, mask_a, self.encoder(self.inputs(b), mask_b), mask_b)
