"""Flt's kernels: OpenCV's whole-map filters, and the same filters computed from the cells.

:data:`FILTERS` is the filter table, one :class:`Filter` per kind: its kernel size, the
border rule OpenCV applies at the map's edges, the whole-map kernel (OpenCV on a
uint8 array) and the cell kernel (one block of the filtered map, from a
:class:`~selo.pipeline.gnt.CellMap`), both giving the same bytes as
``cv2.medianBlur(U, 251)`` / ``cv2.GaussianBlur(U, (255, 255), 0, 0)`` on the whole
uint8 map ``U``. A block of the filtered map depends on its :func:`halo`, the block
grown by the kernel's radius. :func:`cells_block` computes one block, in memory, by
whichever kernel pays; :mod:`selo.pipeline.flt` builds the lazy map from it.

The cell rules, for a kernel of radius ``r`` (``k = 2r + 1``):

- Median (BORDER_REPLICATE: the first and last cell extend without end). For an
  output pixel the k×k window covers cell (i, j) with weight ``a_i(y)·b_j(x)``
  (rows × columns overlapped); the median is the smallest value whose
  cumulative weight reaches ``(k² + 1) / 2``. Between the rows where a window
  edge crosses a cell edge every ``a_i`` is affine in y (likewise ``b_j`` in x),
  so on each such rectangle the cumulative weight of a value is bilinear and
  its extremes are at the four corners: a value whose cumulative weight stays
  on one side of the threshold at all four never moves the median there. The
  few values that cross it move the median index once per row each, at a
  breakpoint found by integer division, so each row of the rectangle is a few
  constant runs; one ``np.repeat`` expands a block's runs.
- Gaussian (BORDER_REFLECT_101). For CV_8U, OpenCV rounds the kernel to 8
  fraction bits (``getGaussianKernelFixedPoint_ED``: error-diffused, centre
  tap = 256 − the others), sums ``kx·U`` in 16 bits and ``ky·(...)`` in 32 bits
  exactly and rounds once: ``out = (Σ ky[r]·kx[c]·U + 2^15) >> 16``. That is an
  integer sum, so it can be taken per cell: column masses of the kernel per
  cell column, row masses per cell row, two small matrix products. Every
  partial sum is a non-negative multiple of 2^-16 below 256, exact in float32.

Where a block's halo holds nodata (``valid`` false somewhere), the map there is no
longer cell-constant: that block is expanded, masked and filtered by the whole-map
kernel, still exact. Blocks whose cells are too fine for the cell kernel to pay go
the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from ..errors import ParameterError
from .gnt import CellMap

__all__ = ["FILTERS", "Filter", "cells_block", "check_ksize", "gaussian_kernel_fixed", "halo"]

Block = tuple[int, int, int, int]  # r0, r1, c0, c1: rows [r0, r1), columns [c0, c1)

_BIG = 1 << 40


def check_ksize(ksize: int) -> None:
    """ParameterError unless ``ksize`` is a positive odd whole number."""
    if not isinstance(ksize, int | np.integer) or ksize < 1 or ksize % 2 == 0:
        raise ParameterError(f"kernel size must be a positive odd number, got {ksize!r}")


def halo(block: Block, ksize: int, shape: tuple[int, int]) -> Block:
    """The pixels a block of the filtered map depends on: ``block`` grown by the kernel's
    radius ``ksize // 2`` on every side, within a map of ``shape``."""
    r = ksize // 2
    r0, r1, c0, c1 = block
    return (max(r0 - r, 0), min(r1 + r, shape[0]), max(c0 - r, 0), min(c1 + r, shape[1]))


