"""Each suite, end to end on a tiny configuration, through the real runner."""

import math

import pandas as pd
import pytest
import torch

from bench.distance import effective_distance
from bench.records import load_records
from bench.report import build_report
from bench.runner import run_job
from bench.train import TrainingDiverged, adamw, lr_factor, train

TINY_TRAIN = ["train.steps=6", "train.eval_every=3", "train.batch_size=8", "n_seeds=1", "param_budget=50000"]


def records_of(tmp_path) -> pd.DataFrame:
    frame = load_records(tmp_path)
    assert (frame["status"] == "ok").all(), frame[frame["status"] != "ok"][["task", "reason"]].to_string()
    return frame


def test_speed_suite_records_every_measure(compose, tmp_path):
    cfg = compose(
        "suite=speed",
        "model=cnn",
        "param_budget=20000",
        "speed.seq_lens=[8,16]",
        "speed.latency_seq_lens=[8]",
        "speed.batch_size=4",
        "speed.batch_sizes=[2]",
        "speed.min_run_time=0.01",
        "speed.dtypes=[fp32]",
    )
    run_job(cfg, tmp_path)
    frame = records_of(tmp_path).set_index("task", drop=False)
    measured = sorted((r.info["T"], r.info["B"]) for r in frame.loc[["throughput"]].itertuples())
    assert measured == [(8, 2), (8, 4), (16, 2), (16, 4)]
    assert frame.loc["scaling", "info"]["infer_ms"]["batch_sizes"] == [4, 4]  # fitted on speed.batch_size only
    text = build_report(tmp_path)["md"].read_text()
    assert "against batch size" in text and "| cnn | fp32 | infer | 8 |" in text
    assert sorted(set(frame["task"])) == ["gemm_peak", "latency", "scaling", "throughput"]
    metrics = {m["metric"] for r in frame.loc[["throughput"]].itertuples() for m in r.metrics}
    assert {"infer_tokens_per_s", "train_tokens_per_s", "infer_mfu", "flops_per_token", "infer_peak_mb"} <= metrics
    scaling = frame.loc["scaling", "metrics"]
    assert scaling[0]["setting"] == "8-16" and math.isfinite(scaling[0]["value"])
    assert frame.loc["gemm_peak", "metrics"][0]["value"] > 1e8


def test_the_sweep_encoders_are_timed_side_by_side_once_by_the_first_speed_job(compose, tmp_path):
    settings = [
        "suite=speed",
        "param_budget=20000",
        "speed.seq_lens=[8,16,32]",
        "speed.latency_seq_lens=[8]",
        "speed.batch_size=4",
        "speed.min_run_time=0.02",
        "speed.dtypes=[fp32]",
        "speed.rounds=3",
        "speed.compare=[lstm,cnn]",
    ]
    first = run_job(compose(*settings, "model=lstm"), tmp_path / "lstm", tree=tmp_path)
    second = run_job(compose(*settings, "model=cnn"), tmp_path / "cnn", tree=tmp_path)
    assert second["skipped"] == 1 and first["skipped"] == 0  # the cnn's job found it measured
    frame = records_of(tmp_path)
    side = frame[frame["task"] == "interleaved"]
    assert len(side) == 1
    info = side.iloc[0]["info"]
    assert info["encoders"] == ["lstm", "cnn"] and info["measured_by"] == "lstm"
    assert set(info["times_s"]) == {"infer", "train"} and set(info["times_s"]["infer"]) == {"8", "32"}
    assert all(
        len(t) == 3 and min(t) > 0 for by_T in info["times_s"].values() for e in by_T.values() for t in e.values()
    )
    # the builds the side-by-side unit times are those the encoders' own jobs time
    own = frame[(frame["task"] == "throughput") & (frame["encoder"] == "cnn")].iloc[0]["info"]["params"]
    assert info["params"]["cnn"] == own
    # an encoder the sweep does not compare measures nothing side by side, nor does a sweep of one
    from bench import speed

    assert "interleaved" not in {u.task for u in speed.units(compose(*settings, "model=gru"))}
    assert "interleaved" not in {u.task for u in speed.units(compose(*settings, "model=cnn", "speed.compare=[cnn]"))}


def test_a_compared_encoder_that_is_no_model_option_is_refused(compose):
    from bench.errors import UserError
    from bench.schema import validate

    with pytest.raises(UserError, match=r"speed.compare: lsmt is not a model option; choose from .*lstm"):
        validate(compose("suite=speed", "speed.compare=[lstm,lsmt]"))


def test_the_batch_grid_is_capped_like_the_main_batch_and_never_measured_twice(compose):
    from bench import speed

    cfg = compose(
        "suite=speed",
        "speed.seq_lens=[8,4096]",
        "speed.batch_size=4",
        "speed.batch_sizes=[1,4,16]",
        "speed.dtypes=[fp32]",
    )
    runs = [
        (u.params["T"], u.params["B"], bool(u.params.get("grid"))) for u in speed.units(cfg) if u.task == "throughput"
    ]
    assert sorted(runs) == [
        (8, 1, True),
        (8, 4, False),
        (8, 16, True),
        (4096, 1, True),
        (4096, 2, False),
    ]  # 8192 tokens


