"""The codec settings of selo's map files, chosen by measurement.

On a finished-looking 10,000² uint8 map (a 251×251 median of a cell map, as v1 makes),
one run measures: PNG by OpenCV at zlib levels 1, 3 and 6 (with OpenCV's default filter
and with the "sub" filter only), the Cloud-Optimized GeoTIFF by GDAL's COG driver at
DEFLATE levels 1 and 6 with and without overviews, selo's own ``write_geotiff`` at each
DEFLATE level (wall and CPU seconds: GDAL compresses on every core), and the maps.zarr
array — seconds and bytes — beside the floor: one ``memcpy`` of the map. The settings
selo uses (``selo.pipeline.outputs.PNG_LEVEL``, ``COG_OPTIONS``) are marked. ``--map``
measures a map selo wrote instead (e.g. ``selo_map.tif`` of ``bench_floor.py``'s scene).

    python benchmarks/bench_writes.py [--size 10000] [--map selo_map.tif]
        [--workdir /tmp/selo-writes] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import rasterio
import rasterio.shutil
from _common import BENCHMARKS_MD, stamp, write_section
from affine import Affine
from rasterio.io import MemoryFile

from selo.pipeline.outputs import COG_OPTIONS, PNG_LEVEL, write_geotiff
from selo.pipeline.scene import Grid

HEADING = "Writes: codec settings of the map files"


def finished_map(size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    cells = rng.integers(0, 256, (size // 128 + 1, size // 128 + 1), dtype=np.uint8)
    u = np.repeat(np.repeat(cells, 128, axis=0), 128, axis=1)[:size, :size].copy()
    return cv2.medianBlur(u, 251)


def best(fn, repeat: int = 2) -> tuple[float, int]:
    return best_cpu(fn, repeat)[::2]


def best_cpu(fn, repeat: int = 2) -> tuple[float, float, int]:
    """The least wall and CPU seconds (this process, all threads) of ``repeat`` runs of
    ``fn``, and what it returned."""
    walls, cpus, size = [], [], 0
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        size = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus), size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--map", type=Path, default=None, help="a uint8 map file to measure")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/selo-writes"))
    parser.add_argument("--out", type=Path, default=BENCHMARKS_MD)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.map is None:
        m = finished_map(args.size)
        what = f"A finished-looking {args.size:,}² uint8 map (the 251×251 median of a cell map)"
    else:
        with rasterio.open(args.map) as ds:
            m = ds.read(1)
        what = f"The {m.shape[0]:,}×{m.shape[1]:,} map {args.map.name} (`--map`)"
    rows = ["| file | settings | seconds | MB | |", "| --- | --- | ---: | ---: | --- |"]

    def add(kind: str, settings: str, seconds: float, nbytes: int, used: bool) -> None:
        mark = "**selo**" if used else ""
        rows.append(f"| {kind} | {settings} | {seconds:.2f} | {nbytes / 1e6:.1f} | {mark} |")
        print(rows[-1], flush=True)

    add("(floor)", "one memcpy of the map", best(lambda: np.copy(m).nbytes)[0], m.nbytes, False)
    for level in (1, 3, 6):
        for name, extra in (
            ("default filter", []),
            ("sub filter", [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]),
        ):
            params = [cv2.IMWRITE_PNG_COMPRESSION, level, *extra]
            seconds, nbytes = best(lambda p=params: len(cv2.imencode(".png", m, p)[1]))
            add(
                "selo_map.png",
                f"zlib {level}, {name}",
                seconds,
                nbytes,
                level == PNG_LEVEL and bool(extra),
            )
    profile = dict(driver="GTiff", height=m.shape[0], width=m.shape[1], count=1, dtype="uint8")
    variants = [
        (
            f"DEFLATE {level}{', predictor' if predictor else ''}",
            {"COMPRESS": "DEFLATE", "LEVEL": level, **({"PREDICTOR": "YES"} if predictor else {})},
        )
        for level in (1, 6)
        for predictor in (False, True)
    ] + [("ZSTD 1", {"COMPRESS": "ZSTD", "LEVEL": 1})]
    for codec, settings in variants:
        for overviews in ("AUTO", "NONE"):
            options = {**COG_OPTIONS, **settings, "OVERVIEWS": overviews}
            options.pop("PREDICTOR", None) if "PREDICTOR" not in settings else None
            target = args.workdir / f"cog-{len(rows)}.tif"

            def cog(options=options, target=target) -> int:
                with MemoryFile() as memory:
                    with memory.open(**profile) as ds:
                        ds.write(m, 1)
                    with memory.open() as ds:
                        rasterio.shutil.copy(ds, target, driver="COG", **options)
                return target.stat().st_size

            seconds, nbytes = best(cog)
            label = f"COG, {codec}, overviews {overviews.lower()} (by the COG driver)"
            add("selo_map.tif", label, seconds, nbytes, False)
    grid = Grid(m.shape[0], m.shape[1], None, Affine.identity())
    target = args.workdir / "selo.tif"
    seconds, nbytes = best(lambda: write_geotiff(target, m, like=grid).stat().st_size)
    add(
        "selo_map.tif",
        f"COG, DEFLATE {COG_OPTIONS['LEVEL']}, overviews built first (nearest): `write_geotiff`",
        seconds,
        nbytes,
        True,
    )
    levels = ["| `write_geotiff`, DEFLATE level | seconds | CPU seconds | MB | |"]
    levels.append("| ---: | ---: | ---: | ---: | --- |")
    used = COG_OPTIONS["LEVEL"]
    try:
        for level in range(1, 10):
            COG_OPTIONS["LEVEL"] = level  # (this process only)
            wall, cpu, nbytes = best_cpu(lambda: write_geotiff(target, m, like=grid).stat().st_size)
            mark = "**selo**" if level == used else ""
            levels.append(f"| {level} | {wall:.2f} | {cpu:.2f} | {nbytes / 1e6:.2f} | {mark} |")
            print(levels[-1], flush=True)
    finally:
        COG_OPTIONS["LEVEL"] = used
    import zarr

    def store() -> int:
        g = zarr.open_group(str(args.workdir / "maps.zarr"), mode="w")
        g.create_array("selo", shape=m.shape, dtype="uint8", chunks=(2048, 2048))[:] = m
        return sum(p.stat().st_size for p in (args.workdir / "maps.zarr").rglob("*") if p.is_file())

    seconds, nbytes = best(store)
    add("maps.zarr", "zarr 3 default codec (zstd), chunks 2048", seconds, nbytes, True)
    body = [
        f"{what}; best of 2 runs each; GDAL and OpenCV use their own threads.",
        "",
        stamp("bench_writes.py", argv),
        "",
        *rows,
        "",
        "selo_map.tif as selo writes it, at each DEFLATE level:",
        "",
        *levels,
    ]
    write_section(HEADING, "\n".join(body), args.out)


if __name__ == "__main__":
    main()
