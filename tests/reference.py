"""Slow, obvious implementations of the specs, kept as test oracles and benchmark baselines.

Each function here is the straightforward reading of ``spec/metrics.md`` or
``spec/pipeline.md`` with plain NumPy/SciPy/OpenCV/scikit-image calls on whole
float64 arrays: no histograms, lookup tables, compressed grids or chunking.
The fast code in :mod:`selo.selo_tasks.metrics` and :mod:`selo.pipeline` is
tested against these, and ``benchmarks/`` times both. They live with the tests,
not in the package: nothing in a run uses them.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from scipy.ndimage import maximum_filter
from skimage import measure

__all__ = [
    "reference_cog",
    "reference_metrics",
    "reference_centres",
    "reference_mean_map",
    "reference_selo_map",
    "reference_cell_regions",
]


def reference_metrics(prob: np.ndarray, polygons: Sequence[np.ndarray]) -> dict[str, float]:
    """Rsu, Rda, Ras, Rmi of a float map ``prob`` in [0, 1], straight from the spec."""
    h, w = prob.shape
    mask = np.zeros((h, w), dtype=np.float64)
    cv2.fillPoly(mask, [np.asarray(p).astype(np.int32) for p in polygons], 1)
    s_gt = np.sum(prob * mask)
    s_all = np.sum(prob)
    a = np.sum(mask)
    left = s_gt / (s_all - s_gt + 1e-7)
    right = (h * w - a) / a
    rsu = 1 - np.exp(-0.707 * left * right)

    regions = []
    for p in polygons:
        p = np.asarray(p, dtype=np.float64)
        cx = int(_seq_sum(p[:, 0]) / len(p))
        cy = int(_seq_sum(p[:, 1]) / len(p))
        r = int(
            np.mean([np.linalg.norm(q - np.array([cx, cy], dtype=np.float64)) for q in p]) * 1.5
        )
        regions.append((cx, cy, r))
    centres = reference_centres(prob)

    if not centres:
        g = 1.0
    else:
        ratios = []
        for cx, cy, r in regions:
            d = [np.hypot(cx - x, cy - y) for x, y in centres]
            d = [v for v in d if v <= r]
            ratios.append((np.mean(d) if d else r) / r)
        g = np.mean(ratios)
    ras = (np.exp(3 * g) - 1) / (np.exp(3) - 1)

    rdas = []
    for cx, cy, r in regions:
        near = [(x, y) for x, y in centres if np.hypot(cx - x, cy - y) <= r]
        if len(near) <= 1:
            rdas.append(float(len(near)))
        else:
            m = np.mean(np.array(near, dtype=np.float64), axis=0)
            spread = np.mean([np.linalg.norm(np.array(c, dtype=np.float64) - m) for c in near]) / r
            rdas.append(0.5 * (1 - spread) + np.exp(-0.5 * (len(near) + 2)))
    rda = np.mean(rdas)
    rmi = 0.4 * rsu + 0.35 * (1 - ras) + 0.25 * rda
    return {"rsu": float(rsu), "rda": float(rda), "ras": float(ras), "rmi": float(rmi)}


def reference_centres(prob: np.ndarray) -> list[tuple[int, int]]:
    """Attention centres (x, y) of a float map, straight from the spec."""
    g = np.asarray(prob * 255.0, dtype=np.uint8)
    for _ in range(5):
        g = cv2.boxFilter(g, ddepth=-1, ksize=(50, 50))
    peaks = (maximum_filter(g, size=1000) == g) & (g > 0)
    labels = measure.label(peaks, connectivity=2)
    points = []
    for region in measure.regionprops(labels):
        row, col = region.centroid
        points.append((int(col), int(row)))
    points.sort(key=lambda p: prob[p[1], p[0]], reverse=True)
    return [p for p in points if prob[p[1], p[0]] >= 0.5]


def _seq_sum(values: np.ndarray) -> float:
    total = 0.0
    for v in values.tolist():
        total += v
    return total


def reference_mean_map(
    shape: tuple[int, int], windows: np.ndarray, scores: np.ndarray
) -> np.ndarray:
    """Per-pixel mean of the scores of the windows covering each pixel (float64).

    ``windows``: (N, 4) int rows (r0, r1, c0, c1), half-open. Pixels no window
    covers are 0 (as in the published v2 code).
    """
    total = np.zeros(shape, dtype=np.float64)
    count = np.zeros(shape, dtype=np.float64)
    for (r0, r1, c0, c1), s in zip(
        np.asarray(windows).tolist(), np.asarray(scores, dtype=np.float64), strict=True
    ):
        total[r0:r1, c0:c1] += s
        count[r0:r1, c0:c1] += 1
    return np.divide(total, count, out=np.zeros(shape, dtype=np.float64), where=count > 0)


def reference_selo_map(mean_map: np.ndarray, *, finish: str = "median") -> np.ndarray:
    """uint8 SeLo map of a mean map: min-max normalise, floor(255·P), then the finishing filter.

    ``finish``: ``"median"`` (v1: 251×251 median) or ``"gaussian"`` (v2:
    255×255 Gaussian, OpenCV's default sigma for that size).
    """
    lo, hi = float(mean_map.min()), float(mean_map.max())
    shifted = mean_map - lo
    prob = shifted / (hi - lo) if hi > lo else np.zeros_like(mean_map)
    u = np.uint8(255 * prob)
    if finish == "median":
        return cv2.medianBlur(u, 251)
    if finish == "gaussian":
        return cv2.GaussianBlur(u, (255, 255), 0, 0)
    raise ValueError(f"unknown finish {finish!r}")


def reference_cog(path, data: np.ndarray, *, crs=None, transform=None, nodata=None) -> None:
    """selo_map.tif the way GDAL makes it by itself: the whole map in an uncompressed
    GeoTIFF, GDAL's nearest overviews built in it (2, 4, 8, … until the longer side fits
    in 512 pixels), copied by the COG driver with selo's options."""
    import uuid

    import rasterio
    import rasterio.shutil
    from rasterio.enums import Resampling

    from selo.pipeline.outputs import COG_OPTIONS

    h, w = data.shape
    factors, side = [], max(h, w)
    while side > 512:
        factors.append(2 ** (len(factors) + 1))
        side = -(-side // 2)
    memory = f"/vsimem/reference-{uuid.uuid4().hex}.tif"
    georef = {"crs": crs, "transform": transform} if crs or transform else {}
    with rasterio.open(
        memory, "w", driver="GTiff", height=h, width=w, count=1, dtype="uint8",
        tiled=True, blockxsize=512, blockysize=512, nodata=nodata, **georef,
    ) as ds:  # fmt: skip
        ds.write(data, 1)
    try:
        if factors:
            with rasterio.open(memory, "r+") as ds:
                ds.build_overviews(factors, Resampling.nearest)
        with rasterio.open(memory) as src, rasterio.Env(GDAL_PAM_ENABLED="NO"):
            rasterio.shutil.copy(src, path, driver="COG", **COG_OPTIONS)
    finally:
        rasterio.shutil.delete(memory)


def reference_cell_regions(mean: np.ndarray, covered: np.ndarray) -> list[tuple]:
    """The regions of a mean map on its cells (``selo.pipeline.regions``), cell by cell in
    plain Python: ``[(score, (row, col) of the peak, set of cells)]``, strongest first.

    Background: the median over covered cells. Peaks: covered cells above it and at least
    as high as every covered 8-neighbour, highest first, ties in raster order. A peak's
    area: the covered cells reachable from it through 8-neighbours at least halfway
    between background and peak; a peak already inside a region, or whose area holds a
    higher cell or a cell of an earlier region, is no region of its own."""
    h, w = mean.shape
    cells = [(i, j) for i in range(h) for j in range(w) if covered[i, j]]
    if not cells:
        return []
    background = float(np.median([mean[c] for c in cells]))

    def neighbours(i: int, j: int):
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                n = (i + di, j + dj)
                if (di or dj) and 0 <= n[0] < h and 0 <= n[1] < w and covered[n]:
                    yield n

    peaks = [
        c for c in cells if mean[c] > background and all(mean[c] >= mean[n] for n in neighbours(*c))
    ]
    peaks.sort(key=lambda c: (-mean[c], c))
    claimed: set = set()
    found = []
    for p in peaks:
        if p in claimed:
            continue
        level = (mean[p] + background) / 2
        area, todo = {p}, [p]
        while todo:
            for n in neighbours(*todo.pop()):
                if n not in area and mean[n] >= level:
                    area.add(n)
                    todo.append(n)
        if any(mean[c] > mean[p] for c in area) or area & claimed:
            continue
        claimed |= area
        found.append((float(mean[p]), p, area))
    return found
