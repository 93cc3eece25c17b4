"""SeLo methods: v1 (multi-scale windows + median) and v2 (likelihood expansion + Gaussian)."""

from __future__ import annotations

from selo.errors import ParameterError
from selo.selo_tasks.methods.base import MapInputs, Method
from selo.selo_tasks.methods.v1 import V1
from selo.selo_tasks.methods.v2 import V2

__all__ = ["MapInputs", "Method", "V1", "V2", "METHODS", "get_method"]

METHODS = {"v1": V1, "v2": V2}


def get_method(name: str, *, scales: tuple[int, ...] | None = None, seed: int = 0) -> Method:
    """The method called ``name`` (``v1`` or ``v2``) with its options."""
    if name == "v1":
        return V1(scales=scales) if scales else V1()
    if name == "v2":
        return V2(seed=seed)
    raise ParameterError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
