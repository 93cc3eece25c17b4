"""SeLo v1 (TGRS 2022): multi-scale sliding windows, mean map, 251×251 median."""

from __future__ import annotations

from dataclasses import dataclass

from ...pipeline.flt import KSIZES
from ...pipeline.windows import DEFAULT_OFFSETS, DEFAULT_SCALES, WindowTable, window_table
from .base import Method

__all__ = ["V1"]


@dataclass(frozen=True)
class V1(Method):
    """Windows of every scale at offsets 0 and s/2, stride s; median-filtered mean map."""

    scales: tuple[int, ...] = DEFAULT_SCALES
    name: str = "v1"
    filter: str = "median"
    # v1 windows cover every pixel; cells left uncovered can only be nodata
    # (windows without data are not scored), so they stay out of the min-max
    uncovered_counts: bool = False

    def scene_windows(self, height: int, width: int) -> WindowTable:
        return window_table(height, width, self.scales, DEFAULT_OFFSETS)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "scales": list(self.scales),
            "filter": f"median {KSIZES['median']}",
        }
