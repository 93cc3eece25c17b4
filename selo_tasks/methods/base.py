"""What a SeLo method is: window proposal, query embedding, map finishing.

The run machinery (Cut → Sim → Gnt → Flt) is shared and driven in one place
(:mod:`selo.selo_tasks.driver`); a method only says which windows to embed for a
scene, how to embed a query, which extra windows to embed once the first scores
are known, which windows feed the mean map, and which filter finishes it. A third
method is a new module registered in :data:`METHODS`, not a branch in every stage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import dask.array as da
import numpy as np

from ...models import Encoder
from ...pipeline import flt
from ...pipeline.gnt import CellMap
from ...pipeline.windows import WindowTable

__all__ = ["Method", "MapInputs", "Refinement"]


@dataclass(frozen=True, eq=False)
class MapInputs:
    """The windows whose per-pixel mean score is a map, in accumulation order.

    ``windows`` (N, 4) int64 (r0, r1, c0, c1); ``scales`` (N,) the scale (or
    box side) that produced each; ``scores`` (N,) float64 cosine similarities.
    """

    windows: np.ndarray
    scales: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True, eq=False)
class Refinement:
    """A second pass: the first-pass windows kept (indexes, in order) and the extra
    windows to embed and score."""

    kept: np.ndarray
    extra: WindowTable


class Method(ABC):
    """A SeLo method. Subclasses are small frozen configurations."""

    name: str
    #: the finishing filter (:mod:`selo.pipeline.flt`): "median" or "gaussian"
    filter: flt.FilterKind
    #: cells no window covers take part in the min-max normalisation as 0 (the
    #: published rule); without data the run leaves them out instead
    uncovered_counts: bool = True

    @abstractmethod
    def scene_windows(self, height: int, width: int) -> WindowTable:
        """Windows embedded for every query of a scene (query-independent, cached)."""

    def query_vector(self, encoder: Encoder, query: str) -> np.ndarray:
        """The query's unit-length text embedding (D,)."""
        return encoder.encode_texts([query])[0]

    def refine(self, table: WindowTable, scores: np.ndarray) -> Refinement | None:
        """The second pass once the scene windows are scored (None: no second pass)."""
        return None

    def contributions(
        self,
        table: WindowTable,
        scores: np.ndarray,
        refinement: Refinement | None = None,
        extra_scores: np.ndarray | None = None,
    ) -> MapInputs:
        """The windows and scores whose per-pixel mean is the map."""
        return MapInputs(table.windows, table.scales, np.asarray(scores, dtype=np.float64))

    def finish(
        self, u8: CellMap, chunks, *, shape: tuple[int, int], valid: da.Array | None = None
    ) -> da.Array:
        """The lazy finished SeLo map from the quantised cells (``u8`` may be Delayed)."""
        return flt.finish(u8, self.filter, chunks, shape=shape, valid=valid)

    def finish_array(self, u8: CellMap, valid: np.ndarray | None = None) -> np.ndarray:
        """The finished map of an in-memory scene, as one block in this thread."""
        h, w = u8.grid.height, u8.grid.width
        return flt.finished_block(u8, self.filter, 0, h, 0, w, valid)

    def describe(self) -> dict:
        """Parameters for run.json."""
        return {"name": self.name}
