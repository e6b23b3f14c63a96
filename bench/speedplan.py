"""What the speed suites time and how: the dtypes this device runs, the sequence lengths and the batch at each,
the GEMM peak (once per process) and the GEMM path of each linear layer, and the call that measures one
configuration (in a fresh process on the CPU). A library of ``suite=speed`` and ``suite=speed_detail``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig

import models
from bench.env import supports_bf16
from bench.gemm import ROUTE_ROWS, choose_routes, gemm_peak, linear_shapes
from bench.schema import MODEL_FILES, model_kwargs
from bench.suite import Context
from bench.timing import can_measure_cpu_memory, in_fresh_process

log = logging.getLogger("bench")


def dtypes(cfg: DictConfig, device: torch.device) -> list[str]:
    usable = []
    for dtype in cfg.speed.dtypes:
        if dtype == "bf16" and not supports_bf16(device):
            log.info("bf16 skipped: this device has no bf16 support")
        elif dtype in ("fp16", "tf32") and device.type != "cuda":
            log.info(f"{dtype} skipped: it is for CUDA devices")
        else:
            usable.append(dtype)
    return usable


DEFAULT_SEQ_LENS = {"cpu": [32, 64, 128, 256, 512, 1024], "cuda": [32, 64, 128, 256, 512, 1024, 2048, 4096]}


def seq_lens(cfg: DictConfig, device: torch.device) -> list[int]:
    return (
        list(cfg.speed.seq_lens) if cfg.speed.seq_lens else DEFAULT_SEQ_LENS.get(device.type, DEFAULT_SEQ_LENS["cpu"])
    )


DEFAULT_MAX_TOKENS = {"cpu": 8192}


def batch_for(cfg, seq_len: int, device: torch.device, batch: int | None = None) -> int:
    """``batch`` (by default speed.batch_size), capped so that a batch holds at most speed.max_tokens tokens."""
    batch = batch or cfg.speed.batch_size
    cap = cfg.speed.max_tokens or DEFAULT_MAX_TOKENS.get(device.type)
    return max(1, min(batch, cap // seq_len)) if cap else batch


def compare_seq_lens(cfg: DictConfig, device: torch.device) -> list[int]:
    """Where the encoders are timed side by side: speed.compare_seq_lens, else the grid's shortest, middle and
    longest."""
    if cfg.speed.compare_seq_lens:
        return list(cfg.speed.compare_seq_lens)
    lens = sorted(seq_lens(cfg, device))
    return sorted({lens[0], lens[len(lens) // 2], lens[-1]})


def compared(cfg: DictConfig) -> list[str]:
    """The encoders timed side by side: speed.compare, else the model options this job's sweep runs (read from
    the sweep's multirun.yaml, which Hydra writes before the first job), else none."""
    if cfg.speed.compare is not None:
        return list(cfg.speed.compare)
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from bench.callbacks import swept_values

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return []
    sweep = Path(HydraConfig.get().sweep.dir) / "multirun.yaml"
    if not sweep.exists():
        return []
    return swept_values(OmegaConf.load(sweep), "model") or []


def model_build(cfg: DictConfig, name: str) -> dict:
    """The fixed-width build of model option ``name`` as a job of this sweep composes it: this job's own model
    node for its own option, else conf/model/<name>.yaml at this job's parameter budget."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    own = cfg.model.get("label") or cfg.model.name
    if name != own:
        overrides = [f"model={name}", f"param_budget={cfg.param_budget}"]
        if GlobalHydra.instance().is_initialized():  # inside the running app
            node = compose("config", overrides=overrides).model
        else:
            with initialize_config_dir(config_dir=str(MODEL_FILES.parent), version_base="1.3"):
                node = compose("config", overrides=overrides).model
    else:
        node = cfg.model
    return models.fixed_width(**model_kwargs(node))


_PEAKS: dict[tuple, dict] = {}


def peak(ctx: Context, dtype: str) -> dict:
    """The GEMM peak for dtype on this device and thread count (``bench.gemm.gemm_peak``), measured once per
    process: every job of a sweep run by one process (the local launcher's) divides by the same peak."""
    key = (str(ctx.device), dtype, ctx.threads)
    if key not in _PEAKS:
        _PEAKS[key] = gemm_peak(ctx.device, dtype, min_run_time=ctx.cfg.speed.min_run_time)
    return _PEAKS[key]


_ROUTES: dict[tuple, dict] = {}


def linear_routes(ctx: Context, build: dict, dtype: str, rows: int) -> dict:
    """Where each linear layer of the encoder goes for inference (``bench.gemm.choose_routes``), chosen once per
    process, dtype and shape: the grid and latency units at the same rows reuse it."""
    with torch.device("meta"):
        shapes = linear_shapes(models.build_encoder(**build))
    rows = min(rows, ROUTE_ROWS)
    missing = [s for s in shapes if (str(ctx.device), dtype, ctx.threads, rows, s) not in _ROUTES]
    for shape, choice in zip(missing, choose_routes(ctx.device, dtype, missing, rows).values()):
        _ROUTES[(str(ctx.device), dtype, ctx.threads, rows, shape)] = choice
    return {f"{k}x{n}": _ROUTES[(str(ctx.device), dtype, ctx.threads, rows, (k, n))] for k, n in shapes}


def measure(ctx: Context, fn, route_under_compile: bool = False, **kwargs) -> dict:
    """``fn(build=..., device=..., threads=..., min_run_time=..., compile=..., routes=..., **kwargs)`` (e.g.
    ``bench.timing.measure_config``) in a fresh process on the CPU; in this process on CUDA, whose allocator
    peak is reset per configuration. With speed.linear_path=auto (and no torch.compile, which picks its own
    kernels, unless ``route_under_compile``: ``fn`` compiles a copy of its own) the encoder's linear layers run
    through the GEMM path measured fastest at their shapes."""
    speed = ctx.cfg.speed
    build = models.fixed_width(**model_kwargs(ctx.cfg.model))  # the child builds without solving
    routes = None
    if speed.linear_path == "auto" and (route_under_compile or not speed.compile) and ctx.device.type == "cpu":
        routes = linear_routes(ctx, build, kwargs["dtype"], kwargs["batch"] * kwargs["seq_len"])
    args = dict(
        build=build,
        device=ctx.device.type,
        threads=ctx.threads,
        min_run_time=speed.min_run_time,
        compile=speed.compile,
        routes=routes,
        **kwargs,
    )
    if ctx.device.type == "cpu":
        if "memory" in args:
            args["memory"] = args["memory"] and can_measure_cpu_memory()
        return in_fresh_process(fn, **args)
    return fn(**args)
