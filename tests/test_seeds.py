"""Seeds and identities: `seed` is the first of `n_seeds` consecutive seeds, a measurement is done once per
results tree whatever folder it was asked from, and the report counts each once."""

import re
import subprocess
import sys

from bench.records import load_records, write_record
from bench.report.stats import mean_ci
from tests.conftest import REPO

TINY = [
    "suite=accuracy",
    "model=cnn",
    "task=[classification]",
    "param_budget=20000",
    "train.steps=4",
    "train.eval_every=2",
    "train.batch_size=8",
    "tasks.classification.n_train=48",
    "tasks.classification.n_validation=16",
    "tasks.classification.n_test=16",
]
TINY_SPEED = [
    "suite=speed",
    "model=cnn",
    "param_budget=20000",
    "speed.seq_lens=[8,16]",
    "speed.dtypes=[fp32]",
    "speed.latency_seq_lens=[]",
    "speed.train=false",
    "speed.memory=false",
    "speed.min_run_time=0.01",
    "speed.batch_size=2",
]


def bench(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def test_a_seed_sweep_with_several_seeds_each_is_refused_in_one_sentence(tmp_path):
    proc = bench("-m", *TINY, "seed=0,1", "n_seeds=2", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "seed=0,1" in proc.stderr and "n_seeds=1" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.rglob("records/*.json"))


def test_overlapping_seed_runs_train_each_seed_once_and_the_report_counts_them(tmp_path):
    out, cache = tmp_path / "run", f"data.cache={tmp_path / 'cache'}"
    first = bench(*TINY, "seed=0", "n_seeds=2", "report=false", f"hydra.run.dir={out}", cache)
    assert first.returncode == 0, first.stderr[-2000:]
    second = bench(*TINY, "seed=1", "n_seeds=2", f"hydra.run.dir={out}", cache)  # seeds 1-2: 1 is done
    assert second.returncode == 0, second.stderr[-2000:]
    assert "seed=1: done before in" in second.stdout + second.stderr
    files = list(out.rglob("records/*.json"))
    records = load_records(out)
    assert len(files) == len(records) == 3 and records.attrs["duplicates"] == 0
    assert sorted(records["seed"]) == [0, 1, 2]
    # the report's accuracy row, against a hand count of the three test accuracies
    tests = [
        next(m["value"] for m in r if m["setting"] == "test" and m["metric"] == "accuracy")
        for r in records.sort_values("seed")["metrics"]
    ]
    row = next(
        line
        for line in (out / "report.md").read_text().splitlines()
        if re.match(r"\| classification \| cnn \| classification \| accuracy \|", line)
    )
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4] == str(mean_ci(tests, 0, 1)) and cells[6] == "3", row


def test_a_seed_sweep_measures_the_seed_free_speed_suite_once(tmp_path):
    out = tmp_path / "run"
    proc = bench("-m", *TINY_SPEED, "seed=0,1", "n_seeds=1", "report=false", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = load_records(out)
    assert len(list(out.rglob("records/*.json"))) == len(records) == 4  # gemm peak, 2 lengths, scaling
    assert records["key"].is_unique and (records["status"] == "ok").all()
    assert (proc.stdout + proc.stderr).count("done before in") == 3  # the second job's gemm peak and throughputs
    assert len(list(out.glob("*/records"))) == 1


def test_the_report_reads_a_measurement_kept_twice_once_and_says_so(tmp_path):
    from bench.report import build_report
    from tests.test_report import accuracy_record

    for folder, value, ended in (("old", 0.5, "2026-01-01T00:00:00+00:00"), ("new", 0.7, "2026-01-02T00:00:00+00:00")):
        record = accuracy_record("cnn", "classification", 0, value)
        record.ended = ended
        write_record(tmp_path / folder, record)
    failed = accuracy_record("cnn", "classification", 1, 0.9)
    write_record(tmp_path / "new", failed)
    failed.status, failed.ended = "failed", "2026-01-03T00:00:00+00:00"  # a later failure never hides an ok record
    write_record(tmp_path / "old", failed)
    records = load_records(tmp_path).set_index("seed")
    assert len(records) == 2 and load_records(tmp_path).attrs["duplicates"] == 2
    assert records.loc[0, "metrics"][0]["value"] == 0.7 and records.loc[1, "status"] == "ok"
    text = build_report(tmp_path)["md"].read_text()
    assert "2 more record files repeated a measurement already read" in text
