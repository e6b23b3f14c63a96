"""The published comparison's three roles, the encoders that stand for them by default, and the one
order of encoders that every sweep, table and figure uses.

The claims of the popular comparison name an RNN, a CNN and a Transformer; an encoder fills a role by
the architecture family it declares (``models.capabilities``), so a GRU is an RNN too. The order is
derived, never listed by hand: the default cast first (the published comparison's three), then every
other encoder by its family's role (RNNs, CNNs, attention), then the remaining families, each
alphabetically; a fixed-size preset (``transformer_base``) sits right after the encoder it sizes.
"""

from __future__ import annotations

import functools

RNN, CNN, TRANSFORMER = "rnn", "cnn", "transformer"  # the roles the published comparison's claims name
ROLE_FAMILIES = {RNN: "rnn", CNN: "cnn", TRANSFORMER: "attention"}  # the architecture family that fills each role
ROLE_NAMES = {RNN: "RNN", CNN: "CNN", TRANSFORMER: "Transformer"}
DEFAULT_CAST = {RNN: "lstm", CNN: "cnn", TRANSFORMER: "transformer"}  # who stands for each role by default


@functools.cache
def family_of(name: str) -> str | None:
    """The family encoder ``name`` declares; None for a name that is no encoder of this checkout."""
    import models

    return models.capabilities(name).family if name in models.available() else None


def _base(name: str) -> str:
    """The encoder a preset name sizes ('transformer_base' -> 'transformer'), else the name itself."""
    import models

    if name in models.available():
        return name
    return next((n for n in sorted(models.available(), key=len, reverse=True) if name.startswith(n + "_")), name)


def rank(name: str) -> tuple:
    """Sort key of an encoder (or preset) name in the one order."""
    base = _base(name)
    cast = list(DEFAULT_CAST.values())
    if base in cast:
        group = (0, cast.index(base), "")
    else:
        families = list(ROLE_FAMILIES.values())
        family = family_of(base) or ""
        group = (1, families.index(family), base) if family in families else (2, 0, family + " " + base)
    return (*group, name != base, name)


def ordered(names) -> list[str]:
    """``names`` (encoders or presets, each once) in the one order."""
    return sorted(set(names), key=rank)
