"""What ``selo serve`` holds: the served scenes, their sentences and a bounded map cache.

Scenes (``selo serve SCENE ...``) are embedded once, one after another, in a background
thread (or read from the embedding cache); the page and the terminal show the progress.
A sentence on a scene gets an id (a hash of a per-process salt, the scene and the
sentence: URLs carry ids, never paths or sentences) and, when first asked for, its
:class:`MapEntry`: the driver's :class:`~selo.selo_tasks.driver.QueryMap` (cells) and the
finished uint8 map, computed once on a small pool of threads and kept in a
:class:`MapLRU` bounded in bytes. Requests for a map being computed wait for that one
computation. Driver calls (embedding, query maps) run one at a time under one lock:
encoders are not thread-safe in general (so while one scene is embedded, sentences on
the others wait for it).

Memory: the map entries, at most ``cache_bytes`` (``--map-cache``, 1 GiB by default: a
10,000² scene's map is 100 MB, so ten of them), plus the maps being computed (two at a
time: each its H × W bytes and its dask blocks), plus per scene its window embeddings and
a preview of at most 2048² RGB pixels (12 MB). A scene whose one map exceeds the cache
is refused at start.

A collection (``selo serve SCENES...`` naming several scenes, a folder, a glob, a URL
prefix or a STAC collection) is embedded and indexed before the server starts
(:func:`~selo.selo_tasks.search.open_collection`); a sentence then ranks the regions of
every scene (:meth:`ServeState.search`), and each scene answers sentences as above, its
embeddings read from the cache when a map is asked for (none are held). Georeferenced
scenes are also drawn on Web Mercator (:mod:`~selo.selo_tasks.serve.mercator`).

A run folder (``selo serve RUN_DIR``) serves the maps ``selo airslt`` wrote, one per
case, with the case's annotation polygons and metrics; it needs no encoder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
from affine import Affine

from ...errors import (
    InputNotFoundError,
    MapError,
    ParameterError,
    SceneNotReadyError,
    SeloError,
    UnknownIdError,
)
from ...pipeline.cache import Cache
from ...pipeline.outputs import MAP_CHUNK, write_geojson, write_geotiff
from ...pipeline.remote import is_remote
from ...pipeline.scene import Grid, open_scene, scene_grid, scene_valid
from ...pipeline.source import SceneRef, locate_scenes
from .. import run_folder as layout
from ..driver import Embedded, QueryMap
from ..localize import check_queries, map_features, query_folder
from ..metrics import INDICATORS, RMI, Indicator
from . import DEFAULT_MAP_CACHE_MIB
from .mercator import Placement, place
from .tiles import SceneTiles, TileGrid

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "MAX_SENTENCE_CHARS",
    "MAX_TOP",
    "MapEntry",
    "MapLRU",
    "ServeState",
    "ServedScene",
]

log = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = DEFAULT_MAP_CACHE_MIB * 2**20
MAX_SENTENCE_CHARS = 1000  # whatever the encoder reads
MAX_HISTORY = 1000  # sentences remembered per scene (the oldest forgotten first)
COMPUTE_THREADS = 2  # maps computed at once: memory in flight is at most two maps
MAX_TOP = 1000  # hits one collection search returns
MAX_SEARCHES = 100  # collection searches remembered (the oldest forgotten first)
COLLECTION_PREVIEW_SIDE = 512  # a collection's scenes: small previews (0.75 MB each)


@dataclass(eq=False)
class MapEntry:
    """One computed map: the finished uint8 map and, for a sentence, its cells."""

    sentence: str
    finished: np.ndarray
    seconds: float
    query_map: QueryMap | None = None
    annotations: list[dict] = field(default_factory=list)  # run folders: the case's polygons
    _features: list[dict] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def nbytes(self) -> int:
        n = self.finished.nbytes
        if self.query_map is not None:
            i, qm = self.query_map.inputs, self.query_map
            n += i.windows.nbytes + i.scales.nbytes + i.scores.nbytes
            n += qm.mean.values.nbytes + qm.u8.values.nbytes + 2 * qm.mean.covered.nbytes
        return n

    def features(self, grid: Grid) -> list[dict]:
        """The features of ``regions.geojson`` (computed once), then any annotation polygons."""
        with self._lock:
            if self._features is None:
                self._features = map_features(self.finished, grid) + self.annotations
            return self._features


class MapLRU:
    """Map entries by key, least recently used dropped first once their bytes exceed
    ``max_bytes`` (the newest entry is always kept). Thread-safe."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if max_bytes < 1:
            raise ParameterError(f"the map cache needs a positive size, got {max_bytes} bytes")
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str], MapEntry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> MapEntry | None:
        with self._lock:
            entry = self._items.get(key)
            if entry is not None:
                self._items.move_to_end(key)
            return entry

    def put(self, key: tuple[str, str], entry: MapEntry) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._items[key] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= dropped.nbytes

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._items


