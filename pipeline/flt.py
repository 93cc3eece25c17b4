"""Flt: the finished SeLo map, from the quantised map's cells, exactly.

``finish(cells, kind, chunks, shape=, valid=)`` is the lazy finished map and
``finished_block(cells, kind, r0, r1, c0, c1, valid)`` one block of it in memory: both
equal the same window of the whole-map OpenCV call — ``cv2.medianBlur(U, 251)`` (v1) or
``cv2.GaussianBlur(U, (255, 255), 0)`` (v2) of ``U = where(valid, cells, 0)`` — bit for
bit, whatever the chunking. Each block is computed from the cells (the map before Flt
is constant on them: :mod:`selo.pipeline.filters`, about 10x faster than the whole-map
OpenCV call for the median, 20x for the Gaussian); a block whose neighbourhood holds
nodata, or whose cells are too fine for that to pay, is expanded, masked and filtered
by OpenCV with its own border rule at the true edges.
"""

from __future__ import annotations

from typing import Literal

import dask.array as da
import numpy as np

from ..errors import ParameterError
from . import filters
from .gnt import CellMap

__all__ = ["FilterKind", "KSIZES", "finish", "finished_block"]

FilterKind = Literal["median", "gaussian"]
KSIZES: dict[str, int] = {"median": filters.MEDIAN_KSIZE, "gaussian": filters.GAUSSIAN_KSIZE}
_ROUTES = {"median": filters.median_blur_cells, "gaussian": filters.gaussian_blur_cells}
_BLOCKS = {"median": filters._MEDIAN, "gaussian": filters._GAUSSIAN}


def _ksize(kind: str, ksize: int | None) -> int:
    if kind not in KSIZES:
        raise ParameterError(f"unknown finishing filter {kind!r}; use one of {', '.join(KSIZES)}")
    return KSIZES[kind] if ksize is None else ksize


def finish(
    cells,
    kind: FilterKind,
    chunks,
    *,
    shape: tuple[int, int],
    valid: da.Array | None = None,
    ksize: int | None = None,
) -> da.Array:
    """The lazy finished map of ``shape`` in ``chunks`` (task names ``flt-<kind>-cells-…``);
    ``cells`` is a :class:`~selo.pipeline.gnt.CellMap` or a dask Delayed of one."""
    k = _ksize(kind, ksize)
    return _ROUTES[kind](cells, chunks, valid=valid, ksize=k, shape=tuple(shape))


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
    neighbourhood: rows ``max(r0 - k//2, 0)`` to ``min(r1 + k//2, H)``, same for columns.
    """
    k = _ksize(kind, ksize)
    filters._check_ksize(k)
    h, w = cells.grid.height, cells.grid.width
    half = k // 2
    halo = (max(r0 - half, 0), min(r1 + half, h), max(c0 - half, 0), min(c1 + half, w))
    if valid is None:
        return filters._cells_task(_BLOCKS[kind], cells, (r0, r1, c0, c1), halo, k)
    mask = np.asarray(valid, dtype=bool)
    if mask.shape != (halo[1] - halo[0], halo[3] - halo[2]):
        raise ParameterError(
            f"the has-data mask must cover the block's halo {halo}, got {mask.shape}"
        )
    return filters._cells_task(
        _BLOCKS[kind], cells, (r0, r1, c0, c1), halo, k, [bool(mask.all())], [[mask]], halo[::2]
    )
