"""Gnt: the per-pixel mean of window scores, on the grid of window edges.

The mean map is piecewise constant on the grid formed by every window's row
and column edges (a few hundred lines even for a 10k×10k scene), so sums and
counts are accumulated per *cell* of that grid, then each output chunk is
expanded by repeating cells: O(windows × cells per window + pixels), with
one memory write per pixel and no per-pixel Python loop.

Scores are added to each cell window by window in table order, which is the
order in which the per-pixel reference (``total[r0:r1, c0:c1] += s``) adds
them, so every pixel's float64 sum, count and mean are bit-identical to it.
Normalisation and quantisation are per cell too (the min and max over
pixels are the min and max over non-empty cells).
"""

from __future__ import annotations

from dataclasses import dataclass

import dask.array as da
import numpy as np

__all__ = ["CellGrid", "CellMap", "accumulate", "quantize", "expand_lazy"]


@dataclass(frozen=True, eq=False)
class CellGrid:
    """Cells between consecutive sorted row edges and column edges of a scene."""

    height: int
    width: int
    row_edges: np.ndarray  # (nr + 1,) from 0 to height
    col_edges: np.ndarray  # (nc + 1,) from 0 to width

    @classmethod
    def from_windows(cls, height: int, width: int, windows: np.ndarray) -> CellGrid:
        w = np.asarray(windows, dtype=np.int64).reshape(-1, 4)
        rows = np.unique(np.concatenate(([0, height], w[:, 0], w[:, 1])))
        cols = np.unique(np.concatenate(([0, width], w[:, 2], w[:, 3])))
        return cls(height, width, rows, cols)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.row_edges) - 1, len(self.col_edges) - 1

    def row_runs(self, start: int, stop: int) -> tuple[int, int, np.ndarray]:
        """Cell rows ``first:last`` over pixel rows [start, stop) and the pixel rows of each."""
        first = int(np.searchsorted(self.row_edges, start, side="right")) - 1
        last = int(np.searchsorted(self.row_edges, stop, side="left"))
        counts = np.diff(np.clip(self.row_edges[first : last + 1], start, stop))
        return first, last, counts

    def cell_cols(self, start: int, stop: int) -> np.ndarray:
        """Cell index of each pixel column in [start, stop)."""
        return np.searchsorted(self.col_edges, np.arange(start, stop), side="right") - 1


@dataclass(frozen=True, eq=False)
class CellMap:
    """Per-cell values of a map on a :class:`CellGrid` (mean, or quantised uint8)."""

    grid: CellGrid
    values: np.ndarray  # grid.shape
    covered: np.ndarray  # bool, grid.shape: at least one window covers the cell

    def block(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """The pixels [r0:r1, c0:c1] of the map, expanded from the cells.

        Columns are gathered on the few cell rows involved, then each cell row is
        repeated for the pixel rows it covers (a row copy per pixel row).
        """
        first, last, counts = self.grid.row_runs(r0, r1)
        return np.repeat(self.values[first:last][:, self.grid.cell_cols(c0, c1)], counts, axis=0)

    def to_array(self) -> np.ndarray:
        """The whole map as a numpy array (only for small scenes and tests)."""
        return self.block(0, self.grid.height, 0, self.grid.width)

    def to_zarr(self, group) -> None:
        """Store the map exactly, as its cells: ``values``, ``covered``, ``row_edges``,
        ``col_edges`` in a zarr group (kilobytes, whatever the scene size)."""
        for name, arr in (
            ("values", self.values),
            ("covered", self.covered),
            ("row_edges", self.grid.row_edges),
            ("col_edges", self.grid.col_edges),
        ):
            group.create_array(name, shape=arr.shape, dtype=arr.dtype)[...] = arr
        group.attrs.update(
            {
                "kind": "cell map",
                "shape": [self.grid.height, self.grid.width],
                "read": "selo.pipeline.gnt.CellMap.from_zarr(group).to_array() "
                "or expand_lazy(CellMap.from_zarr(group), chunks)",
            }
        )

    @classmethod
    def from_zarr(cls, group) -> CellMap:
        """The map stored by :meth:`to_zarr`."""
        height, width = group.attrs["shape"]
        grid = CellGrid(int(height), int(width), group["row_edges"][:], group["col_edges"][:])
        return cls(grid, group["values"][:], group["covered"][:])


def accumulate(grid: CellGrid, windows: np.ndarray, scores: np.ndarray) -> CellMap:
    """Mean of the scores of the windows covering each cell (0 where none does)."""
    w = np.asarray(windows, dtype=np.int64).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(w) != len(s):
        raise ValueError(f"{len(w)} windows but {len(s)} scores")
    ri = np.searchsorted(grid.row_edges, w[:, :2])
    ci = np.searchsorted(grid.col_edges, w[:, 2:])
    total = np.zeros(grid.shape, dtype=np.float64)
    count = np.zeros(grid.shape, dtype=np.int64)
    for (a, b), (c, d), score in zip(ri.tolist(), ci.tolist(), s.tolist(), strict=True):
        total[a:b, c:d] += score
        count[a:b, c:d] += 1
    covered = count > 0
    mean = np.divide(total, count, out=np.zeros_like(total), where=covered)
    return CellMap(grid, mean, covered)


def quantize(mean: CellMap, *, uncovered_counts: bool = True) -> CellMap:
    """uint8 map U = floor(255 · (M - min M) / (max M - min M)); U = 0 when max = min.

    With ``uncovered_counts`` (the published rule) cells no window covers take
    part in the min and max with their value 0; otherwise (scenes with nodata)
    they are left out and get U = 0.
    """
    m = mean.values
    use = np.ones_like(mean.covered) if uncovered_counts else mean.covered
    if not use.any():
        return CellMap(mean.grid, np.zeros(m.shape, dtype=np.uint8), mean.covered)
    lo, hi = m[use].min(), m[use].max()
    if hi > lo:
        shifted = m - lo
        prob = np.clip(shifted / (hi - lo), 0.0, 1.0)
        u = np.asarray(255 * prob, dtype=np.uint8)
    else:
        u = np.zeros(m.shape, dtype=np.uint8)
    u[~use] = 0
    return CellMap(mean.grid, u, mean.covered)


def expand_lazy(cells: CellMap, chunks: int | tuple[int, int]) -> da.Array:
    """The map as a lazy dask array; each chunk is expanded from the cells on demand."""
    g = cells.grid
    return da.map_blocks(
        _expand_block,
        cells,
        chunks=da.core.normalize_chunks(chunks, (g.height, g.width)),
        dtype=cells.values.dtype,
        meta=np.empty((0, 0), dtype=cells.values.dtype),
        token="gnt",
    )


def _expand_block(cells: CellMap, block_info: dict | None = None) -> np.ndarray:
    (r0, r1), (c0, c1) = block_info[None]["array-location"]
    return cells.block(r0, r1, c0, c1)
