"""Accuracy suite: train every encoder on a task of each of the four types, score on test.

One record per (task, encoder, seed): test metrics of the checkpoint picked on
validation, the majority-class (or copy-the-source) baseline, the parameter
counts and the training throughput. The encoder of every task is sized to the
comparison's budget; an encoder-decoder gets twice it, for its two halves.
"""

from __future__ import annotations

import logging

import torch
from omegaconf import OmegaConf

import models
from bench.data.sources import load_task_data
from bench.data.vocab import build_vocabs
from bench.schema import model_kwargs
from bench.suite import Context, Unit
from bench.tasks import encode_splits, suite_tasks, task_model, train_and_score
from models.heads import TokenEmbedding
from models.seq2seq import Seq2Seq, build_encoder_decoder

log = logging.getLogger("bench")

SECTIONS = ("train", "accuracy")


def units(cfg) -> list[Unit]:
    seeds = range(cfg.seed, cfg.seed + cfg.n_seeds)
    return [Unit(name, seed=s) for name in suite_tasks(cfg, "accuracy") for s in seeds]


def data_seed(task, seed: int | None) -> int:
    """The seed of a task's generated data: drawn anew for each model seed where ``task.resample`` (so that an
    interval over seeds holds the test set's sampling noise too), else the same for every seed."""
    return task.data_seed + (seed if seed is not None and task.source == "embedded" and task.resample else 0)


def prepare(ctx: Context, name: str, seed: int | None = None):
    """The task's data, vocabularies and encoded splits for model seed ``seed``, built once per job and data seed
    (None: the task's fixed data)."""
    task = ctx.cfg.tasks[name]
    key = ("task", name, data_seed(task, seed))
    if key not in ctx.cache:
        if key[2] != task.data_seed:
            task = OmegaConf.merge(task, {"data_seed": key[2]})
        raw = load_task_data(name, task, ctx.cfg.data.root)
        specials = ("sep",) if task.type == "pair" and task.pair_mode == "cross" else ()
        vocab, labels = build_vocabs(
            raw, task.type, task.vocab_size, task.min_freq, task.lowercase, specials, task.bpe_size, ctx.cfg.data.cache
        )
        data = encode_splits(ctx, task, raw, vocab, labels, vocab)
        ctx.cache[key] = (data, vocab, labels)
    return ctx.cache[key]


def build_model(ctx: Context, task, vocab, labels) -> torch.nn.Module:
    kwargs = model_kwargs(ctx.cfg.model)
    if task.param_budget and kwargs.get("param_budget") and kwargs.get("d_model") is None:
        kwargs["param_budget"] = task.param_budget
    embed_dim = ctx.cfg.accuracy.embed_dim
    if task.type == "generation":
        budget = kwargs.pop("param_budget")
        core = build_encoder_decoder(**kwargs, param_budget=2 * budget if budget else None)
        return Seq2Seq(core, len(vocab), bos=vocab.bos_id, eos=vocab.eos_id, embed_dim=embed_dim)
    encoder = models.build_encoder(**kwargs)
    return task_model(task, encoder, TokenEmbedding(len(vocab), encoder.d_model, embed_dim), labels)


def run(ctx: Context, unit: Unit):
    task = ctx.cfg.tasks[unit.task]
    data, vocab, labels = prepare(ctx, unit.task, unit.seed)
    model = build_model(ctx, task, vocab, labels).to(ctx.device)
    rows, info = train_and_score(ctx, unit, task, model, data, tag=f"{ctx.encoder} {unit.task} seed={unit.seed}")
    core = getattr(model, "core", None)
    encoder = core if core is not None else model.encoder
    info.update(
        encoder_params=models.count_parameters(encoder),
        d_model=encoder.d_model,
        vocab_size=len(vocab),
        n_labels=len(labels) if labels is not None else None,
        data_seed=data_seed(task, unit.seed),
    )
    return rows, info


def headline(record: dict) -> str:
    m = {(r["setting"], r["metric"]): r["value"] for r in record["metrics"]}
    metric = record["info"]["selection_metric"]
    return (
        f"test {metric} {m[('test', metric)]:.3f} (baseline {m.get(('test', 'baseline_' + metric), float('nan')):.3f}), "
        f"{record['info']['train_tokens_per_s'] / 1e3:.1f}k tok/s training"
    )