@dataclass(eq=False)
class MapSpec:
    """A map the server can give: its sentence and how to compute it (plus, for run
    folders, the case's metrics)."""

    id: str
    sentence: str
    compute: Callable[[], MapEntry]
    info: dict = field(default_factory=dict)


@dataclass(eq=False)
class ServedScene:
    """One scene on the page: its pixels (None when a run folder's image is missing),
    grid, embedding status and the maps asked for."""

    id: str
    name: str
    grid: Grid
    scene: xr.DataArray | None = None
    tiles: SceneTiles | None = None
    status: str = "ready"  # waiting, embedding, ready, error
    progress: dict = field(default_factory=lambda: {"what": "", "done": 0, "total": 0})
    error: str | None = None
    embedded: Embedded | None = None
    maps: OrderedDict[str, MapSpec] = field(default_factory=OrderedDict)
    placement: Placement | None = None  # where it lies on Web Mercator (collections)

    @property
    def tile_grid(self) -> TileGrid:
        return TileGrid(self.grid.height, self.grid.width)

    def describe(self) -> dict:
        g = self.grid
        return {
            "id": self.id,
            "name": self.name,
            "height": g.height,
            "width": g.width,
            "crs": g.crs,
            "transform": list(g.transform)[:6],
            "zmax": self.tile_grid.zmax,
            "has_pixels": self.tiles is not None,
            "mercator": None if self.placement is None else self.placement.describe(),
            "status": self.status,
            "progress": dict(self.progress),
            "error": self.error,
        }


