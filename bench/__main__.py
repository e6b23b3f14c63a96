"""``python -m bench``: the Hydra entry point. Compose, validate, run one suite for one encoder.

Errors a user can cause end in one sentence and exit status 2; a sweep that
is interrupted keeps every finished record and resumes when rerun into the
same directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from bench.errors import Abort, explain
from bench.schema import register


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def job(cfg: DictConfig) -> float:
    """One suite for one encoder; returns the mean validation score, for tuning sweepers."""
    from bench.runner import run_job

    return run_job(cfg, Path(HydraConfig.get().runtime.output_dir))["objective"]


def main() -> None:
    os.environ["HYDRA_FULL_ERROR"] = "1"  # errors reach us, and we tell them in one sentence
    from bench.timing import tune_malloc

    tune_malloc()
    register()
    try:
        job()
    except KeyboardInterrupt:
        print(
            "fxbench: interrupted; finished records are kept. Rerun the same command with "
            "hydra.sweep.dir (or hydra.run.dir) set to the same folder to resume.",
            file=sys.stderr,
        )
        sys.exit(130)
    except (Exception, Abort) as err:
        sentence = explain(err)
        if sentence is None:
            raise
        print(f"fxbench: {sentence}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
