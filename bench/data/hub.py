"""HF hub datasets through ``datasets.load_dataset``, renamed to the contract's splits and columns.

A source is data (see ``PRESETS``): the hub id and config, which hub column feeds
each contract column (``"translation.ro"`` reads a field of a struct column),
which hub split feeds each contract split, and optionally a split to carve out
of another. Integer ``ClassLabel`` labels become their names; rows labelled -1
(no gold label: SNLI's unresolved pairs, every row of GLUE's hidden test sets)
are dropped with a log line, so a split that holds only those is reported empty.

Carving (``carve={"split": "validation", "from": "train", "size": 872}``): the
``size`` rows (or fraction, if a float below 1) of ``from`` whose SHA-256 of
their contract columns is smallest become ``split``; the rest stay. No seed and
no dependence on row order; identical rows sort together.

Local files take the same code path: ``load_hub("parquet", None, ...,
data_files={"train": ..., ...})`` (likewise "csv", "json").
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping

import datasets
import pyarrow as pa
from datasets import Dataset, DatasetDict

from bench.data import TASK_TYPES, DataError
from bench.data.readers import FEATURES, dataset_dict

log = logging.getLogger("bench.data")

PRESETS = {
    # GLUE's sst2 test labels are hidden (-1): the hub validation set is the test split, and
    # validation is carved out of train with as many rows.
    "glue_sst2": {
        "path": "nyu-mll/glue",
        "name": "sst2",
        "task_type": "classification",
        "column_map": {"text": "sentence", "label": "label"},
        "splits": {"train": "train", "test": "validation"},
        "carve": {"split": "validation", "from": "train", "size": 872},
    },
    "snli": {
        "path": "stanfordnlp/snli",
        "name": None,
        "task_type": "pair",
        "column_map": {"text_a": "premise", "text_b": "hypothesis", "label": "label"},
        "splits": {"train": "train", "validation": "validation", "test": "test"},
    },
    "wmt16_ro_en": {
        "path": "wmt/wmt16",
        "name": "ro-en",
        "task_type": "generation",
        "column_map": {"source": "translation.ro", "target": "translation.en"},
        "splits": {"train": "train", "validation": "validation", "test": "test"},
    },
}


def load_preset(preset: str, **overrides) -> DatasetDict:
    """``load_hub`` with the settings of ``PRESETS[preset]``, any of them overridden."""
    if preset not in PRESETS:
        raise DataError(f"{preset!r} is not a hub preset; choose one of {', '.join(PRESETS)}.")
    return load_hub(**{**PRESETS[preset], **overrides})


def load_hub(
    path: str,
    name: str | None,
    column_map: Mapping[str, str],
    splits: Mapping[str, str],
    task_type: str,
    data_files=None,
    carve: Mapping | None = None,
    label_names: list[str] | None = None,
    cache_dir: str | None = None,
) -> DatasetDict:
    """Load ``path`` (config ``name``) with ``datasets.load_dataset`` and map it onto the contract.

    ``column_map``: contract column -> hub column; ``splits``: contract split -> hub split;
    ``label_names`` names integer labels that carry no ``ClassLabel``.
    """
    source = f"{path} ({name})" if name else path
    if task_type not in TASK_TYPES:
        raise DataError(f"task type {task_type!r} is not one of {', '.join(TASK_TYPES)}.")
    if set(column_map) != set(TASK_TYPES[task_type]):
        raise DataError(
            f"column_map for {source} must map exactly {', '.join(TASK_TYPES[task_type])}, not {', '.join(column_map)}."
        )
    try:
        loaded = datasets.load_dataset(path, name, data_files=data_files, cache_dir=cache_dir)
    except (datasets.exceptions.DatasetsError, FileNotFoundError, ConnectionError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{source} cannot be loaded: {reason.rstrip('.')}.") from None
    out = {}
    for split, hub_split in splits.items():
        if hub_split not in loaded:
            raise DataError(f"{source} has no split {hub_split!r} for {split}; it has {', '.join(loaded)}.")
        where = f"the {split} split of {source} (hub split {hub_split!r})"
        out[split] = _to_contract(loaded[hub_split], column_map, task_type, label_names, where)
    if carve:
        out.update(_carve(out, carve, source))
    return dataset_dict(out, task_type, source)


def _to_contract(hub, column_map, task_type, label_names, where) -> Dataset:
    """One hub split's rows with the contract's columns and string labels; -1 labels dropped."""
    table = hub.with_format("arrow")[:]  # a pyarrow.Table, any index mapping applied
    columns = {}
    for column, hub_column in column_map.items():
        top, _, field = hub_column.partition(".")
        if top not in table.column_names:
            raise DataError(f"{where} has no column {top!r}; it has {', '.join(table.column_names)}.")
        values = table.column(top)
        if field:
            is_struct = pa.types.is_struct(values.type)
            fields = [values.type.field(i).name for i in range(values.type.num_fields)] if is_struct else []
            if field not in fields:
                raise DataError(f"{where}: the column {top!r} has no field {field!r}; it has {', '.join(fields)}.")
            values = values.combine_chunks().field(field)
        columns[column] = values.to_pylist()
    keep = None
    if "label" in columns:
        feature = hub.features.get(column_map["label"])
        names = getattr(feature, "names", None) or label_names
        raw = columns["label"]
        keep = [i for i, label in enumerate(raw) if label is not None and label != -1]
        if raw and not keep:
            raise DataError(
                f"{where} is empty: all its {len(raw)} rows are labelled -1 (no gold label); "
                f"carve a labelled split out of another, e.g. carve={{'split': 'test', 'from': 'train', 'size': 0.1}}."
            )
        if len(keep) < len(raw):
            log.info("%s: dropped %d of %d rows that have no gold label (-1)", where, len(raw) - len(keep), len(raw))
            columns = {column: [values[i] for i in keep] for column, values in columns.items()}
        if names is not None:
            try:
                columns["label"] = [names[label] for label in columns["label"]]
            except (IndexError, TypeError):
                raise DataError(f"{where} has labels outside its {len(names)} label names.") from None
        else:
            columns["label"] = [str(label) for label in columns["label"]]
    return Dataset.from_dict(columns, features=FEATURES[task_type])


def _carve(splits: dict, carve: Mapping, source: str) -> dict:
    """``carve["split"]`` as the rows of ``carve["from"]`` with the smallest content hashes; the rest stay."""
    new, origin, size = carve.get("split"), carve.get("from"), carve.get("size")
    if origin not in splits or new is None or size is None:
        raise DataError(
            f"carve for {source} needs split, from (one of {', '.join(splits)}) and size, not {dict(carve)}."
        )
    rows = splits[origin]
    count = round(size * len(rows)) if isinstance(size, float) and size < 1 else int(size)
    if not 0 < count < len(rows):
        raise DataError(f"carve for {source} asks for {count} of the {len(rows)} rows of {origin}; it must leave some.")
    names = rows.column_names
    columns = [rows[name] for name in names]
    keys = [hashlib.sha256("\x1f".join(map(str, row)).encode("utf-8")).digest() for row in zip(*columns, strict=True)]
    order = sorted(range(len(rows)), key=lambda i: (keys[i], i))
    carved = sorted(order[:count])
    kept = sorted(order[count:])
    return {new: rows.select(carved), origin: rows.select(kept)}
