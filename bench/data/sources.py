"""One entry point from a task's settings to its DatasetDict, whatever the source."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from bench.data import SPLITS, TASK_TYPES, DataError

SOURCES = ("embedded", "real", "files", "hub")


def _plain(node) -> dict:
    return (
        OmegaConf.to_container(node, resolve=True)
        if node is not None and not isinstance(node, dict)
        else dict(node or {})
    )


def load_task_data(name: str, task, data_root: str | None):
    """The DatasetDict of task ``name``: generated, a real preset, local files, or a hub id."""
    options = _plain(task.options)
    if task.source == "embedded" and task.get("generator") == "wsd":
        from bench.data import wsd

        try:
            return wsd.generate(task.n_train, task.n_validation, task.n_test, task.data_seed, **options)
        except ValueError as err:
            raise DataError(f"tasks.{name}.options: {err}") from None
    if task.source == "embedded":
        from bench.data.embedded import generate

        try:
            return generate(task.type, task.n_train, task.n_validation, task.n_test, task.data_seed, **options)
        except ValueError as err:
            raise DataError(f"tasks.{name}.options: {err}") from None
    if task.source == "hub":
        from bench.data.hub import PRESETS, load_hub, load_preset

        hub = _plain(task.hub)
        if task.dataset in PRESETS:
            return load_preset(task.dataset, **hub)
        return load_hub(task.dataset, task_type=task.type, **hub)
    if task.source == "files":
        return read_file_task(name, task, data_root)
    from bench.data.real import load_real

    return load_real(task.dataset, _data_root(name, data_root))


def _data_root(name: str, data_root: str | None) -> Path:
    if not data_root:
        raise DataError(
            f"tasks.{name} reads files, so data.root must name the folder that holds them (e.g. data.root=../shared/data)."
        )
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.root={data_root} is not a folder.")
    return root


def _file_plan(name: str, task, data_root: str | None) -> tuple[dict, str, dict]:
    """The split -> path map, the format and the reader options of a ``source: files`` task, each checked."""
    from bench.data.readers import FORMAT_TYPES, FORMATS, READER_OPTIONS, format_of, table_header

    root = _data_root(name, data_root)
    files = _plain(task.files)
    missing = [split for split in SPLITS if not files.get(split)]
    if missing:
        example = ", ".join(f"{split}: <file>" for split in SPLITS)
        raise DataError(
            f"tasks.{name}.files has no {missing[0]} file; set tasks.{name}.files={{{example}}} "
            f"with paths under data.root={data_root}."
        )
    extra = sorted(set(files) - set(SPLITS))
    if extra:
        raise DataError(f"tasks.{name}.files.{extra[0]} is not a split; the splits are {', '.join(SPLITS)}.")
    paths = {
        split: (tuple(root / p for p in path) if isinstance(path, (list, tuple)) else root / path)
        for split, path in files.items()
    }
    fmt = task.format
    if fmt is None:
        guesses = {format_of(p if isinstance(p, Path) else p[0]) for p in paths.values()} & set(FORMATS)
        if len(guesses) != 1:
            raise DataError(
                f"tasks.{name}.format is not set and the file names do not tell it; "
                f"set tasks.{name}.format to one of {', '.join(FORMATS)}."
            )
        fmt = guesses.pop()
    if task.type not in FORMAT_TYPES[fmt]:
        fits = [f for f, types in FORMAT_TYPES.items() if task.type in types]
        raise DataError(
            f"tasks.{name}.format={fmt} does not hold {task.type} data; a {task.type} task reads {' or '.join(fits)}."
        )
    options = _plain(task.options)
    unknown = sorted(set(options) - set(READER_OPTIONS[fmt]))
    if unknown:
        allowed = ", ".join(READER_OPTIONS[fmt]) or "none"
        raise DataError(
            f"tasks.{name}.options.{unknown[0]} is not an option of the {fmt} reader (its options: {allowed})."
        )
    if fmt in ("tsv", "csv", "jsonl"):
        columns = options.get("columns") or {}
        wanted = ", ".join(f"{column}: <column>" for column in TASK_TYPES[task.type])
        if set(columns) != set(TASK_TYPES[task.type]):
            header = table_header(paths["train"], fmt, options.get("header", True), f"tasks.{name}.files.train")
            found = f"; {paths['train']} has the columns {', '.join(header)}" if header else ""
            given = f"names {', '.join(columns)}" if columns else "is not set"
            raise DataError(
                f"tasks.{name}.options.columns {given}: a {task.type} table needs "
                f"tasks.{name}.options={{columns: {{{wanted}}}}}{found}."
            )
    return paths, fmt, options


_READ: dict[tuple, object] = {}  # what check_file_task read, for the job that loads it next


def _stamp(paths: dict) -> tuple:
    stamp = []
    for path in paths.values():
        for p in path if isinstance(path, tuple) else (path,):
            try:
                stat = p.stat()
                stamp.append((str(p), stat.st_size, stat.st_mtime_ns))
            except OSError:
                stamp.append((str(p), None, None))
    return tuple(stamp)


def read_file_task(name: str, task, data_root: str | None):
    """The DatasetDict of a ``source: files`` task; read once per process while its files are unchanged."""
    from bench.data.readers import read_splits

    paths, fmt, options = _file_plan(name, task, data_root)
    key = (name, fmt, repr(sorted(options.items())), _stamp(paths))
    if key not in _READ:
        _READ[key] = read_splits(paths, fmt, source=f"tasks.{name}", setting=f"tasks.{name}.files", **options)
    return _READ[key]


def check_file_task(name: str, task, data_root: str | None) -> None:
    """Read a ``source: files`` task's files before anything trains: a mistake raises DataError naming the
    setting, the file and the line."""
    read_file_task(name, task, data_root)
