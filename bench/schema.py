"""Typed schemas for every setting, stored in Hydra's ConfigStore.

Types are checked by OmegaConf while Hydra composes, so a bad override stops
before any job starts; ranges and cross-field rules (``validate``) are checked
when each job starts. The schema of each encoder is derived from its
constructor, so adding an encoder needs no change here.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

import models
from bench import roles
from bench.errors import UserError


def _range(lo=None, hi=None, choices=None, nonempty=False) -> dict:
    return {"min": lo, "max": hi, "choices": choices, "nonempty": nonempty}


@dataclass
class SpeedConfig:
    seq_lens: list[int] | None = field(
        default=None, metadata=_range(1, nonempty=True)
    )  # null: 32..1024 on a CPU, 32..4096 on a GPU
    batch_size: int = field(default=32, metadata=_range(1))
    batch_sizes: list[int] = field(
        default_factory=list, metadata=_range(1)
    )  # the batch-size grid: also measured at every T
    max_tokens: int | None = field(
        default=None, metadata=_range(1)
    )  # batch capped to this many tokens; null: 8192 on a CPU, none on a GPU
    latency_seq_lens: list[int] = field(default_factory=lambda: [128, 512], metadata=_range(1))
    dtypes: list[str] = field(
        default_factory=lambda: ["fp32", "bf16"],
        metadata=_range(choices=["fp32", "tf32", "bf16", "fp16"], nonempty=True),
    )
    train: bool = True
    memory: bool = True
    min_run_time: float = field(default=0.3, metadata=_range(0.0))
    compile: bool = False
    linear_path: str = field(
        default="auto", metadata=_range(choices=["auto", "torch"])
    )  # auto: each linear layer through the GEMM path measured fastest at its shape (CPU inference); torch: torch's own
    runtime: list[str] = field(
        default_factory=lambda: ["eager", "compile", "onnxruntime"],
        metadata=_range(choices=["eager", "compile", "onnxruntime"], nonempty=True),
    )  # inference under each, fp32, CPU (suite=speed_detail; bench.runtimes); onnxruntime needs the deploy extra
    vocab_size: int = field(default=8000, metadata=_range(2))
    compare: list[str] | None = None  # encoders timed side by side in one process; null: the sweep's, [] for none
    compare_seq_lens: list[int] | None = field(
        default=None, metadata=_range(1, nonempty=True)
    )  # where they are: null: the shortest and longest of seq_lens
    rounds: int = field(default=5, metadata=_range(2))  # rounds of the side-by-side timing: its intervals are over them


@dataclass
class TrainConfig:
    """Shared by every suite that trains: the same cap and convergence rule for every encoder."""

    steps: int = field(default=1000, metadata=_range(1))  # the cap: a run that has not converged by then stops
    batch_size: int = field(default=32, metadata=_range(1))
    lr: float = field(default=1e-3, metadata=_range(0.0))
    weight_decay: float = field(default=0.01, metadata=_range(0.0))
    warmup: float = field(default=0.05, metadata=_range(0.0, 1.0))  # of the cap
    schedule: str = field(
        default="constant", metadata=_range(choices=["constant", "linear"])
    )  # after the warm-up: the peak rate, or a linear decay to 0 at the cap
    clip: float = field(default=1.0, metadata=_range(0.0))
    eval_every: int = field(default=100, metadata=_range(1))
    patience: int = field(default=5, metadata=_range(0))  # convergence: evaluations without a gain (bench.convergence)
    tolerance: float = field(default=0.01, metadata=_range(0.0))  # convergence: a gain, as a fraction of the range
    early_stop: bool = True  # stop a run as soon as it has converged
    min_steps: int = field(default=0, metadata=_range(0))  # no stop on a plateau before this step (a late rise)


@dataclass
class DistanceConfig:
    reach_examples: int = field(default=64, metadata=_range(1))


@dataclass
class ProbeTask:
    """A long-distance probe of ``bench.probes``, trained on a mix of distances."""

    type: str = "probe"
    probe: str = MISSING
    options: dict[str, Any] = field(default_factory=dict)  # the probe's constructor arguments
    distances: list[int] | None = field(default=None, metadata=_range(1, nonempty=True))  # null: the probe's defaults
    n_train: int = field(default=4000, metadata=_range(1))
    n_validation: int = field(default=500, metadata=_range(1))
    n_test: int = field(default=1000, metadata=_range(1))
    train: dict[str, Any] = field(default_factory=dict)  # overrides of the suite's train settings


@dataclass
class DataTask:
    """A task of the accuracy suite, from the embedded generator, a real preset, local files or the hub."""

    type: str = MISSING  # labelling | classification | pair | generation
    source: str = field(default="embedded", metadata=_range(choices=["embedded", "real", "files", "hub"]))
    generator: str | None = field(
        default=None, metadata=_range(choices=["wsd"])
    )  # embedded: another generator than the type's
    suites: list[str] | None = field(
        default=None, metadata=_range(choices=["accuracy", "pretrain"])
    )  # null: every suite of its type
    dataset: str | None = None  # real: ud_ewt_pos | sst2 | sick | multi30k_de_en; hub: a preset or hub id
    n_train: int = field(default=6000, metadata=_range(1))  # embedded sizes
    n_validation: int = field(default=500, metadata=_range(1))
    n_test: int = field(default=500, metadata=_range(1))
    data_seed: int = field(default=0, metadata=_range(0))  # the seed of generated data
    resample: bool = True  # generated data drawn anew per model seed (data_seed + seed): intervals hold test-set noise
    options: dict[str, Any] = field(default_factory=dict)  # generator or reader options
    format: str | None = field(
        default=None, metadata=_range(choices=["conllu", "conll", "tsv", "csv", "jsonl", "parallel"])
    )
    files: dict[str, Any] = field(default_factory=dict)  # split -> path under data.root ([source, target] for parallel)
    hub: dict[str, Any] = field(default_factory=dict)  # keyword arguments of bench.data.hub.load_hub
    max_len: int = field(default=256, metadata=_range(1))  # tokens kept per text
    vocab_size: int | None = field(default=30000, metadata=_range(3))
    min_freq: int = field(default=1, metadata=_range(1))
    lowercase: bool = False
    bpe_size: int = field(default=8000, metadata=_range(16))  # generation: joint subword vocabulary
    pooling: str = field(default="max", metadata=_range(choices=["mean", "max", "attention"]))
    pair_mode: str = field(default="siamese", metadata=_range(choices=["siamese", "cross"]))
    beam_size: int = field(default=4, metadata=_range(1))
    validation_limit: int = field(default=500, metadata=_range(1))  # generation: sentences decoded per validation
    param_budget: int | None = field(default=None, metadata=_range(1))  # this task's budget, if not the suite's
    train: dict[str, Any] = field(default_factory=dict)  # overrides of the suite's train settings


TASK_SCHEMAS: dict[str, type] = {
    "probe": ProbeTask,
    **{t: DataTask for t in ("labelling", "classification", "pair", "generation")},
}


@dataclass
class AccuracyConfig:
    embed_dim: int = field(default=128, metadata=_range(1))  # one embedding width for every family


@dataclass
class PretrainConfig:
    """Two-stage training (suite=pretrain): pre-train each family on unlabelled text, then fine-tune."""

    objectives: list[str] = field(
        default_factory=lambda: ["mlm"], metadata=_range(choices=["mlm", "clm", "elmo"], nonempty=True)
    )  # elmo: encoders with separate_directions (the LSTM)
    tokens: list[int] = field(
        default_factory=lambda: [200000], metadata=_range(1, nonempty=True)
    )  # checkpoints at each count; every family sees the same tokens
    batch_size: int = field(default=32, metadata=_range(1))  # sentences per pre-training step
    lr: float = field(default=2e-3, metadata=_range(0.0))
    warmup: float = field(default=0.05, metadata=_range(0.0, 1.0))
    mask_prob: float = field(
        default=0.15, metadata=_range(0.0, 1.0)
    )  # mlm: share of tokens predicted (80/10/10 mask/random/keep)
    max_len: int = field(default=128, metadata=_range(2))  # tokens kept per sentence
    log_every: int = field(default=50, metadata=_range(1))  # steps between points of the loss curve
    held_out: int = field(
        default=400, metadata=_range(2)
    )  # corpus sentences kept out for the validation and test loss (at most a tenth of the corpus)
    corpus: str = field(
        default="tasks", metadata=_range(choices=["tasks", "hub"])
    )  # tasks: the fine-tuning tasks' unlabelled text
    corpus_per_task: int = field(
        default=20000, metadata=_range(1)
    )  # embedded tasks: unlabelled sentences generated per task
    finetune_train_limit: int | None = field(
        default=1000, metadata=_range(1)
    )  # fine-tuning training examples per task (small data); null: all
    finetune_beam_size: int | None = field(
        default=1, metadata=_range(1)
    )  # generation: beam of the test decoding (greedy: the gain over scratch is the point); null: the task's beam_size
    hub: dict[str, Any] = field(
        default_factory=dict
    )  # corpus=hub: path, name, split, column, limit (datasets.load_dataset)
    vocab_size: int = field(default=30000, metadata=_range(8))
    min_freq: int = field(default=1, metadata=_range(1))


@dataclass
class LimitsConfig:
    """Time and memory limits; whatever overruns is recorded as failed and the sweep goes on."""

    unit_seconds: float | None = field(default=None, metadata=_range(0.001))  # each measurement or training run
    job_seconds: float | None = field(default=None, metadata=_range(0.001))  # one job (encoder x suite) in all
    memory_gb: float | None = field(default=None, metadata=_range(0.01))  # address space of the job process


@dataclass
class TuneConfig:
    """Set by the tuning presets so that the report can state the tuning budget."""

    trials: int | None = field(default=None, metadata=_range(1))
    space: str | None = None
    grid: str | None = None  # experiment=tune: the grid every family was trained on (bench.recipes)


@dataclass
class DataConfig:
    root: str | None = None  # folder holding real data sets, e.g. ../shared/data
    cache: str = "${oc.env:FXBENCH_CACHE,${oc.env:HOME,.}/.cache/fxbench}"


@dataclass
class Config:
    suite: str = MISSING
    model: Any = MISSING
    tasks: dict[str, Any] = field(default_factory=dict)
    seed: int = field(default=0, metadata=_range(0))
    n_seeds: int = field(default=3, metadata=_range(1))
    param_budget: int | None = field(default=None, metadata=_range(1))
    device: str = field(default="auto", metadata=_range(choices=["auto", "cpu", "cuda", "mps"]))
    threads: int | None = field(default=None, metadata=_range(1))
    force: bool = False
    report: bool = True
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    distance: DistanceConfig = field(default_factory=DistanceConfig)
    accuracy: AccuracyConfig = field(default_factory=AccuracyConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    recipes: dict[str, Any] = field(default_factory=dict)  # encoder -> suite -> train settings (conf/recipe/)
    data: DataConfig = field(default_factory=DataConfig)


def _omegaconf_type(annotation):
    """Map a constructor annotation to a type OmegaConf accepts (tuples become lists)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _omegaconf_type(inner[0]) | None if len(inner) == 1 else Any
    if origin in (tuple, list):
        return list[_omegaconf_type(args[0])] if args else list[Any]
    return annotation if annotation in (int, float, bool, str) else Any


