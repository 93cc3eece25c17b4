"""Scene files: the one place where a raster file is opened, checked and read.

A file is a local path, a URL or a GDAL ``/vsi…/`` path (:mod:`selo.pipeline.remote`):
remote files are read by range requests, never downloaded whole, with the same checks.
Everything that touches a scene file through GDAL goes through :func:`dataset`, inside
:func:`gdal_env` (selo's GDAL settings, set only while selo's own calls run), which
turns any failure to open it into a :class:`~selo.errors.SceneError` naming the file,
and every pixel read goes through :func:`read_pixels`, in which GDAL's
errors *and its warnings* (libjpeg's "premature end", libtiff's "not enough data")
are a SceneError too: damaged pixel data is never read as zeros or gray.

:func:`inspect_scene` reads the header (no pixels) and checks that the file is a
usable, complete raster whose header does not lie: a GeoTIFF's pixel blocks must
all be in the file (none missing, none past its end, uncompressed ones of their
declared size), and a PNG or GIF cannot claim more pixels than its bytes can hold.
:func:`verify_png` checks a PNG's chunks (CRCs, the end chunk) and that its pixel
data has the size its header declares, which GDAL's PNG driver does not check (it
fills what is missing with zeros). The staged copy of a JPEG/PNG scene
(:func:`write_staged_copy`), decimated reads (:func:`read_decimated`) and whole-file
checks (:func:`verify_pixels`) live here too, so the rules are set in one place.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio._err import CPLE_BaseError  # GDAL errors rasterio passes through as they are
from rasterio.enums import Interleaving, MaskFlags, PhotometricInterp
from rasterio.errors import CRSError, NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from ..errors import InputNotFoundError, OutputError, RemoteError, SceneError, SeloError
from .remote import (
    ObjectInfo,
    gdal_options,
    gdal_path,
    is_network_message,
    is_remote,
    object_info,
    open_binary,
    url_of,
)
from .store import error_reason

__all__ = [
    "STAGED_DRIVERS",
    "SceneInfo",
    "dataset",
    "gdal_env",
    "has_dataset_mask",
    "inspect_scene",
    "read_decimated",
    "read_pixels",
    "refresh_remote",
    "strict_reads",
    "tiff_data_end",
    "verify_png",
    "verify_pixels",
    "write_staged_copy",
]

STAGED_DRIVERS = frozenset({"JPEG", "PNG", "GIF", "WEBP"})
"""GDAL drivers whose files are staged to a tiled GeoTIFF before windowed reading."""

STAGE_TILE = 512
_STAGE_STRIP = 1024  # rows copied at a time while staging
_GDAL_CACHE_BYTES = 256 * 2**20
# A PNG or GIF claiming more pixels than its bytes can hold is refused before any
# work (GDAL would fill the rest with zeros: a lying header would make selo embed
# gigapixels of nothing). Deflate (PNG) packs at most 1032 bytes into one, LZW (GIF)
# about 2730, and a pixel takes at least one bit (PNG) or byte (GIF): 10 000 pixels
# per byte is beyond any real file. GeoTIFFs are checked block by block instead
# (some codecs, and sparse files, have no such bound); JPEG and WEBP decoders fail
# at the first missing byte.
_MAX_PIXELS_PER_BYTE = {"PNG": 10_000, "GIF": 10_000}
_SMALL_SCENE_PIXELS = 1 << 22  # below this size, any compression ratio is believed
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
_READ_PIECE = 1 << 20
_CHECKED_TIFFS: set[tuple[str, str]] = set()  # (location, version) whose blocks were checked


@dataclass(frozen=True)
class SceneInfo:
    """What a scene's header says: size, bands, type, georeferencing, layout.

    ``crs`` is ``"EPSG:<code>"`` when the CRS has one, else its WKT, and None for a
    file without georeferencing, whose ``transform`` is then the identity (x =
    column, y = row).
    """

    location: str  # a local path, a URL or a GDAL path
    height: int
    width: int
    count: int
    dtype: str
    crs: str | None
    transform: Affine
    nodata: float | None
    driver: str
    block_shape: tuple[int, int]
    version: str = ""  # the file's size and version when read (remote.ObjectInfo)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)


# --- GDAL settings and its warnings ---------------------------------------------------------


class _GdalWarnings(logging.Filter):
    """Collects the GDAL warnings logged while this thread reads pixels (rasterio logs
    GDAL's warnings on ``rasterio._env`` and ``rasterio._err``); other records pass
    as they would have without this filter."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()
        self.forced: set[str] = set()  # loggers whose level was set here (else NOTSET)

    def filter(self, record: logging.LogRecord) -> bool:
        found = getattr(self.local, "found", None)
        if found is not None and record.levelno >= logging.WARNING:
            found.append(record.getMessage())
            return False
        if record.name in self.forced:  # behave as if the logger's level were still NOTSET
            parent = logging.getLogger(record.name).parent
            return parent is None or record.levelno >= parent.getEffectiveLevel()
        return True


_GDAL_WARNINGS = _GdalWarnings()
_GDAL_LOGGERS = ("rasterio._env", "rasterio._err")
_NOT_GEOREFERENCED = ("ignore", None, NotGeoreferencedWarning, None, 0)


class _SeloGdal:
    """What selo sets up while any of its own GDAL calls runs, in any thread, and takes
    down when the last one ends (the host process keeps its own settings otherwise):

    - GDAL's block cache is capped at 256 MB unless the user set ``GDAL_CACHEMAX``:
      every Dask worker reads scenes, so a modest cache per process keeps a run's
      memory bounded (GDAL's own default is 5 % of RAM per process);
    - rasterio's ``NotGeoreferencedWarning`` (a scene without georeferencing, such as
      any JPEG) is not shown: selo says so once, in plain words;
    - GDAL's warnings reach :func:`read_pixels`, which makes them errors (a filter on
      rasterio's loggers, whose level is set to DEBUG for the time when it was unset,
      so that the records exist).

    Counted, because dask reads in several threads at once: ``warnings.catch_warnings``
    and ``rasterio.Env(GDAL_CACHEMAX=…)`` each restore what they saw on entry, which
    is the other thread's setting when two threads interleave."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.cache_max: int | None = None
        self.warning_filter: tuple | None = None

    def __enter__(self) -> None:
        with self.lock:
            self.users += 1
            if self.users == 1:
                self._install()

    def __exit__(self, *exc) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0:
                self._remove()

    def _install(self) -> None:
        from rasterio.env import get_gdal_config, set_gdal_config

        if "GDAL_CACHEMAX" not in os.environ:
            self.cache_max = int(get_gdal_config("GDAL_CACHEMAX"))
            set_gdal_config("GDAL_CACHEMAX", min(self.cache_max, _GDAL_CACHE_BYTES))
        if _NOT_GEOREFERENCED not in warnings.filters:  # (else the host's own, left alone)
            warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)
            self.warning_filter = _NOT_GEOREFERENCED
        for name in _GDAL_LOGGERS:
            logger = logging.getLogger(name)
            logger.addFilter(_GDAL_WARNINGS)
            if logger.level == logging.NOTSET:  # records must exist to be collected
                logger.setLevel(logging.DEBUG)
                _GDAL_WARNINGS.forced.add(name)

    def _remove(self) -> None:
        from rasterio.env import set_gdal_config

        if self.cache_max is not None:
            set_gdal_config("GDAL_CACHEMAX", self.cache_max)
            self.cache_max = None
        if self.warning_filter is not None and self.warning_filter in warnings.filters:
            warnings.filters.remove(self.warning_filter)
            getattr(warnings, "_filters_mutated", lambda: None)()
        self.warning_filter = None
        for name in _GDAL_LOGGERS:
            logger = logging.getLogger(name)
            logger.removeFilter(_GDAL_WARNINGS)
            if name in _GDAL_WARNINGS.forced and logger.level == logging.DEBUG:
                logger.setLevel(logging.NOTSET)
        _GDAL_WARNINGS.forced.clear()


_SELO_GDAL = _SeloGdal()


@contextlib.contextmanager
def gdal_env(location: str | os.PathLike | None = None) -> Iterator[None]:
    """selo's GDAL settings (:class:`_SeloGdal`) and, for a remote ``location``, the
    HTTP and object-store options of :func:`selo.pipeline.remote.gdal_options`, for the
    calls inside: every GDAL call of selo runs in one."""
    options = gdal_options() if location is not None and is_remote(location) else {}
    with _SELO_GDAL, rasterio.Env(**options):
        yield


def strict_reads() -> rasterio.Env:
    """A GDAL environment in which libjpeg's warnings (a truncated or corrupt JPEG,
    which it pads with gray) stop the read with an error at once."""
    return rasterio.Env(GDAL_ERROR_ON_LIBJPEG_WARNING=True)


@contextlib.contextmanager
def _gdal_warnings() -> Iterator[list[str]]:
    """The GDAL warnings logged in this thread inside (GDAL's own words), not shown."""
    with _SELO_GDAL:
        local = _GDAL_WARNINGS.local
        outer = getattr(local, "found", None)
        local.found = found = []
        try:
            yield found
        finally:
            local.found = outer
            found[:] = [_gdal_message(text) for text in found]


_SHORT_READ = re.compile(r"\bgot \d+ bytes\b|\bread failed\b", re.IGNORECASE)


@contextlib.contextmanager
def _pixel_errors(location: str, where: str) -> Iterator[None]:
    """GDAL errors and warnings of the reads inside become a SceneError naming the file
    (a RemoteError where a remote file's request failed)."""
    reason = None
    with _gdal_warnings() as found:
        try:
            with strict_reads():
                yield
        except (RasterioError, CPLE_BaseError) as e:
            reason = error_reason(e)
        except MemoryError:
            reason = "not enough memory to decode it; is its header damaged?"
    if reason is None and found:
        reason = found[0]
    if reason is None:
        return
    if is_remote(location):
        # A failed request is no damage: GDAL says so in its own words, or, where a request
        # timed out, the decoder reads short ("got 0 bytes") from a file whose blocks were
        # all found inside it when it was opened.
        failed = [m for m in [*found, reason] if is_network_message(location, m)]
        failed += [m for m in [reason, *found] if _SHORT_READ.search(m)]
        if failed:
            raise RemoteError(
                f"{location}: cannot read pixel data{where}: the server did not send it "
                f"({failed[0]}); check the connection and try again (GDAL_HTTP_LOW_SPEED_TIME "
                "and GDAL_HTTP_MAX_RETRY set how long selo waits and retries)"
            )
    raise SceneError(
        f"{location}: damaged pixel data{where} ({reason}); copy or download the file again"
    )


def _gdal_message(text: str) -> str:
    """GDAL's own words from a rasterio log line ("CPLE_AppDefined in X: ...")."""
    head, sep, rest = text.partition(" in ")
    if sep and head.startswith("CPLE_"):
        return rest
    head, sep, rest = text.partition(":")
    return rest if sep and head.startswith("CPLE_") else text


# --- opening ----------------------------------------------------------------------------------


@contextlib.contextmanager
def dataset(location: str | os.PathLike) -> Iterator[rasterio.DatasetReader]:
    """Open a local path, URL or GDAL path with rasterio, inside :func:`gdal_env`; a
    failure to open it, or to read its header inside, becomes a SceneError naming it
    (pixel reads: :func:`read_pixels`)."""
    location = os.fspath(location)
    remote = is_remote(location)
    with gdal_env(location):
        try:
            if not remote and os.path.isdir(location):
                raise SceneError(
                    f"{location}: not a raster rasterio can read (it is a folder); "
                    "pass the image file"
                )
            if not remote and not os.path.exists(location):
                raise InputNotFoundError(f"{location}: scene not found; check the path")
            ds = rasterio.open(gdal_path(location))
        except (SceneError, InputNotFoundError):
            raise
        except (RasterioError, CPLE_BaseError) as e:
            if remote and is_network_message(location, error_reason(e)):
                raise RemoteError(f"{location}: cannot be read ({error_reason(e)})") from e
            raise SceneError(
                f"{location}: not a raster rasterio can read ({error_reason(e)}); "
                "check that the file is complete and in a format GDAL supports"
            ) from e
        except OSError as e:
            raise SceneError(f"{location}: cannot read the file ({error_reason(e)})") from e
        except Exception as e:  # noqa: BLE001 - any other reader failure: an unusable file
            raise SceneError(
                f"{location}: not a raster rasterio can read ({type(e).__name__}: {e})"
            ) from e
        with ds:
            try:
                yield ds
            except (RasterioError, CPLE_BaseError, CRSError) as e:
                raise SceneError(
                    f"{location}: damaged file ({error_reason(e)}); copy or download the file again"
                ) from e


_SEEN_VERSIONS: dict[str, str] = {}  # remote location -> the version this process read last
_SEEN_LOCK = threading.Lock()


def refresh_remote(location: str, version: str) -> None:
    """Before reading a remote file at ``version``: if this process read it before at
    another version, make GDAL forget what it kept of it (GDAL's /vsicurl/ cache of
    headers and blocks outlives datasets; opening and closing the file once with
    ``CPL_VSIL_CURL_NON_CACHED`` drops it), so that a changed object is read anew."""
    if not is_remote(location):
        return
    with _SEEN_LOCK:
        before = _SEEN_VERSIONS.get(location)
        _SEEN_VERSIONS[location] = version
    if before is None or before == version:
        return
    path = gdal_path(location)
    with gdal_env(location), rasterio.Env(CPL_VSIL_CURL_NON_CACHED=path):
        with contextlib.suppress(RasterioError, CPLE_BaseError):
            rasterio.open(path).close()


def _info(ds: rasterio.DatasetReader, location: str, stat: ObjectInfo) -> SceneInfo:
    if ds.count == 0 or ds.height == 0 or ds.width == 0:
        extra = "; open one of its subdatasets" if ds.subdatasets else ""
        raise SceneError(
            f"{location}: not a usable scene ({ds.count} bands of {ds.height}×{ds.width} "
            f"pixels){extra}"
        )
    if np.dtype(ds.dtypes[0]).kind == "c":
        raise SceneError(f"{location}: complex pixels ({ds.dtypes[0]}) are not supported")
    size = stat.size
    if ds.driver == "GTiff" and size is not None:
        checked = (_resolved(location), stat.version)
        if checked not in _CHECKED_TIFFS:  # a large block table takes a while to walk
            _check_tiff_blocks(ds, location, size)
            if len(_CHECKED_TIFFS) > 1024:
                _CHECKED_TIFFS.clear()
            _CHECKED_TIFFS.add(checked)
    pixels = ds.height * ds.width
    most = _MAX_PIXELS_PER_BYTE.get(ds.driver)
    if (
        most is not None
        and size is not None
        and pixels > _SMALL_SCENE_PIXELS
        and pixels > most * max(size, 1)
    ):
        raise SceneError(
            f"{location}: its header claims {ds.width}×{ds.height} pixels but the file holds "
            f"only {size} bytes; the file is damaged or incomplete: copy or download it again"
        )
    return SceneInfo(
        location=location,
        height=ds.height,
        width=ds.width,
        count=ds.count,
        dtype=ds.dtypes[0],
        crs=ds.crs.to_string() if ds.crs else None,
        transform=ds.transform,
        nodata=ds.nodata,
        driver=ds.driver,
        block_shape=tuple(ds.block_shapes[0]),
        version=stat.version,
    )


def _resolved(location: str) -> str:
    return location if is_remote(location) else str(Path(location).resolve())


@dataclass(frozen=True)
class _Blocks:
    """What a GeoTIFF's block table says: where its data ends, how many blocks it
    declares, how many are absent, the first uncompressed block shorter than its
    declared size (index, bytes, bytes needed), and the first warning libtiff gave
    while reading the table (e.g. fewer entries than the image size needs)."""

    end: int
    total: int
    missing: int
    short: tuple[str, int, int] | None
    warning: str | None


def _tiff_blocks(ds: rasterio.DatasetReader) -> _Blocks:
    bands = [1] if ds.interleaving == Interleaving.pixel or ds.count == 1 else ds.indexes
    per_pixel = np.dtype(ds.dtypes[0]).itemsize * (ds.count if len(bands) == 1 else 1)
    # uncompressed blocks have a known size (not for sub-byte or subsampled pixels)
    exact = (
        ds.compression is None
        and "NBITS" not in ds.tags(ns="IMAGE_STRUCTURE")
        and ds.photometric != PhotometricInterp.ycbcr
    )
    end = total = missing = 0
    short = None
    with _gdal_warnings() as found:  # the table is read lazily, here: its warnings too
        for band in bands:
            rows, cols = ds.block_shapes[band - 1]
            for j in range(math.ceil(ds.height / rows)):
                needed = min(rows, ds.height - j * rows) * cols * per_pixel
                for i in range(math.ceil(ds.width / cols)):
                    total += 1
                    offset = int(ds.get_tag_item(f"BLOCK_OFFSET_{i}_{j}", "TIFF", bidx=band) or 0)
                    size = int(ds.get_tag_item(f"BLOCK_SIZE_{i}_{j}", "TIFF", bidx=band) or 0)
                    if offset <= 0 or size <= 0:
                        missing += 1
                        continue
                    end = max(end, offset + size)
                    if exact and short is None and size < needed:
                        short = (f"{i},{j}", size, needed)
    return _Blocks(end, total, missing, short, found[0] if found else None)


def tiff_data_end(ds: rasterio.DatasetReader) -> int:
    """The byte at which the last pixel block of a GeoTIFF ends, read from its
    block table (0 for other formats).

    A GeoTIFF shorter than this is truncated: it opens (its directory comes
    first) and fails, or reads zeros, only where the missing blocks are read."""
    return _tiff_blocks(ds).end if ds.driver == "GTiff" else 0


# TIFF magic -> (first-directory offset format, its byte, entry-count format, entry format):
# classic TIFF (42) and BigTIFF (43)
_TIFF_LAYOUTS = {42: ("I", 4, "H", "HHII"), 43: ("Q", 8, "Q", "HHQQ")}


def _tiff_table_sizes(location: str | os.PathLike) -> tuple[int, int] | None:
    """(blocks the first directory's image size needs, entries of its block offset table),
    read from the TIFF itself (classic or BigTIFF, either byte order; a remote one by a few
    small range requests); None if the directory cannot be read this way (GDAL, which
    opened the file, judges it then)."""
    try:
        with open_binary(os.fspath(location)) as f:
            head = f.read(16)
            order = {b"II": "<", b"MM": ">"}.get(head[:2])
            if order is None:
                return None
            layout = _TIFF_LAYOUTS.get(struct.unpack(order + "H", head[2:4])[0])
            if layout is None:
                return None
            offset_fmt, offset_at, count_fmt, entry_fmt = layout
            offset = struct.unpack_from(order + offset_fmt, head, offset_at)[0]
            width = struct.calcsize(order + entry_fmt)  # bytes of one directory entry
            f.seek(offset)
            raw = f.read(struct.calcsize(order + count_fmt))
            (n,) = struct.unpack(order + count_fmt, raw)
            table = f.read(n * width)
    except (OSError, struct.error, SeloError):
        return None
    if len(table) < n * width:
        return None
    tags: dict[int, tuple[int, int, int]] = {}
    for i in range(n):
        tag, kind, count, value = struct.unpack_from(order + entry_fmt, table, i * width)
        if kind == 3:  # SHORT: the value sits in the first two bytes of the value field
            field_at = i * width + struct.calcsize(order + entry_fmt[:3])
            value = struct.unpack_from(order + "H", table, field_at)[0]
        tags[tag] = (kind, count, value)

    def value(tag: int, default: int) -> int:
        return tags[tag][2] if tag in tags and tags[tag][1] == 1 else default

    width_px, height_px = value(256, 0), value(257, 0)
    if 324 in tags:  # tiles
        tw, th = value(322, 0), value(323, 0)
        if not (tw and th):
            return None
        needed = math.ceil(width_px / tw) * math.ceil(height_px / th)
        entries = tags[324][1]
    elif 273 in tags:  # strips
        rows = value(278, height_px) or height_px
        needed = math.ceil(height_px / max(rows, 1))
        entries = tags[273][1]
    else:
        return None
    if value(284, 1) == 2:  # planar: one table per sample
        needed *= value(277, 1)
    return needed, entries


def _check_tiff_blocks(ds: rasterio.DatasetReader, path: str, size: int) -> None:
    """A GeoTIFF's pixel blocks must all be in the file, uncompressed ones whole.

    A header that claims more pixels than its block table holds (a damaged size,
    or a block table cut short) would otherwise read as zeros where blocks are
    missing; a sparse GeoTIFF, which leaves out empty blocks on purpose (with a
    full table of zero offsets), must say what they hold with a nodata value (or a
    mask)."""
    sizes = _tiff_table_sizes(path)
    if sizes is not None and sizes[1] < sizes[0]:
        raise SceneError(
            f"{path}: damaged GeoTIFF: its header claims {ds.width}×{ds.height} pixels in "
            f"{sizes[0]} blocks, but its block table has {sizes[1]} entries; copy or download "
            "the file again"
        )
    blocks = _tiff_blocks(ds)
    if blocks.warning is not None:
        raise SceneError(
            f"{path}: damaged GeoTIFF: its block table does not fit its declared "
            f"{ds.width}×{ds.height} pixels ({blocks.warning}); copy or download the file again"
        )
    if blocks.end > size:
        raise SceneError(
            f"{path}: not a raster rasterio can read (truncated: {size} bytes, but its "
            f"pixel blocks end at byte {blocks.end}); copy or download the file again"
        )
    if blocks.missing and ds.nodata is None and not has_dataset_mask(ds):
        raise SceneError(
            f"{path}: its header claims {ds.width}×{ds.height} pixels in {blocks.total} blocks, "
            f"but {blocks.missing} of them are not in the file; the file is damaged or "
            "incomplete: copy or download it again (a sparse GeoTIFF needs a nodata value)"
        )
    if blocks.short is not None:
        index, got, needed = blocks.short
        raise SceneError(
            f"{path}: damaged GeoTIFF: pixel block {index} holds {got} bytes, but its "
            f"declared size needs {needed}; copy or download the file again"
        )


def inspect_scene(location: str | os.PathLike, *, stat: ObjectInfo | None = None) -> SceneInfo:
    """Read a scene's header (no pixels) and check it is a usable, complete raster
    (``stat``: the file's size and version, when the caller has them already)."""
    location = os.fspath(location)
    stat = stat or object_info(location)
    refresh_remote(location, stat.version)
    with dataset(location) as ds:
        return _info(ds, location, stat)


def has_dataset_mask(ds: rasterio.DatasetReader) -> bool:
    """Whether the file has a mask beyond nodata values (internal mask, alpha)."""
    return any(
        MaskFlags.per_dataset in flags or MaskFlags.alpha in flags for flags in ds.mask_flag_enums
    )


# --- reading pixels ---------------------------------------------------------------------------


def read_pixels(
    ds: rasterio.DatasetReader,
    bands: tuple[int, ...] | list[int] | None = None,
    *,
    window: Window | None = None,
    out_shape: tuple[int, int] | None = None,
    mask: bool = False,
    where: str = "",
    interleaved: bool = False,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(pixels (bands, rows, cols), mask (rows, cols) uint8 or None)`` of an open
    dataset, read strictly: any GDAL error or warning during the read is a SceneError
    naming the file (``where`` says which part, e.g. ``" in rows 0-512"``).

    ``bands`` default to all (``()``: none, pixels None); ``out_shape`` samples by
    nearest neighbour (GDAL uses the file's overviews when it has them); ``mask``
    also reads the dataset mask. ``interleaved``: the pixels are a view of a
    ``(rows, cols, bands)`` array GDAL reads into (``window`` of whole pixels), so that
    ``np.moveaxis(pixels, 0, -1)`` is that array, contiguous: for a caller that wants
    pixels interleaved, about half the CPU of a band-by-band read and the strided copy
    that interleaves it again (a pixel-interleaved RGB GeoTIFF, 40,000 px wide); ``out``
    is such an array to read into (interleaved implied)."""
    indexes = list(bands) if bands is not None else list(ds.indexes)
    if window is None:
        rows, cols = ds.height, ds.width
    else:
        rows, cols = int(round(window.height)), int(round(window.width))
    rows, cols = out_shape or (rows, cols)
    with _pixel_errors(url_of(ds.name) or ds.name, where):
        if not indexes:
            pixels = None
        elif interleaved or out is not None:
            dtype = np.result_type(*(ds.dtypes[i - 1] for i in indexes))
            buffer = np.empty((rows, cols, len(indexes)), dtype) if out is None else out
            pixels = buffer.transpose(2, 0, 1)
            ds.read(indexes, window=window, out=pixels)  # out's shape samples like out_shape
        else:
            shape = None if out_shape is None else (len(indexes), *out_shape)
            pixels = ds.read(indexes, window=window, out_shape=shape)
        masks = ds.dataset_mask(window=window, out_shape=out_shape) if mask else None
    return pixels, masks


def read_decimated(
    location: str, bands: tuple[int, ...], out_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels ``(len(bands), rows, cols)`` and mask sampled by nearest neighbour (GDAL
    uses the file's overviews when it has them)."""
    with dataset(location) as ds:
        pixels, mask = read_pixels(ds, bands, out_shape=out_shape, mask=has_dataset_mask(ds))
    return pixels, None if mask is None else mask > 0


def verify_pixels(path: str | os.PathLike) -> SceneInfo:
    """Check a whole raster file: its header (:func:`inspect_scene`), then its pixel
    data: a PNG's chunks and data size (:func:`verify_png`), any other file decoded
    strictly strip by strip. For files another library reads whole (maps)."""
    path = os.fspath(path)
    info = inspect_scene(path)
    if info.driver == "PNG":
        verify_png(path)
        return info
    with dataset(path) as ds:
        for top in range(0, info.height, _STAGE_STRIP):
            rows = min(_STAGE_STRIP, info.height - top)
            read_pixels(ds, window=Window(0, top, info.width, rows), where=f" near row {top}")
    return info


def verify_png(path: str | os.PathLike) -> None:
    """Check that a PNG is whole: every chunk complete and matching its CRC, the end
    chunk present, and its compressed pixel data exactly the size its header declares
    (GDAL's PNG driver fills missing data with zeros instead of failing)."""
    path = os.fspath(path)

    def damaged(what: str) -> SceneError:
        return SceneError(f"{path}: damaged PNG ({what}); copy or download the file again")

    try:
        with open_binary(path) as f:
            if f.read(8) != _PNG_SIGNATURE:
                raise damaged("no PNG signature")
            expected = None
            inflater = zlib.decompressobj()
            inflated = 0
            while True:
                head = f.read(8)
                if len(head) < 8:
                    raise damaged("truncated: the file ends before its IEND chunk")
                length, kind = struct.unpack(">I4s", head)
                if length > 0x7FFFFFFF:
                    raise damaged(f"chunk {kind!r} claims {length} bytes")
                crc = zlib.crc32(kind)
                left = length
                while left:
                    piece = f.read(min(left, _READ_PIECE))
                    if not piece:
                        raise damaged(f"truncated inside chunk {kind.decode('latin-1')}")
                    crc = zlib.crc32(piece, crc)
                    left -= len(piece)
                    if kind == b"IHDR":
                        expected = _png_data_size(piece, damaged)
                    elif kind == b"IDAT":
                        inflated += _inflate_count(inflater, piece, damaged)
                tail = f.read(4)
                if len(tail) < 4:
                    raise damaged(f"truncated inside chunk {kind.decode('latin-1')}")
                if struct.unpack(">I", tail)[0] != crc:
                    raise damaged(f"chunk {kind.decode('latin-1')} fails its CRC check")
                if kind == b"IEND":
                    break
    except OSError as e:
        raise SceneError(f"{path}: cannot read the file ({error_reason(e)})") from e
    if expected is None:
        raise damaged("no IHDR chunk")
    if not inflater.eof or inflated < expected:
        raise damaged(
            f"its pixel data ends after {inflated} of the {expected} bytes its header declares"
        )


def _png_data_size(ihdr: bytes, damaged) -> int:
    """Bytes of filtered pixel data a PNG's IHDR declares (Adam7 passes included)."""
    if len(ihdr) != 13:
        raise damaged("IHDR chunk of the wrong length")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    channels = _PNG_CHANNELS.get(colour)
    if channels is None or depth not in (1, 2, 4, 8, 16) or width == 0 or height == 0:
        raise damaged(f"IHDR declares an impossible image ({width}×{height}, type {colour})")
    bits = depth * channels

    def size(w: int, h: int) -> int:
        return 0 if w == 0 or h == 0 else h * (1 + (w * bits + 7) // 8)

    if interlace == 0:
        return size(width, height)
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2)]
    passes.append((0, 1, 1, 2))
    return sum(
        size((width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy) for x0, y0, dx, dy in passes
    )


def _inflate_count(inflater, data: bytes, damaged) -> int:
    """Bytes inflated from ``data``, with bounded memory."""
    count = 0
    try:
        while data and not inflater.eof:
            count += len(inflater.decompress(data, _READ_PIECE))
            data = inflater.unconsumed_tail
    except zlib.error as e:
        raise damaged(f"its compressed pixel data is corrupt: {e}") from None
    return count


# --- staged copies ----------------------------------------------------------------------------


def write_staged_copy(path: str, info: SceneInfo, target: Path) -> None:
    """Copy all bands (and the file's mask) strip by strip, top to bottom, into a
    tiled, uncompressed GeoTIFF: one strip of full-width rows in memory at a time.
    Uncompressed, the copy costs little more than decoding the source once, and
    reading its tiles back costs nothing to decode.

    Damaged source data (a truncated JPEG or PNG, a corrupt block) raises a
    SceneError naming the source instead of being copied as zeros or gray; a
    failure to write the copy is an OutputError naming it."""
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
    if info.driver == "PNG":
        verify_png(path)
    with dataset(path) as ds, rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        masked = has_dataset_mask(ds)
        with _written(target, **profile) as out:
            for top in range(0, info.height, _STAGE_STRIP):
                window = Window(0, top, info.width, min(_STAGE_STRIP, info.height - top))
                strip, mask = read_pixels(ds, window=window, mask=masked, where=f" near row {top}")
                try:
                    out.write(strip, window=window)
                    if mask is not None:
                        out.write_mask(mask, window=window)
                except (RasterioError, CPLE_BaseError, OSError) as e:
                    raise OutputError(
                        f"{target}: cannot write the staged copy of {path} ({error_reason(e)}); "
                        "free space or point --cache-dir at another folder"
                    ) from e


@contextlib.contextmanager
def _written(target: Path, **profile) -> Iterator[rasterio.io.DatasetWriter]:
    try:
        out = rasterio.open(target, "w", **profile)  # (inside dataset(): selo's GDAL settings)
    except (RasterioError, CPLE_BaseError, OSError) as e:
        raise OutputError(f"{target}: cannot write the staged copy ({error_reason(e)})") from e
    with out:
        yield out
