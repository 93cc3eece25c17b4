"""Scenes as lazy ``xarray.DataArray``: (y, x, band) RGB uint8, dask-backed, georeferenced.

:func:`open_scene` turns any raster rasterio can read into three uint8 bands,
lazily and chunk by chunk (band choice and conversion: :mod:`selo.pipeline.bands`).
The result carries the scene's CRS and transform on ``.rio``, a ``valid`` (y, x)
boolean coordinate (False where there is no data) when the file can have nodata,
and ``selo_*`` attributes that say where the pixels come from. Subsets
(``scene.isel(y=..., x=...)``) keep all of it, and any other ``DataArray`` of
(y, x, band) uint8 pixels (in memory or dask) can be used as a scene too
(:func:`as_scene`).

JPEG, PNG, GIF and WEBP files cannot be read window by window without decoding
everything before the window, so they are copied once, strip by strip, into a
tiled GeoTIFF in the cache (:meth:`selo.pipeline.cache.Cache.staged`) and read
from there. That is the only eager I/O: opening otherwise reads headers, plus for
non-uint8 scenes a decimated sample for the stretch.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

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
from .bands import Conversion, choose_bands, palette_of, stretch_limits, to_rgb
from .cache import Cache
from .scenefile import (
    STAGE_TILE,
    STAGED_DRIVERS,
    SceneInfo,
    configure_gdal,
    dataset,
    has_dataset_mask,
    inspect_scene,
    read_decimated,
    read_pixels,
)

__all__ = [
    "DEFAULT_CHUNK",
    "Grid",
    "as_scene",
    "open_scene",
    "region_reader",
    "scene_grid",
    "scene_key",
    "scene_label",
    "scene_valid",
    "source_info",
]

_SAMPLE_SIDE = 1024  # decimated read for the stretch percentiles
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
    path: str | os.PathLike,
    *,
    bands: tuple[int, int, int] | None = None,
    chunk: int = DEFAULT_CHUNK,
    cache: Cache | None = None,
) -> xr.DataArray:
    """Open a scene lazily as an RGB uint8 (y, x, band) DataArray (see the module).

    Chunks are at most ``chunk`` pixels in y and x, multiples of the file's block
    shape where it fits, all three bands in one chunk. ``cache`` holds the staged
    copy of JPEG/PNG/GIF/WEBP scenes (default: ``Cache()``).
    """
    if isinstance(chunk, bool) or not isinstance(chunk, int | np.integer) or chunk < 1:
        raise ParameterError(f"chunk must be a positive number of pixels, got {chunk!r}")
    configure_gdal()
    path = Path(path)
    info = inspect_scene(path)
    with dataset(path) as ds:
        bands = choose_bands(ds, path, bands)
        palette = palette_of(ds, bands)
        masked = has_dataset_mask(ds)
    source, block = path, info.block_shape
    if info.driver in STAGED_DRIVERS:
        source, block = (cache or Cache()).staged(path, info), (STAGE_TILE, STAGE_TILE)
    lazy = rioxarray.open_rasterio(source, cache=False, lock=False)  # for the coordinates
    pixels, mask = _lazy_file(source, info, bands, _chunks(block, int(chunk)), masked)
    if palette is not None:
        conversion = Conversion(palette=palette)
    elif info.dtype == "uint8":
        conversion = Conversion()
    else:
        sample, sample_mask = read_decimated(source, bands, _sample_shape(info))
        conversion = Conversion(stretch=stretch_limits(sample, sample_mask, info))
    rgb, valid = to_rgb(pixels, mask, info, conversion)
    rgb = rgb.transpose(1, 2, 0)
    coords = dict(lazy.isel(band=0, drop=True).coords)
    if valid is not None:
        coords["valid"] = (("y", "x"), valid)
    attrs = {
        "selo_source": str(path),
        "selo_staged": str(source) if source != path else "",
        "selo_bands": list(bands),
        "selo_conversion": _conversion_json(conversion),
        "selo_driver": info.driver,
        "selo_dtype": info.dtype,
        "selo_nodata": info.nodata,
        "selo_file_shape": [info.height, info.width],
        "selo_file_transform": list(info.transform)[:6],
        "selo_graph": rgb.name,
    }
    return xr.DataArray(
        rgb,
        dims=("y", "x", "band"),
        coords={**coords, "band": list(BANDS)},
        name="rgb",
        attrs=attrs,
    )


def as_scene(scene: xr.DataArray | np.ndarray | str | os.PathLike, **open_kw) -> xr.DataArray:
    """A scene DataArray from a path (:func:`open_scene`), a DataArray or an array.

    DataArrays may be (y, x, band) or (band, y, x) with 3 bands, or 2-D (y, x) gray;
    numpy and dask arrays are read as (y, x, 3) or (y, x). Pixels must be uint8
    (use :func:`open_scene` for files of other types: it stretches them)."""
    if isinstance(scene, str | os.PathLike):
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
        scene = scene.expand_dims(band=3, axis=-1)
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
    """How messages name a scene: its file, else ``"the scene array"``."""
    return scene.attrs.get("selo_source") or "the scene array"


def source_info(scene: xr.DataArray) -> dict:
    """What run.json records about a scene."""
    grid = scene_grid(scene)
    a = scene.attrs
    return {
        "height": grid.height,
        "width": grid.width,
        "bands": a.get("selo_bands"),
        "dtype": a.get("selo_dtype", str(scene.dtype)),
        "crs": grid.crs,
        "driver": a.get("selo_driver"),
        "nodata": a.get("selo_nodata"),
        "window": list(file_window(scene) or ()) or None,
    }


def conversion_of(scene: xr.DataArray) -> Conversion:
    """The band conversion :func:`open_scene` applied (identity for other arrays)."""
    text = scene.attrs.get("selo_conversion")
    if not text:
        return Conversion()
    data = json.loads(text)
    stretch = data.get("stretch")
    palette = data.get("palette")
    return Conversion(
        stretch=None if stretch is None else tuple(tuple(p) for p in stretch),
        palette=None if palette is None else tuple(tuple(p) for p in palette),
    )


def file_window(scene: xr.DataArray) -> tuple[int, int, int, int] | None:
    """``(row_off, col_off, height, width)`` of the scene inside the file it was opened
    from, when it is the opened array or a slice of it (None otherwise).

    Only plain slicing (``isel``/``[...]`` with unit steps) keeps the pixels those of
    the file; anything else (arithmetic, ``where``) makes a new graph, recognised here
    by the dask layers between the array and the one :func:`open_scene` built."""
    a = scene.attrs
    data = scene.data
    if "selo_graph" not in a or not isinstance(data, da.Array):
        return None
    name, deps = data.name, data.dask.dependencies
    while name != a["selo_graph"]:
        parents = deps.get(name, set())
        if not name.startswith("getitem-") or len(parents) != 1:
            return None
        (name,) = parents
    height, width = int(scene.sizes["y"]), int(scene.sizes["x"])
    file_t = Affine(*a["selo_file_transform"])
    own = scene_grid(scene).transform
    if (own.a, own.b, own.d, own.e) != (file_t.a, file_t.b, file_t.d, file_t.e):
        return None
    col, row = ~file_t * (own.c, own.f)
    r, c = round(row), round(col)
    if abs(row - r) > 1e-6 or abs(col - c) > 1e-6:
        return None
    fh, fw = a["selo_file_shape"]
    if r < 0 or c < 0 or r + height > fh or c + width > fw:
        return None
    return (r, c, height, width)


def scene_key(scene: xr.DataArray, cache: Cache) -> str:
    """A key that follows the scene's pixels (the scene part of the embedding cache key).

    A file scene (or a slice of one): the file's content hash, its band choice and
    conversion, and the pixel window; chunking does not matter. Any other array:
    dask's token of its data (the bytes for in-memory arrays, the graph for dask)."""
    window = file_window(scene)
    if window is None:
        return "array:" + tokenize(scene.data)
    a = scene.attrs
    text = "|".join(
        [cache.scene_key(a["selo_source"]), str(a["selo_bands"]), a["selo_conversion"], str(window)]
    )
    return "file:" + hashlib.sha256(text.encode()).hexdigest()[:32]