def encoder_schema(name: str) -> type:
    """A dataclass of model settings: name, label, d_model, param_budget, then the constructor's options."""
    cls = models.encoder_class(name)
    hints = typing.get_type_hints(cls.__init__)
    fields = [
        ("name", str, field(default=name)),
        ("label", str | None, field(default=None)),  # how reports name it; default: name
        ("d_model", int | None, field(default=None)),
        ("param_budget", int | None, field(default=None)),
    ]
    for arg, param in models.encoder_options(name).items():
        default = param.default
        if isinstance(default, tuple):
            default = field(default_factory=lambda d=default: list(d))
        elif default is inspect.Parameter.empty:
            default = MISSING
        declared = param.annotation if isinstance(param.annotation, type) else Any  # a harness option's
        fields.append((arg, _omegaconf_type(hints.get(arg, declared)), default))
    # the encoder it belongs to rides on the class, for the error that names a setting it lacks (bench.errors)
    return dataclasses.make_dataclass(f"{cls.__name__}Settings", fields, namespace={"encoder_name": name})


def _config_groups() -> str:
    """The user-facing config groups and their options, for ``--help``."""
    conf = Path(__file__).resolve().parent.parent / "conf"
    lines = []
    for group in sorted(p for p in conf.iterdir() if p.is_dir() and p.name != "hydra"):
        options = sorted(f.stem for f in group.glob("*.yaml"))
        lines.append(f"  {group.name}: {', '.join(options)}")
    return "\n".join(lines)


