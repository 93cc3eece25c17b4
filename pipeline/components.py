"""Connected components of a large boolean raster, chunk by chunk, exactly.

:func:`components` gives every 8-connected component of a (lazy) boolean raster with
its pixel count, the exact mean of its row and column indexes (its centroid, as
scikit-image computes it) and its first pixel in raster order — whatever the
chunking, equal to labelling the whole array at once. Each chunk is labelled by
OpenCV on its own; components that touch across a chunk edge are then merged with a
union-find over the pairs of set pixels facing each other across that edge (8-connected:
straight across and diagonal, corners of four chunks included). Only the chunks'
statistics and edge rows travel, never the whole label image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import dask.array as da

__all__ = ["Component", "block_components", "components", "merge_blocks", "raster_components"]


@dataclass(frozen=True)
class Component:
    """One 8-connected component: size, centroid (row, col) and first pixel (row, col)."""

    count: int
    centroid: tuple[float, float]
    first: tuple[int, int]


@dataclass(frozen=True, eq=False)
class _Block:
    """A chunk's components: per local label (1..n) count, row sum, col sum, first pixel;
    and the labels of its four edge lines (0 = not set)."""

    count: np.ndarray
    row_sum: np.ndarray
    col_sum: np.ndarray
    first: np.ndarray  # (n, 2) global (row, col)
    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray


def block_components(mask: np.ndarray, r0: int = 0, c0: int = 0) -> _Block:
    """The components of one chunk whose top-left pixel is (r0, c0) of the raster.

    Local-maximum masks are a few large blobs, so they are summed from their row runs
    (:func:`_run_components`); masks with very many runs (noise) are labelled by OpenCV."""
    m = np.ascontiguousarray(mask, dtype=bool)
    h, w = m.shape
    if h == 0 or w == 0 or not m.any():
        return _empty_block(h, w)
    runs = _run_components(m)
    if runs is None:
        return _opencv_block(m, r0, c0)
    row, start, end, comp, k = runs
    length = end - start
    count = np.zeros(k, np.int64)
    row_sum = np.zeros(k, np.int64)
    col_sum = np.zeros(k, np.int64)
    np.add.at(count, comp, length)
    np.add.at(row_sum, comp, length * row)
    np.add.at(col_sum, comp, length * (start + end - 1) // 2)  # start + ... + end - 1
    firsts = np.unique(comp, return_index=True)[1]  # runs are in raster order
    first = np.stack([row[firsts] + r0, start[firsts] + c0], axis=1)
    top, bottom = np.zeros(w, np.int32), np.zeros(w, np.int32)
    for edge, line in ((top, 0), (bottom, h - 1)):
        on = row == line
        for s0, e0, c in zip(start[on].tolist(), end[on].tolist(), comp[on].tolist(), strict=True):
            edge[s0:e0] = c + 1
    left, right = np.zeros(h, np.int32), np.zeros(h, np.int32)
    left[row[start == 0]] = comp[start == 0] + 1
    right[row[end == w]] = comp[end == w] + 1
    return _Block(
        count, row_sum + count * r0, col_sum + count * c0, first, top, bottom, left, right
    )


def _empty_block(h: int, w: int) -> _Block:
    z = np.zeros(0, np.int64)
    return _Block(
        z, z, z, np.zeros((0, 2), np.int64),
        np.zeros(w, np.int32), np.zeros(w, np.int32), np.zeros(h, np.int32), np.zeros(h, np.int32),
    )  # fmt: skip


def _run_components(m: np.ndarray):
    """``(row, start, end, comp, k)``: the row runs of a boolean array (ends exclusive, in
    raster order) and the component of each (0..k-1, in raster order of first pixel), from
    a union-find over the runs that touch across consecutive rows (8-connected). None when
    there are more than ``MAX_RUNS`` runs."""
    h, w = m.shape
    busy = np.flatnonzero(m.any(axis=1))
    u = np.ascontiguousarray(m[busy] if len(busy) < h else m).view(np.uint8)
    start, end = _runs_of(u)
    if len(start) > MAX_RUNS:
        return None
    srow = start // w
    row, start, end = busy[srow], start - srow * w, end - srow * w
    n = len(start)
    parent = list(range(n))
    bounds = np.searchsorted(row, np.arange(h + 2)).tolist()
    st, en = start.tolist(), end.tolist()
    for r in np.unique(row).tolist():
        lo, b1 = bounds[r + 1], bounds[r + 2]
        for i in range(bounds[r], bounds[r + 1]):
            # the runs of the next row that touch run i: end >= start_i and start <= end_i
            while lo < b1 and en[lo] < st[i]:
                lo += 1
            j = lo
            while j < b1 and st[j] <= en[i]:
                _union(parent, i, j)
                j += 1
    roots = np.array([_find(parent, i) for i in range(n)])
    # a root is its component's first run (a union keeps the smaller index): rank them
    keys, comp = np.unique(roots, return_inverse=True)
    return row, start, end, comp, len(keys)


def _opencv_block(m: np.ndarray, r0: int, c0: int) -> _Block:
    h, w = m.shape
    n, labels = cv2.connectedComponents(m.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    flat = labels.ravel()
    count = np.bincount(flat, minlength=n)[1:].astype(np.int64)
    rows = np.repeat(np.arange(h, dtype=np.int64), w)
    cols = np.tile(np.arange(w, dtype=np.int64), h)
    row_sum = np.bincount(flat, weights=rows, minlength=n)[1:]
    col_sum = np.bincount(flat, weights=cols, minlength=n)[1:]
    # first pixel in raster order: the smallest flat index of each label
    order = np.flatnonzero(flat)
    first_flat = np.full(n, flat.size, np.int64)
    np.minimum.at(first_flat, flat[order], order)
    first = np.stack([first_flat[1:] // w + r0, first_flat[1:] % w + c0], axis=1)
    return _Block(
        count,
        # exact integer sums (float64 holds them exactly below 2**53), shifted to the raster
        np.rint(row_sum).astype(np.int64) + count * r0,
        np.rint(col_sum).astype(np.int64) + count * c0,
        first,
        labels[0].copy(),
        labels[-1].copy(),
        labels[:, 0].copy(),
        labels[:, -1].copy(),
    )


def components(mask: da.Array | np.ndarray) -> list[Component]:
    """Every 8-connected component of a 2-D boolean raster, in raster order of first pixel."""
    import dask  # (here only: the metrics import this module, and `selo models` the metrics)
    import dask.array as da

    mask = mask if isinstance(mask, da.Array) else da.from_array(np.asarray(mask, bool))
    rows, cols = (np.cumsum((0, *c)) for c in mask.chunks)
    delayed = mask.to_delayed()
    parts = [
        [
            dask.delayed(block_components)(delayed[i, j], int(rows[i]), int(cols[j]))
            for j in range(len(cols) - 1)
        ]
        for i in range(len(rows) - 1)
    ]
    blocks = dask.compute(parts)[0]
    return merge_blocks(blocks)


def merge_blocks(blocks: list[list[_Block]]) -> list[Component]:
    """The components of a raster from those of its blocks (:func:`block_components` of
    each block, in rows of blocks), joined across the blocks' edges."""
    # global ids: offset each block's local labels
    offsets, total = [], 0
    for row in blocks:
        offsets.append([])
        for b in row:
            offsets[-1].append(total)
            total += len(b.count)
    if total == 0:
        return []
    parent = np.arange(total + 1)  # id 0: background

    def ids(i: int, j: int, edge: np.ndarray) -> np.ndarray:
        return np.where(edge > 0, edge.astype(np.int64) + offsets[i][j], 0)

    pairs = []
    # horizontal chunk edges: the full-width rows above and below each edge
    for i in range(len(blocks) - 1):
        above = np.concatenate([ids(i, j, b.bottom) for j, b in enumerate(blocks[i])])
        below = np.concatenate([ids(i + 1, j, b.top) for j, b in enumerate(blocks[i + 1])])
        pairs += _facing(above, below)
    # vertical chunk edges: the full-height columns left and right of each edge
    for j in range(len(blocks[0]) - 1):
        left = np.concatenate([ids(i, j, row[j].right) for i, row in enumerate(blocks)])
        right = np.concatenate([ids(i, j + 1, row[j + 1].left) for i, row in enumerate(blocks)])
        pairs += _facing(left, right)
    for a, b in pairs:
        _union(parent, a, b)
    roots = np.array([_find(parent, k) for k in range(total + 1)])
    count = np.concatenate([b.count for row in blocks for b in row])
    row_sum = np.concatenate([b.row_sum for row in blocks for b in row])
    col_sum = np.concatenate([b.col_sum for row in blocks for b in row])
    first = np.concatenate([b.first for row in blocks for b in row])
    root = roots[1:]
    keys = np.unique(root)
    out = []
    for k in keys:
        sel = root == k
        n = int(count[sel].sum())
        f = first[sel]
        head = f[np.lexsort((f[:, 1], f[:, 0]))[0]]
        out.append(
            Component(
                n,
                (int(row_sum[sel].sum()) / n, int(col_sum[sel].sum()) / n),
                (int(head[0]), int(head[1])),
            )
        )
    out.sort(key=lambda c: c.first)
    return out


