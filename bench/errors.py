"""Errors a user can cause, and how they are told: one sentence, no traceback."""

from __future__ import annotations

import re


class UserError(Exception):
    """A bad setting, file or value; the message is one sentence naming it."""


class Abort(BaseException):
    """Stops a whole sweep at once (Hydra's launcher would record an Exception and go on)."""


_CONVERSIONS = {
    "Integer": "an integer",
    "Float": "a number",
    "Boolean": "true or false",
    "String": "a string",
}


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
        from bench.schema import SCHEMA_OWNERS

        owner = SCHEMA_OWNERS.get(getattr(getattr(exc, "object_type", None), "__name__", ""))
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
