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

:class:`RunningMax` is the vertical pass for an array fed top to bottom in strips (a map
too large for memory): van Herk/Gil-Werman blocks of ``k`` rows, three element-wise maxima
per pixel whatever ``k``, holding about ``3 k`` rows.

:func:`by_strips` is that split for any filter local within a halo.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import ParameterError

__all__ = ["RunningMax", "by_strips", "max_along", "maximum_filter"]

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
    rows = max_along(a, size, axis=1, threads=threads)
    return by_strips(lambda s: _max_along(s, size, 0), rows, axis=1, threads=threads)


def max_along(a: np.ndarray, size: int, *, axis: int, threads: int = 1) -> np.ndarray:
    """One pass of :func:`maximum_filter`: the maximum over ``size`` pixels along ``axis``
    (SciPy's reflect border), on strips across it in ``threads`` threads."""
    return by_strips(lambda s: _max_along(s, size, axis), a, axis=1 - axis, threads=threads)


class RunningMax:
    """The vertical pass of :func:`maximum_filter` (``size`` rows, SciPy's reflect border) of
    an array of ``height`` rows given top to bottom in strips of any height: :meth:`add`
    returns the output rows that are complete, in order; every row is out once the last
    input row is in.

    Reflection only repeats rows of the array that lie inside the window anyway, so the
    reflected window's maximum is that of the window clipped to the array: the rows are
    padded with the dtype's least value (``size // 2`` above, the rest below) and cut into
    blocks of ``size`` padded rows. The window starting at padded row ``p`` is the suffix
    of ``p``'s block joined with the prefix of the next block up to ``p + size - 1``
    (van Herk/Gil-Werman): output row ``r`` is out once input row ``r + size - 1 - size // 2``
    is in, and memory holds two blocks of rows."""

    def __init__(self, height: int, width: int, size: int, dtype) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ParameterError(f"the filter size must be a positive whole number, got {size!r}")
        self.height, self.width, self.size = height, width, size
        self.dtype = np.dtype(dtype)
        self._least = (
            np.iinfo(self.dtype).min if self.dtype.kind in "iu" else -np.inf
        )  # neutral for the maximum
        self._prefix = np.empty((size, width), self.dtype)  # the current block's prefix maxima
        self._shared = np.empty((size, width), self.dtype)  # see _push
        self._q = 0  # padded rows in so far
        self._in = 0  # input rows in so far
        self._pad = np.full((size - 1 - size // 2, width), self._least, self.dtype)
        if size // 2:
            self._push(np.full((size // 2, width), self._least, self.dtype))

    def add(self, rows: np.ndarray) -> np.ndarray:
        """Take the next input rows; the output rows completed by them (maybe none)."""
        rows = np.asarray(rows, self.dtype)
        if rows.ndim != 2 or rows.shape[1] != self.width or self._in + len(rows) > self.height:
            raise ParameterError(
                f"RunningMax takes rows of width {self.width} up to {self.height} rows, got "
                f"{rows.shape} after {self._in} rows"
            )
        last = self._in < self.height == self._in + len(rows)  # these complete the array
        self._in += len(rows)
        out = self._push(rows)
        if last and len(self._pad):
            out = np.concatenate([out, self._push(self._pad)])
        return out

    def _push(self, rows: np.ndarray) -> np.ndarray:
        """Padded rows in; the outputs of the windows they complete, in order.

        One buffer holds the last full block's suffix maxima and, in the slots they no
        longer need, the current block's rows: row ``j`` of a block ends the window that
        starts at row ``j + 1`` of the block before, so slot ``j`` is free once row
        ``j - 1`` is in. A completed block's suffixes are then taken in place."""
        k, out, i = self.size, [], 0
        prefix, shared = self._prefix, self._shared
        while i < len(rows):
            at = self._q % k  # the row of the current block that rows[i] fills
            n = min(len(rows) - i, k - at)
            part = rows[i : i + n]
            for j in range(n):
                if at + j == 0:
                    prefix[0] = part[0]
                else:
                    np.maximum(prefix[at + j - 1], part[j], out=prefix[at + j])
            # the window starting at row s > 0 of the previous block ends at its row s - 1 here
            count = min(n, k - 1 - at)
            if self._q >= k and count > 0:
                out.append(np.maximum(shared[at + 1 : at + 1 + count], prefix[at : at + count]))
            shared[at : at + n] = part  # slots the previous block's windows are done with
            self._q += n
            i += n
            if self._q % k == 0:  # block complete: its suffixes; the window of its first row
                for j in range(k - 2, -1, -1):
                    np.maximum(shared[j + 1], shared[j], out=shared[j])
                out.append(shared[:1].copy())
        if not out:
            return np.empty((0, self.width), self.dtype)
        return np.concatenate(out)


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
