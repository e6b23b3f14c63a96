"""Sequence encoders behind one contract, and the function that builds them.

The contract, shared by every encoder in this package::

    forward(x: (B, T, D) float, mask: (B, T) bool, True = real token) -> (B, T, D)

- real tokens come first in each row (right padding); outputs are zero at padding;
- padding never changes the outputs at real positions;
- with ``causal=True`` the output at t depends only on inputs at positions <= t;
- ``d_model``, ``causal`` and ``receptive_field`` (input positions one output can
  see, None when unbounded) are attributes of every encoder.

An encoder is one module ``models/<name>.py`` that sets ``ENCODER = <class>``
(and ``DECODER = <class>`` if it can generate, see ``models.seq2seq``).
The class takes flat typed keyword arguments, ``d_model`` and ``causal`` first,
declares what it is and can do in class attributes, read through ``capabilities``:

- ``family``: its architecture family, e.g. "rnn", "cnn", "attention", "ssm";
  the claims about RNNs, CNNs and Transformers are judged on the encoders that
  declare the family each names;
- ``separate_directions`` (default False): whether it accepts
  ``stacking="separate"``, two one-direction stacks that never see each other's
  states, as the ELMo objective's pair of language models needs;

What every encoder gets from ``build_encoder`` stays out of its file: the checks of
the settings encoders share (``COMMON_CHECKS``) and row-chunked inference
(``HARNESS_OPTIONS``: ``infer_chunk_tokens``).

A module of an encoder whose arithmetic the FLOP counter cannot see (anything but
matrix products, convolutions and attention, e.g. a scan) declares it with
``uncounted_flops(seq_len) -> int``: its FLOPs over one sequence of that length.

An encoder class may set two class attributes used by the parameter-budget solver:
``width_multiple(**options)`` (the step in which ``d_model`` may change) and
``fine_width`` (the name of an inner width that closes the remaining gap).
This package imports torch only.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import nn


class SequenceEncoder(Protocol):
    d_model: int
    causal: bool
    receptive_field: int | None

    def __call__(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor: ...


def available() -> list[str]:
    """Names of the encoders in this package: the modules that export ``ENCODER``."""
    here = Path(__file__).parent
    names = [m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_")]
    return sorted(n for n in names if hasattr(importlib.import_module(f"models.{n}"), "ENCODER"))


def encoder_class(name: str) -> type[nn.Module]:
    """The encoder class that ``models/<name>.py`` exports as ``ENCODER``."""
    if name not in available():
        raise ValueError(f"unknown encoder {name!r}; available: {', '.join(available())}")
    return importlib.import_module(f"models.{name}").ENCODER


@dataclass(frozen=True)
class Capabilities:
    family: str  # architecture family: rnn, cnn, attention, ssm, ...
    decoder: bool  # exports DECODER, so it can run generation tasks
    separate_directions: bool  # accepts stacking="separate" (the ELMo objective)


def capabilities(name: str) -> Capabilities:
    """What encoder ``name`` declares it is and can do."""
    cls = encoder_class(name)
    family = getattr(cls, "family", None)
    if not isinstance(family, str) or not family:
        raise ValueError(
            f"models/{name}.py: {cls.__name__} declares no family; set the class attribute "
            "family = 'rnn', 'cnn', 'attention', 'ssm' or the like"
        )
    return Capabilities(
        family,
        hasattr(importlib.import_module(f"models.{name}"), "DECODER"),
        bool(getattr(cls, "separate_directions", False)),
    )


# what build_encoder applies to every encoder, so that an encoder file holds only its mathematics
HARNESS_OPTIONS = {
    # inference (autograd off) runs rows in chunks of at most this many tokens; rows never interact, so the
    # outputs are the same and the high-water mark is bounded (the Transformer's 4x-wide FFN activations at
    # B=32, T=2048: 976 -> 281 MB). 0: never chunk.
    "infer_chunk_tokens": inspect.Parameter(
        "infer_chunk_tokens", inspect.Parameter.KEYWORD_ONLY, default=16384, annotation=int
    ),
}


def encoder_options(name: str) -> dict[str, inspect.Parameter]:
    """The keyword arguments ``build_encoder`` takes for an encoder, besides d_model and causal: its
    constructor's, then the harness's (``HARNESS_OPTIONS``)."""
    params = inspect.signature(encoder_class(name).__init__).parameters
    own = {k: p for k, p in params.items() if k not in ("self", "d_model", "causal")}
    return {**own, **HARNESS_OPTIONS}


_ROW_CHUNKED: dict[type, type] = {}


def row_chunked(cls: type[nn.Module]) -> type[nn.Module]:
    """``cls`` whose forward runs in row chunks of ``infer_chunk_tokens`` tokens when autograd is off
    (``models.chunking``): a subclass, so weights, attributes and ``isinstance`` stay the encoder's."""
    if cls not in _ROW_CHUNKED:
        from models.chunking import in_row_chunks

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return in_row_chunks(super(chunked, self).forward, x, mask, self.infer_chunk_tokens)

        chunked = type(cls.__name__, (cls,), {"forward": forward, "__doc__": cls.__doc__})
        _ROW_CHUNKED[cls] = chunked
    return _ROW_CHUNKED[cls]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def width_for_budget(name: str, param_budget: int, causal: bool = False, factory=None, **options) -> dict:
    """The widths (``d_model``, and the encoder's ``fine_width`` where it names one) that size encoder ``name``
    with ``options`` to ``param_budget`` parameters within 5%, in the steps its ``width_multiple`` allows;
    ``factory(d_model=..., causal=..., **options)`` is what is counted (default: the encoder itself; an
    encoder-decoder counts both). The one width solver of the package (``models.budget`` does the search)."""
    from models.budget import solve_for_budget

    cls = encoder_class(name)
    if factory is None:
        options = {k: v for k, v in options.items() if k not in HARNESS_OPTIONS}
    factory = factory or cls
    # a solve counts dozens of meta-device models (0.5 s for a Transformer): once per process and size
    key = (_factory_key(factory), param_budget, causal, json.dumps(options, sort_keys=True, default=str))
    if key not in _WIDTHS:
        step = cls.width_multiple(causal=causal, **options) if hasattr(cls, "width_multiple") else 1
        _WIDTHS[key] = solve_for_budget(
            factory, param_budget, step, getattr(cls, "fine_width", None), causal=causal, **options
        )
    return dict(_WIDTHS[key])


