"""Pretrain suite: two-stage training (pre-train on unlabelled text, then fine-tune) per family.

For each objective and seed, one unit pre-trains the encoder and its token
embedding on unlabelled text and stores a checkpoint at every token count of
``pretrain.tokens``; then every fine-tuning task runs once from scratch
(``tokens=0``) and once from each checkpoint, with the same architecture, data,
vocabulary, steps and seed, so the difference is the initialisation alone.

The objectives (``mlm``, ``clm``, ``elmo``) are data for the one training loop
(``bench.objectives``, ``bench.train``); fine-tuning is the task pipeline the accuracy
suite uses too (``bench.tasks``). A clm encoder is fine-tuned causal too.

Every family sees the same sentences in the same order and stops at the same
token count; a held-out slice of the corpus (``pretrain.held_out`` sentences) gives
the validation and test cross-entropy, and the record gives the FLOPs each spent.
One word vocabulary, built from the unlabelled text and
the tasks' training splits, serves every task, both arms; generation decodes
words joined by spaces. Checkpoints live under ``data.cache``/checkpoints,
named by a hash of everything that decides their content, and are reused by
every fine-tuning run and rerun.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import datasets
import torch
from omegaconf import OmegaConf
from torch import nn

import models
from bench.data.sources import load_task_data
from bench.data.vocab import build_labels, build_vocab, tokenize
from bench.errors import UserError
from bench.files import atomic_torch_save
from bench.objectives import LanguageModel, ObjectiveData
from bench.schema import model_kwargs
from bench.suite import Context, Unit
from bench.tasks import encode_splits, suite_tasks, task_model, train_and_score
from bench.textdata import ClassificationData
from bench.timing import forward_flops
from bench.train import train
from models.heads import TokenEmbedding
from models.seq2seq import EncoderDecoder, Seq2Seq

log = logging.getLogger("bench")

SECTIONS = ("train", "accuracy", "pretrain")
SPECIALS = ("bos", "eos", "sep", "mask")


# ---- units ---------------------------------------------------------------------------------


def objectives(cfg) -> list[str]:
    """The configured objectives this encoder can pre-train with (elmo: those with separate directions)."""
    return [
        o for o in cfg.pretrain.objectives if o != "elmo" or models.capabilities(cfg.model.name).separate_directions
    ]


def units(cfg) -> list[Unit]:
    seeds = range(cfg.seed, cfg.seed + cfg.n_seeds)
    tasks = suite_tasks(cfg, "pretrain")
    out = []
    for objective in objectives(cfg):
        for seed in seeds:
            out.append(Unit("pretrain", seed=seed, params={"objective": objective}))
            for task in tasks:
                for tokens in [0, *sorted(set(cfg.pretrain.tokens))]:
                    out.append(Unit(task, seed=seed, params={"objective": objective, "tokens": tokens}))
    return out


def key_inputs(cfg) -> dict:
    """What every unit of this suite also depends on: the tasks whose text builds the corpus and vocabulary."""
    return {name: OmegaConf.to_container(cfg.tasks[name], resolve=True) for name in suite_tasks(cfg, "pretrain")}


# ---- text and vocabulary -------------------------------------------------------------------


def sentences_of(split, task_type: str) -> list[list[str]]:
    """The unlabelled word sequences of one split: what pre-training may read."""
    if task_type == "labelling":
        return [list(tokens) for tokens in split["tokens"]]
    if task_type == "classification":
        return [tokenize(text) for text in split["text"]]
    if task_type == "pair":
        return [tokenize(text) for column in ("text_a", "text_b") for text in split[column]]
    return [tokenize(text) for text in split["source"]]  # generation: the side the encoder reads


def task_data(ctx: Context, name: str, limited: bool = True):
    """The task's splits; with ``limited``, the training split cut to ``pretrain.finetune_train_limit``
    examples (small data) for fine-tuning, else whole (unlabelled text for pre-training)."""
    if ("raw", name) not in ctx.cache:
        ctx.cache[("raw", name)] = load_task_data(name, ctx.cfg.tasks[name], ctx.cfg.data.root)
    data, limit = ctx.cache[("raw", name)], ctx.cfg.pretrain.finetune_train_limit
    if not limited or not limit or len(data["train"]) <= limit:
        return data
    if ("limited", name) not in ctx.cache:
        ctx.cache[("limited", name)] = datasets.DatasetDict({**data, "train": data["train"].select(range(limit))})
    return ctx.cache[("limited", name)]


def hub_corpus(settings: dict) -> list[list[str]]:
    """Sentences of a hub (or local parquet / json) corpus through ``datasets.load_dataset``."""
    settings = dict(settings)
    column, limit = settings.pop("column", "text"), settings.pop("limit", None)
    split = settings.pop("split", "train")
    if "path" not in settings:
        raise UserError("pretrain.corpus=hub needs pretrain.hub.path (a hub id such as wikitext, or parquet).")
    try:
        data = datasets.load_dataset(**settings, split=split)
    except Exception as err:  # the hub, the network or the files: one sentence either way
        raise UserError(f"pretrain.hub {settings} could not be loaded: {err}") from None
    if column not in data.column_names:
        raise UserError(
            f"pretrain.hub.column={column} is not a column of {settings['path']}; it has "
            f"{', '.join(data.column_names)}."
        )
    texts = data[column][:limit] if limit else data[column]
    return [words for words in (tokenize(t) for t in texts) if words]


def corpus(ctx: Context) -> list[list[str]]:
    """Unlabelled sentences: fresh draws of each embedded task's generator (never a sentence of its
    validation or test split), the training split of each task read from files or the hub, or a
    hub corpus."""
    cfg = ctx.cfg
    if cfg.pretrain.corpus == "hub":
        return hub_corpus(OmegaConf.to_container(cfg.pretrain.hub, resolve=True))
    out = []
    for name in suite_tasks(cfg, "pretrain"):
        task, data = cfg.tasks[name], task_data(ctx, name, limited=False)
        if task.source != "embedded":
            out += sentences_of(data["train"], task.type)
            continue
        held_out = {tuple(s) for split in ("validation", "test") for s in sentences_of(data[split], task.type)}
        fresh = OmegaConf.merge(
            task,
            {
                "n_train": cfg.pretrain.corpus_per_task,
                "n_validation": 1,
                "n_test": 1,
                "data_seed": task.data_seed + 7919,
            },
        )
        drawn = load_task_data(name, fresh, cfg.data.root)["train"]
        out += [s for s in sentences_of(drawn, task.type) if tuple(s) not in held_out]
    return [s[: cfg.pretrain.max_len] for s in out if s]


def shared(ctx: Context):
    """The corpus, its content hash and the one vocabulary of every task, built once per job."""
    if "shared" not in ctx.cache:
        cfg = ctx.cfg
        text = corpus(ctx)
        vocab_text = list(text)
        for name in suite_tasks(cfg, "pretrain"):
            train_split, task_type = task_data(ctx, name)["train"], cfg.tasks[name].type
            vocab_text += sentences_of(train_split, task_type)
            if task_type == "generation":
                vocab_text += [tokenize(t) for t in train_split["target"]]
        vocab = build_vocab(vocab_text, cfg.pretrain.vocab_size, cfg.pretrain.min_freq, SPECIALS, False, cfg.data.cache)
        digest = hashlib.sha256(json.dumps(text).encode()).hexdigest()[:16]
        ctx.cache["shared"] = (text, digest, vocab)
        log.info(f"pretrain corpus: {len(text)} sentences, {sum(map(len, text))} tokens; vocabulary {len(vocab)}")
    return ctx.cache["shared"]


class WordCodec:
    """A word vocabulary behind the subword interface generation uses; decoding joins words by spaces."""

    def __init__(self, vocab):
        self.vocab = vocab
        self.pad_id, self.unk_id = 0, 1
        self.bos_id, self.eos_id = vocab.special_id("bos"), vocab.special_id("eos")
        self._skip = {0, self.bos_id, self.eos_id}

    def encode(self, text: str, bos_eos: bool = False) -> list[int]:
        ids = self.vocab.encode_text(text)
        return [self.bos_id, *ids, self.eos_id] if bos_eos else ids

    def decode(self, ids) -> str:
        return " ".join(self.vocab.decode([i for i in ids if i not in self._skip]))

    def __len__(self) -> int:
        return len(self.vocab)


# ---- models --------------------------------------------------------------------------------


def architecture(cfg, objective: str) -> dict:
    """Explicit ``build_encoder`` arguments (width solved once from the budget), so that pre-training
    and every fine-tuning arm build the very same encoder."""
    kwargs = {**model_kwargs(cfg.model), "causal": objective == "clm"}
    if objective == "elmo":
        kwargs["stacking"] = "separate"
    return models.fixed_width(**kwargs)


# ---- pre-training --------------------------------------------------------------------------


def checkpoint_dir(cfg) -> Path:
    return Path(cfg.data.cache).expanduser() / "checkpoints"


def checkpoint_key(cfg, objective: str, seed: int, digest: str, vocab, tokens: int) -> str:
    """A hash of everything that decides a checkpoint's weights."""
    content = {
        "architecture": architecture(cfg, objective),
        "objective": objective,
        "seed": seed,
        "tokens": tokens,
        "schedule_tokens": max(cfg.pretrain.tokens),  # the learning-rate schedule runs to the largest count
        "corpus": digest,
        "vocab": hashlib.sha256(vocab.to_json().encode()).hexdigest()[:16],
        "pretrain": {
            k: v
            for k, v in OmegaConf.to_container(cfg.pretrain, resolve=True).items()
            if k not in ("tokens", "objectives", "log_every")
        },
        "embed_dim": cfg.accuracy.embed_dim,
        "torch": torch.__version__.split("+")[0],
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:20]


