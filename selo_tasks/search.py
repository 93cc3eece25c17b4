"""Collection search (``selo search``, ``selo.search``): sentences over many scenes, the best
regions of all of them ranked together by raw similarity.

1. The SCENES arguments become sources (:func:`~selo.pipeline.source.collection_sources`:
   files, folders, globs, URLs, STAC items and collections)
   and each is opened; scenes that cannot be opened are listed in one error (or, with
   ``skip_bad``, left out and said), and so is a scene named twice (the same file, or
   the same content under another name).
2. Every scene is embedded once — from the embedding cache, else on the run's cluster
   (encoder tasks on GPU workers where there are some), a few scenes at a time — and
   appended to the collection's index (:mod:`~selo.pipeline.index`), which the cache
   keeps for the next search of the same scenes.
3. Each sentence is one query vector; the index ranks the regions of every scene
   (:mod:`~selo.pipeline.regions`) by their peak mean cosine: the raw mean map, never the
   per-scene normalised SeLo map (which makes every scene's best spot 255).

:func:`open_collection` and :meth:`Collection.search` are what a server needs (an index
opened once, hits with their geometry in scene pixels, the scene's CRS and EPSG:4326);
:func:`run_search` adds the files (all or none, into ``out``)::

    hits.geojson   the hits in EPSG:4326 (RFC 7946); scene-CRS and pixel coordinates as
                   properties; hits in scenes without a CRS have no geometry
    hits.parquet   the same table as GeoParquet
    hits.html      a gallery: each hit's crop under its mean map, region and centre
                   (:mod:`~selo.selo_tasks.report.search_page`)
    maps/sNNNN-<scene>/qNN-<words>/   with ``maps``: the full SeLo maps of the top scenes
                   of each sentence (the files of ``selo localize``)
    run.json       inputs, index, encoder, hits per sentence, timings
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import xarray as xr

from ..errors import CollectionError, MissingDependencyError, ParameterError, SeloError
from ..pipeline.cache import EmbeddingKey
from ..pipeline.index import (
    FORMAT,
    CollectionIndex,
    IndexDamagedError,
    IndexHit,
    IndexWriter,
    SceneCells,
    check_mode,
    choose_mode,
)
from ..pipeline.picture import blend_overlay, encode_image
from ..pipeline.preview import decimation_indices, preview_shape, read_crop, read_preview
from ..pipeline.regions import region_outline
from ..pipeline.remote import is_remote
from ..pipeline.scene import Grid, open_scene, scene_grid
from ..pipeline.source import SceneRef, collection_sources
from ..pipeline.store import atomic_path, ensure_dir, staged_outputs
from ..pipeline.windows import WindowTable
from .localize import PREVIEW_SIDE, check_queries, query_folder, write_query_outputs
from .options import DEFAULT_TOP, Options
from .report.drawing import draw_marks
from .run_folder import RUN_JSON
from .session import RunContext, describe_encoder, run_session, versions

__all__ = [
    "DEFAULT_TOP",
    "Collection",
    "CollectionScene",
    "Hit",
    "hit_rows",
    "hits_frame",
    "open_collection",
    "run_search",
]

log = logging.getLogger(__name__)

EMBED_BYTES = 256 * 2**20  # embeddings held at once while indexing (scenes embedded together)
THUMB_SIDE = 320
SHOWN_PROBLEMS = 10  # scenes named in one error line
_LONLAT = "EPSG:4326"
_JPEG = (cv2.IMWRITE_JPEG_QUALITY, 85)


@dataclass(frozen=True)
class CollectionScene:
    """A scene of the collection: its number (1 = the first given), source and grid."""

    number: int
    source: SceneRef  # its name, and where it is (a path, a URL, a STAC item)
    grid: Grid

    @property
    def label(self) -> str:
        """How outputs name the scene: its path or URL."""
        return self.source.location

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def folder_name(self) -> str:
        """``sNNNN-<name without suffix>``: the scene's folder under ``maps/``."""
        stem = os.path.splitext(os.path.basename(self.source.name))[0] or "scene"
        return f"s{self.number:04d}-{stem}"


