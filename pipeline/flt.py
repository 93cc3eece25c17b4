"""Flt: the finished SeLo map, block by block, from the quantised map's cells.

``finish(cells, kind, chunks, valid)`` is the lazy finished map: each block is
computed by :func:`finished_block` from the cell map (a
:class:`~selo.pipeline.gnt.CellMap`, or a Delayed one) and, where the scene has
nodata, from the has-data mask around the block. Every block equals the same
window of the whole-map OpenCV call — ``cv2.medianBlur(U, 251)`` (v1) or
``cv2.GaussianBlur(U, (255, 255), 0)`` (v2) of ``U = where(valid, cells, 0)`` —
bit for bit: the block's neighbourhood within half a kernel is expanded from the
cells, the filter runs on it with OpenCV's own border rule at the true map edges
(:mod:`selo.pipeline.filters`), and the block is cut out.
"""

from __future__ import annotations

from typing import Literal

import dask
import dask.array as da
import numpy as np

from selo.errors import ParameterError
from selo.pipeline.filters import GAUSSIAN_KSIZE, MEDIAN_KSIZE, filter_block
from selo.pipeline.gnt import CellMap

__all__ = ["FilterKind", "KSIZES", "finish", "finished_block"]

FilterKind = Literal["median", "gaussian"]
KSIZES: dict[str, int] = {"median": MEDIAN_KSIZE, "gaussian": GAUSSIAN_KSIZE}


class _Mask:
    """The scene's lazy has-data mask, held in a plain object so that each block task
    reads only the window it needs (with its halo), not the mask's chunks."""

    def __init__(self, valid: da.Array) -> None:
        self.valid = valid
        self.token = dask.base.tokenize(valid.name)

    def __dask_tokenize__(self) -> str:
        return self.token

    def window(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        return np.asarray(self.valid[r0:r1, c0:c1].compute(scheduler="sync"), dtype=bool)


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
    """Pixels [r0:r1, c0:c1] of the finished map.

    ``valid`` is None (every pixel has data) or the has-data mask of the block's
    neighbourhood: rows ``max(r0 - k//2, 0)`` to ``min(r1 + k//2, H)``, same for columns.
    """
    k = KSIZES[kind] if ksize is None else ksize
    height, width = cells.grid.height, cells.grid.width
    half = k // 2
    a0, a1 = max(r0 - half, 0), min(r1 + half, height)
    b0, b1 = max(c0 - half, 0), min(c1 + half, width)
    u = cells.block(a0, a1, b0, b1)
    if valid is not None:
        u = np.where(valid, u, np.uint8(0))
    out = filter_block(u, kind, k)
    return np.ascontiguousarray(out[r0 - a0 : r1 - a0, c0 - b0 : c1 - b0])


def finish(
    cells: CellMap | dask.delayed,
    kind: FilterKind,
    chunks: tuple,
    *,
    shape: tuple[int, int],
    valid: da.Array | None = None,
    ksize: int | None = None,
) -> da.Array:
    """The lazy finished map of ``shape``, in ``chunks`` (task names start with ``flt-``)."""
    if kind not in KSIZES:
        raise ParameterError(f"unknown finishing filter {kind!r}; use one of {', '.join(KSIZES)}")
    k = KSIZES[kind] if ksize is None else ksize
    if k < 1 or k % 2 == 0:
        raise ParameterError(f"kernel size must be a positive odd number, got {k}")
    chunks = da.core.normalize_chunks(chunks, shape)
    mask = None if valid is None else _Mask(valid)
    return da.map_blocks(
        _block,
        cells,
        kind,
        k,
        mask,
        chunks=chunks,
        dtype=np.uint8,
        meta=np.empty((0, 0), dtype=np.uint8),
        name=f"flt-{kind}-{dask.base.tokenize(cells, kind, k, mask, chunks)}",
    )


def _block(cells: CellMap, kind: str, k: int, mask: _Mask | None, block_info=None) -> np.ndarray:
    (r0, r1), (c0, c1) = block_info[None]["array-location"]
    valid = None
    if mask is not None:
        half = k // 2
        h, w = cells.grid.height, cells.grid.width
        valid = mask.window(max(r0 - half, 0), min(r1 + half, h), max(c0 - half, 0), min(c1 + half, w))
    return finished_block(cells, kind, r0, r1, c0, c1, valid, ksize=k)
