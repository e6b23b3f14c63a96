"""What a suite is: the one interface the runner drives every suite through.

``suite=NAME`` runs the module ``bench.NAME`` (its settings: conf/suite/NAME.yaml).
A suite module declares:

- ``SECTIONS``: the config sections whose settings can change its results (they key its records);
- ``units(cfg) -> list[Unit]``: its measurements, one record each;
- ``run(ctx, unit) -> (metrics, info)``: one measurement, as metric rows and details;
- ``headline(record) -> str``: the record in one line, for the log;
- optionally ``key_inputs(cfg) -> dict``: what else its units depend on.

A suite imports this module, the libraries of ``bench`` and ``models``, never another suite or the runner.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch
from omegaconf import DictConfig

from bench.errors import UserError
from bench.records import read_record

REQUIRED = {"SECTIONS": tuple, "units": Callable, "run": Callable, "headline": Callable}


@dataclass(frozen=True)
class Unit:
    task: str
    seed: int | None = None
    params: dict = field(default_factory=dict, hash=False)  # what else identifies it, e.g. dtype, T
    always: bool = False  # derived from other records: recomputed on every run, never skipped
    shared: bool = False  # of the whole sweep, not of the job's encoder: the first job to reach it measures it
    inputs: dict = field(
        default_factory=dict, hash=False
    )  # what else its result depends on (in its key, not its label)

    @property
    def label(self) -> str:
        parts = [self.task] + [f"{k}={v}" for k, v in self.params.items()]
        return " ".join(parts + ([f"seed={self.seed}"] if self.seed is not None else []))


@dataclass
class Context:
    """What a suite needs to run a unit, built once per job."""

    cfg: DictConfig
    encoder: str  # the label reports use: the model option, e.g. transformer_base
    device: torch.device
    out_dir: Path
    threads: int
    cache: dict = field(default_factory=dict)  # what units of one job share, e.g. a calibration
    record_paths: dict = field(default_factory=dict)  # key -> file of each unit of this job done so far

    def job_records(self):
        """The records of this job's units finished so far (run now or before, in whichever folder of the
        results tree they are kept)."""
        for path in self.record_paths.values():
            data = read_record(path) if path.exists() else None
            if data is not None:
                yield data


def missing(module: ModuleType) -> list[str]:
    """The members of the interface ``module`` lacks or declares with the wrong kind."""
    out = []
    for name, kind in REQUIRED.items():
        value = getattr(module, name, None)
        if not (callable(value) if kind is Callable else isinstance(value, kind)):
            out.append(name)
    return out


def load_suite(name: str) -> ModuleType:
    """The module of ``suite=name``, checked against the interface."""
    try:
        module = importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as err:
        if err.name != f"bench.{name}":
            raise
        raise UserError(f"suite={name} has no module bench/{name}.py to run it.") from None
    lacking = missing(module)
    if lacking:
        raise UserError(f"suite={name}: bench/{name}.py does not declare {', '.join(lacking)} (see bench/suite.py).")
    return module
