"""Flt: chunked OpenCV filters equal the whole-array call bit for bit."""

from __future__ import annotations

import cv2
import dask.array as da
import numpy as np
import pytest

from selo.errors import ParameterError
from selo.pipeline.filters import gaussian_blur, median_blur


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
@pytest.mark.parametrize("shape", [(1000, 1200), (120, 200)])  # larger and smaller than the kernel
def test_median_equals_opencv_whole_map(shape, chunks):
    u = piecewise_map(shape)
    arr = chunked(u, chunks)
    assert np.array_equal(median_blur(arr).compute(), cv2.medianBlur(u, 251))


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("shape", [(1000, 1200), (120, 200)])
def test_gaussian_equals_opencv_whole_map(shape, chunks):
    u = piecewise_map(shape, seed=1)
    arr = chunked(u, chunks)
    assert np.array_equal(gaussian_blur(arr).compute(), cv2.GaussianBlur(u, (255, 255), 0, 0))


def test_filters_are_lazy_and_keep_chunks():
    arr = da.zeros((3000, 3000), dtype=np.uint8, chunks=1000)
    out = median_blur(arr)
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
        median_blur(arr, ksize)