@dataclass(frozen=True, eq=False)
class Hit:
    """One ranked region of the collection for one sentence, with its geometry.

    Pixel coordinates are those of the scene: x = column, y = row, at pixel edges, origin
    at the scene's top-left corner."""

    query: str
    query_number: int  # 1 = the first sentence
    rank: int
    score: float  # the region's peak mean cosine
    scene: CollectionScene
    found: IndexHit

    @property
    def cells(self) -> SceneCells:
        return self.found.cells

    @functools.cached_property
    def peak_px(self) -> tuple[int, int, int, int]:
        """The peak cell's pixels (r0, r1, c0, c1)."""
        (i, j), c = self.found.region.peak, self.cells
        return (int(c.row_edges[i]), int(c.row_edges[i + 1]), int(c.col_edges[j]),
                int(c.col_edges[j + 1]))  # fmt: skip

    @property
    def centre_px(self) -> tuple[float, float]:
        """The attention centre (x, y): the centre of the peak cell."""
        r0, r1, c0, c1 = self.peak_px
        return ((c0 + c1) / 2, (r0 + r1) / 2)

    @functools.cached_property
    def polygons_px(self) -> list[list[list[tuple[float, float]]]]:
        """The region's outline: polygons of rings of (x, y) points."""
        c = self.cells
        return region_outline(self.found.region.cells, c.row_edges, c.col_edges)

    @property
    def bbox_px(self) -> tuple[int, int, int, int]:
        """The region's pixels (r0, r1, c0, c1)."""
        rows, cols = np.nonzero(self.found.region.cells)
        c = self.cells
        return (int(c.row_edges[rows.min()]), int(c.row_edges[rows.max() + 1]),
                int(c.col_edges[cols.min()]), int(c.col_edges[cols.max() + 1]))  # fmt: skip

    @property
    def area_px(self) -> int:
        c, cells = self.cells, self.found.region.cells
        heights, widths = np.diff(c.row_edges), np.diff(c.col_edges)
        return int((heights[:, None] * widths[None, :])[cells].sum())

    @property
    def georeferenced(self) -> bool:
        return self.scene.grid.crs is not None

    def geometry_px(self):
        """The region as a shapely (Multi)Polygon in scene pixels."""
        from shapely.geometry import MultiPolygon, Polygon

        parts = [Polygon(rings[0], rings[1:]) for rings in self.polygons_px]
        return parts[0] if len(parts) == 1 else MultiPolygon(parts)

    def geometry_crs(self):
        """The region in the scene's CRS (None without one)."""
        if not self.georeferenced:
            return None
        import shapely

        t = self.scene.grid.transform
        matrix = np.array([[t.a, t.d], [t.b, t.e]])
        return shapely.transform(self.geometry_px(), lambda xy: xy @ matrix + (t.c, t.f))

    def geometry_lonlat(self):
        """The region in EPSG:4326, exterior rings counter-clockwise (None without a CRS)."""
        if not self.georeferenced:
            return None
        import rasterio.warp
        import shapely
        from shapely.geometry import mapping, shape

        warped = rasterio.warp.transform_geom(
            self.scene.grid.crs, _LONLAT, mapping(self.geometry_crs())
        )
        return shapely.orient_polygons(shape(warped))

    def centre_crs(self) -> tuple[float, float] | None:
        """The attention centre in the scene's CRS (None without one)."""
        if not self.georeferenced:
            return None
        x, y = self.scene.grid.transform * self.centre_px
        return (float(x), float(y))

    def centre_lonlat(self) -> tuple[float, float] | None:
        """The attention centre in EPSG:4326, (longitude, latitude) (None without a CRS)."""
        if not self.georeferenced:
            return None
        import rasterio.warp

        x, y = self.centre_crs()
        (lon,), (lat,) = rasterio.warp.transform(self.scene.grid.crs, _LONLAT, [x], [y])
        return (float(lon), float(lat))


