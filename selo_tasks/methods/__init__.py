"""SeLo methods: v1 (multi-scale windows + median) and v2 (likelihood expansion + Gaussian)."""

from __future__ import annotations

from ...errors import ParameterError
from ...pipeline.windows import parse_scales
from .base import MapInputs, Method, Refinement
from .v1 import V1
from .v2 import V2

__all__ = ["MapInputs", "Method", "Refinement", "V1", "V2", "METHODS", "get_method"]

METHODS = {"v1": V1, "v2": V2}
MAX_SEED = 2**63 - 1


def get_method(
    name: str | Method, *, scales: tuple[int, ...] | str | None = None, seed: int | None = None
) -> Method:
    """The method called ``name`` (``v1`` or ``v2``) with its options.

    An option that does not apply to the method is an error, not silently ignored:
    ``scales`` are v1's window sizes (v2's stage-1 windows are always 512), ``seed``
    drives v2's query word shuffles (v1 has no randomness)."""
    if isinstance(name, Method):
        if scales is not None or seed is not None:
            raise ParameterError("pass scales and seed to get_method with a method name")
        return name
    if name == "v1":
        if seed is not None:
            raise ParameterError("--seed applies to v2 only (v1 has no random step); leave it out")
        return V1(scales=parse_scales(scales)) if scales is not None else V1()
    if name == "v2":
        if scales is not None:
            raise ParameterError(
                "--scales applies to v1 only (v2's first-pass windows are 512 px); leave it out"
            )
        if seed is None:
            return V2()
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ParameterError(f"--seed must be a whole number from 0 to 2**63 - 1, got {seed}")
        return V2(seed=seed)
    raise ParameterError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