def _facing(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]]:
    """Pairs of set pixels facing each other across an edge, 8-connected (offsets -1, 0, 1)."""
    pairs = set()
    for shift in (-1, 0, 1):
        if shift < 0:
            x, y = a[1:], b[:-1]
        elif shift > 0:
            x, y = a[:-1], b[1:]
        else:
            x, y = a, b
        both = (x > 0) & (y > 0)
        pairs.update(zip(x[both].tolist(), y[both].tolist(), strict=True))
    return sorted(pairs)


def _find(parent, k: int) -> int:
    root = k
    while parent[root] != root:
        root = parent[root]
    while parent[k] != root:
        parent[k], k = root, parent[k]
    return int(root)


def _union(parent, a: int, b: int) -> None:
    ra, rb = _find(parent, a), _find(parent, b)
    if ra != rb:
        parent[max(ra, rb)] = min(ra, rb)


MAX_RUNS = 400_000  # beyond this many runs, labelling by OpenCV is quicker than union-find


def _runs_of(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat (start, end) indexes of the row runs of set pixels of a 2-D 0/1 uint8 array, in
    raster order; ``end`` is exclusive and a run never crosses a row."""
    h, w = u.shape
    flat = u.ravel()
    prev, cur = flat[:-1], flat[1:]
    starts = [np.flatnonzero(cur > prev) + 1]
    ends = [np.flatnonzero(prev > cur) + 1]
    # a run that reaches the end of a row while the next row starts with a set pixel
    across = np.flatnonzero(u[:-1, -1] & u[1:, 0]) * w + w
    starts.append(across)
    ends.append(across)
    if flat[0]:
        starts.append(np.zeros(1, np.int64))
    if flat[-1]:
        ends.append(np.full(1, flat.size, np.int64))
    return np.sort(np.concatenate(starts)), np.sort(np.concatenate(ends))


def raster_components(mask: np.ndarray) -> list[Component]:
    """Every 8-connected component of an in-memory boolean raster, in raster order of
    first pixel (as :func:`components`, without chunks)."""
    return merge_blocks([[block_components(mask)]])
