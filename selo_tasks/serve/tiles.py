"""Tiles of a scene and of its SeLo maps: the pyramid's geometry and one tile's pixels.

The pyramid is the one Leaflet's ``L.CRS.Simple`` asks for when one map unit is one
scene pixel (no reprojection; plain scenes without CRS work the same way). For a scene
of H × W pixels:

- zooms ``z = 0 … Z`` with ``Z = max(0, ceil(log2(max(H, W) / 256)))``;
- at zoom ``z`` a tile is 256 × 256 pixels and spans ``s = 256 · f`` scene pixels a
  side, ``f = 2^(Z − z)``; tile ``(x, y)`` covers rows ``y·s … (y+1)·s`` and columns
  ``x·s … (x+1)·s``; tiles exist for ``0 ≤ x < ceil(W / s)``, ``0 ≤ y < ceil(H / s)``;
- tile pixel ``i`` shows the scene pixel under its centre, ``y·s + floor((i + ½)·f)``
  (:func:`~selo.pipeline.preview.decimation_indices`, the rule of every preview), so a
  tile at zoom Z is the window itself and a map tile at zoom z is the same sample of
  the map that :func:`~selo.pipeline.preview.decimate` takes;
- map tile pixels beyond the scene's edge are transparent (0 in gray tiles); so is all of
  a tile when a side of the scene is thinner than ``f`` pixels (no pixel centre falls in it).

Map tiles come in two styles: ``jet`` (OpenCV's JET colours of ``overlay.png``, opaque
inside the scene; a palette PNG when the tile is all inside, four times less to compress
than RGBA) and ``gray`` (the uint8 map values themselves). Scene tiles are JPEG (textured
pixels take ten times longer as PNG): they lie under everything, so pixels beyond the scene
and without data are drawn in the page's background colour, ``BACKGROUND``.
"""

from __future__ import annotations

import io
import math
import threading
from dataclasses import dataclass
from typing import Literal, get_args

import cv2
import numpy as np
import xarray as xr

from ...errors import MapError, ParameterError
from ...pipeline.preview import decimation_indices, read_preview
from ...pipeline.scene import region_reader

__all__ = [
    "TILE",
    "SceneTiles",
    "TileGrid",
    "check_style",
    "colormap_png",
    "map_tile",
    "max_zoom",
]

TILE = 256
PREVIEW_SIDE = 2048  # scene tiles coarser than this preview are sampled from it
PNG_LEVEL = 1  # tiles are rendered per request: fast compression
JPEG_QUALITY = 90
BACKGROUND = (59, 63, 70)  # RGB of the map's background in the page (app.css: #3b3f46)

_JET = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[None], cv2.COLORMAP_JET)[0]  # BGR
_JET_PALETTE = _JET[:, ::-1].ravel().tolist()  # RGB, value by value

Style = Literal["jet", "gray"]
STYLES: tuple[str, ...] = get_args(Style)


def check_style(style: str) -> Style:
    """``style`` if it is one of the map tiles' :data:`Style`, else a ParameterError."""
    if style not in STYLES:
        raise ParameterError(f"style must be {' or '.join(STYLES)}, got {style!r}")
    return style


def max_zoom(height: int, width: int) -> int:
    """``Z = max(0, ceil(log2(max(H, W) / 256)))``: the zoom where a tile is 256 scene pixels."""
    side = max(height, width)
    return max(0, math.ceil(math.log2(side / TILE))) if side > TILE else 0


