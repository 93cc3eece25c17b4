"""Grey-level morphology on large rasters: the square maximum filter, fast and exact.

:func:`maximum_filter` equals ``scipy.ndimage.maximum_filter(a, size=k)`` (mode
``"reflect"``: the edge pixel repeated, ``d c b a | a b c d``; origin 0, so the window
of index ``i`` is ``[i - k//2, i - k//2 + k)``), bit for bit. It is separable, and each
1-D pass is a sparse table: with ``w`` the largest power of two not above ``k``, the
maxima of windows of 1, 2, 4, …, ``w`` follow from ``log2 w`` element-wise maxima of
shifted copies, and a window of ``k`` is the union of two windows of ``w`` starting
``k - w`` apart. That is about ``log2 k + 1`` vectorised passes per axis whatever ``k``
(SciPy's 1-D filter walks each line element by element), e.g. 2–3× faster for the SeLo
metrics' 1000 × 1000 window on a 10,000² map. With ``threads`` each pass runs on strips
across its axis (rows for the horizontal pass, columns for the vertical one), which need
no halo: the same bytes, on several cores.

:func:`by_strips` is that split for any filter local within a halo.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import ParameterError

__all__ = ["by_strips", "maximum_filter"]

MIN_STRIP = 256
"""Strips are at least this many rows or columns: below it, threads cost more than they save."""


def maximum_filter(a: np.ndarray, size: int, *, threads: int = 1) -> np.ndarray:
    """The maximum of every ``size`` × ``size`` neighbourhood of a 2-D array (see the module),
    on ``threads`` threads."""
    a = np.asarray(a)
    if a.ndim != 2:
        raise ParameterError(f"maximum_filter needs a 2-D array, got shape {a.shape}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ParameterError(f"the filter size must be a positive whole number, got {size!r}")
    if a.size == 0:
        return a.copy()
    rows = by_strips(lambda s: _max_along(s, size, 1), a, axis=0, threads=threads)
    return by_strips(lambda s: _max_along(s, size, 0), rows, axis=1, threads=threads)


def by_strips(
    fn: Callable[[np.ndarray], np.ndarray],
    a: np.ndarray,
    *,
    axis: int = 0,
    threads: int = 1,
    halo: int = 0,
) -> np.ndarray:
    """``fn(a)`` computed on strips of ``a`` along ``axis`` in ``threads`` threads, each strip
    given ``halo`` extra rows (or columns) either side where ``a`` has them and cropped
    after: equal to ``fn(a)`` for any ``fn`` whose value at a pixel depends only on pixels
    within ``halo`` along ``axis`` and treats the array's true edges as its edges (filters
    with a border rule; ``fn`` must keep the shape). OpenCV and numpy release the GIL, so
    the strips run side by side."""
    n = a.shape[axis]
    count = max(1, min(threads, n // MIN_STRIP))
    if count == 1:
        return fn(a)
    edges = np.linspace(0, n, count + 1).astype(int)
    out = np.empty_like(a)

    def strip(i: int) -> None:
        lo, hi = int(edges[i]), int(edges[i + 1])
        a0, a1 = max(lo - halo, 0), min(hi + halo, n)
        part = fn(a[a0:a1] if axis == 0 else a[:, a0:a1])
        if axis == 0:
            out[lo:hi] = part[lo - a0 : hi - a0]
        else:
            out[:, lo:hi] = part[:, lo - a0 : hi - a0]

    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(strip, range(count)))
    return out


def _max_along(a: np.ndarray, size: int, axis: int) -> np.ndarray:
    n = a.shape[axis]
    pad = [(0, 0), (0, 0)]
    pad[axis] = (size // 2, size - 1 - size // 2)
    x = np.pad(a, pad, mode="symmetric")  # scipy's "reflect", repeated as far as needed
    y = np.empty_like(x)  # the passes go back and forth between two buffers: no new pages

    def take(arr: np.ndarray, lo: int, hi: int) -> np.ndarray:
        return arr[lo:hi] if axis == 0 else arr[:, lo:hi]

    length, w = x.shape[axis], 1
    while 2 * w <= size:
        np.maximum(take(x, 0, length - w), take(x, w, length), out=take(y, 0, length - w))
        x, y, length, w = y, x, length - w, 2 * w
    s = size - w
    return np.maximum(take(x, 0, n), take(x, s, s + n))
