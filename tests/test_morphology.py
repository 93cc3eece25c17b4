"""The sparse-table maximum filter equals SciPy's, bit for bit, on any number of threads;
filters on strips with a halo equal the filter on the whole array."""

from __future__ import annotations

from unittest import mock

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.ndimage import maximum_filter as scipy_maximum

from selo.errors import ParameterError
from selo.pipeline import morphology
from selo.pipeline.morphology import by_strips, maximum_filter


@settings(max_examples=150, deadline=None)
@given(
    h=st.integers(1, 70),
    w=st.integers(1, 70),
    size=st.integers(1, 200),  # smaller and larger than the array, odd and even
    seed=st.integers(0, 2**31),
    dtype=st.sampled_from([np.uint8, np.int32, np.float64]),
    threads=st.integers(1, 5),
)
def test_equals_scipy_reflect(h, w, size, seed, dtype, threads):
    rng = np.random.default_rng(seed)
    a = (rng.random((h, w)) * 255).astype(dtype)
    if rng.random() < 0.3:
        a[:] = a[0, 0]  # flat arrays: every pixel is a maximum
    with mock.patch.object(morphology, "MIN_STRIP", 1):  # strips of any size, even 1 row
        got = maximum_filter(a, size, threads=threads)
    np.testing.assert_array_equal(got, scipy_maximum(a, size=size))


@settings(max_examples=100, deadline=None)
@given(
    h=st.integers(1, 120),
    w=st.integers(1, 60),
    box=st.integers(1, 12),
    passes=st.integers(1, 4),
    axis=st.sampled_from([0, 1]),
    threads=st.integers(1, 6),
    seed=st.integers(0, 2**31),
)
def test_box_passes_on_strips_with_their_reach_equal_the_whole(
    h, w, box, passes, axis, threads, seed
):
    """The metrics' softening (box filters, OpenCV's default border) on strips whose halo is
    the passes' reach: the same bytes as on the whole array."""
    a = np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)

    def soften(x):
        for _ in range(passes):
            x = cv2.boxFilter(np.ascontiguousarray(x), ddepth=-1, ksize=(box, box))
        return x

    with mock.patch.object(morphology, "MIN_STRIP", 1):
        got = by_strips(soften, a, axis=axis, threads=threads, halo=passes * (box // 2))
    np.testing.assert_array_equal(got, soften(a))


def test_strips_without_their_reach_differ():
    """The halo is needed: strips cut without it change pixels near the cuts (the test
    above would catch a halo too small)."""
    a = np.random.default_rng(1).integers(0, 256, (600, 50), dtype=np.uint8)

    def soften(x):
        return cv2.boxFilter(np.ascontiguousarray(x), ddepth=-1, ksize=(9, 9))

    assert not np.array_equal(by_strips(soften, a, threads=2, halo=0), soften(a))
    np.testing.assert_array_equal(by_strips(soften, a, threads=2, halo=4), soften(a))


def test_the_metrics_window_on_a_large_map():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (1200, 1500), dtype=np.uint8)
    expected = scipy_maximum(a, size=1000)
    np.testing.assert_array_equal(maximum_filter(a, 1000), expected)
    np.testing.assert_array_equal(maximum_filter(a, 1000, threads=3), expected)


@pytest.mark.parametrize(
    ("a", "size"), [(np.zeros(5), 3), (np.zeros((3, 3)), 0), (np.zeros((3, 3)), 2.5)]
)
def test_bad_arguments(a, size):
    with pytest.raises(ParameterError):
        maximum_filter(a, size)


@settings(max_examples=150, deadline=None)
@given(
    a=st.integers(1, 60).flatmap(
        lambda h: st.integers(1, 6).flatmap(
            lambda w: hnp.arrays(np.int16, (h, w), elements=st.integers(-50, 250))
        )
    ),
    dtype=st.sampled_from([np.uint8, np.int16, np.float64]),
    size=st.integers(1, 90),  # smaller and larger than the array, odd and even
    cuts=st.lists(st.integers(1, 25), max_size=12),
)
def test_running_max_on_strips_equals_scipy_reflect(a, dtype, size, cuts):
    """The vertical pass fed in strips of any heights (the rest in one) equals SciPy's."""
    a = (np.clip(a, 0, 255) if dtype == np.uint8 else a).astype(dtype)
    running = morphology.RunningMax(a.shape[0], a.shape[1], size, a.dtype)
    out, top = [], 0
    for n in [*cuts, a.shape[0]]:
        out.append(running.add(a[top : top + n]))
        top = min(top + n, a.shape[0])
    np.testing.assert_array_equal(
        np.concatenate(out), scipy_maximum(a, size=(size, 1), mode="reflect")
    )


def test_running_max_refuses_rows_beyond_its_height():
    running = morphology.RunningMax(3, 2, 5, np.uint8)
    running.add(np.zeros((3, 2), np.uint8))
    with pytest.raises(ParameterError, match="up to 3 rows"):
        running.add(np.zeros((1, 2), np.uint8))
