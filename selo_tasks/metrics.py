"""The SeLo metrics Rsu, Ras, Rda and Rmi, equal to the published evaluation code.

The four indicators of "Learning to Evaluate Performance of Multi-modal
Semantic Localization" (TGRS 2022), as computed by the authors' published
evaluation code (the numbers in the published tables). Input: a SeLo map — a
uint8 array ``U`` (read as ``P = U / 255``) or a float array ``P`` in [0, 1] —
and one case's polygons in pixel coordinates (x = column, y = row).

Rules (constants are the published code's)::

    mask   = all polygons filled by one cv2.fillPoly call, points truncated to int32
    Rsu    = 1 - exp(-0.707 * S_gt / (S_all - S_gt + 1e-7) * (H*W - A) / A)
             S_gt = sum(P * mask), S_all = sum(P), A = sum(mask)
    centre, radius of a polygon: cx = int(mean x), cy = int(mean y),
             r = int(1.5 * mean distance of its points to (cx, cy))
    attention centres: G = uint8(P * 255) (truncated), 5 x 50x50 box filter,
             local maxima (G == maximum_filter(G, 1000) and G > 0), 8-connected
             components in raster order, their centroids (int col, int row),
             stably sorted by P there, descending, kept when P >= 0.5
    Ras    = (exp(3 g) - 1) / (exp(3) - 1), g = mean over polygons of offset / r,
             offset = mean distance to the centres within r of (cx, cy), or r;
             no centres at all -> Ras = 1
    Rda    = mean over polygons of: 0 (no centre within r), 1 (one), else
             0.5 (1 - mean distance to their mean point / r) + exp(-0.5 (n + 2))
    Rmi    = 0.4 Rsu + 0.35 (1 - Ras) + 0.25 Rda

Where we are faster than the published code, the arithmetic is still the same:
the sums of ``P`` are exact integer sums of ``U`` (the published code sums
float64 pixels pairwise; the two agree to rounding, far below 1e-9 in every
indicator), the mask is filled in the polygons' bounding box only (the same
pixels), ``uint8(P * 255)`` is a 256-entry lookup table built with the same
float64 expression, the 1000×1000 maximum filter is a separable sparse table
equal to SciPy's (:mod:`selo.pipeline.morphology`), components come from row runs
(:mod:`selo.pipeline.components`), and per-polygon geometry uses the same numpy
operations in the same order. Degenerate polygons (fewer than 3 distinct points, zero
area, radius 0, entirely outside the map), which make the published code divide by zero,
raise
:class:`~selo.errors.AnnotationError` naming the case and polygon.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import AnnotationError, MapError
from ..pipeline.components import Component, block_components, merge_blocks, raster_components
from ..pipeline.morphology import RunningMax, by_strips, max_along, maximum_filter

__all__ = [
    "BETA_SU",
    "INDICATORS",
    "SHOWN",
    "Indicator",
    "RSU",
    "RDA",
    "RAS",
    "RMI",
    "Metrics",
    "CaseEvaluation",
    "evaluate",
    "evaluate_case",
    "mean_metrics",
    "gt_box",
    "gt_mask",
    "region_centre_radius",
    "attention_centres",
    "attention_centres_lazy",
    "CentreStream",
    "ranked_centres",
    "rsu",
    "ras",
    "rda",
    "rmi",
    "validate_polygons",
]

BETA_SU = 0.707  # the published code's value (the paper's text says 0.694)
MAX_COORD = 2**31 - 1  # polygon points are truncated to int32
EPS = 1e-7
EXPAND = 1.5
BOX_PASSES = 5
BOX_SIZE = 50
MAX_FILTER_SIZE = 1000
CENTRE_MIN_PROB = 0.5
RAS_BETA = 3
RDA_ETA = 0.5
W_SU, W_AS, W_DA = 0.4, 0.35, 0.25

# G = uint8(P * 255) for P = k / 255: the float product is not always k again
# (e.g. 0.2 * 255 < 51 after rounding), and the truncation keeps that.
_GRAY_LUT = np.asarray((np.arange(256) / 255.0) * 255.0, dtype=np.uint8)


@dataclass(frozen=True)
class Indicator:
    """One SeLo indicator as every table, page, file and picture shows it (a row of
    :data:`INDICATORS`)."""

    name: str  # the field of Metrics, the key in run.json and metrics.json, the CSV column
    label: str
    higher_is_better: bool
    shown: int  # its place on the pages, in compare's tables and in the overlay legend
    digits: int = 4  # decimals shown

    @property
    def arrow(self) -> str:
        """↑ when higher is better, else ↓."""
        return "↑" if self.higher_is_better else "↓"

    @property
    def heading(self) -> str:
        """``Rsu ↑``: the label and the direction."""
        return f"{self.label} {self.arrow}"

    def of(self, metrics: Metrics) -> float:
        return getattr(metrics, self.name)

    def text(self, value: float) -> str:
        """The value as shown: ``0.7999``."""
        return f"{value:.{self.digits}f}"

    def signed(self, value: float) -> str:
        """A difference as shown: ``+0.0914``."""
        return f"{value:+.{self.digits}f}"

    def verdict(self, difference: float) -> int:
        """1 when a difference of this indicator is a gain (a lower Ras is one), -1 when a
        loss, 0 when it does not show in ``digits`` decimals."""
        gain = difference if self.higher_is_better else -difference
        if abs(gain) < 0.5 * 10.0**-self.digits:
            return 0
        return 1 if gain > 0 else -1


RSU = Indicator("rsu", "Rsu", True, shown=0)
RDA = Indicator("rda", "Rda", True, shown=2)
RAS = Indicator("ras", "Ras", False, shown=1)
RMI = Indicator("rmi", "Rmi", True, shown=3)
INDICATORS = (RSU, RDA, RAS, RMI)
"""The indicator table, in the order of :class:`Metrics`' fields and of the metrics.csv
columns (the published code's); :data:`SHOWN` is the order of the pages."""
SHOWN = tuple(sorted(INDICATORS, key=lambda i: i.shown))


@dataclass(frozen=True)
class Metrics:
    """The four indicators of one case (or their means over cases)."""

    rsu: float
    rda: float
    ras: float
    rmi: float

    def as_dict(self) -> dict[str, float]:
        return {i.name: i.of(self) for i in INDICATORS}

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> Metrics:
        """The metrics :meth:`as_dict` gave (KeyError, TypeError or ValueError otherwise)."""
        return cls(**{i.name: float(values[i.name]) for i in INDICATORS})

    def minus(self, other: Metrics) -> Metrics:
        """Each indicator of this one minus the other's."""
        return Metrics(**{i.name: i.of(self) - i.of(other) for i in INDICATORS})


Polygon = np.ndarray  # (n, 2) float64: x (column), y (row)


@dataclass(frozen=True)
class CaseEvaluation:
    """The metrics of one map with what they were computed from: the regions'
    (cx, cy, r) and the attention centres (x, y), best first."""

    metrics: Metrics
    regions: tuple[tuple[int, int, int], ...]
    centres: tuple[tuple[int, int], ...]

    def counted(self) -> list[bool]:
        """For each centre, whether it lies within some region's radius of its centre
        (``distance <= r``: the centres Ras and Rda count)."""
        return [
            any(_distance((cx, cy), c) <= r for cx, cy, r in self.regions) for c in self.centres
        ]


def evaluate(selo_map: np.ndarray, polygons: Sequence[Polygon], *, case: object = None) -> Metrics:
    """Rsu, Rda, Ras and Rmi of one SeLo map against one case's polygons.

    ``selo_map``: uint8 (``P = U / 255``) or float in [0, 1], H×W.
    ``polygons``: (n, 2) arrays of [x, y] points. ``case`` only labels errors.
    """
    return evaluate_case(selo_map, polygons, case=case).metrics


def evaluate_case(
    selo_map: np.ndarray, polygons: Sequence[Polygon], *, case: object = None
) -> CaseEvaluation:
    """:func:`evaluate`, also giving the regions and attention centres (for drawing)."""
    selo_map = _check_map(selo_map, case)
    polys = [np.asarray(p, dtype=np.float64) for p in polygons]
    validate_polygons(polys, where=_where(case), shape=selo_map.shape)
    origin, box = gt_box(selo_map.shape, polys)
    regions = [region_centre_radius(p) for p in polys]
    centres = attention_centres(selo_map)
    v_su = rsu(selo_map, box, origin=origin)
    v_as = ras(regions, centres)
    v_da = rda(regions, centres)
    metrics = Metrics(rsu=v_su, rda=v_da, ras=v_as, rmi=rmi(v_su, v_da, v_as))
    return CaseEvaluation(metrics, tuple(regions), tuple(centres))


def mean_metrics(metrics: Iterable[Metrics]) -> Metrics:
    """Each indicator's plain mean over cases (Rmi: the mean of per-case Rmi)."""
    rows = list(metrics)
    if not rows:
        raise ValueError("no cases to average")
    return Metrics(**{i.name: float(np.mean([i.of(m) for m in rows])) for i in INDICATORS})


def rmi(rsu_value: float, rda_value: float, ras_value: float) -> float:
    """Rmi = 0.4 Rsu + 0.35 (1 - Ras) + 0.25 Rda."""
    return float(W_SU * rsu_value + W_AS * (1 - ras_value) + W_DA * rda_value)


# --- ground truth -------------------------------------------------------------------------


def gt_mask(shape: tuple[int, int], polygons: Sequence[Polygon]) -> np.ndarray:
    """uint8 H×W mask, 1 inside the polygons: one cv2.fillPoly call, points truncated to int32."""
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(mask, [np.asarray(p, dtype=np.float64).astype(np.int32) for p in polygons], 1)
    return mask


def gt_box(
    shape: tuple[int, int], polygons: Sequence[Polygon]
) -> tuple[tuple[int, int], np.ndarray]:
    """``((row, col), box)``: :func:`gt_mask` within the polygons' bounding box on the map,
    whose top-left pixel is (row, col) — the same pixels (a fill shifted by whole pixels
    sets the same pixels shifted), without a map-sized mask. An empty box when the
    polygons lie beside the map."""
    pts = [np.asarray(p, dtype=np.float64).astype(np.int32) for p in polygons]
    every = np.concatenate(pts)
    x0, y0 = (int(v) for v in np.maximum(every.min(axis=0), 0))
    x1, y1 = (int(v) for v in np.minimum(every.max(axis=0), (shape[1] - 1, shape[0] - 1)))
    if x0 > x1 or y0 > y1:
        return (0, 0), np.zeros((0, 0), np.uint8)
    box = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    cv2.fillPoly(box, [(p.astype(np.int64) - (x0, y0)).astype(np.int32) for p in pts], 1)
    return (y0, x0), box


def region_centre_radius(points: Polygon) -> tuple[int, int, int]:
    """(cx, cy, r) of a polygon: truncated mean point, and int(1.5 × mean point distance).

    The sums run point by point in order, as the published code's ``reduce`` does,
    and the distances are ``np.linalg.norm`` of each point's offset, so the
    truncations land exactly where the published code's do.
    """
    pts = np.asarray(points, dtype=np.float64)
    n = len(pts)
    sx = sy = 0.0
    for x, y in pts.tolist():
        sx += x
        sy += y
    cx, cy = int(sx / n), int(sy / n)
    centre = np.array([cx, cy], dtype=np.float64)
    dists = [np.linalg.norm(p - centre) for p in pts]
    return cx, cy, int(np.mean(dists) * EXPAND)


def validate_polygons(
    polygons: Sequence[Polygon], *, where: str = "map", shape: tuple[int, int] | None = None
) -> None:
    """Raise AnnotationError for polygons the metrics cannot score.

    A polygon needs at least 3 distinct points within ±``MAX_COORD`` (the
    published code truncates them to int32), a non-zero area and a radius (see
    :func:`region_centre_radius`) of at least 1 pixel; with ``shape`` (H, W)
    known, it must also overlap the map (points partly outside are scored as the
    published code scores them: the fill is clipped), and the polygons together
    must fill at least one pixel of it (Rsu divides by that area).
    ``where`` starts each message (e.g. ``"anno.json: case 3, field 'points'"``).
    """
    if len(polygons) == 0:
        raise AnnotationError(f"{where}: no polygons")
    for i, p in enumerate(polygons):
        at = f"{where}, polygon {i}"
        p = np.asarray(p, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 2 or not np.all(np.isfinite(p)):
            raise AnnotationError(f"{at}: points must be finite [x, y] pairs")
        if np.abs(p).max(initial=0) > MAX_COORD:
            raise AnnotationError(
                f"{at}: points must lie within ±{MAX_COORD} pixels (the published code "
                "truncates them to 32-bit integers)"
            )
        if len(np.unique(p, axis=0)) < 3:
            raise AnnotationError(f"{at}: fewer than 3 distinct points")
        x, y = p[:, 0], p[:, 1]
        if 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) == 0:
            raise AnnotationError(f"{at}: zero area (all points on one line)")
        if region_centre_radius(p)[2] <= 0:
            raise AnnotationError(
                f"{at}: radius int(1.5 x mean distance to the centre) is 0, "
                "too small to score (the published code divides by it)"
            )
        if shape is not None:
            h, w = shape
            if x.max() < 0 or y.max() < 0 or x.min() >= w or y.min() >= h:
                raise AnnotationError(
                    f"{at}: lies entirely outside the {w}x{h} map "
                    f"(x {x.min():.1f}..{x.max():.1f}, y {y.min():.1f}..{y.max():.1f})"
                )
    if shape is not None and not _fills_a_pixel(polygons, shape):
        h, w = shape
        raise AnnotationError(
            f"{where}: the polygons fill no pixel of the {w}x{h} map (filled as the published "
            "code fills them: one cv2.fillPoly call, points truncated to integers)"
        )


def _fills_a_pixel(polygons: Sequence[Polygon], shape: tuple[int, int]) -> bool:
    """Whether :func:`gt_mask` sets any pixel (filling only the polygons' box on the map)."""
    return bool(gt_box(shape, polygons)[1].any())


# --- Rsu ------------------------------------------------------------------------------------


def rsu(selo_map: np.ndarray, mask: np.ndarray, *, origin: tuple[int, int] = (0, 0)) -> float:
    """Significant area proportion: how much of the map's mass lies in the regions.

    ``mask`` is the map-sized :func:`gt_mask`, or the part of it whose top-left pixel is
    ``origin`` (as :func:`gt_box` gives it: the rest is 0)."""
    h, w = selo_map.shape
    area = int(cv2.countNonZero(mask)) if mask.size else 0
    r0, c0 = origin
    inside = selo_map[r0 : r0 + mask.shape[0], c0 : c0 + mask.shape[1]]
    if selo_map.dtype == np.uint8:
        # Exact integer sums of U; P = U / 255 is summed as (sum U) / 255.
        all_sum = int(selo_map.sum(dtype=np.uint64))
        gt_sum = int(np.sum(inside, where=mask.astype(bool), dtype=np.uint64))
        s_gt = gt_sum / 255
        s_out = (all_sum - gt_sum) / 255
    else:
        s_gt = float(np.sum(inside[mask.astype(bool)]))
        s_out = float(np.sum(selo_map)) - s_gt
    left = s_gt / (s_out + EPS)
    right = (h * w - area) / area
    return float(1 - math.exp(-BETA_SU * left * right))


# --- attention centres ----------------------------------------------------------------------


def attention_centres(
    selo_map: np.ndarray,
    *,
    box: int = BOX_SIZE,
    max_size: int = MAX_FILTER_SIZE,
    threads: int = 1,
) -> list[tuple[int, int]]:
    """Attention centres (x, y) of a map, best first (the published code's peak finding).

    G = uint8(P·255) is softened by five 50×50 box filters; pixels equal to the
    maximum of their 1000×1000 neighbourhood (and > 0) form 8-connected
    components, taken in raster order of their first pixel; each component's
    truncated centroid is a candidate, candidates are stably sorted by P there
    (descending) and kept when P ≥ 0.5. ``box`` and ``max_size`` change the two
    filter sizes (only for approximations on decimated maps; the metrics use 50
    and 1000). ``threads``: the filters on that many cores, the same result.
    """
    peaks = _peaks(selo_map, box=box, max_size=max_size, threads=threads)
    candidates = [(int(cx), int(cy)) for cy, cx in _component_centroids(peaks)]
    probs = [_prob_at(selo_map, x, y) for x, y in candidates]
    order = sorted(range(len(candidates)), key=lambda i: probs[i], reverse=True)
    return [candidates[i] for i in order if probs[i] >= CENTRE_MIN_PROB]


def attention_centres_lazy(
    selo_map,
    *,
    box: int = BOX_SIZE,
    max_size: int = MAX_FILTER_SIZE,
    chunk: int = 2048,
    threads: int = 2,
) -> list[tuple[int, int]]:
    """:func:`attention_centres` of a uint8 map of any size, strip by strip, exactly.

    ``selo_map``: a numpy or dask array, or any object with ``shape`` and
    ``window(r0, r1, c0, c1)`` (a map spooled to a file), read in strips of ``chunk`` rows
    into a :class:`CentreStream` (memory: a few strips, whatever the map's height)."""
    read = _window_reader(selo_map)
    h, w = selo_map.shape
    stream = CentreStream((h, w), box=box, max_size=max_size, threads=threads)
    for top in range(0, h, chunk):
        stream.add(np.ascontiguousarray(read(top, min(top + chunk, h), 0, w)))
    candidates = stream.candidates()
    if hasattr(selo_map, "pixels"):  # a map in a file: opened once for all the points
        values = dict(zip(candidates, selo_map.pixels(candidates), strict=True))
        return ranked_centres(candidates, lambda x, y: values[x, y])
    return ranked_centres(candidates, lambda x, y: int(read(y, y + 1, x, x + 1)[0, 0]))


def ranked_centres(candidates, value) -> list[tuple[int, int]]:
    """The attention centres among candidate points (x, y) in raster order of their
    components: stably sorted by the map's value there (``value(x, y)``, uint8), best
    first, kept where it is at least ``CENTRE_MIN_PROB``."""
    probs = [value(x, y) / 255.0 for x, y in candidates]
    order = sorted(range(len(candidates)), key=lambda i: probs[i], reverse=True)
    return [candidates[i] for i in order if probs[i] >= CENTRE_MIN_PROB]


class CentreStream:
    """The candidate attention centres of a uint8 map given top to bottom in strips of any
    height: exactly those of :func:`attention_centres`, holding a few strips and the
    filters' reach (the box passes' ``5 * (box // 2)`` rows, and about ``3 * max_size``
    rows for the maximum filter) whatever the map's height.

    Each strip is softened with the box passes' reach of rows either side (as on row
    strips of the whole map), its rows' maximum taken along the row, then down the columns
    by a :class:`~selo.pipeline.morphology.RunningMax`; the local-maximum rows it releases
    are summed into components (:func:`~selo.pipeline.components.block_components`),
    joined across strips at the end. ``threads``: the filters on column strips."""

    ROWS = 256
    """Rows taken through the maximum filter at a time (its temporaries: a few of them)."""

    def __init__(
        self,
        shape: tuple[int, int],
        *,
        box: int = BOX_SIZE,
        max_size: int = MAX_FILTER_SIZE,
        threads: int = 1,
    ) -> None:
        self.shape = (h, w) = tuple(int(n) for n in shape)
        self.box, self.max_size, self.threads = box, max_size, threads
        self.halo = BOX_PASSES * (box // 2)
        self._gray = np.empty((0, w), np.uint8)  # gray rows from row _gray_top on
        self._gray_top = 0
        self._rows_in = 0
        self._soft_out = 0  # softened rows so far
        self._soft: list[np.ndarray] = []  # softened rows awaiting their neighbourhood maximum
        self._peak_top = 0  # the first row of the next local-maximum rows
        self._maxima = RunningMax(h, w, max_size, np.uint8)
        self._blocks: list = []

    def add(self, strip: np.ndarray) -> None:
        """The next rows of the map (uint8, full width)."""
        h, w = self.shape
        if strip.ndim != 2 or strip.shape[1] != w or strip.dtype != np.uint8:
            raise MapError(
                f"attention centres need uint8 rows of width {w}, got {strip.dtype} {strip.shape}"
            )
        self._rows_in += len(strip)
        held = len(self._gray)
        gray = np.empty((held + len(strip), w), np.uint8)  # the rows held, then this strip's
        gray[:held] = self._gray
        if len(strip):
            cv2.LUT(np.ascontiguousarray(strip), _GRAY_LUT, dst=gray[held:])
        self._gray = gray
        end = h if self._rows_in == h else self._rows_in - self.halo  # rows softened exactly
        if end <= self._soft_out:
            return
        a0 = max(self._soft_out - self.halo, 0)
        part = self._gray[a0 - self._gray_top :]
        soft = by_strips(self._soften, part, axis=1, threads=self.threads, halo=self.halo)
        soft = soft[self._soft_out - a0 : end - a0]
        self._soft_out = end
        keep = max(end - self.halo, 0)  # the rows the next strip's softening reads again
        self._gray = self._gray[keep - self._gray_top :].copy()
        self._gray_top = keep
        self._soft.append(soft)
        for top in range(0, len(soft), self.ROWS):  # small temporaries: ROWS rows at a time
            rows = max_along(
                soft[top : top + self.ROWS], self.max_size, axis=1, threads=self.threads
            )
            maxima = self._maxima.add(rows)
            if len(maxima):
                done = self._take_soft(len(maxima))
                peaks = maxima == done
                peaks &= done > 0
                self._blocks.append([block_components(peaks, self._peak_top, 0)])
                self._peak_top += len(maxima)
        # the rows still waiting (the maximum's reach), apart from this strip's softened array
        self._soft = [np.concatenate(self._soft)] if self._soft else []

    def candidates(self) -> list[tuple[int, int]]:
        """The candidate centres (x, y) — each component's truncated centroid — in raster
        order of the components' first pixels, once every row is in."""
        return [(int(c.centroid[1]), int(c.centroid[0])) for c in self.components()]

    def components(self) -> list[Component]:
        """The components of the local-maximum pixels, in raster order of first pixel."""
        if self._peak_top != self.shape[0]:
            raise MapError(
                f"the attention centres need all {self.shape[0]} rows of the map, "
                f"got {self._rows_in}"
            )
        return merge_blocks(self._blocks)

    def _soften(self, gray: np.ndarray) -> np.ndarray:
        return _soften(gray, self.box)

    def _take_soft(self, n: int) -> np.ndarray:
        """The first ``n`` softened rows awaiting their maximum (removed from the queue)."""
        parts, got = [], 0
        while got < n:
            head = self._soft[0]
            take = min(n - got, len(head))
            parts.append(head[:take])
            got += take
            if take == len(head):
                self._soft.pop(0)
            else:
                self._soft[0] = head[take:]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _window_reader(selo_map):
    """``read(r0, r1, c0, c1) -> uint8 array`` for an array or an object with ``window``."""
    if hasattr(selo_map, "window"):
        if getattr(selo_map, "dtype", np.uint8) != np.uint8:
            raise MapError(f"attention centres need a uint8 map, got {selo_map.dtype}")
        return selo_map.window
    import dask.array as da
    import dask.local

    u = selo_map if isinstance(selo_map, da.Array) else np.asarray(selo_map)
    if u.dtype != np.uint8 or u.ndim != 2:
        raise MapError(f"attention centres need a 2-D uint8 map, got {u.ndim}-D {u.dtype}")
    if isinstance(u, np.ndarray):
        return lambda r0, r1, c0, c1: u[r0:r1, c0:c1]
    return lambda r0, r1, c0, c1: np.asarray(u[r0:r1, c0:c1].compute(scheduler=dask.local.get_sync))


def _peaks(u: np.ndarray, *, box: int, max_size: int, threads: int = 1) -> np.ndarray:
    """Where the softened map equals its ``max_size`` neighbourhood maximum, and is > 0;
    with ``threads``, the box passes run on row strips (each with the passes' reach of extra
    rows) and the maximum on strips too: the same bytes."""

    gray = by_strips(
        lambda g: _soften(g, box), _gray(u), threads=threads, halo=BOX_PASSES * (box // 2)
    )
    return (maximum_filter(gray, size=max_size, threads=threads) == gray) & (gray > 0)


def _soften(gray: np.ndarray, box: int) -> np.ndarray:
    """The box passes of the centres' rule (OpenCV's default border at the array's edges)."""
    # the input is read, never written (strips share it); the other passes in place (OpenCV's
    # filters buffer the rows they read): one buffer of this strip's own, no new pages
    out = cv2.boxFilter(np.ascontiguousarray(gray), -1, (box, box))
    for _ in range(BOX_PASSES - 1):
        cv2.boxFilter(out, -1, (box, box), dst=out)
    return out


def _gray(selo_map: np.ndarray) -> np.ndarray:
    if selo_map.dtype == np.uint8:
        return cv2.LUT(selo_map, _GRAY_LUT)
    return np.asarray(selo_map * 255.0, dtype=np.uint8)


def _prob_at(selo_map: np.ndarray, x: int, y: int) -> float:
    v = selo_map[y, x]
    return v / 255.0 if selo_map.dtype == np.uint8 else float(v)


def _component_centroids(binary: np.ndarray) -> list[tuple[float, float]]:
    """Centroids (row, col) of the 8-connected components, in raster order of first pixel:
    the exact mean of each component's integer coordinates, as skimage's ``regionprops``
    gives it (:func:`selo.pipeline.components.raster_components`)."""
    return [c.centroid for c in raster_components(binary)]


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Half-open [start, end) index ranges of the runs of True in a 1-D bool array."""
    padded = np.concatenate(([False], flags, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


# --- Ras and Rda ----------------------------------------------------------------------------


def _distance(a: Sequence[float], b: Sequence[float]) -> float:
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))


def ras(regions: Sequence[tuple[int, int, int]], centres: Sequence[tuple[int, int]]) -> float:
    """Attention shift distance (lower is better) from region (cx, cy, r) and centres."""
    if not centres:
        g = 1.0  # the published code divides the first radius by itself
    else:
        ratios = []
        for cx, cy, r in regions:
            near = [d for d in (_distance((cx, cy), c) for c in centres) if d <= r]
            offset = np.mean(near) if near else r
            ratios.append(offset / r)
        g = np.mean(ratios)
    return float((np.exp(RAS_BETA * g) - 1) / (np.exp(RAS_BETA) - 1))


def rda(regions: Sequence[tuple[int, int, int]], centres: Sequence[tuple[int, int]]) -> float:
    """Discrete attention distance (higher is better): one centre per region is best."""
    values = []
    for cx, cy, r in regions:
        near = [c for c in centres if _distance((cx, cy), c) <= r]
        if len(near) <= 1:
            values.append(float(len(near)))
            continue
        mean_point = np.average(np.asarray(near, dtype=np.float64), axis=0)
        spread = np.mean([_distance(mean_point, c) for c in near]) / r
        values.append(0.5 * (1 - spread) + np.exp(-RDA_ETA * (len(near) + 2)))
    return float(np.mean(values))


# --- helpers --------------------------------------------------------------------------------


def _check_map(selo_map: np.ndarray, case: object) -> np.ndarray:
    a = np.asarray(selo_map)
    if a.ndim != 2 or a.size == 0:
        raise MapError(
            f"{_where(case)}: a SeLo map must be a non-empty 2-D array, got shape {a.shape}"
        )
    if a.dtype == np.uint8:
        return a
    if not np.issubdtype(a.dtype, np.floating):
        raise MapError(
            f"{_where(case)}: a SeLo map must be uint8 or float in [0, 1], got {a.dtype}"
        )
    a = a.astype(np.float64, copy=False)
    if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1:
        raise MapError(f"{_where(case)}: a float SeLo map must hold finite values in [0, 1]")
    return a


def _where(case: object, polygon: int | None = None) -> str:
    where = "map" if case is None else f"case {case}"
    return where if polygon is None else f"{where}, polygon {polygon}"
