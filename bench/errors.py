"""Errors a user can cause, and how they are told: one sentence, no traceback."""

from __future__ import annotations

import errno
import re
from contextlib import contextmanager
from pathlib import Path


class UserError(Exception):
    """A bad setting, file or value; the message is one sentence naming it."""


class Abort(BaseException):
    """Stops a whole sweep at once (Hydra's launcher would record an Exception and go on); the message is
    one sentence, ``exit_code`` the process's status (2: a bad setting; 1: the run could not finish)."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


_OS_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the file system is read-only",
}


def explain_os_error(exc: OSError) -> str:
    """One sentence for a file that could not be written or read: which path, why, what to do."""
    path = exc.filename or "a results file"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) and exc.filename:
        blocker = next((p for p in Path(exc.filename).parents if p.is_file()), None)
        where = f"{blocker} is a file, not a folder" if blocker else f"{path} is not a folder"
        return f"cannot create {path}: {where}; choose another output folder (hydra.run.dir=...)."
    reason = _OS_REASONS.get(exc.errno, exc.strerror or type(exc).__name__)
    hint = "free some space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "choose a folder you can write to"
    verb = "write" if exc.errno in _OS_REASONS else "use"
    return (
        f"cannot {verb} {path}: {reason}; every record finished before is kept; {hint} "
        "(or another hydra.run.dir) and rerun the same command to resume."
    )


@contextmanager
def unwritable_output_stops():
    """Turn an OSError while writing results (a full disk, a read-only folder) into an Abort with status 1
    and one sentence naming the path."""
    try:
        yield
    except OSError as err:
        raise Abort(explain_os_error(err), exit_code=1) from None


def _os_error_in(exc: BaseException | None) -> OSError | None:
    """The OSError that caused ``exc`` (Hydra and logging wrap them), if any."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


_CONVERSIONS = {
    "Integer": "an integer",
    "Float": "a number",
    "Boolean": "true or false",
    "String": "a string",
}


def exit_code(exc: BaseException) -> int:
    """The exit status for an explained error: 1 where the run could not finish, 2 for a bad setting."""
    if isinstance(exc, Abort):
        return exc.exit_code
    return 1 if _os_error_in(exc) is not None else 2


def explain(exc: BaseException) -> str | None:
    """One sentence for a Hydra or OmegaConf error a user caused; None for anything else."""
    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
    )
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(exc, (UserError, Abort)):
        return str(exc)
    if _os_error_in(exc) is not None:
        return explain_os_error(_os_error_in(exc))
    if isinstance(exc, MissingConfigException):
        group, _, option = (exc.missing_cfg_file or "").rpartition("/")
        if group and exc.options:
            return f"{group}={option} does not exist; choose one of: {', '.join(sorted(exc.options))}."
        return f"no config named {exc.missing_cfg_file!r} was found."
    if isinstance(exc, OverrideParseException):
        return f"the override {exc.override!r} cannot be parsed ({exc.message.splitlines()[0]})."
    if isinstance(exc, ConfigCompositionException):
        cause = exc.__cause__
        text = str(exc).splitlines()[0]
        override = re.search(r"^Error merging override (\S+)$", text) or re.search(r"use \+(\S+)$", str(exc))
        if isinstance(cause, OmegaConfBaseException):
            return _explain_omegaconf(cause, override.group(1) if override else None)
        composing = re.search(r"^In '(.+)': \w+ raised while composing config:$", text)
        lines = str(exc).splitlines()
        if composing and len(lines) > 1:
            detail = lines[1].rstrip(".")
            if re.search(r"Key '(task|probe|options|distances|n_train)' not in 'Config'", detail):
                return (
                    f"a task's settings landed at the top level while composing {composing.group(1)} ({detail}): "
                    "a file in conf/task/ needs `# @package tasks.NAME` (NAME: its file name) as its first line."
                )
            return f"composing {composing.group(1)} failed: {detail}."
        return text if text.endswith(".") else text + "."
    if isinstance(exc, OmegaConfBaseException):
        return _explain_omegaconf(exc, None)
    return None


def _nullable(exc, key: str) -> bool:
    """Whether the schema field behind ``key`` accepts null."""
    import typing

    schema = getattr(exc, "object_type", None)
    try:
        hint = typing.get_type_hints(schema)[key.rsplit(".", 1)[-1]]
    except Exception:
        return False
    return type(None) in typing.get_args(hint)


def _explain_omegaconf(exc, override: str | None) -> str:
    message = str(exc).splitlines()[0]
    key = getattr(exc, "full_key", None) or (override or "").split("=")[0]
    shown = override if override and "=" in override else key
    converted = re.search(r"could not be converted to (\w+)", message)
    if converted:
        kind = _CONVERSIONS.get(converted.group(1), converted.group(1))
        return f"{shown} is not valid: {key} must be {kind}{' or null' if _nullable(exc, key) else ''}."
    if "is not Optional" in message:
        return f"{shown} is not valid: {key} cannot be null."
    if "not in struct" in message or "Key '" in message:
        owner = getattr(getattr(exc, "object_type", None), "encoder_name", None)  # set by bench.schema.encoder_schema
        if owner:
            return (
                f"{key} is not a setting of the {owner} encoder, and each encoder has its own "
                f"(`python -m bench model={owner} --cfg job` lists them); to change one encoder, select it, "
                f"e.g. `model=NAME {shown}`."
            )
        return f"{key} is not a setting; `python -m bench --cfg job` lists them all."
    choices = re.search(r"expected one of \[(.*)\]", message)
    if choices:
        return f"{shown} is not valid: {key} must be one of {choices.group(1)}."
    return f"{shown}: {message}"
