"""Scene sources: where a scene's pixels live, carried by every indexing of the scene.

A :class:`SceneSource` is a small frozen value: the files the pixels come from (local
paths, URLs or GDAL ``/vsi…/`` paths, each with its version), per channel which band of
which file, how each becomes uint8 (:class:`~selo.pipeline.bands.Conversion`) and the
grid. :func:`open_source` makes one from a path, a URL or a STAC item, reading headers
only; :func:`selo.pipeline.scene.open_scene` puts it in the scene variable's
``encoding["selo_source"]`` and gives the scene three integer coordinates that say which
pixels of the source it holds: ``row`` (along y) and ``col`` (along x), rows and columns
of the source's grid, and ``channel`` (along band), the source channel of each band.

xarray keeps a variable's encoding through ``isel``, ``sel``, ``transpose``, ``chunk``,
``copy`` and ``load``, and subsets those coordinates exactly, so :func:`selection_of`
finds, for any indexing of an opened scene, the :class:`Selection` (source, rows,
columns, channels) that Cut reads window by window (:meth:`Selection.__call__`) and the
embedding cache keys on (:meth:`Selection.key`): the file's bands in the order the
scene shows them, and only the selected rows and columns. Operations that compute new
values (arithmetic, ``where``, ``astype``, ``fillna``, ``apply_ufunc``, reprojection)
make a variable without that encoding, and indexing that no window read gives (reversed
or unevenly spaced rows or columns, repeated ones) leaves coordinates that are not an
evenly spaced forward progression: such a scene is read through its own dask graph.

The scene's x/y coordinates must also be the centres of the selected source pixels, so
that an array reprojected or resampled onto another grid, which may keep the other
coordinates and the encoding, is read as an array too. One caveat remains: operations
that move or change values in place but keep the variable (``scene[...] = v``,
``scene.values[...] = v``, ``scene.copy(data=...)``, ``roll``, ``shift`` with a fill
value) or concatenate pieces of a scene with other pixels keep the (first piece's)
encoding and coordinates; :func:`drop_source` makes such an array read as an array.

Tasks carry sources (strings and numbers), never open files: every worker opens what it
reads itself. A local file's identity is the hash of its bytes (computed by the cache
when a key is needed, remembered by size and modification time); a remote object's is
its URL with its ETag / Last-Modified / size (:func:`selo.pipeline.remote.object_info`),
so a changed object is embedded again and an unchanged one is not.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import astuple, dataclass, replace

import numpy as np
import xarray as xr
from rasterio.windows import Window

from ..errors import InputNotFoundError, ParameterError, SceneError, SeloError
from .bands import Conversion, choose_bands, palette_of, stretch_limits, to_rgb
from .remote import is_remote, object_info, url_of
from .scenefile import (
    STAGE_TILE,
    STAGED_DRIVERS,
    SceneInfo,
    dataset,
    has_dataset_mask,
    inspect_scene,
    read_decimated,
    read_pixels,
    refresh_remote,
)

__all__ = [
    "CHANNEL",
    "COL",
    "ENCODING_KEY",
    "ROW",
    "Axis",
    "RASTER_SUFFIXES",
    "SceneRef",
    "SceneSource",
    "Selection",
    "SourceFile",
    "drop_source",
    "collection_sources",
    "expand_sources",
    "inspect_source",
    "locate_scenes",
    "open_source",
    "read_region",
    "selection_of",
]

ENCODING_KEY = "selo_source"
ROW, COL, CHANNEL = "row", "col", "channel"
_SAMPLE_SIDE = 1024  # decimated read for the stretch percentiles
_PIECE_BYTES = 64 * 2**20  # rows read at a time for a stepped selection


@dataclass(frozen=True)
class SourceFile:
    """One file of a source: where it is, its version when opened, and its identity."""

    location: str  # what is read: a local path, a URL or a GDAL path
    version: str  # its size and version when opened (remote.ObjectInfo.version)
    identity: str  # "" for a local file (the cache hashes its bytes), else what names its content
    nodata: float | None
    masked: bool  # a dataset mask beyond nodata (internal mask, alpha band)


@dataclass(frozen=True)
class SceneSource:
    """Where a scene's pixels live (see the module): files, channels, conversion, grid."""

    label: str  # how messages name the scene: the path, URL or STAC item given
    files: tuple[SourceFile, ...]
    channels: tuple[tuple[int, int], ...]  # (file index, 1-based band) per channel
    conversion: Conversion  # per channel
    height: int
    width: int
    dtype: str
    driver: str  # the GDAL driver of the (first) file as given, e.g. "JPEG" for a staged copy
    block: tuple[int, int]  # the block shape reads align to
    transform: tuple[float, ...]  # its grid's affine coefficients a, b, c, d, e, f

    @functools.cached_property
    def token(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()[:32]

    def __dask_tokenize__(self) -> str:
        return self.token

    @property
    def nodata(self) -> tuple[float | None, ...]:
        """Each channel's nodata value (its file's)."""
        return tuple(self.files[f].nodata for f, _ in self.channels)

    @property
    def can_be_nodata(self) -> bool:
        """Whether a pixel's validity depends on its values (NaN or a nodata value)."""
        return np.dtype(self.dtype).kind == "f" or any(v is not None for v in self.nodata)

    @property
    def masked(self) -> bool:
        return any(f.masked for f in self.files)


@dataclass(frozen=True)
class Axis:
    """Evenly spaced source rows (or columns): ``start + step * i`` for ``i < size``."""

    start: int
    step: int
    size: int

    @property
    def stop(self) -> int:
        """One past the last source index."""
        return self.start + self.step * (self.size - 1) + 1

    def part(self, first: int, last: int) -> Axis:
        """Positions ``first:last`` of this axis."""
        return Axis(self.start + self.step * first, self.step, last - first)


@dataclass(frozen=True)
class Selection:
    """The pixels a scene holds of its source: rows, columns and channels (see the module)."""

    source: SceneSource
    rows: Axis
    cols: Axis
    channels: tuple[int, ...]  # the source channel (0-based) of each band of the scene

    @functools.cached_property
    def token(self) -> str:
        text = repr((self.source.token, self.rows, self.cols, self.channels))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def __dask_tokenize__(self) -> str:
        return self.token

    def key(self, cache) -> str:
        """A key that follows the selected pixels (the scene part of the embedding cache key):
        each file's content identity, the channels and their conversion, the selected rows,
        columns and channels; chunking and file locations do not matter."""
        s = self.source
        parts = {
            "files": [_identity(f, cache) for f in s.files],
            "nodata": [f.nodata for f in s.files],
            "masked": [f.masked for f in s.files],
            "channels": s.channels,
            "conversion": s.conversion.key,
            "dtype": s.dtype,
            "bands": self.channels,
            "rows": astuple(self.rows),
            "cols": astuple(self.cols),
        }
        text = json.dumps(parts, sort_keys=True, default=str)
        return "source:" + hashlib.sha256(text.encode()).hexdigest()[:32]

    @property
    def row_blocks(self) -> tuple[int, int] | None:
        """``(first, rows)``: scene rows ``first + k · rows`` begin the blocks of rows of the
        source's (first) file, which a read decodes whole; None for stepped rows."""
        if self.rows.step != 1:
            return None
        rows = self.source.block[0]
        return (-self.rows.start) % rows, rows

    def __call__(
        self, r0: int, r1: int, c0: int, c1: int, *, out_shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(rgb (h, w, bands) uint8, valid (h, w) bool or None)`` of scene rows r0:r1 and
        cols c0:c1, read from the source's files window by window (each file block decoded
        once per call), converted and masked as the scene is; with ``out_shape`` shrunk to
        it by GDAL's nearest sampling (from the files' overviews where present)."""
        s = self.source
        # a pixel's validity depends on every channel of the source when values can be nodata
        needed = tuple(range(len(s.channels))) if s.can_be_nodata else tuple(self.channels)
        rows, cols = self.rows.part(r0, r1), self.cols.part(c0, c1)
        pixels, mask = read_region(s, rows, cols, needed, out_shape=out_shape, mask=s.masked)
        nodata = tuple(s.nodata[c] for c in needed)
        rgb, valid = to_rgb(pixels, mask, nodata, s.conversion.select(needed))
        if needed != self.channels:
            rgb = rgb[[needed.index(c) for c in self.channels]]
        return np.ascontiguousarray(np.moveaxis(rgb, 0, -1)), valid

    def into(self, out: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> np.ndarray | None:
        """Scene rows r0:r1 and cols c0:c1 into ``out`` ((h, w, bands) uint8), as
        :meth:`__call__` gives them; returns ``valid``. A source whose channels are one
        uint8 file's bands, as they are, is read straight into ``out``."""
        s = self.source
        needed = tuple(range(len(s.channels))) if s.can_be_nodata else tuple(self.channels)
        if needed != self.channels or np.dtype(s.dtype) != out.dtype:
            rgb, valid = self(r0, r1, c0, c1)
            out[...] = rgb
            return valid
        rows, cols = self.rows.part(r0, r1), self.cols.part(c0, c1)
        pixels, mask = read_region(s, rows, cols, needed, mask=s.masked, out=out)
        nodata = tuple(s.nodata[c] for c in needed)
        rgb, valid = to_rgb(pixels, mask, nodata, s.conversion.select(needed))
        rgb = np.moveaxis(rgb, 0, -1)
        if not np.shares_memory(rgb, out):
            out[...] = rgb
        return valid