_WIDTHS: dict[tuple, dict] = {}


def fixed_width(
    name: str,
    d_model: int | None = None,
    param_budget: int | None = None,
    causal: bool = False,
    factory=None,
    **options,
):
    """``build_encoder``'s arguments with the width fixed: solved from ``param_budget`` (once per process, for
    ``factory`` as in ``width_for_budget``) when no ``d_model`` is given, so that every build from them (in
    another process, in each fine-tuning arm) makes the very same model without solving again."""
    if d_model is None and param_budget is not None:
        options.update(width_for_budget(name, param_budget, causal=causal, factory=factory, **options))
    elif d_model is not None:
        options["d_model"] = d_model
    return {"name": name, "causal": causal, **options}


def _factory_key(factory) -> tuple:
    """What identifies a factory across calls: the callable, or a partial's callable and bound arguments."""
    if isinstance(factory, functools.partial):
        return (factory.func, factory.args, tuple(sorted(factory.keywords.items())))
    return (factory,)


# settings many encoders share, checked once here for every encoder that takes them
COMMON_CHECKS = {
    "n_layers": (lambda v: v >= 1, "must be at least 1"),
    "dropout": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "infer_chunk_tokens": (lambda v: v >= 0, "must be >= 0 (0: never chunk)"),
}


def _check_common(name: str, options: dict) -> None:
    for key, param in encoder_options(name).items():
        if key in COMMON_CHECKS:
            value = options.get(key, param.default)
            ok, why = COMMON_CHECKS[key]
            if not ok(value):
                raise ValueError(f"{key}={value} {why}")


def build_encoder(
    name: str,
    d_model: int | None = None,
    causal: bool = False,
    param_budget: int | None = None,
    **options,
) -> nn.Module:
    """Build encoder ``name``, after the checks of the settings it shares with other encoders
    (``COMMON_CHECKS``: an encoder file checks only its own), with the harness's row-chunked inference.

    The width is ``d_model`` when given; else it is solved from ``param_budget``
    (see ``models.budget``); else it is the encoder's default. Depth and the other
    options stay as given.
    """
    cls = encoder_class(name)
    for size, value in (("d_model", d_model), ("param_budget", param_budget)):
        if value is not None and value < 1:
            raise ValueError(f"{size}={value} must be positive")
    unknown = set(options) - set(encoder_options(name))
    if unknown:
        raise ValueError(
            f"{name} takes no option {', '.join(sorted(unknown))}; its options are {', '.join(encoder_options(name))}"
        )
    _check_common(name, options)
    harness = {k: options.pop(k, p.default) for k, p in HARNESS_OPTIONS.items()}
    arguments = fixed_width(name, d_model, param_budget, causal, **options)
    del arguments["name"]
    encoder = row_chunked(cls)(**arguments)
    encoder.infer_chunk_tokens = harness["infer_chunk_tokens"]
    return encoder
