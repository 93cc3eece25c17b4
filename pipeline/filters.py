"""Flt: OpenCV's whole-image filters applied chunk by chunk, bit-identical.

Each filter is one ``map_overlap`` call: blocks overlap by half the kernel
(``depth = ksize // 2``) and ``boundary="none"``, so a block on the scene's
edge is not padded by dask and OpenCV's own border rule (replicate for
``medianBlur``, reflect-101 for ``GaussianBlur``) acts at the true edge. Every
output pixel therefore sees exactly the neighbourhood it sees in the
whole-array call, and the result equals ``cv2.medianBlur(whole, 251)`` /
``cv2.GaussianBlur(whole, (255, 255), 0)`` bit for bit, whatever the chunking.
"""

from __future__ import annotations

import cv2
import dask.array as da
import numpy as np

from selo.errors import ParameterError

__all__ = ["median_blur", "gaussian_blur", "MEDIAN_KSIZE", "GAUSSIAN_KSIZE"]

MEDIAN_KSIZE = 251
GAUSSIAN_KSIZE = 255


def median_blur(u: da.Array, ksize: int = MEDIAN_KSIZE) -> da.Array:
    """``cv2.medianBlur(u, ksize)`` of a 2-D uint8 dask array, lazily, chunk by chunk."""
    return _overlap_filter(u, ksize, _median_block, "flt-median")


def gaussian_blur(u: da.Array, ksize: int = GAUSSIAN_KSIZE) -> da.Array:
    """``cv2.GaussianBlur(u, (ksize, ksize), 0, 0)`` of a 2-D uint8 dask array, lazily.

    Sigma is OpenCV's default for the size: 0.3·((ksize − 1)/2 − 1) + 0.8.
    """
    return _overlap_filter(u, ksize, _gaussian_block, "flt-gaussian")


def _median_block(block: np.ndarray, ksize: int) -> np.ndarray:
    return cv2.medianBlur(np.ascontiguousarray(block), ksize)


def _gaussian_block(block: np.ndarray, ksize: int) -> np.ndarray:
    return cv2.GaussianBlur(np.ascontiguousarray(block), (ksize, ksize), 0, 0)


def _overlap_filter(u: da.Array, ksize: int, func, token: str) -> da.Array:
    if ksize < 1 or ksize % 2 == 0:
        raise ParameterError(f"kernel size must be a positive odd number, got {ksize}")
    if u.ndim != 2 or u.dtype != np.uint8:
        raise ParameterError(f"expected a 2-D uint8 map, got {u.ndim}-D {u.dtype}")
    # An axis shorter than the overlap becomes one chunk; a one-chunk axis needs
    # no overlap. (dask merges other chunks smaller than the depth by itself.)
    half = ksize // 2
    u = u.rechunk({ax: -1 for ax in (0, 1) if u.shape[ax] <= half})
    depth = {ax: (0 if len(u.chunks[ax]) == 1 else half) for ax in (0, 1)}
    return u.map_overlap(
        func,
        depth=depth,
        boundary="none",
        dtype=np.uint8,
        meta=np.empty((0, 0), dtype=np.uint8),
        token=token,
        ksize=ksize,
    )


def filter_block(u: np.ndarray, kind: str, ksize: int) -> np.ndarray:
    """OpenCV's whole-image ``kind`` filter ("median" or "gaussian") of one uint8 array."""
    if kind == "median":
        return _median_block(u, ksize)
    if kind == "gaussian":
        return _gaussian_block(u, ksize)
    raise ParameterError(f"unknown finishing filter {kind!r}; use 'median' or 'gaussian'")