def _identity(file: SourceFile, cache) -> str:
    if file.identity:
        return file.identity
    _check_unchanged(file)
    return "sha256=" + cache.scene_key(file.location)


def _check_unchanged(file: SourceFile) -> None:
    """A local file must be as it was when the scene was opened (a remote one is checked
    when opened; see :func:`selo.pipeline.scenefile.refresh_remote`)."""
    if is_remote(file.location):
        return
    now = object_info(file.location).version
    if now != file.version:
        raise SceneError(
            f"{file.location}: changed since the scene was opened ({file.version} -> {now}); "
            "open it again"
        )


# --- finding the selection of a scene --------------------------------------------------------


def selection_of(scene: xr.DataArray) -> Selection | None:
    """The source pixels ``scene`` (a (y, x, band) DataArray) holds, when its encoding
    names a source and its ``row``/``col``/``channel`` coordinates are evenly spaced
    forward progressions inside it (None: read the array itself)."""
    source = scene.encoding.get(ENCODING_KEY)
    if not isinstance(source, SceneSource) or scene.dims != ("y", "x", "band"):
        return None
    rows = _axis(scene, ROW, "y", source.height)
    cols = _axis(scene, COL, "x", source.width)
    channels = _channels(scene, len(source.channels))
    if rows is None or cols is None or channels is None:
        return None
    if not _on_grid(scene, source, rows, cols):
        return None
    return Selection(source, rows, cols, channels)


