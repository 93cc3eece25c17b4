"""Hypothesis strategies that draw the data itself — maps, polygons, window tables — so
that a failing example shrinks to a small one and prints as the data that failed."""

from __future__ import annotations

import math

import cv2
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

RESIZE = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}


@st.composite
def maps(draw, min_side: int = 1, max_side: int = 100, max_cells: int = 24) -> np.ndarray:
    """A uint8 map: a drawn grid of at most ``max_cells``² values resized to the drawn size
    (nearest: blocks with ties; linear, cubic: smooth blobs; one cell: a flat map), or
    drawn pixel by pixel (a background value with single-pixel peaks and pits)."""
    h = draw(st.integers(min_side, max_side), label="height")
    w = draw(st.integers(min_side, max_side), label="width")
    how = draw(st.sampled_from(["pixels", *RESIZE]), label="kind")
    if how == "pixels":
        return draw(arrays(np.uint8, (h, w)), label="pixels")
    cells = (draw(st.integers(1, max_cells)), draw(st.integers(1, max_cells)))
    small = draw(arrays(np.uint8, cells), label="cells")
    return cv2.resize(small, (w, h), interpolation=RESIZE[how])


@st.composite
def polygons(draw, h: int, w: int, min_radius: float = 20.0) -> np.ndarray:
    """A star-shaped polygon of 3 to 8 [x, y] points inside an h×w map: a drawn centre,
    radius and angles (so most are valid regions; callers ``assume`` the rest)."""
    cx = draw(st.floats(0, w, allow_nan=False), label="cx")
    cy = draw(st.floats(0, h, allow_nan=False), label="cy")
    radius = draw(st.floats(min_radius, max(min_radius + 5, min(h, w) / 2)), label="radius")
    angles = draw(
        st.lists(st.floats(0, 2 * math.pi, exclude_max=True), min_size=3, max_size=8),
        label="angles",
    )
    a = np.sort(np.asarray(angles))
    points = np.stack([cx + radius * np.cos(a), cy + radius * np.sin(a)], axis=1)
    return np.clip(points, 0, [w - 1, h - 1])


@st.composite
def windows(draw, h: int, w: int, min_size: int = 1, max_size: int = 40) -> np.ndarray:
    """A window table: (N, 4) int64 rows (r0, r1, c0, c1), half-open, inside an h×w scene."""
    n = draw(st.integers(min_size, max_size), label="windows")
    rows = []
    for _ in range(n):
        r0 = draw(st.integers(0, h - 1))
        c0 = draw(st.integers(0, w - 1))
        rows.append((r0, draw(st.integers(r0 + 1, h)), c0, draw(st.integers(c0 + 1, w))))
    return np.asarray(rows, dtype=np.int64).reshape(n, 4)


def scores(n: int, *, width: int = 64):
    """``n`` window scores (finite floats of ``width`` bits, as cosines and beyond)."""
    element = st.floats(-4, 4, allow_nan=False, width=width)
    dtype = np.float32 if width == 32 else np.float64
    return arrays(dtype, (n,), elements=element)
