"""Collection search at scale: the index of ``selo search`` over synthetic collections of 10,
100 and 1,000 scenes of 10,000² (4,266 windows each at scales 256/512/768, 512-wide
embeddings: 8.7 GB of float32 at 1,000 scenes).

The embeddings are synthetic, of the real size and a structure like a CLIP encoder's on
remote-sensing tiles (:func:`synthetic_scene`): unit vectors in a narrow cone (a shared
direction), a mosaic of land-cover classes (48 directions, Zipf frequencies, Voronoi
regions), spatially correlated fine content (a field of vectors with a power-law spectrum,
each window the mean of what it covers, so overlapping windows are alike and large
windows smoother), rare salient objects (16 directions, each in 2% of the scenes, 150-500
px) and a little white noise; 64 principal axes hold 76% of a scene's variance. Queries
(:func:`synthetic_queries`) lean on the shared direction, one target (8 common land
covers, 8 rare ones, 8 objects) and a random mix of land covers, plus a text direction
no image shares (the modality gap): their cosines with windows are 0.3-0.5, as CLIP's.

Per size the index is written (windows, cells, then the int8 part), and each measurement
runs in a fresh process, whose peak resident memory is reported:

- **floor**: reading the embedding matrix once (every byte, as a column sum of each
  chunk; the page cache warmed by one read first), and reading it while multiplying it
  by one query vector (one matrix product);
- **exact** and **int8**: seconds per query (median over the queries, each searched
  alone, after one warm-up query), the top 20 regions; for int8 also recall@20 against
  exact and the scenes it re-ranked exactly.

    python benchmarks/bench_search.py [--sizes 10,100,1000] [--workdir /tmp/selo-bench-search]

The work folder (about 11 GB at 1,000 scenes) is removed afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import BENCHMARKS_MD, PeakMemory, gib, stamp, write_section

HEADING = "Collection search: 10, 100 and 1,000 scenes"
DIM = 512
TOP = 20
LAND, OBJECTS = 48, 16


class World:
    """The directions a synthetic collection is made of (see the module)."""

    def __init__(self, seed: int = 0, dim: int = DIM, alpha: float = 1.0) -> None:
        rng = np.random.default_rng(seed)
        self.dim = dim

        def unit(n: int) -> np.ndarray:
            v = rng.standard_normal((n, dim))
            return v / np.linalg.norm(v, axis=1, keepdims=True)

        self.shared = unit(1)[0]
        self.text = unit(1)[0]
        self.land = unit(LAND)
        self.objects = unit(OBJECTS)
        zipf = 1 / np.arange(1, LAND + 1)
        self.frequency = zipf / zipf.sum()
        basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        spectrum = np.arange(1, dim + 1) ** -alpha
        self.fine = basis * np.sqrt(spectrum / spectrum.sum())


def _overlaps(windows: np.ndarray, height: int, width: int, blocks: int) -> np.ndarray:
    """(windows, blocks²) the fraction of each window on each block of a blocks × blocks grid."""
    w = windows.astype(np.float64)
    rows, cols = np.linspace(0, height, blocks + 1), np.linspace(0, width, blocks + 1)
    r = np.clip(np.minimum(w[:, 1:2], rows[1:]) - np.maximum(w[:, 0:1], rows[:-1]), 0, None)
    c = np.clip(np.minimum(w[:, 3:4], cols[1:]) - np.maximum(w[:, 2:3], cols[:-1]), 0, None)
    area = (w[:, 1] - w[:, 0]) * (w[:, 3] - w[:, 2])
    return (r[:, :, None] * c[:, None, :]).reshape(len(w), -1) / area[:, None]


def synthetic_scene(
    world: World, windows: np.ndarray, height: int, width: int, seed: int
) -> np.ndarray:
    """Unit embeddings (float32) of a scene's windows (see the module); ``seed`` picks the
    scene."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))
    classes = rng.choice(LAND, k, replace=False, p=world.frequency)
    seeds = rng.random((k, 2)) * 16
    yy, xx = np.mgrid[0:16, 0:16] + 0.5
    label = np.argmin((yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2, -1)
    shares = _overlaps(windows, height, width, 16) @ np.eye(k)[label.ravel()]
    e = world.shared[None] + 0.8 * shares @ world.land[classes]
    field = rng.standard_normal((40 * 40, world.dim)) @ world.fine.T
    e += 1.2 * _overlaps(windows, height, width, 40) @ field
    w = windows.astype(np.float64)
    area = (w[:, 1] - w[:, 0]) * (w[:, 3] - w[:, 2])
    for o in range(OBJECTS):
        if rng.random() < 0.02:
            for _ in range(int(rng.integers(1, 4))):
                side = int(rng.integers(150, 500)) * min(height, width) // 10000 + 1
                r0 = int(rng.integers(0, max(1, height - side)))
                c0 = int(rng.integers(0, max(1, width - side)))
                r = np.clip(np.minimum(w[:, 1], r0 + side) - np.maximum(w[:, 0], r0), 0, None)
                c = np.clip(np.minimum(w[:, 3], c0 + side) - np.maximum(w[:, 2], c0), 0, None)
                e += 1.2 * np.sqrt(r * c / area)[:, None] * world.objects[o][None]
    e += rng.standard_normal(e.shape) * (0.1 / np.sqrt(world.dim))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    return e.astype(np.float32)


def synthetic_queries(world: World, n: int = 24, seed: int = 1) -> np.ndarray:
    """Unit query vectors: a third common land covers, a third rare ones, a third objects."""
    rng = np.random.default_rng(seed)
    third = max(1, n // 3)
    targets = [*world.land[:third], *world.land[-third:], *world.objects[:third]][:n]
    out = []
    for target in targets:
        mix = rng.standard_normal(LAND) @ world.land / np.sqrt(LAND)
        q = 0.3 * world.shared + 0.4 * target + 0.2 * mix + 0.85 * world.text
        out.append(q / np.linalg.norm(q))
    return np.asarray(out, np.float32)


def build(folder: Path, scenes: int, side: int) -> dict:
    """Write the index of a synthetic collection; seconds of each part."""
    from affine import Affine

    from selo.pipeline.index import CollectionIndex, IndexWriter
    from selo.pipeline.scene import Grid
    from selo.pipeline.windows import window_table

    table = window_table(side, side)
    world = World()
    grid = Grid(side, side, "EPSG:32633", Affine(0.5, 0, 500000, 0, -0.5, 4600000))
    has = np.ones(len(table), bool)
    t0 = time.perf_counter()
    with IndexWriter(folder, width=DIM, encoder="synthetic") as writer:
        for i in range(scenes):
            e = synthetic_scene(world, table.windows, side, side, seed=i)
            writer.add(f"scene-{i:04d}", f"key-{i}", grid, table.windows, has, e)
    t1 = time.perf_counter()
    with CollectionIndex(folder) as index:
        index.add_int8()
    return {"windows": scenes * len(table), "write_s": t1 - t0, "int8_s": time.perf_counter() - t1}


def measure(folder: Path, what: str, queries: int) -> dict:
    """One measurement in this process (see the module)."""
    from selo.pipeline.index import CollectionIndex

    vectors = synthetic_queries(World(), queries)
    out: dict = {}
    with PeakMemory() as memory, CollectionIndex(folder) as index:
        if what == "floor":
            for _, rows in index.matrix.chunks():  # warm the page cache
                rows.sum(axis=0)
            t0, c0 = time.perf_counter(), time.process_time()
            for _, rows in index.matrix.chunks():  # every byte read once: a column sum
                rows.sum(axis=0)
            out["read"], out["read_cpu"] = time.perf_counter() - t0, time.process_time() - c0
            t0, c0 = time.perf_counter(), time.process_time()
            index.matrix.product(vectors[:1].T)
            out["product"] = time.perf_counter() - t0
            out["product_cpu"] = time.process_time() - c0
        else:
            if what == "int8":
                index.open_int8()
            index.search(vectors[:1], top=TOP, mode=what)  # warm-up
            times, cpu, hits, reranked = [], [], [], []
            for q in vectors:
                stats: dict = {}
                t0, c0 = time.perf_counter(), time.process_time()
                (found,) = index.search(q[None], top=TOP, mode=what, stats=stats)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                hits.append([[h.scene, *h.region.peak, h.score] for h in found])
                reranked.append(stats["scenes_reranked"][0])
            out.update(seconds=statistics.median(times), worst=max(times), hits=hits)
            out["cpu"] = statistics.median(cpu)
            out["reranked"] = statistics.mean(reranked)
    out["peak"] = memory.peak
    return out


def recall(exact: list, approx: list) -> float:
    """Mean over queries of |approx top-K ∩ exact top-K| / K (regions as scene and peak)."""
    values = []
    for e, a in zip(exact, approx, strict=True):
        truth = {tuple(h[:3]) for h in e}
        values.append(len(truth & {tuple(h[:3]) for h in a}) / max(1, len(truth)))
    return statistics.mean(values)


def run(folder: Path, what: str, queries: int) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--measure", what, "--index", str(folder),
         "--queries", str(queries)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"measuring {what} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000", help="scenes per collection")
    parser.add_argument("--side", type=int, default=10000, help="scene side in pixels")
    parser.add_argument("--queries", type=int, default=24)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/selo-bench-search"))
    parser.add_argument("--keep", action="store_true", help="keep the indexes")
    parser.add_argument("--out", type=Path, default=BENCHMARKS_MD)
    parser.add_argument("--measure", choices=["floor", "exact", "int8"], help=argparse.SUPPRESS)
    parser.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.index, args.measure, args.queries)))
        return
    rows = []
    started_load = os.getloadavg()[0]
    for scenes in (int(s) for s in args.sizes.split(",")):
        folder = args.workdir / f"index-{scenes}"
        shutil.rmtree(folder, ignore_errors=True)
        built = build(folder, scenes, args.side)
        print(f"{scenes} scenes: written", {k: round(v, 1) for k, v in built.items()}, flush=True)
        floor, exact, int8 = (
            run(folder, what, args.queries) for what in ("floor", "exact", "int8")
        )
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        row = {"scenes": scenes, **built, "floor": floor, "exact": exact, "int8": int8}
        row["recall"] = recall(exact["hits"], int8["hits"])
        print(f"{scenes} scenes:", {k: v for k, v in row.items() if k not in ("exact", "int8")},
              f"exact {exact['seconds']:.3f} s, int8 {int8['seconds']:.3f} s", flush=True)  # fmt: skip
        rows.append(row)
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)
    write_section(HEADING, report(rows, args, argv, (started_load, os.getloadavg()[0])), args.out)


