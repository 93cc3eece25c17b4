"""Small pictures of large rasters: decimated scenes and maps for overlays and regions.

One sampling rule everywhere: output pixel ``i`` of a side shrunk from ``size``
to ``out_size`` shows the source pixel under its centre,
``floor((i + 1/2) · size / out_size)`` (:func:`decimation_indices`). A file scene is
sampled by GDAL (from overviews when the file has them); any other scene array and
every map by indexing, chunk by chunk (:class:`RowSampler` as strips of a map go by).
The overviews of a map's GeoTIFF follow GDAL's own rule instead (:func:`overview_indices`).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Literal

import dask.array as da
import numpy as np
import xarray as xr

from ..errors import ParameterError
from .scene import scene_key
from .source import selection_of

__all__ = [
    "RowSampler",
    "decimate",
    "decimation_indices",
    "each_strip",
    "keep_preview",
    "kept_preview",
    "overview_indices",
    "preview_shape",
    "read_crop",
    "read_preview",
]

Map = np.ndarray | da.Array


def preview_shape(shape: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The (rows, cols) of ``shape`` shrunk so its longer side is at most ``max_side``:
    each side times ``min(1, max_side / longer side)``, rounded, at least 1."""
    if max_side < 1:
        raise ParameterError(f"max_side must be a positive number of pixels, got {max_side}")
    height, width = shape
    factor = min(1.0, max_side / max(height, width))
    return (max(1, round(height * factor)), max(1, round(width * factor)))


def decimation_indices(size: int, out_size: int) -> np.ndarray:
    """The source index that output index ``i`` samples when ``size`` pixels
    shrink to ``out_size``: the pixel under the output pixel's centre,
    ``floor((i + 1/2) * size / out_size)``."""
    return (np.arange(out_size) * 2 + 1) * size // (2 * out_size)


def overview_indices(size: int, out_size: int) -> np.ndarray:
    """The source index GDAL's nearest resampling takes for output index ``i`` when it
    builds an overview of ``out_size`` pixels from ``size`` (the previous level, or the map
    itself for the first): ``int(0.5 + i * (size / out_size))`` in double precision."""
    return np.minimum((0.5 + np.arange(out_size) * (size / out_size)).astype(np.int64), size - 1)


class RowSampler:
    """``map[rows][:, cols]`` of a map given top to bottom in strips: :meth:`add` returns
    the sampled rows a strip holds (``rows`` ascending), so that a small picture of a large
    map is made as its strips go by, with no copy larger than the picture's rows."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray) -> None:
        self.rows, self.cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        self._next = 0  # the index into rows of the next row to take

    def add(self, top: int, strip: np.ndarray) -> np.ndarray:
        """The sampled rows among the strip's rows ``top, top + 1, ...``."""
        end = int(np.searchsorted(self.rows, top + len(strip)))
        picked = self.rows[self._next : end] - top
        self._next = end
        out = np.empty((len(picked), len(self.cols)), strip.dtype)
        for i, r in enumerate(picked.tolist()):
            np.take(strip[r], self.cols, out=out[i])
        return out


def read_preview(scene: xr.DataArray, max_side: int = 2048, *, cache=None) -> np.ndarray:
    """A decimated ``(rows, cols, 3)`` uint8 RGB image of the scene for overlays.

    The shape is :func:`preview_shape`; pixels are those of the scene under each
    output pixel's centre. A file scene (or a window of one) is sampled by GDAL (using the file's
    overviews) and converted like the scene; other scenes are indexed lazily. With a
    :class:`~selo.pipeline.cache.Cache`, previews of file scenes are kept in it as PNG,
    keyed by the scene's content, bands, conversion and size: a 10k² scene takes seconds
    to decimate (every tile is decoded), its kept preview milliseconds to read."""
    out_shape = preview_shape((int(scene.sizes["y"]), int(scene.sizes["x"])), max_side)
    kept = kept_preview(scene, out_shape, cache) if cache is not None else None
    if kept is not None:
        return kept
    preview = _read_preview(scene, out_shape)
    if cache is not None:
        keep_preview(scene, preview, cache)
    return preview


def _preview_key(scene: xr.DataArray, cache) -> str | None:
    """The key a file scene's previews are kept under in ``cache`` (None: not a file scene)."""
    if selection_of(scene) is None:
        return None
    return scene_key(scene, cache).partition(":")[2]


def kept_preview(scene: xr.DataArray, out_shape: tuple[int, int], cache) -> np.ndarray | None:
    """The preview of a file scene kept in ``cache`` (None when there is none)."""
    key = _preview_key(scene, cache)
    return None if key is None else cache.get_preview(key, out_shape)


def keep_preview(scene: xr.DataArray, preview: np.ndarray, cache) -> None:
    """Keep a file scene's preview in ``cache``."""
    key = _preview_key(scene, cache)
    if key is not None:
        cache.put_preview(key, preview)