@dataclass(eq=False)
class Collection:
    """An opened, indexed collection (see :func:`open_collection`); close it when done."""

    ctx: RunContext
    scenes: list[CollectionScene]
    index: CollectionIndex
    mode: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    built: bool = False
    info: dict = field(default_factory=dict)

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.index.close()

    def search(
        self, queries: str | Sequence[str], *, top: int = DEFAULT_TOP, stats: dict | None = None
    ) -> list[Hit]:
        """The ``top`` best regions of the collection for each sentence: a list, sentence
        after sentence, each ranked from 1."""
        queries = check_queries(queries)
        _check_top(top)
        vectors = np.stack([self.ctx.method.query_vector(self.ctx.encoder, q) for q in queries])
        found = self.index.search(vectors, top=top, mode=self.mode, stats=stats)
        return [
            Hit(queries[h.query], h.query + 1, h.rank, h.score, self.scenes[h.scene], h)
            for per_query in found
            for h in per_query
        ]

    def open(self, scene: CollectionScene) -> xr.DataArray:
        """The scene's pixels (opened again: the collection keeps no open scene)."""
        return open_scene(scene.source, chunk=self.ctx.options.chunk, cache=self.ctx.cache)


def open_collection(
    ctx: RunContext,
    items: Sequence[str | os.PathLike],
    *,
    skip_bad: bool = False,
    mode: str = "auto",
    report: Callable[[str], object] = log.info,
) -> Collection:
    """The collection of the scenes ``items`` name, embedded and indexed (see the module).

    ``mode``: ``exact``, ``int8`` or ``auto`` (exact up to
    :data:`~selo.pipeline.index.EXACT_MAX_WINDOWS` windows). Problems are CollectionErrors
    naming every scene concerned; with ``skip_bad`` such scenes are left out and listed
    in :attr:`Collection.skipped`."""
    check_mode(mode)
    started = time.perf_counter()
    sources = collection_sources(items)
    if not sources:
        shown = ", ".join(map(str, items)) or "nothing"
        raise CollectionError(
            f"{_clip(shown)}: no scenes found; name scene files, folders or globs"
        )
    opened, problems = _open_all(ctx, sources)
    if problems and not skip_bad:
        raise CollectionError(_problem_line(problems, len(sources)))
    if not opened:
        raise CollectionError(f"no scene left to search: {_problem_line(problems, len(sources))}")
    keys = [key.id for _, _, _, key in opened]
    ident = hashlib.sha256(json.dumps([FORMAT, keys]).encode()).hexdigest()[:24]
    folder = ctx.cache.index_folder(ident)
    index, built = None, False
    try:
        index = CollectionIndex(folder, verify=True)
    except IndexDamagedError as e:
        if folder.exists():
            log.warning("collection index %s; building it again", e)
    if index is None:
        windows = sum(len(table) for _, _, table, _ in opened)
        _build(ctx, folder, opened, skip_bad, choose_mode(mode, windows), report, problems)
        index, built = CollectionIndex(folder), True
    ctx.cache.used_index(ident)
    number = {id(s): n for n, s in enumerate(sources, start=1)}
    source_of = {key.id: source for source, _, _, key in opened}
    try:
        index.check_encoder(ctx.encoder.version)
        # scenes left out when the index was built (named as they are named now)
        skipped = [
            (source_of[key].location if key in source_of else key, reason)
            for key, reason in index.record.get("skipped", [])
        ]
        if skipped and not skip_bad:
            raise CollectionError(_problem_line([*problems, *skipped], len(sources)))
        if problems or skipped:  # one line for all of them
            left_out = _problem_line([*problems, *skipped], len(sources), skipped=True)
            log.warning("%s", left_out)
        chosen = choose_mode(mode, index.rows)
        if chosen == "int8" and not index.open_int8(verify=not built):
            index.add_int8()
    except BaseException:
        index.close()
        raise
    scenes = [
        CollectionScene(number[id(source_of[s.key])], source_of[s.key], s.grid)
        for s in index.scenes
    ]
    how = "built" if built else "from the cache"
    report(
        f"{len(scenes)} scene(s), {index.rows} windows with data; index {how} ({chosen}) "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return Collection(
        ctx,
        scenes,
        index,
        chosen,
        skipped=[*problems, *skipped],
        built=built,
        info={"folder": str(folder), "seconds": time.perf_counter() - started},
    )


Opened = tuple[Path, xr.DataArray, WindowTable, EmbeddingKey]


def _open_all(
    ctx: RunContext, sources: list[SceneRef]
) -> tuple[list[Opened], list[tuple[str, str]]]:
    """Open every source (JPEG/PNG staged in parallel): (usable scenes, problems), with the
    same file or the same content named twice among the problems."""
    problems: list[tuple[str, str]] = []
    first_place: dict[tuple, SceneRef] = {}
    unique: list[SceneRef] = []
    for source in sources:
        place = (_place(source.location), source.name if source.item is not None else None)
        if place in first_place:
            also = first_place[place].location
            problems.append((source.location, f"named twice (also as {also})"))
        else:
            first_place[place] = source
            unique.append(source)

    def open_one(source: SceneRef) -> tuple[Opened | None, str | None]:
        try:
            scene = open_scene(source, chunk=ctx.options.chunk, cache=ctx.cache)
            table = ctx.method.scene_windows(int(scene.sizes["y"]), int(scene.sizes["x"]))
            return (source, scene, table, ctx.driver.key(scene, table, ctx.cache)), None
        except SeloError as e:
            return None, _reason(e, source)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(open_one, unique))
    clamped = [item[2].clamped for item, _ in results if item is not None and item[2].clamped]
    if clamped:  # one line for the collection (the driver says it per scene)
        sizes = ", ".join(map(str, sorted(set().union(*clamped))))
        log.warning(
            "%d scene(s) are smaller than window size(s) %s; those windows cover the whole scene",
            len(clamped),
            sizes,
        )
    opened: list[Opened] = []
    first_key: dict[str, SceneRef] = {}
    for source, (item, reason) in zip(unique, results, strict=True):
        if item is None:
            problems.append((source.location, reason))
        elif item[3].id in first_key:
            also = first_key[item[3].id].location
            problems.append((source.location, f"the same scene as {also}"))
        else:
            first_key[item[3].id] = source
            opened.append(item)
    order = {s.location: i for i, s in enumerate(sources)}
    problems.sort(key=lambda p: order.get(p[0], 0))
    return opened, problems


