"""The task pipeline every training suite shares: which tasks a suite runs, their splits encoded for
their type, the encoder under the type's head, and one training run scored into metric rows.

A library, not a suite: the accuracy and pretrain suites both call it, neither imports the other.
"""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

import models
from bench.suite import Context, Unit
from bench.textdata import ClassificationData, GenerationData, LabellingData, PairData
from bench.train import train
from models.heads import (
    Classifier,
    PairClassifier,
    PairModel,
    SequenceClassifier,
    Tagger,
    TokenClassifier,
    TokenEmbedding,
)

TYPES = ("labelling", "classification", "pair", "generation")


def suite_tasks(cfg, suite: str) -> list[str]:
    """The tasks of the four types that ``suite`` runs (a task's ``suites`` can limit it to some)."""
    return [
        name
        for name, task in cfg.tasks.items()
        if task.type in TYPES and (not task.get("suites") or suite in task.suites)
    ]


def encode_splits(ctx: Context, task, raw, vocab, labels, codec):
    """The task's splits encoded for its type (``codec`` turns generation text into ids)."""
    if task.type == "labelling":
        return LabellingData(raw, vocab, labels, ctx.device, task.max_len)
    if task.type == "classification":
        return ClassificationData(raw, vocab, labels, ctx.device, task.max_len)
    if task.type == "pair":
        return PairData(raw, vocab, labels, ctx.device, task.pair_mode, task.max_len)
    return GenerationData(raw, codec, ctx.device, task.max_len, task.beam_size, task.validation_limit)


def task_model(task, encoder: torch.nn.Module, inputs: TokenEmbedding, labels) -> torch.nn.Module:
    """``encoder`` under the head of a labelling, classification or pair task."""
    d = encoder.d_model
    if task.type == "labelling":
        return Tagger(encoder, inputs, TokenClassifier(d, len(labels)))
    if task.type == "classification":
        return Classifier(encoder, inputs, SequenceClassifier(d, len(labels), task.pooling))
    return PairModel(encoder, inputs, PairClassifier(d, len(labels), task.pair_mode, task.pooling))


def train_and_score(ctx: Context, unit: Unit, task, model, data, tag: str) -> tuple[list[dict], dict]:
    """Train ``model`` under the task's settings; its test, validation and baseline rows and the run's facts."""
    settings = OmegaConf.merge(ctx.cfg.train, task.get("train") or {})
    data.tokens_seen = 0
    result = train(model, data, settings, unit.seed, tag=tag)
    examples = result.test.pop("examples", None)
    rows = [{"setting": "test", "metric": k, "value": v} for k, v in result.test.items()]
    rows += [{"setting": "validation", "metric": k, "value": v} for k, v in result.validation.items()]
    baseline = data.majority_baseline("test")
    rows += [{"setting": "test", "metric": f"baseline_{k}", "value": v} for k, v in baseline.items()]
    info = {
        "type": task.type,
        "source": task.source,
        "dataset": task.dataset,
        "selection_metric": data.selection_metric,
        "params": models.count_parameters(model),
        "sizes": {split: len(data.data[split]) for split in data.data},
        **result.facts(),
        "train_s": result.train_s,
        "train_tokens_per_s": data.tokens_seen / max(result.train_s, 1e-9),
        "curve": result.curve,
        "examples": examples,
    }
    return rows, info
