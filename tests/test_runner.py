"""A job's units: skipped when done, redone with force, recorded as failed when they raise."""

import types

import pytest

from bench import runner
from bench.errors import Abort, UserError
from bench.records import load_records
from bench.runner import run_job
from bench.suite import Unit


@pytest.fixture
def fake_suite(monkeypatch):
    calls = []
    suite = types.ModuleType("fake_suite")
    suite.SECTIONS = ("train",)
    suite.units = lambda cfg: [Unit("a", seed=0), Unit("boom", seed=0), Unit("b", seed=0)]

    def run(ctx, unit):
        calls.append(unit.task)
        if unit.task == "boom":
            raise RuntimeError("it broke")
        if unit.task == "user":
            raise UserError("tasks.user.path=/nope does not exist.")
        return [{"setting": 1, "metric": "m", "value": 1.0}], {}

    suite.run = run
    suite.headline = lambda record: "fine"
    monkeypatch.setattr(runner, "load_suite", lambda name: suite)
    return suite, calls


def test_a_failing_unit_is_recorded_with_its_reason_and_the_job_goes_on(compose, fake_suite, tmp_path):
    _, calls = fake_suite
    counts = run_job(compose("suite=speed", "model=lstm"), tmp_path)
    assert calls == ["a", "boom", "b"] and {k: counts[k] for k in ("ok", "failed", "skipped")} == {
        "ok": 2,
        "failed": 1,
        "skipped": 0,
    }
    frame = load_records(tmp_path).set_index("task")
    assert frame.loc["boom", "status"] == "failed" and "it broke" in frame.loc["boom", "reason"]
    assert frame.loc["a", "env"]["threads"] >= 1 and frame.loc["a", "config"]["model"]["name"] == "lstm"
    assert (tmp_path / "summary.csv").exists()


def test_a_rerun_skips_finished_units_and_redoes_failed_ones(compose, fake_suite, tmp_path):
    _, calls = fake_suite
    cfg = compose("suite=speed", "model=lstm")
    run_job(cfg, tmp_path)
    calls.clear()
    counts = run_job(cfg, tmp_path)
    assert calls == ["boom"] and counts["skipped"] == 2
    assert len(load_records(tmp_path)) == 3


def test_a_measurement_from_another_machine_in_the_tree_is_not_taken_for_this_ones(
    compose, fake_suite, monkeypatch, tmp_path
):
    _, calls = fake_suite
    cfg = compose("suite=speed", "model=lstm")
    real = runner.environment
    monkeypatch.setattr(runner, "environment", lambda device: {**real(device), "device_name": "Other GPU"})
    run_job(cfg, tmp_path / "gpu", tree=tmp_path)
    monkeypatch.setattr(runner, "environment", real)
    calls.clear()
    counts = run_job(cfg, tmp_path / "cpu", tree=tmp_path)
    assert calls == ["a", "boom", "b"] and counts["skipped"] == 0
    frame = load_records(tmp_path)
    machines = [env["device_name"] for env in frame["env"]]
    assert len(frame) == 6 and machines.count("Other GPU") == 3 and len(set(machines)) == 2


def test_force_redoes_everything(compose, fake_suite, tmp_path):
    _, calls = fake_suite
    run_job(compose("suite=speed", "model=lstm"), tmp_path)
    calls.clear()
    run_job(compose("suite=speed", "model=lstm", "force=true"), tmp_path)
    assert calls == ["a", "boom", "b"]


def test_a_changed_setting_is_a_different_job(compose, fake_suite, tmp_path):
    _, calls = fake_suite
    run_job(compose("suite=speed", "model=lstm"), tmp_path)
    calls.clear()
    run_job(compose("suite=speed", "model=lstm", "train.steps=7"), tmp_path)
    assert calls == ["a", "boom", "b"]


def test_a_user_error_stops_the_whole_sweep(compose, fake_suite, tmp_path):
    suite, _ = fake_suite
    suite.units = lambda cfg: [Unit("user")]
    with pytest.raises(Abort, match="does not exist"):
        run_job(compose("suite=speed", "model=lstm"), tmp_path)
