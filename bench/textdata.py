"""Encoded text tasks: batches, loss and metrics for each of the four task types.

Each class implements ``bench.train.TaskData`` over a ``DatasetDict`` of the
contract in ``bench.data``. Batches group examples of similar length (sorted
within shuffled chunks), so little time goes on padding. Gold labels the
training split never saw are scored as errors, never mapped to a known label.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench import metrics

UNSEEN = -1  # a gold label the training split never had: always counted wrong


def length_batches(lengths: list[int], batch_size: int, shuffle: bool, seed: int) -> list[list[int]]:
    """Index batches of similar length: shuffled, sorted within chunks of 50 batches, batch order shuffled."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lengths), generator=g).tolist() if shuffle else list(range(len(lengths)))
    chunk, batches = 50 * batch_size, []
    for i in range(0, len(order), chunk):
        part = sorted(order[i : i + chunk], key=lambda j: lengths[j])
        batches += [part[k : k + batch_size] for k in range(0, len(part), batch_size)]
    if shuffle:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
    return batches


def pad(seqs: list[list[int]], device, value: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (B, T) and their mask (B, T)."""
    T = max(1, max(len(s) for s in seqs))
    ids = torch.full((len(seqs), T), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    mask = torch.arange(T)[None, :] < torch.tensor([len(s) for s in seqs])[:, None]
    return ids.to(device), mask.to(device)


class _TextData:
    selection_metric, higher_is_better = "accuracy", True

    def __init__(self, data, device, max_len: int):
        self.data, self.device, self.max_len = data, device, max_len
        self.encoded = {split: [self.encode(row) for row in data[split]] for split in data}
        self.tokens_seen = 0

    def length(self, example) -> int:
        return len(example[0])

    def batches(self, split, batch_size, shuffle, seed):
        examples = self.encoded[split]
        for rows in length_batches([self.length(e) for e in examples], batch_size, shuffle, seed):
            yield self.collate([examples[i] for i in rows])


class LabellingData(_TextData):
    """Token ids -> one tag per token; token accuracy, and span F1 when the tags are BIO spans."""

    def __init__(self, data, vocab, labels, device, max_len=256):
        self.vocab, self.labels = vocab, labels
        self.bio = metrics.is_bio(labels.names)
        super().__init__(data, device, max_len)

    def encode(self, row):
        tokens, tags = row["tokens"][: self.max_len], row["tags"][: self.max_len]
        return self.vocab.encode(tokens), [self.labels.encode(t, unknown=UNSEEN) for t in tags], tags

    def collate(self, examples):
        ids, mask = pad([e[0] for e in examples], self.device)
        tags, _ = pad([e[1] for e in examples], self.device, value=-100)
        return ids, mask, tags, [e[2] for e in examples]

    def loss(self, model, batch):
        ids, mask, tags, _ = batch
        self.tokens_seen += int(mask.sum())
        return F.cross_entropy(model(ids, mask).flatten(0, 1), tags.flatten(), ignore_index=-100)

    @torch.no_grad()
    def evaluate(self, model, split):
        model.eval()
        gold, pred, gold_seqs, pred_seqs = [], [], [], []
        for ids, mask, tags, names in self.batches(split, 128, shuffle=False, seed=0):
            best = model(ids, mask).argmax(-1)
            for i, row in enumerate(names):
                n = len(row)
                predicted = [self.labels.decode(t) for t in best[i, :n].tolist()]
                gold += row
                pred += predicted
                gold_seqs.append(list(row))
                pred_seqs.append(predicted)
        out = {"accuracy": metrics.accuracy(gold, pred)}
        if self.bio:
            out["span_f1"] = metrics.span_f1(gold_seqs, pred_seqs)
        return out

    def majority_baseline(self, split) -> dict:
        tag = metrics.majority([t for row in self.data["train"]["tags"] for t in row])
        gold = [t for row in self.data[split]["tags"] for t in row]
        return {"accuracy": metrics.accuracy(gold, [tag] * len(gold))}


class ClassificationData(_TextData):
    """Text -> one label; accuracy and macro-F1."""

    def __init__(self, data, vocab, labels, device, max_len=256):
        self.vocab, self.labels = vocab, labels
        super().__init__(data, device, max_len)

    def encode(self, row):
        return self.vocab.encode_text(row["text"])[: self.max_len] or [1], self.labels.encode(
            row["label"], unknown=UNSEEN
        )

    def collate(self, examples):
        ids, mask = pad([e[0] for e in examples], self.device)
        return (ids, mask), torch.tensor([e[1] for e in examples], device=self.device)

    def logits(self, model, inputs):
        return model(*inputs)

    def loss(self, model, batch):
        inputs, labels = batch
        self.tokens_seen += int(sum(m.sum() for m in inputs[1::2]))
        return F.cross_entropy(self.logits(model, inputs), labels)

    @torch.no_grad()
    def evaluate(self, model, split):
        model.eval()
        gold, pred = [], []
        for inputs, labels in self.batches(split, 256, shuffle=False, seed=0):
            gold += labels.tolist()
            pred += self.logits(model, inputs).argmax(-1).tolist()
        return {"accuracy": metrics.accuracy(gold, pred), "macro_f1": metrics.macro_f1(gold, pred)}

    def majority_baseline(self, split) -> dict:
        label = metrics.majority(list(self.data["train"]["label"]))
        gold = list(self.data[split]["label"])
        return {
            "accuracy": metrics.accuracy(gold, [label] * len(gold)),
            "macro_f1": metrics.macro_f1(gold, [label] * len(gold)),
        }


class PairData(ClassificationData):
    """Two texts -> one label; siamese (each text encoded alone) or cross-encoded (A, separator, B)."""

    def __init__(self, data, vocab, labels, device, mode="siamese", max_len=256):
        self.mode = mode
        super().__init__(data, vocab, labels, device, max_len)

    def encode(self, row):
        a = self.vocab.encode_text(row["text_a"])[: self.max_len] or [1]
        b = self.vocab.encode_text(row["text_b"])[: self.max_len] or [1]
        label = self.labels.encode(row["label"], unknown=UNSEEN)
        if self.mode == "cross":
            return a + [self.vocab.special_id("sep")] + b, label
        return a, b, label

    def length(self, example) -> int:
        return len(example[0]) + (len(example[1]) if self.mode == "siamese" else 0)

    def collate(self, examples):
        if self.mode == "cross":
            return super().collate(examples)
        a, mask_a = pad([e[0] for e in examples], self.device)
        b, mask_b = pad([e[1] for e in examples], self.device)
        return (a, mask_a, b, mask_b), torch.tensor([e[2] for e in examples], device=self.device)


class GenerationData(_TextData):
    """Source subwords -> target subwords; validation picks by greedy BLEU, test reports beam
    and greedy BLEU and chrF (sacrebleu, cased, on detokenised text)."""

    selection_metric = "bleu"

    def __init__(self, data, subwords, device, max_len=128, beam_size=4, validation_limit=500, label_smoothing=0.1):
        self.subwords, self.beam_size = subwords, beam_size
        self.validation_limit, self.label_smoothing = validation_limit, label_smoothing
        super().__init__(data, device, max_len)

    def encode(self, row):
        source = self.subwords.encode(row["source"])[: self.max_len]
        target = self.subwords.encode(row["target"], bos_eos=True)[: self.max_len + 2]
        return source, target, row["target"]

    def collate(self, examples):
        src, src_mask = pad([e[0] for e in examples], self.device)
        tgt, tgt_mask = pad([e[1] for e in examples], self.device)
        return src, src_mask, tgt, tgt_mask, [e[2] for e in examples]

    def loss(self, model, batch):
        src, src_mask, tgt, tgt_mask, _ = batch
        self.tokens_seen += int(src_mask.sum() + tgt_mask.sum())
        logits = model(src, src_mask, tgt[:, :-1], tgt_mask[:, :-1])  # (B, S-1, V)
        return F.cross_entropy(
            logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=0, label_smoothing=self.label_smoothing
        )

    @torch.no_grad()
    def translate(self, model, split, beam_size: int, limit: int | None = None) -> tuple[list[str], list[str]]:
        model.eval()
        hyps, refs, done = [], [], 0
        for src, src_mask, _, _, targets in self.batches(split, 64, shuffle=False, seed=0):
            if limit is not None and done >= limit:
                break
            max_len = int(src_mask.sum(1).max()) * 3 // 2 + 10
            for ids in model.generate(src, src_mask, max_len=max_len, beam_size=beam_size):
                hyps.append(self.subwords.decode(ids))
            refs += targets
            done += len(targets)
        return hyps, refs

    def evaluate(self, model, split):
        if split == "validation":
            hyps, refs = self.translate(model, split, 1, self.validation_limit)
            return {"bleu": metrics.bleu(hyps, refs)}
        greedy, refs = self.translate(model, split, 1)
        beam, _ = self.translate(model, split, self.beam_size)
        return {
            "bleu": metrics.bleu(beam, refs),
            "chrf": metrics.chrf(beam, refs),
            "bleu_greedy": metrics.bleu(greedy, refs),
            "examples": list(zip(beam[:5], refs[:5])),
        }

    def majority_baseline(self, split) -> dict:
        """Copy the source: what a model that learned nothing about the target would score."""
        sources, refs = list(self.data[split]["source"]), list(self.data[split]["target"])
        return {"bleu": metrics.bleu(sources, refs), "chrf": metrics.chrf(sources, refs)}