def _read_preview(scene: xr.DataArray, out_shape) -> np.ndarray:
    height, width = int(scene.sizes["y"]), int(scene.sizes["x"])
    selection = selection_of(scene)
    if selection is not None and selection.rows.step == selection.cols.step == 1:
        rgb, _ = selection(0, height, 0, width, out_shape=out_shape)  # GDAL's decimated read
        return rgb
    rows = decimation_indices(height, out_shape[0])
    cols = decimation_indices(width, out_shape[1])
    return np.ascontiguousarray(np.asarray(scene.data[rows][:, cols]))


def read_crop(
    scene: xr.DataArray, window: tuple[int, int, int, int], out_shape: tuple[int, int]
) -> np.ndarray:
    """The scene's pixels in ``window`` (r0, r1, c0, c1) as a ``(rows, cols, 3)`` uint8 RGB
    image of ``out_shape``, each output pixel the scene pixel under its centre: one
    windowed read of the scene's source (GDAL samples it, from overviews where the files
    have them), indexing for any other scene."""
    r0, r1, c0, c1 = (int(v) for v in window)
    if not (0 <= r0 < r1 <= scene.sizes["y"] and 0 <= c0 < c1 <= scene.sizes["x"]):
        raise ParameterError(f"crop window {window} is not inside the scene")
    selection = selection_of(scene)
    if selection is not None and selection.rows.step == selection.cols.step == 1:
        rgb, _ = selection(r0, r1, c0, c1, out_shape=tuple(out_shape))
        return rgb
    rows = r0 + decimation_indices(r1 - r0, out_shape[0])
    cols = c0 + decimation_indices(c1 - c0, out_shape[1])
    return np.ascontiguousarray(np.asarray(scene.data[rows][:, cols]))


def each_strip(data: Map, rows: int, use: Callable[[int, np.ndarray], object]) -> None:
    """Call ``use(first row, pixels)`` on strips covering ``data`` top to bottom,
    each a multiple of ``rows`` high but the last.

    A dask array is computed one row of chunks at a time, rows left over carried
    to the next strip, and each strip is dropped before the next is computed:
    memory stays near two chunk rows (dask joins a row's chunks into a copy). A map
    held in a file (:class:`~selo.pipeline.outputs.SpooledMap`) is read strip by strip."""
    if hasattr(data, "rows"):
        for top in range(0, data.shape[0], rows):
            use(top, data.rows(top, min(top + rows, data.shape[0])))
        return
    if not isinstance(data, da.Array):
        for top in range(0, data.shape[0], rows):
            use(top, data[top : top + rows])
        return
    top, carry = 0, data[:0].compute()
    for first, last in pairwise(np.cumsum((0, *data.chunks[0]))):
        block = data[first:last].compute()
        if len(carry):
            block = np.concatenate([carry, block])
        keep = len(block) // rows * rows
        carry = block[keep:].copy()
        if keep:
            use(top, block[:keep])
            top += keep
        del block
    if len(carry):
        use(top, carry)


def decimate(
    data: Map, out_shape: tuple[int, int], *, method: Literal["nearest", "area"] = "nearest"
) -> np.ndarray:
    """Shrink a 2-D map to ``out_shape``, a small numpy array, with bounded memory.

    ``nearest`` keeps the pixel under each output pixel's centre (the sampling of
    :func:`read_preview`), computing a dask map chunk by chunk; ``area`` averages,
    one row of chunks at a time, all pixels whose index ``i`` falls in output cell
    ``floor(i * out / size)`` on each axis, rounded to the input dtype.
    """
    out_h, out_w = (int(n) for n in out_shape)
    height, width = data.shape
    if data.ndim != 2 or not (1 <= out_h <= height and 1 <= out_w <= width):
        raise ParameterError(
            f"cannot decimate a map of shape {data.shape} to {tuple(out_shape)}: "
            "give a 2-D map and a smaller, non-empty output shape"
        )
    if method == "nearest":
        rows, cols = decimation_indices(height, out_h), decimation_indices(width, out_w)
        if isinstance(data, np.ndarray):
            return np.take(np.take(data, rows, axis=0), cols, axis=1)
        if isinstance(data, da.Array):
            return np.asarray(data[rows][:, cols])
        sampler, parts = RowSampler(rows, cols), []  # a map in a file: read once, by strips
        each_strip(data, 512, lambda top, strip: parts.append(sampler.add(top, strip)))
        return np.concatenate(parts)
    if method != "area":
        raise ParameterError(f"unknown decimation method {method!r}; use 'nearest' or 'area'")
    row_cell = np.arange(height) * out_h // height
    col_starts = np.searchsorted(np.arange(width) * out_w // width, np.arange(out_w))
    sums = np.zeros((out_h, out_w))

    def add(top: int, strip: np.ndarray) -> None:
        for first in range(top, top + len(strip), 64):  # 64 rows: small float copies
            part = strip[first - top : first - top + 64]
            cells = row_cell[first : first + len(part)]
            np.add.at(sums, cells, np.add.reduceat(part, col_starts, 1, np.float64))

    each_strip(data, 512, add)
    counts = np.outer(np.bincount(row_cell), np.diff([*col_starts, width]))
    return np.rint(sums / counts).astype(data.dtype)
