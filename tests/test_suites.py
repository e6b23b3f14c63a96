"""Each suite, end to end on a tiny configuration, through the real runner."""

import math

import pandas as pd
import pytest
import torch

from bench.distance import effective_distance
from bench.records import load_records
from bench.runner import run_job
from bench.train import TrainingDiverged, lr_factor, train

TINY_TRAIN = ["train.steps=6", "train.eval_every=3", "train.batch_size=8", "n_seeds=1", "param_budget=50000"]


def records_of(tmp_path) -> pd.DataFrame:
    frame = load_records(tmp_path)
    assert (frame["status"] == "ok").all(), frame[frame["status"] != "ok"][["task", "reason"]].to_string()
    return frame


def test_speed_suite_records_every_measure(compose, tmp_path):
    cfg = compose("suite=speed", "model=cnn", "param_budget=20000", "speed.seq_lens=[8,16]", "speed.latency_seq_lens=[8]",
                  "speed.batch_size=4", "speed.min_run_time=0.01", "speed.dtypes=[fp32]")  # fmt: skip
    run_job(cfg, tmp_path)
    frame = records_of(tmp_path).set_index("task", drop=False)
    assert sorted(set(frame["task"])) == ["gemm_peak", "latency", "scaling", "throughput"]
    metrics = {m["metric"] for r in frame.loc[["throughput"]].itertuples() for m in r.metrics}
    assert {"infer_tokens_per_s", "train_tokens_per_s", "infer_mfu", "flops_per_token", "infer_peak_mb"} <= metrics
    scaling = frame.loc["scaling", "metrics"]
    assert scaling[0]["setting"] == "8-16" and math.isfinite(scaling[0]["value"])
    assert frame.loc["gemm_peak", "metrics"][0]["value"] > 1e8


@pytest.mark.parametrize("probe", ["agreement", "adding", "listops"])
def test_distance_suite_scores_each_distance_against_chance(compose, tmp_path, probe):
    cfg = compose("suite=distance", "model=transformer", f"task=[{probe}]", *TINY_TRAIN,
                  f"tasks.{probe}.n_train=64", f"tasks.{probe}.n_validation=32", f"tasks.{probe}.n_test=64")  # fmt: skip
    run_job(cfg, tmp_path)
    record = records_of(tmp_path).iloc[0]
    rows = pd.DataFrame(record["metrics"])
    distances = record["info"]["distances"]
    metric = record["info"]["metric"]
    assert set(rows[rows.metric == metric]["setting"]) == set(distances) | {"all"}
    assert set(rows[rows.metric == "chance"]["setting"]) == set(distances)
    assert rows[rows.metric == "grad_reach"]["value"].ge(0).all()
    assert record["info"]["steps"] == 6


@pytest.mark.parametrize("task", ["tagging", "classification", "pair", "generation"])
def test_accuracy_suite_reports_metric_and_baseline(compose, tmp_path, task):
    cfg = compose("suite=accuracy", "model=lstm", f"task=[{task}]", *TINY_TRAIN, f"tasks.{task}.n_train=64",
                  f"tasks.{task}.n_validation=16", f"tasks.{task}.n_test=16", f"data.cache={tmp_path / 'cache'}")  # fmt: skip
    run_job(cfg, tmp_path / "run")
    record = records_of(tmp_path / "run").iloc[0]
    names = {(m["setting"], m["metric"]) for m in record["metrics"]}
    selection = record["info"]["selection_metric"]
    assert ("test", selection) in names and ("test", f"baseline_{selection}") in names
    assert record["info"]["train_tokens_per_s"] > 0 and record["info"]["encoder_params"] > 0


def test_pair_cross_encoding_runs(compose, tmp_path):
    cfg = compose("suite=accuracy", "model=cnn", "task=[pair]", *TINY_TRAIN, "tasks.pair.pair_mode=cross",
                  "tasks.pair.n_train=64", "tasks.pair.n_validation=16", "tasks.pair.n_test=16",
                  f"data.cache={tmp_path / 'cache'}")  # fmt: skip
    run_job(cfg, tmp_path / "run")
    assert records_of(tmp_path / "run").iloc[0]["status"] == "ok"


def test_effective_distance_is_where_the_score_first_falls_below_halfway():
    assert effective_distance([2, 4, 8, 16], [0.99, 0.9, 0.7, 0.95], 0.5, "accuracy") == 4
    assert effective_distance([2, 4], [0.6, 0.9], 0.5, "accuracy") == 0
    assert effective_distance([8, 16], [0.01, 0.05], 1 / 6, "mse") == 16


def test_learning_rate_warms_up_then_decays_to_zero():
    factors = [lr_factor(s, 100, 0.1) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and max(factors) == 1.0 and factors[-1] == pytest.approx(1 / 90)


class _Diverging:
    selection_metric, higher_is_better = "accuracy", True

    def batches(self, split, batch_size, shuffle, seed):
        yield None

    def loss(self, model, batch):
        return model.weight.sum() * float("nan")

    def evaluate(self, model, split):
        return {"accuracy": 0.0}


def test_a_nan_loss_ends_training_with_the_reason():
    from omegaconf import OmegaConf

    from bench.schema import TrainConfig

    with pytest.raises(TrainingDiverged, match="nan at step 1"):
        train(torch.nn.Linear(2, 2), _Diverging(), OmegaConf.structured(TrainConfig), seed=0)
