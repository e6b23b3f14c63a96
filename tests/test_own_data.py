"""A user's own data files, as the README tells them to bring them: every mistake stops before training."""

import csv
import random
import re
import subprocess
import sys

import pytest

from bench.errors import explain
from bench.schema import validate
from tests.conftest import REPO

CLASSES = [f"class{i}" for i in range(10)]
FILES = "{train: train.tsv, validation: dev.tsv, test: test.tsv}"
COLUMNS = "{columns: {text: Source, label: Target}}"


@pytest.fixture
def own(tmp_path):
    """A 10-class TSV with the header Source, Target (a cue word decides the class), a CSV copy, an empty file."""
    rng = random.Random(0)
    for split, n in (("train", 300), ("dev", 50), ("test", 50)):
        rows = [["Source", "Target"]]
        for _ in range(n):
            label = rng.randrange(10)
            words = [f"w{rng.randrange(40)}" for _ in range(6)] + [f"cue{label}"]
            rng.shuffle(words)
            rows.append([" ".join(words), CLASSES[label]])
        (tmp_path / f"{split}.tsv").write_text("".join("\t".join(r) + "\n" for r in rows))
        with open(tmp_path / f"{split}.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)
    (tmp_path / "empty.tsv").write_text("")
    (tmp_path / "header.tsv").write_text("Source\tTarget\n")
    lines = (tmp_path / "dev.tsv").read_text().splitlines()
    lines[7] += "\textra"
    (tmp_path / "ragged.tsv").write_text("\n".join(lines) + "\n")
    return tmp_path


def error_of(compose, *overrides) -> str:
    with pytest.raises(Exception) as info:
        validate(compose(*overrides))
    sentence = explain(info.value)
    assert sentence is not None and "\n" not in sentence, info.value
    return sentence


def task(**settings) -> list[str]:
    base = {"source": "files", "format": "tsv", "files": FILES, "options": COLUMNS}
    base.update(settings)
    return ["suite=accuracy", "task=[classification]"] + [
        f"tasks.classification.{key}={value}" for key, value in base.items() if value is not None
    ]


def test_the_plain_override_form_reads_and_checks_the_files(compose, own):
    cfg = compose(*task(), f"data.root={own}")
    validate(cfg)  # reads every split
    from bench.data.sources import load_task_data

    data = load_task_data("classification", cfg.tasks.classification, cfg.data.root)
    assert {s: len(d) for s, d in data.items()} == {"train": 300, "validation": 50, "test": 50}
    assert set(data["train"]["label"]) == set(CLASSES)


@pytest.mark.parametrize(
    "settings,words",
    [
        ({"options": None}, ["tasks.classification.options.columns is not set", "text: <column>", "Source, Target"]),
        ({"files": None}, ["tasks.classification.files has no train file", "validation: <file>"]),
        ({"files": "{validation: dev.tsv, test: test.tsv}"}, ["tasks.classification.files has no train file"]),
        (
            {"files": "{train: train.dat, validation: dev.dat, test: test.dat}", "format": None},
            ["tasks.classification.format is not set", "tsv"],
        ),
        (
            {"files": "{train: train.csv, validation: dev.tsv, test: test.tsv}"},
            ["tasks.classification.files.train", "train.csv:1", "comma-separated", "csv"],
        ),
        (
            {"files": "{train: empty.tsv, validation: dev.tsv, test: test.tsv}"},
            ["empty.tsv", "tasks.classification.files.train", "is empty"],
        ),
        (
            {"files": "{train: train.tsv, validation: header.tsv, test: test.tsv}"},
            ["header.tsv", "tasks.classification.files.validation", "only its header"],
        ),
        (
            {"files": "{train: train.tsv, validation: ragged.tsv, test: test.tsv}"},
            ["tasks.classification.files.validation", "ragged.tsv:8", "expected 2 columns, found 3"],
        ),
        ({"files": "{train: nope.tsv, validation: dev.tsv, test: test.tsv}"}, ["nope.tsv", "does not exist"]),
        ({"format": "conllu"}, ["tasks.classification.format=conllu", "tsv or csv or jsonl"]),
        ({"options": "{colums: {text: Source, label: Target}}"}, ["tasks.classification.options.colums", "columns"]),
        ({"options": "{columns: {text: Src, label: Target}}"}, ["train.tsv:1", "'Src'", "Source, Target"]),
        ({"options": "{columns: {text: Source}}"}, ["tasks.classification.options.columns names text", "label"]),
    ],
)
def test_every_mistake_is_one_sentence_naming_the_setting_and_the_file(compose, own, settings, words):
    sentence = error_of(compose, *task(**settings), f"data.root={own}")
    for word in words:
        assert word in sentence, sentence


def test_a_format_left_out_is_taken_from_the_file_names(compose, own):
    cfg = compose(*task(format=None), f"data.root={own}")
    validate(cfg)


def test_no_data_root_names_the_setting(compose, own):
    assert "data.root" in error_of(compose, *task())


def test_an_inline_task_is_checked_like_one_from_a_file(compose, own):
    sentence = error_of(
        compose,
        "suite=accuracy",
        "task=[]",
        f"data.root={own}",
        f"+tasks.mine={{type: classification, source: files, files: {FILES}}}",
    )
    assert sentence.startswith("tasks.mine.options.columns is not set"), sentence


def readme_task_file() -> str:
    text = (REPO / "README.md").read_text()
    block = re.search(r"```yaml\n(# @package tasks.mine\n.*?)```", text, re.DOTALL)
    assert block, "the README's task file example is gone"
    return block.group(1)


def test_the_readme_task_file_runs_end_to_end_on_a_file_the_suite_never_saw(own, tmp_path):
    conf = tmp_path / "my_conf" / "task"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text(readme_task_file())
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "bench",
        "-cd",
        str(tmp_path / "my_conf"),
        "suite=accuracy",
        "task=[mine]",
        f"data.root={own}",
        "hydra.mode=RUN",
        "model=cnn",
        "n_seeds=1",
        "train.steps=60",
        f"hydra.run.dir={out}",
    ]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import pandas as pd

    summary = pd.read_csv(out / "summary.csv")
    accuracy = summary[(summary.task == "mine") & (summary.setting == "test") & (summary.metric == "accuracy")].value
    assert len(accuracy) == 1 and accuracy.iloc[0] > 0.3, summary  # chance: 0.1 over ten classes
    assert "| mine |" in (out / "report.md").read_text()
