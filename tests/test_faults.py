"""Faults, done for real: a killed sweep resumes, SIGINT and SIGTERM keep what is done, a job that runs out
of memory or past its time is recorded as failed, concurrent sweeps never lose records, an output folder that
cannot be written (read-only, under a file, a full disk) is one sentence and keeps every finished record."""

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.records import load_records
from tests.conftest import REPO


def tiny(*tasks, report=False):
    """A few-second accuracy job over ``tasks``."""
    sizes = [f"tasks.{t}.{k}={v}" for t in tasks for k, v in (("n_train", 48), ("n_validation", 16), ("n_test", 16))]
    return [
        "suite=accuracy",
        f"task=[{','.join(tasks)}]",
        "n_seeds=1",
        "param_budget=50000",
        "train.steps=4",
        "train.eval_every=2",
        "train.batch_size=8",
        f"report={str(report).lower()}",
        *sizes,
    ]


THREE = ("tagging", "classification", "pair")


def _interruptible():
    """In the child: take SIGINT by default, as at a terminal. A test run started in the background by a
    non-interactive shell inherits SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def bench(*args, cwd=REPO):
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "bench", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=_interruptible,  # noqa: PLW1509 (the child is a fresh python, no threads yet)
    )


def wait_for_records(out, count, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(list(out.rglob("records/*.json"))) >= count:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the sweep ended early: {proc.stdout.read()[-2000:]}")
        time.sleep(0.1)
    raise AssertionError("no records appeared")


def all_records_parse(out):
    for path in out.rglob("records/*.json"):
        json.loads(path.read_text())  # raises on a corrupt record


@pytest.mark.slow
def test_a_killed_sweep_resumes_only_the_missing_jobs(tmp_path):
    out = tmp_path / "run"
    args = [*tiny(*THREE), "model=cnn,lstm", f"hydra.run.dir={out}", f"data.cache={tmp_path / 'cache'}"]
    proc = bench(*args)
    wait_for_records(out, 2, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    all_records_parse(out)
    before = {p.name: p.stat().st_mtime_ns for p in out.rglob("records/*.json")}
    assert 2 <= len(before) < 6
    rerun = bench(*args)
    log = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, log[-2000:]
    assert log.count("done before, skipped") == len(before)
    after = {p.name: p.stat().st_mtime_ns for p in out.rglob("records/*.json")}
    assert len(after) == 6 and all(after[name] == mtime for name, mtime in before.items())
    records = load_records(out)
    assert records["key"].is_unique and (records["status"] == "ok").all()


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig,code,sentence",
    [
        (signal.SIGINT, 130, "fxbench: interrupted; finished records are kept"),
        (signal.SIGTERM, 143, "fxbench: terminated (SIGTERM); finished records are kept"),
    ],
)
def test_an_interrupt_stops_cleanly_and_keeps_finished_records(tmp_path, sig, code, sentence):
    out = tmp_path / "run"
    # the first unit (tagging) ends in seconds; the next trains for far longer than the test waits, so the
    # interrupt always lands mid-sweep
    proc = bench(
        *tiny(*THREE),
        "++tasks.classification.train.steps=1000000",
        "++tasks.classification.train.eval_every=500",  # a log line per 2 steps would fill the unread pipe
        "model=cnn,lstm",
        f"hydra.run.dir={out}",
        f"data.cache={tmp_path / 'cache'}",
    )
    try:
        wait_for_records(out, 1, proc)
        os.killpg(proc.pid, sig)
        log = proc.communicate(timeout=120)[0]  # the other test worker may be using both cores
    finally:  # a sweep that ignored the interrupt must not train on after the test
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == code, log[-2000:]
    assert log.strip().splitlines()[-1].startswith(sentence), log[-2000:]
    all_records_parse(out)
    records = load_records(out)
    assert len(records) >= 1 and (records["status"] == "ok").all() and "Traceback" not in log


def one_sentence(log: str, start: str) -> str:
    """The run's last line, which must be the fxbench sentence; no traceback before it."""
    assert "Traceback" not in log, log[-3000:]
    last = log.strip().splitlines()[-1]
    assert last.startswith(f"fxbench: {start}"), log[-2000:]
    return last


