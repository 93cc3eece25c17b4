"""Writers of a SeLo map's files: GeoTIFF, PNG, JPEG, overlay PNG, GeoJSON regions,
windows.csv and the maps zarr store — one writer per kind of file.

Every writer writes to a hidden temporary file in the target folder and renames
it to the final name only when it is complete, so a file under the final name is
never half-written. A path that is a folder, a folder that cannot be created or
written, or a full disk raise :class:`~selo.errors.OutputError` naming the path,
and leave nothing under the final name.

Maps may be numpy or dask arrays; a dask map is computed one row of chunks at a
time (through whichever dask scheduler is active), so memory is bounded by a
chunk row, not by the map. The writers of files made from the map's rows in order
(:func:`png_rows`, :func:`spool_rows`, :func:`maps_zarr`) also take a map strip by
strip, so that :func:`fan_out` computes a map too large for memory once and gives each
strip to all of them side by side; :func:`write_side_by_side` runs whole writers in
threads and times each. For a scene without
georeferencing, outputs use pixel coordinates: x = column, y = row, origin at
the top-left corner of the scene.
"""

from __future__ import annotations

import json
import os
import queue
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
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
from rasterio.windows import Window

from ..errors import MapError, ParameterError
from .cut import jpeg_bytes
from .picture import PICTURE_PNG, blend_overlay, encode_image
from .preview import RowSampler, each_strip, overview_indices
from .scene import Grid
from .scenefile import gdal_env, tiff_data_end
from .store import as_path, atomic_path, atomic_write_bytes, atomic_write_text

__all__ = [
    "COG_OPTIONS",
    "PNG_LEVEL",
    "SpooledMap",
    "fan_out",
    "maps_zarr",
    "overview_shapes",
    "pixel_to_crs",
    "png_rows",
    "regions_from_map",
    "spool",
    "spool_rows",
    "write_geojson",
    "write_geotiff",
    "write_jpeg",
    "write_overlay",
    "write_png",
    "write_maps_zarr",
    "write_side_by_side",
    "write_windows_csv",
    "zarr_chunk_rows",
]

Sink = Callable[[int, np.ndarray], object]
"""Takes a map's strips in order: ``sink(first row, rows)``."""

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
    (with the scene's georeferencing and the overviews of selo_map.tif beside it, see
    :func:`spool_rows`) that every writer reads from: the map is computed once, then
    compressed once per output format."""

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

    def pixels(self, points: list[tuple[int, int]]) -> list[int]:
        """The map's values at points (x, y), the file opened once."""
        with gdal_env(), rasterio.open(self.path) as ds:
            return [int(ds.read(1, window=Window(x, y, 1, 1))[0, 0]) for x, y in points]

    def delete(self) -> None:
        """Remove the file and its overviews."""
        for level in _overview_paths(str(self.path), len(overview_shapes(self.shape))):
            Path(level).unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)


def spool(
    path: str | os.PathLike, data: Map, *, like: Grid, nodata: int | None = None
) -> SpooledMap:
    """Compute a (dask) map once into an uncompressed tiled GeoTIFF at ``path``, with the
    overviews of selo_map.tif beside it (:func:`spool_rows`)."""
    _check_map(data, "the map", like.shape)
    with spool_rows(path, like=like, nodata=nodata) as add:
        each_strip(data, _STRIP, add)
    return SpooledMap(Path(path), tuple(data.shape))


