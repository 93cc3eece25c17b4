"""Flt: chunked and cell-grid filters equal the whole-array OpenCV call bit for bit."""

from __future__ import annotations

import dataclasses
import itertools
import math
from contextlib import contextmanager
from unittest import mock

import cv2
import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from selo.errors import ParameterError
from selo.pipeline import filters
from selo.pipeline.filters import FILTERS, gaussian_kernel_fixed
from selo.pipeline.flt import filter_array, finish
from selo.pipeline.gnt import CellGrid, CellMap, accumulate, quantize
from selo.pipeline.windows import window_table


def piecewise_map(shape, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(1, shape[0] // 40), max(1, shape[1] // 40))).astype(np.uint8)
    u = cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return cv2.add(u, rng.integers(0, 8, shape, dtype=np.uint8))


CHUNKINGS = [
    "whole",
    (256, 256),  # chunks about the kernel size
    (130, 700),  # thin chunks: smaller than the overlap depth
    (300, 1),  # one-column chunks
    "irregular",  # 90 % / 10 % of the rows, 5 % / 95 % of the columns
]


def chunked(u, chunks):
    h, w = u.shape
    if chunks == "whole":
        chunks = u.shape
    elif chunks == "irregular":
        chunks = ((h - h // 10, h // 10), (w // 20, w - w // 20))
    return da.from_array(u, chunks=chunks)


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("shape", [(700, 760), (120, 200)])  # larger and smaller than the kernel
def test_median_equals_opencv_whole_map(shape, chunks):
    u = piecewise_map(shape)
    arr = chunked(u, chunks)
    assert np.array_equal(filter_array(arr, "median").compute(), cv2.medianBlur(u, 251))


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("shape", [(700, 760), (120, 200)])
def test_gaussian_equals_opencv_whole_map(shape, chunks):
    u = piecewise_map(shape, seed=1)
    arr = chunked(u, chunks)
    expected = cv2.GaussianBlur(u, (255, 255), 0, 0)
    assert np.array_equal(filter_array(arr, "gaussian").compute(), expected)


def test_filters_are_lazy_and_keep_chunks():
    arr = da.zeros((3000, 3000), dtype=np.uint8, chunks=1000)
    out = filter_array(arr, "median")
    assert out.chunks == arr.chunks and out.dtype == np.uint8
    assert any(name.startswith("flt-median-") for name in out.dask.layers)


@pytest.mark.parametrize(
    ("arr", "ksize", "message"),
    [
        (da.zeros((10, 10), dtype=np.uint8), 250, "odd"),
        (da.zeros((10, 10), dtype=np.float32), 251, "uint8"),
        (da.zeros((10, 10, 3), dtype=np.uint8), 251, "2-D"),
    ],
)
def test_bad_arguments(arr, ksize, message):
    with pytest.raises(ParameterError, match=message):
        filter_array(arr, "median", ksize)


# --------------------------------------------------------------------------- cell route

MAX_SIDE = 640
MAX_BLOCKS = 5  # chunks per axis


def cut(length: int, sizes: list[int]) -> np.ndarray:
    """Edges 0 < ... < length from consecutive sizes; the last cell takes what is left."""
    edges = np.cumsum([0, *sizes])
    return np.unique(np.concatenate([edges[edges < length], [length]]))


cell_sizes = st.lists(
    st.one_of(st.integers(1, 4), st.integers(1, 160), st.integers(100, 900)),
    min_size=1,
    max_size=24,
)


# mostly up to MAX_SIDE, sometimes 1 to 3 pixels (one-pixel-wide maps)
sides = st.integers(0, MAX_SIDE + MAX_SIDE // 8).map(lambda n: n if n <= MAX_SIDE else n % 3 + 1)
sides = sides.filter(lambda n: n > 0)


@st.composite
def cell_maps(draw) -> CellMap:
    """Random grids (cells of 1 to 900 px) or real window tables, with flat,
    two-valued, few-valued or random uint8 values."""
    h, w = draw(sides), draw(sides)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):  # a real table: its cells include the small edge cells
        scales = draw(st.sampled_from([(256, 512, 768), (64, 96), (40, 100, 130), (300,)]))
        table = window_table(h, w, scales)
        grid = CellGrid.from_windows(h, w, table.windows)
        return quantize(accumulate(grid, table.windows, rng.random(len(table))))
    grid = CellGrid(h, w, cut(h, draw(cell_sizes)), cut(w, draw(cell_sizes)))
    palette = {
        "flat": rng.integers(0, 256, 1),
        "two-valued": rng.integers(0, 256, 2),
        "few-valued": rng.integers(0, 256, 4),
        "random": np.arange(256),
    }[draw(st.sampled_from(["flat", "two-valued", "few-valued", "random"]))]
    values = rng.choice(palette, size=grid.shape).astype(np.uint8)
    return CellMap(grid, values, np.ones(grid.shape, dtype=bool))


@st.composite
def chunkings(draw, shape, max_blocks=MAX_BLOCKS):
    """Random chunks per axis: cut points anywhere (one-pixel chunks, chunks thinner
    than the halo), at most ``max_blocks`` per axis."""
    out = []
    for side in shape:
        cuts = draw(st.sets(st.integers(1, max(side - 1, 1)), max_size=max_blocks - 1))
        edges = sorted({0, side, *(c for c in cuts if 0 < c < side)})
        out.append(tuple(np.diff(edges).tolist()))
    return tuple(out)


@st.composite
def nodata(draw, shape):
    """None, or a mask with up to three rectangles of nodata, in its own chunking."""
    if draw(st.booleans()):
        return None
    h, w = shape
    valid = np.ones(shape, dtype=bool)
    for _ in range(draw(st.integers(1, 3))):
        y0, y1 = sorted(draw(st.tuples(st.integers(0, h), st.integers(0, h))))
        x0, x1 = sorted(draw(st.tuples(st.integers(0, w), st.integers(0, w))))
        valid[y0 : y1 + 1, x0 : x1 + 1] = False
    return da.from_array(valid, chunks=draw(chunkings(shape)))


def expanded(cells: CellMap, valid) -> np.ndarray:
    u = cells.to_array()
    return u if valid is None else np.where(valid.compute(), u, 0).astype(np.uint8)


@contextmanager
def prefer_cells(cells: CellMap, valid):
    """Take the cell route far more often than the cost model would (both routes are
    exact); where the grid is small enough to afford it on every block, take it
    always and check that OpenCV is never called."""
    budget = {"median": 50.0, "gaussian": 1e5}  # bounded memory: cells ≤ ~1e6 per block
    if valid is not None or math.prod(cells.grid.shape) > 400:
        with patched(cell_work=budget):
            yield
        return

    with patched(cell_work=dict.fromkeys(FILTERS, math.inf)), no_opencv():
        yield


def patched(**fields):
    """The filter table with some fields of each row replaced ({field: {kind: value}})."""
    rows = {
        kind: dataclasses.replace(f, **{name: by_kind[kind] for name, by_kind in fields.items()})
        for kind, f in FILTERS.items()
    }
    return mock.patch.dict(FILTERS, rows)


@contextmanager
def no_opencv():
    """Fail if a block goes through the OpenCV fallback."""

    def opencv_called(*args):
        raise AssertionError("the OpenCV fallback ran on a valid, cell-constant block")

    with patched(whole=dict.fromkeys(FILTERS, opencv_called)):
        yield


SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(max_examples=80, **SETTINGS)
@given(data=st.data(), cells=cell_maps(), ksize=st.sampled_from([251, 251, 251, 3, 5, 7, 31]))
def test_median_cells_equal_opencv(data, cells, ksize):
    shape = (cells.grid.height, cells.grid.width)
    chunks = data.draw(chunkings(shape))
    valid = data.draw(nodata(shape))
    with prefer_cells(cells, valid), dask.config.set(scheduler="sync"):
        out = finish(cells, "median", chunks, valid=valid, ksize=ksize).compute()
    assert np.array_equal(out, cv2.medianBlur(expanded(cells, valid), ksize))


@settings(max_examples=30, **SETTINGS)  # OpenCV's GaussianBlur(255) is slow (~250 ns/px)
@given(data=st.data(), cells=cell_maps(), ksize=st.sampled_from([255, 255, 255, 1, 3, 5, 9, 31]))
def test_gaussian_cells_equal_opencv(data, cells, ksize):
    shape = (cells.grid.height, cells.grid.width)
    valid = data.draw(nodata(shape))
    # nodata blocks go through OpenCV on their halo: fewer of them keeps the test quick
    chunks = data.draw(chunkings(shape, MAX_BLOCKS if valid is None else 3))
    with prefer_cells(cells, valid), dask.config.set(scheduler="sync"):
        out = finish(cells, "gaussian", chunks, valid=valid, ksize=ksize).compute()
    expected = cv2.GaussianBlur(expanded(cells, valid), (ksize, ksize), 0, 0)
    assert np.array_equal(out, expected)


def v1_cells(h: int, w: int, seed: int = 0) -> CellMap:
    table = window_table(h, w)
    grid = CellGrid.from_windows(h, w, table.windows)
    scores = np.random.default_rng(seed).random(len(table))
    return quantize(accumulate(grid, table.windows, scores))


@pytest.mark.parametrize(
    "chunks",
    [
        (1500, 1500),  # about the size of a real chunk (2048 at 10k²)
        (256, 700),
        ((1, 1199, 300), (900, 1, 599)),  # one-pixel chunks
        ((100, 1400), (60, 1440)),  # chunks thinner than the halo
    ],
)
def test_v1_map_median_and_gaussian_equal_opencv(chunks):
    """A real v1 map (1500², its small edge cells): the cost model takes the cell route."""
    cells = v1_cells(1500, 1500)
    u = cells.to_array()
    with no_opencv(), dask.config.set(scheduler="threads"):  # the cost model picks cells
        med, gau = dask.compute(finish(cells, "median", chunks), finish(cells, "gaussian", chunks))
    assert np.array_equal(med, cv2.medianBlur(u, 251))
    assert np.array_equal(gau, cv2.GaussianBlur(u, (255, 255), 0, 0))


def test_nodata_blocks_fall_back_and_stay_exact():
    """Nodata in one corner: the blocks whose halo touches it go through OpenCV."""
    cells = v1_cells(900, 1100, seed=3)
    valid = np.ones((900, 1100), dtype=bool)
    valid[:200, 700:] = False
    u = np.where(valid, cells.to_array(), 0).astype(np.uint8)
    mask = da.from_array(valid, chunks=(250, 300))
    med = finish(cells, "median", 300, valid=mask).compute()
    gau = finish(cells, "gaussian", (450, 512), valid=mask).compute()
    assert np.array_equal(med, cv2.medianBlur(u, 251))
    assert np.array_equal(gau, cv2.GaussianBlur(u, (255, 255), 0, 0))


def test_cell_filters_are_lazy_named_and_keep_chunks():
    cells = v1_cells(3000, 2000)
    computed = []

    def spy(block):
        computed.append(block.shape)
        return block

    valid = da.ones((3000, 2000), dtype=bool, chunks=700)
    valid = valid.map_blocks(spy, dtype=bool, meta=np.empty((0, 0), dtype=bool))
    for kind in FILTERS:
        out = finish(cells, kind, (1000, 1500), valid=valid)
        assert out.chunks == ((1000, 1000, 1000), (1500, 500)) and out.dtype == np.uint8
        assert out.name.startswith(f"flt-{kind}-cells-")
        assert out.name == finish(cells, kind, (1000, 1500), valid=valid).name  # deterministic
        assert isinstance(out._meta, np.ndarray) and out._meta.dtype == np.uint8
    assert computed == []  # building the graph read no mask block


def test_gaussian_kernel_fixed_is_opencvs():
    """Sums to 256, symmetric; a single bright pixel (away from the borders) blurs
    into the outer product of the kernel, rounded once as OpenCV does."""
    k = gaussian_kernel_fixed(255)
    assert k.sum() == 256 and np.array_equal(k, k[::-1])
    u = np.zeros((600, 600), dtype=np.uint8)
    u[300, 300] = 255
    expected = np.zeros(u.shape, dtype=np.int64)
    expected[173:428, 173:428] = 255 * np.outer(k, k)
    assert np.array_equal(cv2.GaussianBlur(u, (255, 255), 0, 0), (expected + 2**15) >> 16)


@pytest.mark.parametrize("rows", range(1, 8))
def test_sorting_networks_sort_every_column(rows):
    """0/1 principle: a network that sorts every 0/1 column sorts every column."""
    columns = np.array(list(itertools.product((0, 1), repeat=rows))).T
    assert np.array_equal(filters._sort_columns(columns), np.sort(columns, axis=0))


GRID = CellGrid(10, 10, np.array([0, 5, 10]), np.array([0, 10]))
GOOD = CellMap(GRID, np.zeros((2, 1), dtype=np.uint8), np.ones((2, 1), dtype=bool))


@pytest.mark.parametrize(
    ("cells", "kwargs", "message"),
    [
        (GOOD, {"ksize": 250}, "odd"),  # even kernel
        (GOOD, {"ksize": 0}, "odd"),
        (GOOD, {"ksize": 25.0}, "odd"),  # not an int
        (CellMap(GRID, np.zeros((2, 1)), GOOD.covered), {}, "uint8"),  # a mean map, not quantised
        (CellMap(GRID, np.zeros((1, 1), np.uint8), GOOD.covered), {}, "shape"),  # wrong grid
        (np.zeros((10, 10), np.uint8), {}, "CellMap"),  # pixels, not cells
        (GOOD, {"valid": da.ones((10, 9), dtype=bool)}, "valid"),  # wrong mask shape
        (GOOD, {"valid": da.ones((10, 10), dtype=np.uint8)}, "valid"),  # mask not boolean
        (GOOD, {"chunks": (3, 3, 3)}, "chunks"),  # does not add up to the map
    ],
)
def test_cell_filters_bad_arguments(cells, kwargs, message):
    kwargs = {"chunks": 5, **kwargs}
    for kind in FILTERS:
        with pytest.raises(ParameterError, match=message):
            finish(cells, kind, **kwargs)


@pytest.mark.parametrize("kind", list(FILTERS))
def test_the_table_names_each_filters_border_rule(kind):
    """The whole-map filter equals the filter of the map padded by the kernel's radius with
    the row's border rule, cropped: the rule the cell kernels reproduce at the edges."""
    f = FILTERS[kind]
    u = piecewise_map((300, 340), seed=2)
    r = f.ksize // 2
    padded = cv2.copyMakeBorder(u, r, r, r, r, f.border)
    assert np.array_equal(f.whole(padded, f.ksize)[r:-r, r:-r], f.whole(u, f.ksize))


@st.composite
def blocks(draw):
    h, w = draw(st.integers(1, 60)), draw(st.integers(1, 60))
    r0, r1 = sorted(draw(st.lists(st.integers(0, h), min_size=2, max_size=2)))
    c0, c1 = sorted(draw(st.lists(st.integers(0, w), min_size=2, max_size=2)))
    return (h, w), (r0, r1, c0, c1)


@given(blocks(), st.integers(0, 40).map(lambda n: 2 * n + 1))
def test_halo_is_every_pixel_within_the_kernel_radius(case, ksize):
    """Rows (and columns) of the halo: those within ``ksize // 2`` of some row of the block."""
    from selo.pipeline.filters import halo

    (h, w), block = case
    assume(block[1] > block[0] and block[3] > block[2])
    r = ksize // 2
    rows = [y for y in range(h) if any(abs(y - b) <= r for b in range(block[0], block[1]))]
    cols = [x for x in range(w) if any(abs(x - b) <= r for b in range(block[2], block[3]))]
    assert halo(block, ksize, (h, w)) == (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)
