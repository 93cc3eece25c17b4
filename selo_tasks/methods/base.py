"""What a SeLo method is: window proposal, query embedding, map finishing.

The run machinery (Cut → Sim → Gnt → Flt) is shared; a method only says
which windows to embed for a scene, how to embed a query, which extra
windows to embed once the first scores are known, which windows feed the
mean map, and which filter finishes it. A third method is a new module
registered in :data:`METHODS`, not a branch in every stage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import dask.array as da
import numpy as np

from selo.models import Encoder
from selo.pipeline.windows import WindowTable

__all__ = ["Method", "Contributions"]

Contributions = tuple[np.ndarray, np.ndarray]  # (N, 4) windows, (N,) scores, in accumulation order


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
    ) -> Contributions:
        """The windows and scores whose per-pixel mean is the map."""
        return table.windows, scores

    @abstractmethod
    def finish(self, u8: da.Array) -> da.Array:
        """The filter that turns the quantised mean map into the SeLo map."""

    def describe(self) -> dict:
        """Parameters for run.json."""
        return {"name": self.name}
