"""Web Mercator tiles of georeferenced scenes and of their SeLo maps (``selo serve`` over a
collection): the scenes drawn where they are, on Leaflet's default map (EPSG:3857).

The tiles are those of the WebMercatorQuad tile matrix set (morecantile: 256-pixel tiles,
``2^z × 2^z`` of them at zoom ``z``). A scene's tile is drawn in three steps:

1. the scene pixels under the tile: the tile's bounds cut to the scene's, taken to the
   scene's CRS (:func:`rasterio.warp.transform_bounds`, densified edges) and to pixels by
   the inverse of the scene's transform, one pixel of margin;
2. those pixels read at the tile's resolution or finer: ``f = 2^(Z − z)`` scene pixels per
   pixel read (each the pixel under its centre, as every preview), where ``Z`` is the
   scene's *native zoom*, the first whose tile pixels are no larger than the scene's;
3. warped onto the tile's grid by GDAL (:func:`rasterio.warp.reproject`), nearest
   neighbour — a map's values stay values — with an alpha band: the pixels inside the
   scene (and, for scene pixels, with data).

The pixels come from selo's own reader of the scene (its bands, conversion and nodata;
:class:`~selo.selo_tasks.serve.tiles.SceneTiles`), or from the finished map in memory; no
basemap: outside the scenes a tile is the page's background (scene tiles, JPEG) or
transparent (map tiles, PNG).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from affine import Affine

from ...errors import ParameterError
from ...pipeline.preview import decimation_indices
from ...pipeline.scene import Grid
from ...pipeline.scenefile import gdal_env
from .tiles import _JET, BACKGROUND, TILE, Style, _jpeg, _pillow_png, _png, check_style

if TYPE_CHECKING:
    from .tiles import SceneTiles

__all__ = [
    "MAX_LATITUDE",
    "MERCATOR",
    "Placement",
    "check_tile",
    "map_tile",
    "mosaic_tile",
    "place",
    "tile_bounds",
]

MERCATOR = "EPSG:3857"
LONLAT = "EPSG:4326"
MAX_LATITUDE = 85.0511287798  # where Web Mercator's square world ends
FOOTPRINT_POINTS = 8  # points per side of a scene's outline in lon/lat
MIN_DRAWN = 4  # scene tiles draw no scene narrower than this many tile pixels (the page: a dot)
_DENSIFY = 21  # points per edge when bounds change CRS


@functools.cache
def _tms():
    import morecantile

    return morecantile.tms.get("WebMercatorQuad")


def max_zoom() -> int:
    """The deepest zoom of the tile matrix set (24)."""
    return _tms().maxzoom


def check_tile(z: int, x: int, y: int, zmax: int) -> None:
    """ParameterError naming the valid ranges unless tile (z, x, y) exists up to ``zmax``."""
    if not 0 <= z <= zmax:
        raise ParameterError(f"no tile {z}/{x}/{y}: zoom must be 0..{zmax}")
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise ParameterError(f"no tile {z}/{x}/{y}: at zoom {z} x and y must be 0..{n - 1}")


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of tile (z, x, y) in EPSG:3857 metres."""
    import morecantile

    b = _tms().xy_bounds(morecantile.Tile(x, y, z))
    return (b.left, b.bottom, b.right, b.top)


