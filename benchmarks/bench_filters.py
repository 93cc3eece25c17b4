"""Flt: the 251×251 median of a SeLo map — OpenCV whole-map, selo chunked, dask-image.

The median filter must equal ``cv2.medianBlur(map, 251)`` bit for bit. This
measures, on a piecewise-constant uint8 map like a real mean map:

- ``cv2.medianBlur`` on the whole map (one thread, O(1) histogram algorithm);
- selo's ``median_blur`` (``map_overlap``, depth 125, OpenCV per block) on the
  threaded scheduler with 2048-pixel chunks, checked equal to the above;
- dask-image's ``median_filter`` (SciPy's generic order filter per block) on a
  small map, extrapolated per pixel to the large one (it is far too slow to
  run at full size), also checked against OpenCV.

    python benchmarks/bench_filters.py [--size 10000] [--small 192]
"""

from __future__ import annotations

import argparse
import time

import cv2
import dask
import dask.array as da
import numpy as np
from _common import stamp, write_section

from selo.pipeline.filters import median_blur


def mean_like_map(size: int, seed: int = 0) -> np.ndarray:
    """uint8, constant on 128-pixel cells, like a quantised v1 mean map."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (size // 128 + 1, size // 128 + 1), dtype=np.uint8)
    return np.repeat(np.repeat(cells, 128, axis=0), 128, axis=1)[:size, :size].copy()


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--small", type=int, default=192, help="side of the dask-image test map")
    args = parser.parse_args(argv)
    u = mean_like_map(args.size)
    t_cv, ref = timed(lambda: cv2.medianBlur(u, 251))
    with dask.config.set(scheduler="threads"):
        t_selo, ours = timed(lambda: median_blur(da.from_array(u, chunks=2048)).compute())
    assert np.array_equal(ours, ref), "chunked median differs from cv2.medianBlur"

    from dask_image.ndfilters import median_filter

    small = mean_like_map(args.small, seed=1)
    with dask.config.set(scheduler="threads"):
        arr = da.from_array(small, chunks=args.small // 2)
        t_di, di = timed(lambda: median_filter(arr, size=251, mode="nearest").compute())
    same = np.array_equal(di, cv2.medianBlur(small, 251))  # "nearest" = OpenCV's replicate
    per_pixel = t_di / args.small**2
    t_di_full = per_pixel * args.size**2

    rows = [
        f"| `cv2.medianBlur`, whole map (OpenCV's own {cv2.getNumThreads()} threads) | {t_cv:.2f} s | reference |",
        f"| selo `median_blur` (map_overlap, chunks 2048, dask threads) | {t_selo:.2f} s | equal, bit for bit |",
        f"| dask-image `median_filter` (SciPy per block) | ≈ {t_di_full / 3600:.0f} h (extrapolated from "
        f"{args.small}² in {t_di:.1f} s) | {'equal' if same else 'differs'} on the small map |",
    ]
    body = "\n".join(
        [
            f"The 251×251 median of a {args.size:,}×{args.size:,} uint8 map (constant on 128-pixel",
            "cells, like a quantised v1 mean map). dask-image's median runs SciPy's generic order",
            "filter (a sort per pixel of 63,001 values) and is far too slow at this kernel size to",
            "run in full: it was timed on a small map and extrapolated per pixel.",
            "",
            stamp("bench_filters.py", argv),
            "",
            "| implementation | time | result |",
            "| --- | ---: | --- |",
            *rows,
        ]
    )
    write_section("Flt: the 251 × 251 median", body)


if __name__ == "__main__":
    main()
