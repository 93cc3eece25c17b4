"""SeLo on one scene for one or more queries (``selo localize``).

The scene is embedded once (or read from the cache) for all queries; the driver
gives each query's cells (Gnt) and lazy finished map (Flt); this module only
decides what to write:

    OUT/run.json                    inputs, versions, encoder, windows, stage table
    OUT/maps.zarr/qNN/mean          the mean map, exactly, as its cells (CellMap.from_zarr)
    OUT/maps.zarr/qNN/selo          the uint8 SeLo map
    OUT/qNN-<words>/windows.csv     r0,r1,c0,c1,scale,score (full precision)
    OUT/qNN-<words>/selo_map.png    lossless uint8 map, scene size
    OUT/qNN-<words>/selo_map.tif    GeoTIFF with the scene's CRS and transform
    OUT/qNN-<words>/overlay.png     downsampled scene with the heat map
    OUT/qNN-<words>/regions.geojson attention centres and high-score regions
    OUT/profile.html                Dask performance report (--profile)

Memory is bounded by chunks: nothing holds the whole scene; the finished map is held
in memory up to 512 megapixels, larger ones are spooled once to an uncompressed file
that every writer reads (attention centres then chunk by chunk, exactly).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import ParameterError
from ..pipeline.outputs import (
    MAP_CHUNK,
    pixel_to_crs,
    regions_from_map,
    spool,
    write_geojson,
    write_geotiff,
    write_jpeg,
    write_maps_zarr,
    write_overlay,
    write_png,
    write_windows_csv,
)
from ..pipeline.preview import decimate, preview_shape, read_preview
from ..pipeline.scene import Grid, open_scene, scene_grid, scene_valid, source_info
from ..pipeline.source import inspect_source
from ..pipeline.store import atomic_path, atomic_write_text, ensure_dir
from .annotations import check_text
from .driver import QueryMap
from .metrics import attention_centres, attention_centres_lazy
from .options import Options
from .session import RunContext, describe_encoder, run_session, versions

__all__ = [
    "QueryOutputs",
    "check_queries",
    "localize",
    "map_features",
    "query_folder",
    "warn_queries",
]

log = logging.getLogger(__name__)

IN_MEMORY_PIXELS = 512_000_000  # finished maps up to this size (20k² and more) in memory
# attention centres of maps up to this size filtered whole (fastest; transient buffers of a
# few times the map), of larger ones block by block (memory of a few blocks)
WHOLE_CENTRES_PIXELS = 128_000_000
REGION_THRESHOLD = 128  # P >= 0.5, the rule for attention centres too
PREVIEW_SIDE = 2048


@dataclass(frozen=True)
class QueryOutputs:
    """The files written for one query."""

    query: str
    folder: Path
    windows: int
    seconds: float


def query_folder(out: Path, index: int, query: str) -> Path:
    """``OUT/qNN-first-words-of-the-query`` (at most 40 characters of words)."""
    words = re.sub(r"[^a-z0-9]+", "-", query.lower()).strip("-")[:40].rstrip("-") or "query"
    return out / f"q{index:02d}-{words}"


def check_queries(queries) -> tuple[str, ...]:
    """The sentences, stripped; an empty list or an empty sentence is a ParameterError."""
    if isinstance(queries, str):
        queries = (queries,)
    out = tuple(q.strip() if isinstance(q, str) else q for q in queries)
    if not out or any(not isinstance(q, str) or not q for q in out):
        raise ParameterError("every --query must be a non-empty sentence")
    for q in out:
        check_text(q, where=f"--query {q[:40]!r}", error=ParameterError)
    return out


def warn_queries(encoder, queries: tuple[str, ...]) -> None:
    """Log the encoder's advice about each sentence (e.g. ``color`` finding no colour word)."""
    for q in queries:
        warning = encoder.check_query(q)
        if warning:
            log.warning("query %r: %s", q, warning)


def localize(
    scene_path: str | os.PathLike,
    queries: tuple[str, ...],
    out: Path,
    options: Options,
    *,
    bands: tuple[int, int, int] | tuple[str, str, str] | None = None,
    asset: str | None = None,
) -> dict:
    """Run SeLo on one scene (a path, a URL or a STAC item) for every query; returns the
    run record (also in run.json). (The Python API's :func:`selo.localize_files`, which
    ``selo localize`` calls.)"""
    queries = check_queries(queries)
    scene_path = os.fspath(scene_path)
    inspect_source(scene_path, bands=bands, asset=asset)  # before any cluster starts
    out = ensure_dir(out)
    started = time.perf_counter()
    record: dict = {
        "command": "localize",
        "status": "running",
        "scene": str(scene_path),
        "queries": list(queries),
    }
    atomic_write_text(out / "run.json", json.dumps(record, indent=1))
    profile_html = options.profile_html(out, default=False)
    with run_session(options, one_scene=True, profile_html=profile_html) as ctx:
        warn_queries(ctx.encoder, queries)
        with ctx.profiler.stage("cut"):
            scene = open_scene(
                scene_path, bands=bands, asset=asset, chunk=options.chunk, cache=ctx.cache
            )
            table = ctx.driver.table(scene)
        if scene.rio.crs is None:
            log.info("%s has no CRS: GeoTIFF and GeoJSON outputs use pixel coordinates", scene_path)
        embedded = ctx.driver.embed([(scene, table)], what="windows", preview_side=PREVIEW_SIDE)[0]
        log.info(
            "%d windows %s",
            len(table),
            "from the embedding cache" if embedded.cached else "embedded",
        )
        # made by Cut from the pixels it reads (or kept in the cache from an earlier run)
        preview = functools.cache(
            lambda: (
                embedded.preview
                if embedded.preview is not None
                else read_preview(scene, PREVIEW_SIDE, cache=ctx.cache)
            )
        )
        maps = ctx.driver.query_maps([(embedded, q) for q in queries])
        outputs = [
            _write_query(ctx, scene, i, qm, out, preview) for i, qm in enumerate(maps, start=1)
        ]
        record.update(
            status="complete",
            scene_info=source_info(scene),
            encoder=describe_encoder(ctx),
            method=ctx.method.describe(),
            options=options.describe(),
            windows=len(table),
            windows_cached=embedded.cached,
            cluster=ctx.cluster.describe(),
            versions=versions(),
            outputs=[
                {"query": o.query, "folder": str(o.folder), "windows": o.windows} for o in outputs
            ],
            stages=ctx.profiler.table(),
            wall_seconds=time.perf_counter() - started,
        )
    atomic_write_text(out / "run.json", json.dumps(record, indent=1, default=str))
    return record


