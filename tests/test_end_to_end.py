"""`python -m bench experiment=smoke`: everything, end to end, into the folder asked for."""

import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from bench.records import load_records

from tests.conftest import REPO


def bench(*args, cwd, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(REPO), "FXBENCH_CACHE": str(cwd.parent / "cache")}
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


@pytest.mark.slow
def test_smoke_runs_everything_into_the_run_dir_and_resumes(tmp_path):
    cwd, out = tmp_path / "cwd", tmp_path / "out"
    cwd.mkdir()
    start = time.perf_counter()
    first = bench("experiment=smoke", f"hydra.run.dir={out}", cwd=cwd)
    wall = time.perf_counter() - start
    assert first.returncode == 0, first.stderr[-3000:]
    assert list(cwd.iterdir()) == [], "nothing may be written to the working directory"
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["suite"]) == {"speed", "distance", "accuracy"}
    assert set(summary["encoder"]) == {"lstm", "cnn", "transformer"}
    key = ["suite", "encoder", "task", "variant", "setting", "metric", "seed"]
    assert not summary.duplicated(key).any(), summary[summary.duplicated(key, keep=False)].head()
    assert (out / "report.md").exists() and (out / "report.html").exists() and (out / "figures" / "distance.png").exists()
    log = first.stdout + first.stderr
    assert "FAILED" not in log, [line for line in log.splitlines() if "FAILED" in line]
    assert wall < 240, f"smoke took {wall:.0f} s"

    again = bench("experiment=smoke", f"hydra.run.dir={out}", cwd=cwd)
    assert again.returncode == 0
    lines = (again.stdout + again.stderr).splitlines()
    records = load_records(out)
    derived = records["task"].eq("scaling").sum()  # recomputed from the others on every run
    assert sum("done before, skipped" in line for line in lines) == len(records) - derived
    assert not [line for line in lines if " step " in line], "a rerun into the same folder must not train again"
    assert len(load_records(out)) == len(records)