def test_scaling_exponent_is_fitted_on_time_per_sequence():
    from bench import speedplan

    assert speedplan.fit_exponent([32, 64, 128], [1.0, 4.0, 16.0]) == pytest.approx(2.0)
    # a quadratic encoder whose batch halves as T doubles: per batch the time only doubles
    fake = [
        {
            "status": "ok",
            "task": "throughput",
            "info": {"dtype": "fp32", "B": 64 // (T // 32)},
            "metrics": [{"setting": T, "metric": "infer_ms", "value": (64 // (T // 32)) * (T / 32) ** 2}],
        }
        for T in (32, 64, 128)
    ]
    rows, info = speedplan._scaling(type("Ctx", (), {"job_records": lambda self: iter(fake)})(), "fp32")
    assert rows[0]["metric"] == "infer_exponent" and rows[0]["value"] == pytest.approx(2.0)
    assert info["infer_ms"]["batch_sizes"] == [64, 32, 16]


@pytest.mark.parametrize("probe", ["agreement", "adding", "listops", "copy", "parity"])
def test_distance_suite_scores_each_distance_against_chance(compose, tmp_path, probe):
    cfg = compose(
        "suite=distance",
        "model=transformer",
        f"task=[{probe}]",
        *TINY_TRAIN,
        f"tasks.{probe}.n_train=64",
        f"tasks.{probe}.n_validation=32",
        f"tasks.{probe}.n_test=64",
    )
    run_job(cfg, tmp_path)
    record = records_of(tmp_path).iloc[0]
    rows = pd.DataFrame(record["metrics"])
    distances = record["info"]["distances"]
    metric = record["info"]["metric"]
    scores = rows[rows.metric == metric].set_index("setting")["value"]
    counts = rows[rows.metric == "n"].set_index("setting")["value"]
    by_distance = scores[[d for d in distances]]
    extra = set(scores.index) - set(distances) - {"all"}
    assert (bool(extra) and extra <= {f"attractors={k}" for k in range(4)}) if probe == "agreement" else not extra
    assert set(rows[rows.metric == "chance"]["setting"]) == set(distances)
    # the buckets partition the test set: their weighted mean is the overall score
    assert (by_distance * counts[distances]).sum() / counts[distances].sum() == pytest.approx(scores["all"], abs=1e-5)
    if probe == "agreement":
        by_count = [k for k in scores.index if str(k).startswith("attractors=")]
        assert counts[by_count].sum() == counts[distances].sum() == 64
        assert (scores[by_count] * counts[by_count]).sum() / 64 == pytest.approx(scores["all"], abs=1e-5)
    if probe == "copy":  # Bai et al.'s trivial baseline beside the loss, per T
        baseline = rows[rows.metric == "chance_loss"].set_index("setting")["value"]
        assert all(baseline[d] == pytest.approx(10 * math.log(8) / (d + 20)) for d in distances)
        assert rows[rows.metric == "loss"]["value"].gt(0).all() and len(rows[rows.metric == "loss"]) == len(distances)
    assert rows[rows.metric == "grad_reach"]["value"].ge(0).all()
    assert record["info"]["steps"] == 6


@pytest.mark.parametrize("task", ["tagging", "classification", "pair", "generation"])
def test_accuracy_suite_reports_metric_and_baseline(compose, tmp_path, task):
    cfg = compose(
        "suite=accuracy",
        "model=lstm",
        f"task=[{task}]",
        *TINY_TRAIN,
        f"tasks.{task}.n_train=64",
        f"tasks.{task}.n_validation=16",
        f"tasks.{task}.n_test=16",
        f"data.cache={tmp_path / 'cache'}",
    )
    run_job(cfg, tmp_path / "run")
    record = records_of(tmp_path / "run").iloc[0]
    names = {(m["setting"], m["metric"]) for m in record["metrics"]}
    selection = record["info"]["selection_metric"]
    assert ("test", selection) in names and ("test", f"baseline_{selection}") in names
    assert record["info"]["train_tokens_per_s"] > 0 and record["info"]["encoder_params"] > 0


def test_pair_cross_encoding_runs(compose, tmp_path):
    cfg = compose(
        "suite=accuracy",
        "model=cnn",
        "task=[pair]",
        *TINY_TRAIN,
        "tasks.pair.pair_mode=cross",
        "tasks.pair.n_train=64",
        "tasks.pair.n_validation=16",
        "tasks.pair.n_test=16",
        f"data.cache={tmp_path / 'cache'}",
    )
    run_job(cfg, tmp_path / "run")
    assert records_of(tmp_path / "run").iloc[0]["status"] == "ok"


def test_effective_distance_is_where_the_score_first_falls_below_halfway():
    assert effective_distance([2, 4, 8, 16], [0.99, 0.9, 0.7, 0.95], 0.5, "accuracy") == 4
    assert effective_distance([2, 4], [0.6, 0.9], 0.5, "accuracy") == 0
    assert effective_distance([8, 16], [0.01, 0.05], 1 / 6, "mse") == 16


def test_learning_rate_warms_up_then_decays_to_zero():
    factors = [lr_factor(s, 100, 0.1) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and max(factors) == 1.0 and factors[-1] == pytest.approx(1 / 90)


def test_the_optimiser_is_fused_adamw_and_steps_like_the_reference_one():
    torch.manual_seed(0)
    model, reference = torch.nn.Linear(8, 4), torch.nn.Linear(8, 4)
    reference.load_state_dict(model.state_dict())
    ours, theirs = (
        adamw(model.parameters(), lr=1e-2),
        torch.optim.AdamW(reference.parameters(), lr=1e-2, weight_decay=0.01),
    )
    assert ours.defaults["fused"] is True
    x = torch.randn(16, 8)
    for net, opt in ((model, ours), (reference, theirs)):
        for _ in range(5):
            opt.zero_grad()
            net(x).pow(2).mean().backward()
            opt.step()
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


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
