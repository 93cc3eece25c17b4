"""Regions of a mean map, found on its cells: where a sentence matches best in a scene.

The mean map (each pixel's mean cosine over the windows covering it, :mod:`.gnt`) is
constant on the cells of its grid, so its regions are found on the cells (a 10,000²
scene has about 84 × 84 of them) and are unions of cells:

- a *peak* is a covered cell at least as high as each of its eight neighbours and above
  the scene's *background*, the median over its covered cells;
- the peak's *region* is the 8-connected area of covered cells around it where the map
  stays at least halfway between the background and the peak,
  ``m >= (peak + background) / 2`` (the half-maximum contour of the peak above the
  scene's own background, so no threshold needs choosing per encoder);
- a peak whose region holds a higher cell (a shoulder of a higher peak) or a cell of a
  region already found is not a region of its own;
- a region's score is its peak's mean cosine (raw, comparable across scenes); its
  attention centre is the centre of the peak cell.

Peaks are taken strongest first (ties in raster order), so a scene's regions are
disjoint and come out ranked.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import rasterio.features
from affine import Affine

__all__ = ["CellRegion", "cell_regions", "max3x3", "region_outline"]


@dataclass(frozen=True, eq=False)
class CellRegion:
    """One region of a mean map on its cell grid."""

    score: float  # the peak cell's mean cosine
    peak: tuple[int, int]  # (cell row, cell column) of the peak
    cells: np.ndarray  # bool, the cell grid's shape: the region's cells
    background: float  # the scene's median over covered cells

    @property
    def threshold(self) -> float:
        """The level the region's cells reach: halfway between background and peak."""
        return (self.score + self.background) / 2


def max3x3(values: np.ndarray) -> np.ndarray:
    """Each element's maximum over its 3×3 neighbourhood (the border padded with -inf)."""
    padded = np.pad(values, 1, constant_values=-np.inf)
    h, w = values.shape
    out = padded[1 : h + 1, 1 : w + 1].copy()
    for dy in range(3):
        for dx in range(3):
            np.maximum(out, padded[dy : dy + h, dx : dx + w], out=out)
    return out


def cell_regions(
    mean: np.ndarray,
    covered: np.ndarray,
    *,
    floor: float = -np.inf,
    limit: int | None = None,
) -> list[CellRegion]:
    """The regions of a mean map on its cells, strongest first (see the module).

    ``mean``: the cells' mean cosines; ``covered``: the cells some window with data
    covers (the others belong to no region). Only regions scoring at least ``floor`` are
    returned, at most ``limit`` of them."""
    covered = np.asarray(covered, dtype=bool)
    if not covered.any():
        return []
    m = np.where(covered, np.asarray(mean, dtype=np.float64), -np.inf)
    background = float(np.median(m[covered]))
    peaks = covered & (m >= max3x3(m)) & (m > background) & (m >= floor)
    flat = np.flatnonzero(peaks)
    order = flat[np.argsort(-m.ravel()[flat], kind="stable")]
    claimed = np.zeros(m.shape, dtype=bool)
    found: list[CellRegion] = []
    for index in order.tolist():
        if limit is not None and len(found) >= limit:
            break
        peak = divmod(index, m.shape[1])
        if claimed[peak]:
            continue
        score = float(m[peak])
        above = (m >= (score + background) / 2).view(np.uint8)
        _, labels = cv2.connectedComponents(above, connectivity=8, ltype=cv2.CV_32S)
        cells = labels == labels[peak]
        if (m[cells] > score).any() or (claimed & cells).any():
            continue  # a shoulder of a higher peak
        claimed |= cells
        found.append(CellRegion(score, peak, cells, background))
    return found


def region_outline(
    cells: np.ndarray, row_edges: np.ndarray, col_edges: np.ndarray
) -> list[list[list[tuple[float, float]]]]:
    """The region's outline in scene pixels: a list of polygons, each a list of rings
    (outer first, then holes) of ``(x, y)`` points, x = column and y = row of pixel
    edges (origin at the scene's top-left corner).

    Cells that touch only at a corner become separate polygons, so every polygon is
    valid."""
    mask = np.asarray(cells, dtype=bool)
    polygons = []
    for geometry, _ in rasterio.features.shapes(
        mask.view(np.uint8), mask=mask, connectivity=4, transform=Affine.identity()
    ):
        rings = [
            [(float(col_edges[round(x)]), float(row_edges[round(y)])) for x, y in ring]
            for ring in geometry["coordinates"]
        ]
        polygons.append(rings)
    return polygons