def checkpoint_path(ctx: Context, objective: str, seed: int, tokens: int) -> Path:
    _, digest, vocab = shared(ctx)
    return (
        checkpoint_dir(ctx.cfg)
        / f"{ctx.cfg.model.name}-{objective}-{checkpoint_key(ctx.cfg, objective, seed, digest, vocab, tokens)}.pt"
    )


def _flops(encoder: nn.Module, T: int, device, cache: dict) -> int:
    if T not in cache:
        was = encoder.training
        cache[T] = forward_flops(encoder.eval(), T, device)
        encoder.train(was)
    return cache[T]


def held_out(ids_of: list[list[int]], wanted: int) -> dict[str, list[list[int]]]:
    """The corpus split into training sentences and held-out validation and test sentences (``wanted``
    in all, at most a tenth of the corpus, taken evenly across it)."""
    n = min(wanted, len(ids_of) // 10)
    step = len(ids_of) / n if n else 0
    picked = {int(i * step) for i in range(n)}
    out = [s for i, s in enumerate(ids_of) if i in picked]
    return {
        "train": [s for i, s in enumerate(ids_of) if i not in picked],
        "validation": out[::2] or ids_of[:1],
        "test": out[1::2] or ids_of[:1],
    }


def pretrain(ctx: Context, objective: str, seed: int) -> dict:
    """Pre-train from scratch, through the one training loop, to the largest token count, saving a
    checkpoint at each count. Returns the curve and totals."""
    cfg, settings = ctx.cfg, ctx.cfg.pretrain
    text, _digest, vocab = shared(ctx)
    milestones = sorted(set(settings.tokens))
    torch.manual_seed(seed)
    arch = architecture(cfg, objective)
    encoder = models.build_encoder(**arch)
    inputs = TokenEmbedding(len(vocab), encoder.d_model, cfg.accuracy.embed_dim)
    model = LanguageModel(encoder, inputs, objective).to(ctx.device)
    splits = held_out([vocab.encode(s) for s in text], settings.held_out)
    flop_cache: dict = {}
    data = ObjectiveData(
        splits,
        objective,
        len(vocab),
        vocab.special_id("mask"),
        2 + len(SPECIALS),
        settings.mask_prob,
        ctx.device,
        seed,
        lambda T: _flops(encoder, T, ctx.device, flop_cache),
        cfg.accuracy.embed_dim,
    )
    train_tokens = sum(map(len, splits["train"]))
    steps = max(1, int(milestones[-1] / (settings.batch_size * train_tokens / len(splits["train"]))) + 1)
    loop = OmegaConf.create(
        {
            "steps": 3 * steps + 100,  # a cap: training ends at the last token count
            "schedule_steps": steps,  # the schedule decays over the steps the largest count takes, to 5%
            "lr_floor": 0.05,
            "lr": settings.lr,
            "warmup": settings.warmup,
            "weight_decay": cfg.train.weight_decay,
            "clip": cfg.train.clip,
            "batch_size": settings.batch_size,
            "eval_every": settings.log_every,
            "patience": 0,
        }
    )
    saved: dict[int, dict] = {}

    def save_checkpoints(step: int) -> bool:
        for n in milestones:
            if n not in saved and data.tokens_seen >= n:
                path = checkpoint_path(ctx, objective, seed, n)
                facts = {"tokens_seen": data.tokens_seen, "flops": data.flops, "step": step}
                state = {"encoder": encoder.state_dict(), "inputs": inputs.state_dict(), "architecture": arch}
                atomic_torch_save(path, {**state, "objective": objective, "tokens": n, **facts})
                saved[n] = {"path": str(path), **facts}
        return len(saved) == len(milestones)

    tag = f"{ctx.encoder} pretrain {objective} seed={seed} to {milestones[-1]} tokens"
    result = train(model, data, loop, seed, tag=tag, after_step=save_checkpoints)
    if len(saved) < len(milestones):
        raise RuntimeError(f"pre-training ended at {data.tokens_seen} tokens, short of {milestones[-1]}")
    return {
        "curve": result.curve,
        "checkpoints": saved,
        "steps": result.steps,
        "tokens_seen": data.tokens_seen,
        "flops": data.flops,
        "train_s": result.train_s,
        "heldout": {"validation": result.curve[-1]["cross_entropy"], "test": result.test["cross_entropy"]},
        "heldout_sentences": {split: len(splits[split]) for split in ("validation", "test")},
        "corpus_sentences": len(text),
        "corpus_tokens": sum(map(len, text)),
        "vocab_size": len(vocab),
        "architecture": arch,
        "encoder_params": models.count_parameters(encoder),
        "d_model": encoder.d_model,
    }


def load_checkpoint(ctx: Context, objective: str, seed: int, tokens: int) -> tuple[dict, Path]:
    """The stored checkpoint, pre-training first if it is missing (a cleared cache)."""
    path = checkpoint_path(ctx, objective, seed, tokens)
    if not path.is_file():
        log.info(
            f"{ctx.encoder} {objective} seed={seed}: no checkpoint at {tokens} tokens in {path.parent}; pre-training"
        )
        pretrain(ctx, objective, seed)
    return torch.load(path, map_location=ctx.device, weights_only=True), path


# ---- fine-tuning ---------------------------------------------------------------------------


def prepare(ctx: Context, name: str):
    key = ("task", name)
    if key not in ctx.cache:
        task, raw = ctx.cfg.tasks[name], task_data(ctx, name)
        if task.type == "generation" and ctx.cfg.pretrain.finetune_beam_size:
            task = OmegaConf.merge(task, {"beam_size": ctx.cfg.pretrain.finetune_beam_size})
        _, _, vocab = shared(ctx)
        labels = build_labels(raw["train"], task.type)
        data = encode_splits(ctx, task, raw, vocab, labels, WordCodec(vocab))
        ctx.cache[key] = (data, vocab, labels)
    return ctx.cache[key]


def build_model(ctx: Context, task, vocab, labels, objective: str) -> tuple[nn.Module, nn.Module, TokenEmbedding]:
    """The task model on the objective's architecture; returns it, its encoder and its token embedding."""
    arch = architecture(ctx.cfg, objective)
    embed_dim = ctx.cfg.accuracy.embed_dim
    if task.type == "generation":
        core = EncoderDecoder(**arch)
        model = Seq2Seq(core, len(vocab), bos=vocab.special_id("bos"), eos=vocab.special_id("eos"), embed_dim=embed_dim)
        return model, core.encoder, model.embed
    encoder = models.build_encoder(**arch)
    inputs = TokenEmbedding(len(vocab), encoder.d_model, embed_dim)
    return task_model(task, encoder, inputs, labels), encoder, inputs


def per_setting(ctx: Context, model, data, vocab, labels, name: str) -> list[dict]:
    """Test accuracy per value of the ``distance`` and ``distractors`` columns (the sense probe), for
    those the task has."""
    test = task_data(ctx, name)["test"]
    if not isinstance(data, ClassificationData):
        return []
    rows = []
    for column in ("distance", "distractors"):
        if column not in test.column_names:
            continue
        values = list(test[column])
        for v in sorted(set(values)):
            picked = test.select([i for i, x in enumerate(values) if x == v])
            part = ClassificationData({"test": picked}, vocab, labels, ctx.device, data.max_len)
            rows.append(
                {"setting": f"{column}={v}", "metric": "accuracy", "value": part.evaluate(model, "test")["accuracy"]}
            )
    return rows


def run(ctx: Context, unit: Unit):
    objective = unit.params["objective"]
    if unit.task == "pretrain":
        result = pretrain(ctx, objective, unit.seed)
        rows = [{"setting": f"tokens={p['tokens']}", "metric": "loss", "value": p["loss"]} for p in result["curve"]]
        rows += [{"setting": s, "metric": "cross_entropy", "value": v} for s, v in result["heldout"].items()]
        rows.append({"setting": "total", "metric": "flops", "value": float(result["flops"])})
        return rows, {"objective": objective, **result}
    task = ctx.cfg.tasks[unit.task]
    data, vocab, labels = prepare(ctx, unit.task)
    torch.manual_seed(unit.seed)
    model, encoder, inputs = build_model(ctx, task, vocab, labels, objective)
    tokens, source = unit.params["tokens"], None
    if tokens:
        state, path = load_checkpoint(ctx, objective, unit.seed, tokens)
        encoder.load_state_dict(state["encoder"])
        inputs.load_state_dict(state["inputs"])
        source = {
            "path": str(path),
            "tokens_seen": state["tokens_seen"],
            "flops": state["flops"],
            "step": state["step"],
        }
    model.to(ctx.device)
    arm = f"from {tokens} pre-trained tokens" if tokens else "from scratch"
    rows, info = train_and_score(
        ctx, unit, task, model, data, f"{ctx.encoder} {unit.task} {objective} {arm} seed={unit.seed}"
    )
    rows += per_setting(ctx, model, data, vocab, labels, unit.task)
    info.update(
        objective=objective,
        pretrain_tokens=tokens,
        checkpoint=source,
        encoder_params=models.count_parameters(encoder),
        d_model=encoder.d_model,
        vocab_size=len(vocab),
    )
    return rows, info


def headline(record: dict) -> str:
    info = record["info"]
    if record["task"] == "pretrain":
        last = info["curve"][-1]["loss"] if info["curve"] else float("nan")
        return (
            f"{info['tokens_seen']} tokens, final loss {last:.3f}, {info['flops'] / 1e12:.2f} TFLOP, "
            f"checkpoints at {', '.join(map(str, info['checkpoints']))}"
        )
    m = {(r["setting"], r["metric"]): r["value"] for r in record["metrics"]}
    metric = info["selection_metric"]
    return f"test {metric} {m[('test', metric)]:.3f} ({'scratch' if not info['pretrain_tokens'] else str(info['pretrain_tokens']) + ' tokens'})"