def _on_grid(scene: xr.DataArray, source: SceneSource, rows: Axis, cols: Axis) -> bool:
    """Whether the scene's x/y coordinates are the centres of the selected source pixels
    (a reprojected or resampled array may keep the other coordinates, not these)."""
    a, b, c, d, e, f = source.transform
    if b or d:  # a rotated grid has no 1-D x/y coordinates to compare
        return True
    x, y = scene.coords.get("x"), scene.coords.get("y")
    if x is None or y is None or x.dims != ("x",) or y.dims != ("y",):
        return False
    expected_x = c + a * (cols.start + cols.step * np.arange(cols.size) + 0.5)
    expected_y = f + e * (rows.start + rows.step * np.arange(rows.size) + 0.5)
    tolerance = 1e-6 * max(abs(a), abs(e))
    return bool(
        np.abs(np.asarray(x.values, float) - expected_x).max() <= tolerance
        and np.abs(np.asarray(y.values, float) - expected_y).max() <= tolerance
    )


def _axis(scene: xr.DataArray, name: str, dim: str, limit: int) -> Axis | None:
    coord = scene.coords.get(name)
    if coord is None or coord.dims != (dim,):
        return None
    values = np.asarray(coord.values)  # (chunk() makes even coordinates dask arrays)
    if values.dtype.kind not in "iu" or not len(values):
        return None
    start = int(values[0])
    step = int(values[1]) - start if len(values) > 1 else 1
    if step < 1 or start < 0 or start + step * (len(values) - 1) >= limit:
        return None
    if not np.array_equal(values, start + step * np.arange(len(values))):
        return None
    return Axis(start, step, len(values))


