"""Equal tuning effort: the same grid for every family, the choice on validation only, and the suites
reading the chosen recipe."""

from __future__ import annotations

import pytest
import yaml

from bench.errors import UserError
from bench.recipes import choose, recipe_yaml, trials
from bench.records import Record, load_records, write_record

GRID = (1e-3, 2e-3, 4e-3)


def _record(encoder, suite, task, lr, validation, test, metric="accuracy", seed=0):
    config = {
        "model": {"name": encoder},
        "train": {"lr": lr, "warmup": 0.05},
        "tune": {"grid": "train.lr in {1e-3, 2e-3, 4e-3}"},
    }
    if suite == "distance":
        metrics = [{"setting": "all", "metric": metric, "value": test}]
        info = {"metric": metric, "validation": {metric: validation}, "convergence": "converged"}
    else:
        metrics = [
            {"setting": "validation", "metric": metric, "value": validation},
            {"setting": "test", "metric": metric, "value": test},
        ]
        info = {"selection_metric": metric, "convergence": "converged", "type": "classification"}
    return Record(
        key=f"{suite}-{encoder}-{task}-{lr}-{seed}",
        suite=suite,
        encoder=encoder,
        task=task,
        seed=seed,
        status="ok",
        metrics=metrics,
        info=info,
        config=config,
    )


def _sweep(tmp_path, validation, test):
    """lstm and cnn on two accuracy tasks and an MSE probe, at every grid point; ``validation`` and ``test`` give
    the metric of (encoder, lr) on the accuracy tasks."""
    for encoder in ("lstm", "cnn"):
        for lr in GRID:
            for task in ("sent", "nli"):
                v, t = validation[encoder][lr], test[encoder][lr]
                write_record(tmp_path, _record(encoder, "accuracy", task, lr, v, t))
            write_record(tmp_path, _record(encoder, "distance", "adding", lr, 0.01 / lr, 0.01 / lr, metric="mse"))
    return load_records(tmp_path)


VALIDATION = {"lstm": {1e-3: 0.7, 2e-3: 0.8, 4e-3: 0.75}, "cnn": {1e-3: 0.9, 2e-3: 0.85, 4e-3: 0.6}}


def test_each_family_gets_its_best_validation_point_whatever_test_says(tmp_path):
    # test prefers the opposite point every time: it must not matter
    test = {e: {lr: 1 - v for lr, v in points.items()} for e, points in VALIDATION.items()}
    table = choose(trials(_sweep(tmp_path, VALIDATION, test)))
    chosen = table[table["chosen"]].set_index(["suite", "encoder"])["lr"].to_dict()
    assert chosen[("accuracy", "lstm")] == 2e-3 and chosen[("accuracy", "cnn")] == 1e-3
    assert chosen[("distance", "lstm")] == 4e-3 and chosen[("distance", "cnn")] == 4e-3  # the lowest MSE
    assert table.groupby(["suite", "encoder"]).size().eq(len(GRID)).all()  # every family: the same trials
    # a choice at either end of the grid is flagged, in the table and in the written recipe
    edge = table[table["at_edge"]].set_index(["suite", "encoder"]).index
    assert set(edge) == {("accuracy", "cnn"), ("distance", "lstm"), ("distance", "cnn")}
    assert "At the edge of the grid (the best may lie beyond it" in recipe_yaml(table, "x")


def test_the_choice_is_the_same_when_only_test_metrics_change(tmp_path):
    a = choose(trials(_sweep(tmp_path / "a", VALIDATION, VALIDATION)))
    b = choose(trials(_sweep(tmp_path / "b", VALIDATION, {e: {lr: 0.0 for lr in GRID} for e in VALIDATION})))
    assert a["chosen"].tolist() == b["chosen"].tolist()


def test_unequal_trials_are_refused_with_the_counts(tmp_path):
    records = _sweep(tmp_path, VALIDATION, VALIDATION)
    runs = trials(records)
    runs = runs[~((runs["encoder"] == "cnn") & (runs["lr"] == 4e-3) & (runs["suite"] == "accuracy"))]
    with pytest.raises(UserError, match=r"accuracy trials are not equal across families \(cnn 2, lstm 3\)"):
        choose(runs)


def test_the_written_recipe_is_what_the_suites_read(tmp_path, compose):
    table = choose(trials(_sweep(tmp_path, VALIDATION, VALIDATION)))
    written = yaml.safe_load(recipe_yaml(table, "results/tuning"))
    assert written["recipes"]["lstm"]["accuracy"] == {"lr": 2e-3, "warmup": 0.05}
    recipes = "++recipes={lstm: {accuracy: {lr: 0.002, warmup: 0.1}}, cnn: {accuracy: {lr: 0.001, warmup: 0.05}}}"
    lstm = compose("suite=accuracy", "model=lstm", recipes)
    assert lstm.train.lr == 2e-3 and lstm.train.warmup == 0.1
    assert compose("suite=accuracy", "model=cnn", recipes).train.lr == 1e-3
    assert compose("suite=distance", "model=lstm", recipes).train.lr == 2e-3  # no distance recipe: the suite's
    assert compose("suite=accuracy", "model=lstm", recipes, "train.lr=5e-4").train.lr == 5e-4  # an override wins


def test_the_tune_sweep_gives_every_family_the_same_grid(compose):
    cfg = compose("experiment=tune", return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params["train.lr"] == "5.0e-4,1.0e-3,2.0e-3,4.0e-3" and "model" in params
    assert cfg.recipes == {} and cfg.tune.grid


def test_the_report_keeps_grid_trials_out_of_the_measurements_and_shows_the_grid(tmp_path):
    from bench.report import build_report, frames

    records = _sweep(tmp_path, VALIDATION, VALIDATION)
    assert frames.accuracy(records).empty and frames.distance(records).empty  # trials are not measurements
    text = build_report(tmp_path)["md"].read_text()
    assert "## Equal tuning: the grid" in text and "| accuracy | lstm |" in text
    assert "lr in {0.001, 0.002, 0.004}" in text  # the points the trials ran, whatever their grid text says


def test_a_trial_at_the_measurements_settings_does_not_replace_the_measurement(tmp_path):
    from bench.report import frames

    trial = _record("lstm", "accuracy", "sent", 2e-3, 0.8, 0.8)
    measurement = _record("lstm", "accuracy", "sent", 2e-3, 0.9, 0.9)
    measurement.config = {k: v for k, v in measurement.config.items() if k != "tune"}  # same key, no grid
    write_record(tmp_path / "measured", measurement)
    write_record(tmp_path / "tuning", trial)
    records = load_records(tmp_path)
    assert len(records) == 2 and frames.accuracy(records)["value"].tolist() == [0.9]


def test_a_tuning_trial_has_a_key_of_its_own(compose):
    from bench.runner import unit_key
    from bench.suite import Unit, load_suite

    suite, unit = load_suite("accuracy"), Unit("tagging", seed=0)
    plain = unit_key(compose("suite=accuracy", "model=lstm", "train.lr=2e-3"), suite, unit)
    trial = unit_key(compose("suite=accuracy", "model=lstm", "experiment=tune", "train.lr=2e-3"), suite, unit)
    assert plain != trial