def test_an_output_folder_under_a_file_is_one_sentence_naming_the_file(tmp_path):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    proc = bench(*tiny("tagging"), "model=cnn", f"hydra.run.dir={tmp_path / 'notes.txt' / 'run'}")
    log = proc.communicate(timeout=120)[0]
    assert proc.returncode == 1
    assert f"{tmp_path / 'notes.txt'} is a file, not a folder" in one_sentence(log, "cannot create")


@contextlib.contextmanager
def mounted_tmpfs(path, options):
    """A real small or read-only file system at ``path`` (needs root and mount rights; else the test skips)."""
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_read_only_output_folder_is_one_sentence_naming_it(tmp_path):
    with contextlib.ExitStack() as stack:
        if os.geteuid() == 0:  # root writes through file modes: a read-only file system it is
            folder = stack.enter_context(mounted_tmpfs(tmp_path / "ro", "ro,size=1m"))
        else:
            folder = tmp_path / "ro"
            folder.mkdir(mode=0o555)
        proc = bench(*tiny("tagging"), "model=cnn", f"hydra.run.dir={folder / 'run'}")
        log = proc.communicate(timeout=120)[0]
    assert proc.returncode == 1
    sentence = one_sentence(log, f"cannot write {folder / 'run'}")
    assert "read-only" in sentence or "permission denied" in sentence


@pytest.mark.slow
def test_a_full_disk_stops_with_one_sentence_keeps_every_finished_record_and_resumes(tmp_path):
    with mounted_tmpfs(tmp_path / "disk", "size=1m") as disk:
        out = disk / "run"
        args = [*tiny(*THREE), "model=cnn", "n_seeds=2", f"hydra.run.dir={out}", f"data.cache={tmp_path / 'cache'}"]
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(b"\0" * (free - 48 * 1024))  # room for the configs and a few records
        proc = bench(*args)
        log = proc.communicate(timeout=300)[0]
        assert proc.returncode == 1, log[-2000:]
        assert "the disk is full" in one_sentence(log, f"cannot write {out}")
        all_records_parse(out)
        assert not list(out.rglob("records/*.tmp")) and not list(out.rglob("records/.*"))
        kept = {p.name: p.read_bytes() for p in out.rglob("records/*.json")}
        assert 1 <= len(kept) < 6
        (disk / "filler").unlink()
        rerun = bench(*args)
        log = rerun.communicate(timeout=300)[0]
        assert rerun.returncode == 0, log[-2000:]
        assert log.count("done before, skipped") == len(kept)
        assert all((out.rglob(f"records/{name}").__next__()).read_bytes() == data for name, data in kept.items())
        assert len(load_records(out)) == 6 and (load_records(out)["status"] == "ok").all()


def test_a_write_that_finds_the_disk_full_stops_the_job_and_names_the_file(compose, tmp_path, monkeypatch):
    from bench import files, runner
    from bench.errors import Abort

    fake_suite(
        monkeypatch,
        [runner.Unit("one"), runner.Unit("two"), runner.Unit("three")],
        lambda ctx, unit: ([{"setting": "x", "metric": "m", "value": 1.0}], {}),
    )
    real_replace, calls = os.replace, []

    def replace(src, dst):  # the second record meets a full disk
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    with pytest.raises(Abort) as info:
        runner.run_job(compose("suite=speed"), tmp_path)
    assert info.value.exit_code == 1
    assert str(info.value).startswith(f"cannot write {calls[1]}: the disk is full")
    assert [p.name for p in tmp_path.rglob("records/*")] == [os.path.basename(calls[0])]  # intact, no temp file
    json.loads(Path(calls[0]).read_text())


