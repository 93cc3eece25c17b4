"""Connected components chunk by chunk equal labelling the whole raster (scikit-image)."""

from __future__ import annotations

import dask.array as da
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.measure import label, regionprops

from selo.pipeline import components as components_module
from selo.pipeline.components import components, raster_components


def reference(mask: np.ndarray):
    """skimage's 8-connected components, in raster order of their first pixel."""
    labels = label(mask, connectivity=2)
    out = []
    for region in regionprops(labels):
        coords = region.coords  # sorted in raster order
        out.append((int(region.area), region.centroid, tuple(int(v) for v in coords[0])))
    out.sort(key=lambda c: c[2])
    return out


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 60),
    w=st.integers(1, 60),
    density=st.floats(0.05, 0.9),
    ch=st.integers(1, 25),
    cw=st.integers(1, 25),
    seed=st.integers(0, 2**31),
)
def test_components_equal_whole_raster_labelling(h, w, density, ch, cw, seed):
    mask = np.random.default_rng(seed).random((h, w)) < density
    got = components(da.from_array(mask, chunks=(ch, cw)))
    want = reference(mask)
    assert [(c.count, c.first) for c in got] == [(n, f) for n, _, f in want]
    for c, (_, centroid, _) in zip(got, want, strict=True):
        assert c.centroid == centroid  # exact means of integer coordinates


def test_diagonal_contact_across_a_chunk_corner_joins():
    mask = np.zeros((4, 4), bool)
    mask[1, 1] = mask[2, 2] = True  # touching only at the corner of four 2x2 chunks
    got = components(da.from_array(mask, chunks=2))
    assert [(c.count, c.first) for c in got] == [(2, (1, 1))]
    mask = np.zeros((4, 4), bool)
    mask[1, 2] = mask[2, 1] = True  # the other diagonal
    got = components(da.from_array(mask, chunks=2))
    assert [(c.count, c.first) for c in got] == [(2, (1, 2))]


def test_empty_and_full_rasters():
    assert components(np.zeros((5, 7), bool)) == []
    (one,) = components(da.from_array(np.ones((5, 7), bool), chunks=3))
    assert one.count == 35 and one.first == (0, 0) and one.centroid == (2.0, 3.0)


@settings(max_examples=80, deadline=None)
@given(
    h=st.integers(1, 70),
    w=st.integers(1, 70),
    density=st.floats(0.02, 0.95),
    blobs=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_raster_components_equal_whole_raster_labelling(h, w, density, blobs, seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((h, w)) < density
    if blobs:  # large connected plateaus, as local-maximum masks are
        import cv2

        mask = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    got = raster_components(mask)
    want = reference(mask)
    assert [(c.count, c.first) for c in got] == [(n, f) for n, _, f in want]
    assert [c.centroid for c in got] == [centroid for _, centroid, _ in want]


def test_raster_components_fall_back_to_opencv_for_noise(monkeypatch):
    monkeypatch.setattr(components_module, "MAX_RUNS", 5)
    mask = np.random.default_rng(3).random((40, 50)) < 0.5
    got = raster_components(mask)
    assert [(c.count, c.first) for c in got] == [(n, f) for n, _, f in reference(mask)]