class ServeState:
    """The served scenes (or run folder cases), their maps and the computation rules."""

    def __init__(
        self,
        *,
        mode: str,
        ctx=None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        report: Callable[[str], object] | None = None,
    ) -> None:
        self.mode = mode  # "scenes", "collection" or "run"
        self.ctx = ctx  # the RunContext of scene and collection mode (driver, encoder, cache)
        self.collection = None  # collection mode: the opened Collection (search.py)
        self._searches: OrderedDict[tuple[str, int], dict] = OrderedDict()
        self.scenes: dict[str, ServedScene] = {}
        self.maps = MapLRU(cache_bytes)
        self.report = report or log.info  # one line per scene embedded and per map computed
        self.run_info: dict = {}
        self.version = secrets.token_hex(8)  # in ids and URLs: new with every server
        self._pool = ThreadPoolExecutor(COMPUTE_THREADS, thread_name_prefix="selo-map")
        self._inflight: dict[tuple[str, str], Future] = {}
        self._lock = threading.Lock()  # the scenes' map lists and the in-flight table
        self.driver_lock = threading.Lock()
        self._embedder: threading.Thread | None = None

    # --- scene mode -------------------------------------------------------------------------

    @classmethod
    def for_scenes(cls, ctx, paths, *, cache_bytes: int = DEFAULT_CACHE_BYTES, report=None):
        """A server of scenes (files, URLs, STAC items): opened now, embedded by
        :meth:`start_embedding`."""
        state = cls(mode="scenes", ctx=ctx, cache_bytes=cache_bytes, report=report)
        for i, location in enumerate(paths, start=1):
            location = os.fspath(location)
            if not is_remote(location) and not os.path.isfile(location):
                raise InputNotFoundError(f"{location}: scene not found")
            scene = open_scene(location, chunk=ctx.options.chunk, cache=ctx.cache)
            name = location.rstrip("/").rsplit("/", 1)[-1] or location
            state._add(ServedScene(f"s{i}", name, scene_grid(scene), scene, SceneTiles(scene)))
        for s in state.scenes.values():
            s.status = "waiting"
        return state

    @classmethod
    def for_collection(
        cls,
        ctx,
        items,
        *,
        skip_bad: bool = False,
        index: str = "auto",
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        report=None,
    ):
        """A server of a collection (files, folders, globs, URLs, STAC collections, as
        ``selo search`` takes them): embedded and indexed now, every scene ready."""
        from ..search import open_collection

        state = cls(mode="collection", ctx=ctx, cache_bytes=cache_bytes, report=report)
        collection = open_collection(ctx, items, skip_bad=skip_bad, mode=index, report=state.report)
        state.collection = collection
        try:
            for member in collection.scenes:
                scene = collection.open(member)
                tiles = SceneTiles(scene, preview_side=COLLECTION_PREVIEW_SIDE, cache=ctx.cache)
                grid = scene_grid(scene)
                served = ServedScene(
                    member_id(member.number), member.name, grid, scene, tiles, placement=place(grid)
                )
                state._add(served)
        except BaseException:
            collection.close()
            raise
        return state

    @property
    def placed(self) -> list[ServedScene]:
        """The scenes drawn on Web Mercator (collection mode), in the collection's order."""
        return [s for s in self.scenes.values() if s.placement is not None]

    def mercator_zoom(self) -> int:
        """The deepest zoom of the Web Mercator tiles: the scenes' deepest native zoom."""
        placed = self.placed
        if not placed:
            raise UnknownIdError("this server has no georeferenced scenes to draw on a map")
        return max(s.placement.zoom for s in placed)

    def search(self, sentence: str, top: int) -> dict:
        """The ``top`` best regions of the collection for ``sentence``: rank, score, scene
        id and the region and its centre in scene pixels and lon/lat (:func:`hit_record`)."""
        if self.collection is None:
            raise SceneNotReadyError(
                "this server shows one scene or a run folder; a collection search needs "
                "`selo serve SCENES...` of several scenes"
            )
        if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= MAX_TOP:
            raise ParameterError(f"top must be a whole number from 1 to {MAX_TOP}, got {top!r}")
        key = (sentence, top)
        with self._lock:
            found = self._searches.get(key)
            if found is not None:
                self._searches.move_to_end(key)
                return found
        t0 = time.perf_counter()
        with self.driver_lock:  # the encoder embeds the sentence: one at a time
            hits = self.collection.search(sentence, top=top)
        records = [hit_record(h, self.scenes[member_id(h.scene.number)]) for h in hits]
        found = {
            "sentence": sentence,
            "top": top,
            "scenes": len(self.scenes),
            "hits": records,
            "seconds": round(time.perf_counter() - t0, 4),
        }
        with self._lock:
            self._searches[key] = found
            while len(self._searches) > MAX_SEARCHES:
                self._searches.popitem(last=False)
        return found

    def _add(self, served: ServedScene) -> None:
        need = served.grid.height * served.grid.width
        if need > self.maps.max_bytes:
            raise ParameterError(
                f"{served.name}: one map of {served.grid.height}x{served.grid.width} needs "
                f"{need / 2**20:.0f} MiB, more than the map cache holds "
                f"({self.maps.max_bytes / 2**20:.0f} MiB); raise --map-cache"
            )
        self.scenes[served.id] = served

    def start_embedding(self) -> threading.Thread:
        """Embed every scene in a background thread, one after another."""
        self._embedder = threading.Thread(target=self._embed_all, name="selo-embed", daemon=True)
        self._embedder.start()
        return self._embedder

    def wait_embedded(self, timeout: float | None = None) -> None:
        if self._embedder is not None:
            self._embedder.join(timeout)

    def _embed_all(self) -> None:
        driver = self.ctx.driver
        for served in self.scenes.values():
            served.status = "embedding"
            try:
                with self.driver_lock, self._tracked(served):
                    table = driver.table(served.scene)
                    served.embedded = driver.embed([(served.scene, table)], what=served.name)[0]
                served.status = "ready"
                how = "from the embedding cache" if served.embedded.cached else "embedded"
                self.report(f"{served.name}: {len(table)} windows {how}; ready")
            except Exception as e:  # noqa: BLE001 - shown in the page and the terminal
                served.status, served.error = "error", str(e)
                self.report(f"{served.name}: cannot embed the scene: {e}")

    @contextmanager
    def _tracked(self, served: ServedScene) -> Iterator[None]:
        """Route the executor's progress to ``served.progress`` too (and the terminal bar)."""
        executor = self.ctx.driver.executor
        outer = executor.progress

        @contextmanager
        def progress(what: str, total: int):
            served.progress = {"what": what, "done": 0, "total": total}
            with outer(what, total) if outer else nullcontext(None) as advance_outer:

                def advance(n: int = 1) -> None:
                    served.progress["done"] += n
                    if advance_outer:
                        advance_outer(n)

                yield advance

        executor.progress = progress
        try:
            yield
        finally:
            executor.progress = outer

    def check_sentence(self, text: object) -> str:
        """The sentence, stripped; ParameterError when empty, too long or not text."""
        if not isinstance(text, str):
            raise ParameterError("the sentence must be a JSON string")
        if len(text) > MAX_SENTENCE_CHARS:
            raise ParameterError(
                f"the sentence has {len(text)} characters; at most {MAX_SENTENCE_CHARS}"
            )
        try:
            (sentence,) = check_queries((text,))
        except ParameterError:
            raise ParameterError("the sentence is empty; type what to look for") from None
        reason = self.ctx.encoder.too_long(sentence) if self.ctx is not None else None
        if reason:
            raise ParameterError(f"the sentence is too long: {reason}")
        return sentence

    def warning(self, sentence: str) -> str | None:
        """The encoder's advice on ``sentence`` (e.g. no colour word for ``color``)."""
        return self.ctx.encoder.check_query(sentence) if self.ctx is not None else None

    def add_sentence(self, scene_id: str, sentence: str) -> MapSpec:
        """The map spec of ``sentence`` on a ready scene (remembered in its history)."""
        served = self.scene(scene_id)
        if self.mode == "run":
            raise SceneNotReadyError(
                "this server shows a run folder's maps; new sentences need `selo serve SCENE`"
            )
        if served.status != "ready":
            raise SceneNotReadyError(f"{served.name} is {served.status}; try again when ready")
        digest = hashlib.sha256(f"{self.version}|{scene_id}|{sentence}".encode()).hexdigest()
        map_id = "m" + digest[:15]
        with self._lock:
            spec = served.maps.get(map_id)
            if spec is None:
                spec = MapSpec(map_id, sentence, lambda: self._compute(served, sentence))
                served.maps[map_id] = spec
                while len(served.maps) > MAX_HISTORY:
                    served.maps.popitem(last=False)
            else:
                served.maps.move_to_end(map_id)
        return spec

    def _compute(self, served: ServedScene, sentence: str) -> MapEntry:
        t0 = time.perf_counter()
        with self.driver_lock:
            embedded = served.embedded
            if embedded is None:  # a collection's scene: its embeddings from the cache
                driver = self.ctx.driver
                table = driver.table(served.scene)
                embedded = driver.embed([(served.scene, table)], what=served.name)[0]
            qm = self.ctx.driver.query_maps([(embedded, sentence)])[0]
        chunk = min(self.ctx.options.chunk, MAP_CHUNK)
        valid = scene_valid(served.scene)
        finished = qm.selo(chunk, None if valid is None else valid.rechunk(chunk)).compute()
        return MapEntry(sentence, finished, time.perf_counter() - t0, query_map=qm)

    # --- run folder mode --------------------------------------------------------------------

    @classmethod
    def for_run(
        cls,
        run_dir,
        *,
        anno=None,
        images=None,
        cache: Cache | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        report=None,
    ):
        """A server of an ``airslt`` run folder: its cases' maps, polygons (from the run's
        annotation file, or ``anno`` when it holds the same cases) and metrics."""
        run_dir = Path(run_dir)
        record = layout.read_record(run_dir)
        state = cls(mode="run", cache_bytes=cache_bytes, report=report)
        images = str(images) if images else (record.get("images") or str(run_dir / "images"))
        folders = layout.case_folders(run_dir)
        if not folders:
            shown = f"{layout.CASE_DIRS}/{layout.CASE_RECORD}"
            raise InputNotFoundError(f"{run_dir}: no finished case ({shown})")
        cases = {c.index: c for c in layout.run_annotations(run_dir, anno)[1]}
        records = [_read_json(folder / layout.CASE_RECORD) for folder in folders]
        try:
            refs = locate_scenes(images, [str(data.get("image")) for data in records])
        except SeloError as e:
            log.warning("%s; showing the maps alone (see --images)", e)
            refs = {}
        by_image: dict[str, ServedScene] = {}
        for folder, data in zip(folders, records, strict=True):
            index, image, query = int(data["case"]), str(data["image"]), str(data["query"])
            png = folder / layout.SELO_MAP
            if not png.is_file():
                log.warning("%s: no %s; case %d left out", folder, layout.SELO_MAP, index)
                continue
            served = by_image.get(image)
            if served is None:
                served = _run_scene(f"s{len(by_image) + 1}", image, refs.get(image), png, cache)
                by_image[image] = served
                state._add(served)
            case = cases.get(index)
            polygons = []
            if case is not None and (case.image, case.query.strip()) == (image, query.strip()):
                polygons = _annotation_features(case, served.grid)
            elif case is not None:
                log.warning("case %d: the annotations name another scene or query", index)
            info = {
                "case": index,
                "image": image,
                "metrics": data.get("metrics", {}),
                "annotated": bool(polygons),
            }
            served.maps[f"case-{index:02d}"] = MapSpec(
                f"case-{index:02d}", query, _png_loader(png, query, polygons), info
            )
        state.run_info = {
            "folder": str(run_dir),
            "images": images,
            "mean": record.get("mean"),
            "method": record.get("method"),
            "encoder": record.get("encoder"),
            # how the page shows the metrics: the indicator table, and the one in the list
            "indicators": [_indicator(i) for i in INDICATORS],
            "summary": _indicator(RMI),
        }
        return state

    # --- maps -------------------------------------------------------------------------------

    def scene(self, scene_id: str) -> ServedScene:
        served = self.scenes.get(scene_id)
        if served is None:
            raise UnknownIdError(f"no scene {scene_id!r}; this server has {', '.join(self.scenes)}")
        return served

    def spec(self, scene_id: str, map_id: str) -> MapSpec:
        served = self.scene(scene_id)
        with self._lock:
            spec = served.maps.get(map_id)
        if spec is None:
            raise UnknownIdError(
                f"no map {map_id!r} on scene {scene_id!r}; ask for a sentence first"
            )
        return spec

    def map_future(self, scene_id: str, map_id: str) -> Future:
        """A future of the map's entry: done at once when cached; one computation per map."""
        key = (scene_id, map_id)
        entry = self.maps.get(key)
        if entry is not None:
            done: Future = Future()
            done.set_result(entry)
            return done
        spec = self.spec(scene_id, map_id)
        with self._lock:
            future = self._inflight.get(key)
            if future is None:
                future = self._pool.submit(self._run, key, spec)
                self._inflight[key] = future
        return future

    def map(self, scene_id: str, map_id: str) -> MapEntry:
        """The map's entry, computed now if needed (blocking)."""
        return self.map_future(scene_id, map_id).result()

    def _run(self, key: tuple[str, str], spec: MapSpec) -> MapEntry:
        try:
            entry = self.maps.get(key)
            if entry is None:
                entry = spec.compute()
                self.maps.put(key, entry)
                name = self.scenes[key[0]].name
                self.report(f"{name}: {entry.sentence!r} in {entry.seconds:.2f} s")
            return entry
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def describe_map(self, scene_id: str, spec: MapSpec, entry: MapEntry | None = None) -> dict:
        out = {"id": spec.id, "sentence": spec.sentence, **spec.info}
        if entry is not None:
            out["seconds"] = round(entry.seconds, 4)
            if entry.query_map is not None:
                out["windows"] = len(entry.query_map.inputs.windows)
        base = f"/api/scenes/{scene_id}/maps/{spec.id}"
        out["tiles"] = base + "/tiles/{z}/{x}/{y}.png"
        if self.scene(scene_id).placement is not None:
            out["mercator_tiles"] = base + "/mercator/{z}/{x}/{y}.png"
        out["geotiff"] = base + "/selo_map.tif"
        out["geojson"] = base + "/regions.geojson"
        out["file_stem"] = query_folder(Path(), 0, spec.sentence).name.removeprefix("q00-")
        return out

    def history(self, scene_id: str) -> list[dict]:
        served = self.scene(scene_id)
        with self._lock:
            specs = list(served.maps.values())
        return [self.describe_map(scene_id, s) for s in specs]

    def geotiff(self, scene_id: str, map_id: str) -> bytes:
        """The map as ``selo localize`` writes ``selo_map.tif`` (COG, the scene's CRS)."""
        served = self.scene(scene_id)
        entry = self.map(scene_id, map_id)
        nodata = None if served.scene is None or scene_valid(served.scene) is None else 0
        with tempfile.TemporaryDirectory(prefix="selo-serve-") as tmp:
            path = write_geotiff(
                Path(tmp) / "selo_map.tif", entry.finished, like=served.grid, nodata=nodata
            )
            return path.read_bytes()

    def geojson(self, scene_id: str, map_id: str, *, lonlat: bool = False) -> bytes:
        """The map's features as ``selo localize`` writes ``regions.geojson``; with
        ``lonlat``, in EPSG:4326 (RFC 7946), for a scene on Web Mercator."""
        served = self.scene(scene_id)
        features = self.map(scene_id, map_id).features(served.grid)
        if lonlat:
            if served.placement is None:
                raise UnknownIdError(f"scene {scene_id!r} has no place on the map (no CRS)")
            return json.dumps(
                {"type": "FeatureCollection", "features": _to_lonlat(features, served.grid.crs)}
            ).encode()
        with tempfile.TemporaryDirectory(prefix="selo-serve-") as tmp:
            path = write_geojson(Path(tmp) / "regions.geojson", features, crs=served.grid.crs)
            return path.read_bytes()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.collection is not None:
            self.collection.close()


