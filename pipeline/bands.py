"""Which three bands of a scene the encoder sees, and how they become uint8.

- **Bands**: ``bands`` are three 1-based band indexes, as in GDAL. By default a
  file with three or more bands gives the bands it declares as red, green and
  blue, else bands 1, 2, 3; a file with one or two bands (gray, gray + alpha)
  gives band 1 three times; a single paletted uint8 band goes through its colour
  table.
- **uint8**: values are used as they are.
- **Other types** (uint16, int16, float32, ...): each band is stretched linearly
  from its 2nd percentile to its 98th percentile onto 0..255, then clipped and
  rounded. The percentiles come from a decimated read of at most 1024×1024
  pixels, ignoring nodata and NaN. A band that is constant there maps to 0.
- **Nodata**: a pixel has no data where every selected band equals the file's
  nodata value or is NaN, or where the file's own mask (internal mask, alpha
  band) says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import rasterio
from rasterio.enums import ColorInterp

from ..errors import ParameterError
from .scenefile import SceneInfo

__all__ = ["Conversion", "choose_bands", "palette_of", "stretch_limits", "to_rgb"]

_PERCENTILES = (2.0, 98.0)
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_LARGE = 1e300  # beyond this, the percentiles' interpolation could overflow

Array = np.ndarray | da.Array


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
        with np.errstate(invalid="ignore", over="ignore"):  # NaN and ±inf: nodata or clipped
            for band, target, (lo, hi) in zip(pixels, out, self.stretch, strict=True):
                if hi <= lo:
                    continue
                if hi - lo < _FLOAT32_MAX:
                    scaled = np.subtract(band, lo, dtype=np.float32)
                    scaled *= np.float32(255.0 / (hi - lo))
                else:  # a range beyond float32 (or even float64): halves cannot overflow
                    scaled = np.subtract(band / 2, lo / 2, dtype=np.float64)
                    scaled *= 255.0 / (hi / 2 - lo / 2)
                np.rint(scaled, out=scaled)
                np.clip(scaled, 0, 255, out=scaled)
                np.nan_to_num(scaled, copy=False, nan=0.0)
                target[...] = scaled
        return out

    @property
    def key(self) -> str:
        """A short text that changes with the conversion (part of cache keys)."""
        return repr(self)


def choose_bands(
    ds: rasterio.DatasetReader, path: Path, bands: tuple[int, int, int] | None
) -> tuple[int, int, int]:
    """The three 1-based bands to use (see the module rule), or ParameterError."""
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


def palette_of(
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


def to_rgb(
    pixels: Array, mask: Array | None, info: SceneInfo, conversion: Conversion
) -> tuple[Array, Array | None]:
    """``(rgb, valid)`` from ``(3, y, x)`` pixels and the file's ``(y, x)`` mask;
    numpy or dask alike. ``valid`` is None when nothing can be nodata."""
    missing = None
    if np.dtype(info.dtype).kind == "f":
        missing = np.isnan(pixels)
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


def stretch_limits(
    pixels: np.ndarray, mask: np.ndarray | None, info: SceneInfo
) -> tuple[tuple[float, float], ...]:
    """Per band, the 2nd and 98th percentiles of the valid, finite sampled values."""
    _, valid = to_rgb(pixels, mask, info, Conversion())
    limits = []
    for band in pixels:
        keep = np.isfinite(band) if valid is None else valid & np.isfinite(band)
        values = band[keep].astype(np.float64)
        lo, hi = _percentiles(values)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            lo, hi = 0.0, 0.0
        limits.append((float(lo), float(hi)))
    return tuple(limits)


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    """The 2nd and 98th percentiles (linear interpolation) of finite float64 values.

    Values near the largest float would overflow the interpolation between two
    neighbours of opposite sign (inf, NaN, RuntimeWarnings); for them the
    percentiles of the halved values are doubled, which is the same arithmetic
    exactly scaled by two."""
    if not values.size:
        return 0.0, 0.0
    if np.abs(values).max() < _LARGE:
        lo, hi = np.percentile(values, _PERCENTILES)
    else:
        lo, hi = np.percentile(values / 2, _PERCENTILES) * 2
    return float(lo), float(hi)
