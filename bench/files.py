"""The one way fxbench writes a file it may read back: records, summaries, checkpoints, caches.

A write goes to a temporary file beside the target and is renamed over it, so a
killed job or a concurrent reader sees the old file or the whole new one, never
a torn one. This module depends on nothing else in ``bench``.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, content: str | bytes) -> Path:
    """Write ``content`` (text as UTF-8, or bytes) to ``path`` whole or not at all, readable as any file
    the user writes (mkstemp's own mode, 0600, would hide records from the other users of a shared
    results folder). An error names ``path``: a full disk names no file of its own."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(err.errno, err.strerror, str(path)) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(path: str | Path, obj) -> Path:
    """``torch.save`` through ``atomic_write``."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write(path, buffer.getvalue())
