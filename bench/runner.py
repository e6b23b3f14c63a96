"""Run one Hydra job: the units of work of one suite for one encoder, resumably.

A unit is one measurement that ends in one record (one sequence length and
dtype of the speed suite, one task and seed of a training suite). A unit whose
record exists with status ok is skipped unless ``force=true``; a unit that
raises is recorded as failed with its reason, and the job goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import signal
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

import models
from bench import progress
from bench.env import environment, resolve_device
from bench.errors import Abort, UserError, unwritable_output_stops
from bench.records import Record, now, read_record, record_index, write_record, write_summary
from bench.suite import Context, Unit, load_suite

log = logging.getLogger("bench")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy

        numpy.random.seed(seed % 2**32)
    except ImportError:
        pass


def encoder_label(cfg: DictConfig) -> str:
    return cfg.model.get("label") or cfg.model.name


def unit_key(cfg: DictConfig, suite, unit: Unit, machine: str | None = None) -> str:
    """Stable id of a unit: suite, encoder, unit, and a hash of every setting that can change its result
    and of the machine (``env["device_name"]``), so that one results tree can hold a CPU's and a GPU's."""
    relevant = {
        "machine": machine,
        "suite": cfg.suite,
        "model": None if unit.shared else OmegaConf.to_container(cfg.model, resolve=True),
        "sections": {s: OmegaConf.to_container(cfg[s], resolve=True) for s in suite.SECTIONS},
        "task": OmegaConf.to_container(cfg.tasks[unit.task], resolve=True) if unit.task in cfg.tasks else None,
        "unit": {"task": unit.task, "seed": unit.seed, **unit.params},
        "device": cfg.device,
        "threads": cfg.threads,
    }
    if cfg.get("tune") and cfg.tune.get("grid"):  # a tuning trial is not the measurement it tunes, even at its settings
        relevant["tune"] = cfg.tune.grid
    if hasattr(suite, "key_inputs"):  # what else the suite's units depend on
        relevant["inputs"] = suite.key_inputs(cfg)
    if unit.inputs:
        relevant["unit_inputs"] = unit.inputs
    digest = hashlib.sha1(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:12]
    who = "sweep" if unit.shared else encoder_label(cfg)
    slug = "-".join([cfg.suite, who, unit.task] + [f"{v}" for v in unit.params.values()])
    if unit.seed is not None:
        slug += f"-s{unit.seed}"
    return f"{slug}-{digest}".replace("/", "_").replace(" ", "")


def _reason(err: Exception) -> str:
    text = f"{type(err).__name__}: {err}"
    if isinstance(err, MemoryError) or "not enough memory" in text or "out of memory" in text.lower():
        return "out of memory: " + text
    return text


def job_threads(cfg: DictConfig | None = None) -> tuple[int, str]:
    """The job's thread count and why: ``threads=``, else OMP_NUM_THREADS, else all cores shared out among
    the jobs a parallel launcher runs at once."""
    if cfg is not None and cfg.get("threads"):
        return cfg.threads, f"threads={cfg.threads}"
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return int(omp), "OMP_NUM_THREADS"
    cores = os.cpu_count() or 1
    try:
        from hydra.core.hydra_config import HydraConfig

        parallel = HydraConfig.get().launcher.get("n_jobs") or 1
    except (ValueError, AttributeError):
        parallel = 1
    if parallel < 0:  # joblib's -1: as many jobs as cores
        parallel = cores
    return max(1, cores // parallel), f"{cores} cores" + (f" over {parallel} parallel jobs" if parallel > 1 else "")


def config_hash(config: dict) -> str:
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


class UnitTimeout(Exception):
    """A unit ran past limits.unit_seconds."""


@contextlib.contextmanager
def time_limit(seconds: float | None, name: str = "limits.unit_seconds", limit: float | None = None):
    """Raise UnitTimeout in this (main) thread after ``seconds``, naming the setting ``name``=``limit``
    that set it; no limit when None."""
    limit = seconds if limit is None else limit
    if not seconds or not hasattr(signal, "setitimer"):
        yield
        return

    def overrun(signum, frame):
        raise UnitTimeout(f"ran past the limit of {name}={limit:g} s")

    previous = signal.signal(signal.SIGALRM, overrun)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def memory_limit(gigabytes: float | None):
    """Cap this process's address space while the job runs, so an allocation past it fails (and is
    recorded) instead of the machine swapping or the kernel killing the whole sweep; the previous
    limit comes back afterwards, so the next job of a sweep in this process starts uncapped."""
    if not gigabytes:
        yield
        return
    import resource

    previous = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (int(gigabytes * 2**30), previous[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, previous)


def run_job(cfg: DictConfig, out_dir: Path, tree: Path | None = None) -> dict:
    """Run every unit of ``cfg.suite`` for ``cfg.model`` into ``out_dir``; return counts of ok, failed and
    skipped. ``tree`` is the results folder the job belongs to (a sweep's folder; default ``out_dir``): a
    unit whose record is anywhere in it is the same measurement, done once for the whole tree."""
    with memory_limit(cfg.limits.memory_gb):
        return _run_units(cfg, Path(out_dir).resolve(), Path(tree or out_dir).resolve())


def _run_units(cfg: DictConfig, out_dir: Path, tree: Path) -> dict:
    job_deadline = time.perf_counter() + cfg.limits.job_seconds if cfg.limits.job_seconds else None
    threads, why = job_threads(cfg)
    torch.set_num_threads(threads)
    device = resolve_device(cfg.device)
    suite = load_suite(cfg.suite)
    ctx = Context(cfg=cfg, encoder=encoder_label(cfg), device=device, out_dir=out_dir, threads=threads)
    units = suite.units(cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    env = environment(device)
    family = models.capabilities(cfg.model.name).family
    log.info(
        f"{cfg.suite} {ctx.encoder}: {len(units)} units on {device.type} with {threads} thread{'s' * (threads != 1)} ({why})"
    )
    index = record_index(tree) if tree.exists() else {}
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    with progress.job(_job_number(), len(units), f"{cfg.suite} {ctx.encoder}") as tracker:
        for i, unit in enumerate(units, 1):
            key = unit_key(cfg, suite, unit, env.get("device_name"))
            tag = f"[{i}/{len(units)}] {cfg.suite} {ctx.encoder} {unit.label}"
            found = index.get(key)
            if found is None and (out_dir / "records" / f"{key}.json").exists():  # a concurrent sweep's, since
                found = out_dir / "records" / f"{key}.json"
            previous = read_record(found) if found is not None and found.exists() else None
            if not (cfg.force or unit.always) and previous is not None and previous["status"] == "ok":
                where = "" if found.parent.parent == out_dir else f" in {found.parent.parent}"
                log.info(f"{tag}: done before{where}, skipped (force=true redoes it)")
                ctx.record_paths[key] = found
                counts["skipped"] += 1
                tracker.unit_done()
                continue
            record = Record(
                key=key,
                suite=cfg.suite,
                encoder=ctx.encoder,
                task=unit.task,
                seed=unit.seed,
                status="ok",
                config=resolved,
                config_hash=config_hash(resolved),
                env=env,
                started=now(),
                family=family,
            )
            seed_everything(cfg.seed if unit.seed is None else unit.seed)
            t0 = time.perf_counter()
            seconds, name, limit = cfg.limits.unit_seconds, "limits.unit_seconds", cfg.limits.unit_seconds
            if job_deadline is not None and (seconds is None or job_deadline - t0 < seconds):
                seconds, name, limit = max(job_deadline - t0, 1e-3), "limits.job_seconds", cfg.limits.job_seconds
            try:
                if job_deadline is not None and t0 >= job_deadline:
                    raise UnitTimeout(f"not started: the job ran past the limit of limits.job_seconds={limit:g} s")
                with time_limit(seconds, name, limit):
                    record.metrics, record.info = suite.run(ctx, unit)
            except (UserError, Abort) as err:
                raise Abort(str(err)) from None
            except Exception as err:  # recorded, and the job goes on
                record.status, record.reason = "failed", _reason(err)
                record.info = {"traceback": traceback.format_exc(limit=8)}
            record.ended = now()
            record.info["wall_s"] = round(time.perf_counter() - t0, 3)
            # one identity, one file in the tree: a redone unit replaces its record where it is kept
            with unwritable_output_stops():  # a full disk stops the sweep with one sentence
                ctx.record_paths[key] = index[key] = write_record(found.parent.parent if found else out_dir, record)
            counts[record.status] += 1
            outcome = suite.headline(asdict(record)) if record.status == "ok" else f"FAILED: {record.reason}"
            log.info(f"{tag}: {outcome} ({record.info['wall_s']:.1f} s)")
            tracker.unit_done()
    with unwritable_output_stops():
        write_summary(out_dir)
    counts["objective"] = objective(ctx.job_records(), cfg.suite)
    return counts


def _job_number() -> int:
    """This job's number in its sweep (from 0), where Hydra runs it; 0 elsewhere."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return int(HydraConfig.get().job.get("num") or 0)
    except (ValueError, ImportError):
        return 0


def objective(records, suite: str) -> float:
    """Mean validation score of the job's finished training units (``records``), higher is better (MSE
    enters negated): what a tuning sweeper maximises. Test metrics never enter it."""
    scores = []
    for record in records:
        if record["status"] != "ok" or record["suite"] != suite:
            continue
        metric = record["info"].get("selection_metric") or record["info"].get("metric")
        value = (record["info"].get("validation") or {}).get(metric)
        if value is None:
            value = next(
                (m["value"] for m in record["metrics"] if m["setting"] == "validation" and m["metric"] == metric), None
            )
        if value is not None:
            scores.append(-value if metric == "mse" else value)
    return sum(scores) / len(scores) if scores else float("nan")
