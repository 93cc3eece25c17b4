"""Flt: the finished SeLo map, from the quantised map's cells, exactly.

``finish(cells, kind, chunks, shape=, valid=)`` is the lazy finished map and
``finished_block(cells, kind, r0, r1, c0, c1, valid)`` one block of it in memory: both
equal the same window of the whole-map OpenCV call — ``cv2.medianBlur(U, 251)`` (v1) or
``cv2.GaussianBlur(U, (255, 255), 0)`` (v2) of ``U = where(valid, cells, 0)`` — bit for
bit, whatever the chunking. Each block is computed from the cells (the map before Flt
is constant on them: the cell kernels of :mod:`selo.pipeline.filters`, about 10x faster
than the whole-map OpenCV call for the median, 20x for the Gaussian); a block whose
neighbourhood holds nodata, or whose cells are too fine for that to pay, is expanded,
masked and filtered by OpenCV with its own border rule at the true edges.

:func:`filter_array` is the same filter of a uint8 dask array of pixels: one
``map_overlap`` call, blocks overlapping by the kernel's radius and ``boundary="none"``,
so OpenCV's own border rule acts at the true edges.
"""

from __future__ import annotations

from typing import Literal

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from ..errors import ParameterError
from .filters import FILTERS, Filter, cells_block, check_ksize, halo
from .gnt import CellMap

__all__ = ["FilterKind", "KSIZES", "filter_array", "finish", "finished_block"]

FilterKind = Literal["median", "gaussian"]
KSIZES: dict[str, int] = {kind: f.ksize for kind, f in FILTERS.items()}


def _filter(kind: str, ksize: int | None) -> tuple[Filter, int]:
    """The table's row of ``kind`` and the kernel size (its own unless given)."""
    if kind not in FILTERS:
        raise ParameterError(f"unknown finishing filter {kind!r}; use one of {', '.join(FILTERS)}")
    f = FILTERS[kind]
    k = f.ksize if ksize is None else ksize
    check_ksize(k)
    return f, k


def finish(
    cells: CellMap | Delayed,
    kind: FilterKind,
    chunks,
    *,
    shape: tuple[int, int] | None = None,
    valid: da.Array | None = None,
    ksize: int | None = None,
) -> da.Array:
    """The lazy finished map in ``chunks`` (task names ``flt-<kind>-cells-…``).

    ``U = cells.to_array()``, or ``np.where(valid, cells.to_array(), 0)`` with a boolean
    nodata mask ``valid`` (dask or numpy, any chunking; blocks whose halo it touches go
    through OpenCV). ``cells`` may be a dask Delayed of a CellMap (computed with the
    graph); the map's ``shape`` must then be given."""
    f, k = _filter(kind, ksize)
    if isinstance(cells, Delayed):
        if shape is None:
            raise ParameterError("a Delayed cell map needs the map's shape")
    elif not isinstance(cells, CellMap):
        raise ParameterError(f"expected a CellMap, got {type(cells).__name__}")
    elif cells.values.dtype != np.uint8 or cells.values.shape != cells.grid.shape:
        raise ParameterError(
            f"expected uint8 cell values of shape {cells.grid.shape}, "
            f"got {cells.values.dtype} {cells.values.shape} (quantize the mean map first)"
        )
    else:
        shape = (cells.grid.height, cells.grid.width)
    shape = tuple(shape)
    try:
        chunks = da.core.normalize_chunks(chunks, shape, dtype=np.uint8)
    except (ValueError, TypeError) as err:
        raise ParameterError(f"bad chunks {chunks!r} for a {shape} map: {err}") from None
    if valid is not None:
        valid = da.asarray(valid)
        if valid.shape != shape or valid.dtype != bool:
            raise ParameterError(
                f"valid must be a boolean mask of shape {shape}, got {valid.dtype} {valid.shape}"
            )
    name = f"flt-{kind}-cells-" + tokenize(cells, chunks, k, valid)
    graph, deps = _cells_graph(name, f, cells, chunks, valid, k)
    return da.Array(
        HighLevelGraph.from_collections(name, graph, dependencies=deps),
        name,
        chunks,
        dtype=np.uint8,
        meta=np.empty((0, 0), dtype=np.uint8),
    )


