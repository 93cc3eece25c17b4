"""Gnt on the cell grid against the per-pixel reference; laziness and chunk-independence."""

from __future__ import annotations

import dask
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import reference_mean_map
from strategies import scores, windows

from selo.pipeline.gnt import CellGrid, accumulate, expand_lazy, quantize
from selo.pipeline.windows import window_table


def reference_u8(mean, uncovered_counts=True):
    lo, hi = mean.min(), mean.max()
    if hi == lo:
        return np.zeros(mean.shape, np.uint8)
    shifted = mean - lo
    return np.uint8(255 * (shifted / np.max(shifted)))


@st.composite
def scored_windows(draw, max_side: int = 120, max_windows: int = 40, width: int = 32):
    """A scene size, a window table in it and the windows' scores."""
    h = draw(st.integers(1, max_side), label="height")
    w = draw(st.integers(1, max_side), label="width")
    table = draw(windows(h, w, max_size=max_windows))
    return h, w, table, draw(scores(len(table), width=width))


@settings(max_examples=60, deadline=None)
@given(case=scored_windows())
def test_cell_mean_is_bit_identical_to_the_per_pixel_mean(case):
    h, w, windows, scores = case
    grid = CellGrid.from_windows(h, w, windows)
    cells = accumulate(grid, windows, scores)
    ref = reference_mean_map((h, w), windows, scores)
    assert np.array_equal(cells.to_array(), ref)  # bit for bit, not just close
    assert np.array_equal(quantize(cells).to_array(), reference_u8(ref))


def test_window_table_of_a_scene_gives_the_reference_map():
    t = window_table(700, 900, scales=(128, 256))
    scores = np.random.default_rng(1).uniform(-0.2, 0.4, len(t)).astype(np.float32)
    cells = accumulate(CellGrid.from_windows(700, 900, t.windows), t.windows, scores)
    ref = reference_mean_map((700, 900), t.windows, scores)
    assert np.array_equal(cells.to_array(), ref)
    assert cells.covered.all()
    # the grid is tiny next to the scene
    assert cells.grid.shape[0] * cells.grid.shape[1] < 700 * 900 / 1000


def test_uncovered_cells_are_zero_and_count_in_min_max_by_default():
    windows = np.array([[0, 10, 0, 10], [5, 15, 5, 15]])
    scores = np.array([0.5, 0.7])
    cells = accumulate(CellGrid.from_windows(20, 20, windows), windows, scores)
    full = cells.to_array()
    assert full[19, 19] == 0 and full[0, 0] == 0.5 and full[7, 7] == 0.6
    u = quantize(cells).to_array()
    assert u[19, 19] == 0 and u[10, 10] == 255 and u[0, 0] == int(255 * (0.5 / 0.7))
    # with nodata, uncovered cells are left out of the min/max
    u2 = quantize(cells, uncovered_counts=False).to_array()
    assert u2[0, 0] == 0 and u2[10, 10] == 255 and u2[19, 19] == 0


def test_constant_scores_give_a_zero_map():
    t = window_table(300, 300, scales=(128,))
    cells = accumulate(CellGrid.from_windows(300, 300, t.windows), t.windows, np.full(len(t), 0.3))
    assert not quantize(cells).to_array().any()


@pytest.mark.parametrize("chunks", [(700, 900), (256, 256), (100, 333), (699, 1)])
def test_lazy_expansion_is_chunk_independent(chunks):
    t = window_table(700, 900, scales=(128, 256))
    scores = np.random.default_rng(2).normal(size=len(t))
    u8 = quantize(accumulate(CellGrid.from_windows(700, 900, t.windows), t.windows, scores))
    arr = expand_lazy(u8, chunks)
    assert arr.chunks[0][0] == chunks[0]
    assert np.array_equal(arr.compute(), u8.to_array())


def test_expansion_is_lazy():
    t = window_table(5000, 5000)
    cells = accumulate(CellGrid.from_windows(5000, 5000, t.windows), t.windows, np.zeros(len(t)))
    calls = []
    with dask.config.set(scheduler="sync"):
        arr = expand_lazy(cells, 1024)
        assert arr.shape == (5000, 5000) and arr.numblocks == (5, 5)
        # building the graph computed nothing; one block computes one block
        block = arr.blocks[1, 2]
        calls.append(block.compute().shape)
    assert calls == [(1024, 1024)]


def test_scores_and_windows_must_match():
    grid = CellGrid.from_windows(10, 10, np.array([[0, 5, 0, 5]]))
    with pytest.raises(ValueError, match="1 windows but 2 scores"):
        accumulate(grid, np.array([[0, 5, 0, 5]]), np.array([1.0, 2.0]))


@settings(max_examples=80, deadline=None)
@given(case=scored_windows(max_side=90, max_windows=12, width=64), data=st.data())
def test_any_block_equals_the_slice_of_the_whole_map(case, data):
    h, w, windows, scores = case
    cells = accumulate(CellGrid.from_windows(h, w, windows), windows, scores)
    full = cells.to_array()
    r0 = data.draw(st.integers(0, h - 1))
    r1 = data.draw(st.integers(r0 + 1, h))
    c0 = data.draw(st.integers(0, w - 1))
    c1 = data.draw(st.integers(c0 + 1, w))
    assert np.array_equal(cells.block(r0, r1, c0, c1), full[r0:r1, c0:c1])


def test_cell_map_round_trips_through_zarr(tmp_path):
    import zarr

    t = window_table(300, 500, scales=(128,))
    scores = np.random.default_rng(4).normal(size=len(t))
    cells = accumulate(CellGrid.from_windows(300, 500, t.windows), t.windows, scores)
    group = zarr.open_group(str(tmp_path / "m.zarr"), mode="w")
    cells.to_zarr(group)
    back = type(cells).from_zarr(zarr.open_group(str(tmp_path / "m.zarr"), mode="r"))
    assert np.array_equal(back.to_array(), reference_mean_map((300, 500), t.windows, scores))
    assert group.attrs["shape"] == [300, 500]
