"""The one writer and the one reader of results.

A record is one JSON file under ``<run dir>/records/``: one finished
measurement (or one failure) with everything needed to trust it. Writes are
atomic (temporary file, then rename), so a killed job leaves no partial record.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from bench.files import atomic_write

SCHEMA_VERSION = 1
SUMMARY_COLUMNS = ["suite", "encoder", "task", "variant", "setting", "metric", "value", "seed"]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Record:
    key: str  # identifies the measurement: a rerun with the same key is the same job
    suite: str
    encoder: str
    task: str
    seed: int | None
    status: str  # "ok" or "failed"
    metrics: list[dict] = field(default_factory=list)  # {"setting", "metric", "value"} rows
    info: dict = field(default_factory=dict)  # measurement details: parameters, FLOPs, curves ...
    reason: str | None = None
    config: dict = field(default_factory=dict)
    config_hash: str = ""
    env: dict = field(default_factory=dict)
    started: str = ""
    ended: str = ""
    schema_version: int = SCHEMA_VERSION
    family: str | None = None  # the encoder's declared architecture family (models.capabilities): rnn, cnn, ...


def record_path(run_dir: Path, key: str) -> Path:
    return Path(run_dir) / "records" / f"{key}.json"


def write_record(run_dir: Path, record: Record) -> Path:
    path = record_path(run_dir, record.key)
    atomic_write(path, json.dumps(asdict(record), indent=1, default=str))
    return path


def read_record(path: Path) -> dict | None:
    """The record at ``path``, or None (with a warning naming the file) when it is corrupt."""
    try:
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or "status" not in data or "metrics" not in data:
            raise ValueError("not a record")
        return data
    except (OSError, ValueError) as err:
        warnings.warn(f"skipping corrupt record {path}: {err}", stacklevel=2)
        return None


def has_ok_record(run_dir: Path, key: str) -> bool:
    path = record_path(run_dir, key)
    if not path.exists():
        return False
    data = read_record(path)
    return data is not None and data["status"] == "ok"


def record_index(root: Path) -> dict[str, Path]:
    """Where each record key under ``root`` is stored, in any job folder of the tree. A key is a
    measurement's identity (its content, not its folder): one tree holds it once."""
    return {path.stem: path for path in sorted(Path(root).rglob("records/*.json"))}


def iter_records(root: Path):
    for path in sorted(Path(root).rglob("records/*.json")):
        data = read_record(path)
        if data is not None:
            data["path"] = str(path)
            yield data


def tuning_trial(config) -> bool:
    """Whether a record's config is a trial of an ``experiment=tune`` grid (bench.recipes): not a measurement, even
    at a measurement's settings."""
    return bool(((config if isinstance(config, dict) else {}).get("tune") or {}).get("grid"))


def load_records(root: Path):
    """All records under ``root`` as a DataFrame, one row per measurement; corrupt files are skipped.

    A key met in several files on one machine (trees written before keys were kept unique across job
    folders or held the machine, or folders copied together) is read once: its ok record over a failed one, else the latest. How many
    files were dropped so is in ``frame.attrs["duplicates"]``.
    """
    import pandas as pd

    rows = list(iter_records(root))
    columns = list(Record.__dataclass_fields__) + ["path"]
    frame = pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
    if frame.empty:
        frame.attrs["duplicates"] = 0
        return frame
    machine = frame["env"].map(lambda env: (env or {}).get("device_name") if isinstance(env, dict) else None)
    # a tuning trial (experiment=tune) written before its key told it apart is still not the measurement it tuned
    rank = frame.assign(
        _ok=frame["status"] == "ok", _machine=machine.fillna(""), _trial=frame["config"].map(tuning_trial)
    )
    rank = rank.sort_values(["_ok", "ended", "path"], kind="stable")
    unique = rank.drop_duplicates(["key", "_machine", "_trial"], keep="last").drop(
        columns=["_ok", "_machine", "_trial"]
    )
    unique = unique.sort_values("path").reset_index(drop=True)
    unique.attrs["duplicates"] = len(frame) - len(unique)
    return unique


def compiled(config) -> bool:
    """Whether a record's speed measurements ran under torch.compile (speed.compile)."""
    return bool(((config if isinstance(config, dict) else {}).get("speed") or {}).get("compile"))


def _variant(info, config=None) -> str:
    """What else tells two records of one suite, encoder and task apart: dtype, grid batch size, pre-training
    arm, torch.compile, and the info keys a suite lists in ``info["distinct_by"]``."""
    info = info if isinstance(info, dict) else {}
    parts = [f"{k}={info[k]}" for k in ("dtype", "objective", "pretrain_tokens") if info.get(k) is not None]
    if info.get("grid"):  # a speed measurement of the batch-size grid, beside the one at speed.batch_size
        parts.append(f"B={info['B']}")
    parts += [f"{k}={info[k]}" for k in info.get("distinct_by", ())]  # what else a suite says tells its records apart
    if info.get("dtype") is not None and compiled(config):
        parts.append("compile")
    return ",".join(parts)


def summary_frame(records):
    """Long form, one row per number: suite, encoder, task, variant, setting, metric, value, seed."""
    import pandas as pd

    rows = [
        {
            "suite": r["suite"],
            "encoder": r["encoder"],
            "task": r["task"],
            "variant": _variant(r["info"], r["config"]),
            "setting": m.get("setting"),
            "metric": m["metric"],
            "value": m["value"],
            "seed": r["seed"],
        }
        for _, r in records.iterrows()
        if r["status"] == "ok"
        for m in r["metrics"]
    ]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def write_summary(root: Path) -> Path:
    """Write ``summary.csv`` for every record under ``root``."""
    path = Path(root) / "summary.csv"
    atomic_write(path, summary_frame(load_records(root)).to_csv(index=False))
    return path