def member_id(number: int) -> str:
    """A collection scene's id: ``s`` and its number in the collection (1 = the first)."""
    return f"s{number}"


def hit_record(hit, served: ServedScene) -> dict:
    """What the page gets of a collection hit (:class:`~selo.selo_tasks.search.Hit`): its
    rank, score and scene (id and name, never its path), the region (GeoJSON geometry,
    x = column, y = row) with its centre and box in scene pixels, and, for a scene on
    Web Mercator, in lon/lat."""
    from shapely.geometry import mapping

    r0, r1, c0, c1 = hit.bbox_px
    record = {
        "rank": hit.rank,
        "score": hit.score,
        "scene": served.id,
        "scene_name": served.name,
        "area_px": hit.area_px,
        "centre_px": list(hit.centre_px),
        "bbox_px": [r0, r1, c0, c1],
        "polygon_px": mapping(hit.geometry_px()),
        "crs": served.grid.crs,
        "centre_lonlat": None,
        "geometry": None,
        "bounds_lonlat": None,
    }
    if served.placement is not None:
        geometry = hit.geometry_lonlat()
        record["centre_lonlat"] = list(hit.centre_lonlat())
        record["geometry"] = mapping(geometry)
        record["bounds_lonlat"] = list(geometry.bounds)
    return json.loads(json.dumps(record))  # tuples as lists, as the page gets them