def test_a_run_whose_every_unit_failed_exits_1_with_one_sentence(tmp_path):
    proc = bench(
        *tiny("tagging", "classification"),
        "model=cnn",
        "limits.unit_seconds=0.001",
        f"hydra.run.dir={tmp_path}",
        f"data.cache={tmp_path / 'cache'}",
    )
    log = proc.communicate(timeout=120)[0]
    assert proc.returncode == 1
    assert "limits.unit_seconds=0.001" in one_sentence(log, "2 of 2 measurements run now failed")
    assert (load_records(tmp_path)["status"] == "failed").all()


def test_threads_come_from_the_setting_else_omp_num_threads_else_the_cores(compose, tmp_path, monkeypatch):
    import torch

    from bench import runner

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert runner.job_threads(compose("suite=speed")) == (1, "OMP_NUM_THREADS")
        assert runner.job_threads(compose("suite=speed", "threads=3")) == (3, "threads=3")
        fake_suite(monkeypatch, [runner.Unit("one")], lambda ctx, unit: ([], {"seen": torch.get_num_threads()}))
        runner.run_job(compose("suite=speed"), tmp_path)
        record = load_records(tmp_path).iloc[0]
        assert record["info"]["seen"] == 1 and record["env"]["threads"] == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert runner.job_threads(compose("suite=speed"))[0] == os.cpu_count()
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_a_job_out_of_memory_is_recorded_failed_and_the_sweep_goes_on(tmp_path):
    out = tmp_path / "run"
    # the second job asks for a 60000-wide CNN (43 GB of weights) under an 8 GB cap
    proc = bench(
        "-m",
        *tiny("tagging"),
        "model=cnn",
        "model.d_model=64,60000",
        "limits.memory_gb=8",
        f"hydra.run.dir={out}",
        f"data.cache={tmp_path / 'cache'}",
    )
    log = proc.communicate(timeout=300)[0]
    assert proc.returncode == 1, log[-2000:]  # the sweep went on, and says that not all of it was done
    assert log.strip().splitlines()[-1].startswith("fxbench: 1 of 2 measurements run now failed")
    records = load_records(out).set_index(load_records(out)["config"].map(lambda c: c["model"]["d_model"]))
    assert records.loc[64, "status"] == "ok"
    assert records.loc[60000, "status"] == "failed" and "memory" in records.loc[60000, "reason"]


def fake_suite(monkeypatch, units, run):
    """Stand a suite of the given units and run function in for the speed suite."""
    import types

    from bench import runner

    suite = types.ModuleType("fake_suite")
    suite.SECTIONS = ()
    suite.units = lambda cfg: units
    suite.run = run
    suite.headline = lambda record: ""
    monkeypatch.setattr(runner, "load_suite", lambda name: suite)


def test_a_unit_past_its_time_limit_is_recorded_failed(compose, tmp_path, monkeypatch):
    from bench.runner import run_job
    from bench.suite import Unit

    fake_suite(
        monkeypatch,
        [Unit("slow"), Unit("quick")],
        lambda ctx, unit: (time.sleep(5 if unit.task == "slow" else 0), ([], {}))[1],
    )
    start = time.perf_counter()
    run_job(compose("suite=speed", "limits.unit_seconds=0.3"), tmp_path)
    assert time.perf_counter() - start < 3
    records = load_records(tmp_path).set_index("task")
    assert records.loc["slow", "status"] == "failed" and "limits.unit_seconds=0.3" in records.loc["slow", "reason"]
    assert records.loc["quick", "status"] == "ok"


