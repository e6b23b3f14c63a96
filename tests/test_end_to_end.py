"""`python -m bench experiment=smoke`: everything, end to end, into the folder asked for."""

import re

import pandas as pd
import pytest

from bench.records import load_records
from bench.schema import default_encoders
from tests.conftest import bench


@pytest.mark.slow
def test_smoke_runs_everything_into_the_run_dir_and_resumes(smoke_run):
    cwd, out, first, wall = smoke_run
    assert first.returncode == 0, first.stderr[-3000:]
    assert list(cwd.iterdir()) == [], "nothing may be written to the working directory"
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["suite"]) == {"speed", "speed_detail", "distance", "accuracy"}
    assert set(summary["encoder"]) == set(default_encoders().split(","))  # every encoder, with no override
    key = ["suite", "encoder", "task", "variant", "setting", "metric", "seed"]
    assert not summary.duplicated(key).any(), summary[summary.duplicated(key, keep=False)].head()
    assert (
        (out / "report.md").exists()
        and (out / "report.html").exists()
        and (out / "figures" / "distance.png").exists()
        and (out / "figures" / "speed_breakdown.png").exists()
    )
    log = first.stdout + first.stderr
    assert "FAILED" not in log, [line for line in log.splitlines() if "FAILED" in line]
    assert [line for line in log.splitlines() if line.strip()][-1].endswith(
        f"report: {out}/report.html and {out}/report.md"
    )
    progress = [line for line in log.splitlines() if "progress: job " in line]  # overall progress, one line per unit
    assert progress and re.search(r"job (\d+)/\1, unit (\d+)/\2; \d+m\d\ds elapsed$", progress[-1]), progress[-1:]
    assert "left" in progress[len(progress) // 2], "an estimate of the time left while it runs"
    assert "Reduced run:" in (out / "report.md").read_text(), "a smoke run's report says its verdicts are not evidence"
    assert wall < 240, f"smoke took {wall:.0f} s"

    again = bench("experiment=smoke", f"hydra.run.dir={out}", cwd=cwd)
    assert again.returncode == 0
    lines = (again.stdout + again.stderr).splitlines()
    records = load_records(out)
    derived = records["task"].eq("scaling").sum()  # recomputed from the others on every run
    assert sum("done before, skipped" in line for line in lines) == len(records) - derived
    assert not [line for line in lines if " step " in line], "a rerun into the same folder must not train again"
    assert len(load_records(out)) == len(records)
