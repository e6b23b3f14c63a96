"""The speed gate's comparison: normalised by the GEMM calibration, a missing baseline is an error."""

from pathlib import Path

import pytest

from bench.gate import CALIBRATION, GateError, best, compare, main, new_benchmarks, normalised


def result(tree, times: dict[str, float], gemm: float = 1.0) -> dict:
    benches = [
        {
            "name": n,
            "stats": {"median": t},
            "extra_info": {"models_path": f"{tree}/models/__init__.py", "encoder": n.split("[")[0]},
        }
        for n, t in times.items()
    ]
    benches.append({"name": CALIBRATION, "stats": {"median": gemm}, "extra_info": {"models_path": f"{tree}/models"}})
    return {"benchmarks": benches}


def test_a_machine_that_is_slower_overall_is_not_a_regression():
    base = normalised(result("/b", {"cnn": 1.0}, gemm=1.0), Path("/b"))
    cand = normalised(result("/c", {"cnn": 1.3}, gemm=1.3), Path("/c"))
    rows, passed = compare(base, cand, 0.15)
    assert passed and rows[0]["ratio"] == pytest.approx(1.0)


def test_a_thirty_percent_slowdown_fails_and_others_pass():
    base = normalised(result("/b", {"cnn": 1.0, "lstm": 2.0}), Path("/b"))
    cand = normalised(result("/c", {"cnn": 1.3, "lstm": 2.02}), Path("/c"))
    rows, passed = compare(base, cand, 0.15)
    assert not passed and {r["benchmark"]: r["verdict"] for r in rows} == {"cnn": "SLOWER", "lstm": "ok"}


def test_a_missing_baseline_is_an_error_not_a_pass():
    with pytest.raises(GateError, match="no baseline for gru"):
        compare({"cnn": 1.0}, {"cnn": 1.0, "gru": 1.0}, 0.15)


def test_an_encoder_the_base_does_not_have_is_reported_as_new(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "cnn.py").write_text("ENCODER = None\n")
    cand = result("/c", {"cnn": 1.0, "gru": 1.0})
    new = new_benchmarks(cand, tmp_path)
    assert new == {"gru"}
    rows, passed = compare({"cnn": 1.0}, normalised(cand, Path("/c")), 0.15, new)
    assert passed and {r["benchmark"]: r["verdict"] for r in rows} == {"cnn": "ok", "gru": "NEW"}
    rows, passed = compare({"cnn": 1.0}, {"cnn": 1.3, "gru": 1.0}, 0.15, new)
    assert not passed  # a new encoder never hides a regression of another


def test_timings_of_the_wrong_tree_are_refused():
    with pytest.raises(GateError, match="not from"):
        normalised(result("/elsewhere", {"cnn": 1.0}), Path("/b"))


def test_each_tree_keeps_its_best_round():
    assert best([{"cnn": 1.2, "lstm": 2.0}, {"cnn": 1.0, "lstm": 2.5}]) == {"cnn": 1.0, "lstm": 2.0}


def test_an_unknown_base_revision_exits_2(capsys):
    assert main(["--base", "no-such-revision-xyz"]) == 2
    assert "does not exist" in capsys.readouterr().err
