"""SeLo on one scene for one or more queries (``selo localize``).

The scene is embedded once (or read from the cache) for all queries; each
query's map is built on the cell grid (Gnt), finished chunk by chunk (Flt)
into ``maps.zarr``, then written out:

    OUT/run.json                    inputs, versions, encoder, windows, stage table
    OUT/maps.zarr/qNN/mean          the mean map, exactly, as its cells (CellMap.from_zarr)
    OUT/maps.zarr/qNN/selo          the uint8 SeLo map
    OUT/qNN-<words>/windows.csv     r0,r1,c0,c1,scale,score (full precision)
    OUT/qNN-<words>/selo_map.png    lossless uint8 map, scene size
    OUT/qNN-<words>/selo_map.tif    GeoTIFF with the scene's CRS and transform
    OUT/qNN-<words>/overlay.png     downsampled scene with the heat map
    OUT/qNN-<words>/regions.geojson attention centres and high-score regions
    OUT/profile.html                Dask performance report (--profile)

Memory is bounded by chunks: nothing holds the whole scene or map, except
the attention centres of maps up to 100 megapixels (the metrics' exact rule
on the full map); larger maps use a decimated map with scaled filter sizes.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np

from selo.errors import ParameterError
from selo.pipeline.accumulate import CellMap, expand_lazy
from selo.pipeline.outputs import (
    decimate,
    pixel_to_crs,
    png_from_geotiff,
    regions_from_map,
    write_geojson,
    write_geotiff,
    write_overlay,
)
from selo.pipeline.raster import Scene, inspect_scene, open_scene, read_preview
from selo.pipeline.store import atomic_path, atomic_write_text, ensure_dir
from selo.selo_tasks.airslt import write_windows_csv
from selo.selo_tasks.methods import MapInputs, Method
from selo.selo_tasks.metrics import attention_centres
from selo.selo_tasks.runner import (
    RunContext,
    cell_maps,
    describe_encoder,
    embed_scenes,
    query_contributions,
    warn_if_clamped,
)
from selo.selo_tasks.session import SessionOptions, run_session, versions

__all__ = ["LocalizeOptions", "QueryOutputs", "localize", "query_folder"]

log = logging.getLogger(__name__)

FULL_MAP_PIXELS = 100_000_000  # attention centres on the full map up to this size
REGION_THRESHOLD = 128  # P >= 0.5, the rule for attention centres too
PREVIEW_SIDE = 2048
MAP_CHUNK = 2048  # maps are small per pixel; smaller chunks filter in parallel sooner
ZARR_ROW_BYTES = 256 * 2**20  # at most this much of a map in the client while storing it


@dataclass(frozen=True)
class LocalizeOptions:
    """What ``selo localize`` does besides the session and the method."""

    scene: Path
    queries: tuple[str, ...]
    out: Path
    bands: tuple[int, int, int] | None = None
    paper_compat: bool = False


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


def localize(options: LocalizeOptions, method: Method, session: SessionOptions) -> dict:
    """Run SeLo on one scene for every query; returns the run record (also in run.json)."""
    queries = tuple(q.strip() for q in options.queries)
    if not queries or any(not q for q in queries):
        raise ParameterError("every --query must be a non-empty sentence")
    inspect_scene(options.scene)  # a bad scene fails before any cluster starts
    out = ensure_dir(options.out)
    started = time.perf_counter()
    record: dict = {
        "command": "localize",
        "status": "running",
        "scene": str(options.scene),
        "queries": list(queries),
    }
    atomic_write_text(out / "run.json", json.dumps(record, indent=1))
    with run_session(session) as ctx:
        for q in queries:
            warning = ctx.encoder.check_query(q)
            if warning:
                log.warning("query %r: %s", q, warning)
        with ctx.profiler.stage("cut"):
            scene = open_scene(
                options.scene,
                bands=options.bands,
                chunk=ctx.chunk,
                stage_dir=ctx.cache.root / "staged",
            )
            table = method.scene_windows(*scene.info.shape)
        warn_if_clamped(options.scene, table)
        if scene.info.crs is None:
            log.info(
                "%s has no CRS: GeoTIFF and GeoJSON outputs use pixel coordinates", options.scene
            )
        embedded = embed_scenes(ctx, [(scene, table)], what="windows")[0]
        log.info(
            "%d windows %s",
            len(table),
            "from the embedding cache" if embedded.cached else "embedded",
        )
        preview = functools.cache(lambda: read_preview(scene, PREVIEW_SIDE))  # once per scene
        all_inputs = query_contributions(ctx, method, [(embedded, q) for q in queries])
        outputs = [
            _one_query(ctx, method, embedded, i, q, inputs, out, options.paper_compat, preview)
            for i, (q, inputs) in enumerate(zip(queries, all_inputs, strict=True), start=1)
        ]
        stages = ctx.profiler.table()
        record.update(
            status="complete",
            scene_info={
                "height": scene.info.height,
                "width": scene.info.width,
                "bands": list(scene.bands),
                "dtype": scene.info.dtype,
                "crs": scene.info.crs,
                "driver": scene.info.driver,
                "nodata": scene.info.nodata,
            },
            encoder=describe_encoder(ctx),
            method=method.describe(),
            windows=len(table),
            windows_cached=embedded.cached,
            cluster=ctx.cluster.describe(),
            versions=versions(),
            outputs=[
                {"query": o.query, "folder": str(o.folder), "windows": o.windows} for o in outputs
            ],
            stages=stages,
            wall_seconds=time.perf_counter() - started,
        )
    atomic_write_text(out / "run.json", json.dumps(record, indent=1, default=str))
    return record


def _one_query(
    ctx: RunContext,
    method: Method,
    embedded,
    index: int,
    query: str,
    inputs: MapInputs,
    out: Path,
    paper_compat: bool,
    preview,
) -> QueryOutputs:
    """One query's maps and files; ``preview()`` is the scene's (cached) overlay background."""
    t0 = time.perf_counter()
    scene: Scene = embedded.scene
    info = scene.info
    with ctx.profiler.stage("gnt"):
        cells = cell_maps(info.height, info.width, inputs, uncovered_counts=method.uncovered_counts)
    chunk = min(ctx.chunk, MAP_CHUNK)
    valid = None if scene.valid is None else scene.valid.data.rechunk(chunk)
    selo = method.finish(expand_lazy(cells.u8, chunk))
    if valid is not None:
        selo = da.where(valid, selo, np.uint8(0))
    folder = ensure_dir(query_folder(out, index, query))
    with ctx.profiler.stage("flt"):  # the filter runs on the cluster as the GeoTIFF is written
        tif = write_geotiff(
            folder / "selo_map.tif",
            selo,
            like=info,
            nodata=None if valid is None else 0,
            nodata_mask=None if valid is None else ~valid,
        )
    finished = _open_map(tif, chunk)  # later outputs read the finished map, not the filter
    with ctx.profiler.stage("write"):

        def overlay_and_regions() -> None:
            heat = decimate(finished, preview().shape[:2])
            write_overlay(folder / "overlay.png", preview(), heat)
            features = _centre_features(finished, heat, scene)
            features += regions_from_map(heat, info, threshold=REGION_THRESHOLD)
            write_geojson(folder / "regions.geojson", features, crs=info.crs)

        jobs = [lambda: png_from_geotiff(tif, folder / "selo_map.png"), overlay_and_regions]
        if paper_compat:
            jobs.append(lambda: _write_jpeg_roundtrip(folder / "selo_map.jpg", finished))
        write_windows_csv(folder / "windows.csv", inputs)
        # compression and I/O in C (GIL released): side by side
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            for job in [pool.submit(j) for j in jobs]:
                job.result()
        _store_maps(out / "maps.zarr", f"q{index:02d}", cells.mean, finished)
    return QueryOutputs(query, folder, len(inputs.windows), time.perf_counter() - t0)


def _open_map(path: Path, chunk: int) -> da.Array:
    """A written one-band map as a lazy dask array (read through GDAL, chunk by chunk)."""
    import rioxarray

    return rioxarray.open_rasterio(path, chunks={"y": chunk, "x": chunk}, lock=False).data[0]


def _store_maps(root: Path, name: str, mean: CellMap, selo: da.Array) -> Path:
    """The mean map (exactly, as its cells) and the SeLo map into ``root/name`` (atomically).

    The SeLo map is computed row of blocks by row of blocks on the cluster and
    written from this thread, at most ``ZARR_ROW_BYTES`` at a time: zarr is only
    ever used from the client thread (zarr-python 3's synchronous calls were
    seen to hang in Dask worker threads).
    """
    import zarr

    if not (root / "zarr.json").exists():
        ensure_dir(root)
        zarr.open_group(str(root), mode="a")
    with atomic_path(root / name, folder=True, what="maps") as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        mean.to_zarr(group.create_group("mean"))
        height, width = selo.shape
        rows = int(max(1, min(MAP_CHUNK, ZARR_ROW_BYTES // width)))
        z = group.create_array("selo", shape=selo.shape, dtype=selo.dtype, chunks=(rows, MAP_CHUNK))
        for top in range(0, height, rows):
            z[top : top + rows] = selo[top : top + rows].compute()
    return root / name


def _write_jpeg_roundtrip(path: Path, selo: da.Array) -> None:
    """The published code's JPEG copy of the map (lossy; for comparisons only)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.asarray(selo))
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def _centre_features(selo: da.Array, heat: np.ndarray, scene: Scene) -> list[dict]:
    """Attention centres as point features (exact on maps up to 100 MP, else approximate)."""
    h, w = scene.info.shape
    if h * w <= FULL_MAP_PIXELS:
        full = np.asarray(selo)
        points = attention_centres(full)
        values = [int(full[y, x]) for x, y in points]
        exact = True
    else:
        fy, fx = h / heat.shape[0], w / heat.shape[1]
        scale = (fy + fx) / 2
        small = attention_centres(
            heat, box=max(1, round(50 / scale)), max_size=max(1, round(1000 / scale))
        )
        values = [int(heat[y, x]) for x, y in small]
        points = [
            (min(w - 1, int((x + 0.5) * fx)), min(h - 1, int((y + 0.5) * fy))) for x, y in small
        ]
        exact = False
    features = []
    for rank, ((x, y), value) in enumerate(zip(points, values, strict=True), start=1):
        cx, cy = pixel_to_crs(scene.info, y, x)
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [float(cx), float(cy)]},
                "properties": {
                    "kind": "centre",
                    "rank": rank,
                    "score": value / 255,
                    "row": y,
                    "col": x,
                    "exact": exact,
                },
            }
        )
    return features
