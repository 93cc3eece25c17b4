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
from collections.abc import Sequence
from dataclasses import dataclass

import dask.array as da
import numpy as np
import rasterio
from rasterio.enums import ColorInterp

from ..errors import ParameterError

__all__ = ["Conversion", "choose_bands", "palette_of", "stretch_limits", "to_rgb"]

_PERCENTILES = (2.0, 98.0)
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_LARGE = 1e300  # beyond this, the percentiles' interpolation could overflow

Array = np.ndarray | da.Array


@dataclass(frozen=True)
class Conversion:
    """How each band becomes uint8: as it is, through a lookup table of 256 values (one
    component of a colour table), or by a linear stretch mapping ``lo`` to 0 and ``hi`` to
    255 (clipped, rounded; a band with ``hi <= lo`` maps to 0). Per band, so that a
    selection of bands (:meth:`select`) keeps each band's own rule."""

    stretch: tuple[tuple[float, float], ...] | None = None
    lut: tuple[tuple[int, ...], ...] | None = None

    @classmethod
    def from_palette(cls, palette: tuple[tuple[int, int, int], ...]) -> Conversion:
        """A colour table (256 RGB entries) applied to one band read three times."""
        components = zip(*palette, strict=True)
        return cls(lut=tuple(tuple(int(v) for v in component) for component in components))

    def select(self, positions: tuple[int, ...] | list[int]) -> Conversion:
        """The conversion of the bands at ``positions`` (0-based), in that order."""
        return Conversion(
            None if self.stretch is None else tuple(self.stretch[i] for i in positions),
            None if self.lut is None else tuple(self.lut[i] for i in positions),
        )

    def apply(self, pixels: Array) -> Array:
        """Convert ``(bands, y, x)`` pixels, a numpy array or lazily block by block."""
        if self.stretch is None and self.lut is None:
            return pixels
        if isinstance(pixels, da.Array):
            return pixels.map_blocks(self._block, dtype=np.uint8)
        return self._block(pixels)

    def _block(self, pixels: np.ndarray) -> np.ndarray:
        out = np.zeros(pixels.shape, np.uint8)
        if self.lut is not None:
            for band, target, lut in zip(pixels, out, self.lut, strict=True):
                target[...] = np.asarray(lut, np.uint8)[band]
            return out
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
    ds: rasterio.DatasetReader, path: str, bands: tuple[int, int, int] | None
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
    pixels: Array,
    mask: Array | None,
    nodata: Sequence[float | None],
    conversion: Conversion,
) -> tuple[Array, Array | None]:
    """``(rgb, valid)`` from ``(bands, y, x)`` pixels, each band's nodata value and the
    file's ``(y, x)`` mask; numpy or dask alike. ``valid`` is None when nothing can be
    nodata."""
    missing = None
    if np.dtype(pixels.dtype).kind == "f":
        missing = np.isnan(pixels)
    values = [None if v is None or math.isnan(v) else float(v) for v in nodata]
    if any(v is not None for v in values):
        if len(set(values)) == 1:
            equal = pixels == values[0]
        else:  # per band (NaN stands for "none": it equals nothing)
            per_band = np.array([np.nan if v is None else v for v in values])[:, None, None]
            equal = pixels == per_band
        missing = equal if missing is None else missing | equal
    valid = None if missing is None else ~missing.all(axis=0)
    if mask is not None:
        valid = mask if valid is None else valid & mask
    rgb = conversion.apply(pixels)
    if valid is not None:
        rgb = np.where(valid, rgb, np.uint8(0))
    return rgb, valid


def stretch_limits(
    pixels: np.ndarray, mask: np.ndarray | None, nodata: Sequence[float | None]
) -> tuple[tuple[float, float], ...]:
    """Per band, the 2nd and 98th percentiles of the valid, finite sampled values."""
    _, valid = to_rgb(pixels, mask, nodata, Conversion())
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
