"""The sparse-table maximum filter equals SciPy's, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import maximum_filter as scipy_maximum

from selo.errors import ParameterError
from selo.pipeline.morphology import maximum_filter


@settings(max_examples=150, deadline=None)
@given(
    h=st.integers(1, 70),
    w=st.integers(1, 70),
    size=st.integers(1, 200),  # smaller and larger than the array, odd and even
    seed=st.integers(0, 2**31),
    dtype=st.sampled_from([np.uint8, np.int32, np.float64]),
)
def test_equals_scipy_reflect(h, w, size, seed, dtype):
    rng = np.random.default_rng(seed)
    a = (rng.random((h, w)) * 255).astype(dtype)
    if rng.random() < 0.3:
        a[:] = a[0, 0]  # flat arrays: every pixel is a maximum
    np.testing.assert_array_equal(maximum_filter(a, size), scipy_maximum(a, size=size))


def test_the_metrics_window_on_a_large_map():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (1200, 1500), dtype=np.uint8)
    np.testing.assert_array_equal(maximum_filter(a, 1000), scipy_maximum(a, size=1000))


@pytest.mark.parametrize(
    ("a", "size"), [(np.zeros(5), 3), (np.zeros((3, 3)), 0), (np.zeros((3, 3)), 2.5)]
)
def test_bad_arguments(a, size):
    with pytest.raises(ParameterError):
        maximum_filter(a, size)