@dataclass(frozen=True)
class Placement:
    """Where a georeferenced scene lies on Web Mercator (see :func:`place`)."""

    grid: Grid
    bounds: tuple[float, float, float, float]  # EPSG:3857 (left, bottom, right, top)
    lonlat: tuple[float, float, float, float]  # (west, south, east, north)
    zoom: int  # the native zoom
    footprint: dict  # the scene's outline, a GeoJSON Polygon in lon/lat

    def describe(self) -> dict:
        return {"lonlat": list(self.lonlat), "zoom": self.zoom, "footprint": self.footprint}

    def factor(self, z: int) -> int:
        """Scene pixels per pixel read at zoom ``z``: ``2^(Z − z)``, 1 from the native zoom."""
        return 1 << max(0, self.zoom - z)

    def window(self, z: int, x: int, y: int) -> tuple[int, int, int, int] | None:
        """The scene pixels (r0, r1, c0, c1) under tile (z, x, y); None when it misses them."""
        from rasterio.warp import transform_bounds

        left, bottom, right, top = tile_bounds(z, x, y)
        sl, sb, sr, st = self.bounds
        left, bottom, right, top = max(left, sl), max(bottom, sb), min(right, sr), min(top, st)
        if left >= right or bottom >= top:
            return None
        x0, y0, x1, y1 = transform_bounds(
            MERCATOR, self.grid.crs, left, bottom, right, top, densify_pts=_DENSIFY
        )
        inverse = ~self.grid.transform
        corners = np.array([inverse @ xy for xy in ((x0, y0), (x0, y1), (x1, y0), (x1, y1))])
        cols, rows = corners[:, 0], corners[:, 1]
        r0 = max(0, math.floor(min(rows)) - 1)
        r1 = min(self.grid.height, math.ceil(max(rows)) + 1)
        c0 = max(0, math.floor(min(cols)) - 1)
        c1 = min(self.grid.width, math.ceil(max(cols)) + 1)
        return (r0, r1, c0, c1) if r0 < r1 and c0 < c1 else None

    def read_shape(self, window: tuple[int, int, int, int], z: int) -> tuple[int, int]:
        """The shape ``window`` is read at for a tile of zoom ``z`` (``f`` pixels a pixel)."""
        r0, r1, c0, c1 = window
        f = self.factor(z)
        return -(-(r1 - r0) // f), -(-(c1 - c0) // f)

    def warp(self, bands: np.ndarray, window: tuple[int, int, int, int], z, x, y) -> np.ndarray:
        """``bands`` (k, h, w uint8: ``window`` read at h × w) on tile (z, x, y), nearest
        neighbour: (k, 256, 256), 0 where no scene pixel falls."""
        from rasterio.transform import from_bounds
        from rasterio.warp import Resampling, reproject

        r0, r1, c0, c1 = window
        h, w = bands.shape[1:]
        source = self.grid.transform @ Affine.translation(c0, r0)
        source @= Affine.scale((c1 - c0) / w, (r1 - r0) / h)
        out = np.zeros((bands.shape[0], TILE, TILE), np.uint8)
        with gdal_env():
            reproject(
                np.ascontiguousarray(bands),
                out,
                src_transform=source,
                src_crs=self.grid.crs,
                dst_transform=from_bounds(*tile_bounds(z, x, y), TILE, TILE),
                dst_crs=MERCATOR,
                resampling=Resampling.nearest,
            )
        return out


def place(grid: Grid) -> Placement | None:
    """The scene's :class:`Placement`; None without a CRS, or where its CRS cannot be
    taken to longitude and latitude (it stays in the pixel view)."""
    if grid.crs is None:
        return None
    from rasterio._err import CPLE_BaseError  # GDAL errors rasterio passes through as they are
    from rasterio.errors import RasterioError
    from rasterio.warp import transform, transform_bounds

    h, w, t = grid.height, grid.width, grid.transform
    corners = np.array([t @ xy for xy in ((0, 0), (w, 0), (0, h), (w, h))])
    xs, ys = corners[:, 0], corners[:, 1]
    try:
        # the outline, densified, in lon/lat (clockwise from the top-left corner)
        steps = np.linspace(0, 1, FOOTPRINT_POINTS, endpoint=False)
        edge = [(s * w, 0) for s in steps] + [(w, s * h) for s in steps]
        edge += [((1 - s) * w, h) for s in steps] + [(0, (1 - s) * h) for s in steps]
        crs_xy = np.array([t @ p for p in edge])
        lons, lats = transform(grid.crs, LONLAT, crs_xy[:, 0], crs_xy[:, 1])
        mercator = transform_bounds(
            grid.crs, MERCATOR, xs.min(), ys.min(), xs.max(), ys.max(), densify_pts=_DENSIFY
        )
    except (RasterioError, CPLE_BaseError, ValueError):  # PROJ cannot take it there
        return None
    lats = np.clip(lats, -MAX_LATITUDE, MAX_LATITUDE)
    if not (np.isfinite(mercator).all() and np.isfinite(lons).all() and np.isfinite(lats).all()):
        return None
    limit = tile_bounds(0, 0, 0)[2]
    left, bottom, right, top = (min(max(v, -limit), limit) for v in mercator)
    if left >= right or bottom >= top:
        return None
    resolution = min((right - left) / w, (top - bottom) / h)  # metres of EPSG:3857 a pixel
    zoom = _tms().zoom_for_res(resolution, zoom_level_strategy="upper")
    ring = [[round(float(lo), 9), round(float(la), 9)] for lo, la in zip(lons, lats, strict=True)]
    ring.append(ring[0])
    lonlat = (float(min(lons)), float(min(lats)), float(max(lons)), float(max(lats)))
    return Placement(
        grid,
        (left, bottom, right, top),
        lonlat,
        int(zoom),
        {"type": "Polygon", "coordinates": [ring[::-1]]},  # counter-clockwise (RFC 7946)
    )


def mosaic_tile(layers: Sequence[tuple[Placement, SceneTiles]], z: int, x: int, y: int) -> bytes:
    """JPEG of tile (z, x, y) of every scene of ``layers`` (a later one over an earlier
    one), ``BACKGROUND`` where none has data. Scenes less than ``MIN_DRAWN`` tile pixels
    across are left out: a zoomed-out tile over many scenes reads none of them."""
    tile = np.empty((TILE, TILE, 3), np.uint8)
    tile[:] = BACKGROUND
    for placement, tiles in layers:
        if max(placement.grid.height, placement.grid.width) < MIN_DRAWN * placement.factor(z):
            continue
        window = placement.window(z, x, y)
        if window is None:
            continue
        rgb, valid = tiles.read(*window, out_shape=placement.read_shape(window, z))
        alpha = np.full(rgb.shape[:2], 255, np.uint8) if valid is None else valid * np.uint8(255)
        bands = np.concatenate([np.moveaxis(rgb, -1, 0), alpha[None]])
        warped = placement.warp(bands, window, z, x, y)
        inside = warped[3] > 0
        tile[inside] = np.moveaxis(warped[:3], 0, -1)[inside]
    return _jpeg(tile[..., ::-1])  # RGB -> BGR


def map_tile(
    finished: np.ndarray, placement: Placement, z: int, x: int, y: int, style: Style
) -> bytes:
    """PNG of tile (z, x, y) of a scene's finished uint8 map: RGBA in the JET colours
    (``jet``) or gray and alpha, the map values themselves (``gray``); transparent where
    the scene is not."""
    check_style(style)
    values = np.zeros((TILE, TILE), np.uint8)
    alpha = np.zeros((TILE, TILE), np.uint8)
    window = placement.window(z, x, y)
    if window is not None:
        r0, r1, c0, c1 = window
        h, w = placement.read_shape(window, z)
        rows = r0 + decimation_indices(r1 - r0, h)
        cols = c0 + decimation_indices(c1 - c0, w)
        sample = finished[np.ix_(rows, cols)]
        inside = np.full(sample.shape, 255, np.uint8)
        values, alpha = placement.warp(np.stack([sample, inside]), window, z, x, y)
    if style == "gray":
        return _gray_alpha_png(values, alpha)
    tile = np.zeros((TILE, TILE, 4), np.uint8)  # BGRA
    tile[..., :3] = _JET[values]
    tile[..., 3] = alpha
    return _png(tile)


def _gray_alpha_png(values: np.ndarray, alpha: np.ndarray) -> bytes:
    """A gray-and-alpha PNG (Pillow: OpenCV writes no two-channel PNGs)."""
    from PIL import Image

    pixels = np.ascontiguousarray(np.dstack([values, alpha]))
    return _pillow_png(Image.frombytes("LA", (pixels.shape[1], pixels.shape[0]), pixels.tobytes()))