MODEL_FILES = Path(__file__).resolve().parent.parent / "conf" / "model"


def default_encoders(*leave_out: str) -> str:
    """The encoders the default sweep runs, comma-separated: every ``models/<name>.py`` with a
    ``conf/model/<name>.yaml`` (so a new encoder's two files put it in ``make bench``), less ``leave_out``;
    fixed-size presets such as transformer_base are options of the speed comparisons, not encoders of their own.
    In a config: ``${fxbench_encoders:}``, ``${fxbench_encoders:transformer}``."""
    names = [n for n in models.available() if (MODEL_FILES / f"{n}.yaml").exists() and n not in leave_out]
    return ",".join(roles.ordered(names))  # the published comparison's three first


def job_dirname(overrides: str) -> str:
    """A job's folder in a sweep: its overrides when short, else a readable prefix and a hash of
    them (stable, so that a rerun finds the same folder and resumes)."""
    name = overrides.replace("/", "_")
    if len(name) <= 120:
        return name
    import hashlib

    return f"{name[:80]}-{hashlib.sha1(overrides.encode()).hexdigest()[:12]}"


def _resolvers() -> None:
    # at import, so that launcher workers that unpickle the job resolve the same names
    if not OmegaConf.has_resolver("fxbench_groups"):
        OmegaConf.register_new_resolver("fxbench_groups", _config_groups)
    if not OmegaConf.has_resolver("fxbench_subdir"):
        OmegaConf.register_new_resolver("fxbench_subdir", job_dirname)
    if not OmegaConf.has_resolver("fxbench_encoders"):
        OmegaConf.register_new_resolver("fxbench_encoders", default_encoders)