def _place(location: str) -> str:
    """Where a source is, the same for every name of one local file."""
    if is_remote(location):
        return location
    try:
        return os.path.realpath(location)
    except (OSError, ValueError):
        return location


def _reason(error: SeloError, source: SceneRef) -> str:
    """The error's message without the scene's path or URL in front (the line names it)."""
    text = str(error)
    location = source.location
    resolved = location if is_remote(location) else str(Path(location).resolve())
    for prefix in (f"{location}: ", f"{resolved}: "):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def _problem_line(problems: Sequence[tuple[str, str]], total: int, *, skipped: bool = False) -> str:
    """One line naming the scenes that cannot be searched (at most SHOWN_PROBLEMS) and why."""
    shown = "; ".join(f"{source}: {reason}" for source, reason in problems[:SHOWN_PROBLEMS])
    more = f"; and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
    if skipped:
        return f"skipped {len(problems)} of {total} scene(s) (--skip-bad): {shown}{more}"
    return (
        f"{len(problems)} of {total} scene(s) cannot be searched: {shown}{more} "
        "(fix or remove them, or pass --skip-bad to search the others)"
    )


def _clip(text: str, most: int = 200) -> str:
    return text if len(text) <= most else text[: most - 3] + "..."


def _build(
    ctx: RunContext,
    folder: Path,
    opened: list[Opened],
    skip_bad: bool,
    mode: str,
    report: Callable[[str], object],
    problems: Sequence[tuple[str, str]] = (),
) -> None:
    """Embed the scenes (a group at a time) into a new index folder, atomically
    (``problems``: the scenes already left out, for the error when none is left)."""
    enc = ctx.encoder
    skipped: list[tuple[str, str]] = []
    with atomic_path(folder, folder=True, what="collection index") as tmp:
        writer = IndexWriter(
            tmp,
            width=enc.embed_dim,
            encoder=enc.version,
            preprocess=ctx.driver.cut.key,
            int8=mode == "int8",
        )
        with writer:
            for group in _groups(opened, enc.embed_dim):
                for item, embedded in _embed_group(ctx, group, skip_bad, skipped, len(opened)):
                    source, _, table, key = item
                    try:
                        writer.add(
                            source.location,
                            key.id,
                            scene_grid(item[1]),
                            table.windows,
                            embedded.has_data,
                            embedded.embeddings,
                            encoder=key.encoder,
                            preprocess=key.preprocess,
                        )
                    except CollectionError as e:
                        if not skip_bad:
                            raise
                        skipped.append((key.id, _reason(e, source)))
            if len(skipped) == len(opened):
                named = {key.id: source.location for source, _, _, key in opened}
                every = [*problems, *((named[k], reason) for k, reason in skipped)]
                total = len(opened) + len(problems)
                raise CollectionError(f"no scene left to search: {_problem_line(every, total)}")
            writer.extra["skipped"] = skipped  # (embedding key, reason)
    report(f"collection index written to {folder}")


