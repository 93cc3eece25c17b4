"""Peak memory of ``selo localize`` on a 40,000×40,000 RGB GeoTIFF with ``color``.

Writes the scene once (tiled 512×512, ZSTD, drawn strip by strip: colour
fields with white, green and gray patches), then runs ``selo localize`` in a
subprocess with an empty embedding cache and samples the resident memory of
that process and all its children (the Dask workers) every 50 ms. Target:
under 4 GB. Also reports the wall time and the run's stage table.

    python benchmarks/bench_memory.py [--size 40000] [--workdir /tmp/selo-40k] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rasterio
from _common import PeakMemory, gib, stamp, write_section
from rasterio.transform import from_origin
from rasterio.windows import Window

COLOURS = np.array(
    [(200, 150, 90), (60, 150, 60), (128, 128, 128), (235, 235, 230), (45, 80, 190)], np.uint8
)


def make_scene(path: Path, size: int, seed: int = 0) -> None:
    """A size×size RGB GeoTIFF drawn in 512-row strips (bounded memory)."""
    rng = np.random.default_rng(seed)
    cells = size // 512 + 1
    field = rng.integers(0, len(COLOURS), (cells, cells))  # one colour per 512-px cell
    grain = rng.integers(-10, 11, (512, size, 3), dtype=np.int16)  # texture, shifted per strip
    profile = dict(
        driver="GTiff", height=size, width=size, count=3, dtype="uint8", crs="EPSG:32633",
        transform=from_origin(500000, 4600000, 0.5, 0.5), tiled=True, blockxsize=512,
        blockysize=512, compress="zstd", BIGTIFF="YES",
    )  # fmt: skip
    tmp = path.with_suffix(".partial.tif")
    with rasterio.open(tmp, "w", **profile) as ds:
        for top in range(0, size, 512):
            h = min(512, size - top)
            row = COLOURS[field[top // 512]]  # (cells, 3)
            strip = np.repeat(row, 512, axis=0)[:size][None, :, :].repeat(h, axis=0)
            shade = cv2.resize(rng.normal(1, 0.05, (2, cells)).astype(np.float32), (size, h))
            texture = np.roll(grain[:h], int(rng.integers(0, size)), axis=1)
            strip = np.clip(strip * shade[..., None] + texture, 0, 255).astype(np.uint8)
            ds.write(strip.transpose(2, 0, 1), window=Window(0, top, size, h))
    tmp.rename(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=40000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/selo-bench-40k"))
    parser.add_argument("--keep", action="store_true", help="keep the scene and outputs")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    scene = args.workdir / f"scene-{args.size}.tif"
    if not scene.exists():
        t0 = time.perf_counter()
        make_scene(scene, args.size)
        written = scene.stat().st_size / 2**30
        print(f"scene written in {time.perf_counter() - t0:.0f} s ({written:.1f} GiB)")
    out, cache = args.workdir / "out", args.workdir / "cache"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "selo",
        "localize",
        str(scene),
        "-q",
        "white roofs",
        "--out",
        str(out),
    ]
    env = {**os.environ, "SELO_CACHE_DIR": str(cache)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PeakMemory(proc.pid) as mem:
        stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"selo localize failed:\n{stderr}")
    record = json.loads((out / "run.json").read_text())
    stages = ", ".join(f"{k} {v['wall']:.1f} s" for k, v in record["stages"].items())
    body = "\n".join(
        [
            f"`selo localize` on a {args.size:,}×{args.size:,} RGB GeoTIFF (tiled 512, ZSTD,",
            f"{scene.stat().st_size / 2**30:.1f} GiB on disk, "
            f"{3 * args.size**2 / 2**30:.1f} GiB of pixels),",
            "one query, `color`, default options (embedded cluster, chunk 4096), empty cache:",
            f"{record['windows']:,} windows. Peak resident memory of the selo process and all its",
            "workers together, sampled every 50 ms. Target: under 4 GB.",
            "",
            stamp("bench_memory.py", argv),
            "",
            "| scene | windows | peak memory (all processes) | wall |",
            "| --- | ---: | ---: | ---: |",
            f"| {args.size:,}² RGB | {record['windows']:,} | **{gib(mem.peak)}** | {wall:.0f} s |",
            "",
            f"Stages (wall): {stages}.",
        ]
    )
    write_section("Memory: a 40,000 × 40,000 scene", body)
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
