"""Hydra callbacks: validate every job before it starts; summarise and report at the end."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("bench")


SERIAL_LAUNCHERS = ("BasicLauncher",)


class Lifecycle(Callback):
    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _validate(config)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        _refuse_parallel_speed(config)
        _validate(config)

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        # outside Hydra's per-job try: an error here stops the sweep at once
        _validate(config)

    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        _finish(Path(config.hydra.runtime.output_dir), config)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        _finish(Path(config.hydra.sweep.dir), config)


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


def _parallel(config: DictConfig) -> bool:
    launcher = config.hydra.launcher
    target = str(launcher.get("_target_", ""))
    if any(target.endswith(name) for name in SERIAL_LAUNCHERS):
        return False
    jobs = launcher.get("n_jobs", launcher.get("array_parallelism", 2))
    return jobs is None or jobs != 1


def _refuse_parallel_speed(config: DictConfig) -> None:
    from bench.errors import Abort

    if "speed" in _suites_in_sweep(config) and _parallel(config):
        raise Abort(
            "suite=speed cannot run under a parallel launcher: jobs timed side by side slow each other down; "
            "run the speed suite with the default launcher (e.g. `python -m bench suite=speed`) and the others in parallel."
        )


def _validate(config: DictConfig) -> None:
    from bench.errors import Abort, UserError
    from bench.schema import validate

    try:
        validate(config)
    except UserError as err:
        raise Abort(str(err)) from None


def _finish(run_dir: Path, config: DictConfig) -> None:
    from bench.records import write_summary

    if not run_dir.exists():
        return
    summary = write_summary(run_dir)
    log.info(f"summary: {summary}")
    if config.get("report", True):
        try:
            from bench.report import build_report
        except ImportError:
            return
        paths = build_report(run_dir)
        log.info(f"report: {paths['md']}")
