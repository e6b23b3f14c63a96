"""One entry point from a task's settings to its DatasetDict, whatever the source."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from bench.data import DataError

SOURCES = ("embedded", "real", "files", "hub")


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if node is not None and not isinstance(node, dict) else dict(node or {})


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
    if not data_root:
        raise DataError(f"tasks.{name} reads files, so data.root must name the folder that holds them (e.g. data.root=../shared/data).")
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.root={data_root} is not a folder.")
    if task.source == "real":
        from bench.data.real import load_real

        return load_real(task.dataset, root)
    from bench.data.readers import read_splits

    files = {split: (tuple(root / p for p in path) if isinstance(path, (list, tuple)) else root / path)
             for split, path in _plain(task.files).items()}  # fmt: skip
    return read_splits(files, task.format, source=name, setting=f"tasks.{name}.files", **options)
