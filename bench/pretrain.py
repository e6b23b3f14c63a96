"""Pretrain suite: two-stage training (pre-train on unlabelled text, then fine-tune) per family.

For each objective and seed, one unit pre-trains the encoder and its token
embedding on unlabelled text and stores a checkpoint at every token count of
``pretrain.tokens``; then every fine-tuning task runs once from scratch
(``tokens=0``) and once from each checkpoint, with the same architecture, data,
vocabulary, steps and seed, so the difference is the initialisation alone.

Objectives: ``mlm`` (BERT: 15% of tokens predicted, of them 80% shown as
``<mask>``, 10% as a random word, 10% unchanged) for a bidirectional encoder;
``clm`` (GPT: the next token, the encoder causal, fine-tuned causal too);
``elmo`` (LSTM only: a forward and a backward language model, the two
directions in separate stacks so neither sees the other's side).

Every family sees the same sentences in the same order and stops at the same
token count; the record gives the FLOPs each spent (3x the forward FLOPs of the
encoder over the padded batches plus the output projection, the usual estimate
for a training step). One word vocabulary, built from the unlabelled text and
the tasks' training splits, serves every task, both arms; generation decodes
words joined by spaces. Checkpoints live under ``data.cache``/checkpoints,
named by a hash of everything that decides their content, and are reused by
every fine-tuning run and rerun.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import datasets
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

import models
from bench.accuracy import accuracy_tasks, encode_splits, task_model, train_and_score
from bench.data.sources import load_task_data
from bench.data.vocab import build_labels, build_vocab, tokenize
from bench.errors import UserError
from bench.runner import Context, Unit
from bench.schema import model_kwargs
from bench.textdata import ClassificationData, length_batches, pad
from bench.train import TrainingDiverged, adamw, lr_factor
from models.heads import TokenEmbedding
from models.seq2seq import EncoderDecoder, Seq2Seq

log = logging.getLogger("bench")

SECTIONS = ("train", "accuracy", "pretrain")
OBJECTIVES = ("mlm", "clm", "elmo")
SPECIALS = ("bos", "eos", "sep", "mask")


# ---- units ---------------------------------------------------------------------------------


def objectives(cfg) -> list[str]:
    """The configured objectives this encoder can pre-train with (elmo: those with separate directions)."""
    return [
        o for o in cfg.pretrain.objectives if o != "elmo" or models.capabilities(cfg.model.name).separate_directions
    ]


def units(cfg) -> list[Unit]:
    seeds = range(cfg.seed, cfg.seed + cfg.n_seeds)
    tasks = accuracy_tasks(cfg, "pretrain")
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
    return {name: OmegaConf.to_container(cfg.tasks[name], resolve=True) for name in accuracy_tasks(cfg, "pretrain")}


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
    for name in accuracy_tasks(cfg, "pretrain"):
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
        for name in accuracy_tasks(cfg, "pretrain"):
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
    kwargs = model_kwargs(cfg.model)
    name, budget, d_model = kwargs.pop("name"), kwargs.pop("param_budget", None), kwargs.pop("d_model", None)
    causal = objective == "clm"
    if objective == "elmo":
        kwargs["stacking"] = "separate"
    if d_model is None and budget:
        kwargs.update(models.width_for_budget(name, budget, causal=causal, **kwargs))
    elif d_model is not None:
        kwargs["d_model"] = d_model
    return {"name": name, "causal": causal, **kwargs}


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


def _save(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(state, partial)
    os.replace(partial, path)  # atomic: a reader sees no checkpoint or a whole one


def _flops(encoder: nn.Module, T: int, device, cache: dict) -> int:
    from bench.timing import forward_flops

    if T not in cache:
        was = encoder.training
        cache[T] = forward_flops(encoder.eval(), T, device)
        encoder.train(was)
    return cache[T]


def pretrain(ctx: Context, objective: str, seed: int) -> dict:
    """Pre-train from scratch to the largest token count, saving a checkpoint at each count.
    Returns the curve and totals."""
    cfg, settings = ctx.cfg, ctx.cfg.pretrain
    text, _digest, vocab = shared(ctx)
    milestones = sorted(set(settings.tokens))
    torch.manual_seed(seed)
    arch = architecture(cfg, objective)
    encoder = models.build_encoder(**arch)
    model = LanguageModel(encoder, TokenEmbedding(len(vocab), encoder.d_model, cfg.accuracy.embed_dim), objective).to(
        ctx.device
    )
    ids_of = [vocab.encode(s) for s in text]
    total = milestones[-1]
    mean_len = sum(map(len, ids_of)) / len(ids_of)
    steps_estimate = max(1, int(total / (settings.batch_size * mean_len)) + 1)
    opt = adamw(model.parameters(), lr=settings.lr, weight_decay=cfg.train.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(lr_factor(s, steps_estimate, settings.warmup), 0.05))
    gen = torch.Generator().manual_seed(seed)
    mask_id, n_special = vocab.special_id("mask"), 2 + len(SPECIALS)
    seen, step, flops, flop_cache, running, curve, saved = 0, 0, 0, {}, [], [], {}
    start, epoch, next_milestone = time.perf_counter(), 0, 0
    V, E = len(vocab), cfg.accuracy.embed_dim
    model.train()
    while next_milestone < len(milestones):
        for rows in length_batches([len(s) for s in ids_of], settings.batch_size, True, seed * 1000 + epoch):
            ids, mask = pad([ids_of[i] for i in rows], ctx.device)
            if objective == "mlm":
                inputs, targets = mask_tokens(ids.cpu(), mask.cpu(), V, mask_id, n_special, settings.mask_prob, gen)
                inputs, targets = inputs.to(ctx.device), targets.to(ctx.device)
            elif objective == "clm":
                inputs, targets = ids, shift_targets(ids, mask, 1)
            else:
                inputs, targets = ids, torch.stack([shift_targets(ids, mask, 1), shift_targets(ids, mask, -1)])
            loss = model.loss(inputs, mask, targets)
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"the pre-training loss became {loss.item()} at step {step + 1}")
            loss.backward()
            if cfg.train.clip > 0:  # 0: no clipping (clip_grad_norm_ with 0 would zero every gradient)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            seen += int(mask.sum())
            predicted = int((targets != -100).sum())
            flops += 3 * (ids.shape[0] * _flops(encoder, ids.shape[1], ctx.device, flop_cache) + 2 * predicted * E * V)
            running.append(loss.item())
            if step % settings.log_every == 0:
                curve.append({"step": step, "tokens": seen, "loss": sum(running) / len(running)})
                running = []
                log.info(
                    f"{ctx.encoder} pretrain {objective} seed={seed} {seen}/{total} tokens, loss {curve[-1]['loss']:.3f}, "
                    f"{time.perf_counter() - start:.0f} s"
                )
            while next_milestone < len(milestones) and seen >= milestones[next_milestone]:
                n = milestones[next_milestone]
                path = checkpoint_path(ctx, objective, seed, n)
                _save(
                    path,
                    {
                        "encoder": encoder.state_dict(),
                        "inputs": model.inputs.state_dict(),
                        "architecture": arch,
                        "objective": objective,
                        "tokens_seen": seen,
                        "tokens": n,
                        "flops": flops,
                        "step": step,
                    },
                )
                saved[n] = {"path": str(path), "tokens_seen": seen, "flops": flops, "step": step}
                next_milestone += 1
            if next_milestone == len(milestones):
                break
        epoch += 1
    if running:
        curve.append({"step": step, "tokens": seen, "loss": sum(running) / len(running)})
    return {
        "curve": curve,
        "checkpoints": saved,
        "steps": step,
        "tokens_seen": seen,
        "flops": flops,
        "train_s": time.perf_counter() - start,
        "corpus_sentences": len(text),
        "corpus_tokens": sum(map(len, text)),
        "vocab_size": V,
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
