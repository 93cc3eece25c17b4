"""``selo localize`` per stage on a 4000×4000 scene, next to the published mechanics.

Writes a synthetic 4000×4000 RGB GeoTIFF (tiled, deflate), then:

1. runs the published v1 mechanics (``published_v1.py``: JPEG crops on disk,
   one-by-one scoring, per-pixel Python loop, whole-scene median) with the
   ``color`` encoder;
2. runs ``selo localize`` (embedded cluster, empty embedding cache) on the same
   scene and query and reads its stage table;
3. checks the maps: selo's Gnt + Flt applied to the published run's own
   window scores (in its order) must give its map bit for bit.

The comparison the issue asks for is Cut + Gnt + Flt (Sim depends on the
model; with ``color`` both are cheap).

    python benchmarks/bench_localize.py [--size 4000] [--workdir /tmp/selo-bench]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
from _common import make_scene, stamp, write_section
from published_v1 import published_v1

import selo
from selo.models.registry import get_encoder
from selo.pipeline.gnt import CellGrid, accumulate, quantize
from selo.selo_tasks.methods import V1

QUERY = "a white plane parked on a gray airport"


QUERIES = (
    QUERY,
    "a cyan ship with cargo on the black sea",
    "eight large white oil storage tanks built on grey concrete floor",
    "green trees",
)
STAGES = ("cut", "sim", "gnt", "flt")


def run_selo(scene: Path, queries: tuple[str, ...], work: Path) -> dict:
    """``selo localize`` with an empty embedding cache; its record (stage table inside)."""
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    return selo.localize_files(scene, queries, work / "selo", cache=cache, show_progress=False)


def table(published: dict[str, float], ours: dict[str, float]) -> list[str]:
    rows = [
        f"| {s} | {published[s]:.2f} | {ours.get(s, 0.0):.2f} | "
        f"{published[s] / max(ours.get(s, 0.0), 1e-9):.0f}× |"
        for s in STAGES
    ]
    pub = sum(published[s] for s in ("cut", "gnt", "flt"))
    mine = sum(ours.get(s, 0.0) for s in ("cut", "gnt", "flt"))
    rows.append(f"| **cut + gnt + flt** | **{pub:.2f}** | **{mine:.2f}** | **{pub / mine:.1f}×** |")
    return [
        "| stage | published mechanics (s) | selo (s) | speed-up |",
        "| --- | ---: | ---: | ---: |",
        *rows,
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="selo-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    scene = work / f"scene-{args.size}.tif"
    make_scene(scene, args.size)
    encoder = get_encoder("color")

    # The published code runs every stage again for each query of a scene.
    runs = [published_v1(scene, q, encoder, work) for q in QUERIES]
    one = runs[0]["times"]
    many = {s: sum(r["times"][s] for r in runs) for s in STAGES}
    print("published, 1 query:", {k: round(v, 2) for k, v in one.items()}, flush=True)
    selo_one = run_selo(scene, QUERIES[:1], work)
    selo_many = run_selo(scene, QUERIES, work)
    ours_one = {k: v["wall"] for k, v in selo_one["stages"].items()}
    ours_many = {k: v["wall"] for k, v in selo_many["stages"].items()}
    print("selo, 1 query:", {k: round(v, 2) for k, v in ours_one.items()}, flush=True)

    # selo's Gnt + Flt on the published run's own scores, in its order
    first = runs[0]
    grid = CellGrid.from_windows(args.size, args.size, first["windows"])
    u8 = quantize(accumulate(grid, first["windows"], first["scores"]))
    same = np.array_equal(V1().finish_array(u8), first["map"])
    extra = {k: v for k, v in ours_one.items() if k not in STAGES}
    body = "\n".join(
        [
            f"A {args.size}×{args.size} RGB GeoTIFF (tiled, deflate), the `color` encoder,",
            f"{selo_one['windows']} windows (scales 256/512/768). Published mechanics: JPEG crops",
            "written and read back one by one, per-pixel Python loop, whole-scene median, every",
            "stage again for each query (our re-implementation in `benchmarks/published_v1.py`).",
            "selo: `selo localize` (one scene: dask threads in this process, no cluster to",
            "start), empty embedding cache; stage wall seconds from its own profiler.",
            "",
            stamp("bench_localize.py", argv),
            "",
            "One query:",
            "",
            *table(one, ours_one),
            "",
            f"{len(QUERIES)} queries on the same scene (selo embeds the scene once):",
            "",
            *table(many, ours_many),
            "",
            f"selo also spent {', '.join(f'{v:.2f} s in {k}' for k, v in extra.items())} for one "
            "query (GeoTIFF, PNG, overlay, GeoJSON, maps.zarr; the published code writes JPEGs).",
            f"Same map: selo's Gnt + Flt on the published run's own window scores "
            f"{'equals' if same else 'DIFFERS FROM'} its map bit for bit.",
        ]
    )
    write_section("Localize: one scene, stage by stage", body)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