@dataclass(frozen=True)
class TileGrid:
    """The tile pyramid of a scene of ``height`` × ``width`` pixels (see the module)."""

    height: int
    width: int

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ParameterError(
                f"a tile grid needs a non-empty scene, got {self.height}x{self.width}"
            )

    @property
    def zmax(self) -> int:
        return max_zoom(self.height, self.width)

    def counts(self, z: int) -> tuple[int, int]:
        """Tiles ``(across, down)`` at zoom ``z``."""
        span = self.span(z)
        return -(-self.width // span), -(-self.height // span)

    def span(self, z: int) -> int:
        """Scene pixels a tile spans at zoom ``z``, ``256 · 2^(Z − z)``."""
        if not 0 <= z <= self.zmax:
            raise ParameterError(f"zoom {z} is outside 0..{self.zmax}")
        return TILE << (self.zmax - z)

    def check(self, z: int, x: int, y: int) -> None:
        """ParameterError naming the valid ranges unless tile (z, x, y) exists."""
        if not 0 <= z <= self.zmax:
            raise ParameterError(f"no tile {z}/{x}/{y}: zoom must be 0..{self.zmax}")
        across, down = self.counts(z)
        if not (0 <= x < across and 0 <= y < down):
            raise ParameterError(
                f"no tile {z}/{x}/{y}: at zoom {z} x must be 0..{across - 1} and y 0..{down - 1}"
            )

    def window(self, z: int, x: int, y: int) -> tuple[int, int, int, int]:
        """``(r0, r1, c0, c1)``: the part of the scene tile (z, x, y) covers."""
        self.check(z, x, y)
        span = self.span(z)
        r0, c0 = y * span, x * span
        return r0, min(r0 + span, self.height), c0, min(c0 + span, self.width)

    def samples(self, z: int, x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
        """Scene rows and columns the tile's pixels show (only those inside the scene)."""
        r0, r1, c0, c1 = self.window(z, x, y)
        span = self.span(z)
        rows = r0 + decimation_indices(span, TILE)
        cols = c0 + decimation_indices(span, TILE)
        return rows[rows < r1], cols[cols < c1]


def map_tile(finished: np.ndarray, grid: TileGrid, z: int, x: int, y: int, style: Style) -> bytes:
    """PNG of tile (z, x, y) of a finished uint8 map: RGBA JET colours or gray values."""
    check_style(style)
    if finished.shape != (grid.height, grid.width) or finished.dtype != np.uint8:
        raise MapError(f"the map is {finished.dtype} {finished.shape}, the tiles {grid}")
    rows, cols = grid.samples(z, x, y)
    if not (len(rows) and len(cols)):  # a side thinner than one tile pixel at this zoom
        return _png(np.zeros((TILE, TILE) if style == "gray" else (TILE, TILE, 4), np.uint8))
    step = 1 << (grid.zmax - z)  # the samples are every f-th pixel: a strided view
    values = finished[rows[0] : rows[-1] + 1 : step, cols[0] : cols[-1] + 1 : step]
    if style == "gray":
        tile = np.zeros((TILE, TILE), np.uint8)
        tile[: len(rows), : len(cols)] = values
    else:  # jet
        if values.shape == (TILE, TILE):
            return _palette_png(np.ascontiguousarray(values), _JET_PALETTE)
        tile = np.zeros((TILE, TILE, 4), np.uint8)  # BGRA, transparent beyond the scene
        tile[: len(rows), : len(cols), :3] = _JET[values]
        tile[: len(rows), : len(cols), 3] = 255
    return _png(tile)


def colormap_png() -> bytes:
    """The legend: 256 × 1 pixels, value 0 (left) to 255 (right) in the tiles' JET colours."""
    return _png(cv2.applyColorMap(np.arange(256, dtype=np.uint8)[None], cv2.COLORMAP_JET))


class SceneTiles:
    """JPEG tiles of a scene, read through selo's reader of the scene.

    Tiles at least as coarse as a preview of ``preview_side`` pixels (read once, by GDAL
    from the file's overviews where present, or from ``cache``'s kept previews) are
    sampled from it; finer ones are one decimated windowed read each
    (:func:`~selo.pipeline.scene.region_reader` with ``out_shape``).
    Thread-safe: every read opens its own dataset."""

    def __init__(
        self, scene: xr.DataArray, *, preview_side: int = PREVIEW_SIDE, cache=None
    ) -> None:
        self.scene = scene
        self.grid = TileGrid(int(scene.sizes["y"]), int(scene.sizes["x"]))
        self.reader = region_reader(scene)
        self.preview_side = preview_side
        self.cache = cache
        self._preview: np.ndarray | None = None
        self._lock = threading.Lock()

    @property
    def preview_factor(self) -> float:
        """Scene pixels per preview pixel."""
        return max(1.0, max(self.grid.height, self.grid.width) / self.preview_side)

    def preview(self) -> np.ndarray:
        with self._lock:
            if self._preview is None:
                self._preview = read_preview(self.scene, self.preview_side, cache=self.cache)
            return self._preview

    def read(
        self, r0: int, r1: int, c0: int, c1: int, *, out_shape: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(rgb, valid or None)`` of scene rows r0:r1 and columns c0:c1 at ``out_shape``,
        each pixel the scene's under its centre: from the preview when it is as fine."""
        h, w = out_shape
        factor = min((r1 - r0) / h, (c1 - c0) / w)
        if factor >= self.preview_factor and factor > 1:
            small = self.preview()
            rows = (r0 + decimation_indices(r1 - r0, h)) * small.shape[0] // self.grid.height
            cols = (c0 + decimation_indices(c1 - c0, w)) * small.shape[1] // self.grid.width
            return small[rows][:, cols], None
        return self.reader(r0, r1, c0, c1, out_shape=out_shape)

    def tile(self, z: int, x: int, y: int) -> bytes:
        """JPEG of scene tile (z, x, y); ``BACKGROUND`` beyond the scene and without data."""
        rows, cols = self.grid.samples(z, x, y)
        tile = np.empty((TILE, TILE, 3), np.uint8)
        tile[:] = BACKGROUND[::-1]  # BGR for OpenCV
        if not (len(rows) and len(cols)):  # a side thinner than one tile pixel at this zoom
            return _jpeg(tile)
        r0, r1, c0, c1 = self.grid.window(z, x, y)
        rgb, valid = self.read(r0, r1, c0, c1, out_shape=(len(rows), len(cols)))
        if valid is not None:
            rgb = np.where(valid[..., None], rgb, np.array(BACKGROUND, np.uint8))
        tile[: len(rows), : len(cols)] = rgb[..., ::-1]  # RGB -> BGR
        return _jpeg(tile)


def _palette_png(values: np.ndarray, palette: list[int]) -> bytes:
    """An 8-bit palette PNG of uint8 ``values`` (Pillow: OpenCV writes no palettes)."""
    from PIL import Image

    image = Image.frombytes("P", (values.shape[1], values.shape[0]), values.tobytes())
    image.putpalette(palette)
    return _pillow_png(image)


def _pillow_png(image) -> bytes:
    """A Pillow image as PNG, for what OpenCV does not write (palettes, gray and alpha)."""
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=PNG_LEVEL)
    return out.getvalue()


def _jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise MapError(f"OpenCV could not encode a {image.shape} tile as JPEG")
    return buf.tobytes()


def _png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
    if not ok:
        raise MapError(f"OpenCV could not encode a {image.shape} tile as PNG")
    return buf.tobytes()