def _groups(opened: list[Opened], width: int) -> Iterator[list[Opened]]:
    """Consecutive scenes whose embeddings fit :data:`EMBED_BYTES` together."""
    group: list[Opened] = []
    size = 0
    for item in opened:
        need = len(item[2]) * width * 4
        if group and size + need > EMBED_BYTES:
            yield group
            group, size = [], 0
        group.append(item)
        size += need
    if group:
        yield group


def _embed_group(ctx: RunContext, group: list[Opened], skip_bad: bool, skipped: list, total: int):
    """(scene, embedded) of each scene of the group; with ``skip_bad`` a scene whose
    pixels fail is left out (in ``skipped``: (embedding key, reason)), the group embedded
    again scene by scene to find it."""
    try:
        done = ctx.driver.embed(
            [(s, t) for _, s, t, _ in group],
            what=f"{len(group)} scene(s) of {total}",
            require_data=False,
        )
    except SeloError as e:
        if not skip_bad:
            raise
        if len(group) == 1:
            skipped.append((group[0][3].id, _reason(e, group[0][0])))
            return
    else:
        yield from zip(group, done, strict=True)
        return
    for item in group:
        try:
            (embedded,) = ctx.driver.embed(
                [(item[1], item[2])], what=item[0].name, require_data=False
            )
        except SeloError as e:
            skipped.append((item[3].id, _reason(e, item[0])))
            continue
        yield item, embedded


def _check_top(top: object) -> None:
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 100_000:
        raise ParameterError(f"--top must be a whole number from 1 to 100000, got {top!r}")


# --- the table of hits --------------------------------------------------------------------------


COLUMNS = (
    "query", "query_number", "rank", "score", "scene", "scene_number", "row", "col", "x_px",
    "y_px", "crs", "x", "y", "lon", "lat", "coordinates", "area_px", "polygon_px",
    "polygon_crs", "serve", "geometry",
)  # fmt: skip
"""The columns of hits.parquet (and, but ``geometry``, the properties of hits.geojson)."""


def serve_link(query: str, rank: int) -> str:
    """Where a hit opens in ``selo serve`` of the same scenes: ``/#q=SENTENCE&hit=RANK``
    (the page searches the sentence and opens that hit; app.js reads it)."""
    from urllib.parse import quote

    return f"/#q={quote(query, safe='')}&hit={rank}"


