"""The Hydra app's configuration: every option composes, every bad value is one clear sentence."""

import subprocess
import sys

import pytest

from bench.errors import UserError, explain
from bench.schema import default_encoders, validate
from tests.conftest import CONF, REPO

MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
SUITES = sorted(p.stem for p in (CONF / "suite").glob("*.yaml"))
TASKS = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("model", MODELS)
def test_every_model_option_composes_validates_and_builds(compose, model):
    import torch

    import models
    from bench.schema import model_kwargs

    cfg = compose(f"model={model}", "suite=speed")
    validate(cfg)
    with torch.device("meta"):
        encoder = models.build_encoder(**model_kwargs(cfg.model))
    assert encoder.d_model > 0


@pytest.mark.parametrize("suite", SUITES)
def test_every_suite_option_composes(compose, suite):
    cfg = compose(f"suite={suite}")
    validate(cfg)
    assert cfg.suite == suite


@pytest.mark.parametrize("suite", SUITES)
def test_every_suite_option_is_a_module_that_declares_the_suite_interface(suite):
    from bench.suite import REQUIRED, load_suite

    module = load_suite(suite)
    assert module.__name__ == f"bench.{suite}"
    assert all(hasattr(module, member) for member in REQUIRED)
    assert set(module.SECTIONS) <= {"train", "speed", "distance", "accuracy", "pretrain"}