def _cells_graph(name, f: Filter, cells, chunks, valid, ksize):
    """One task per output block, all sharing the cell map (one key); with a mask each
    also receives the mask blocks under its halo and their "all valid" flags (one
    cheap reduction task per mask block)."""
    shape = (sum(chunks[0]), sum(chunks[1]))
    rows, cols = (np.cumsum((0, *c)) for c in chunks)
    if isinstance(cells, Delayed):  # computed with the graph, under its own key
        cells_key, graph, deps = cells.key, {}, [cells]
    else:
        cells_key = f"{name}-map"
        graph, deps = {cells_key: cells}, []
    if valid is not None:
        flag_name = f"{name}-valid-all"
        vrows, vcols = (np.cumsum((0, *c)) for c in valid.chunks)
        for i in range(len(valid.chunks[0])):
            for j in range(len(valid.chunks[1])):
                graph[(flag_name, i, j)] = (np.all, (valid.name, i, j))
        deps.append(valid)
    for bi in range(len(chunks[0])):
        for bj in range(len(chunks[1])):
            block = (int(rows[bi]), int(rows[bi + 1]), int(cols[bj]), int(cols[bj + 1]))
            around = halo(block, ksize, shape)
            task = (cells_block, f, cells_key, block, around, ksize)
            if valid is not None:
                vi = range(_first(vrows, around[0]), _last(vrows, around[1]))
                vj = range(_first(vcols, around[2]), _last(vcols, around[3]))
                flags = [(flag_name, i, j) for i in vi for j in vj]
                parts = [[(valid.name, i, j) for j in vj] for i in vi]
                task += (flags, parts, (int(vrows[vi.start]), int(vcols[vj.start])))
            graph[(name, bi, bj)] = task
    return graph, deps


def _first(bounds: np.ndarray, start: int) -> int:
    return int(np.searchsorted(bounds, start, side="right")) - 1


def _last(bounds: np.ndarray, stop: int) -> int:
    return int(np.searchsorted(bounds, stop, side="left"))


def finished_block(
    cells: CellMap,
    kind: FilterKind,
    r0: int,
    r1: int,
    c0: int,
    c1: int,
    valid: np.ndarray | None = None,
    *,
    ksize: int | None = None,
) -> np.ndarray:
    """Pixels [r0:r1, c0:c1] of the finished map, in memory.

    ``valid`` is None (every pixel has data) or the has-data mask of the block's
    :func:`~selo.pipeline.filters.halo`.
    """
    f, k = _filter(kind, ksize)
    block = (r0, r1, c0, c1)
    around = halo(block, k, (cells.grid.height, cells.grid.width))
    if valid is None:
        return cells_block(f, cells, block, around, k)
    mask = np.asarray(valid, dtype=bool)
    if mask.shape != (around[1] - around[0], around[3] - around[2]):
        raise ParameterError(
            f"the has-data mask must cover the block's halo {around}, got {mask.shape}"
        )
    return cells_block(f, cells, block, around, k, [bool(mask.all())], [[mask]], around[::2])


def filter_array(u: da.Array, kind: FilterKind, ksize: int | None = None) -> da.Array:
    """OpenCV's whole-map ``kind`` filter of a 2-D uint8 dask array, lazily, chunk by chunk
    (task names ``flt-<kind>-…``). The Gaussian's sigma is OpenCV's default for the size:
    0.3·((ksize − 1)/2 − 1) + 0.8."""
    f, k = _filter(kind, ksize)
    if u.ndim != 2 or u.dtype != np.uint8:
        raise ParameterError(f"expected a 2-D uint8 map, got {u.ndim}-D {u.dtype}")
    # An axis shorter than the overlap becomes one chunk; a one-chunk axis needs
    # no overlap. (dask merges other chunks smaller than the depth by itself.)
    radius = k // 2
    u = u.rechunk({ax: -1 for ax in (0, 1) if u.shape[ax] <= radius})
    depth = {ax: (0 if len(u.chunks[ax]) == 1 else radius) for ax in (0, 1)}
    return u.map_overlap(
        f.whole,
        depth=depth,
        boundary="none",
        dtype=np.uint8,
        meta=np.empty((0, 0), dtype=np.uint8),
        token=f"flt-{kind}",
        ksize=k,
    )
