"""Readers for local files in standard formats, each returning one split as a ``datasets.Dataset``.

Formats: CoNLL-U and CoNLL-2003 columns (labelling), TSV / CSV / JSON lines
(classification, pair), line-aligned parallel text (generation); any file may
be gzipped (``.gz``). ``read_splits`` reads one file per split into a checked
``DatasetDict``. A malformed file raises ``DataError`` naming the file and
line; labels that only evaluation splits hold are reported, never remapped.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from datasets import Dataset, DatasetDict, Features, List, Value

from bench.data import SPLITS, TASK_TYPES, DataError

log = logging.getLogger("bench.data")

Column = str | int  # a column by header name or by 0-based position

FEATURES = {
    "labelling": Features({"tokens": List(Value("string")), "tags": List(Value("string"))}),
    "classification": Features({"text": Value("string"), "label": Value("string")}),
    "pair": Features({"text_a": Value("string"), "text_b": Value("string"), "label": Value("string")}),
    "generation": Features({"source": Value("string"), "target": Value("string")}),
}
CONLLU_FIELDS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
FORMAT_TYPES = {
    "conllu": ("labelling",),
    "conll": ("labelling",),
    "tsv": ("classification", "pair"),
    "csv": ("classification", "pair"),
    "jsonl": ("classification", "pair"),
    "parallel": ("generation",),
}
FORMATS = tuple(FORMAT_TYPES)
READER_OPTIONS = {
    "conllu": ("tag_column",),
    "conll": ("token_column", "tag_column"),
    "tsv": ("columns", "header", "label_map"),
    "csv": ("columns", "header", "label_map"),
    "jsonl": ("columns", "label_map"),
    "parallel": (),
}


def _named(path: Path, setting: str | None) -> str:
    return f"{path} (set by {setting})" if setting else str(path)


def read_lines(path: str | Path, setting: str | None = None) -> list[str]:
    """The lines of a UTF-8 text file, gzipped if its name ends in ``.gz``, without line ends (LF, CRLF)."""
    path = Path(path)
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"the file {_named(path, setting)} does not exist.") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"the file {_named(path, setting)} cannot be read: {exc}.") from None
    try:
        text = data.decode("utf-8-sig")  # a leading byte-order mark would join the first header name
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}:{line} is not valid UTF-8 text.") from None
    lines = text.split("\n")  # not splitlines(): U+2028 and friends may occur inside sentences
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _dataset(columns: dict[str, list], task_type: str) -> Dataset:
    return Dataset.from_dict(columns, features=FEATURES[task_type])


# -- labelling ---------------------------------------------------------------------------------


def read_conllu(path: str | Path, tag_column: str = "upos", setting: str | None = None) -> Dataset:
    """Sentences of a CoNLL-U file: ``tokens`` from FORM, ``tags`` from ``tag_column`` (upos or xpos).

    Comment lines, multiword-token lines (ids like ``3-4``) and empty nodes (ids like ``5.1``) are skipped.
    """
    if tag_column.lower() not in ("upos", "xpos"):
        raise DataError(f"tag_column={tag_column!r} is not valid: a CoNLL-U tag column is upos or xpos.")
    tag_index = CONLLU_FIELDS.index(tag_column.lower())
    tokens, tags = [], []
    words, labels, start = [], [], None
    for number, line in enumerate(read_lines(path, setting), 1):
        if not line.strip():
            if start is not None and not words:
                raise DataError(f"{path}:{start} starts an empty sentence: it has no token lines.")
            if words:
                tokens.append(words)
                tags.append(labels)
            words, labels, start = [], [], None
            continue
        start = start or number
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise DataError(f"{path}:{number}: expected 10 tab-separated CoNLL-U columns, found {len(fields)}.")
        if "-" in fields[0] or "." in fields[0]:
            continue
        form, tag = fields[1].strip(), fields[tag_index].strip()
        if not form:
            raise DataError(f"{path}:{number}: the token (FORM column) is empty.")
        if tag in ("", "_"):
            raise DataError(f"{path}:{number}: the token {form!r} has no {tag_column.upper()} tag.")
        words.append(form)
        labels.append(tag)
    if start is not None and not words:
        raise DataError(f"{path}:{start} starts an empty sentence: it has no token lines.")
    if words:
        tokens.append(words)
        tags.append(labels)
    return _dataset({"tokens": tokens, "tags": tags}, "labelling")


def read_conll(path: str | Path, token_column: int = 0, tag_column: int = -1, setting: str | None = None) -> Dataset:
    """Sentences of a CoNLL-2003 style file: whitespace-separated columns, a blank line between sentences.

    ``-DOCSTART-`` lines are skipped; every token line must have as many columns as the first one.
    """
    tokens, tags = [], []
    words, labels = [], []
    width = None
    for number, line in enumerate(read_lines(path, setting), 1):
        fields = line.split()
        if not fields:
            if words:
                tokens.append(words)
                tags.append(labels)
            words, labels = [], []
            continue
        if fields[0] == "-DOCSTART-":
            continue
        if width is None:
            width = len(fields)
            for what, index in (("token", token_column), ("tag", tag_column)):
                if not -width <= index < width:
                    raise DataError(f"{path}:{number} has {width} columns, so there is no {what} column {index}.")
        elif len(fields) != width:
            found = len(fields)
            raise DataError(f"{path}:{number}: expected {width} columns as on the first token line, found {found}.")
        words.append(fields[token_column])
        labels.append(fields[tag_column])
    if words:
        tokens.append(words)
        tags.append(labels)
    return _dataset({"tokens": tokens, "tags": tags}, "labelling")


# -- classification and pair -------------------------------------------------------------------


def _task_of_columns(columns: Mapping[str, Column], path: Path) -> str:
    for task_type in ("classification", "pair"):
        if set(columns) == set(TASK_TYPES[task_type]):
            return task_type
    raise DataError(
        f"the columns for {path} must name text and label (classification) or text_a, text_b and label (pair), "
        f"not {', '.join(columns) or 'nothing'}."
    )


def _rows(path: Path, fmt: str, setting: str | None) -> Iterator[tuple[int, list[str] | dict]]:
    """(line number, fields or JSON object) for each non-blank row, the header row included."""
    lines = read_lines(path, setting)
    if fmt == "tsv":
        for number, line in enumerate(lines, 1):
            if line.strip():
                yield number, line.split("\t")
    elif fmt == "csv":
        reader = csv.reader(io.StringIO("\n".join(lines), newline=""))
        try:
            for fields in reader:
                if any(field.strip() for field in fields):
                    yield reader.line_num, fields
        except csv.Error as exc:
            raise DataError(f"{path}:{reader.line_num} is not valid CSV: {exc}.") from None
    else:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number} is not valid JSON: {exc.msg}.") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{number} is not a JSON object.")
            yield number, row


def read_table(
    path: str | Path,
    columns: Mapping[str, Column],
    fmt: str | None = None,
    header: bool = True,
    label_map: Mapping[str, str] | None = None,
    setting: str | None = None,
) -> Dataset:
    """Rows of a TSV, CSV or JSON-lines file as a classification or pair split.

    ``columns`` maps each contract column (text, label or text_a, text_b, label) to a source column, by
    header name or 0-based position (JSON lines: by field name). ``fmt`` defaults to the file suffix
    (before ``.gz``). TSV fields are split on tabs with no quoting (the GLUE convention); CSV follows
    RFC 4180 quoting. Values are stripped; ``label_map`` renames labels and rejects any it lacks.
    """
    path = Path(path)
    task_type = _task_of_columns(columns, path)
    fmt = fmt or format_of(path)
    if fmt not in ("tsv", "csv", "jsonl"):
        raise DataError(f"{path} is not a table: its format {fmt!r} is none of tsv, csv, jsonl.")
    if fmt == "jsonl" and any(isinstance(c, int) for c in columns.values()):
        raise DataError(f"{path} holds JSON lines, whose fields have names: give column names, not positions.")
    rows = list(_rows(path, fmt, setting))
    if not rows:
        raise DataError(f"{_named(path, setting)} is empty.")
    if header and fmt != "jsonl" and len(rows) == 1:
        raise DataError(f"{_named(path, setting)} holds only its header row, no examples.")
    index, width = _resolve_columns(path, fmt, header, columns, rows)
    out: dict[str, list[str]] = {name: [] for name in columns}
    for number, row in rows[1:] if header and fmt != "jsonl" else rows:
        if fmt != "jsonl" and len(row) != width:
            raise DataError(f"{path}:{number}: expected {width} columns, found {len(row)}{_delimiter_hint(fmt, row)}.")
        for name, source in index.items():
            if fmt == "jsonl" and row.get(source) is None:
                raise DataError(f"{path}:{number} has no field {source!r} for the {name} column.")
            value = str(row[source]).strip()
            if not value:
                raise DataError(f"{path}:{number}: the {name} column ({source!r}) is empty.")
            if name == "label" and label_map is not None:
                if value not in label_map:
                    raise DataError(f"{path}:{number}: the label {value!r} is not one of {', '.join(label_map)}.")
                value = label_map[value]
            out[name].append(value)
    return _dataset(out, task_type)


def read_classification(
    path: str | Path, text_column: Column = "text", label_column: Column = "label", **options
) -> Dataset:
    """``read_table`` for one text and a label; ``options``: fmt, header, label_map, setting."""
    return read_table(path, {"text": text_column, "label": label_column}, **options)


def read_pair(
    path: str | Path,
    text_a_column: Column = "text_a",
    text_b_column: Column = "text_b",
    label_column: Column = "label",
    **options,
) -> Dataset:
    """``read_table`` for two texts and a label; ``options``: fmt, header, label_map, setting."""
    return read_table(path, {"text_a": text_a_column, "text_b": text_b_column, "label": label_column}, **options)


def _resolve_columns(path, fmt, header, columns, rows) -> tuple[dict[str, Column], int | None]:
    """Each contract column's index (JSON lines: field name), and how many columns every row must have."""
    if fmt == "jsonl" or not rows:
        return dict(columns), None
    number, first = rows[0]
    width = len(first)
    names = [name.strip() for name in first] if header else None
    index = {}
    for name, source in columns.items():
        if isinstance(source, str):
            if names is None:
                raise DataError(f"{path} has no header, so columns must be positions, not names like {source!r}.")
            if source not in names:
                raise DataError(
                    f"{path}:{number} has no column {source!r} for the {name} column; it has {', '.join(names)}"
                    f"{_delimiter_hint(fmt, first)}."
                )
            index[name] = names.index(source)
        elif not 0 <= source < width:
            raise DataError(f"{path}:{number} has {width} columns, so there is no column {source} for {name}.")
        else:
            index[name] = source
    return index, width


