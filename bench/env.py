"""What a record needs to be trusted: machine, versions, commit, threads."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def resolve_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        from bench.errors import UserError

        raise UserError("device=cuda was asked for, but torch sees no CUDA device here; use device=cpu.")
    return torch.device(setting)


@functools.cache
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def cpu_flags() -> frozenset[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def matrix_units(device: torch.device) -> list[str]:
    """Matrix and vector units that speed up low-precision GEMMs on this device."""
    if device.type == "cuda":
        major, _minor = torch.cuda.get_device_capability(device)
        units = ["tensor_cores"] if major >= 7 else []
        return units + (["bf16"] if major >= 8 else [])
    return sorted(f for f in cpu_flags() if f in {"amx_bf16", "amx_tile", "amx_int8", "avx512_bf16", "avx512f", "avx2"})


def supports_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


@functools.cache
def git_state() -> tuple[str | None, bool | None]:
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode:
            return None, None
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip() != ""
        return head.stdout.strip(), dirty
    except (OSError, subprocess.SubprocessError):
        return None, None


STACK = ("hydra-core", "omegaconf", "numpy", "pandas", "seaborn", "datasets", "tokenizers", "sacrebleu", "seqeval")


@functools.cache
def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in STACK:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def environment(device: torch.device) -> dict:
    commit, dirty = git_state()
    versions = {"python": platform.python_version(), "torch": torch.__version__, **library_versions()}
    return {
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "matrix_units": matrix_units(device),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "git_commit": commit,
        "git_dirty": dirty,
        "versions": versions,
        "command": command_line(),
        "overrides": job_overrides(),
    }


def job_overrides() -> list[str]:
    """The overrides that made this job (a sweep's own choices included)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except (ValueError, ImportError):
        return []


def command_line() -> str:
    """How this process was started, as a user would type it."""
    args = sys.argv[1:]
    program = (
        "python -m bench" if sys.argv and sys.argv[0].endswith(("bench/__main__.py", "-m")) else Path(sys.argv[0]).name
    )
    return " ".join([program, *args]) if sys.argv else ""