def overview_factors(shape: tuple[int, int], block: int = 512) -> list[int]:
    """The overview factors GDAL's COG driver makes by itself (``OVERVIEWS=AUTO``): 2, 4,
    8, … until the longer side fits in one block."""
    side, factors = max(shape), []
    while side > block:
        factors.append(2 ** (len(factors) + 1))
        side = -(-side // 2)
    return factors


def overview_shapes(shape: tuple[int, int], block: int = 512) -> list[tuple[int, int]]:
    """(rows, cols) of each of those overviews: the sides divided by the factor, rounded up."""
    return [(-(-shape[0] // f), -(-shape[1] // f)) for f in overview_factors(shape, block)]


def _overview_paths(path: str, levels: int) -> list[str]:
    """``path.ovr``, ``path.ovr.ovr``, …: GDAL opens each as the overviews of the one
    before (the first level of an external overview file is its main image)."""
    return [path + ".ovr" * k for k in range(1, levels + 1)]


@contextmanager
def spool_rows(path: str | os.PathLike, *, like: Grid, nodata: int | None = None):
    """Write a map given strip by strip, top to bottom (the yielded ``add(top, rows)``),
    as an uncompressed tiled GeoTIFF at ``path`` (the scene's georeferencing), and its
    overviews as it goes: level ``k`` sampled from level ``k - 1``'s rows as they come
    (GDAL's nearest rule, :func:`~selo.pipeline.preview.overview_indices`; the levels of
    :func:`overview_shapes`) into ``path.ovr``, ``path.ovr.ovr``, …, which GDAL reads as
    the file's overviews. The COG driver copies them (``OVERVIEWS=FORCE_USE_EXISTING``)
    into the same bytes as overviews GDAL builds itself, without reading the map again."""
    path = str(path)
    shapes = overview_shapes(like.shape)
    sizes = [tuple(like.shape), *shapes]
    samplers = [
        RowSampler(overview_indices(a[0], b[0]), overview_indices(a[1], b[1]))
        for a, b in zip(sizes, shapes, strict=False)
    ]
    with ExitStack() as files:
        writers = [files.enter_context(_tiff_rows(path, like.shape, **_georef(like, nodata)))]
        writers += [
            files.enter_context(_tiff_rows(level, shape))
            for level, shape in zip(_overview_paths(path, len(shapes)), shapes, strict=True)
        ]
        tops = [0] * len(writers)

        def add(top: int, rows: np.ndarray) -> None:
            writers[0](top, rows)
            for k, sampler in enumerate(samplers, start=1):
                rows = sampler.add(top, rows)  # level k's rows among level k - 1's
                if not len(rows):
                    return
                top = tops[k]
                writers[k](top, rows)
                tops[k] += len(rows)

        yield add


@contextmanager
def _tiff_rows(path: str, shape: tuple[int, int], *, tile: int = _STRIP, **profile: Any):
    """A one-band uint8 tiled GeoTIFF written from rows given in order: yields
    ``write(top, rows)``.

    rasterio does not report errors GDAL meets while closing a dataset (e.g. a full disk
    while flushing cached blocks): the block table, read back, tells whether every block
    reached the disk."""
    height, width = shape
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
            yield lambda top, rows: dst.write(rows, 1, window=Window(0, top, width, len(rows)))
    _check_complete(Path(path))


def _georef(like: Grid, nodata: int | None) -> dict[str, Any]:
    profile: dict[str, Any] = {"nodata": nodata}
    if like.crs is not None:
        profile["crs"] = like.crs
    if like.crs is not None or like.transform != Affine.identity():
        profile["transform"] = like.transform
    return profile


def _check_complete(path: Path) -> None:
    with gdal_env(), rasterio.open(path) as written:
        if tiff_data_end(written) > path.stat().st_size:
            raise OSError("pixel blocks are missing from the file; is the disk full?")


@contextmanager
def _dataset_of(data: Map | SpooledMap, like: Grid, nodata: int | None, scratch: Path):
    """The map as an open rasterio dataset with the overviews of selo_map.tif: the spooled
    file, or the map (in memory, or a dask map computed row of chunks by row of chunks)
    spooled to ``scratch`` first and removed afterwards. A file rather than GDAL's memory
    file system: the same CPU, and the pages are the system's file cache, not this
    process's memory (half the peak for a map in memory)."""
    with gdal_env():
        if isinstance(data, SpooledMap):
            with rasterio.open(data.path) as ds:
                yield ds
            return
        spooled = SpooledMap(scratch, tuple(data.shape))
        try:
            with rasterio.open(spool(scratch, data, like=like, nodata=nodata).path) as ds:
                yield ds
        finally:
            spooled.delete()


COG_OPTIONS = {
    # DEFLATE, the codec every GeoTIFF reader knows; without a predictor SeLo maps (large
    # flat areas) come out smaller and a little faster (ZSTD would be 3x faster still,
    # but not every reader has it: benchmarks/bench_writes.py)
    "COMPRESS": "DEFLATE",
    # level 5: the smallest files of the fast levels (GDAL's libdeflate: levels 1-5 cost the
    # same here); 6, GDAL's default, costs 60% more CPU for files 18% smaller, and each level
    # above it more again (benchmarks/bench_writes.py)
    "LEVEL": 5,
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
    """Write a uint8 map of any size as a lossless 8-bit gray PNG, strip by strip
    (:func:`png_rows`): a dask map computed one row of chunks at a time, a spooled one read
    strip by strip."""
    _check_map(data, "the map")
    with png_rows(path, data.shape) as add:
        each_strip(data, _STRIP, add)
    return as_path(path)


@contextmanager
def png_rows(path: str | os.PathLike, shape: tuple[int, int]) -> Iterator[Sink]:
    """A lossless 8-bit gray PNG of a map of ``shape`` written from its strips given in
    order (the yielded ``add(top, rows)``), atomically.

    The PNG is streamed: each strip of rows is filtered ("sub") and fed to one zlib stream,
    so memory stays at a strip whatever the map's size, and the bytes equal what a
    whole-image encoder would write with the same settings, however the rows are split."""
    height, width = shape
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

        yield add
        f.write(_png_chunk(b"IDAT", stream.flush()))
        f.write(_png_chunk(b"IEND", b""))


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
    flat, values = labels.ravel()[inside].astype(np.intp), heat.ravel()[inside]
    count = np.bincount(flat, minlength=n)
    total = np.bincount(flat, weights=values, minlength=n)  # exact integer sums
    peak = np.zeros(n, np.uint8)
    np.maximum.at(peak, flat, values)  # same dtypes, index intp: numpy's fast loop
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


def write_maps_zarr(root: str | os.PathLike, name: str, mean: Any, selo: Map | None = None) -> Path:
    """The mean map (exactly, as its cells: a :class:`~selo.pipeline.gnt.CellMap`) into the
    zarr group ``root/name``, atomically, and the uint8 SeLo map beside it when given
    (:func:`maps_zarr`)."""
    with maps_zarr(root, name, mean, None if selo is None else selo.shape) as add:
        if selo is not None:
            each_strip(selo, zarr_chunk_rows(selo.shape), add)
    return as_path(root) / name


def zarr_chunk_rows(shape: tuple[int, int]) -> int:
    """Rows per chunk of the stored SeLo map: at most ``MAP_CHUNK``, and
    ``ZARR_ROW_BYTES`` per row of chunks."""
    return int(max(1, min(MAP_CHUNK, ZARR_ROW_BYTES // max(shape[1], 1))))


@contextmanager
def maps_zarr(
    root: str | os.PathLike, name: str, mean: Any, shape: tuple[int, int] | None = None
) -> Iterator[Sink | None]:
    """The zarr group ``root/name``, written atomically: the mean map's cells, and with a
    ``shape`` the uint8 SeLo map ``selo``, from strips given in order to the yielded
    ``add(top, rows)`` (whole rows of chunks, :func:`_zarr_rows`, but the last).

    zarr is only ever used from the calling thread (zarr-python 3's synchronous calls
    were seen to hang in Dask worker threads)."""
    import zarr

    from .store import ensure_dir, open_group

    root = as_path(root)
    if not (root / "zarr.json").exists():
        ensure_dir(root)
        open_group(root, mode="a")
    with atomic_path(root / name, folder=True, what="maps") as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        mean.to_zarr(group.create_group("mean"))
        if shape is None:
            yield None
            return
        from zarr.codecs import ZstdCodec

        z = group.create_array(
            "selo",
            shape=tuple(shape),
            dtype=np.uint8,
            chunks=(zarr_chunk_rows(shape), min(MAP_CHUNK, shape[1])),
            compressors=ZstdCodec(level=1),  # smooth maps: level 1 is as small, and faster
            # every chunk written: zarr's test of each chunk against the fill value (to skip
            # empty ones) cost a second of CPU on a 10k² map, more than compressing it
            config={"write_empty_chunks": True},
        )
        yield lambda top, strip: z.__setitem__(slice(top, top + len(strip)), strip)


# --- running writers side by side ------------------------------------------------------------


def fan_out(
    data: Map, rows: int, sinks: dict[str, Sink], *, here: dict[str, Sink] | None = None
) -> dict[str, float]:
    """Compute ``data`` once, strip by strip (:func:`~selo.pipeline.preview.each_strip`,
    strips of a multiple of ``rows``), and give every strip, in order, to each sink: each
    in a thread of its own behind a queue of two strips, so the sinks run side by side and
    beside the computing of the next strip, and memory holds a few strips; the sinks in
    ``here`` run in this thread (zarr). Strips are read-only. Returns the seconds each sink
    was busy; the first error of a sink stops the pass and is raised here."""
    here = here or {}
    seconds = dict.fromkeys([*sinks, *here], 0.0)
    queues = {name: queue.Queue(maxsize=2) for name in sinks}
    failed: list[BaseException] = []
    done = object()

    def serve(name: str, sink: Sink) -> None:
        while (item := queues[name].get()) is not done:
            if failed:
                continue  # drain: the pass is stopping
            t0 = time.perf_counter()
            try:
                sink(*item)
            except BaseException as e:  # raised in the calling thread
                failed.append(e)
            seconds[name] += time.perf_counter() - t0

    def give(top: int, strip: np.ndarray) -> None:
        if failed:
            raise failed[0]
        strip = strip.view()
        strip.flags.writeable = False
        for q in queues.values():
            q.put((top, strip))
        for name, sink in here.items():
            t0 = time.perf_counter()
            sink(top, strip)
            seconds[name] += time.perf_counter() - t0

    threads = [threading.Thread(target=serve, args=item, daemon=True) for item in sinks.items()]
    for t in threads:
        t.start()
    try:
        each_strip(data, rows, give)
    finally:
        for q in queues.values():
            q.put(done)
        for t in threads:
            t.join()
    if failed:
        raise failed[0]
    return seconds


def write_side_by_side(
    jobs: dict[str, Callable[[], object]], *, here: dict[str, Callable[[], object]] | None = None
) -> dict[str, float]:
    """Run writers (compression and I/O in C, the GIL released) in threads side by side,
    the largest first as given, and those in ``here`` in this thread meanwhile (zarr);
    the seconds each took (wall, from its start). The first error is raised once all
    have stopped."""
    from concurrent.futures import ThreadPoolExecutor

    seconds: dict[str, float] = {}

    def timed(name: str, job: Callable[[], object]) -> None:
        t0 = time.perf_counter()
        job()
        seconds[name] = time.perf_counter() - t0

    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        running = [pool.submit(timed, name, job) for name, job in jobs.items()]
        try:
            for name, job in (here or {}).items():
                timed(name, job)
        finally:
            errors = [e for f in running if (e := f.exception()) is not None]
    if errors:
        raise errors[0]
    return {name: seconds[name] for name in [*jobs, *(here or {})] if name in seconds}