def test_a_suite_imports_neither_another_suite_nor_the_runner():
    import ast

    suites = {f"bench.{name}" for name in SUITES} | {"bench.runner"}
    for name in SUITES:
        tree = ast.parse((REPO / "bench" / f"{name}.py").read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {
            f"{n.module}.{a.name}"
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module
            for a in n.names
        }
        assert not (imported & suites) - {f"bench.{name}"}, f"bench/{name}.py imports {imported & suites}"


def test_a_suite_module_that_lacks_the_interface_is_refused_in_one_sentence(monkeypatch):
    import types

    from bench.suite import load_suite

    half = types.ModuleType("bench.half")
    half.SECTIONS, half.units = ("train",), lambda cfg: []
    monkeypatch.setitem(sys.modules, "bench.half", half)
    with pytest.raises(UserError, match=r"suite=half: bench/half.py does not declare run, headline"):
        load_suite("half")
    with pytest.raises(UserError, match="suite=nowhere has no module bench/nowhere.py"):
        load_suite("nowhere")


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(compose, experiment):
    validate(compose(f"experiment={experiment}"))


def test_default_comparison_is_parameter_matched(compose):
    import torch

    import models
    from bench.schema import model_kwargs

    counts = {}
    for name in default_encoders().split(","):
        cfg = compose(f"model={name}", "suite=speed")
        with torch.device("meta"):
            counts[name] = models.count_parameters(models.build_encoder(**model_kwargs(cfg.model)))
    budget = compose("suite=speed").param_budget
    assert all(abs(c - budget) <= 0.05 * budget for c in counts.values()), counts


def compose_error(compose, *overrides) -> str:
    with pytest.raises(Exception) as info:
        validate(compose(*overrides))
    sentence = explain(info.value)
    assert sentence is not None, f"no sentence for {info.value!r}"
    assert "\n" not in sentence
    return sentence


@pytest.mark.parametrize(
    "overrides,words",
    [
        (["model.d_model=abc"], ["model.d_model", "integer"]),
        (["model=no_such_encoder"], ["model=no_such_encoder", *MODELS]),
        (["model=transformer", "model.d_model=256", "model.n_heads=3"], ["model.n_heads=3", "d_model=256", "allowed"]),
        (["model=cnn", "model.d_model=-8"], ["model.d_model=-8"]),
        (["param_budget=-5"], ["param_budget=-5", "at least"]),
        (["speed.seq_lens=[0,32]"], ["speed.seq_lens", "at least 1"]),
        (["speed.dtypes=[fp64]"], ["speed.dtypes", "fp32"]),
        (["device=tpu"], ["device=tpu", "cpu"]),
        (["model=lstm", "model.n_heads=4"], ["model.n_heads=4", "not a setting of the lstm encoder"]),
        (["seed=x"], ["seed", "integer"]),
        (["model=transformer", "model.d_model=-5"], ["model.d_model=-5", "must be positive"]),
        (["speed.seq_lens=[]"], ["speed.seq_lens=[]", "empty", "null"]),
        (["speed.dtypes=[]"], ["speed.dtypes=[]", "empty"]),
        (["+tasks.mine={n_train: 5}"], ["tasks.mine has no type", "task=[...]"]),
        (["+tasks.mine={type: classification, colour: red}"], ["tasks.mine.colour", "classification"]),
    ],
)
def test_a_bad_override_is_one_sentence_naming_the_setting(compose, overrides, words):
    sentence = compose_error(compose, *overrides)
    for word in words:
        assert word in sentence, sentence


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_preset_narrows_to_one_task_and_builds_its_units(compose, experiment):
    from bench.schema import normalize_tasks
    from bench.suite import load_suite

    whole = compose(f"experiment={experiment}", return_hydra_config=True)
    suites = str((whole.hydra.sweeper.get("params") or {}).get("suite", whole.suite)).split(",")
    for suite in suites:
        task = next(
            n
            for n, t in compose(f"experiment={experiment}", f"suite={suite}").tasks.items()
            if t.get("type") is not None and (suite != "distance") == (t.type != "probe")
        )
        cfg = compose(f"experiment={experiment}", f"suite={suite}", f"task=[{task}]")
        validate(cfg)
        normalize_tasks(cfg)
        assert list(cfg.tasks) == [task]
        units = load_suite(suite).units(cfg)
        assert units and all(u.task == task for u in units if u.task in whole.tasks), suite


def test_an_inline_task_gets_its_type_defaults(compose):
    from bench.schema import normalize_tasks

    cfg = compose("suite=accuracy", "task=[tagging]", "+tasks.mine={type: classification, n_train: 40}")
    validate(cfg)
    normalize_tasks(cfg)
    assert cfg.tasks.mine.n_train == 40 and cfg.tasks.mine.vocab_size == 30000 and cfg.tasks.mine.source == "embedded"


def run_cli(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def test_a_task_file_without_its_package_line_is_named_in_one_sentence(tmp_path):
    (tmp_path / "task").mkdir()
    text = (CONF / "task" / "recall.yaml").read_text().splitlines()
    (tmp_path / "task" / "mine.yaml").write_text("\n".join(line for line in text if "@package" not in line))
    proc = run_cli("-cd", str(tmp_path), "hydra.mode=RUN", "suite=distance", "task=[mine]", "--cfg", "job")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "needs `# @package tasks.NAME`" in proc.stderr.strip().splitlines()[-1], proc.stderr


def test_cli_bad_override_exits_2_with_one_line_and_no_traceback(tmp_path):
    proc = run_cli("model=transformer", "model.d_model=256", "model.n_heads=3", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [lines[-1]] and lines[-1].startswith("fxbench: model.n_heads=3"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_job_the_encoder_cannot_do_is_refused_before_it_runs(compose, monkeypatch):
    import models

    sentence = compose_error(compose, "suite=pretrain", "model=cnn", "pretrain.objectives=[elmo]")
    assert "pretrain.objectives=[elmo]" in sentence and "separate directions" in sentence and "model=cnn" in sentence
    validate(compose("suite=pretrain", "model=cnn", "pretrain.objectives=[mlm,elmo]"))  # mlm runs, elmo is left out
    validate(compose("suite=pretrain", "model=lstm", "pretrain.objectives=[elmo]"))
    no_decoder = models.Capabilities("cnn", decoder=False, separate_directions=False)
    monkeypatch.setattr(models, "capabilities", lambda name: no_decoder)
    sentence = compose_error(compose, "suite=accuracy", "model=cnn", "task=[tagging,generation]")
    assert "generation" in sentence and "DECODER" in sentence and "task=[...]" in sentence
    validate(compose("suite=accuracy", "model=cnn", "task=[tagging]"))
    validate(compose("suite=speed", "model=cnn"))


def test_cli_help_and_cfg_job_work():
    helped = run_cli("--help")
    assert helped.returncode == 0 and f"model: {', '.join(MODELS)}" in helped.stdout
    shown = run_cli("--cfg", "job")
    assert shown.returncode == 0 and "param_budget" in shown.stdout and "model:" in shown.stdout


def test_user_error_is_explained_as_itself():
    assert explain(UserError("data.root=/x does not exist.")) == "data.root=/x does not exist."


def test_the_harness_never_names_an_encoder_outside_the_one_order():
    """Which encoders exist comes from models/ and their declared families; the only names the harness holds
    are the published comparison's cast (bench/roles.py) and the implementation targets of its three
    (bench/targets.py, which times the LSTM against its own nn.LSTM)."""
    import ast

    import models

    families = {models.capabilities(n).family for n in models.available()}  # 'ssm' names a family too
    names = set(models.available()) - families
    for path in (REPO / "bench").rglob("*.py"):
        if path.name in ("roles.py", "targets.py"):
            continue
        tree = ast.parse(path.read_text())
        named = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in names}
        assert not named, f"{path.relative_to(REPO)} names {sorted(named)}"


def test_the_one_order_puts_the_cast_first_then_families_and_presets_beside_their_encoder():
    import models
    from bench import roles
    from bench.report import frames

    order = roles.ordered(models.available())
    assert order[:3] == list(roles.DEFAULT_CAST.values()) and sorted(order) == sorted(models.available())
    rnns = [n for n in order[3:] if roles.family_of(n) == "rnn"]
    assert order[3 : 3 + len(rnns)] == rnns  # other RNNs next, then the other roles' families, then the rest
    labels = ["transformer_big (9M)", "ssm (3.2M)", "transformer (3.2M)", "lstm (0.3M)", "transformer_base (2M)"]
    assert frames.encoder_order(labels) == [
        "lstm (0.3M)",
        "transformer (3.2M)",
        "transformer_base (2M)",
        "transformer_big (9M)",
        "ssm (3.2M)",
    ]
    assert roles.ordered(["zeta", "lstm"]) == ["lstm", "zeta"]  # a name of no encoder goes last