@pytest.mark.slow
def test_a_job_past_its_time_limit_records_the_overrun_as_failed(tmp_path):
    out = tmp_path / "run"
    # tagging takes seconds; classification would train for hours, and the job has 15 s in all
    proc = bench(
        *tiny("tagging", "classification"),
        "++tasks.classification.train.steps=1000000",
        "train.early_stop=false",  # or the plateau would end it in seconds
        "model=cnn",
        "hydra.mode=RUN",
        "limits.job_seconds=15",
        f"hydra.run.dir={out}",
        f"data.cache={tmp_path / 'cache'}",
    )
    start = time.time()
    log = proc.communicate(timeout=300)[0]
    assert proc.returncode == 1 and "fxbench: 1 of 2 measurements run now failed" in log, log[-2000:]
    assert time.time() - start < 120
    records = load_records(out).set_index("task")
    assert records.loc["tagging", "status"] == "ok"
    assert records.loc["classification", "status"] == "failed"
    assert "limits.job_seconds=15" in records.loc["classification", "reason"]


def test_the_memory_cap_holds_for_its_job_only(compose, tmp_path, monkeypatch):
    import resource

    from bench.runner import run_job
    from bench.suite import Unit

    before, seen = resource.getrlimit(resource.RLIMIT_AS), []
    fake_suite(
        monkeypatch,
        [Unit("one")],
        lambda ctx, unit: (seen.append(resource.getrlimit(resource.RLIMIT_AS)[0]), ([], {}))[1],
    )
    run_job(compose("suite=speed", "limits.memory_gb=64"), tmp_path)
    assert seen == [64 * 2**30]
    assert resource.getrlimit(resource.RLIMIT_AS) == before, "the next job of the sweep must not inherit the cap"


@pytest.mark.slow
def test_two_sweeps_writing_into_one_folder_at_once_lose_nothing(tmp_path):
    out = tmp_path / "run"
    common = [*tiny("tagging", "classification"), f"hydra.run.dir={out}", f"data.cache={tmp_path / 'cache'}"]
    # the same four jobs, in opposite orders, so that the sweeps meet on every job's folder
    procs = [bench("-m", *common, f"model={models}") for models in ("cnn,lstm", "lstm,cnn")]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), [log[-1000:] for log in logs]
    all_records_parse(out)
    records = load_records(out)
    assert sorted(zip(records["encoder"], records["task"])) == [
        ("cnn", "classification"),
        ("cnn", "tagging"),
        ("lstm", "classification"),
        ("lstm", "tagging"),
    ]
    assert (records["status"] == "ok").all() and records["key"].is_unique
    assert not list(out.rglob("records/.*")) and not list(out.rglob("records/*.tmp"))  # no temporary file left


@pytest.mark.slow
def test_joblib_runs_jobs_in_parallel_with_the_threads_shared_out(tmp_path):
    out = tmp_path / "run"
    proc = bench(
        "-m",
        *tiny("tagging"),
        "model=cnn,lstm",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.run.dir={out}",
        f"data.cache={tmp_path / 'cache'}",
    )
    log = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, log[-2000:]
    records = load_records(out)
    assert sorted(records["encoder"]) == ["cnn", "lstm"]
    assert set(records["env"].map(lambda e: e["threads"])) == {max(1, (os.cpu_count() or 1) // 2)}


def test_speed_suites_refuse_a_parallel_launcher(tmp_path):
    proc = bench("suite=speed", "hydra/launcher=joblib", f"hydra.run.dir={tmp_path}")
    log = proc.communicate(timeout=120)[0]
    assert proc.returncode == 2 and "cannot run under a parallel launcher" in log


@pytest.mark.slow
def test_submitit_local_runs_the_sweep_and_the_report_gathers_it(tmp_path):
    out = tmp_path / "run"
    proc = bench(
        "-m",
        *tiny("tagging", report=True),
        "model=cnn,lstm",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        f"hydra.run.dir={out}",
        f"data.cache={tmp_path / 'cache'}",
    )
    log = proc.communicate(timeout=400)[0]
    assert proc.returncode == 0, log[-2000:]
    assert sorted(load_records(out)["encoder"]) == ["cnn", "lstm"]
    assert (out / "report.md").exists() and (out / "summary.csv").exists()