def cells_block(
    kernel: Filter,
    cells: CellMap,
    block: Block,
    around: Block,
    ksize: int,
    flags=None,
    parts=None,
    origin=None,
) -> np.ndarray:
    """One block of the filtered map, in memory: by the cell kernel if the block's halo
    ``around`` is all valid (and that pays), else by the whole-map kernel on the
    expanded, masked halo, cropped to the block.

    Without ``flags`` every pixel has data; else ``flags`` say whether each mask part
    is all valid, and ``parts`` (a 2-D list of mask arrays whose top-left pixel is
    ``origin``) cover the halo."""
    r0, r1, c0, c1 = block
    ya, yb, xa, xb = around
    if r1 == r0 or c1 == c0:  # dask allows empty chunks
        return np.empty((r1 - r0, c1 - c0), dtype=np.uint8)
    if flags is None or all(flags):
        out = kernel.cells(cells, block, ksize, kernel.cell_work)
        if out is not None:
            return out
        u = cells.block(ya, yb, xa, xb)
    else:
        mask = np.block(parts)[ya - origin[0] : yb - origin[0], xa - origin[1] : xb - origin[1]]
        u = np.where(mask, cells.block(ya, yb, xa, xb), np.uint8(0))
    out = kernel.whole(u, ksize)
    return out[r0 - ya : r1 - ya, c0 - xa : c1 - xa]


# --------------------------------------------------------------------------- median on cells


class _Pieces(NamedTuple):
    """Pieces of an axis range on which every cell's window weight is affine."""

    start: np.ndarray  # (p,) first pixel of each piece
    length: np.ndarray  # (p,)
    cell: np.ndarray  # (p, s) the cells a piece's windows touch, padded to s slots
    weight: np.ndarray  # (p, s) int32 weight at the piece's first pixel (0 in padding)
    slope: np.ndarray  # (p, s) int32 weight change per pixel: −1, 0 or 1
    real: np.ndarray  # (p, s) bool, False in padding


def _box_weight(lo: np.ndarray, hi: np.ndarray, y, r: int) -> np.ndarray:
    """Pixels of cell [lo, hi) inside the window [y − r, y + r]."""
    return np.maximum(0, np.minimum(y + r + 1, hi) - np.maximum(y - r, lo))


def _median_pieces(edges: np.ndarray, start: int, stop: int, r: int) -> _Pieces:
    """Split [start, stop) where a window edge crosses a cell edge (BORDER_REPLICATE).

    Cell weights have kinks at ``e − r − 1`` and ``e + r`` for each inner edge
    ``e``, so pieces start at ``e − r`` and ``e + r + 1``. The outer cells
    extend without end (replication).
    """
    n = int(edges[-1])
    inner = edges[1:-1].astype(np.int64)
    cuts = np.concatenate([inner - r, inner + r + 1])
    cuts = np.unique(cuts[(cuts > start) & (cuts < stop)])
    starts = np.concatenate([[start], cuts]).astype(np.int64)
    ends = np.concatenate([cuts, [stop]]).astype(np.int64)
    first = np.searchsorted(edges, np.maximum(starts - r, 0), side="right") - 1
    last = np.searchsorted(edges, np.minimum(ends - 1 + r, n - 1), side="right") - 1
    cell = first[:, None] + np.arange(int((last - first).max()) + 1)
    real = cell <= last[:, None]
    cell = np.minimum(cell, len(edges) - 2)
    lo, hi = edges[:-1].astype(np.int64), edges[1:].astype(np.int64)
    lo[0], hi[-1] = -_BIG, _BIG
    lo, hi = lo[cell], hi[cell]
    w0 = _box_weight(lo, hi, starts[:, None], r)
    w1 = _box_weight(lo, hi, starts[:, None] + 1, r)
    slope = np.where((ends - starts > 1)[:, None], w1 - w0, 0)
    return _Pieces(
        starts,
        ends - starts,
        cell,
        np.where(real, w0, 0).astype(np.int32),
        np.where(real, slope, 0).astype(np.int32),
        real,
    )


class _Rects(NamedTuple):
    """Per rectangle (row piece × column piece, flat index i·n + j) of a block."""

    value: np.ndarray  # (m·n, k) int32 its cell values, sorted (256 in padding)
    coef: np.ndarray  # (5, m·n, k) int32: p0, py, px, pyx of the prefix weights, group size
    base: np.ndarray  # (m·n,) median index where no group moves
    active: np.ndarray  # (m·n, k) bool: the last cell of a group that crosses ``need``


