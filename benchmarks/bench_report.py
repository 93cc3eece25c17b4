"""What the run report adds to a run, part by part, measured one after the other in one
process on a finished ``selo airslt`` run folder (its maps and scenes).

python benchmarks/bench_report.py RUN --images DIR [--anno anno.json] [--whole] [--write]

Parts: the scene previews (one per scene, on the cluster in a run), the overlays of each
case (decimate, blend, marks, legend, overlay.png, thumb.jpg; in the case's eval task)
and the client's share at the end (scene headers, charts, report.html). In a run the
first two run in parallel on the workers, the last in the client after the cluster.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import dask
from _common import stamp, write_section

from selo.pipeline.cache import Cache
from selo.pipeline.preview import read_preview
from selo.pipeline.scene import open_scene
from selo.selo_tasks import run_folder
from selo.selo_tasks.metrics import evaluate_case
from selo.selo_tasks.report.case_overlay import (
    PREVIEW_SIDE,
    read_scene_preview,
    write_case_overlays,
)
from selo.selo_tasks.report.run_page import finish_run_folder
from selo.selo_tasks.run_info import run_details


class Timer:
    """Summed CPU seconds (this process) and wall seconds of the blocks it times."""

    def __init__(self) -> None:
        self.cpu = self.wall = 0.0

    def __enter__(self) -> Timer:
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.cpu += time.process_time() - self._cpu
        self.wall += time.perf_counter() - self._wall


def whole_run(images: Path, anno: Path | None) -> Timer:
    """CPU (the child process) and wall seconds of ``selo airslt`` on the same cases."""
    import resource
    import subprocess
    import sys

    timer = Timer()
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "selo", "airslt", "--images", str(images)]
        command += ["--in-process", "--no-profile", "--out", str(Path(tmp) / "run")]
        command += ["--anno", str(anno)] if anno else []
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        timer.wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        timer.cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return timer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--anno", type=Path, default=None)
    parser.add_argument(
        "--whole",
        action="store_true",
        help="Also time a whole run of the same cases (selo airslt --in-process, this cache).",
    )
    parser.add_argument("--write", action="store_true", help="Write BENCHMARKS.md.")
    args = parser.parse_args(argv)
    record = run_folder.read_record(args.run)
    cases = run_folder.run_annotations(args.run, args.anno)[1]
    by_index = {c.index: c for c in cases}
    scored = [by_index[c["case"]] for c in record["case_list"]]
    cache = Cache()  # the cache's staged copies and previews ($SELO_CACHE_DIR), as in the run

    names = list(dict.fromkeys(c.image for c in scored))
    previews = {n: read_scene_preview(args.images / n, cache) for n in names}  # warm up
    with Timer() as preview:
        previews = {n: read_scene_preview(args.images / n, cache) for n in names}
    with Timer() as decimated, dask.config.set(scheduler="sync"):  # what a first run pays
        for n in names:
            read_preview(open_scene(args.images / n, cache=cache), PREVIEW_SIDE)
    overlays = Timer()
    with tempfile.TemporaryDirectory() as tmp:
        for case in scored:
            folder = run_folder.case_dir(args.run, case.index)
            selo = cv2.imread(str(folder / run_folder.SELO_MAP), 0)
            detail = evaluate_case(selo, case.polygon_arrays())
            with overlays:
                write_case_overlays(Path(tmp), selo, previews[case.image], case, detail)
    with Timer() as client:
        run_details(scored, args.images, {})
        finish_run_folder(args.run, record)
    parts = (
        (f"scene previews ({len(previews)} scenes), cached", preview),
        (f"overlays ({len(scored)} cases)", overlays),
        ("client: scene headers, charts, report.html", client),
    )
    rows = [f"| {name} | {t.cpu:.2f} s | {t.wall:.2f} s |" for name, t in parts]
    cpu, wall = sum(t.cpu for _, t in parts), sum(t.wall for _, t in parts)
    rows.append(f"| **total** | **{cpu:.2f} s** | {wall:.2f} s |")
    rows.append(
        f"| (first run: previews not cached yet, decimated from the scenes) "
        f"| ({decimated.cpu:.2f} s) | ({decimated.wall:.2f} s) |"
    )
    if args.whole:
        whole = whole_run(args.images, args.anno)
        rows.append(
            f"| for scale: the whole run, `selo airslt --in-process` (report included) "
            f"| {whole.cpu:.1f} s | {whole.wall:.1f} s |"
        )
        rows.append(f"| the report's share of the whole run | {cpu / whole.cpu:.0%} | |")
    body = "\n".join(
        [
            f"What `report.html` and the annotated overlays add to a run of {len(scored)}",
            "cases, part by part, one after the other in one process (in a run the previews",
            "and overlays are tasks on the workers, in parallel with the maps and metrics).",
            "",
            stamp("bench_report.py", argv),
            "",
            "| part | CPU | wall |",
            "| --- | ---: | ---: |",
            *rows,
        ]
    )
    print(body)
    if args.write:
        write_section("Run report: what it adds", body)


if __name__ == "__main__":
    main()
