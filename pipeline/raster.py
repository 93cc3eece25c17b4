"""Scene input: large rasters opened lazily as RGB uint8 dask arrays.

A scene is any file rasterio can read (GeoTIFF, COG, JPEG, PNG, ...), with one or
more bands of any integer or float type. :func:`open_scene` turns it into three
uint8 bands, lazily and chunk by chunk, following these rules:

- **Bands**: ``bands`` are three 1-based band indexes, as in GDAL. By default a
  file with three or more bands gives the bands it declares as red, green and
  blue, else bands 1, 2, 3; a file with one or two bands (gray, gray + alpha)
  gives band 1 three times; a single paletted uint8 band goes through its colour
  table.
- **uint8**: values are used as they are.
- **Other types** (uint16, int16, float32, ...): each band is stretched linearly
  from its 2nd percentile to its 98th percentile onto 0..255, then clipped and
  rounded. The percentiles come from a decimated read of at most 1024×1024
  pixels (GDAL uses the file's overviews when it has them), ignoring nodata and
  NaN. A band that is constant there maps to 0.
- **Nodata**: a pixel has no data where every selected band equals the file's
  nodata value or is NaN, or where the file's own mask (internal mask, alpha
  band) says so. Such pixels are 0 in ``rgb`` and False in ``valid``.
- **Staging**: JPEG, PNG, GIF and WEBP files cannot be read window by window
  without decoding everything before the window. :func:`open_scene` copies them
  once, row strip by row strip, into a tiled GeoTIFF (ZSTD, with the file's
  mask as an internal mask) in the cache folder (``$SELO_CACHE_DIR``, else
  ``$XDG_CACHE_HOME/selo``, else ``~/.cache/selo``) keyed by the file's content
  hash, and reads from there like any tiled GeoTIFF. This is the only eager
  I/O: one sequential pass over the file the first time a scene is opened.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import rasterio
import rioxarray
import xarray as xr
from affine import Affine
from dask.base import tokenize
from rasterio.enums import ColorInterp, Interleaving, MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from selo.errors import InputNotFoundError, OutputError, ParameterError, SceneError
from selo.pipeline.store import error_reason

__all__ = [
    "STAGED_DRIVERS",
    "Conversion",
    "Scene",
    "SceneInfo",
    "decimation_indices",
    "default_cache_dir",
    "inspect_scene",
    "open_scene",
    "preview_shape",
    "read_preview",
    "scene_key",
    "tiff_data_end",
]

STAGED_DRIVERS = frozenset({"JPEG", "PNG", "GIF", "WEBP"})
"""GDAL drivers whose files are staged to a tiled GeoTIFF before windowed reading."""

# GDAL's block cache defaults to 5 % of RAM per process; every Dask worker
# reads scenes, so keep it modest unless the user set it.
os.environ.setdefault("GDAL_CACHEMAX", "256")

_STAGE_STRIP = 1024  # rows copied at a time while staging
_STAGE_TILE = 512
_STAGE_FORMAT = 2  # in the staged file's name: a new format never reuses an old file
_SAMPLE_SIDE = 1024
_PERCENTILES = (2.0, 98.0)
_KEY_INDEX = "scene-keys.json"

Array = np.ndarray | da.Array


@dataclass(frozen=True)
class SceneInfo:
    """What a scene's header says: size, bands, type, georeferencing, layout.

    ``crs`` is ``"EPSG:<code>"`` when the CRS has one, else its WKT, and None for a
    file without georeferencing, whose ``transform`` is then the identity (x =
    column, y = row).
    """

    path: Path
    height: int
    width: int
    count: int
    dtype: str
    crs: str | None
    transform: Affine
    nodata: float | None
    driver: str
    block_shape: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)


@dataclass(frozen=True)
class Conversion:
    """How the three selected bands become uint8: as they are, through a colour
    table, or by a per-band linear stretch mapping ``lo`` to 0 and ``hi`` to 255
    (clipped, rounded; a band with ``hi <= lo`` maps to 0)."""

    stretch: tuple[tuple[float, float], ...] | None = None
    palette: tuple[tuple[int, int, int], ...] | None = None

    def apply(self, pixels: Array) -> Array:
        """Convert ``(3, y, x)`` pixels, a numpy array or lazily block by block."""
        if self.stretch is None and self.palette is None:
            return pixels
        if isinstance(pixels, da.Array):
            return pixels.map_blocks(self._block, dtype=np.uint8)
        return self._block(pixels)

    def _block(self, pixels: np.ndarray) -> np.ndarray:
        if self.palette is not None:
            return np.asarray(self.palette, np.uint8)[pixels[0]].transpose(2, 0, 1)
        out = np.zeros(pixels.shape, np.uint8)
        for band, target, (lo, hi) in zip(pixels, out, self.stretch, strict=True):
            if hi <= lo:
                continue
            scaled = np.subtract(band, lo, dtype=np.float32)
            scaled *= np.float32(255.0 / (hi - lo))
            np.rint(scaled, out=scaled)
            np.clip(scaled, 0, 255, out=scaled)
            np.nan_to_num(scaled, copy=False, nan=0.0)
            target[...] = scaled
        return out


@dataclass(frozen=True, eq=False)
class Scene:
    """A scene opened lazily.

    ``rgb`` (band=3, y, x; uint8) and ``valid`` (y, x; bool, True where there is
    data; None when the scene declares no nodata, no mask and is not float) are
    dask-backed and carry the scene's CRS and transform on ``.rio``. ``stage`` is
    the tiled GeoTIFF copy the pixels come from, for staged formats.
    """

    info: SceneInfo
    rgb: xr.DataArray
    valid: xr.DataArray | None
    bands: tuple[int, int, int]
    conversion: Conversion
    stage: Path | None


def default_cache_dir() -> Path:
    """The folder for selo's caches: ``$SELO_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/selo``, else ``~/.cache/selo``."""
    if os.environ.get("SELO_CACHE_DIR"):
        return Path(os.environ["SELO_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "selo"


def preview_shape(info: SceneInfo, max_side: int) -> tuple[int, int]:
    """The (rows, cols) of the scene shrunk so its longer side is at most
    ``max_side``: each side times ``min(1, max_side / longer side)``, rounded,
    at least 1."""
    if max_side < 1:
        raise ParameterError(f"max_side must be a positive number of pixels, got {max_side}")
    factor = min(1.0, max_side / max(info.shape))
    return (max(1, round(info.height * factor)), max(1, round(info.width * factor)))


def decimation_indices(size: int, out_size: int) -> np.ndarray:
    """The source index that output index ``i`` samples when ``size`` pixels
    shrink to ``out_size``: the pixel under the output pixel's centre,
    ``floor((i + 1/2) * size / out_size)``."""
    return (np.arange(out_size) * 2 + 1) * size // (2 * out_size)


@contextlib.contextmanager
def _dataset(path: str | os.PathLike) -> Iterator[rasterio.DatasetReader]:
    """Open ``path`` with rasterio; any failure inside becomes a SceneError naming it."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{path}: scene not found; check the path")
    if path.is_dir():
        raise SceneError(
            f"{path}: not a raster rasterio can read (it is a folder); pass the image file"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                yield ds
    except RasterioError as e:
        raise SceneError(
            f"{path}: not a raster rasterio can read ({error_reason(e)}); "
            "check that the file is complete and in a format GDAL supports"
        ) from e


def _info(ds: rasterio.DatasetReader, path: Path) -> SceneInfo:
    if ds.count == 0 or ds.height == 0 or ds.width == 0:
        extra = "; open one of its subdatasets" if ds.subdatasets else ""
        raise SceneError(
            f"{path}: not a usable scene ({ds.count} bands of {ds.height}×{ds.width} pixels){extra}"
        )
    if np.dtype(ds.dtypes[0]).kind == "c":
        raise SceneError(f"{path}: complex pixels ({ds.dtypes[0]}) are not supported")
    end, size = tiff_data_end(ds), os.path.getsize(path)
    if end > size:
        raise SceneError(
            f"{path}: not a raster rasterio can read (truncated: {size} bytes, but its "
            f"pixel blocks end at byte {end}); copy or download the file again"
        )
    return SceneInfo(
        path=path,
        height=ds.height,
        width=ds.width,
        count=ds.count,
        dtype=ds.dtypes[0],
        crs=ds.crs.to_string() if ds.crs else None,
        transform=ds.transform,
        nodata=ds.nodata,
        driver=ds.driver,
        block_shape=tuple(ds.block_shapes[0]),
    )


def tiff_data_end(ds: rasterio.DatasetReader) -> int:
    """The byte at which the last pixel block of a GeoTIFF ends, read from its
    block table (0 for other formats).

    A GeoTIFF shorter than this is truncated: it opens (its directory comes
    first) and fails, or reads zeros, only where the missing blocks are read."""
    if ds.driver != "GTiff":
        return 0
    bands = [1] if ds.interleaving == Interleaving.pixel else ds.indexes
    end = 0
    for band in bands:
        rows, cols = ds.block_shapes[band - 1]
        for j in range(math.ceil(ds.height / rows)):
            for i in range(math.ceil(ds.width / cols)):
                offset = ds.get_tag_item(f"BLOCK_OFFSET_{i}_{j}", "TIFF", bidx=band)
                size = ds.get_tag_item(f"BLOCK_SIZE_{i}_{j}", "TIFF", bidx=band)
                if offset and size:
                    end = max(end, int(offset) + int(size))
    return end


def inspect_scene(path: str | os.PathLike) -> SceneInfo:
    """Read a scene's header (no pixels) and check it is a usable raster."""
    with _dataset(path) as ds:
        return _info(ds, Path(path))


def open_scene(
    path: str | os.PathLike,
    *,
    bands: tuple[int, int, int] | None = None,
    chunk: int = 4096,
    stage_dir: str | os.PathLike | None = None,
) -> Scene:
    """Open a scene lazily as RGB uint8 (see the module docstring for the rules).

    Chunks are at most ``chunk`` pixels in y and x, multiples of the file's
    block shape where it fits, all three bands in one chunk. Opening reads only
    headers, plus for non-uint8 scenes a decimated sample for the stretch, and
    for staged formats (JPEG, PNG, GIF, WEBP) the one-time tiled GeoTIFF copy under
    ``stage_dir`` (default: ``default_cache_dir() / "staged"``).
    """
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ParameterError(f"chunk must be a positive number of pixels, got {chunk!r}")
    path = Path(path)
    with _dataset(path) as ds:
        info = _info(ds, path)
        bands = _choose_bands(ds, path, bands)
        palette = _palette(ds, bands)
        masked = _has_dataset_mask(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        lazy = rioxarray.open_rasterio(path, cache=False, lock=False)
    stage = None
    source, source_lazy = path, lazy
    if info.driver in STAGED_DRIVERS:
        stage = _stage(path, info, Path(stage_dir or default_cache_dir() / "staged"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            source, source_lazy = stage, rioxarray.open_rasterio(stage, cache=False, lock=False)
        block = (_STAGE_TILE, _STAGE_TILE)
    else:
        block = info.block_shape
    pixels, mask = _lazy_file(source_lazy, source, bands, _chunks(block, chunk), masked)
    if palette is not None:
        conversion = Conversion(palette=palette)
    elif info.dtype == "uint8":
        conversion = Conversion()
    else:
        conversion = Conversion(stretch=_stretch(info, bands, stage))
    rgb, valid = _to_rgb(pixels, mask, info, conversion)
    coords = lazy.isel(band=0, drop=True).coords
    rgb_array = xr.DataArray(
        rgb,
        dims=("band", "y", "x"),
        coords={"band": [1, 2, 3], **coords},
        name="rgb",
        attrs={"source_bands": bands},
    )
    valid_array = None if valid is None else xr.DataArray(valid, coords, name="valid")
    return Scene(info, rgb_array, valid_array, bands, conversion, stage)


def read_preview(scene: Scene, max_side: int = 2048) -> np.ndarray:
    """A decimated ``(rows, cols, 3)`` uint8 RGB image of the scene for overlays.

    The shape is :func:`preview_shape`; pixels are sampled by nearest neighbour
    (from overviews when the file has them) and converted like ``scene.rgb``."""
    out_shape = preview_shape(scene.info, max_side)
    pixels, mask = _decimated(scene.info, scene.bands, scene.stage, out_shape)
    rgb, _ = _to_rgb(pixels, mask, scene.info, scene.conversion)
    return np.ascontiguousarray(rgb.transpose(1, 2, 0))


def _to_rgb(
    pixels: Array, mask: Array | None, info: SceneInfo, conversion: Conversion
) -> tuple[Array, Array | None]:
    """``(rgb, valid)`` from ``(3, y, x)`` pixels and the file's ``(y, x)`` mask;
    numpy or dask alike."""
    missing = np.isnan(pixels) if np.dtype(info.dtype).kind == "f" else None
    if info.nodata is not None and not math.isnan(info.nodata):
        equal = pixels == info.nodata
        missing = equal if missing is None else missing | equal
    valid = None if missing is None else ~missing.all(axis=0)
    if mask is not None:
        valid = mask if valid is None else valid & mask
    rgb = conversion.apply(pixels)
    if valid is not None:
        rgb = np.where(valid, rgb, np.uint8(0))
    return rgb, valid


def _choose_bands(
    ds: rasterio.DatasetReader, path: Path, bands: tuple[int, int, int] | None
) -> tuple[int, int, int]:
    if bands is None:
        if ds.count < 3:
            return (1, 1, 1)
        interp = ds.colorinterp
        rgb = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        if all(c in interp for c in rgb):
            return tuple(interp.index(c) + 1 for c in rgb)
        return (1, 2, 3)
    if (
        not isinstance(bands, tuple | list)
        or len(bands) != 3
        or not all(
            isinstance(b, int | np.integer) and not isinstance(b, bool) and 1 <= b <= ds.count
            for b in bands
        )
    ):
        raise ParameterError(
            f"{path}: bands {bands} cannot be used: the file has {ds.count} band(s); "
            f"pass three 1-based band indexes between 1 and {ds.count}, such as (1, 2, 3)"
        )
    return (int(bands[0]), int(bands[1]), int(bands[2]))


def _palette(
    ds: rasterio.DatasetReader, bands: tuple[int, int, int]
) -> tuple[tuple[int, int, int], ...] | None:
    """The colour table of a single paletted uint8 band used as all three bands."""
    band = bands[0]
    if len(set(bands)) != 1 or ds.dtypes[band - 1] != "uint8":
        return None
    if ds.colorinterp[band - 1] != ColorInterp.palette:
        return None
    table = ds.colormap(band)
    return tuple(tuple(table.get(i, (0, 0, 0, 0))[:3]) for i in range(256))


def _has_dataset_mask(ds: rasterio.DatasetReader) -> bool:
    """Whether the file has a mask beyond nodata values (internal mask, alpha)."""
    return any(
        MaskFlags.per_dataset in flags or MaskFlags.alpha in flags for flags in ds.mask_flag_enums
    )


def _chunks(block_shape: tuple[int, int], chunk: int) -> tuple[int, int]:
    """Per axis, the largest multiple of the block not above ``chunk``, or ``chunk``
    itself when one block is larger (strips, untiled files)."""
    return tuple(chunk // b * b if b <= chunk else chunk for b in block_shape)


def _lazy_file(
    lazy: xr.DataArray,
    path: Path,
    bands: tuple[int, int, int],
    chunks: tuple[int, int],
    masked: bool,
) -> tuple[da.Array, da.Array | None]:
    """Pixels and mask read window by window with rasterio.

    ``lazy`` comes from ``rioxarray.open_rasterio(..., lock=False)``, which gives
    every thread its own dataset handle (a GDAL handle is not thread-safe;
    rioxarray's default lock would serialise all reads in a process) and pickles
    as a path, so workers in other processes open the file themselves. Selecting
    bands before chunking makes each chunk one 3-band read.
    """
    token = tokenize(str(path), path.stat().st_mtime_ns, chunks, bands)
    pixels = (
        lazy.isel(band=[b - 1 for b in bands])
        .chunk({"band": -1, "y": chunks[0], "x": chunks[1]}, name_prefix="selo-scene-", token=token)
        .data
    )
    mask = None
    if masked:
        mask = da.map_blocks(
            _read_mask_block,
            path=str(path),
            chunks=pixels.chunks[1:],
            dtype=bool,
            meta=np.empty((0, 0), bool),
            name=f"selo-mask-{token}",
        )
    return pixels, mask


def _read_mask_block(path: str, block_info=None) -> np.ndarray:
    (r0, r1), (c0, c1) = block_info[None]["array-location"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            return ds.dataset_mask(window=Window.from_slices((r0, r1), (c0, c1))) > 0


def _decimated(
    info: SceneInfo,
    bands: tuple[int, int, int],
    stage: Path | None,
    out_shape: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels ``(3, rows, cols)`` and mask sampled by nearest neighbour (from the
    staged copy, when there is one)."""
    with _dataset(stage or info.path) as ds:
        pixels = ds.read(list(bands), out_shape=(3, *out_shape))
        mask = ds.dataset_mask(out_shape=out_shape) > 0 if _has_dataset_mask(ds) else None
    return pixels, mask


def _stretch(
    info: SceneInfo, bands: tuple[int, int, int], stage: Path | None
) -> tuple[tuple[float, float], ...]:
    """Per band, the 2nd and 98th percentiles of valid, finite sampled values."""
    pixels, mask = _decimated(info, bands, stage, preview_shape(info, _SAMPLE_SIDE))
    _, valid = _to_rgb(pixels, mask, info, Conversion())
    limits = []
    for band in pixels:
        keep = np.isfinite(band) if valid is None else valid & np.isfinite(band)
        values = band[keep]
        lo, hi = np.percentile(values, _PERCENTILES) if values.size else (0.0, 0.0)
        limits.append((float(lo), float(hi)))
    return tuple(limits)


def _stage(path: Path, info: SceneInfo, stage_dir: Path) -> Path:
    """The tiled GeoTIFF copy of ``path`` in ``stage_dir``, made if missing.

    Written under a temporary name and renamed when complete, so a file under
    the final name is always whole."""
    key = scene_key(path)
    staged = stage_dir / f"{key}.v{_STAGE_FORMAT}.tif"
    if staged.is_file():
        return staged
    try:
        stage_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(
            f"{stage_dir}: cannot prepare the staging folder for {path} ({e.strerror}); "
            "set SELO_CACHE_DIR or pass stage_dir to a writable folder"
        ) from e
    partial = stage_dir / f".{key}.{secrets.token_hex(4)}.partial.tif"
    try:
        _write_stage(path, info, partial)
        os.replace(partial, staged)
    except OSError as e:
        if staged.is_file():  # another process staged the same file first
            return staged
        raise OutputError(
            f"{stage_dir}: cannot stage {path} there ({e.strerror or e}); free disk space, "
            "or set SELO_CACHE_DIR or pass stage_dir to another folder"
        ) from e
    finally:
        partial.unlink(missing_ok=True)
    return staged


def _write_stage(path: Path, info: SceneInfo, target: Path) -> None:
    """Copy all bands (and the file's mask) strip by strip, top to bottom, into a
    tiled GeoTIFF: one strip of ``_STAGE_STRIP`` full-width rows in memory at a time."""
    profile = {
        "driver": "GTiff",
        "height": info.height,
        "width": info.width,
        "count": info.count,
        "dtype": info.dtype,
        "tiled": True,
        "blockxsize": _STAGE_TILE,
        "blockysize": _STAGE_TILE,
        "compress": "zstd",
        "zstd_level": 1,
        "bigtiff": "if_safer",
    }
    if info.crs is not None:
        profile.update(crs=info.crs, transform=info.transform)
    # libjpeg reports a truncated file as a warning and pads it with gray.
    with (
        rasterio.Env(GDAL_ERROR_ON_LIBJPEG_WARNING=True, GDAL_TIFF_INTERNAL_MASK=True),
        _dataset(path) as ds,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        masked = _has_dataset_mask(ds)
        with rasterio.open(target, "w", **profile) as out:
            for top in range(0, info.height, _STAGE_STRIP):
                window = Window(0, top, info.width, min(_STAGE_STRIP, info.height - top))
                out.write(ds.read(window=window), window=window)
                if masked:
                    out.write_mask(ds.dataset_mask(window=window), window=window)


def scene_key(path: str | os.PathLike) -> str:
    """The SHA-256 of the file's bytes, as hex: a key that follows the content.

    Hashes are remembered in ``scene-keys.json`` in :func:`default_cache_dir`,
    by absolute path, size and modification time, so an unchanged file is not
    read again."""
    path = Path(path).resolve()
    try:
        stat = path.stat()
    except FileNotFoundError as e:
        raise InputNotFoundError(f"{path}: scene not found; check the path") from e
    index_path = default_cache_dir() / _KEY_INDEX
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    entry = index.get(str(path), {})
    if entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        return entry["sha256"]
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    index[str(path)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    partial = index_path.with_name(f".{_KEY_INDEX}.{secrets.token_hex(4)}.partial")
    try:
        index_path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(index))
        os.replace(partial, index_path)
    except OSError as e:
        partial.unlink(missing_ok=True)
        warnings.warn(
            f"cannot save the scene key index {index_path} ({e.strerror}); "
            "keys will be recomputed; set SELO_CACHE_DIR to a writable folder",
            stacklevel=2,
        )
    return digest
