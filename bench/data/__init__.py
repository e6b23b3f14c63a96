"""Task data behind one interface: a ``datasets.DatasetDict``.

Every source (the embedded generators, local files in standard formats, HF hub
ids) returns splits ``train``, ``validation`` and ``test`` with the columns of
its task type:

=============== ==============================================================
task type       columns
=============== ==============================================================
labelling       ``tokens``: list[str], ``tags``: list[str] (same length)
classification  ``text``: str, ``label``: str
pair            ``text_a``: str, ``text_b``: str, ``label``: str
generation      ``source``: str, ``target``: str
=============== ==============================================================

Labels stay strings here; ``bench.data.vocab`` maps them to ids from the
training split. Errors a user can cause (a malformed line, an empty split, a
missing file) raise ``DataError`` naming the file and line, or the split.
"""

from __future__ import annotations

from bench.errors import UserError

TASK_TYPES = {
    "labelling": ("tokens", "tags"),
    "classification": ("text", "label"),
    "pair": ("text_a", "text_b", "label"),
    "generation": ("source", "target"),
}
SPLITS = ("train", "validation", "test")


class DataError(UserError):
    """A data file or split that cannot be used; the message names the file and line or the split."""
