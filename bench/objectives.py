"""Pre-training objectives as a task the one training loop trains (``bench.train``).

``ObjectiveData`` turns unlabelled sentences into batches of one objective and
``LanguageModel`` puts the objective's output on an encoder and its token embedding:

- ``mlm`` (BERT): 15% of tokens predicted, of them 80% shown as ``<mask>``, 10% as a
  random word, 10% unchanged; for a bidirectional encoder;
- ``clm`` (GPT): the next token, the encoder causal;
- ``elmo``: a forward and a backward language model, the two directions in separate
  stacks so neither sees the other's side (encoders with ``separate_directions``).

The data counts the tokens it has trained on and the FLOPs spent (3x the encoder's
forward FLOPs over the padded batch plus the tied output projection over the predicted
positions, the usual estimate for a training step), so that pre-training can stop and
save checkpoints at token counts.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from bench.textdata import length_batches, pad
from models.heads import TokenEmbedding

OBJECTIVES = ("mlm", "clm", "elmo")


class LanguageModel(nn.Module):
    """Encoder and token embedding with the pre-training objective's output: the embedding's tied
    projection (ELMo: each direction's half widened to d_model first)."""

    def __init__(self, encoder: nn.Module, inputs: TokenEmbedding, objective: str):
        super().__init__()
        self.encoder, self.inputs, self.objective = encoder, inputs, objective
        if objective == "elmo":
            half = encoder.d_model // 2
            self.forward_out, self.backward_out = nn.Linear(half, encoder.d_model), nn.Linear(half, encoder.d_model)

    def loss(self, ids: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy at the positions whose target is not -100 (ELMo: targets (2, B, T), next and previous)."""
        h = self.encoder(self.inputs(ids), mask)
        if self.objective != "elmo":
            pick = targets != -100
            return F.cross_entropy(self.inputs.logits(h[pick]), targets[pick])
        half = h.shape[-1] // 2
        losses = []
        for part, out, tgt in (
            (h[..., :half], self.forward_out, targets[0]),
            (h[..., half:], self.backward_out, targets[1]),
        ):
            pick = tgt != -100
            losses.append(F.cross_entropy(self.inputs.logits(out(part[pick])), tgt[pick]))
        return sum(losses) / 2


def mask_tokens(
    ids: torch.Tensor,
    mask: torch.Tensor,
    vocab_size: int,
    mask_id: int,
    n_special: int,
    prob: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: each real token is chosen with ``prob`` (at least one per row); a chosen token
    becomes ``mask_id`` (80%), a random word (10%) or stays (10%). Returns (inputs, targets), targets
    -100 where nothing is predicted."""
    chosen = (torch.rand(ids.shape, generator=generator) < prob) & mask
    lengths = mask.sum(1)
    forced = (
        torch.rand(len(ids), generator=generator) * lengths
    ).long()  # one position per row, in case none was chosen
    none = ~chosen.any(1) & (lengths > 0)
    chosen[none.nonzero().squeeze(1), forced[none]] = True
    roll = torch.rand(ids.shape, generator=generator)
    inputs = ids.clone()
    inputs[chosen & (roll < 0.8)] = mask_id
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[swap] = torch.randint(n_special, vocab_size, (int(swap.sum()),), generator=generator)
    return inputs, ids.masked_fill(~chosen, -100)


def shift_targets(ids: torch.Tensor, mask: torch.Tensor, direction: int = 1) -> torch.Tensor:
    """Language-model targets: the token ``direction`` steps ahead (1: next, -1: previous), -100
    where that step leaves the sentence."""
    targets = torch.full_like(ids, -100)
    if direction == 1:
        targets[:, :-1] = ids[:, 1:].masked_fill(~mask[:, 1:], -100)
    else:
        targets[:, 1:] = ids[:, :-1].masked_fill(~mask[:, 1:], -100)
    return targets.masked_fill(~mask, -100)


class ObjectiveData:
    """Sentences of token ids under one objective, with held-out validation and test sentences; the
    validation metric is the held-out cross-entropy (masks drawn the same way at every evaluation)."""

    selection_metric, higher_is_better = "cross_entropy", False

    def __init__(
        self,
        splits: dict[str, list[list[int]]],
        objective: str,
        vocab_size: int,
        mask_id: int,
        n_special: int,
        mask_prob: float,
        device,
        seed: int,
        encoder_flops: Callable[[int], int],
        embed_dim: int,
    ):
        self.splits, self.objective, self.device = splits, objective, device
        self.vocab_size, self.mask_id, self.n_special, self.mask_prob = vocab_size, mask_id, n_special, mask_prob
        self.encoder_flops, self.embed_dim = encoder_flops, embed_dim
        self.generator = torch.Generator().manual_seed(seed)
        self.tokens_seen, self.flops = 0, 0

    def _targets(self, ids: torch.Tensor, mask: torch.Tensor, generator: torch.Generator):
        if self.objective == "mlm":
            inputs, targets = mask_tokens(
                ids.cpu(), mask.cpu(), self.vocab_size, self.mask_id, self.n_special, self.mask_prob, generator
            )
            return inputs.to(self.device), targets.to(self.device)
        if self.objective == "clm":
            return ids, shift_targets(ids, mask, 1)
        return ids, torch.stack([shift_targets(ids, mask, 1), shift_targets(ids, mask, -1)])

    def batches(self, split: str, batch_size: int, shuffle: bool, seed: int, generator=None):
        sentences = self.splits[split]
        for rows in length_batches([len(s) for s in sentences], batch_size, shuffle, seed):
            ids, mask = pad([sentences[i] for i in rows], self.device)
            yield (*self._targets(ids, mask, generator or self.generator), mask)

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        inputs, targets, mask = batch
        B, T = inputs.shape
        self.tokens_seen += int(mask.sum())
        predicted = int((targets != -100).sum())
        self.flops += 3 * (B * self.encoder_flops(T) + 2 * predicted * self.embed_dim * self.vocab_size)
        return model.loss(inputs, mask, targets)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        was = model.training
        model.eval()
        total, weight = 0.0, 0
        fixed = torch.Generator().manual_seed(0)
        for inputs, targets, mask in self.batches(split, 64, False, 0, generator=fixed):
            n = int((targets != -100).sum())
            total += float(model.loss(inputs, mask, targets)) * n
            weight += n
        model.train(was)
        return {"cross_entropy": total / max(weight, 1)}
