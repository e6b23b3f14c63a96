"""The one training loop: AdamW, warm-up then a constant rate (or linear decay), gradient
clipping, a step cap, model selection on validation, a stop as soon as the convergence rule
(``bench.convergence``) calls the run converged, final metrics on test.

A task plugs in through ``TaskData``: it makes batches and computes the loss and
the metrics; the loop knows nothing else about it. Budgets are in steps, not
seconds, so results do not depend on how busy the machine is.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from bench.convergence import AT_CEILING, CONVERGED, DIVERGED, Rule

log = logging.getLogger("bench")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class TaskData(Protocol):
    selection_metric: str  # the validation metric that picks the checkpoint
    higher_is_better: bool

    def batches(self, split: str, batch_size: int, shuffle: bool, seed: int) -> Iterator: ...

    def loss(self, model: nn.Module, batch) -> torch.Tensor: ...

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]: ...


@dataclass
class TrainResult:
    best_step: int
    validation: dict  # metrics of the selected checkpoint
    test: dict
    steps: int
    curve: list[dict] = field(default_factory=list)  # {"step", "loss", validation metrics...}
    train_s: float = 0.0
    status: str = ""  # bench.convergence: converged, still improving, diverged
    why: str = ""  # the rule's reason for the status

    def facts(self) -> dict:
        """What a record keeps of how training went."""
        return {
            "best_step": self.best_step,
            "steps": self.steps,
            "convergence": self.status,
            "convergence_why": self.why,
        }


FUSED_DEVICES = ("cpu", "cuda")


def adamw(params, lr: float, weight_decay: float = 0.01) -> torch.optim.AdamW:
    """AdamW as every training loop here builds it: the fused kernel where torch has one for the
    parameters' device. On a CPU torch otherwise loops over the tensors one by one: ~19 ms of a
    ~60 ms step of the 300k-parameter Transformer, 1.5 ms fused."""
    params = list(params)
    fused = bool(params) and all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


def lr_factor(step: int, total: int, warmup: float, floor: float = 0.0, schedule: str = "linear") -> float:
    """Linear warm-up over ``warmup`` of the ``total`` steps, then the peak rate (``constant``) or a linear
    decay to ``floor`` of it at ``total`` (``linear``)."""
    warm = max(1, int(warmup * total))
    if step < warm:
        return (step + 1) / warm
    if schedule == "constant":
        return 1.0
    return max(floor, (total - step) / max(1, total - warm))


def _forever(data: TaskData, batch_size: int, seed: int) -> Iterator:
    epoch = 0
    while True:
        yielded = False
        for batch in data.batches("train", batch_size, shuffle=True, seed=seed + epoch):
            yielded = True
            yield batch
        if not yielded:
            raise ValueError("the training split yields no batches")
        epoch += 1


def train(
    model: nn.Module, data: TaskData, cfg, seed: int, tag: str = "", after_step: Callable[[int], bool] | None = None
) -> TrainResult:
    """Train ``model`` for at most ``cfg.steps`` steps (cfg: the ``train`` settings); the returned test
    metrics come from the checkpoint with the best validation metric.

    After every evaluation the convergence rule (``cfg.patience``, ``cfg.tolerance``) judges the
    validation curve; with ``cfg.early_stop`` training ends as soon as it says converged (on a plateau, not
    before ``cfg.min_steps``: some abilities form late, after a long flat stretch). A NaN or
    infinite loss ends training as diverged, scored on the best checkpoint so far (raised as
    ``TrainingDiverged`` when there is none). ``after_step(step)`` runs after every optimiser step
    (pre-training saves its checkpoints there) and ends training, after one last evaluation, by
    returning True. The rate warms up over ``cfg.warmup`` of the steps, then stays (``cfg.schedule``
    constant) or decays linearly over ``cfg.schedule_steps`` (default ``cfg.steps``) to
    ``cfg.lr_floor`` (default 0) of the peak. A curve point holds the step, the mean training loss
    since the last point, the validation metrics, the seconds spent so far and, where the data
    counts them, the training tokens seen."""
    opt = adamw(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    horizon, floor = cfg.get("schedule_steps") or cfg.steps, cfg.get("lr_floor") or 0.0
    schedule = cfg.get("schedule") or "linear"
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, horizon, cfg.warmup, floor, schedule))
    rule, early_stop = Rule.of(cfg), bool(cfg.get("early_stop", False))
    sign = 1 if data.higher_is_better else -1
    best_score, best_step, best_state, best_val = -math.inf, 0, None, {}
    curve, running, scores = [], [], []
    status, why = rule.status([], data.selection_metric, data.higher_is_better)
    start = time.perf_counter()
    batches = _forever(data, cfg.batch_size, seed)
    step = 0
    for step in range(1, cfg.steps + 1):
        model.train()
        loss = data.loss(model, next(batches))
        if not torch.isfinite(loss):
            if best_state is None:
                raise TrainingDiverged(f"the training loss became {loss.item()} at step {step}")
            status, why = DIVERGED, f"the training loss became {loss.item()} at step {step}"
            log.info(f"{tag} diverged at step {step}: scored on the best checkpoint, step {best_step}")
            break
        loss.backward()
        if cfg.clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        running.append(loss.item())
        stop = after_step is not None and after_step(step)
        if step % cfg.eval_every and step != cfg.steps and not stop:
            continue
        val = data.evaluate(model, "validation")
        point = {"step": step, "loss": sum(running) / len(running), **val}
        point["seconds"] = round(time.perf_counter() - start, 3)
        if hasattr(data, "tokens_seen"):
            point["tokens"] = data.tokens_seen
        curve.append(point)
        running = []
        scores.append(val[data.selection_metric])
        status, why = rule.status(scores, data.selection_metric, data.higher_is_better)
        point["status"] = status
        score = sign * val[data.selection_metric]
        improved = score > best_score
        if improved:
            best_score, best_step, best_val = score, step, val
            best_state = copy.deepcopy(model.state_dict())
        where = f" ({point['tokens']} tokens)" if after_step and "tokens" in point else f"/{cfg.steps}"
        log.info(
            f"{tag} step {step}{where} loss {point['loss']:.4f} "
            f"val {data.selection_metric} {val[data.selection_metric]:.4f}{' (best)' if improved else ''} "
            f"{time.perf_counter() - start:.0f} s"
        )
        if stop:
            break
        if early_stop and status == CONVERGED and (step >= cfg.get("min_steps", 0) or why.startswith(AT_CEILING)):
            log.info(f"{tag} converged at step {step}: {why}")
            break
    train_s = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    test = data.evaluate(model, "test")
    return TrainResult(best_step, best_val, test, step, curve, train_s, status, why)