def _write_query(
    ctx: RunContext, scene: xr.DataArray, index: int, qm: QueryMap, out: Path, preview
) -> QueryOutputs:
    """One query's files, all from the finished map computed once: in memory up to
    ``IN_MEMORY_PIXELS``, else spooled once to an uncompressed file. ``preview()`` is the
    scene's (cached) overlay background."""
    t0 = time.perf_counter()
    grid = scene_grid(scene)
    chunk = min(ctx.options.chunk, MAP_CHUNK)
    valid = scene_valid(scene)
    nodata = None if valid is None else 0
    selo = qm.selo(chunk, None if valid is None else valid.rechunk(chunk))
    final = query_folder(out, index, qm.query)
    # the query's files appear together, complete, or not at all
    with atomic_path(final, folder=True, what="query outputs") as folder:
        folder.mkdir()
        spooled = folder / ".selo_map.spool.tif"
        with ctx.profiler.stage("flt"):
            if grid.height * grid.width <= IN_MEMORY_PIXELS:
                finished = selo.compute()
            else:
                finished = spool(spooled, selo, like=grid, nodata=nodata)
        with ctx.profiler.stage("write"):
            heat = decimate(finished, preview().shape[:2])

            def regions() -> None:  # the centres on the full map, regions on the heat map
                features = map_features(finished, grid, heat=heat)
                write_geojson(folder / "regions.geojson", features, crs=grid.crs)

            # a map in memory: the centres beside the other files; a spooled one (too
            # large for memory): after them, so that memory holds one job's blocks at a time
            in_memory = isinstance(finished, np.ndarray)
            jobs = [
                lambda: write_geotiff(folder / "selo_map.tif", finished, like=grid, nodata=nodata),
                lambda: write_png(folder / "selo_map.png", finished),
                lambda: write_overlay(folder / "overlay.png", preview(), heat),
                *([regions] if in_memory else []),
            ]
            if ctx.options.paper_compat:
                whole = finished if in_memory else finished.rows(0, grid.height)
                jobs.append(lambda: write_jpeg(folder / "selo_map.jpg", whole))
            i = qm.inputs
            # compression and I/O in C (GIL released): side by side; zarr only ever from
            # this thread (zarr-python 3's synchronous calls were seen to hang elsewhere)
            with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
                running = [pool.submit(j) for j in jobs]
                write_windows_csv(folder / "windows.csv", i.windows, i.scales, i.scores)
                write_maps_zarr(out / "maps.zarr", f"q{index:02d}", qm.mean, finished)
                for job in running:
                    job.result()
            if not in_memory:
                regions()
            spooled.unlink(missing_ok=True)
    return QueryOutputs(qm.query, final, len(qm.inputs.windows), time.perf_counter() - t0)


def map_features(finished, grid: Grid, *, heat: np.ndarray | None = None) -> list[dict]:
    """The features of ``regions.geojson``: the ranked attention centres (points, exact at
    any map size), then the regions where the map is at least 128 (polygons, strongest
    first), in the scene's CRS.

    ``heat`` is the finished map decimated to the overlay's shape (computed when not given):
    regions are traced on it."""
    if heat is None:
        heat = decimate(finished, preview_shape(grid.shape, PREVIEW_SIDE))
    features = _centre_features(finished, grid)
    return features + regions_from_map(heat, grid, threshold=REGION_THRESHOLD)


def _centre_features(selo, grid: Grid) -> list[dict]:
    """Attention centres as ranked point features, exact at any map size, on every core: of
    a map in memory up to ``WHOLE_CENTRES_PIXELS`` filtered whole, else block by block
    (blocks read with their halos, from the array or the spooled file; the same
    arithmetic)."""
    threads = os.cpu_count() or 1
    if isinstance(selo, np.ndarray):
        if selo.size <= WHOLE_CENTRES_PIXELS:
            points = attention_centres(selo, threads=threads)
        else:
            points = attention_centres_lazy(selo, threads=threads)
        values = [int(selo[y, x]) for x, y in points]
    else:
        points = attention_centres_lazy(selo)
        values = [int(selo.window(y, y + 1, x, x + 1)[0, 0]) for x, y in points]
    features = []
    for rank, ((x, y), value) in enumerate(zip(points, values, strict=True), start=1):
        cx, cy = pixel_to_crs(grid, y, x)
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [float(cx), float(cy)]},
                "properties": {
                    "kind": "centre",
                    "rank": rank,
                    "score": int(value) / 255,
                    "row": y,
                    "col": x,
                    "exact": True,
                },
            }
        )
    return features
