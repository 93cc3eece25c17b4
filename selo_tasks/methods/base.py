"""What a SeLo method is: window proposal, query embedding, map finishing.

The run machinery (Cut → Sim → Gnt → Flt) is shared; a method only says
which windows to embed for a scene, how to embed a query, which extra
windows to embed once the first scores are known, which windows feed the
mean map, and which filter finishes it. A third method is a new module
registered in :data:`METHODS`, not a branch in every stage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import dask.array as da
import numpy as np

from selo.models import Encoder
from selo.pipeline.windows import WindowTable

__all__ = ["Method", "MapInputs"]


@dataclass(frozen=True, eq=False)
class MapInputs:
    """The windows whose per-pixel mean score is a map, in accumulation order.

    ``windows`` (N, 4) int64 (r0, r1, c0, c1); ``scales`` (N,) the scale (or
    box side) that produced each; ``scores`` (N,) float64 cosine similarities.
    """

    windows: np.ndarray
    scales: np.ndarray
    scores: np.ndarray


class Method(ABC):
    """A SeLo method. Subclasses are small frozen configurations."""

    name: str
    #: cells no window covers take part in the min-max normalisation as 0 (the
    #: published rule); without data the run leaves them out instead
    uncovered_counts: bool = True

    @abstractmethod
    def scene_windows(self, height: int, width: int) -> WindowTable:
        """Windows embedded for every query of a scene (query-independent, cached)."""

    def query_vector(self, encoder: Encoder, query: str) -> np.ndarray:
        """The query's unit-length text embedding (D,)."""
        return encoder.encode_texts([query])[0]

    def refine(self, table: WindowTable, scores: np.ndarray) -> WindowTable | None:
        """Extra windows to embed once the scene windows are scored (None: no second pass)."""
        return None

    def contributions(
        self,
        table: WindowTable,
        scores: np.ndarray,
        extra: WindowTable | None = None,
        extra_scores: np.ndarray | None = None,
    ) -> MapInputs:
        """The windows and scores whose per-pixel mean is the map."""
        return MapInputs(table.windows, table.scales, np.asarray(scores, dtype=np.float64))

    @abstractmethod
    def finish(self, u8: da.Array) -> da.Array:
        """The filter that turns the quantised mean map into the SeLo map."""

    def finish_array(self, u8: np.ndarray) -> np.ndarray:
        """:meth:`finish` of an in-memory map, as one block in this thread."""
        return self.finish(da.from_array(u8, chunks=u8.shape)).compute(scheduler="sync")

    def describe(self) -> dict:
        """Parameters for run.json."""
        return {"name": self.name}
