"""Writers of a SeLo map's files: GeoTIFF, PNG, JPEG, overlay PNG, GeoJSON regions,
windows.csv and the maps zarr store — one writer per kind of file.

Every writer writes to a hidden temporary file in the target folder and renames
it to the final name only when it is complete, so a file under the final name is
never half-written. A path that is a folder, a folder that cannot be created or
written, or a full disk raise :class:`~selo.errors.OutputError` naming the path,
and leave nothing under the final name.

Maps may be numpy or dask arrays; a dask map is computed one row of chunks at a
time (through whichever dask scheduler is active), so memory is bounded by a
chunk row, not by the map. For a scene without
georeferencing, outputs use pixel coordinates: x = column, y = row, origin at
the top-left corner of the scene.
"""

from __future__ import annotations

import json
import os
import struct
import uuid
import zlib
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import dask.array as da
import numpy as np
import rasterio
import rasterio.features
import rasterio.shutil
import rasterio.transform
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..errors import MapError, ParameterError
from .cut import jpeg_bytes
from .picture import PICTURE_PNG, blend_overlay, encode_image
from .preview import each_strip
from .scene import Grid
from .scenefile import gdal_env, tiff_data_end
from .store import as_path, atomic_path, atomic_write_bytes, atomic_write_text

__all__ = [
    "COG_OPTIONS",
    "PNG_LEVEL",
    "SpooledMap",
    "pixel_to_crs",
    "regions_from_map",
    "spool",
    "write_geojson",
    "write_geotiff",
    "write_jpeg",
    "write_overlay",
    "write_png",
    "write_maps_zarr",
    "write_windows_csv",
]

MAP_CHUNK = 2048
ZARR_ROW_BYTES = 256 * 2**20  # at most this much of a map in this process while storing it

_STRIP = 512  # rows per strip of a numpy map, and the tile of temporary GeoTIFFs
_PIXEL_COORDINATES = "pixel: x = column, y = row of the scene, origin at its top-left corner"

Map = np.ndarray | da.Array


def _check_map(data: Any, name: str, shape: tuple[int, int] | None = None) -> None:
    if (
        not isinstance(data, np.ndarray | da.Array | SpooledMap)
        or data.ndim != 2
        or data.dtype != np.uint8
    ):
        got = f"{type(data).__name__} {getattr(data, 'dtype', '')} {getattr(data, 'shape', '')}"
        raise MapError(f"{name} must be a 2-D uint8 numpy or dask array, got {got}")
    if shape is not None and data.shape != tuple(shape):
        raise MapError(f"{name} has shape {data.shape}, but the scene is {tuple(shape)}")


