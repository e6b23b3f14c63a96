"""Hydra callbacks: validate every job before it starts; summarise and report at the end."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("bench")


class Lifecycle(Callback):
    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _validate(config)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        _validate(config)

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        # outside Hydra's per-job try: an error here stops the sweep at once
        _validate(config)

    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        _finish(Path(config.hydra.runtime.output_dir), config)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        _finish(Path(config.hydra.sweep.dir), config)


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
