"""CLIP preprocessing resize: batches of 64 windows 256→224, Pillow-exact ways against the old float one.

The CLIP-family transforms must give Pillow's own uint8 pixels
(``Image.resize(..., BICUBIC)``). This times, on uint8 batches of 64 random
windows, each checked against Pillow byte for byte:

- Pillow per window, sequentially and in a thread pool (selo on CPU);
- selo's integer re-implementation of Pillow's two passes in torch
  (``resize_like_pil``; what selo runs on CUDA);
- the same passes as float64 matrix products (exact too: integer sums < 2**53);
- the float ``F.interpolate(bicubic, antialias=True)`` selo used before (not exact).

    python benchmarks/bench_resize.py [--batch 64] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from _common import stamp, write_section
from PIL import Image

from selo.models.resample import PRECISION_BITS, pil_coefficients, pil_resize, resize_like_pil


def best_of(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def dense_matrix(in_size: int, out_size: int) -> torch.Tensor:
    idx, w = pil_coefficients(in_size, out_size, "bicubic")
    m = np.zeros((in_size, out_size))
    for t in range(idx.shape[1]):
        np.add.at(m, (idx[:, t], np.arange(out_size)), w[:, t])
    return torch.from_numpy(m)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    imgs = np.random.default_rng(0).integers(0, 256, (args.batch, 256, 256, 3), dtype=np.uint8)
    nchw = torch.from_numpy(imgs).permute(0, 3, 1, 2)
    m = dense_matrix(256, 224)
    half, shift = float(1 << (PRECISION_BITS - 1)), float(1 << PRECISION_BITS)

    def pil_one(img):
        return np.asarray(Image.fromarray(img).resize((224, 224), Image.Resampling.BICUBIC))

    pool = ThreadPoolExecutor(2)

    def f64_matmul():
        y = ((nchw.double() @ m) + half).div_(shift).floor_().clamp_(0, 255)
        y = ((y.transpose(-1, -2) @ m) + half).div_(shift).floor_().clamp_(0, 255)
        return y.transpose(-1, -2).to(torch.uint8).permute(0, 2, 3, 1).numpy()

    def interpolate():
        x = F.interpolate(nchw.float(), size=(224, 224), mode="bicubic", antialias=True)
        return x.clamp_(0, 255).round_().to(torch.uint8).permute(0, 2, 3, 1).numpy()

    ways = [
        ("Pillow per window, sequential", lambda: np.stack([pil_one(i) for i in imgs])),
        ("Pillow per window, 2 threads", lambda: np.stack(list(pool.map(pil_one, imgs)))),
        ("selo `pil_resize` (Pillow, thread pool) — CPU", lambda: pil_resize(imgs, (224, 224))),
        (
            "selo `resize_like_pil` (int32 torch passes) — CUDA",
            lambda: resize_like_pil(nchw, (224, 224)).permute(0, 2, 3, 1).numpy(),
        ),
        ("float64 matmul passes (torch)", f64_matmul),
        ("old: `F.interpolate` bicubic antialias (float)", interpolate),
    ]
    reference = np.stack([pil_one(i) for i in imgs])
    rows = []
    for name, fn in ways:
        seconds = best_of(fn, args.repeat)
        diff = fn().astype(int) - reference
        equal = (
            "equal, byte for byte"
            if not diff.any()
            else (f"{(diff != 0).mean():.1%} of values differ, by up to {np.abs(diff).max()}")
        )
        rows.append(f"| {name} | {seconds * 1000:.0f} ms | {equal} |")
        print(rows[-1])
    body = "\n".join(
        [
            f"Resizing a batch of {args.batch} uint8 windows 256×256 → 224×224 (bicubic) the "
            "way a CLIP-family encoder's preprocessing does, best of "
            f"{args.repeat}, torch on {torch.get_num_threads()} threads. selo resizes with "
            "Pillow in threads on CPU and with its integer torch passes on CUDA (on the "
            "device, where Pillow is not); both give Pillow's pixels.",
            "",
            stamp("bench_resize.py", argv),
            "",
            "| implementation | time | result against Pillow |",
            "| --- | ---: | --- |",
            *rows,
        ]
    )
    write_section("CLIP preprocessing: the 256 → 224 resize", body)


if __name__ == "__main__":
    main()