def _to_lonlat(features: list[dict], crs: str) -> list[dict]:
    """``features`` (in ``crs``) with their geometries in EPSG:4326."""
    from rasterio.warp import transform_geom

    return [{**f, "geometry": transform_geom(crs, "EPSG:4326", f["geometry"])} for f in features]


def _indicator(i: Indicator) -> dict:
    return {"name": i.name, "label": i.label, "heading": i.heading, "digits": i.digits}


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputNotFoundError(f"{path}: not found") from None
    except (OSError, ValueError) as e:
        raise MapError(f"{path}: cannot read ({e})") from None
    if not isinstance(data, dict):
        raise MapError(f"{path}: not a JSON object")
    return data


def _run_scene(
    scene_id: str, image: str, ref: SceneRef | None, png: Path, cache: Cache | None
) -> ServedScene:
    """A run folder's scene: its image when present, else a grid of the map's size."""
    if ref is not None:
        try:
            scene = open_scene(ref, cache=cache or Cache())
            return ServedScene(scene_id, image, scene_grid(scene), scene, SceneTiles(scene))
        except SeloError as e:
            log.warning("%s: %s; showing the maps without the scene", ref.location, e)
    else:
        log.warning("%s: scene not found; showing the maps without the scene", image)
    from ..eval import map_shape

    h, w = map_shape(png, case=png.parent.name)
    return ServedScene(scene_id, image, Grid(h, w, None, Affine.identity()))


def _png_loader(png: Path, query: str, polygons: list[dict]) -> Callable[[], MapEntry]:
    def load() -> MapEntry:
        from ..eval import read_map

        t0 = time.perf_counter()
        finished = read_map(png)
        return MapEntry(query, finished, time.perf_counter() - t0, annotations=polygons)

    return load


def _annotation_features(case, grid: Grid) -> list[dict]:
    """The case's polygons as GeoJSON features (kind "annotation") in the scene's CRS."""
    features = []
    for n, polygon in enumerate(case.polygons, start=1):
        ring = [list(grid.transform * (float(x), float(y))) for x, y in polygon]
        ring.append(ring[0])
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"kind": "annotation", "polygon": n, "case": case.index},
            }
        )
    return features
