"""Hydra callbacks: validate every job before it starts; summarise and report at the end."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("bench")


SERIAL_LAUNCHERS = ("BasicLauncher",)


class Lifecycle(Callback):
    def __init__(self) -> None:
        from bench.records import now

        self.started = now()  # records started since belong to this invocation

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _validate(config)
        _start_progress(1)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        _refuse_parallel_speed(config)
        _refuse_seed_sweep_over_several_seeds(config)
        _validate(config)
        _start_progress(_sweep_size(config))

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        # outside Hydra's per-job try: an error here stops the sweep at once
        _validate(config)

    # Hydra only warns about an Exception raised in a callback: what must stop the run is an Abort
    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        _finish_or_abort(Path(config.hydra.runtime.output_dir), config, self.started)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        _finish_or_abort(Path(config.hydra.sweep.dir), config, self.started)


def swept_values(config: DictConfig, key: str) -> list[str] | None:
    """The values a multirun sweeps ``key`` over (command line first, then the sweeper's params); None
    where it is not swept."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    swept = config.hydra.sweeper.get("params") or {}
    candidates = [o for o in config.hydra.overrides.task if o.partition("=")[0].lstrip("+~") == key]
    if not candidates and key in swept:
        candidates = [f"{key}={swept[key]}"]
    for override in OverridesParser.create().parse_overrides(candidates):
        if override.is_sweep_override():
            return [str(v) for v in override.sweep_string_iterator()]
    return None


def _sweep_size(config: DictConfig) -> int:
    """How many jobs a multirun of the basic sweeper launches: the product of its sweeps' lengths (the
    command line's overrides, and the sweeper's params for keys the command line leaves alone)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    given = list(config.hydra.overrides.task)
    keys = {o.partition("=")[0].lstrip("+~") for o in given}
    given += [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items() if k not in keys]
    size = 1
    for override in OverridesParser.create().parse_overrides(given):
        if override.is_sweep_override():
            size *= len(list(override.sweep_string_iterator()))
    return size


def _start_progress(jobs: int) -> None:
    from bench.progress import start_sweep

    start_sweep(jobs)


def _suites_in_sweep(config: DictConfig) -> set[str]:
    """The suites a sweep will run: the command line's, else the sweeper's, else the config's."""
    for override in config.hydra.overrides.task:
        key, _, value = override.partition("=")
        if key.lstrip("+~") == "suite":
            return {s.strip() for s in value.split(",")}
    swept = config.hydra.sweeper.get("params") or {}
    if "suite" in swept:
        return {s.strip() for s in str(swept["suite"]).split(",")}
    return {config.get("suite")}


TIMED_SUITES = ("speed", "speed_detail")  # suites whose measurements are times


def _parallel(config: DictConfig) -> bool:
    launcher = config.hydra.launcher
    target = str(launcher.get("_target_", ""))
    if any(target.endswith(name) for name in SERIAL_LAUNCHERS):
        return False
    jobs = launcher.get("n_jobs", launcher.get("array_parallelism", 2))
    return jobs is None or jobs != 1


def _refuse_parallel_speed(config: DictConfig) -> None:
    from bench.errors import Abort

    timed = sorted(s for s in _suites_in_sweep(config) if s in TIMED_SUITES)
    if timed and _parallel(config):
        raise Abort(
            f"suite={timed[0]} cannot run under a parallel launcher: jobs timed side by side slow each other down; "
            f"run the speed suites with the default launcher (e.g. `python -m bench suite={timed[0]}`) and the others "
            "in parallel."
        )


def _refuse_seed_sweep_over_several_seeds(config: DictConfig) -> None:
    """``seed`` is the first of ``n_seeds`` consecutive seeds: sweeping it with n_seeds > 1 would train the
    overlapping seeds again and again (seed=0,1,2 with n_seeds=3 runs 0-2, 1-3 and 2-4)."""
    from bench.errors import Abort

    seeds = swept_values(config, "seed")
    if seeds and (config.n_seeds > 1 or swept_values(config, "n_seeds")):
        raise Abort(
            f"seed={','.join(seeds)} sweeps seeds while n_seeds={config.n_seeds} already runs {config.n_seeds} "
            f"consecutive seeds from each; add n_seeds=1 to run exactly these seeds, or drop the seed sweep "
            f"and set seed=FIRST n_seeds=COUNT."
        )


def _validate(config: DictConfig) -> None:
    from bench.errors import Abort, UserError
    from bench.schema import validate

    try:
        validate(config)
    except UserError as err:
        raise Abort(str(err)) from None


def _finish_or_abort(run_dir: Path, config: DictConfig, started: str) -> None:
    from bench.errors import unwritable_output_stops

    with unwritable_output_stops():
        _finish(run_dir, config, started)


def _finish(run_dir: Path, config: DictConfig, started: str) -> None:
    """Summary and report of the whole results folder; then, where any measurement of this invocation
    failed, stop with status 1 and a sentence saying how many (the sweep itself went on past them)."""
    from bench.errors import Abort
    from bench.records import iter_records, write_summary

    if not run_dir.exists():
        return
    summary = write_summary(run_dir)
    log.info(f"summary: {summary}")
    if config.get("report", True):
        try:
            from bench.report import build_report
        except ImportError:
            build_report = None
        if build_report is not None:
            paths = build_report(run_dir)
            log.info(f"report: {paths['html']} and {paths['md']}")
    new = [r for r in iter_records(run_dir) if r.get("started", "") >= started]
    failed = [r for r in new if r["status"] != "ok"]
    if failed:
        first = failed[0]
        raise Abort(
            f"{len(failed)} of {len(new)} measurements run now failed (the first: {first['suite']} {first['encoder']} "
            f"{first['task']}: {str(first.get('reason')).splitlines()[0][:200]}); finished records are kept"
            f"{' and the report lists the failures' if config.get('report', True) else ''}; rerun the same command "
            f"into {run_dir} to retry only the failed ones.",
            exit_code=1,
        )
