"""The whole AIR-SLT test set as one resumable run (``selo airslt``).

Every scene is embedded once for all of its queries (and cached); then each
case runs as three tasks on the cluster — ``gnt`` (expand the cell map),
``flt`` (finishing filter, map written) and ``eval`` (metrics, written last) —
so cases of different scenes run side by side. A case is finished when its
``metrics.json`` exists (written atomically, after its map); ``--resume``
keeps finished cases whose configuration matches and recomputes the rest.

Run folder::

    run.json          config, versions, encoder, stage table, cases, scenes, status
    metrics.csv       one row per case and the mean row (written at the end)
    report.html       the run on one page: settings, metrics, charts, every case
    stages.png        the stage-time chart; scenes.png: task seconds per scene
    profile.html      Dask performance report
    case_NN/          windows.csv, selo_map.png, metrics.json, overlay.png, thumb.jpg
                      (+ overlay_plain.png with plain_overlays)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import dask
import numpy as np

from selo.errors import SceneError
from selo.pipeline.accumulate import CellMap
from selo.pipeline.raster import open_scene
from selo.pipeline.store import atomic_path, atomic_write_text, ensure_dir
from selo.selo_tasks.annotations import Case
from selo.selo_tasks.case_overlay import submit_previews, write_case_overlays  # run report
from selo.selo_tasks.evaluate import CaseResult, write_metrics_csv
from selo.selo_tasks.methods import MapInputs, Method
from selo.selo_tasks.metrics import Metrics, evaluate_case, mean_metrics
from selo.selo_tasks.report import progress
from selo.selo_tasks.report_html import finish_run_folder  # run report
from selo.selo_tasks.run_info import run_details  # run report
from selo.selo_tasks.runner import (
    RunContext,
    cell_maps,
    describe_encoder,
    embed_scenes,
    query_contributions,
    warn_if_clamped,
)
from selo.selo_tasks.session import SessionOptions, run_session, versions

__all__ = [
    "AirsltOptions",
    "AirsltRun",
    "run_airslt",
    "run_cases",
    "case_dir",
    "config_digest",
    "find_images",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AirsltOptions:
    """Options of an AIR-SLT run that are not the cluster, encoder or method."""

    images: Path
    out: Path
    resume: bool = False
    skip_missing: bool = False
    paper_compat: bool = False
    overlays: bool = True  # overlay.png + thumb.jpg per case (the run report shows them)
    plain_overlays: bool = False  # also overlay_plain.png, the published style


def case_dir(out: Path, case: Case) -> Path:
    return out / f"case_{case.index:02d}"


def config_digest(
    ctx: RunContext, method: Method, options: AirsltOptions, cases: Sequence[Case]
) -> str:
    """A hash of everything that changes a case's results (resume keeps only matching cases)."""
    parts = {
        "encoder": ctx.encoder.version,
        "method": method.describe(),
        "paper_compat": options.paper_compat,
        "cases": [(c.index, c.image, c.query, c.polygons) for c in cases],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def find_images(
    cases: Sequence[Case], images: Path, *, skip_missing: bool
) -> tuple[list[Case], list[Case]]:
    """(cases whose scene exists, cases skipped); missing scenes are an error unless skipped."""
    if not images.is_dir():
        raise SceneError(f"{images}: images folder not found")
    missing = sorted({c.image for c in cases if not (images / c.image).is_file()}, key=_natural)
    if missing and not skip_missing:
        shown = ", ".join(missing[:10]) + (
            f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
        raise SceneError(
            f"{images}: {len(missing)} scene(s) named by the annotations are missing: {shown} "
            "(add them, or pass --skip-missing to leave their cases out)"
        )
    keep = [c for c in cases if c.image not in missing]
    return keep, [c for c in cases if c.image in missing]


def _natural(name: str):
    stem = name.split(".")[0]
    return (0, int(stem), name) if stem.isdigit() else (1, 0, name)


def run_cases(
    ctx: RunContext,
    method: Method,
    cases: Sequence[Case],
    options: AirsltOptions,
    *,
    on_result: Callable[[CaseResult], None] | None = None,
) -> tuple[list[CaseResult], list[Case]]:
    """Run and score ``cases``: (results in case order, cases skipped for missing scenes)."""
    cases, skipped = find_images(cases, options.images, skip_missing=options.skip_missing)
    digest = config_digest(ctx, method, options, cases)
    results: dict[int, CaseResult] = {}
    todo = []
    for case in cases:
        done = _finished(options.out, case, digest) if options.resume else None
        if done is not None:
            results[case.index] = done
        else:
            todo.append(case)
    if results:
        log.info("resuming: %d of %d cases already finished", len(results), len(cases))

    by_scene: dict[str, list[Case]] = defaultdict(list)
    for case in todo:
        by_scene[case.image].append(case)
    stage_dir = ctx.cache.root / "staged"

    def open_one(name: str):
        return open_scene(options.images / name, chunk=ctx.chunk, stage_dir=stage_dir)

    # JPEG scenes are staged on first open: decode and write in C, so in parallel
    with ctx.profiler.stage("cut"), ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        scenes = dict(zip(by_scene, pool.map(open_one, by_scene), strict=True))
        tables = {name: method.scene_windows(*scenes[name].info.shape) for name in by_scene}
    for name, table in tables.items():
        warn_if_clamped(name, table)
    embedded = dict(
        zip(
            by_scene,
            embed_scenes(ctx, [(scenes[n], tables[n]) for n in by_scene], what="scenes"),
            strict=True,
        )
    )

    client = ctx.cluster.client
    all_inputs = query_contributions(ctx, method, [(embedded[c.image], c.query) for c in todo])
    # run report: one preview per scene, read on the cluster, shared by the scene's cases
    previews = submit_previews(
        client, {n: options.images / n for n in by_scene if options.overlays}, stage_dir
    )
    futures = {}
    for case, inputs in zip(todo, all_inputs, strict=True):
        h, w = embedded[case.image].scene.info.shape
        with ctx.profiler.stage("gnt"):
            cells = cell_maps(h, w, inputs, uncovered_counts=method.uncovered_counts)
        preview = previews.get(case.image)
        futures[_submit_case(client, method, case, cells.u8, inputs, options, digest, preview)] = (
            case
        )
    previews.clear()  # each preview is released with the last case that uses it
    from distributed import as_completed

    with (
        ctx.profiler.stage("flt"),
        progress("maps and metrics", len(futures), enabled=ctx.show_progress) as advance,
    ):
        pending = as_completed(list(futures))
        cases_of = {f.key: c for f, c in futures.items()}
        futures.clear()  # release each case (and the maps its tasks held) once gathered
        for future in pending:
            case = cases_of.pop(future.key)
            metrics = Metrics(**future.result())
            future.release()
            del future
            result = CaseResult(case, metrics, str(case_dir(options.out, case) / "selo_map.png"))
            results[case.index] = result
            advance()
            if on_result is not None:
                on_result(result)
    ordered = [results[c.index] for c in cases if c.index in results]
    return ordered, skipped


def _finished(out: Path, case: Case, digest: str) -> CaseResult | None:
    path = case_dir(out, case) / "metrics.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("config") != digest or data.get("case") != case.index:
        return None
    return CaseResult(case, Metrics(**data["metrics"]), str(case_dir(out, case) / "selo_map.png"))


def _submit_case(
    client, method, case, u8_cells: CellMap, inputs: MapInputs, options, digest, preview
):
    key = dask.base.tokenize(case, digest)
    full = dask.delayed(_expand, pure=True)(u8_cells, dask_key_name=f"gnt-case-{case.index}-{key}")
    selo = dask.delayed(_finish, pure=True)(
        full,
        method,
        case_dir(options.out, case),
        dask_key_name=f"flt-case-{case.index}-{key}",
    )
    metrics = dask.delayed(_evaluate, pure=True)(
        selo,
        case,
        inputs,
        case_dir(options.out, case),
        options.paper_compat,
        digest,
        preview,
        options.plain_overlays,
        dask_key_name=f"eval-case-{case.index}-{key}",
    )
    return client.compute(metrics)


def _expand(cells: CellMap) -> np.ndarray:
    return cells.to_array()


def _finish(u8: np.ndarray, method: Method, folder: Path) -> np.ndarray:
    """The finished SeLo map (one whole-array block: AIR-SLT scenes fit); selo_map.png written."""
    selo = method.finish_array(u8)
    ensure_dir(folder)
    _write_png(folder / "selo_map.png", selo)
    return selo


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"cannot encode {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def _evaluate(
    selo,
    case,
    inputs: MapInputs,
    folder: Path,
    paper_compat: bool,
    digest: str,
    preview: np.ndarray | None = None,
    plain: bool = False,
) -> dict:
    """Metrics of the finished map; overlays (given the scene's ``preview``), windows.csv
    and metrics.json (last: marks the case done)."""
    if paper_compat:  # the published code stores the map as JPEG and scores the decoded JPEG
        ok, buf = cv2.imencode(".jpg", selo)
        with atomic_path(folder / f"probmap_{case.index}.jpg") as tmp:
            tmp.write_bytes(buf.tobytes())
        selo = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    t0 = time.perf_counter()
    detail = evaluate_case(selo, case.polygon_arrays(), case=case.index)
    m = detail.metrics.as_dict()
    seconds = time.perf_counter() - t0
    if preview is not None:  # run report: annotated overlay.png and thumb.jpg
        write_case_overlays(folder, selo, preview, case, detail, plain=plain)
    write_windows_csv(folder / "windows.csv", inputs)
    record = {
        "case": case.index,
        "image": case.image,
        "query": case.query,
        "metrics": m,
        "config": digest,
        "eval_seconds": seconds,
        "regions": detail.regions,  # run report: (cx, cy, r) and centres (x, y, counted)
        "centres": [(*c, k) for c, k in zip(detail.centres, detail.counted(), strict=True)],
    }
    atomic_write_text(folder / "metrics.json", json.dumps(record, indent=1))
    return m


def write_windows_csv(path: Path, inputs: MapInputs) -> None:
    """``r0,r1,c0,c1,scale,score`` per contributing window, in accumulation order.

    Scores are written with full precision, so the map can be rebuilt exactly
    from this file.
    """
    rows = zip(inputs.windows.tolist(), inputs.scales.tolist(), inputs.scores.tolist(), strict=True)
    lines = ["r0,r1,c0,c1,scale,score"]
    lines += [f"{r0},{r1},{c0},{c1},{scale},{score!r}" for (r0, r1, c0, c1), scale, score in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


@dataclass
class AirsltRun:
    """What a finished AIR-SLT run produced."""

    results: list[CaseResult]
    skipped: list[Case]
    stages: dict[str, dict[str, float]]
    wall: float
    out: Path
    metrics_csv: Path | None


def run_airslt(
    cases: Sequence[Case],
    method: Method,
    options: AirsltOptions,
    session: SessionOptions,
    *,
    on_result: Callable[[CaseResult], None] | None = None,
) -> AirsltRun:
    """Run every case and write metrics.csv, run.json, stages.png (and profile.html)."""
    out = ensure_dir(options.out)
    (out / "metrics.csv").unlink(missing_ok=True)  # only a finished run has one
    record = {
        "command": "airslt",
        "status": "running",
        "images": str(options.images),
        "cases": len(cases),
        "method": method.describe(),
        "options": {
            "resume": options.resume,
            "paper_compat": options.paper_compat,
        },
        "versions": versions(),
    }
    atomic_write_text(out / "run.json", json.dumps(record, indent=1, default=str))
    started = time.perf_counter()
    with run_session(session) as ctx:
        record["encoder"] = describe_encoder(ctx)
        record["cluster"] = ctx.cluster.describe()
        results, skipped = run_cases(ctx, method, cases, options, on_result=on_result)
        stages = ctx.profiler.table()
        task_seconds = ctx.profiler.prefix_seconds()  # run report: per-scene seconds
    wall = time.perf_counter() - started
    csv_path = write_metrics_csv(out / "metrics.csv", results) if results else None
    record.update(
        status="complete",
        wall_seconds=wall,
        stages=stages,
        scored=len(results),
        skipped=[c.index for c in skipped],
        mean=mean_metrics(r.metrics for r in results).as_dict() if results else None,
    )
    record.update(run_details(cases, [r.case for r in results], options.images, task_seconds))
    atomic_write_text(out / "run.json", json.dumps(record, indent=1, default=str))
    finish_run_folder(out, record)  # run report: stages.png, scenes.png, report.html
    return AirsltRun(results, skipped, stages, wall, out, csv_path)
