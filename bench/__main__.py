"""``python -m bench``: the Hydra entry point. Compose, validate, run one suite for one encoder.

Errors a user can cause end in one sentence and exit status 2; a run that could not
finish (failed measurements, a full disk) in one sentence and status 1; a sweep that
is interrupted (Ctrl-C, SIGTERM) keeps every finished record and resumes when rerun
into the same directory.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from bench.errors import Abort, exit_code, explain
from bench.schema import register


def results_tree(output_dir: Path) -> Path:
    """The results folder a job belongs to: its sweep's folder in a multirun, else its own."""
    from hydra.types import RunMode

    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN:
        sweep = Path(hc.sweep.dir).resolve()
        if sweep in output_dir.resolve().parents:
            return sweep
    return output_dir


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def job(cfg: DictConfig) -> float:
    """One suite for one encoder; returns the mean validation score, for tuning sweepers."""
    from bench.runner import run_job
    from bench.schema import normalize_tasks

    normalize_tasks(cfg)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    return run_job(cfg, out_dir, results_tree(out_dir))["objective"]


class Terminated(BaseException):
    """SIGTERM arrived: stop as Ctrl-C does."""


def _terminate(signum, frame):
    raise Terminated()


def main() -> None:
    os.environ["HYDRA_FULL_ERROR"] = "1"  # errors reach us, and we tell them in one sentence
    from bench.timing import tune_malloc

    tune_malloc()
    register()
    signal.signal(signal.SIGTERM, _terminate)
    logging.raiseExceptions = False  # a full disk under the log file: our one sentence, not a traceback per line
    try:
        job()
    except (KeyboardInterrupt, Terminated) as err:
        name = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
        print(
            f"fxbench: {name}; finished records are kept. Rerun the same command with "
            "hydra.sweep.dir (or hydra.run.dir) set to the same folder to resume.",
            file=sys.stderr,
        )
        sys.exit(128 + signal.SIGTERM if isinstance(err, Terminated) else 130)
    except (Exception, Abort) as err:
        sentence = explain(err)
        if sentence is None:
            raise
        print(f"fxbench: {sentence}", file=sys.stderr)
        sys.exit(exit_code(err))


if __name__ == "__main__":
    main()
