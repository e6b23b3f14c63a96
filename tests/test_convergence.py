"""The convergence rule on synthetic curves, and the training loop that stops by it."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from bench.convergence import CONVERGED, DIVERGED, IMPROVING, Rule
from bench.schema import TrainConfig
from bench.train import lr_factor, train

RULE = Rule(patience=3, tolerance=0.005)


def test_a_curve_that_rises_then_flattens_has_converged():
    status, why = RULE.status([0.2, 0.5, 0.7, 0.80, 0.801, 0.799, 0.802], "accuracy", True)
    assert status == CONVERGED and "plateau" in why


def test_a_curve_still_rising_at_the_cap_is_still_improving():
    status, why = RULE.status([0.2, 0.3, 0.4, 0.5, 0.6, 0.7], "accuracy", True)
    assert status == IMPROVING and "0.3" in why  # the best rose 0.3 over the last 3 evaluations


def test_a_slow_rise_beyond_the_tolerance_is_still_improving():
    # 0.002 per evaluation is below the tolerance each time, but 0.006 over the last three is not
    status, _ = RULE.status([0.5, 0.502, 0.504, 0.506, 0.508, 0.510, 0.512], "accuracy", True)
    assert status == IMPROVING


def test_noise_around_a_level_is_a_plateau():
    status, _ = RULE.status([0.6, 0.8, 0.797, 0.803, 0.799, 0.801], "accuracy", True)
    assert status == CONVERGED


def test_the_ceiling_counts_as_converged_at_once():
    assert RULE.status([0.3, 0.996], "accuracy", True)[0] == CONVERGED
    assert RULE.status([0.3, 0.99], "accuracy", True)[0] == IMPROVING  # too few evaluations for a plateau
    assert RULE.status([10.0, 99.6], "bleu", True)[0] == CONVERGED  # the tolerance scales with the range


def test_a_lower_is_better_metric_is_judged_downwards_with_a_relative_tolerance():
    falling = [0.17, 0.05, 0.02, 0.010, 0.008, 0.006]
    assert RULE.status(falling, "mse", False)[0] == IMPROVING  # 0.010 -> 0.006 is 40%, far beyond 2%
    flat = [0.17, 0.05, 0.0100, 0.0101, 0.0100, 0.0099]
    assert RULE.status(flat, "mse", False)[0] == CONVERGED  # 1% gain over three evaluations


def test_a_worse_last_stretch_is_a_plateau_not_an_improvement():
    assert RULE.status([0.5, 0.9, 0.7, 0.6, 0.5], "accuracy", True)[0] == CONVERGED


def test_divergence_and_no_plateau_test():
    assert RULE.status([0.5], "accuracy", True, diverged=True)[0] == DIVERGED
    assert Rule(patience=0).status([0.5, 0.5, 0.5, 0.5], "accuracy", True)[0] == IMPROVING


class _Scripted:
    """A task whose validation accuracy follows a script, one value per evaluation; the loss is a real one."""

    selection_metric, higher_is_better = "accuracy", True

    def __init__(self, script, nan_at=None):
        self.script, self.evaluations, self.nan_at, self.calls = list(script), 0, nan_at, 0

    def batches(self, split, batch_size, shuffle, seed):
        yield torch.ones(2, 2)

    def loss(self, model, batch):
        self.calls += 1
        out = model(batch).pow(2).mean()
        return out * float("nan") if self.nan_at and self.calls >= self.nan_at else out

    def evaluate(self, model, split):
        if split == "test":
            return {"accuracy": -1.0}
        value = self.script[min(self.evaluations, len(self.script) - 1)]
        self.evaluations += 1
        return {"accuracy": value}


def _settings(**over):
    return OmegaConf.merge(OmegaConf.structured(TrainConfig), {"steps": 100, "eval_every": 10, "patience": 3, **over})


def test_training_stops_at_the_plateau_and_keeps_the_best_checkpoint():
    script = [0.3, 0.6, 0.8, 0.801, 0.799, 0.8, 0.9, 0.95]  # a later jump the rule does not wait for
    result = train(torch.nn.Linear(2, 2), _Scripted(script), _settings(), seed=0)
    assert result.steps == 60 and result.status == CONVERGED
    assert result.best_step == 40 and result.validation["accuracy"] == pytest.approx(0.801)
    assert [p["status"] for p in result.curve][-1] == CONVERGED


def test_without_early_stopping_training_runs_to_the_cap_and_says_so():
    script = [0.05 * i for i in range(1, 11)]
    result = train(torch.nn.Linear(2, 2), _Scripted(script), _settings(), seed=0)
    assert result.steps == 100 and result.status == IMPROVING
    flat = train(torch.nn.Linear(2, 2), _Scripted([0.5] * 10), _settings(early_stop=False), seed=0)
    assert flat.steps == 100 and flat.status == CONVERGED  # judged, though not stopped


def test_a_run_that_diverges_after_a_checkpoint_is_scored_on_it_as_diverged():
    result = train(torch.nn.Linear(2, 2), _Scripted([0.4, 0.5, 0.6], nan_at=25), _settings(), seed=0)
    assert result.status == DIVERGED and result.steps == 25 and result.best_step == 20
    assert "nan" in result.why


def test_the_constant_schedule_holds_the_peak_after_warm_up():
    assert lr_factor(0, 1000, 0.05, schedule="constant") == pytest.approx(1 / 50)
    assert lr_factor(999, 1000, 0.05, schedule="constant") == 1.0
    assert lr_factor(999, 1000, 0.05, schedule="linear") == pytest.approx(1 / 950)


def test_an_mse_that_fell_by_orders_of_magnitude_stops_on_gains_too_small_to_matter():
    curve = [0.16, 0.01, 0.001, 0.0008, 0.0006, 0.0005]  # 40% lower again, but 0.0003 of a 0.16 start
    assert RULE.status(curve, "mse", False)[0] == CONVERGED


def test_a_plateau_before_min_steps_does_not_stop_training_but_the_ceiling_does():
    late = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.5, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]  # forms late
    result = train(torch.nn.Linear(2, 2), _Scripted(late), _settings(steps=200, min_steps=100), seed=0)
    assert result.validation["accuracy"] == pytest.approx(0.95) and result.status == CONVERGED
    assert result.steps == 130  # flat at 0.1 until step 70 (no stop before 100), 0.95 from step 100, 3 more
    early = train(torch.nn.Linear(2, 2), _Scripted([0.5, 1.0]), _settings(min_steps=100), seed=0)
    assert early.steps == 20 and early.status == CONVERGED