def _channels(scene: xr.DataArray, count: int) -> tuple[int, ...] | None:
    coord = scene.coords.get(CHANNEL)
    if coord is None or coord.dtype.kind not in "iu":
        return None
    if coord.dims == ():  # one band of the source broadcast (e.g. a gray band made RGB)
        values = [int(coord.values)] * scene.sizes["band"]
    elif coord.dims == ("band",):
        values = [int(v) for v in coord.values]
    else:
        return None
    if not all(0 <= v < count for v in values):
        return None
    return tuple(values)


def drop_source(scene: xr.DataArray) -> xr.DataArray:
    """``scene`` without its source: read through its own values from now on (after
    changing them in place)."""
    scene = scene.copy()
    scene.encoding.pop(ENCODING_KEY, None)
    return scene


# --- reading ----------------------------------------------------------------------------------


def read_region(
    source: SceneSource,
    rows: Axis,
    cols: Axis,
    channels: Sequence[int],
    *,
    out_shape: tuple[int, int] | None = None,
    mask: bool = False,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(pixels (len(channels), h, w) in the source's type, mask (h, w) bool or None)`` of
    the given source rows and columns, strictly read (damaged data is a SceneError).

    Unit steps are one windowed read per file; larger steps read the rows between too, a
    band of rows at a time within a memory budget, and keep every ``step``-th. With
    ``out_shape`` the covering window is sampled by GDAL's nearest neighbour instead.
    ``out``: an (h, w, channels) array of the source's type that unit steps read into
    (the pixels are then its view); other reads copy into it."""
    if out_shape is not None or (rows.step == 1 and cols.step == 1):
        return _read_window(source, rows.start, rows.stop, cols.start, cols.stop, channels,
                            out_shape, mask, out)  # fmt: skip
    pixels, m = _read_stepped(source, rows, cols, channels, mask)
    if out is not None:
        out[...] = np.moveaxis(pixels, 0, -1)
        pixels = out.transpose(2, 0, 1)
    return pixels, m


def _read_stepped(source, rows: Axis, cols: Axis, channels, mask):
    """Every ``step``-th row and column, a band of rows at a time within the budget."""
    span = (cols.stop - cols.start) * len(channels) * np.dtype(source.dtype).itemsize
    per_piece = max(1, _PIECE_BYTES // max(1, span * rows.step))
    pieces, masks = [], []
    for first in range(0, rows.size, per_piece):
        part = rows.part(first, min(rows.size, first + per_piece))
        pixels, m = _read_window(source, part.start, part.stop, cols.start, cols.stop,
                                 channels, None, mask)  # fmt: skip
        pieces.append(pixels[:, :: rows.step, :: cols.step])
        if m is not None:
            masks.append(m[:: rows.step, :: cols.step])
    return np.concatenate(pieces, axis=1), np.concatenate(masks) if masks else None


def _read_window(source, r0, r1, c0, c1, channels, out_shape, mask, buffer=None):
    """One windowed read per file of the channels it holds (and of every masked file's mask),
    into ``buffer`` ((h, w, channels)) when given."""
    window = Window(c0, r0, c1 - c0, r1 - r0)
    shape = out_shape or (r1 - r0, c1 - c0)
    if buffer is None:
        buffer = np.empty((*shape, len(channels)), np.dtype(source.dtype))
    # (channels, h, w) over a pixel-interleaved buffer: Cut wants (h, w, channels)
    out = buffer.transpose(2, 0, 1)
    valid = None
    where = f" in rows {r0}-{r1}, columns {c0}-{c1}"
    for index, file in enumerate(source.files):
        positions = [i for i, c in enumerate(channels) if source.channels[c][0] == index]
        wanted = mask and file.masked
        if not positions and not wanted:
            continue
        _check_unchanged(file)
        refresh_remote(file.location, file.version)
        bands = [source.channels[channels[i]][1] for i in positions]
        # one file holding every channel in order (the usual case): GDAL reads straight
        # into an interleaved buffer (a pixel-interleaved file's tiles copied as they are)
        whole = bool(positions) and positions == list(range(len(channels)))
        with _decode_threads(), dataset(file.location) as ds:
            pixels, m = read_pixels(ds, bands, window=window, out_shape=out_shape, mask=wanted,
                                    where=where, out=buffer if whole else None)  # fmt: skip
        if positions and not whole:
            out[positions] = pixels
        if m is not None:
            valid = m > 0 if valid is None else valid & (m > 0)
    return out, valid


def _decode_threads():
    """GDAL's multi-threaded decoding of the blocks of one read (``GDAL_NUM_THREADS``, all
    cores in one pool per process), unless the host chose a number: GDAL then decodes each
    block straight into the read's buffer, with about two thirds of the CPU of its
    block-by-block path for a pixel-interleaved tiled GeoTIFF read whole-width."""
    from rasterio.env import get_gdal_config

    if get_gdal_config("GDAL_NUM_THREADS") is not None:
        return contextlib.nullcontext()
    import rasterio

    return rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS")


# --- opening ----------------------------------------------------------------------------------


def open_source(
    location,
    *,
    bands: Sequence[int | str] | None = None,
    asset: str | None = None,
    cache,
) -> SceneSource:
    """The source of a scene file (local path, URL, GDAL path) or STAC item (a JSON file
    or URL, a ``pystac.Item``, a :class:`SceneRef`), reading headers only (plus a
    decimated sample for the stretch of non-uint8 pixels); JPEG/PNG/GIF/WEBP files are
    staged once in ``cache``.

    ``bands``: three 1-based band numbers of a file (default: its RGB, see
    :mod:`selo.pipeline.bands`), or names of a STAC item's bands (``red,green,blue``);
    ``asset``: the STAC item's asset to read (default: ``visual``, else its red, green
    and blue bands)."""
    label, parts = _parts(location, bands, asset)
    with _naming(label, parts):
        return _from_parts(label, parts, cache)


def inspect_source(location, *, bands=None, asset=None) -> list[SceneInfo]:
    """Check that :func:`open_source` can open ``location`` with these bands, reading
    headers only (nothing staged, no sample read): the headers of its files."""
    label, parts = _parts(location, bands, asset)
    with _naming(label, parts):
        return _inspect_parts(label, parts)


def _inspect_parts(label: str, parts) -> list[SceneInfo]:
    infos = []
    for file_location, wanted in parts:
        infos.append(inspect_scene(file_location))
        with dataset(file_location) as ds:
            if len(parts) == 1:
                choose_bands(ds, file_location, wanted)
            else:
                _stacked_bands(ds, file_location, wanted)
    _check_grids(label, parts, infos)
    return infos


@contextlib.contextmanager
def _naming(label: str, parts):
    """Errors about the files of a STAC item name the item too."""
    try:
        yield
    except SeloError as e:
        if all(location == label for location, _ in parts) or str(e).startswith(label):
            raise
        error = type(e).__new__(type(e))
        error.args = (f"{label}: {e}", *e.args[1:])
        raise error from None


def _label(location) -> str:
    if isinstance(location, SceneRef):
        return location.location or location.name
    return os.fspath(location) if isinstance(location, str | os.PathLike) else str(location)


def _parts(location, bands, asset) -> tuple[str, list[tuple[str, tuple[int, ...] | None]]]:
    """``(label, [(file location, its bands or None)])`` of a file or STAC item."""
    from . import stac

    item = stac.as_item(location)
    if item is not None:
        inline = isinstance(location, SceneRef) and location.item is not None
        label = f"{location.location} (item {location.name})" if inline else None
        return stac.item_parts(item, asset=asset, bands=bands, label=label)
    label = _label(location)
    if isinstance(location, SceneRef):
        location = location.location
    if asset is not None:
        raise ParameterError(f"{label}: --asset goes with a STAC item, not a raster file")
    if isinstance(bands, list | tuple) and any(isinstance(b, str) for b in bands):
        raise ParameterError(
            f"{label}: band names ({','.join(map(str, bands))}) go with a STAC item; "
            "give a file's bands as numbers, such as 4,3,2"
        )
    return label, [(os.fspath(location), bands)]  # (checked against the file when opened)


def _from_parts(label: str, parts: list[tuple[str, tuple[int, ...] | None]], cache) -> SceneSource:
    """A source from ``(file location, its bands or None)`` parts: one part is a file whose
    bands follow the RGB rule; several are stacked, one channel per band named."""
    files, channels, infos = [], [], []
    palette = None
    for location, wanted in parts:
        stat = object_info(location)
        info = inspect_scene(location, stat=stat)
        with dataset(location) as ds:
            if len(parts) == 1:
                chosen = choose_bands(ds, location, wanted)
                palette = palette_of(ds, chosen)
            else:
                chosen = _stacked_bands(ds, location, wanted)
            masked = has_dataset_mask(ds)
        file = SourceFile(
            location,
            stat.version,
            _remote_identity(location, stat.version) if is_remote(location) else "",
            info.nodata,
            masked,
        )
        if info.driver in STAGED_DRIVERS:
            file = _staged(file, info, cache)
        files.append(file)
        channels += [(len(files) - 1, b) for b in chosen]
        infos.append(info)
    _check_grids(label, parts, infos)
    first = infos[0]
    staged = first.driver in STAGED_DRIVERS
    source = SceneSource(
        label=label,
        files=tuple(files),
        channels=tuple(channels),
        conversion=Conversion(),
        height=first.height,
        width=first.width,
        dtype=first.dtype,
        driver=first.driver,
        block=(STAGE_TILE, STAGE_TILE) if staged else first.block_shape,
        transform=tuple(first.transform)[:6],
    )
    if palette is not None:
        return replace(source, conversion=Conversion.from_palette(palette))
    if first.dtype == "uint8":
        return source
    sample, mask = _sample(source)
    stretch = stretch_limits(sample, mask, source.nodata)
    return replace(source, conversion=Conversion(stretch=stretch))


def _stacked_bands(ds, location: str, wanted) -> tuple[int, ...]:
    wanted = wanted or (1,)
    if not all(isinstance(b, int) and 1 <= b <= ds.count for b in wanted):
        raise SceneError(f"{location}: has {ds.count} band(s); band(s) {wanted} cannot be read")
    return tuple(wanted)


def _remote_identity(location: str, version: str) -> str:
    return f"{url_of(location) or location}|{version}"


def _staged(file: SourceFile, info: SceneInfo, cache) -> SourceFile:
    """The file's tiled GeoTIFF copy in the cache, named by the original's content."""
    if file.identity:
        key = hashlib.sha256(file.identity.encode()).hexdigest()
        identity = file.identity
    else:
        key = cache.scene_key(file.location)
        identity = f"sha256={key}"
    staged = str(cache.staged(file.location, key, info))
    return SourceFile(staged, object_info(staged).version, identity, file.nodata, file.masked)


def _check_grids(label: str, parts, infos: list[SceneInfo]) -> None:
    """Stacked files must share one pixel grid and one pixel type."""
    first = infos[0]
    for (location, _), info in zip(parts, infos, strict=True):
        grid = (info.height, info.width, info.crs, tuple(info.transform))
        if grid != (first.height, first.width, first.crs, tuple(first.transform)):
            raise SceneError(
                f"{label}: {parts[0][0]} ({first.width}×{first.height} pixels, "
                f"{first.transform.a:g} per pixel) and {location} ({info.width}×{info.height}, "
                f"{info.transform.a:g}) are on different grids; choose bands of one resolution "
                "(--bands) or one asset (--asset)"
            )
        if info.dtype != first.dtype:
            raise SceneError(
                f"{label}: {parts[0][0]} holds {first.dtype} pixels but {location} {info.dtype}; "
                "choose bands of one type (--bands) or one asset (--asset)"
            )


def _sample(source: SceneSource) -> tuple[np.ndarray, np.ndarray | None]:
    """A decimated sample of every channel (at most 1024 pixels a side), and the mask."""
    factor = min(1.0, _SAMPLE_SIDE / max(source.height, source.width))
    shape = (max(1, round(source.height * factor)), max(1, round(source.width * factor)))
    sample = np.empty((len(source.channels), *shape), np.dtype(source.dtype))
    valid = None
    for index, file in enumerate(source.files):
        positions = [i for i, (f, _) in enumerate(source.channels) if f == index]
        bands = tuple(source.channels[i][1] for i in positions)
        pixels, mask = read_decimated(file.location, bands, shape)
        sample[positions] = pixels
        if mask is not None:
            valid = mask if valid is None else valid & mask
    return sample, valid


# --- where scenes are -------------------------------------------------------------------------

RASTER_SUFFIXES = (".tif", ".tiff", ".jpg", ".jpeg", ".png", ".gif", ".webp", ".jp2", ".vrt")


@dataclass(frozen=True)
class SceneRef:
    """One scene of a list (:func:`expand_sources`): its name in a run (a file name, or a
    STAC item's id) and where it is (a path, a URL, or a STAC item's JSON location);
    ``item``: the item itself where it has no file of its own (inside an ItemCollection)."""

    name: str
    location: str
    item: dict | None = None


def expand_sources(target: str | os.PathLike) -> list[SceneRef]:
    """The scenes ``target`` names: a folder's or URL prefix's raster files (by suffix,
    sorted by name), the items of a STAC ItemCollection, Catalog or Collection (JSON
    file or URL), or one scene (a file, a URL or a STAC item)."""
    from . import stac

    location = os.fspath(target)
    if stac.is_stac_location(location):
        data = stac.read_json(location)
        if not isinstance(data, dict):
            raise SceneError(f"{location}: not a STAC document")
        return [SceneRef(n, loc, item) for n, loc, item in stac.collection_items(location, data)]
    if is_remote(location):
        from .remote import join, list_names

        if location.rsplit("/", 1)[-1].lower().endswith(RASTER_SUFFIXES):
            return [SceneRef(location.rsplit("/", 1)[-1], location)]
        names = [n for n in list_names(location) if n.lower().endswith(RASTER_SUFFIXES)]
        return [SceneRef(n, join(location, n)) for n in names]
    if os.path.isdir(location):
        names = sorted(n for n in os.listdir(location) if n.lower().endswith(RASTER_SUFFIXES))
        return [SceneRef(n, os.path.join(location, n)) for n in names]
    if not os.path.exists(location):
        raise InputNotFoundError(f"{location}: not found; check the path")
    return [SceneRef(os.path.basename(location), location)]


def collection_sources(items: Sequence[str | os.PathLike]) -> list[SceneRef]:
    """The scenes a list of SCENES arguments names, in order (``selo search``): each
    argument as :func:`expand_sources` takes it (a file, a URL, a STAC item; a folder's,
    URL prefix's or STAC collection's scenes), or a local glob pattern (``*``, ``?``,
    ``[``; ``**`` reaches into subfolders) whose sorted matches are taken so, as a shell
    would pass them. A local path that does not exist is kept as it is, so that opening
    it says what is wrong beside the other scenes that cannot be opened. Nothing is
    deduplicated: a scene named twice is the caller's to report."""
    import glob

    refs: list[SceneRef] = []
    for item in items:
        location = os.fspath(item)
        if is_remote(location) or os.path.exists(location):
            refs += expand_sources(location)
        elif any(c in location for c in "*?["):
            for match in sorted(glob.glob(location, recursive=True)):
                refs += expand_sources(match)
        else:
            refs.append(SceneRef(os.path.basename(location), location))
    return refs


def locate_scenes(target: str | os.PathLike, names) -> dict[str, SceneRef]:
    """Where each of ``names`` (file names, as annotations give them) is in ``target``: a
    folder, a URL prefix, or a STAC ItemCollection, Catalog or Collection (whose items
    are matched by id, with or without the name's suffix); names not found are left out.
    An ``http(s)://`` prefix is listed from its index page, or, where it serves none,
    each name is asked for (a HEAD request)."""
    from . import stac
    from .remote import join, list_names

    location = os.fspath(target)
    names = list(dict.fromkeys(names))
    if stac.is_stac_location(location):
        refs = {r.name: r for r in expand_sources(location)}
        found = {}
        for name in names:
            ref = refs.get(name) or refs.get(os.path.splitext(name)[0])
            if ref is not None:
                found[name] = ref
        return found
    if not is_remote(location):
        if not os.path.isdir(location):
            raise InputNotFoundError(f"{location}: images folder not found")
        return {
            n: SceneRef(n, os.path.join(location, n))
            for n in names
            if os.path.isfile(os.path.join(location, n))
        }
    try:
        present = set(list_names(location))
    except SeloError:
        if not location.lower().startswith(("http://", "https://")):
            raise
        present = None
    found = {}
    for name in names:
        where = join(location, name)
        if present is None:
            try:
                object_info(where)
            except InputNotFoundError:
                continue
        elif name not in present:
            continue
        found[name] = SceneRef(name, where)
    return found
