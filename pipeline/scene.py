"""Scenes as lazy ``xarray.DataArray``: (y, x, band) RGB uint8, dask-backed, georeferenced.

:func:`open_scene` turns any raster rasterio can read (a local path, a URL, a GDAL
``/vsi…/`` path) or a STAC item into three uint8 bands, lazily and chunk by chunk (band
choice and conversion: :mod:`selo.pipeline.bands`). The result carries the scene's CRS
and transform on ``.rio``, a ``valid`` (y, x) boolean coordinate (False where there is no
data) when the file can have nodata, and its source (:mod:`selo.pipeline.source`): the
``selo_source`` encoding and the ``row``, ``col`` and ``channel`` coordinates, which
every indexing of the scene carries forward, so that a subset or a band selection is
read, and cached, as exactly those pixels of the file. Any other ``DataArray`` of (y, x,
band) uint8 pixels (in memory or dask) can be used as a scene too (:func:`as_scene`).

JPEG, PNG, GIF and WEBP files cannot be read window by window without decoding
everything before the window, so they are copied once, strip by strip, into a
tiled GeoTIFF in the cache (:meth:`selo.pipeline.cache.Cache.staged`) and read
from there. That is the only eager I/O: opening otherwise reads headers, plus for
non-uint8 scenes a decimated sample for the stretch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import dask
import dask.array as da
import dask.local
import numpy as np
import rioxarray
import xarray as xr
from affine import Affine
from dask.base import tokenize

from ..errors import ParameterError, SceneError, portable_errors
from . import DEFAULT_CHUNK
from .bands import to_rgb
from .cache import Cache
from .remote import gdal_path
from .scenefile import dataset
from .source import (
    CHANNEL,
    COL,
    ENCODING_KEY,
    ROW,
    Axis,
    SceneRef,
    SceneSource,
    Selection,
    open_source,
    read_region,
    selection_of,
)
from .stac import is_item

__all__ = [
    "DEFAULT_CHUNK",
    "Grid",
    "as_scene",
    "open_scene",
    "region_reader",
    "scene_array",
    "scene_grid",
    "scene_key",
    "scene_label",
    "scene_valid",
    "source_info",
]

BANDS = ("red", "green", "blue")


@dataclass(frozen=True)
class Grid:
    """The pixel grid of a scene: size and georeferencing (``crs`` None: pixel coordinates)."""

    height: int
    width: int
    crs: str | None
    transform: Affine

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)


def open_scene(
    location,
    *,
    bands=None,
    asset: str | None = None,
    chunk: int = DEFAULT_CHUNK,
    cache: Cache | None = None,
) -> xr.DataArray:
    """Open a scene lazily as an RGB uint8 (y, x, band) DataArray (see the module).

    ``location``: a path, a URL, a GDAL path, a STAC item (JSON file or URL, or a
    ``pystac.Item``) or a :class:`~selo.pipeline.source.SceneRef`; ``bands``/``asset``:
    see :func:`~selo.pipeline.source.open_source`. Chunks are at most ``chunk`` pixels in
    y and x, multiples of the file's block shape where it fits, all three bands in one
    chunk. ``cache`` holds the staged copy of JPEG/PNG/GIF/WEBP scenes (default:
    ``Cache()``)."""
    if isinstance(chunk, bool) or not isinstance(chunk, int | np.integer) or chunk < 1:
        raise ParameterError(f"chunk must be a positive number of pixels, got {chunk!r}")
    source = open_source(location, bands=bands, asset=asset, cache=cache or Cache())
    return scene_array(source, chunk=int(chunk))


def scene_array(source: SceneSource, *, chunk: int = DEFAULT_CHUNK) -> xr.DataArray:
    """The lazy scene DataArray of a source: every chunk one windowed read of its files
    (each task opens them itself: tasks carry the source, so they pickle for workers in
    other processes), converted and masked; coordinates from rioxarray."""
    chunks = _chunks(source.block, chunk)
    every = tuple(range(len(source.channels)))
    row_chunks = da.core.normalize_chunks(chunks, (source.height, source.width))
    pixels = da.map_blocks(
        _read_pixel_block,
        source=source,
        channels=every,
        chunks=((len(every),), *row_chunks),
        dtype=np.dtype(source.dtype),
        meta=np.empty((0, 0, 0), np.dtype(source.dtype)),
        name=f"selo-scene-{tokenize(source, chunks)}",
    )
    mask = None
    if source.masked:
        mask = da.map_blocks(
            _read_mask_block,
            source=source,
            chunks=row_chunks,
            dtype=bool,
            meta=np.empty((0, 0), bool),
            name=f"selo-mask-{tokenize(source, chunks)}",
        )
    rgb, valid = to_rgb(pixels, mask, source.nodata, source.conversion)
    first = source.files[0].location
    with dataset(first):  # (selo's GDAL settings, for rioxarray's open too)
        lazy = rioxarray.open_rasterio(gdal_path(first), cache=False, lock=False)
    coords = dict(lazy.isel(band=0, drop=True).coords)
    coords[ROW] = ("y", np.arange(source.height))
    coords[COL] = ("x", np.arange(source.width))
    coords[CHANNEL] = ("band", np.arange(len(every)))
    if valid is not None:
        coords["valid"] = (("y", "x"), valid)
    scene = xr.DataArray(
        rgb.transpose(1, 2, 0),
        dims=("y", "x", "band"),
        coords={**coords, "band": list(BANDS)},
        name="rgb",
        attrs={"selo_source": source.label},
    )
    scene.encoding[ENCODING_KEY] = source
    return scene


def as_scene(scene, **open_kw) -> xr.DataArray:
    """A scene DataArray from a location (a path, URL, STAC item or SceneRef:
    :func:`open_scene`), a DataArray or an array.

    DataArrays may be (y, x, band) or (band, y, x) with 3 bands, or 2-D (y, x) gray;
    numpy and dask arrays are read as (y, x, 3) or (y, x). Pixels must be uint8
    (use :func:`open_scene` for files of other types: it stretches them)."""
    if isinstance(scene, str | os.PathLike | SceneRef) or is_item(scene):
        return open_scene(scene, **open_kw)
    if not isinstance(scene, xr.DataArray):
        arr = scene if isinstance(scene, da.Array) else np.asarray(scene)
        dims = ("y", "x") if arr.ndim == 2 else ("y", "x", "band")
        if arr.ndim not in (2, 3):
            raise ParameterError(
                f"a scene array must be (y, x) or (y, x, 3), got shape {arr.shape}"
            )
        scene = xr.DataArray(arr, dims=dims)
    if scene.ndim == 2:
        scene = scene.drop_vars("band", errors="ignore").expand_dims(band=3, axis=-1)
    if set(scene.dims) != {"y", "x", "band"}:
        raise ParameterError(f"a scene needs dims (y, x, band), got {scene.dims}")
    scene = scene.transpose("y", "x", "band")
    if scene.sizes["band"] == 1:
        scene = xr.concat([scene] * 3, dim="band")
    if scene.sizes["band"] != 3 or scene.dtype != np.uint8:
        raise ParameterError(
            f"a scene must hold 3 bands of uint8 pixels, got {scene.sizes['band']} band(s) of "
            f"{scene.dtype}; open files with selo.open_scene, which converts other types"
        )
    if scene.sizes["y"] == 0 or scene.sizes["x"] == 0:
        raise SceneError(f"the scene is empty ({scene.sizes['y']}×{scene.sizes['x']} pixels)")
    if "valid" in scene.coords and scene.coords["valid"].dims != ("y", "x"):
        raise ParameterError("a scene's 'valid' coordinate must have dims (y, x)")
    if scene.chunks is None:  # in memory: chunks named by the pixels' content
        scene = scene.chunk({"y": DEFAULT_CHUNK, "x": DEFAULT_CHUNK, "band": -1})
    return scene.assign_coords(band=list(BANDS))


def scene_valid(scene: xr.DataArray) -> da.Array | None:
    """The (y, x) has-data mask as a dask array (None when every pixel has data)."""
    if "valid" not in scene.coords:
        return None
    valid = scene.coords["valid"].data
    return valid if isinstance(valid, da.Array) else da.from_array(np.asarray(valid, bool))


def scene_grid(scene: xr.DataArray) -> Grid:
    """Size, CRS and transform of a scene (identity transform without georeferencing)."""
    crs = scene.rio.crs
    try:
        transform = scene.rio.transform()
    except Exception:  # noqa: BLE001 - no usable x/y coordinates: pixel coordinates
        transform = Affine.identity()
    return Grid(
        int(scene.sizes["y"]),
        int(scene.sizes["x"]),
        crs.to_string() if crs else None,
        transform,
    )


def scene_label(scene: xr.DataArray) -> str:
    """How messages name a scene: its file, URL or item, else ``"the scene array"``."""
    selection = selection_of(scene)
    if selection is not None:
        return selection.source.label
    return scene.attrs.get("selo_source") or "the scene array"


def source_info(scene: xr.DataArray) -> dict:
    """What run.json records about a scene."""
    grid = scene_grid(scene)
    selection = selection_of(scene)
    info = {"height": grid.height, "width": grid.width, "crs": grid.crs}
    if selection is None:
        return {**info, "dtype": str(scene.dtype), "bands": None, "window": None}
    s = selection.source
    files = [s.files[s.channels[c][0]].location for c in selection.channels]
    return {
        **info,
        "source": s.label,
        "files": list(dict.fromkeys(files)),
        "bands": [s.channels[c][1] for c in selection.channels],
        "dtype": s.dtype,
        "driver": s.driver,
        "nodata": s.files[0].nodata,
        "window": [selection.rows.start, selection.cols.start, grid.height, grid.width],
        "step": [selection.rows.step, selection.cols.step],
    }


def scene_key(scene: xr.DataArray, cache: Cache) -> str:
    """A key that follows the scene's pixels (the scene part of the embedding cache key).

    A scene opened from a source (or an indexing of one): its source's content, channels
    and conversion and the selected rows, columns and channels
    (:meth:`~selo.pipeline.source.Selection.key`); chunking does not matter. Any other
    array: dask's token of its data (the bytes for in-memory arrays, the graph for dask)."""
    selection = selection_of(scene)
    if selection is None:
        return "array:" + tokenize(scene.data)
    return selection.key(cache)


