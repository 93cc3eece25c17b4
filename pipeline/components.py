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

import cv2
import dask
import dask.array as da
import numpy as np

__all__ = ["Component", "components", "block_components"]


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
    """The components of one chunk whose top-left pixel is (r0, c0) of the raster."""
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    h, w = m.shape
    if h == 0 or w == 0 or not m.any():
        z = np.zeros(0, np.int64)
        return _Block(
            z, z, z, np.zeros((0, 2), np.int64),
            np.zeros(w, np.int32), np.zeros(w, np.int32), np.zeros(h, np.int32), np.zeros(h, np.int32),
        )  # fmt: skip
    n, labels = cv2.connectedComponents(m, connectivity=8, ltype=cv2.CV_32S)
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
    return _merge(blocks)


def _merge(blocks: list[list[_Block]]) -> list[Component]:
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


def _find(parent: np.ndarray, k: int) -> int:
    root = k
    while parent[root] != root:
        root = parent[root]
    while parent[k] != root:
        parent[k], k = root, parent[k]
    return int(root)


def _union(parent: np.ndarray, a: int, b: int) -> None:
    ra, rb = _find(parent, a), _find(parent, b)
    if ra != rb:
        parent[max(ra, rb)] = min(ra, rb)

