"""Inference under the runtimes a user deploys (bench.runtimes): checked against eager, then timed interleaved; a
runtime that fails or disagrees is recorded with its reason and the others go on."""

import sys

import pytest

import models
from bench import runtimes
from bench.runtimes import ORT_MISSING, runtime_config, time_interleaved


def _measure(name: str, names: list[str]) -> dict:
    build = models.fixed_width(name=name, param_budget=50_000)
    return runtime_config(build, "cpu", "fp32", batch=2, seq_len=16, threads=1, min_run_time=0.01, runtimes=names)


@pytest.fixture(scope="module")
def measured() -> dict:
    """A small CNN and LSTM under eager and torch.compile, and ONNX Runtime where it is installed."""
    try:
        import onnxruntime  # noqa: F401

        names = ["eager", "compile", "onnxruntime"]
    except ImportError:
        names = ["eager", "compile"]
    return {name: _measure(name, names)["runtimes"] for name in ("cnn", "lstm")}


def test_every_runtime_of_a_cnn_and_an_lstm_agrees_with_eager_within_the_tolerance(measured):
    for encoder, result in measured.items():
        for name, r in result.items():
            assert r["status"] == "ok", (encoder, name, r)
            assert r["max_abs_error"] <= r["tolerance"] < 0.01
            assert len(r["times"]) >= 5 and r["tokens_per_s"] == pytest.approx(32 / (r["median_ms"] / 1e3))
        assert result["compile"]["facts"]["compile_s"] > 0


def test_onnx_runtime_runs_the_torchscript_export_and_says_what_the_trace_fixed(measured):
    pytest.importorskip("onnxruntime")
    lstm = measured["lstm"]["onnxruntime"]["facts"]
    assert lstm["exporter"] == runtimes.TRACED and "models/lstm.py:86" in lstm["traced_in"]  # bool(mask.all())
    assert lstm["export_s"] > 0 and set(lstm["inputs"]) <= {"x", "mask"}


def test_interleaved_rounds_rotate_the_order_and_give_each_call_at_least_five_times():
    order = []
    calls = {name: (lambda n=name: order.append(n)) for name in ("a", "b", "c")}
    times = time_interleaved(calls, min_run_time=0.0, warmup=0)
    assert {name: len(t) for name, t in times.items()} == {"a": 5, "b": 5, "c": 5}
    assert order[:6] == ["a", "b", "c", "b", "c", "a"]


def _patched(monkeypatch, make):
    """runtimes.prepare with its "compile" runtime replaced by ``make(eager_call)`` (no compilation)."""
    real = runtimes.prepare

    def prepare(runtime, *args):
        call, facts = real("eager", *args)
        return (make(call), facts) if runtime == "compile" else (call, facts)

    monkeypatch.setattr(runtimes, "prepare", prepare)


def test_a_runtime_whose_outputs_differ_is_failed_and_not_timed(monkeypatch):
    _patched(monkeypatch, lambda call: lambda: call() + 1.0)
    result = _measure("cnn", ["eager", "compile"])["runtimes"]
    assert result["compile"]["status"] == "failed" and "times" not in result["compile"]
    assert result["compile"]["reason"].startswith("outputs differ from eager's by 1 (tolerance ")
    assert result["eager"]["status"] == "ok" and len(result["eager"]["times"]) >= 5


def test_a_runtime_that_raises_is_failed_with_its_reason_and_the_others_still_time(monkeypatch):
    def make(call):
        raise RuntimeError("no compiler here\nand a long traceback")

    _patched(monkeypatch, make)
    result = _measure("cnn", ["eager", "compile"])["runtimes"]
    assert result["compile"] == {"status": "failed", "reason": "RuntimeError: no compiler here"}
    assert result["eager"]["status"] == "ok" and len(result["eager"]["times"]) >= 5


def test_without_onnxruntime_its_runtime_fails_in_one_sentence_saying_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    result = _measure("cnn", ["eager", "onnxruntime"])["runtimes"]
    assert result["onnxruntime"] == {"status": "failed", "reason": ORT_MISSING}
    assert ORT_MISSING == "onnxruntime is not installed: pip install -e '.[deploy]'"
    assert result["eager"]["status"] == "ok"


def test_an_unknown_runtime_is_refused_in_one_sentence_naming_the_setting(compose):
    from bench.errors import explain
    from bench.schema import validate

    with pytest.raises(Exception) as info:
        validate(compose("suite=speed_detail", "speed.runtime=[bogus]"))
    sentence = explain(info.value)
    assert "\n" not in sentence and "speed.runtime" in sentence
    assert all(name in sentence for name in runtimes.RUNTIMES)


def test_the_schema_offers_every_runtime_and_measures_all_by_default(compose):
    cfg = compose("suite=speed_detail")
    assert list(cfg.speed.runtime) == list(runtimes.RUNTIMES)


def test_speed_detail_times_runtimes_at_the_shortest_and_longest_t_only_beside_eager(compose):
    from bench import speed_detail

    def runtime_units(*overrides):
        cfg = compose("suite=speed_detail", "device=cpu", "speed.seq_lens=[32,64,256]", *overrides)
        return [u.params for u in speed_detail.units(cfg) if u.task == "runtime"]

    assert [(p["dtype"], p["T"]) for p in runtime_units()] == [("fp32", 32), ("fp32", 256)]
    assert runtime_units("speed.runtime=[eager]") == []


def test_the_headline_gives_each_runtime_its_rate_and_error_and_each_failure_its_reason():
    from bench import speed_detail

    rates = {"eager": (52100.0, 0.0), "onnxruntime": (61200.0, 2e-6)}
    record = {
        "task": "runtime",
        "metrics": [
            {"setting": name, "metric": metric, "value": value}
            for name, (rate, err) in rates.items()
            for metric, value in (("infer_tokens_per_s", rate), ("infer_ms", 1.0), ("max_abs_error", err))
        ],
        "info": {"failed": {"compile": "RuntimeError: no compiler here"}},
    }
    assert speed_detail.headline(record) == (
        "eager 52.1k tok/s, onnxruntime 61.2k (2e-06); failed: compile (RuntimeError: no compiler here)"
    )