class ArrayRegions:
    """Regions of any (y, x, band) scene array, computed slice by slice in the task."""

    def __init__(self, scene: xr.DataArray) -> None:
        self.pixels = scene.data
        self.valid = scene_valid(scene)
        self.token = tokenize(self.pixels, self.valid)

    def __dask_tokenize__(self) -> str:
        return self.token

    @property
    def row_blocks(self) -> tuple[int, int] | None:
        """``(0, rows)`` where the array's chunks of rows are even (each region computes
        the chunks it touches whole), else None."""
        chunks = self.pixels.chunks[0] if isinstance(self.pixels, da.Array) else None
        if chunks is None or len(set(chunks[:-1])) > 1 or chunks[-1] > chunks[0]:
            return None
        return 0, chunks[0]

    @portable_errors
    def __call__(
        self, r0: int, r1: int, c0: int, c1: int, *, out_shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Like :meth:`Selection.__call__`; ``out_shape`` samples the pixel under each output
        pixel's centre (:func:`~selo.pipeline.preview.decimation_indices`)."""
        rows, cols = slice(r0, r1), slice(c0, c1)
        if out_shape is not None:
            from .preview import decimation_indices

            rows = r0 + decimation_indices(r1 - r0, out_shape[0])
            cols = c0 + decimation_indices(c1 - c0, out_shape[1])
        parts = [self.pixels[rows][:, cols]]
        if self.valid is not None:
            parts.append(self.valid[rows][:, cols])
        computed = dask.compute(*parts, scheduler=dask.local.get_sync)
        valid = np.asarray(computed[1], bool) if len(computed) > 1 else None
        return np.ascontiguousarray(computed[0]), valid

    def into(self, out: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> np.ndarray | None:
        """Rows r0:r1 and cols c0:c1 copied into ``out``; returns ``valid``."""
        rgb, valid = self(r0, r1, c0, c1)
        out[...] = rgb
        return valid


class _SelectionRegions:
    """Regions of a scene read straight from its source (:class:`Selection`), with its
    errors raised as themselves on any worker."""

    def __init__(self, selection: Selection) -> None:
        self.selection = selection

    def __dask_tokenize__(self) -> str:
        return self.selection.token

    @property
    def row_blocks(self) -> tuple[int, int] | None:
        return self.selection.row_blocks

    @portable_errors
    def __call__(self, r0, r1, c0, c1, *, out_shape=None):
        return self.selection(r0, r1, c0, c1, out_shape=out_shape)

    @portable_errors
    def into(self, out, r0, r1, c0, c1):
        return self.selection.into(out, r0, r1, c0, c1)


def region_reader(scene: xr.DataArray) -> _SelectionRegions | ArrayRegions:
    """How Cut reads regions of ``scene``: straight from its source's files when it holds
    pixels of a source (:func:`~selo.pipeline.source.selection_of`), else through its
    dask graph."""
    selection = selection_of(scene)
    return _SelectionRegions(selection) if selection is not None else ArrayRegions(scene)


def _chunks(block_shape: tuple[int, int], chunk: int) -> tuple[int, int]:
    """Per axis, the largest multiple of the block not above ``chunk``, or ``chunk``
    itself when one block is larger (strips, untiled files)."""
    return tuple(chunk // b * b if b <= chunk else chunk for b in block_shape)


@portable_errors
def _read_pixel_block(source: SceneSource, channels, block_info=None) -> np.ndarray:
    _, (r0, r1), (c0, c1) = block_info[None]["array-location"]
    rows, cols = Axis(r0, 1, r1 - r0), Axis(c0, 1, c1 - c0)
    pixels, _ = read_region(source, rows, cols, channels)
    return pixels


@portable_errors
def _read_mask_block(source: SceneSource, block_info=None) -> np.ndarray:
    (r0, r1), (c0, c1) = block_info[None]["array-location"]
    _, mask = read_region(source, Axis(r0, 1, r1 - r0), Axis(c0, 1, c1 - c0), (), mask=True)
    return mask
