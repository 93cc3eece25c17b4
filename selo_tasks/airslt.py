"""The whole AIR-SLT test set as one resumable run (``selo airslt``).

Every scene is embedded once for all of its queries (and cached); the driver gives
each case's cells (Gnt, in this process); then each case runs as two tasks on the
cluster — ``flt`` (the finished map from its cells, selo_map.png written) and
``eval`` (metrics, written last) — so cases of different scenes run side by side. A case
is finished when its ``metrics.json`` exists (written atomically, after its map); ``--resume``
keeps finished cases whose configuration matches and recomputes the rest.

The run folder's layout: :mod:`~selo.selo_tasks.run_folder`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dask
import numpy as np

from ..cluster import unseen_paths
from ..errors import ClusterError, SceneError, portable_errors
from ..pipeline.gnt import CellMap
from ..pipeline.outputs import write_jpeg, write_png, write_windows_csv
from ..pipeline.remote import is_remote
from ..pipeline.scene import open_scene
from ..pipeline.source import SceneRef, locate_scenes
from ..pipeline.store import atomic_write_text, ensure_dir
from . import run_folder as layout
from .annotations import Case
from .driver import QueryMap
from .eval import CaseResult, write_metrics_csv
from .methods import Method
from .metrics import INDICATORS, Metrics, evaluate_case, mean_metrics, validate_polygons
from .options import Options
from .report.case_overlay import PREVIEW_SIDE, submit_previews, write_case_overlays
from .report.run_page import finish_run_folder
from .report.terminal import progress
from .run_info import run_details
from .session import RunContext, describe_encoder, run_session, versions

__all__ = [
    "AirsltOptions",
    "AirsltRun",
    "run_airslt",
    "run_cases",
    "config_digest",
    "find_images",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AirsltOptions:
    """What an AIR-SLT run reads and writes (how it computes is in :class:`Options`)."""

    images: str  # a folder, a URL prefix, or a STAC ItemCollection, Catalog or Collection
    out: Path
    anno: Path | None = None  # the annotation file of the cases (None: the one shipped with selo)
    resume: bool = False
    skip_missing: bool = False
    overlays: bool = True  # overlay.png + thumb.jpg per case (the run report shows them)
    plain_overlays: bool = False  # also overlay_plain.png, the published style


def config_digest(ctx: RunContext, cases: Sequence[Case]) -> str:
    """A hash of everything that changes a case's results (resume keeps only matching cases)."""
    parts = {
        "encoder": ctx.encoder.version,
        "method": ctx.method.describe(),
        "paper_compat": ctx.options.paper_compat,
        "cases": [(c.index, c.image, c.query, c.polygons) for c in cases],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def find_images(
    cases: Sequence[Case], images: str, *, skip_missing: bool
) -> tuple[list[Case], list[Case], dict[str, SceneRef]]:
    """(cases whose scene exists, cases skipped, where each found scene is); ``images`` is
    a folder, a URL prefix or a STAC collection (:func:`~selo.pipeline.source.locate_scenes`);
    missing scenes are an error unless skipped."""
    found = locate_scenes(images, [c.image for c in cases])
    missing = sorted({c.image for c in cases if c.image not in found}, key=_natural)
    if missing and not skip_missing:
        shown = ", ".join(missing[:10]) + (
            f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
        raise SceneError(
            f"{images}: {len(missing)} scene(s) named by the annotations are missing: {shown} "
            "(add them, or pass --skip-missing to leave their cases out)"
        )
    keep = [c for c in cases if c.image not in missing]
    return keep, [c for c in cases if c.image in missing], found


def _natural(name: str):
    stem = name.split(".")[0]
    return (0, int(stem), name) if stem.isdigit() else (1, 0, name)


def run_cases(
    ctx: RunContext,
    cases: Sequence[Case],
    options: AirsltOptions,
    *,
    on_result: Callable[[CaseResult], None] | None = None,
) -> tuple[list[CaseResult], list[Case]]:
    """Run and score ``cases``: (results in case order, cases skipped for missing scenes)."""
    cases, skipped, refs = find_images(cases, options.images, skip_missing=options.skip_missing)
    _check_shared(ctx, [options.out, ctx.cache.root, *(r.location for r in refs.values())])
    digest = config_digest(ctx, cases)
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

    def open_one(name: str):
        return open_scene(refs[name], chunk=ctx.options.chunk, cache=ctx.cache)

    driver = ctx.driver
    # JPEG scenes are staged on first open: decode and write in C, so in parallel
    with ctx.profiler.stage("cut"), ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        scenes = dict(zip(by_scene, pool.map(open_one, by_scene), strict=True))
        tables = {name: driver.table(scenes[name]) for name in by_scene}
    for case in todo:  # polygons the scene's map cannot score fail now, not after the work
        where = f"case {case.index} ({case.image}), field 'points'"
        validate_polygons(case.polygon_arrays(), where=where, shape=scenes[case.image].shape[:2])
    embedded = dict(
        zip(
            by_scene,
            driver.embed(
                [(scenes[n], tables[n]) for n in by_scene],
                what="scenes",
                # overlay backgrounds cut from the pixels Cut reads anyway, kept in the cache
                preview_side=PREVIEW_SIDE if options.overlays else None,
            ),
            strict=True,
        )
    )
    maps = driver.query_maps([(embedded[c.image], c.query) for c in todo])
    client = ctx.cluster.client
    paper_compat = ctx.options.paper_compat
    # one preview per scene, read on the cluster, shared by the scene's cases
    wanted = {n: refs[n] for n in by_scene} if options.overlays else {}
    previews = submit_previews(client, wanted, ctx.cache)
    futures = {
        _submit_case(
            client, case, qm, options, paper_compat, digest, previews.get(case.image)
        ): case
        for case, qm in zip(todo, maps, strict=True)
    }
    del maps
    previews.clear()  # each preview is released with the last case that uses it
    from distributed import as_completed

    bar = progress("maps and metrics", len(futures), enabled=ctx.options.show_progress)
    with ctx.profiler.stage("flt"), bar as advance:
        pending = as_completed(list(futures))
        cases_of = {f.key: c for f, c in futures.items()}
        futures.clear()  # release each case (and the maps its tasks held) once gathered
        for future in pending:
            case = cases_of.pop(future.key)
            metrics = Metrics(**future.result())
            future.release()
            del future
            folder = layout.case_dir(options.out, case.index)
            result = CaseResult(case, metrics, str(folder / layout.SELO_MAP))
            results[case.index] = result
            advance()
            if on_result is not None:
                on_result(result)
    ordered = [results[c.index] for c in cases if c.index in results]
    return ordered, skipped


def _check_shared(ctx: RunContext, places: list) -> None:
    """ClusterError when a worker of an existing scheduler's cluster cannot see a local path
    its tasks would carry (the run folder, the cache's staged copies and previews, local
    scenes): a cluster that shares no disk needs URLs for them."""
    if isinstance(ctx.cache.root, Path):
        ctx.cache.root.mkdir(parents=True, exist_ok=True)  # (made on first use anyway)
    local = [
        str(p) for p in places if isinstance(p, Path) or (isinstance(p, str) and not is_remote(p))
    ]
    unseen = unseen_paths(ctx.cluster, list(dict.fromkeys(local)))
    if unseen:
        more = f" (and {len(unseen) - 1} more)" if len(unseen) > 1 else ""
        raise ClusterError(
            f"{unseen[0]}{more}: the workers of {ctx.cluster.address} cannot see this path; "
            "give --images, --cache-dir and --out as s3://, gs:// or az:// URLs, or put them "
            "on a file system every worker sees"
        )


def _finished(out: Path, case: Case, digest: str) -> CaseResult | None:
    folder = layout.case_dir(out, case.index)
    try:
        data = json.loads((folder / layout.CASE_RECORD).read_text())
        if not isinstance(data, dict) or data.get("config") != digest:
            return None
        if data.get("case") != case.index:
            return None
        values = {i.name: data["metrics"][i.name] for i in INDICATORS}
        if not all(_is_number(v) for v in values.values()):
            return None
        metrics = Metrics.from_dict(values)
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        return None  # not a finished case (or a damaged record): computed again
    return CaseResult(case, metrics, str(folder / layout.SELO_MAP))


def _is_number(value: object) -> bool:
    """A finite JSON number (not a boolean, a string, NaN or beyond a float's range)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return abs(value) <= sys.float_info.max


def _submit_case(client, case: Case, qm: QueryMap, options, paper_compat, digest, preview):
    key = dask.base.tokenize(case, digest)
    folder = layout.case_dir(options.out, case.index)
    selo = dask.delayed(_finish, pure=True)(
        qm.u8, qm.method, folder, dask_key_name=f"flt-case-{case.index}-{key}"
    )
    metrics = dask.delayed(_evaluate, pure=True)(
        selo,
        case,
        qm.inputs,
        folder,
        paper_compat,
        digest,
        preview,
        options.plain_overlays,
        dask_key_name=f"eval-case-{case.index}-{key}",
    )
    return client.compute(metrics)


@portable_errors
def _finish(u8: CellMap, method: Method, folder: Path) -> np.ndarray:
    """The finished SeLo map (one whole-array block: AIR-SLT scenes fit); selo_map.png written."""
    selo = method.finish_array(u8)
    ensure_dir(folder)
    write_png(folder / layout.SELO_MAP, selo)
    return selo


@portable_errors
def _evaluate(
    selo,
    case,
    inputs,
    folder: Path,
    paper_compat: bool,
    digest: str,
    preview: np.ndarray | None = None,
    plain: bool = False,
) -> dict:
    """Metrics of the finished map; overlays (given the scene's ``preview``), windows.csv
    and metrics.json (last: marks the case done)."""
    if paper_compat:  # the published code stores the map as JPEG and scores the decoded JPEG
        selo = write_jpeg(folder / layout.PAPER_MAP.format(index=case.index), selo)
    t0 = time.perf_counter()
    detail = evaluate_case(selo, case.polygon_arrays(), case=case.index)
    m = detail.metrics.as_dict()
    seconds = time.perf_counter() - t0
    if preview is not None:  # annotated overlay.png and thumb.jpg
        write_case_overlays(folder, selo, preview, case, detail, plain=plain)
    write_windows_csv(folder / layout.WINDOWS_CSV, inputs.windows, inputs.scales, inputs.scores)
    record = {
        "case": case.index,
        "image": case.image,
        "query": case.query,
        "metrics": m,
        "config": digest,
        "eval_seconds": seconds,
        "regions": detail.regions,  # (cx, cy, r) and centres (x, y, counted), for the report
        "centres": [(*c, k) for c, k in zip(detail.centres, detail.counted(), strict=True)],
    }
    atomic_write_text(folder / layout.CASE_RECORD, json.dumps(record, indent=1))
    return m


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
    options: AirsltOptions,
    run: Options,
    *,
    on_result: Callable[[CaseResult], None] | None = None,
    profile: bool = True,
) -> AirsltRun:
    """Run every case and write metrics.csv, run.json, stages.png (and profile.html, by
    default when ``profile``). (The Python API's :func:`selo.airslt` calls it.)"""
    out = ensure_dir(options.out)
    (out / layout.METRICS_CSV).unlink(missing_ok=True)  # only a finished run has one
    record = {
        "command": "airslt",
        "status": "running",
        "images": str(options.images),
        "cases": len(cases),
        "annotations": layout.annotations_record(cases, options.anno),
        "method": run.build_method().describe(),
        "options": {"resume": options.resume, **run.describe()},
        "versions": versions(),
    }
    layout.write_record(out, record)
    started = time.perf_counter()
    with run_session(run, profile_html=run.profile_html(out, default=profile)) as ctx:
        record["encoder"] = describe_encoder(ctx)
        record["cluster"] = ctx.cluster.describe()
        results, skipped = run_cases(ctx, cases, options, on_result=on_result)
        stages = ctx.profiler.table()
        task_seconds = ctx.profiler.prefix_seconds()  # per-scene seconds for the report
    wall = time.perf_counter() - started
    csv_path = write_metrics_csv(out / layout.METRICS_CSV, results) if results else None
    record.update(
        status="complete",
        wall_seconds=wall,
        stages=stages,
        scored=len(results),
        skipped=[c.index for c in skipped],
        mean=mean_metrics(r.metrics for r in results).as_dict() if results else None,
    )
    record.update(run_details([r.case for r in results], options.images, task_seconds))
    layout.write_record(out, record)
    finish_run_folder(out, record)  # stages.png, scenes.png, report.html
    return AirsltRun(results, skipped, stages, wall, out, csv_path)
