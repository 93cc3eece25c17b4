"""SeLo on one scene for one or more queries (``selo localize``).

The scene is embedded once (or read from the cache) for all queries; the driver
gives each query's cells (Gnt) and lazy finished map (Flt); this module only
decides what to write:

    OUT/run.json                    inputs, versions, encoder, windows, stage table, and
                                    the seconds of each query's writers
    OUT/maps.zarr/qNN/mean          the mean map, exactly, as its cells (CellMap.from_zarr)
    OUT/maps.zarr/qNN/selo          the uint8 SeLo map (--zarr-map)
    OUT/qNN-<words>/windows.csv     r0,r1,c0,c1,scale,score (full precision)
    OUT/qNN-<words>/selo_map.png    lossless uint8 map, scene size
    OUT/qNN-<words>/selo_map.tif    GeoTIFF with the scene's CRS and transform
    OUT/qNN-<words>/overlay.png     downsampled scene with the heat map
    OUT/qNN-<words>/regions.geojson attention centres and high-score regions
    OUT/profile.html                Dask performance report (--profile)

Every file is written once, from the finished map computed once, each writer beside
the others. Memory is bounded by chunks: nothing holds the whole scene; the finished map
is held in memory up to 512 megapixels; a larger one is computed strip by strip and each
strip given to every writer that reads the map in order (the PNG, the attention centres,
the overlay's samples, an uncompressed spool file with the GeoTIFF's overviews), then the
Cloud-Optimized GeoTIFF is compressed from the spool file.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr

from ..errors import ParameterError
from ..pipeline.outputs import (
    MAP_CHUNK,
    SpooledMap,
    fan_out,
    maps_zarr,
    pixel_to_crs,
    png_rows,
    regions_from_map,
    spool_rows,
    write_geojson,
    write_geotiff,
    write_jpeg,
    write_maps_zarr,
    write_overlay,
    write_png,
    write_side_by_side,
    write_windows_csv,
    zarr_chunk_rows,
)
from ..pipeline.preview import (
    RowSampler,
    decimate,
    decimation_indices,
    preview_shape,
    read_preview,
)
from ..pipeline.scene import Grid, open_scene, scene_grid, scene_valid, source_info
from ..pipeline.source import inspect_source
from ..pipeline.store import atomic_path, atomic_write_text, ensure_dir
from .annotations import check_text
from .driver import QueryMap
from .metrics import CentreStream, attention_centres_lazy, ranked_centres
from .options import Options
from .session import RunContext, describe_encoder, run_session, versions

__all__ = [
    "QueryOutputs",
    "check_queries",
    "localize",
    "map_features",
    "query_folder",
    "warn_queries",
    "write_query_outputs",
]

log = logging.getLogger(__name__)

IN_MEMORY_PIXELS = 512_000_000  # finished maps up to this size (20k² and more) in memory
REGION_THRESHOLD = 128  # P >= 0.5, the rule for attention centres too
PREVIEW_SIDE = 2048


@dataclass(frozen=True)
class QueryOutputs:
    """The files written for one query, and the seconds each writer took (by file name)."""

    query: str
    folder: Path
    windows: int
    seconds: float
    writers: dict[str, float] = field(default_factory=dict)


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
            write_query_outputs(ctx, scene, i, qm, out, preview)
            for i, qm in enumerate(maps, start=1)
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
                {
                    "query": o.query,
                    "folder": str(o.folder),
                    "windows": o.windows,
                    "writers": {k: round(v, 4) for k, v in o.writers.items()},
                }
                for o in outputs
            ],
            stages=ctx.profiler.table(),
            wall_seconds=time.perf_counter() - started,
        )
    atomic_write_text(out / "run.json", json.dumps(record, indent=1, default=str))
    return record


def write_query_outputs(
    ctx: RunContext, scene: xr.DataArray, index: int, qm: QueryMap, out: Path, preview
) -> QueryOutputs:
    """One query's files, each written once from the finished map computed once, side by
    side: in memory up to ``IN_MEMORY_PIXELS``, else computed strip by strip for the
    writers that read it in order (:func:`_write_streamed`). ``preview()`` is the scene's
    (cached) overlay background. (``selo search --maps`` writes its scenes' maps with it
    too.)"""
    t0 = time.perf_counter()
    grid = scene_grid(scene)
    chunk = min(ctx.options.chunk, MAP_CHUNK)
    valid = scene_valid(scene)
    nodata = None if valid is None else 0
    selo = qm.selo(chunk, None if valid is None else valid.rechunk(chunk))
    heat_shape = preview_shape(grid.shape, PREVIEW_SIDE)  # the overlay's
    zarr_map = ctx.options.zarr_map
    name = f"q{index:02d}"
    i = qm.inputs
    final = query_folder(out, index, qm.query)
    # the query's files appear together, complete, or not at all
    with atomic_path(final, folder=True, what="query outputs") as folder:
        folder.mkdir()

        def csv() -> None:
            write_windows_csv(folder / "windows.csv", i.windows, i.scales, i.scores)

        if grid.height * grid.width > IN_MEMORY_PIXELS:
            zarr = (out / "maps.zarr", name, qm.mean)
            here = {"windows.csv": csv}  # beside the COG, in this thread (zarr)
            if not zarr_map:
                here["maps.zarr"] = lambda: write_maps_zarr(*zarr)
            writers = _write_streamed(
                ctx, selo, grid, nodata, folder, preview, heat_shape, zarr if zarr_map else None,
                here,
            )  # fmt: skip
        else:
            with ctx.profiler.stage("flt"):
                if ctx.cluster.client is None:  # dask's threads here: each block into place
                    finished = np.empty(selo.shape, selo.dtype)
                    da.store(selo, finished, lock=False)
                else:  # a cluster's blocks come back to this process, joined
                    finished = selo.compute()
            with ctx.profiler.stage("write"):
                heat = decimate(finished, heat_shape)
                jobs = {
                    "selo_map.tif": lambda: write_geotiff(
                        folder / "selo_map.tif", finished, like=grid, nodata=nodata
                    ),
                    "regions.geojson": lambda: write_geojson(
                        folder / "regions.geojson", map_features(finished, grid, heat=heat),
                        crs=grid.crs,
                    ),
                    "selo_map.png": lambda: write_png(folder / "selo_map.png", finished),
                    "overlay.png": lambda: write_overlay(folder / "overlay.png", preview(), heat),
                }  # fmt: skip
                if ctx.options.paper_compat:
                    jobs["selo_map.jpg"] = lambda: write_jpeg(folder / "selo_map.jpg", finished)
                # zarr only ever from this thread (zarr-python 3's synchronous calls were seen
                # to hang elsewhere)
                here = {
                    "windows.csv": csv,
                    "maps.zarr": lambda: write_maps_zarr(
                        out / "maps.zarr", name, qm.mean, finished if zarr_map else None
                    ),
                }
                writers = write_side_by_side(jobs, here=here)
    return QueryOutputs(qm.query, final, len(i.windows), time.perf_counter() - t0, writers)


def _write_streamed(
    ctx: RunContext, selo, grid: Grid, nodata, folder: Path, preview, heat_shape, zarr, here
) -> dict[str, float]:
    """The files of a map too large for memory. Flt computes it once, strip by strip, and
    each strip goes to every writer that reads the map in order, side by side
    (:func:`~selo.pipeline.outputs.fan_out`): the PNG, the attention centres, the overlay's
    samples, an uncompressed spool file with the GeoTIFF's overviews (and with ``zarr``,
    ``(root, name, mean)``, the uint8 map in maps.zarr). Then the COG is compressed from the
    spool file beside the overlay, the regions and the writers ``here`` (this thread's).
    The seconds of each writer."""
    spooled = SpooledMap(folder / ".selo_map.spool.tif", grid.shape)
    heat = RowSampler(
        decimation_indices(grid.height, heat_shape[0]),
        decimation_indices(grid.width, heat_shape[1]),
    )
    heat_rows: list[np.ndarray] = []
    centres = CentreStream(grid.shape, threads=os.cpu_count() or 1)
    try:
        with ctx.profiler.stage("flt"), ExitStack() as files:
            sinks = {
                "regions.geojson": lambda top, strip: centres.add(strip),
                "selo_map.tif": files.enter_context(
                    spool_rows(spooled.path, like=grid, nodata=nodata)
                ),
                "selo_map.png": files.enter_context(png_rows(folder / "selo_map.png", grid.shape)),
                "overlay.png": lambda top, strip: heat_rows.append(heat.add(top, strip)),
            }
            inline = {}
            if zarr is not None:
                inline["maps.zarr"] = files.enter_context(maps_zarr(*zarr, shape=grid.shape))
            rows = 512 if zarr is None else zarr_chunk_rows(grid.shape)
            writers = fan_out(selo, rows, sinks, here=inline)
        with ctx.profiler.stage("write"):
            small = np.concatenate(heat_rows)

            def regions() -> None:
                candidates = centres.candidates()
                values = dict(zip(candidates, spooled.pixels(candidates), strict=True))
                points = ranked_centres(candidates, lambda x, y: values[x, y])
                features = _point_features(points, [values[p] for p in points], grid)
                features += regions_from_map(small, grid, threshold=REGION_THRESHOLD)
                write_geojson(folder / "regions.geojson", features, crs=grid.crs)

            jobs = {
                "selo_map.tif": lambda: write_geotiff(
                    folder / "selo_map.tif", spooled, like=grid, nodata=nodata
                ),
                "overlay.png": lambda: write_overlay(folder / "overlay.png", preview(), small),
                "regions.geojson": regions,
            }
            if ctx.options.paper_compat:  # the published code's JPEG needs the whole map
                jobs["selo_map.jpg"] = lambda: write_jpeg(
                    folder / "selo_map.jpg", spooled.rows(0, grid.height)
                )
            writers = _add(writers, write_side_by_side(jobs, here=here))
    finally:
        spooled.delete()
    return writers


def _add(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in [*a, *(k for k in b if k not in a)]}


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
    """Attention centres as ranked point features, exact at any map size: strip by strip
    (from the array or the spooled file; memory of a few strips, and less CPU than
    filtering the whole map at once), the filters on every core."""
    points = attention_centres_lazy(selo, threads=os.cpu_count() or 1)
    if isinstance(selo, np.ndarray):
        values = [int(selo[y, x]) for x, y in points]
    else:
        values = selo.pixels(points)
    return _point_features(points, values, grid)


def _point_features(points: list[tuple[int, int]], values: list[int], grid: Grid) -> list[dict]:
    """The ranked centres (x, y) as GeoJSON points with their map values."""
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
