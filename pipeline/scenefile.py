"""Scene files: the one place where a raster file is opened, checked and read whole.

Everything that touches a scene file through GDAL goes through :func:`dataset`,
which turns any reader failure into a :class:`~selo.errors.SceneError` naming the
file. :func:`inspect_scene` reads the header (no pixels) and checks that the file
is a usable, complete raster: its pixel blocks lie inside the file and it does not
claim more pixels than its bytes can hold. The staged copy of a JPEG/PNG scene
(:func:`write_staged_copy`) and decimated reads (:func:`read_decimated`) live here
too, so the GDAL settings that make damaged data an error are set in one place.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Interleaving, MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from selo.errors import InputNotFoundError, SceneError
from selo.pipeline.store import error_reason

__all__ = [
    "STAGED_DRIVERS",
    "SceneInfo",
    "configure_gdal",
    "dataset",
    "has_dataset_mask",
    "inspect_scene",
    "read_decimated",
    "strict_reads",
    "tiff_data_end",
    "write_staged_copy",
]

STAGED_DRIVERS = frozenset({"JPEG", "PNG", "GIF", "WEBP"})
"""GDAL drivers whose files are staged to a tiled GeoTIFF before windowed reading."""

STAGE_TILE = 512
_STAGE_STRIP = 1024  # rows copied at a time while staging
_GDAL_CACHE_MB = "256"
# A raster claiming far more pixels than its bytes can hold is refused before any
# work: a lying header would otherwise make selo embed gigapixels of nothing.
# Compressed data of natural images rarely beats 100:1; 1000:1 leaves room for
# flat scenes (constant areas compress extremely well).
_MAX_PIXELS_PER_BYTE = 1000
_SMALL_SCENE_PIXELS = 1 << 22  # below this size, any compression ratio is believed


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


def configure_gdal() -> None:
    """Cap GDAL's block cache (5 % of RAM per process by default) unless the user set it.

    Every Dask worker reads scenes, so a modest cache per process keeps the run's
    memory bounded. Called before a cluster starts (workers inherit it) and on open.
    """
    os.environ.setdefault("GDAL_CACHEMAX", _GDAL_CACHE_MB)


def strict_reads() -> rasterio.Env:
    """A GDAL environment in which damaged pixel data is an error, not zeros or gray.

    libjpeg reports a truncated or corrupt JPEG as a warning and pads it with gray;
    GDAL's PNG driver likewise only warns; GeoTIFF decoders raise for a damaged
    tile. With these options the first two raise too.
    """
    return rasterio.Env(GDAL_ERROR_ON_LIBJPEG_WARNING=True, GDAL_PAM_ENABLED=False)


@contextlib.contextmanager
def dataset(path: str | os.PathLike) -> Iterator[rasterio.DatasetReader]:
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
    except OSError as e:
        raise SceneError(f"{path}: cannot read the file ({error_reason(e)})") from e


def _info(ds: rasterio.DatasetReader, path: Path) -> SceneInfo:
    if ds.count == 0 or ds.height == 0 or ds.width == 0:
        extra = "; open one of its subdatasets" if ds.subdatasets else ""
        raise SceneError(
            f"{path}: not a usable scene ({ds.count} bands of {ds.height}×{ds.width} pixels){extra}"
        )
    if np.dtype(ds.dtypes[0]).kind == "c":
        raise SceneError(f"{path}: complex pixels ({ds.dtypes[0]}) are not supported")
    size = os.path.getsize(path)
    end = tiff_data_end(ds)
    if end > size:
        raise SceneError(
            f"{path}: not a raster rasterio can read (truncated: {size} bytes, but its "
            f"pixel blocks end at byte {end}); copy or download the file again"
        )
    pixels = ds.height * ds.width
    if pixels > _SMALL_SCENE_PIXELS and pixels > _MAX_PIXELS_PER_BYTE * max(size, 1):
        raise SceneError(
            f"{path}: its header claims {ds.width}×{ds.height} pixels but the file holds only "
            f"{size} bytes; the file is damaged or incomplete: copy or download it again"
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
    """Read a scene's header (no pixels) and check it is a usable, complete raster."""
    with dataset(path) as ds:
        return _info(ds, Path(path))


def has_dataset_mask(ds: rasterio.DatasetReader) -> bool:
    """Whether the file has a mask beyond nodata values (internal mask, alpha)."""
    return any(
        MaskFlags.per_dataset in flags or MaskFlags.alpha in flags for flags in ds.mask_flag_enums
    )


def read_decimated(
    path: Path, bands: tuple[int, ...], out_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels ``(len(bands), rows, cols)`` and mask sampled by nearest neighbour (GDAL
    uses the file's overviews when it has them)."""
    with strict_reads(), dataset(path) as ds:
        try:
            pixels = ds.read(list(bands), out_shape=(len(bands), *out_shape))
            mask = ds.dataset_mask(out_shape=out_shape) > 0 if has_dataset_mask(ds) else None
        except RasterioError as e:
            raise SceneError(f"{path}: damaged pixel data ({error_reason(e)})") from e
    return pixels, mask


def write_staged_copy(path: Path, info: SceneInfo, target: Path) -> None:
    """Copy all bands (and the file's mask) strip by strip, top to bottom, into a
    tiled, uncompressed GeoTIFF: one strip of full-width rows in memory at a time.
    Uncompressed, the copy costs little more than decoding the source once, and
    reading its tiles back costs nothing to decode.

    Damaged source data (a truncated JPEG or PNG, a corrupt block) raises a
    SceneError naming the source instead of being copied as zeros or gray."""
    profile = {
        "driver": "GTiff",
        "height": info.height,
        "width": info.width,
        "count": info.count,
        "dtype": info.dtype,
        "tiled": True,
        "blockxsize": STAGE_TILE,
        "blockysize": STAGE_TILE,
        "bigtiff": "if_safer",
    }
    if info.crs is not None:
        profile.update(crs=info.crs, transform=info.transform)
    with (
        rasterio.Env(GDAL_ERROR_ON_LIBJPEG_WARNING=True, GDAL_TIFF_INTERNAL_MASK=True),
        dataset(path) as ds,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        masked = has_dataset_mask(ds)
        with rasterio.open(target, "w", **profile) as out:
            for top in range(0, info.height, _STAGE_STRIP):
                window = Window(0, top, info.width, min(_STAGE_STRIP, info.height - top))
                try:
                    strip = ds.read(window=window)
                    mask = ds.dataset_mask(window=window) if masked else None
                except RasterioError as e:
                    raise SceneError(
                        f"{path}: damaged or truncated pixel data near row {top} "
                        f"({error_reason(e)}); copy or download the file again"
                    ) from e
                out.write(strip, window=window)
                if mask is not None:
                    out.write_mask(mask, window=window)