def register() -> None:
    _resolvers()
    cs = ConfigStore.instance()
    cs.store(name="fxbench_schema", node=Config)
    for name in models.available():
        cs.store(group="schema/model", name=name, node=encoder_schema(name))
    cs.store(group="schema/task", name="probe", node=open_dicts(ProbeTask))
    cs.store(group="schema/task", name="data", node=open_dicts(DataTask))


def open_dicts(schema: type) -> DictConfig:
    """The schema as a config whose free-form dicts (files, options, hub, train) take new keys, so that
    ``tasks.mine.files={train: a.tsv}`` works without ``++``; what goes in them is checked by ``validate``."""
    node = OmegaConf.structured(schema)
    for f in dataclasses.fields(schema):
        if typing.get_origin(typing.get_type_hints(schema)[f.name]) in (dict, dict):
            OmegaConf.set_struct(node[f.name], False)
    return node


def _check_ranges(node: Any, schema: type, path: str) -> None:
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        value, key = node[f.name], f"{path}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            _check_ranges(value, hints[f.name], key + ".")
            continue
        meta = f.metadata
        if not meta or value is None:
            continue
        values = list(value) if OmegaConf.is_list(value) or isinstance(value, list) else [value]
        if meta.get("nonempty") and not values:
            null = " (or null for the defaults)" if type(None) in typing.get_args(hints[f.name]) else ""
            raise UserError(f"{key}=[] is empty; give at least one value{null}.")
        for v in values:
            if meta.get("choices") and v not in meta["choices"]:
                raise UserError(f"{key}={value} is not allowed; choose from {', '.join(meta['choices'])}.")
            if meta.get("min") is not None and v < meta["min"]:
                raise UserError(f"{key}={value} is too small; it must be at least {meta['min']}.")
            if meta.get("max") is not None and v > meta["max"]:
                raise UserError(f"{key}={value} is too large; it must be at most {meta['max']}.")


def _check_probe(name: str, task) -> None:
    from bench.probes import build_probe

    try:
        probe = build_probe(task.probe, **OmegaConf.to_container(task.options, resolve=True))
        if task.distances:
            probe.sample(1, list(task.distances), seed=0)
    except ValueError as err:
        raise UserError(f"tasks.{name}: {err}") from None


def model_kwargs(model_cfg: DictConfig) -> dict:
    """The keyword arguments of ``models.build_encoder`` for a model config node."""
    kwargs = OmegaConf.to_container(model_cfg, resolve=True)
    kwargs.pop("label", None)
    for key, value in kwargs.items():
        if isinstance(value, list):
            kwargs[key] = tuple(value)
    return kwargs