def _delimiter_hint(fmt: str, fields: list[str]) -> str:
    """When a row split into one field holds the other table format's delimiter: a hint to switch."""
    if len(fields) == 1 and fmt == "tsv" and "," in fields[0]:
        return " (one column: it looks comma-separated, so the format may be csv)"
    if len(fields) == 1 and fmt == "csv" and "\t" in fields[0]:
        return " (one column: it looks tab-separated, so the format may be tsv)"
    return ""


def table_header(path: str | Path, fmt: str, header: bool = True, setting: str | None = None) -> list[str]:
    """The column names of a table's header row (JSON lines: the first object's fields); [] if it has none."""
    for _, row in _rows(Path(path), fmt, setting):
        if fmt == "jsonl":
            return list(row)
        return [field.strip() for field in row] if header else []
    return []


def format_of(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    suffix = suffixes[-1] if suffixes else ""
    return {".tsv": "tsv", ".txt": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}.get(suffix, suffix[1:])


# -- generation --------------------------------------------------------------------------------


def read_parallel(source_path: str | Path, target_path: str | Path, setting: str | None = None) -> Dataset:
    """Sentence pairs from two line-aligned files (one sentence a line) as ``source`` and ``target``."""
    columns = {}
    for name, path in (("source", Path(source_path)), ("target", Path(target_path))):
        lines = [line.strip() for line in read_lines(path, setting)]
        for number, line in enumerate(lines, 1):
            if not line:
                raise DataError(f"{path}:{number} is empty; each line of a parallel file must hold a sentence.")
        columns[name] = lines
    if len(columns["source"]) != len(columns["target"]):
        raise DataError(
            f"{source_path} has {len(columns['source'])} lines but {target_path} has {len(columns['target'])}; "
            f"parallel files must align line by line."
        )
    return _dataset(columns, "generation")


# -- splits ------------------------------------------------------------------------------------


def dataset_dict(splits: Mapping[str, Dataset], task_type: str, source: str) -> DatasetDict:
    """Check splits against the contract (all three, the task type's columns, none empty) and report unseen labels."""
    if task_type not in TASK_TYPES:
        raise DataError(f"task type {task_type!r} is not one of {', '.join(TASK_TYPES)}.")
    for split in SPLITS:
        if split not in splits:
            raise DataError(f"{source} has no {split} split.")
        if set(splits[split].column_names) != set(TASK_TYPES[task_type]):
            raise DataError(
                f"the {split} split of {source} has columns {', '.join(splits[split].column_names)}, "
                f"not the {task_type} columns {', '.join(TASK_TYPES[task_type])}."
            )
        if len(splits[split]) == 0:
            raise DataError(f"the {split} split of {source} is empty.")
    data = DatasetDict({split: splits[split] for split in SPLITS})
    report_unseen_labels(data, task_type, source)
    return data


def unseen_labels(data: Mapping[str, Dataset], task_type: str) -> dict[str, Counter]:
    """Labels (tags, for labelling) of validation and test that train never holds, with their counts, by split."""
    column = {"labelling": "tags", "classification": "label", "pair": "label"}.get(task_type)
    if column is None:
        return {}

    def counts(split: str) -> Counter:
        values = data[split][column]
        return Counter(tag for tags in values for tag in tags) if task_type == "labelling" else Counter(values)

    seen = set(counts("train"))
    unseen = {}
    for split in SPLITS[1:]:
        new = Counter({label: n for label, n in counts(split).items() if label not in seen})
        if new:
            unseen[split] = new
    return unseen


def report_unseen_labels(data: Mapping[str, Dataset], task_type: str, source: str) -> dict[str, Counter]:
    """``unseen_labels``, with one warning line per split that has any."""
    unseen = unseen_labels(data, task_type)
    for split, new in unseen.items():
        listed = ", ".join(f"{label} ({n})" for label, n in sorted(new.items()))
        log.warning("the %s split of %s has labels the train split never holds: %s", split, source, listed)
    return unseen


def _read_split(path, fmt: str, where: str | None, split: str, options: dict) -> Dataset:
    if fmt == "conllu":
        return read_conllu(path, setting=where, **options)
    if fmt == "conll":
        return read_conll(path, setting=where, **options)
    if fmt == "parallel":
        if isinstance(path, (str, Path)) or len(path) != 2:
            raise DataError(f"{where or split} must be a (source, target) pair of files for parallel text.")
        return read_parallel(*path, setting=where)
    return read_table(path, fmt=fmt, setting=where, **options)


def read_splits(
    files: Mapping[str, str | Path | Sequence[str | Path]],
    fmt: str,
    source: str | None = None,
    setting: str | None = None,
    **options,
) -> DatasetDict:
    """One file per split (a (source, target) pair for ``parallel``) read with ``fmt``, as a checked DatasetDict.

    ``options`` go to the reader: ``tag_column`` (conllu), ``token_column``/``tag_column`` (conll),
    ``columns``/``header``/``label_map`` (tsv, csv, jsonl). ``setting`` names where ``files`` came from,
    e.g. ``data.files``, so errors can say ``data.files.train``.
    """
    if fmt not in FORMATS:
        raise DataError(f"format {fmt!r} is not one of {', '.join(FORMATS)}.")
    splits = {}
    for split, path in files.items():
        where = f"{setting}.{split}" if setting else None
        try:
            splits[split] = _read_split(path, fmt, where, split, options)
        except DataError as err:
            if where and where not in str(err):
                raise DataError(f"{where}: {err}") from None
            raise
        if len(splits[split]) == 0:
            first = path if isinstance(path, (str, Path)) else path[0]
            raise DataError(f"{_named(Path(first), where)} holds no examples.")
    task_type = FORMAT_TYPES[fmt][0]
    if len(FORMAT_TYPES[fmt]) > 1:  # a table: classification or pair, by its columns
        task_type = _task_of_columns(options.get("columns", {}), Path(str(next(iter(files.values()), ""))))
    return dataset_dict(splits, task_type, source or setting or "the data files")