def report(rows: list[dict], args, argv, load: tuple[float, float]) -> str:
    lines = [
        "| scenes | windows | matrix | floor: read | floor: one product | exact, s/query | "
        "int8, s/query | int8 recall@20 | scenes re-ranked (int8) | peak RSS exact / int8 | "
        "index: write / int8 part |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        size = r["windows"] * DIM * 4
        f, e, i = r["floor"], r["exact"], r["int8"]
        lines.append(
            f"| {r['scenes']:,} | {r['windows']:,} | {size / 1e9:.2f} GB | "
            f"{f['read']:.2f} ({f['read_cpu']:.2f} CPU) | "
            f"{f['product']:.2f} ({f['product_cpu']:.2f} CPU) | "
            f"**{e['seconds']:.2f}** ({e['cpu']:.2f} CPU; worst {e['worst']:.2f}) | "
            f"**{i['seconds']:.2f}** ({i['cpu']:.2f} CPU; worst {i['worst']:.2f}) | "
            f"{r['recall']:.3f} | {i['reranked']:.0f} of {r['scenes']:,} | "
            f"{gib(e['peak'])} / {gib(i['peak'])} | "
            f"{r['write_s']:.0f} s / {r['int8_s']:.0f} s |"
        )
    per = [r["exact"]["seconds"] / r["windows"] for r in rows if r["windows"] >= 100_000]
    limit = (
        f"Exact costs {1e6 * statistics.mean(per):.2f} s per million windows here (wall): it "
        f"stays under 1 s up to about {1 / statistics.mean(per) / 1e6:.1f} M windows "
        f"({1 / statistics.mean(per) / rows[-1]['windows'] * rows[-1]['scenes']:.0f} scenes "
        "of this size)."
        if per
        else ""
    )
    return "\n".join(
        [
            "`selo.pipeline.index` over synthetic collections (see the script's docstring for",
            "the embeddings: a cone, land-cover mosaics, spatially correlated fine content with",
            "a power-law spectrum, rare objects; queries with a modality gap). Each measurement",
            "in a fresh process; seconds per query are wall-clock medians (and CPU seconds of",
            f"the process, all threads) over {args.queries} queries searched one by one after a",
            "warm-up query, top 20 regions. The floor: reading the float32 matrix once (a",
            "column sum of each chunk, page cache warm), and one matrix product with one query.",
            f"The machine is shared: load average {load[0]:.1f} at the start, {load[1]:.1f} at",
            "the end (2 cores).",
            "",
            stamp("bench_search.py", argv),
            "",
            *lines,
            "",
            limit,
        ]
    )


if __name__ == "__main__":
    main()
