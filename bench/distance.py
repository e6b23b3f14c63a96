"""Distance suite: train each encoder on controlled probes, report accuracy against distance.

One training run per (probe, encoder, seed) on a mix of distances, evaluated per
distance bucket, as Linzen et al. (2016) did, rather than one run per distance:
the same steps for every encoder, the checkpoint picked on validation, scored
on test. Besides accuracy (or MSE) per distance, each record holds the chance
baseline, the effective distance (the largest d up to which the metric stays
past halfway between chance and perfect), the receptive field and an empirical
reach: the mean gradient norm of the encoder's output at the read-out position
t with respect to its input at t - d.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

import models
from bench.probes import build_probe
from bench.schema import model_kwargs
from bench.suite import Context, Unit
from bench.train import train
from models.heads import FeatureInput, Regressor, SequenceClassifier, Tagger, TokenClassifier, TokenEmbedding

SECTIONS = ("train", "distance")


def probe_tasks(cfg) -> list[str]:
    return [name for name, task in cfg.tasks.items() if task.type == "probe"]


def units(cfg) -> list[Unit]:
    seeds = range(cfg.seed, cfg.seed + cfg.n_seeds)
    return [Unit(name, seed=s) for name in probe_tasks(cfg) for s in seeds]


def train_settings(cfg, task):
    """The suite's train settings with the task's own overrides on top."""
    return OmegaConf.merge(cfg.train, task.get("train") or {})


class ProbeData:
    """Batches, loss and metrics of one probe's train/validation/test sets."""

    def __init__(self, probe, sets: dict, device: torch.device):
        self.probe, self.sets, self.device = probe, sets, device
        self.regression = probe.metric == "mse"
        self.selection_metric = probe.metric
        self.higher_is_better = not self.regression

    def batches(self, split, batch_size, shuffle, seed):
        data = self.sets[split]
        n = len(data.lengths)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(n)
        for i in range(0, n, batch_size):
            yield self._batch(data, order[i : i + batch_size])

    def _batch(self, data, rows):
        T = int(data.lengths[rows].max())
        inputs = data.inputs[rows, :T].to(self.device)
        mask = (torch.arange(T)[None, :] < data.lengths[rows][:, None]).to(self.device)
        targets = data.targets[rows] if self.probe.readout == "pool" else data.targets[rows, :T]
        scored = data.extra.get("answer_mask")
        scored = scored[rows, :T].to(self.device) if scored is not None else None
        return inputs, mask, targets.to(self.device), scored, rows

    def loss(self, model, batch):
        inputs, mask, targets, _, _ = batch
        out = model(inputs, mask)
        if self.regression:
            keep = ~torch.isnan(targets)
            return F.mse_loss(out[keep], targets[keep])
        if self.probe.readout == "pool":
            return F.cross_entropy(out, targets)
        return F.cross_entropy(out.flatten(0, 1), targets.flatten(), ignore_index=-100)

    @torch.no_grad()
    def scores(self, model, split) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Per-example score (accuracy over its scored positions, or squared error), per-example loss (mean
        over its positions) and the mean loss over all positions."""
        model.eval()
        per_example, per_loss, loss_sum, count = [], [], 0.0, 0
        for batch in self.batches(split, 256, shuffle=False, seed=0):
            inputs, mask, targets, scored, _ = batch
            out = model(inputs, mask)
            if self.regression:
                keep = ~torch.isnan(targets)
                err = torch.where(keep, (out - targets.nan_to_num()) ** 2, 0.0)
                per_example.append(err.sum(1) / keep.sum(1))
                per_loss.append(per_example[-1])
                loss_sum += float(err.sum())
                count += int(keep.sum())
                continue
            if self.probe.readout == "pool":
                per_example.append((out.argmax(-1) == targets).float())
                per_loss.append(F.cross_entropy(out, targets, reduction="none"))
                loss_sum += float(per_loss[-1].sum())
                count += len(targets)
                continue
            valid = targets != -100
            losses = F.cross_entropy(out.flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="none")
            losses = losses.view(targets.shape)  # zero where ignored
            per_loss.append(losses.sum(1) / valid.sum(1).clamp(min=1))
            loss_sum += float(losses.sum())
            count += int(valid.sum())
            judged = scored & valid if scored is not None else valid
            right = (out.argmax(-1) == targets) & judged
            per_example.append(right.sum(1) / judged.sum(1).clamp(min=1))
        return torch.cat(per_example).cpu(), torch.cat(per_loss).cpu(), loss_sum / max(count, 1)

    def evaluate(self, model, split) -> dict:
        per_example, _, loss = self.scores(model, split)
        return {self.probe.metric: float(per_example.mean()), "loss": loss}


def build_probe_model(ctx: Context, probe) -> torch.nn.Module:
    encoder = models.build_encoder(**{**model_kwargs(ctx.cfg.model), "causal": probe.causal})
    d = encoder.d_model
    inputs = FeatureInput(probe.n_features, d) if probe.n_features else TokenEmbedding(probe.vocab_size, d)
    if probe.readout == "pool":
        head = SequenceClassifier(d, probe.n_classes, pooling="mean")
    elif probe.n_classes:
        head = TokenClassifier(d, probe.n_classes)
    else:
        head = Regressor(d)
    return Tagger(encoder, inputs, head).to(ctx.device)


def effective_distance(distances, values, chance: float, metric: str) -> int:
    """The largest d such that the metric is past halfway from chance to perfect at every
    distance up to d; 0 when it fails at the smallest."""
    threshold = chance / 2 if metric == "mse" else chance + (1 - chance) / 2
    reach = 0
    for d, v in sorted(zip(distances, values)):
        if (v <= threshold) if metric == "mse" else (v >= threshold):
            reach = d
        else:
            break
    return reach


def gradient_reach(model, data: ProbeData, n: int = 64) -> dict[int, float]:
    """Mean |d output(t) / d input(t - d)| over test examples, by offset d >= 0, where t is the
    first scored read-out position (the last real position for pooled probes)."""
    inputs, mask, targets, scored, _ = next(data.batches("test", n, shuffle=False, seed=0))
    model.eval()
    embedded = model.inputs(inputs).detach().requires_grad_(True)
    out = model.encoder(embedded, mask)  # (B, T, D)
    lengths = mask.sum(1)
    if data.probe.readout == "pool":
        t = lengths - 1
    else:
        judged = (targets != -100) if not data.regression else ~torch.isnan(targets)
        if scored is not None:
            judged = judged & scored
        t = judged.float().argmax(1)
    probe_dir = torch.randn(out.shape[-1], generator=torch.Generator().manual_seed(0)).to(out.device)
    rows = torch.arange(len(t), device=out.device)
    (out[rows, t] @ probe_dir).sum().backward()
    norms = embedded.grad.norm(dim=-1)  # (B, T)
    offsets = t[:, None] - torch.arange(norms.shape[1], device=out.device)[None, :]  # (B, T)
    keep = (offsets >= 0) & mask
    reach = {}
    for d in offsets[keep].unique().tolist():
        sel = keep & (offsets == d)
        reach[int(d)] = float(norms[sel].mean())
    return reach


def run(ctx: Context, unit: Unit):
    task = ctx.cfg.tasks[unit.task]
    probe = build_probe(task.probe, **OmegaConf.to_container(task.options, resolve=True))
    distances = list(task.distances) if task.distances else probe.default_distances()
    base = 1_000_003 * unit.seed
    sets = {
        "train": probe.sample(task.n_train, distances, seed=base + 1),
        "validation": probe.sample(task.n_validation, distances, seed=base + 2),
        "test": probe.sample(task.n_test, distances, seed=base + 3),
    }
    data = ProbeData(probe, sets, ctx.device)
    model = build_probe_model(ctx, probe)
    result = train(model, data, train_settings(ctx.cfg, task), unit.seed, tag=f"{ctx.encoder} {unit.task}")
    per_example, per_loss, _ = data.scores(model, "test")
    test_distance = sets["test"].distance
    rows, values, chances = [], [], []
    for d in distances:
        sel = test_distance == d
        if not bool(sel.any()):
            continue
        value, chance = float(per_example[sel].mean()), probe.chance(d)
        values.append(value)
        chances.append(chance.get(probe.metric, chance.get("accuracy", 0.0)))
        rows += [
            {"setting": d, "metric": probe.metric, "value": value},
            {"setting": d, "metric": "chance", "value": chances[-1]},
            {"setting": d, "metric": "n", "value": int(sel.sum())},
        ]
        if "loss" in chance:  # the copy task's trivial baseline is a loss
            rows += [
                {"setting": d, "metric": "loss", "value": float(per_loss[sel].mean())},
                {"setting": d, "metric": "chance_loss", "value": chance["loss"]},
            ]
    attractors = sets["test"].extra.get("attractors")
    if attractors is not None:  # agreement: the score by number of attractors, over all distances
        for k in sorted(set(attractors.tolist())):
            sel = attractors == k
            rows += [
                {"setting": f"attractors={k}", "metric": probe.metric, "value": float(per_example[sel].mean())},
                {"setting": f"attractors={k}", "metric": "n", "value": int(sel.sum())},
            ]
    reach = gradient_reach(model, data)
    rows += [{"setting": d, "metric": "grad_reach", "value": v} for d, v in reach.items() if d in distances]
    effective = effective_distance(distances, values, max(chances), probe.metric)
    rows += [
        {"setting": "all", "metric": probe.metric, "value": result.test[probe.metric]},
        {"setting": "all", "metric": "effective_distance", "value": effective},
    ]
    info = {
        "probe": task.probe,
        "metric": probe.metric,
        "causal": probe.causal,
        "distances": distances,
        "chance": {d: probe.chance(d) for d in distances},
        "receptive_field": model.encoder.receptive_field,
        "encoder_params": models.count_parameters(model.encoder),
        "params": models.count_parameters(model),
        "d_model": model.encoder.d_model,
        **result.facts(),
        "validation": result.validation,
        "curve": result.curve,
        "train_s": result.train_s,
        "grad_reach": reach,
    }
    return rows, info


def headline(record: dict) -> str:
    m = {(r["setting"], r["metric"]): r["value"] for r in record["metrics"]}
    metric = record["info"]["metric"]
    return f"test {metric} {m[('all', metric)]:.3f}, effective distance {m[('all', 'effective_distance')]}"