class FileRegions:
    """Regions of a file scene, each read with one windowed rasterio read of the file
    (or its staged copy), converted and masked like the scene: each tile of the file
    is decoded once per region, with no dask graph in between."""

    def __init__(self, scene: xr.DataArray, window: tuple[int, int, int, int]) -> None:
        a = scene.attrs
        self.path = a["selo_staged"] or a["selo_source"]
        self.bands = tuple(a["selo_bands"])
        self.conversion = conversion_of(scene)
        info = inspect_scene(self.path)
        self.info = SceneInfo(
            **{**info.__dict__, "nodata": a["selo_nodata"], "dtype": a["selo_dtype"]}
        )
        self.offset = window[:2]
        stat = Path(self.path).stat()
        self.token = tokenize(self.path, stat.st_size, stat.st_mtime_ns, self.bands, window)

    def __dask_tokenize__(self) -> str:
        return self.token

    @portable_errors
    def __call__(
        self, r0: int, r1: int, c0: int, c1: int, *, out_shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(rgb (h, w, 3) uint8, valid (h, w) bool or None)`` of scene rows r0:r1, cols c0:c1;
        with ``out_shape`` shrunk to it by GDAL's nearest sampling (overviews where present)."""
        from rasterio.windows import Window

        window = Window(c0 + self.offset[1], r0 + self.offset[0], c1 - c0, r1 - r0)
        with dataset(self.path) as ds:
            pixels, mask = read_pixels(
                ds,
                self.bands,
                window=window,
                out_shape=out_shape,
                mask=has_dataset_mask(ds),
                where=f" in rows {r0}-{r1}, columns {c0}-{c1}",
                interleaved=True,  # read as (rows, cols, bands): no copy below for RGB files
            )
        mask = None if mask is None else mask > 0
        rgb, valid = to_rgb(pixels, mask, self.info, self.conversion)
        return np.ascontiguousarray(np.moveaxis(rgb, 0, -1)), valid


class ArrayRegions:
    """Regions of any (y, x, band) scene array, computed slice by slice in the task."""

    def __init__(self, scene: xr.DataArray) -> None:
        self.pixels = scene.data
        self.valid = scene_valid(scene)
        self.token = tokenize(self.pixels, self.valid)

    def __dask_tokenize__(self) -> str:
        return self.token

    @portable_errors
    def __call__(
        self, r0: int, r1: int, c0: int, c1: int, *, out_shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Like :meth:`FileRegions.__call__`; ``out_shape`` samples the pixel under each output
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


def region_reader(scene: xr.DataArray) -> FileRegions | ArrayRegions:
    """How Cut reads regions of ``scene``: straight from its file when it is a file scene
    (or a slice of one), else through its dask graph."""
    window = file_window(scene)
    return FileRegions(scene, window) if window is not None else ArrayRegions(scene)


def _conversion_json(conversion: Conversion) -> str:
    return json.dumps({"stretch": conversion.stretch, "palette": conversion.palette})


def _sample_shape(info: SceneInfo) -> tuple[int, int]:
    factor = min(1.0, _SAMPLE_SIDE / max(info.shape))
    return (max(1, round(info.height * factor)), max(1, round(info.width * factor)))


def _chunks(block_shape: tuple[int, int], chunk: int) -> tuple[int, int]:
    """Per axis, the largest multiple of the block not above ``chunk``, or ``chunk``
    itself when one block is larger (strips, untiled files)."""
    return tuple(chunk // b * b if b <= chunk else chunk for b in block_shape)


def _lazy_file(
    path: Path,
    info: SceneInfo,
    bands: tuple[int, int, int],
    chunks: tuple[int, int],
    masked: bool,
) -> tuple[da.Array, da.Array | None]:
    """Pixels ``(3, y, x)`` and mask, each chunk one windowed rasterio read of the file.

    Each task opens the file itself (tasks carry its path, so they pickle for workers
    in other processes; a GDAL handle is not thread-safe, so none is shared) and
    reads strictly (:func:`~selo.pipeline.scenefile.read_pixels`: damaged data is a
    SceneError, not zeros). Task names follow the file (path, size, modification
    time), the chunks and the bands, so reruns get the same keys.
    """
    stat = path.stat()
    token = tokenize(str(path), stat.st_size, stat.st_mtime_ns, chunks, bands)
    row_chunks = da.core.normalize_chunks(chunks, (info.height, info.width))
    pixels = da.map_blocks(
        _read_pixel_block,
        path=str(path),
        bands=bands,
        chunks=((len(bands),), *row_chunks),
        dtype=np.dtype(info.dtype),
        meta=np.empty((0, 0, 0), np.dtype(info.dtype)),
        name=f"selo-scene-{token}",
    )
    mask = None
    if masked:
        mask = da.map_blocks(
            _read_mask_block,
            path=str(path),
            chunks=row_chunks,
            dtype=bool,
            meta=np.empty((0, 0), bool),
            name=f"selo-mask-{token}",
        )
    return pixels, mask


@portable_errors
def _read_pixel_block(path: str, bands: tuple[int, ...], block_info=None) -> np.ndarray:
    from rasterio.windows import Window

    _, (r0, r1), (c0, c1) = block_info[None]["array-location"]
    with dataset(path) as ds:
        window = Window.from_slices((r0, r1), (c0, c1))
        pixels, _ = read_pixels(ds, bands, window=window, where=f" in rows {r0}-{r1}")
    return pixels


@portable_errors
def _read_mask_block(path: str, block_info=None) -> np.ndarray:
    from rasterio.windows import Window

    (r0, r1), (c0, c1) = block_info[None]["array-location"]
    with dataset(path) as ds:
        window = Window.from_slices((r0, r1), (c0, c1))
        _, mask = read_pixels(ds, (), window=window, mask=True, where=f" in rows {r0}-{r1}")
    return mask > 0
