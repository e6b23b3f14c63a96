import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
SHARED_DATA = Path(os.environ.get("FXBENCH_DATA_ROOT", REPO.parent / "shared" / "data"))

torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(items):
    """Every test of the session's smoke run is marked ``smoke``: `make test` runs the others across workers first,
    then these on their own, so that the smoke's wall time is measured on a machine it does not share."""
    for item in items:
        if "smoke_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.smoke)


@pytest.fixture
def compose():
    """Compose the real config with overrides, as `python -m bench` would (without running it)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from bench.schema import register

    register()

    def _compose(*overrides, return_hydra_config=False):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return hydra_compose("config", overrides=list(overrides), return_hydra_config=return_hydra_config)

    return _compose


def bench(*args, cwd, timeout=600):
    """`python -m bench ARGS` in ``cwd``, as a user runs it (its cache beside ``cwd``)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "FXBENCH_CACHE": str(cwd.parent / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """One `python -m bench experiment=smoke` for the whole session: (cwd, out, process, wall seconds)."""
    root = tmp_path_factory.mktemp("smoke")
    cwd, out = root / "cwd", root / "out"
    cwd.mkdir()
    start = time.perf_counter()
    proc = bench("experiment=smoke", f"hydra.run.dir={out}", cwd=cwd)
    return cwd, out, proc, time.perf_counter() - start