def hit_rows(hits: Sequence[Hit]) -> list[dict]:
    """One dict per hit, :data:`COLUMNS` (``geometry``: the region in EPSG:4326 as a
    shapely geometry, None in a scene without a CRS). ``x``, ``y``: the attention centre
    in the scene's CRS; ``x_px``, ``y_px``: in scene pixels; ``row``, ``col``: the pixel
    it falls in; ``polygon_px``, ``polygon_crs``: the region as WKT; ``serve``: the hit's
    place in ``selo serve`` of the same scenes (:func:`serve_link`)."""
    from shapely import to_wkt

    rows = []
    for h in hits:
        x_px, y_px = h.centre_px
        crs_centre, lonlat = h.centre_crs(), h.centre_lonlat()
        polygon_crs = h.geometry_crs()
        values = {
            "query": h.query,
            "query_number": h.query_number,
            "rank": h.rank,
            "score": h.score,
            "scene": h.scene.label,
            "scene_number": h.scene.number,
            "row": int(y_px),
            "col": int(x_px),
            "x_px": x_px,
            "y_px": y_px,
            "crs": h.scene.grid.crs,
            "x": crs_centre[0] if crs_centre else None,
            "y": crs_centre[1] if crs_centre else None,
            "lon": lonlat[0] if lonlat else None,
            "lat": lonlat[1] if lonlat else None,
            "coordinates": _LONLAT if h.georeferenced else "pixel (the scene has no CRS)",
            "area_px": h.area_px,
            "polygon_px": to_wkt(h.geometry_px(), rounding_precision=-1),
            "polygon_crs": None
            if polygon_crs is None
            else to_wkt(polygon_crs, rounding_precision=-1),
            "serve": serve_link(h.query, h.rank),
            "geometry": h.geometry_lonlat(),
        }
        rows.append({c: values[c] for c in COLUMNS})
    return rows


def hits_frame(hits: Sequence[Hit]):
    """The hits as a GeoDataFrame in EPSG:4326, one row per hit (:func:`hit_rows`)."""
    return _frame(hit_rows(hits))


def _frame(rows: Sequence[dict]):
    gpd = _geopandas()
    columns = {c: [r[c] for r in rows] for c in COLUMNS if c != "geometry"}
    return gpd.GeoDataFrame(columns, geometry=[r["geometry"] for r in rows], crs=_LONLAT)


def _geopandas():
    try:
        import geopandas
    except ImportError as e:
        raise MissingDependencyError(
            f"selo search writes GeoParquet through geopandas ({e.name} is missing): "
            "pip install 'selo[search]'"
        ) from None
    return geopandas


def geojson_text(rows: Sequence[dict]) -> str:
    """hits.geojson: an RFC 7946 FeatureCollection (EPSG:4326)."""
    from shapely.geometry import mapping

    features = []
    for r in rows:
        geometry = r["geometry"]
        features.append(
            {
                "type": "Feature",
                "geometry": None if geometry is None else mapping(geometry),
                "properties": {k: v for k, v in r.items() if k != "geometry"},
            }
        )
    collection: dict = {"type": "FeatureCollection", "features": features}
    pixel_only = sum(1 for r in rows if r["geometry"] is None)
    if pixel_only:
        collection["selo:note"] = (
            f"{pixel_only} hit(s) lie in scenes without a CRS: no geometry; their region "
            "and centre are in scene pixels (polygon_px, x_px, y_px: x = column, y = row)"
        )
    return json.dumps(collection)


# --- the command --------------------------------------------------------------------------------


