"""SeLo methods: v1 (multi-scale windows + median) and v2 (likelihood expansion + Gaussian).

The names and defaults are here; the methods themselves (which import dask) are imported
on first use, so that the command line lists the names without loading them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ...errors import ParameterError

__all__ = [
    "DEFAULT_METHOD",
    "DEFAULT_SEED",
    "MAX_SEED",
    "METHODS",
    "MapInputs",
    "Method",
    "Refinement",
    "V1",
    "V2",
    "get_method",
]

METHODS = {"v1": "V1", "v2": "V2"}
"""The methods by name: the class of each is in the module of the method's name."""
DEFAULT_METHOD = "v1"
DEFAULT_SEED = 0  # v2's query word shuffles
MAX_SEED = 2**63 - 1

if TYPE_CHECKING:  # pragma: no cover
    from .base import MapInputs, Method, Refinement
    from .v1 import V1
    from .v2 import V2

_LAZY = {
    "MapInputs": "base",
    "Method": "base",
    "Refinement": "base",
    **{cls: name for name, cls in METHODS.items()},
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_method(
    name: str | Method, *, scales: tuple[int, ...] | str | None = None, seed: int | None = None
) -> Method:
    """The method called ``name`` (``v1`` or ``v2``) with its options.

    An option that does not apply to the method is an error, not silently ignored:
    ``scales`` are v1's window sizes (v2's stage-1 windows are always 512), ``seed``
    drives v2's query word shuffles (v1 has no randomness)."""
    from ...pipeline.windows import parse_scales
    from .base import Method

    if isinstance(name, Method):
        if scales is not None or seed is not None:
            raise ParameterError("pass scales and seed to get_method with a method name")
        return name
    if not isinstance(name, str) or name not in METHODS:
        raise ParameterError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    if name == "v1":
        if seed is not None:
            raise ParameterError("--seed applies to v2 only (v1 has no random step); leave it out")
        return _class(name)(scales=parse_scales(scales)) if scales is not None else _class(name)()
    if scales is not None:
        raise ParameterError(
            "--scales applies to v1 only (v2's first-pass windows are 512 px); leave it out"
        )
    if seed is None:
        return _class(name)()
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ParameterError(f"--seed must be a whole number from 0 to 2**63 - 1, got {seed!r}")
    return _class(name)(seed=seed)


def _class(name: str) -> type[Method]:
    return __getattr__(METHODS[name])