@dataclass(frozen=True)
class SpooledMap:
    """A finished map too large for memory, held once in an uncompressed tiled GeoTIFF
    (with the scene's georeferencing) that every writer reads from: the map is computed
    once, then compressed once per output format."""

    path: Path
    shape: tuple[int, int]
    dtype: np.dtype = np.dtype(np.uint8)
    ndim: int = 2

    def rows(self, top: int, bottom: int) -> np.ndarray:
        return self.window(top, bottom, 0, self.shape[1])

    def window(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Pixels [r0:r1, c0:c1] of the map."""
        with gdal_env(), rasterio.open(self.path) as ds:
            return ds.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))

    def decimated(self, out_shape: tuple[int, int]) -> np.ndarray:
        """The pixel under each output pixel's centre (GDAL's nearest sampling)."""
        with gdal_env(), rasterio.open(self.path) as ds:
            return ds.read(1, out_shape=out_shape, resampling=Resampling.nearest)


def spool(
    path: str | os.PathLike, data: Map, *, like: Grid, nodata: int | None = None
) -> SpooledMap:
    """Compute a (dask) map once into an uncompressed tiled GeoTIFF at ``path``, with the
    overviews of selo_map.tif (nearest) built in it."""
    _check_map(data, "the map", like.shape)
    _write_tiff(Path(path), data, tile=_STRIP, **_georef(like, nodata))
    _build_overviews(str(path), data.shape)
    return SpooledMap(Path(path), tuple(data.shape))


def overview_factors(shape: tuple[int, int], block: int = 512) -> list[int]:
    """The overview factors GDAL's COG driver makes by itself (``OVERVIEWS=AUTO``): 2, 4,
    8, … until the longer side fits in one block."""
    side, factors = max(shape), []
    while side > block:
        factors.append(2 ** (len(factors) + 1))
        side = -(-side // 2)
    return factors


def _build_overviews(path: str, shape: tuple[int, int]) -> None:
    factors = overview_factors(shape)
    if factors:
        with gdal_env(), rasterio.open(path, "r+") as ds:
            ds.build_overviews(factors, Resampling.nearest)


def _georef(like: Grid, nodata: int | None) -> dict[str, Any]:
    profile: dict[str, Any] = {"nodata": nodata}
    if like.crs is not None:
        profile["crs"] = like.crs
    if like.crs is not None or like.transform != Affine.identity():
        profile["transform"] = like.transform
    return profile


def _write_tiff(path: Path, data: Map, *, tile: int, **profile: Any) -> None:
    """Write a 2-D uint8 map as a tiled one-band GeoTIFF, one row of tiles at a time.

    rasterio does not report errors GDAL meets while closing a dataset (e.g. a
    full disk while flushing cached blocks). Writing whole rows of tiles makes
    GDAL write blocks, and fail, inside ``write``; the block table, read back,
    tells whether the rest reached the disk."""
    height, width = data.shape
    with gdal_env():
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=width,
            height=height,
            count=1,
            dtype="uint8",
            tiled=True,
            blockxsize=tile,
            blockysize=tile,
            BIGTIFF="IF_SAFER",
            NUM_THREADS="ALL_CPUS",
            **profile,
        ) as dst:
            each_strip(
                data,
                tile,
                lambda top, rows: dst.write(rows, 1, window=Window(0, top, width, len(rows))),
            )
    _check_complete(path)


def _check_complete(path: Path) -> None:
    with gdal_env(), rasterio.open(path) as written:
        if tiff_data_end(written) > path.stat().st_size:
            raise OSError("pixel blocks are missing from the file; is the disk full?")


@contextmanager
def _dataset_of(data: Map | SpooledMap, like: Grid, nodata: int | None, scratch: Path):
    """The map as an open rasterio dataset: in memory, the spooled file, or a dask map
    spooled to ``scratch`` first (removed afterwards)."""
    with gdal_env():
        if isinstance(data, SpooledMap):
            with rasterio.open(data.path) as ds:
                yield ds
            return
        if isinstance(data, da.Array):
            try:
                with rasterio.open(spool(scratch, data, like=like, nodata=nodata).path) as ds:
                    yield ds
            finally:
                scratch.unlink(missing_ok=True)
            return
        height, width = data.shape
        profile = dict(
            driver="GTiff", height=height, width=width, count=1, dtype="uint8", tiled=True,
            blockxsize=_STRIP, blockysize=_STRIP,
        )  # fmt: skip
        memory = f"/vsimem/selo-{uuid.uuid4().hex}.tif"
        try:
            with rasterio.open(memory, "w", **profile, **_georef(like, nodata)) as ds:
                ds.write(data, 1)
            _build_overviews(memory, data.shape)
            with rasterio.open(memory) as ds:
                yield ds
        finally:
            rasterio.shutil.delete(memory)


COG_OPTIONS = {
    # DEFLATE, the codec every GeoTIFF reader knows; without a predictor SeLo maps (large
    # flat areas) come out smaller and a little faster (ZSTD would be 3x faster still,
    # but not every reader has it: benchmarks/bench_writes.py)
    "COMPRESS": "DEFLATE",
    "LEVEL": 6,
    "BLOCKSIZE": 512,
    # the overviews GDAL's AUTO would make, built (nearest) in the uncompressed source
    # first: 3x faster than letting the COG driver make them (benchmarks/bench_writes.py)
    "OVERVIEWS": "FORCE_USE_EXISTING",
    "BIGTIFF": "IF_SAFER",
    "NUM_THREADS": "ALL_CPUS",
}
"""GDAL COG driver options of selo_map.tif (chosen by ``benchmarks/bench_writes.py``)."""


def write_geotiff(
    path: str | os.PathLike,
    data: Map | SpooledMap,
    *,
    like: Grid,
    nodata: int | None = None,
    nodata_mask: Map | None = None,
) -> Path:
    """Write a uint8 map of the scene's shape as a Cloud-Optimized GeoTIFF (GDAL's COG
    layout: 512-pixel tiles, DEFLATE, overviews) with the scene's CRS and transform
    (none for a scene without georeferencing), so that even a 40k² map opens at once in
    QGIS and can be served as tiles.

    Where ``nodata_mask`` is True the pixel becomes ``nodata``, which is also declared
    as the file's nodata value. A dask map is computed once, one row of chunks at a time
    (through whichever dask scheduler is active), into a temporary file next to ``path``.
    """
    _check_map(data, "the map", like.shape)
    if nodata is not None and not (isinstance(nodata, int) and 0 <= nodata <= 255):
        raise ParameterError(f"nodata must be an integer from 0 to 255, got {nodata!r}")
    if nodata_mask is not None:
        if nodata is None:
            raise ParameterError("nodata_mask needs a nodata value to write there")
        if isinstance(data, SpooledMap):
            raise ParameterError("apply the nodata mask before spooling the map")
        if nodata_mask.shape != like.shape or nodata_mask.dtype != bool:
            raise MapError(
                f"nodata_mask must be a boolean array of shape {like.shape}, "
                f"got {nodata_mask.dtype} {nodata_mask.shape}"
            )
        data = np.where(nodata_mask, np.uint8(nodata), data)
    with atomic_path(path, what="GeoTIFF") as partial:
        scratch = partial.with_name(partial.name + ".spool.tif")
        with (
            _dataset_of(data, like, nodata, scratch) as source,
            rasterio.Env(GDAL_PAM_ENABLED="NO"),
        ):
            rasterio.shutil.copy(source, partial, driver="COG", **COG_OPTIONS)
        _check_complete(partial)
    return as_path(path)


PNG_LEVEL = 1
"""zlib level of selo_map.png, with PNG's "sub" filter on every row (chosen by
``benchmarks/bench_writes.py``: SeLo maps are smooth, so this is nearly as small as the
defaults and about 3x faster)."""


def write_png(path: str | os.PathLike, data: Map | SpooledMap) -> Path:
    """Write a uint8 map of any size as a lossless 8-bit gray PNG, strip by strip.

    The PNG is streamed: each strip of rows is filtered ("sub") and fed to one zlib
    stream, so memory stays at a strip whatever the map's size (a dask map is computed
    one row of chunks at a time, a spooled one read strip by strip) and the bytes equal
    what a whole-image encoder would write with the same settings."""
    _check_map(data, "the map")
    height, width = data.shape
    with atomic_path(path, what="PNG") as partial, partial.open("wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)))
        stream = zlib.compressobj(PNG_LEVEL)

        def add(top: int, strip: np.ndarray) -> None:
            for first in range(0, len(strip), 64):  # 64 rows at a time: small temporaries
                part = strip[first : first + 64]
                rows = np.empty((len(part), width + 1), np.uint8)
                rows[:, 0] = 1  # the row's filter type: sub (each byte minus the one on its left)
                rows[:, 1] = part[:, 0]
                np.subtract(part[:, 1:], part[:, :-1], out=rows[:, 2:])
                compressed = stream.compress(rows)
                if compressed:
                    f.write(_png_chunk(b"IDAT", compressed))

        each_strip(data, _STRIP, add)
        f.write(_png_chunk(b"IDAT", stream.flush()))
        f.write(_png_chunk(b"IEND", b""))
    return as_path(path)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(tag + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


def write_overlay(path: str | os.PathLike, preview_rgb: np.ndarray, heat: np.ndarray) -> Path:
    """Write the published SeLo overlay (:func:`~selo.pipeline.picture.blend_overlay`) as PNG.

    ``preview_rgb`` is ``(rows, cols, 3)`` uint8 in RGB order (as
    :func:`~selo.pipeline.preview.read_preview` gives), ``heat`` a uint8 map of the
    same rows and cols (see :func:`decimate`)."""
    return atomic_write_bytes(
        path, encode_image(blend_overlay(preview_rgb, heat), ".png", PICTURE_PNG)
    )


def pixel_to_crs(
    info: Grid, rows: np.ndarray | float, cols: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """Scene CRS coordinates ``(x, y)`` of pixel centres (pixel coordinates plus
    one half for a scene without georeferencing)."""
    xs, ys = rasterio.transform.xy(info.transform, rows, cols, offset="center")
    return np.asarray(xs, float), np.asarray(ys, float)


def regions_from_map(
    heat: np.ndarray, info: Grid, *, threshold: int, min_pixels: int = 1
) -> list[dict[str, Any]]:
    """GeoJSON polygon features of the connected areas (8-neighbour) where a uint8
    map is at least ``threshold``, in the scene's CRS, strongest first.

    ``heat`` may be the full map or a decimated one (e.g. from :func:`decimate`):
    its pixel size follows from its shape and the scene's. Properties: ``kind``
    ("region"), ``max`` and ``mean`` of the map inside, and ``area_px``, the area
    in scene pixels; areas smaller than ``min_pixels`` scene pixels are dropped.
    """
    _check_map(heat, "the region map")
    if not isinstance(heat, np.ndarray):
        raise MapError("the region map must be a numpy array; decimate a large dask map first")
    if not 1 <= threshold <= 255:
        raise ParameterError(f"threshold must be from 1 to 255, got {threshold}")
    height, width = heat.shape
    pixel_area = (info.height / height) * (info.width / width)
    transform = info.transform @ Affine.scale(info.width / width, info.height / height)
    n, labels = cv2.connectedComponents(
        (heat >= threshold).view(np.uint8), connectivity=8, ltype=cv2.CV_32S
    )
    inside = np.flatnonzero(labels)  # the statistics of the regions only (not background)
    flat, values = labels.ravel()[inside], heat.ravel()[inside]
    count = np.bincount(flat, minlength=n)
    total = np.bincount(flat, weights=values, minlength=n)  # exact integer sums
    peak = np.zeros(n, np.int64)
    np.maximum.at(peak, flat, values)
    features = []
    with gdal_env():
        shapes = list(
            rasterio.features.shapes(labels, mask=labels > 0, connectivity=8, transform=transform)
        )
    for geometry, value in shapes:
        k = int(value)
        area = round(int(count[k]) * pixel_area)
        if area < min_pixels:
            continue
        properties = {
            "kind": "region",
            "max": int(peak[k]),
            "mean": round(float(total[k] / count[k]), 3),
            "area_px": area,
        }
        features.append({"type": "Feature", "geometry": geometry, "properties": properties})
    features.sort(key=lambda f: (-f["properties"]["max"], -f["properties"]["mean"]))
    return features


def write_geojson(
    path: str | os.PathLike, features: Iterable[dict[str, Any]], *, crs: str | None
) -> Path:
    """Write features as a GeoJSON FeatureCollection in the scene's CRS.

    The CRS is named in a ``crs`` member (GeoJSON 2008 style, which GDAL reads),
    since coordinates are not reprojected to WGS 84. With ``crs=None`` the member
    is null and ``"selo:coordinates"`` says the coordinates are pixels."""
    collection: dict[str, Any] = {"type": "FeatureCollection"}
    if crs is None:
        collection["crs"] = None
        collection["selo:coordinates"] = _PIXEL_COORDINATES
    else:
        parsed = CRS.from_user_input(crs)
        epsg = parsed.to_epsg()
        name = f"urn:ogc:def:crs:EPSG::{epsg}" if epsg else parsed.to_wkt()
        collection["crs"] = {"type": "name", "properties": {"name": name}}
    collection["features"] = list(features)
    return atomic_write_text(path, json.dumps(collection), what="GeoJSON")


def write_windows_csv(
    path: str | os.PathLike, windows: np.ndarray, scales: np.ndarray, scores: np.ndarray
) -> Path:
    """``r0,r1,c0,c1,scale,score`` per window, in accumulation order.

    Scores are written with full precision (``repr``), so the map can be rebuilt
    exactly from this file."""
    rows = zip(windows.tolist(), scales.tolist(), scores.tolist(), strict=True)
    lines = ["r0,r1,c0,c1,scale,score"]
    lines += [f"{r0},{r1},{c0},{c1},{scale},{score!r}" for (r0, r1, c0, c1), scale, score in rows]
    return atomic_write_text(path, "\n".join(lines) + "\n", what="windows table")


def write_jpeg(path: str | os.PathLike, data: np.ndarray) -> np.ndarray:
    """Write a uint8 map as the published code stores it (``cv2.imwrite`` JPEG, quality
    95; lossy, for comparisons with published numbers) and return the map the published
    evaluation reads back from that file (``cv2.imread`` as 8-bit gray)."""
    _check_map(data, "the map")
    encoded = jpeg_bytes(np.asarray(data))
    atomic_write_bytes(path, encoded, what="JPEG")
    return cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_GRAYSCALE)


def write_maps_zarr(root: str | os.PathLike, name: str, mean: Any, selo: Map) -> Path:
    """The mean map (exactly, as its cells: a :class:`~selo.pipeline.gnt.CellMap`) and the
    SeLo map into the zarr group ``root/name``, atomically.

    The SeLo map is computed row of blocks by row of blocks (through whichever dask
    scheduler is active) and written from this thread, at most ``ZARR_ROW_BYTES`` at a
    time: zarr is only ever used from the calling thread (zarr-python 3's synchronous
    calls were seen to hang in Dask worker threads)."""
    import zarr

    from .store import ensure_dir, open_group

    root = as_path(root)
    if not (root / "zarr.json").exists():
        ensure_dir(root)
        open_group(root, mode="a")
    with atomic_path(root / name, folder=True, what="maps") as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        mean.to_zarr(group.create_group("mean"))
        height, width = selo.shape
        rows = int(max(1, min(MAP_CHUNK, ZARR_ROW_BYTES // max(width, 1))))
        from zarr.codecs import ZstdCodec

        z = group.create_array(
            "selo",
            shape=selo.shape,
            dtype=selo.dtype,
            chunks=(rows, min(MAP_CHUNK, width)),
            compressors=ZstdCodec(level=1),  # smooth maps: level 1 is as small, and faster
            # every chunk written: zarr's test of each chunk against the fill value (to skip
            # empty ones) cost a second of CPU on a 10k² map, more than compressing it
            config={"write_empty_chunks": True},
        )
        each_strip(
            selo, rows, lambda top, strip: z.__setitem__(slice(top, top + len(strip)), strip)
        )
    return root / name