def run_search(
    items: Sequence[str | os.PathLike],
    queries: str | Sequence[str],
    options: Options,
    *,
    out: str | os.PathLike | None = None,
    top: int = DEFAULT_TOP,
    maps: int = 0,
    skip_bad: bool = False,
    mode: str = "auto",
    report: Callable[[str], object] = log.info,
):
    """Search the collection ``items`` for each sentence; with ``out`` also write the files
    (see the module). Returns the hits as a GeoDataFrame (:func:`hits_frame`)."""
    started = time.perf_counter()
    queries = check_queries(queries)
    _check_top(top)
    if isinstance(maps, bool) or not isinstance(maps, int) or maps < 0:
        raise ParameterError(f"--maps must be a whole number from 0, got {maps!r}")
    _geopandas()
    if out is not None:
        ensure_dir(out)  # an unusable output folder fails before any work
    # local threads unless a cluster option asks for one: a cached collection starts nothing
    with run_session(options, one_scene=True) as ctx:
        for q in queries:
            warning = ctx.encoder.check_query(q)
            if warning:
                log.warning("query %r: %s", q, warning)
        with open_collection(ctx, items, skip_bad=skip_bad, mode=mode, report=report) as coll:
            t0 = time.perf_counter()
            stats: dict = {}
            hits = coll.search(queries, top=top, stats=stats)
            seconds = time.perf_counter() - t0
            report(f"{len(queries)} sentence(s) searched in {seconds:.2f} s")
            rows = hit_rows(hits)
            frame = _frame(rows)
            if out is not None:
                record = {
                    "command": "search",
                    "status": "complete",
                    "queries": list(queries),
                    "top": top,
                    "scenes": len(coll.scenes),
                    "skipped": [list(s) for s in coll.skipped],
                    "index": {
                        "mode": coll.mode,
                        "windows": coll.index.rows,
                        "built": coll.built,
                        "folder": coll.info["folder"],
                        "open_seconds": coll.info["seconds"],
                        "search_seconds": seconds,
                        **stats,
                    },
                    "hits": {q: sum(1 for h in hits if h.query == q) for q in queries},
                    "encoder": describe_encoder(ctx),
                    "method": ctx.method.describe(),
                    "options": options.describe(),
                    "cluster": ctx.cluster.describe(),
                    "versions": versions(),
                }
                _write(Path(out), coll, hits, rows, frame, record, maps, started)
    return frame


def _write(out: Path, coll: Collection, hits, rows, frame, record: dict, maps: int, started):
    from .report.search_page import write_hits_html

    with staged_outputs(out, last=RUN_JSON, stale=("maps",)) as stage:
        (stage / "hits.geojson").write_text(geojson_text(rows))
        frame.to_parquet(stage / "hits.parquet")
        written = _write_maps(coll, hits, stage, maps) if maps else {}
        cards = _cards(coll, hits, written)
        write_hits_html(stage, record, cards)
        record["maps"] = [str(Path("maps") / p) for p in sorted(set(written.values()))]
        record["wall_seconds"] = time.perf_counter() - started
        (stage / RUN_JSON).write_text(json.dumps(record, indent=1, default=str))


def _write_maps(coll: Collection, hits: list[Hit], stage: Path, n: int) -> dict:
    """The full SeLo maps of the top ``n`` scenes of each sentence, as ``selo localize``
    writes them; {(query number, scene number): folder relative to maps/}."""
    ctx = coll.ctx
    written: dict[tuple[int, int], Path] = {}
    chosen: dict[int, list[Hit]] = {}
    for h in hits:
        picks = chosen.setdefault(h.query_number, [])
        if len(picks) < n and all(p.scene.number != h.scene.number for p in picks):
            picks.append(h)
    for picks in chosen.values():
        for h in picks:
            scene = coll.open(h.scene)
            table = ctx.driver.table(scene)
            embedded = ctx.driver.embed([(scene, table)], what=h.scene.name)[0]
            qm = ctx.driver.query_maps([(embedded, h.query)])[0]
            folder = stage / "maps" / h.scene.folder_name
            preview = functools.cache(
                lambda s=scene: read_preview(s, PREVIEW_SIDE, cache=ctx.cache)
            )
            write_query_outputs(ctx, scene, h.query_number, qm, folder, preview)
            relative = Path(h.scene.folder_name) / query_folder(Path(), h.query_number, h.query)
            written[(h.query_number, h.scene.number)] = relative
    return written


