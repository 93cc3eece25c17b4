"""Regions of a mean map on its cells: the rule against a cell-by-cell reference, outlines."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from reference import reference_cell_regions
from shapely.geometry import Point, Polygon

from selo.pipeline.regions import cell_regions, max3x3, region_outline


@st.composite
def cell_maps(draw):
    """A small cell map whose values repeat (plateaus and ties), and its covered cells."""
    shape = draw(st.tuples(st.integers(1, 7), st.integers(1, 7)))
    levels = draw(st.lists(st.floats(-1, 1), min_size=1, max_size=5))
    picks = draw(arrays(np.int64, shape, elements=st.integers(0, len(levels) - 1)))
    covered = draw(arrays(np.bool_, shape, elements=st.booleans()))
    return np.asarray(levels)[picks], covered


@given(cell_maps())
def test_regions_follow_the_rule_cell_by_cell(data):
    mean, covered = data
    fast = cell_regions(mean, covered)
    slow = reference_cell_regions(mean, covered)
    assert [(r.score, r.peak) for r in fast] == [(s, p) for s, p, _ in slow]
    for region, (_, _, cells) in zip(fast, slow, strict=True):
        assert set(zip(*np.nonzero(region.cells), strict=True)) == cells
    if fast:  # disjoint, ranked, each peak in its own region
        union = np.any([r.cells for r in fast], axis=0)
        assert sum(int(r.cells.sum()) for r in fast) == int(union.sum())
        assert [r.score for r in fast] == sorted((r.score for r in fast), reverse=True)
        assert all(r.cells[r.peak] for r in fast)


@given(cell_maps(), st.floats(-1, 1), st.integers(1, 4))
def test_floor_and_limit_keep_the_strongest(data, floor, limit):
    mean, covered = data
    every = cell_regions(mean, covered)
    kept = cell_regions(mean, covered, floor=floor, limit=limit)
    expected = [r for r in every if r.score >= floor][:limit]
    assert [(r.score, r.peak) for r in kept] == [(r.score, r.peak) for r in expected]


def test_two_bumps_are_two_regions_and_a_shoulder_is_none():
    mean = np.zeros((5, 9))
    mean[2, 2], mean[2, 6] = 1.0, 0.8  # two peaks, apart
    mean[2, 7] = 0.79  # a shoulder of the second: not a peak (its neighbour is higher)
    regions = cell_regions(mean, np.ones_like(mean, bool))
    assert [(r.score, r.peak) for r in regions] == [(1.0, (2, 2)), (0.8, (2, 6))]
    assert regions[1].cells[2, 7] and regions[1].cells.sum() == 2  # 0.79 >= (0.8 + 0) / 2
    assert regions[0].background == 0.0 and regions[0].threshold == 0.5


def test_uncovered_cells_belong_to_no_region():
    mean = np.array([[0.0, 5.0, 0.0], [0.0, 1.0, 0.0]])
    covered = np.array([[True, False, True], [True, True, True]])
    (region,) = cell_regions(mean, covered)
    assert region.peak == (1, 1) and not region.cells[0, 1]
    assert cell_regions(mean, np.zeros_like(covered)) == []


def test_a_flat_map_has_no_region():
    assert cell_regions(np.full((4, 4), 0.3), np.ones((4, 4), bool)) == []


@given(
    arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 6)), elements=st.floats(-9, 9))
)
def test_max3x3_is_the_neighbourhood_maximum(values):
    h, w = values.shape
    expected = np.array(
        [
            [values[max(0, i - 1) : i + 2, max(0, j - 1) : j + 2].max() for j in range(w)]
            for i in range(h)
        ]
    )
    assert np.array_equal(max3x3(values), expected)


@pytest.mark.parametrize(
    "cells",
    [
        [[1, 1, 0], [1, 0, 0]],  # an L
        [[1, 1, 1], [1, 0, 1], [1, 1, 1]],  # a ring with a hole
        [[1, 0], [0, 1]],  # touching at a corner: two polygons
    ],
    ids=["L", "ring", "corner"],
)
def test_outline_covers_exactly_the_cells_in_pixels(cells):
    cells = np.asarray(cells, bool)
    rows = np.cumsum([0, *np.arange(1, cells.shape[0] + 1) * 10])  # uneven cell sizes
    cols = np.cumsum([0, *np.arange(1, cells.shape[1] + 1) * 7])
    polygons = [Polygon(rings[0], rings[1:]) for rings in region_outline(cells, rows, cols)]
    assert all(p.is_valid for p in polygons)
    area = sum(
        (rows[i + 1] - rows[i]) * (cols[j + 1] - cols[j])
        for i, j in zip(*np.nonzero(cells), strict=True)
    )
    assert sum(p.area for p in polygons) == area
    assert len(polygons) == (2 if cells[0, 1] == 0 and cells[1, 0] == 0 else 1)
    for i, j in zip(*np.nonzero(cells), strict=True):  # each cell's centre is inside
        centre = ((cols[j] + cols[j + 1]) / 2, (rows[i] + rows[i + 1]) / 2)
        assert any(p.contains(Point(centre)) for p in polygons)