TASK_FILES = Path(__file__).resolve().parent.parent / "conf" / "task"


def normalize_tasks(cfg: DictConfig) -> None:
    """Make ``cfg.tasks`` hold exactly the selected tasks, each with its full schema, in place.

    A preset's settings for a task that ``task=[...]`` did not select leave a node without a type: it is
    dropped, so that presets narrow to any task list. A task written inline (``+tasks.mine={type: ...}``)
    gets its type's defaults, so that it is validated and run like one from a task file.
    """
    from omegaconf import open_dict
    from omegaconf.errors import ConfigKeyError, ValidationError

    known = {p.stem for p in TASK_FILES.glob("*.yaml")}
    for name in list(cfg.tasks):
        task = cfg.tasks[name]
        kind = task.get("type") if OmegaConf.is_dict(task) else None
        if kind is None:
            if name in known:
                with open_dict(cfg.tasks):
                    del cfg.tasks[name]
                continue
            raise UserError(
                f"tasks.{name} has no type; select a task file with task=[...] or set "
                f"tasks.{name}.type (one of {', '.join(TASK_SCHEMAS)})."
            )
        if kind in TASK_SCHEMAS and OmegaConf.get_type(task) is dict:
            try:
                merged = OmegaConf.merge(OmegaConf.structured(TASK_SCHEMAS[kind]), task)
            except (ConfigKeyError, ValidationError) as err:
                raise UserError(
                    f"tasks.{name}.{err.key} is not valid for a {kind} task: {str(err).splitlines()[0]}."
                ) from None
            with open_dict(cfg.tasks):
                cfg.tasks[name] = merged


def validate(cfg: DictConfig) -> None:
    """Check ranges and cross-field rules; raise UserError naming the setting."""
    _check_ranges(cfg, Config, "")
    normalize_tasks(cfg)
    for name, task in cfg.tasks.items():
        if task.get("type") not in TASK_SCHEMAS:
            raise UserError(
                f"tasks.{name}.type={task.get('type')} is not a task type; choose from {', '.join(TASK_SCHEMAS)}."
            )
        _check_ranges(task, TASK_SCHEMAS[task.type], f"tasks.{name}.")
        if task.type == "probe":
            _check_probe(name, task)
        elif task.source == "files":
            from bench.data.sources import check_file_task

            check_file_task(name, task, cfg.data.root)
        train = task.get("train") or {}
        unknown = set(train) - {f.name for f in dataclasses.fields(TrainConfig)}
        if unknown:
            raise UserError(f"tasks.{name}.train.{min(unknown)} is not a train setting; see `train:` in --cfg job.")
    options = {p.stem for p in MODEL_FILES.glob("*.yaml")}
    for name in cfg.speed.compare or []:
        if name not in options:
            raise UserError(f"speed.compare: {name} is not a model option; choose from {', '.join(sorted(options))}.")
    kwargs = model_kwargs(cfg.model)
    try:
        with __import__("torch").device("meta"):
            models.build_encoder(**kwargs)
        can = models.capabilities(kwargs["name"])
    except ValueError as err:
        raise UserError(f"model.{err}" + ("" if str(err).endswith(".") else ".")) from None
    _check_capabilities(cfg, can)


def _check_capabilities(cfg: DictConfig, can: models.Capabilities) -> None:
    """Refuse a job the encoder cannot do (it declares what it can: ``models.capabilities``)."""
    name = cfg.model.name
    if cfg.suite in ("accuracy", "pretrain") and not can.decoder:
        generation = [
            n
            for n, t in cfg.tasks.items()
            if t.type == "generation" and (t.get("suites") is None or cfg.suite in t.suites)
        ]
        if generation:
            raise UserError(
                f"model={name} cannot run the generation task {', '.join(generation)}: models/{name}.py "
                "exports no DECODER; leave it out of task=[...]."
            )
    if cfg.suite == "pretrain" and not can.separate_directions and set(cfg.pretrain.objectives) == {"elmo"}:
        raise UserError(
            f"pretrain.objectives=[elmo] needs two separate directions, which model={name} does not offer "
            f"(no separate_directions in models/{name}.py); choose mlm or clm."
        )


_resolvers()