# --- the gallery's pictures ----------------------------------------------------------------------


def crop_window(hit: Hit) -> tuple[int, int, int, int]:
    """The pixels (r0, r1, c0, c1) a hit's thumbnail shows: a square around its region's
    centre, half as large again as the region's box and at least 256 pixels a side,
    moved (and cut) to fit in the scene."""
    r0, r1, c0, c1 = hit.bbox_px
    side = max(256, r1 - r0, c1 - c0) * 3 // 2

    def span(centre: int, extent: int) -> tuple[int, int]:
        length = min(side, extent)
        start = min(max(0, centre - length // 2), extent - length)
        return start, start + length

    g = hit.scene.grid
    return (*span((r0 + r1) // 2, g.height), *span((c0 + c1) // 2, g.width))


def thumbnail(hit: Hit, pixels: np.ndarray, window, scale: tuple[float, float]) -> bytes:
    """A hit's thumbnail (JPEG): the crop under its mean map (JET, from ``scale`` = (lo, hi)
    mean cosine), its region outlined, its attention centre marked."""
    r0, r1, c0, c1 = window
    cells = hit.cells
    rows = r0 + decimation_indices(r1 - r0, pixels.shape[0])
    cols = c0 + decimation_indices(c1 - c0, pixels.shape[1])
    ri = np.searchsorted(cells.row_edges, rows, side="right") - 1
    ci = np.searchsorted(cells.col_edges, cols, side="right") - 1
    mean = cells.mean[ri][:, ci]
    lo, hi = scale
    with np.errstate(invalid="ignore"):
        level = np.clip((mean - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    heat = np.where(np.isfinite(mean), np.floor(255 * level), 0).astype(np.uint8)
    picture = blend_overlay(pixels, heat)
    outlines = [
        np.asarray(ring, dtype=np.float64) - (c0, r0) for rings in hit.polygons_px for ring in rings
    ]
    x, y = hit.centre_px
    factor = (pixels.shape[0] / (r1 - r0), pixels.shape[1] / (c1 - c0))
    marked = draw_marks(picture, factor, outlines=outlines, hits=[(x - c0, y - r0)])
    return encode_image(marked, ".jpg", _JPEG)


def _cards(coll: Collection, hits: list[Hit], written: dict) -> list[dict]:
    """What the gallery shows of each hit (hits.html)."""
    from .report.search_page import data_uri

    scales = {}
    for h in hits:
        lo, hi = scales.get(h.query_number, (np.inf, -np.inf))
        scales[h.query_number] = (min(lo, h.found.region.background), max(hi, h.score))
    opened: dict[int, xr.DataArray] = {}
    cards = []
    for h in hits:
        if h.scene.number not in opened:
            opened[h.scene.number] = coll.open(h.scene)
        window = crop_window(h)
        shape = preview_shape((window[1] - window[0], window[3] - window[2]), THUMB_SIDE)
        pixels = read_crop(opened[h.scene.number], window, shape)
        lonlat = h.centre_lonlat()
        where = (
            f"{lonlat[1]:.5f}, {lonlat[0]:.5f}"
            if lonlat
            else f"row {int(h.centre_px[1])}, col {int(h.centre_px[0])} (no CRS)"
        )
        folder = written.get((h.query_number, h.scene.number))
        cards.append(
            {
                "query": h.query,
                "query_number": h.query_number,
                "rank": h.rank,
                "score": h.score,
                "scene": h.scene.label,
                "scene_name": h.scene.name,
                "where": where,
                "area_px": h.area_px,
                "thumbnail": data_uri(thumbnail(h, pixels, window, scales[h.query_number]),
                                      "image/jpeg"),
                "scale": scales[h.query_number],
                "maps": None if folder is None else str(Path("maps") / folder),
                "serve": serve_link(h.query, h.rank),
            }
        )  # fmt: skip
    return cards
