"""The results store: atomic records, a tolerant reader, a long-form summary."""

import json
import os

import pandas as pd
import pytest

from bench.records import Record, has_ok_record, load_records, write_record, write_summary


def make(key, status="ok", metrics=None, seed=0, info=None):
    return Record(
        key=key,
        suite="speed",
        encoder="lstm",
        task="throughput",
        seed=seed,
        status=status,
        metrics=metrics if metrics is not None else [{"setting": 128, "metric": "tok_s", "value": 1.5}],
        info=info or {},
    )


def test_a_written_record_reads_back_with_its_schema_version(tmp_path):
    write_record(tmp_path, make("a"))
    frame = load_records(tmp_path)
    assert list(frame["key"]) == ["a"] and frame.loc[0, "schema_version"] == 1
    assert frame.loc[0, "metrics"][0]["value"] == 1.5
    assert not [p for p in (tmp_path / "records").iterdir() if p.name.startswith(".")]


def test_an_interrupted_write_leaves_no_record_and_no_temporary_file(tmp_path, monkeypatch):
    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_record(tmp_path, make("a"))
    assert list((tmp_path / "records").iterdir()) == []


def test_a_corrupt_record_is_skipped_with_a_warning_naming_the_file(tmp_path):
    write_record(tmp_path, make("good"))
    bad = tmp_path / "records" / "bad.json"
    bad.write_text('{"key": "bad", "status": "ok", "metr')
    with pytest.warns(UserWarning, match="bad.json"):
        frame = load_records(tmp_path)
    assert list(frame["key"]) == ["good"]


def test_records_are_found_in_every_job_folder_of_a_sweep(tmp_path):
    write_record(tmp_path / "model=lstm", make("a"))
    write_record(tmp_path / "model=cnn", make("b"))
    assert sorted(load_records(tmp_path)["key"]) == ["a", "b"]


def test_summary_is_long_form_one_row_per_number_of_ok_records(tmp_path):
    rows = [{"setting": 32, "metric": "tok_s", "value": 1.0}, {"setting": 64, "metric": "tok_s", "value": 2.0}]
    write_record(tmp_path, make("a", metrics=rows, seed=3))
    write_record(tmp_path, make("b", status="failed", metrics=[]))
    summary = pd.read_csv(write_summary(tmp_path))
    assert list(summary.columns) == ["suite", "encoder", "task", "variant", "setting", "metric", "value", "seed"]
    assert summary["value"].tolist() == [1.0, 2.0] and set(summary["seed"]) == {3}


def test_summary_tells_variants_of_one_encoder_and_task_apart(tmp_path):
    row = [{"setting": 32, "metric": "tok_s", "value": 1.0}]
    write_record(tmp_path, make("a", metrics=row, info={"dtype": "fp32"}))
    write_record(tmp_path, make("b", metrics=row, info={"dtype": "bf16"}))
    summary = pd.read_csv(write_summary(tmp_path))
    assert sorted(summary["variant"]) == ["dtype=bf16", "dtype=fp32"]


def test_only_an_ok_record_counts_as_done(tmp_path):
    write_record(tmp_path, make("f", status="failed"))
    write_record(tmp_path, make("o"))
    assert has_ok_record(tmp_path, "o") and not has_ok_record(tmp_path, "f") and not has_ok_record(tmp_path, "x")


def test_records_are_plain_json(tmp_path):
    path = write_record(tmp_path, make("a"))
    data = json.loads(path.read_text())
    assert {"config", "config_hash", "env", "started", "ended", "status", "reason"} <= set(data)