def _median_rects(values: np.ndarray, py: _Pieces, px: _Pieces, need: int) -> _Rects:
    """Sort each rectangle's cells by value; find which value groups can hold the median.

    The weight of the cells up to the j-th (in value order) at offset (dy, dx) in
    the rectangle is ``p0 + py·dy + px·dx + pyx·dy·dx``: bilinear, so below
    ``need`` at the four corners means below it everywhere, likewise above.
    """
    m, kr = py.cell.shape
    n, kc = px.cell.shape
    k = kr * kc
    vals = values[py.cell[:, None, :, None], px.cell[None, :, None, :]].astype(np.int64)
    vals = np.where(py.real[:, None, :, None] & px.real[None, :, None, :], vals, 256)
    # one flat sort of (rectangle, value, slot) keys sorts every rectangle at once
    rect = np.arange(m * n)[:, None]
    key = (rect * 257 + vals.reshape(m * n, k)) * k + np.arange(k)
    key = np.sort(key.astype(np.int32) if m * n * 257 * k < 1 << 31 else key, axis=None)
    slot = (key % k).reshape(m * n, k)
    vals = ((key // k) % 257).astype(np.int32).reshape(m * n, k)
    oi, oj = np.divmod(slot, kc)
    ri, cj = rect // n, rect % n
    a0, ay = py.weight[ri, oi], py.slope[ri, oi]
    b0, bx = px.weight[cj, oj], px.slope[cj, oj]
    # (5, k, m·n) while summing over the few slots (loops beat numpy's short-axis cumsum)
    coef = np.empty((5, k, m * n), dtype=np.int32)
    for i, term in enumerate((a0 * b0, ay * b0, a0 * bx, ay * bx)):
        coef[i] = term.T
        for j in range(1, k):
            coef[i, j] += coef[i, j - 1]
    p0, pdy, pdx, pyx = coef[:4]
    dy = np.repeat(py.length - 1, n).astype(np.int32)
    dx = np.tile(px.length - 1, m).astype(np.int32)
    corners = (p0 < need, p0 + pdy * dy < need, p0 + pdx * dx < need)
    corners += (p0 + pdy * dy + pdx * dx + pyx * (dy * dx) < need,)
    below = corners[0] & corners[1] & corners[2] & corners[3]
    above = ~(corners[0] | corners[1] | corners[2] | corners[3])
    vt = np.ascontiguousarray(vals.T)
    last = np.ones((k, m * n), dtype=bool)  # the last cell of a run of equal values
    last[:-1] = vt[1:] != vt[:-1]
    size = coef[4]  # group sizes, read at the last cell of each group
    size[:] = 1
    for j in range(1, k):
        size[j] += np.where(last[j - 1], 0, size[j - 1])
    base = np.where(last & below, size, 0).sum(axis=0)
    active = last & ~below & ~above
    return _Rects(vals, coef.transpose(0, 2, 1), base, active.T)


# sorting networks (pairs to compare-exchange) for columns of a few rows
_NETWORKS = {
    1: [],
    2: [(0, 1)],
    3: [(0, 1), (1, 2), (0, 1)],
    4: [(0, 1), (2, 3), (0, 2), (1, 3), (1, 2)],
    5: [(0, 1), (3, 4), (2, 4), (2, 3), (1, 4), (0, 3), (0, 2), (1, 3), (1, 2)],
    6: [(1, 2), (4, 5), (0, 2), (3, 5), (0, 1), (3, 4), (2, 5), (0, 3), (1, 4), (2, 4)]
    + [(1, 3), (2, 3)],
}


def _sort_columns(a: np.ndarray) -> np.ndarray:
    """Each column of a (few, many) array, sorted."""
    if len(a) not in _NETWORKS:
        return np.sort(a, axis=0)
    rows = list(a)
    for i, j in _NETWORKS[len(rows)]:
        rows[i], rows[j] = np.minimum(rows[i], rows[j]), np.maximum(rows[i], rows[j])
    return np.stack(rows)


def _row_runs(coef: np.ndarray, dy: np.ndarray, base: np.ndarray, length: np.ndarray, need: int):
    """Median index runs along R rows of rectangles with ``na`` active groups each.

    ``coef`` (5, na, ...) holds each group's p0, py, px, pyx and size, ``dy`` the
    row offsets, ``base`` the rectangle's base index (all broadcast to the rows'
    shape, e.g. rectangles × rows of each). At x-offset d the
    index is ``base + Σ size·[p + q·d < need]`` with ``p = p0 + py·dy`` and
    ``q = px + pyx·dy``: a group below leaves the count at ``ceil((need − p) / q)``
    if q > 0, one above joins it at ``floor((p − need) / −q) + 1`` if q < 0.
    Returns the index and the length of each run, both (na + 1, *rows' shape).
    """
    na = coef.shape[1]
    p = coef[0] + coef[1] * dy
    q = coef[2] + coef[3] * dy
    size = coef[4]
    low = p < need
    start = base + size[0] * low[0]
    for j in range(1, na):  # loops over the few rows: numpy's axis-0 reductions are slow here
        start += size[j] * low[j]
    rising = q > 0
    leave = low & rising
    moves = (low == rising) & (q != 0)
    bp = p - need
    bp -= q
    np.subtract(-1, bp, out=bp, where=leave)  # need − p + q − 1 where leaving
    bp //= np.maximum(np.abs(q, out=q), 1)
    bp = np.where(moves, np.minimum(bp, length), length)
    step = np.where(leave, -size, size)
    step *= bp < length
    if na == 2:
        swap = bp[0] > bp[1]
        bp = np.where(swap, bp[::-1], bp)
        step = np.where(swap, step[::-1], step)
    elif na > 2:  # sort each row's breakpoints, the steps riding in the low bits
        shift = int(np.abs(size).max()).bit_length() + 1
        wide = int(np.max(length)).bit_length() + shift > 30
        key = bp.astype(np.int64) if wide else bp.copy()
        key <<= shift
        key |= step + (1 << (shift - 1))
        key = _sort_columns(key)
        bp = (key >> shift).astype(np.int32)
        step = (key & ((1 << shift) - 1)).astype(np.int32) - (1 << (shift - 1))
    idx = np.empty((na + 1, *p.shape[1:]), dtype=np.int32)
    idx[0] = start
    for j in range(na):
        np.add(idx[j], step[j], out=idx[j + 1])
    lens = np.empty(idx.shape, dtype=np.intp)
    lens[0] = bp[0]
    lens[1:na] = bp[1:] - bp[:-1]
    lens[na] = length - bp[-1]
    return idx, lens


def _ragged_arange(counts: np.ndarray, dtype=np.int64) -> np.ndarray:
    """Concatenated ``arange(c)`` for each c in counts."""
    starts = (np.cumsum(counts) - counts).astype(dtype)
    return np.arange(int(counts.sum()), dtype=dtype) - np.repeat(starts, counts)


def _median_cells(cells: CellMap, loc: Block, ksize: int, budget: float) -> np.ndarray | None:
    """The block ``loc`` of the median, from the cells; None if its work exceeds ``budget``
    units per halo pixel (OpenCV is cheaper).

    The rectangles are painted as runs along lines: along rows, except the column
    pieces narrower than the rectangles are tall (the thin pieces next to each
    cell edge), which are solved and painted along their columns.
    """
    r0, r1, c0, c1 = loc
    r = ksize // 2
    need = (ksize * ksize + 1) // 2
    py = _median_pieces(cells.grid.row_edges, r0, r1, r)
    px = _median_pieces(cells.grid.col_edges, c0, c1, r)
    m, n = len(py.start), len(px.start)
    k = py.cell.shape[1] * px.cell.shape[1]
    h, w = r1 - r0, c1 - c0
    work = m * n * k * 40 + h * n * min(k, 8) * 4
    if work > budget * (h + 2 * r) * (w + 2 * r):
        return None
    if ksize * ksize >= 1 << 31:  # int32 weights
        return None
    rects = _median_rects(cells.values, py, px, need)
    nact = rects.active.sum(axis=-1).reshape(m, n)
    runs = np.where(nact > 0, nact + 1, 0)
    by_column = px.length * runs.sum(axis=0) < (py.length[:, None] * runs).sum(axis=0)
    flat = np.arange(m * n).reshape(m, n)
    out = _paint_lines(
        rects, np.where(by_column, 0, nact), flat, py.length, px.length, need, (0, 1, 2, 3, 4)
    )
    if by_column.any():
        cols = np.flatnonzero(by_column)
        strips = _paint_lines(
            rects,
            nact[:, cols].T,
            flat[:, cols].T,
            px.length[cols],
            py.length,
            need,
            (0, 2, 1, 3, 4),
        )
        at = 0
        for j in cols.tolist():  # each piece is a contiguous range of the block's columns
            x0, width = int(px.start[j]) - c0, int(px.length[j])
            out.T[x0 : x0 + width] = strips[at : at + width]
            at += width
    return out


def _paint_lines(rects: _Rects, nact, flat, lines, along, need: int, roles) -> np.ndarray:
    """Paint a grid of rectangles (major × minor pieces) line by line, as runs.

    Major piece i is crossed by ``lines[i]`` lines; on each, minor piece j is
    ``along[j]`` long. A rectangle with ``nact`` active groups gives ``nact + 1``
    runs per line (some empty), one with none a single run. ``flat`` indexes the
    rectangles in ``rects``; ``roles`` picks from ``rects.coef`` the constant, the
    slope across the lines, the slope along them, the cross term and the group
    size: (0, 1, 2, 3, 4) for rows, (0, 2, 1, 3, 4) for columns. Returns the
    (Σ lines, Σ along) array, expanded by one ``np.repeat``.
    """
    k = rects.value.shape[1]
    slots = nact + 1
    offset = np.cumsum(slots, axis=1) - slots  # first run of each rectangle in its lines
    line_slots = np.repeat(slots.sum(axis=1), lines)
    line_start = np.cumsum(line_slots) - line_slots
    run_val = np.empty(int(line_slots.sum()), dtype=np.uint8)
    run_len = np.empty(run_val.shape, dtype=np.intp)
    flat_val = rects.value.reshape(-1)
    first_line = np.cumsum(lines) - lines
    for na in np.unique(nact).tolist():
        vi, vj = np.nonzero(nact == na)
        counts = lines[vi]
        d = _ragged_arange(counts, np.int32)  # the line's offset in its piece
        first = line_start[d + np.repeat(first_line[vi], counts)]
        first += np.repeat(offset[vi, vj], counts)
        rect = flat[vi, vj]
        cell0 = np.repeat(rect * k, counts)
        base = np.repeat(rects.base[rect], counts).astype(np.int32)
        length = np.repeat(along[vj].astype(np.int32), counts)
        if na == 0:
            run_val[first] = flat_val[cell0 + base]
            run_len[first] = length
            continue
        groups = np.nonzero(rects.active[rect])[1].reshape(-1, na)
        coef = rects.coef[np.array(roles)[:, None, None], rect[:, None], groups]
        idx, lens = _row_runs(
            np.repeat(coef.transpose(0, 2, 1), counts, axis=2), d, base, length, need
        )
        pos = first + np.arange(na + 1)[:, None]
        run_val[pos] = flat_val[cell0 + idx]
        run_len[pos] = lens
    return np.repeat(run_val, run_len).reshape(int(lines.sum()), int(along.sum()))


# --------------------------------------------------------------------------- Gaussian on cells


def gaussian_kernel_fixed(ksize: int) -> np.ndarray:
    """OpenCV's 8-bit fixed-point Gaussian kernel for ``ksize`` and sigma 0 (sums to 256).

    ``getGaussianKernelFixedPoint_ED``: the taps of ``cv2.getGaussianKernel`` times
    256, rounded left to right with the rounding error carried to the next tap;
    the centre tap is 256 minus the others. (OpenCV's softdouble arithmetic is
    IEEE double arithmetic, the same as Python's.)
    """
    check_ksize(ksize)
    taps = cv2.getGaussianKernel(ksize, 0, cv2.CV_64F).ravel().tolist()
    out = [0] * ksize
    err = 0.0
    for i in range(ksize // 2):
        adj = taps[i] * 256.0 + err
        v = round(adj)  # cvRound: nearest, ties to even
        err = adj - float(v)
        out[i] = out[ksize - 1 - i] = v
    out[ksize // 2] = 256 - 2 * sum(out[: ksize // 2])
    return np.asarray(out, dtype=np.int64)


def _reflect101(p: np.ndarray, n: int) -> np.ndarray:
    """OpenCV's BORDER_REFLECT_101 index (reflected as often as needed)."""
    if n == 1:
        return np.zeros_like(p)
    q = np.mod(p, 2 * (n - 1))
    return np.where(q < n, q, 2 * (n - 1) - q)


def _gaussian_masses(edges: np.ndarray, start: int, stop: int, kernel: np.ndarray):
    """Kernel mass on each cell, for each output position in [start, stop) (reflect-101).

    Returns the first cell reached and a float32 matrix (stop − start, cells) of
    integer masses (≤ 256, exact).
    """
    r = len(kernel) // 2
    p = np.arange(start - r, stop + r)
    cell = np.searchsorted(edges, _reflect101(p, int(edges[-1])), side="right") - 1
    change = np.flatnonzero(np.diff(cell)) + 1
    run_lo = np.concatenate([[0], change])
    run_hi = np.concatenate([change, [len(p)]])
    prefix = np.concatenate([[0], np.cumsum(kernel)]).astype(np.int32)
    t = np.arange(stop - start)[:, None]  # the window of position t is p-index [t, t + 2r]
    mass = prefix[np.clip(run_hi - t, 0, 2 * r + 1)] - prefix[np.clip(run_lo - t, 0, 2 * r + 1)]
    # runs reach a contiguous range of cells, some cells more than once (reflection)
    by_cell = np.argsort(cell[run_lo], kind="stable")
    firsts = np.flatnonzero(np.diff(cell[run_lo][by_cell], prepend=-1))
    return int(cell.min()), np.add.reduceat(mass[:, by_cell], firsts, axis=1).astype(np.float32)


def _gaussian_cells(cells: CellMap, loc: Block, ksize: int, budget: float) -> np.ndarray | None:
    """The block ``loc`` of the Gaussian, from the cells; None if its work exceeds
    ``budget`` units per halo pixel (OpenCV is cheaper)."""
    r0, r1, c0, c1 = loc
    g = cells.grid
    h, w = r1 - r0, c1 - c0
    # OpenCV drops the kernel along an axis of length 1
    ky = gaussian_kernel_fixed(ksize if g.height > 1 else 1)
    kx = gaussian_kernel_fixed(ksize if g.width > 1 else 1)
    ry, rx = len(ky) // 2, len(kx) // 2
    ni = _cells_between(g.row_edges, r0 - ry, r1 + ry, g.height)
    nj = _cells_between(g.col_edges, c0 - rx, c1 + rx, g.width)
    work = h * w * (ni + 16) // 4 + ni * nj * w
    if work > budget * (h + 2 * ry) * (w + 2 * rx):
        return None
    i0, my = _gaussian_masses(g.row_edges, r0, r1, ky)
    j0, mx = _gaussian_masses(g.col_edges, c0, c1, kx)
    vals = cells.values[i0 : i0 + my.shape[1], j0 : j0 + mx.shape[1]].astype(np.float32)
    ni = my.shape[1]
    # a·b = (Σ my·(vals·mxᵀ) + 2^15) / 2^16: the horizontal pass (integers < 2^16) then
    # the vertical one; every partial sum is a non-negative multiple of 2^-16 below
    # 256, exact in float32 whatever the order, and truncation is OpenCV's ">> 16"
    b = np.empty((ni + 1, w), dtype=np.float32)
    for y0, y1, part in _row_products(vals, mx.T):
        np.multiply(part, 1 / 256, out=b[y0:y1])
    b[ni] = 1.0
    a = np.empty((h, ni + 1), dtype=np.float32)
    np.multiply(my, 1 / 256, out=a[:, :ni])
    a[:, ni] = 0.5  # the rounding term 2^15 / 2^16
    out = np.empty((h, w), dtype=np.uint8)
    for y0, y1, part in _row_products(a, b):
        np.copyto(out[y0:y1], part, casting="unsafe")
    return out


# OpenBLAS runs a GEMM on the calling thread when m·n·k ≤ 4 · 65536
_BLAS_SERIAL = 1 << 18


def _row_products(a: np.ndarray, b: np.ndarray, buffer: int = 1 << 20):
    """``a @ b`` in float32 by slabs of rows: yields (start, stop, rows of the product).

    Each BLAS call is kept small enough to run on the calling thread: dask already
    runs blocks in parallel, and nested BLAS threads spin against its threads
    (measured: 66 ms instead of 3 ms for a 2048² block on 2 busy cores).
    """
    h, k = a.shape
    w = b.shape[1]
    rows = max(1, _BLAS_SERIAL // (k * w))  # rows per BLAS call
    calls = max(1, buffer // (4 * rows * w))  # calls per slab (numpy's batched matmul)
    padded = -(-h // rows) * rows
    if padded != h:
        a = np.concatenate([a, np.zeros((padded - h, k), dtype=a.dtype)])
    buf = np.empty((calls, rows, w), dtype=np.float32)
    for y in range(0, h, calls * rows):
        n = min(calls, (padded - y) // rows)
        np.matmul(a[y : y + n * rows].reshape(n, rows, k), b, out=buf[:n])
        stop = min(y + n * rows, h)
        yield y, stop, buf[:n].reshape(n * rows, w)[: stop - y]


def _cells_between(edges: np.ndarray, start: int, stop: int, n: int) -> int:
    """How many cells (first to last) positions [start, stop) reach, reflected."""
    p = _reflect101(np.arange(start, stop), n)
    first, last = np.searchsorted(edges, [p.min(), p.max()], side="right") - 1
    return int(last - first) + 1


# --------------------------------------------------------------------------- the table


def _median_whole(u: np.ndarray, ksize: int) -> np.ndarray:
    return cv2.medianBlur(np.ascontiguousarray(u), ksize)  # always BORDER_REPLICATE


def _gaussian_whole(u: np.ndarray, ksize: int) -> np.ndarray:
    return cv2.GaussianBlur(np.ascontiguousarray(u), (ksize, ksize), 0, 0)  # BORDER_REFLECT_101


@dataclass(frozen=True)
class Filter:
    """One finishing filter (a row of :data:`FILTERS`)."""

    kind: str
    ksize: int  # the methods' kernel size
    border: int  # OpenCV's border rule at the map's edges (cv2.BORDER_*)
    #: OpenCV's filter of a whole uint8 array (or of a block's expanded halo)
    whole: Callable[[np.ndarray, int], np.ndarray]
    #: one block from a cell map: (cells, block, ksize, budget) -> pixels, or None when
    #: its work exceeds ``budget`` units per halo pixel
    cells: Callable[[CellMap, Block, int, float], np.ndarray | None]
    #: the cell kernel is taken for a block when its estimated work is below this many
    #: units per pixel of the block's halo; the whole-map kernel on the expanded halo
    #: otherwise. Calibrated on one core: cv2.medianBlur(251) costs ~25-40 ns per halo
    #: pixel and a median work unit ~1 ns; cv2.GaussianBlur(255) ~250 ns per pixel and a
    #: Gaussian unit (a float32 multiply-add in a matrix product) ~0.1-0.2 ns. Both are
    #: exact: this only decides the speed (v1 maps, cells of 128 px, take the cells).
    cell_work: float


FILTERS: dict[str, Filter] = {
    f.kind: f
    for f in (
        Filter("median", 251, cv2.BORDER_REPLICATE, _median_whole, _median_cells, 6.0),
        Filter("gaussian", 255, cv2.BORDER_REFLECT_101, _gaussian_whole, _gaussian_cells, 1000.0),
    )
}
"""The finishing filters by kind: v1 finishes with the median, v2 with the Gaussian."""
