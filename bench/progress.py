"""Overall progress of a run: jobs and units done out of their totals, elapsed, and an estimate of the
time left, as a tqdm bar on a terminal and as one log line per unit elsewhere (a CI log, a pipe).

The estimate is elapsed time over the fraction of the sweep done, counting a job as done in proportion
to its units; units of one job take similar times, those of different suites do not, so it firms up
as the sweep goes on and says "about".
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager

log = logging.getLogger("bench")

_SWEEP = {"jobs": 1, "started": None}


def start_sweep(jobs: int) -> None:
    """Called once per invocation (a multirun's number of jobs, or 1)."""
    _SWEEP.update(jobs=max(1, int(jobs)), started=time.perf_counter())


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class JobProgress:
    def __init__(self, job: int, units: int, bar):
        self.job, self.units, self.bar, self.done = job, units, bar, 0

    def line(self) -> str:
        jobs = _SWEEP["jobs"]
        started = _SWEEP["started"] or time.perf_counter()
        elapsed = time.perf_counter() - started
        fraction = (self.job + (self.done / self.units if self.units else 1.0)) / jobs
        left = f", about {_clock(elapsed / fraction * (1 - fraction))} left" if 0 < fraction < 1 and elapsed > 1 else ""
        return f"job {self.job + 1}/{jobs}, unit {self.done}/{self.units}; {_clock(elapsed)} elapsed{left}"

    def unit_done(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(self.line(), refresh=False)
            self.bar.update(1)
        else:
            log.info(f"progress: {self.line()}")


def _terminal_width() -> int:
    """Columns of the terminal stderr writes to; 0 where it is not a terminal or has no size (a pty
    without one, where a bar would print nothing)."""
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns if sys.stderr.isatty() else 0
    except (OSError, ValueError):
        return 0


@contextmanager
def job(index: int, units: int, label: str):
    """Progress of one job of ``units`` units (``index``: its number in the sweep, from 0); yields a
    ``JobProgress`` whose ``unit_done()`` is called after each unit, skipped ones included."""
    if _SWEEP["started"] is None:
        start_sweep(1)
    if _terminal_width() > 0:
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        with logging_redirect_tqdm(), tqdm(total=units, desc=label, unit="unit", file=sys.stderr, leave=False) as bar:
            yield JobProgress(index, units, bar)
    else:
        yield JobProgress(index, units, None)
