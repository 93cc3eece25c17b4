"""The Python API: what the ``selo`` commands run, as functions.

Scenes are ``xarray.DataArray`` (y, x, band); :func:`localize` gives an
``xarray.Dataset`` with one lazy uint8 ``selo`` map and one float ``mean`` map per
sentence along a ``query`` dimension, georeferenced like the scene, so that::

    scene = selo.open_scene("tile.tif")
    ds = selo.localize(scene, ["green trees", "white planes"])
    ds.selo.sel(query="green trees").rio.to_raster("trees.tif")   # computes now

Nothing is read or embedded before a map is asked for: the embeddings (cached,
query-independent) and each query's cells are one small task of the graph, and the
map's blocks are computed from the cells (:mod:`selo.selo_tasks.driver`).

The functions that run a whole command — :func:`localize_files` (``selo localize``),
:func:`search`, :func:`airslt`, :func:`demo`, :func:`evaluate_run` (``selo eval``), :func:`serve`,
:func:`synth_airslt` — are what the command line calls; it adds only the parsing of
its arguments, progress bars and the printed report. Every function that runs SeLo
takes the run options as keywords (or an ``options=selo.Options(...)``), checked into
one :class:`~selo.selo_tasks.options.Options` when it is called: a value that cannot
work is a :class:`~selo.errors.ParameterError` naming the option before anything is
read or computed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import MapError, ParameterError
from ..pipeline import DEFAULT_CHUNK
from ..pipeline.cache import Cache
from ..pipeline.store import as_path, local_folder
from .annotations import Case, load_annotations
from .eval import CaseResult, evaluate_cases, maps_annotations, read_map, write_metrics_csv
from .metrics import evaluate as _evaluate
from .options import DEFAULT_TOP, Options
from .synth import build_synthetic_airslt as synth_airslt

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

    from .driver import QueryMap

# The scenes and maps of open_scene and localize need dask, xarray and the driver: they are
# imported there, so that the commands that need none of them (selo eval, selo synth-airslt)
# and the other functions here do not import them.

__all__ = [
    "Options",
    "RunScores",
    "airslt",
    "demo",
    "evaluate",
    "evaluate_run",
    "localize",
    "localize_files",
    "open_scene",
    "search",
    "serve",
    "synth_airslt",
]

log = logging.getLogger(__name__)


def open_scene(
    path,
    *,
    bands: tuple[int, int, int] | tuple[str, str, str] | None = None,
    asset: str | None = None,
    chunk: int = DEFAULT_CHUNK,
    cache: Cache | str | os.PathLike | None = None,
) -> xr.DataArray:
    """A scene as a lazy RGB uint8 ``DataArray`` (y, x, band) with ``.rio``
    georeferencing and a ``valid`` (y, x) coordinate where the file can have nodata.

    ``path``: any raster GDAL reads, as a local path, a URL (``https://``, ``s3://``,
    ``gs://``, ``az://``) or a GDAL ``/vsi…/`` path (remote files are read window by
    window), or a STAC item (JSON file or URL, or a ``pystac.Item``). Other types than
    uint8 are stretched (2nd–98th percentile); ``bands`` picks three 1-based bands of a
    file, or three band names of a STAC item; ``asset`` picks a STAC item's asset;
    JPEG/PNG scenes are staged once to a tiled GeoTIFF in ``cache`` (see
    :class:`selo.pipeline.cache.Cache`). Indexing the scene (``isel``/``sel`` on bands,
    rows and columns) keeps it read from its files: exactly the pixels selected."""
    from ..pipeline.scene import open_scene as _open_scene

    options = Options(chunk=chunk, cache=cache)
    return _open_scene(path, bands=bands, asset=asset, chunk=options.chunk, cache=_staging(options))


def localize(
    scene: xr.DataArray | np.ndarray | str | os.PathLike,
    queries: str | Sequence[str],
    *,
    client=None,
    options: Options | None = None,
    **keywords,
) -> xr.Dataset:
    """SeLo maps of ``scene`` for each sentence, lazily (see the module).

    Keywords are the fields of :class:`selo.Options`, among them ``encoder`` (a spec
    such as ``"color"``, ``"openclip:ViT-B-32"`` or a preset, with ``checkpoint``; or
    your own :class:`selo.Encoder`), ``method`` (``"v1"``, ``"v2"`` or a
    :class:`~selo.selo_tasks.methods.Method`), ``scales``, ``seed``, ``cache`` (where
    embeddings are kept: None the default cache folder, False none), ``chunk`` (maps
    are chunked at most 2048) and ``batch``. ``client``: a ``distributed.Client`` to
    embed on (default: the cluster the graph runs on, or threads in this process); the
    cluster options of the commands do not apply here."""
    import dask
    import dask.array as da
    import xarray as xr

    from ..pipeline.scene import as_scene, scene_valid
    from .localize import check_queries, warn_queries

    opts = Options.from_keywords(options, **keywords)
    _refuse_session_options(opts, "selo.localize computes where its Dataset is computed")
    queries = check_queries(queries)
    cache = opts.make_cache()
    scene = as_scene(scene, chunk=opts.chunk, cache=cache if cache is not None else Cache())
    encoder = opts.build_encoder()
    warn_queries(encoder, queries)
    job = _Job(scene, queries, opts, encoder, cache, client)
    maps = dask.delayed(_query_maps, pure=True)(job, dask_key_name=f"gnt-maps-{job.token}")
    shape = (int(scene.sizes["y"]), int(scene.sizes["x"]))
    chunks = da.core.normalize_chunks(opts.map_chunk, shape)
    valid = scene_valid(scene)
    valid = None if valid is None else valid.rechunk(chunks)
    selo, mean = [], []
    for i in range(len(queries)):
        qm = maps[i]
        finished = job.method.finish(qm.u8, chunks, shape=shape, valid=valid)
        if valid is not None:
            finished = da.where(valid, finished, np.uint8(0))
        selo.append(finished)
        mean.append(da.map_blocks(_mean_block, qm, chunks=chunks, dtype=np.float64))
    coords = {k: v for k, v in scene.coords.items() if set(v.dims) <= {"y", "x"}}
    coords["query"] = list(queries)
    ds = xr.Dataset(
        {
            "selo": (("query", "y", "x"), da.stack(selo)),
            "mean": (("query", "y", "x"), da.stack(mean)),
        },
        coords=coords,
        attrs={
            "method": job.method.name,
            "encoder": encoder.version,
            "selo_source": scene.attrs.get("selo_source", ""),
        },
    )
    ds["selo"].attrs["long_name"] = "SeLo map (uint8; P = value / 255)"
    ds["mean"].attrs["long_name"] = "mean window score per pixel (cosine similarity)"
    if valid is not None:
        ds["selo"] = ds["selo"].rio.write_nodata(0, encoded=False)
    return ds


def localize_files(
    scene,
    queries: str | Sequence[str],
    out: str | os.PathLike,
    *,
    bands: tuple[int, int, int] | tuple[str, str, str] | None = None,
    asset: str | None = None,
    options: Options | None = None,
    **keywords,
) -> dict:
    """What ``selo localize`` does: the SeLo maps of the scene (a file, a URL or a STAC
    item, as :func:`open_scene` takes; ``bands``, ``asset``: as there) for each sentence,
    written to the folder ``out`` (one ``qNN-<words>/`` folder per sentence, ``maps.zarr``,
    ``run.json``; see the README); returns the run record (``run.json``).

    Keywords: the fields of :class:`selo.Options`, the cluster options included (one
    scene runs on dask's threads in this process unless one is given); ``profile=True``
    also writes ``profile.html``."""
    from .localize import localize as run

    opts = Options.from_keywords(options, **keywords)
    return run(os.fspath(scene), queries, as_path(out), opts, bands=bands, asset=asset)


def airslt(
    images: str | os.PathLike,
    out: str | os.PathLike,
    *,
    anno: str | os.PathLike | Sequence[Case] | None = None,
    resume: bool = False,
    skip_missing: bool = False,
    plain_overlays: bool = False,
    options: Options | None = None,
    **keywords,
):
    """What ``selo airslt`` does: run and score every case of the annotations (default:
    AIR-SLT's, shipped with selo) on the scenes in ``images`` (a folder, a URL prefix or a
    STAC ItemCollection, Catalog or Collection), into the run folder
    ``out`` (``case_NN/``, ``metrics.csv``, ``run.json``, ``report.html``, and
    ``profile.html`` unless ``profile=False``); returns the
    :class:`~selo.selo_tasks.airslt.AirsltRun` (results, skipped cases, stage table)."""
    from .airslt import AirsltOptions, run_airslt

    opts = Options.from_keywords(options, **keywords)
    files = AirsltOptions(
        images=os.fspath(images),
        out=as_path(out),
        anno=None if anno is None or _is_cases(anno) else Path(anno),
        resume=_switch("resume", resume),
        skip_missing=_switch("skip_missing", skip_missing),
        plain_overlays=_switch("plain_overlays", plain_overlays),
    )
    return run_airslt(_cases(anno), files, opts)


def demo(out: str | os.PathLike, *, options: Options | None = None, **keywords):
    """What ``selo demo`` does: twelve AIR-SLT cases drawn as synthetic scenes under
    ``out/data``, run into ``out/run``; returns (the run, the mean metrics of a flat map
    and of random window scores on the same cases)."""
    from .demo import run_demo

    return run_demo(local_folder(out, "selo demo"), Options.from_keywords(options, **keywords))


def serve(
    targets: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    options: Options | None = None,
    report: Callable[[str], object] = print,
    **keywords,
) -> None:
    """What ``selo serve`` does, until interrupted: the web page of one scene (embedded
    once, in the background), of a collection (several scenes, folders, globs, URL
    prefixes, STAC collections: embedded and indexed first, searched as a whole) or of
    one ``airslt`` run folder. Keywords: ``host``, ``port``, ``open_browser``,
    ``map_cache`` (MiB), ``anno``, ``images``, ``skip_bad``, ``index`` (see
    :func:`selo.selo_tasks.serve.serve`) and the fields of :class:`selo.Options`."""
    import inspect

    from .serve import serve as run

    if isinstance(targets, str | os.PathLike):
        targets = [targets]
    params = inspect.signature(run).parameters.values()
    served = {p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name != "report"}
    own = {k: keywords.pop(k) for k in list(keywords) if k in served}
    run(targets, Options.from_keywords(options, **keywords), report=report, **own)


def search(
    scenes,
    queries: str | Sequence[str],
    *,
    out: str | os.PathLike | None = None,
    top: int = DEFAULT_TOP,
    maps: int = 0,
    skip_bad: bool = False,
    index: str = "auto",
    report: Callable[[str], object] | None = None,
    options: Options | None = None,
    **keywords,
):
    """What ``selo search`` does: the ``top`` best regions of a collection of scenes for
    each sentence, ranked together by their peak mean cosine, as a
    ``geopandas.GeoDataFrame`` in EPSG:4326 (one row per hit: sentence, rank, score,
    scene, the region and its attention centre in scene pixels, in the scene's CRS and in
    EPSG:4326; no geometry in scenes without a CRS). ``pip install 'selo[search]'``.

    ``scenes``: one or a list of files, folders, globs, URLs and STAC items or
    collections; each scene is embedded once (the embedding cache, which also keeps the
    collection's index). ``out``: also write hits.geojson, hits.parquet, hits.html and
    run.json there (and with ``maps`` the SeLo maps of each sentence's top scenes).
    ``skip_bad``: leave out scenes that cannot be searched instead of raising.
    ``index``: ``"exact"``, ``"int8"`` or ``"auto"`` (see the README). ``report``: given
    a line at each step (default: the log). Keywords: the fields of :class:`selo.Options`
    (``encoder``, ``checkpoint``, ``method``, ``scales``, ``cache``, the cluster
    options, ...)."""
    from .search import run_search

    opts = Options.from_keywords(options, **keywords)
    items = [scenes] if isinstance(scenes, str | os.PathLike) else list(scenes)
    return run_search(
        items, queries, opts, out=out, top=top, maps=maps, skip_bad=skip_bad, mode=index,
        report=report or log.info,
    )  # fmt: skip


def evaluate(
    selo_map: np.ndarray | xr.DataArray | str | os.PathLike,
    polygons: Sequence | Case,
) -> dict[str, float]:
    """Rsu, Rda, Ras and Rmi of one map (uint8, float in [0, 1], a DataArray or an image
    file) against polygons of [x, y] pixel points (or an AIR-SLT ``Case``)."""
    if isinstance(selo_map, str | os.PathLike):
        selo_map = read_map(selo_map)
    arr = np.asarray(selo_map)
    polys = polygons.polygon_arrays() if isinstance(polygons, Case) else polygons
    if not isinstance(polys, Sequence) or isinstance(polys, str):
        raise ParameterError("polygons must be a list of polygons, each a list of [x, y] points")
    polys = [np.asarray(p, dtype=np.float64) for p in polys]
    return _evaluate(arr, polys).as_dict()


class RunScores(dict):
    """What :func:`evaluate_run` gives: the dict ``{"cases": [{case, image, query, rsu, rda,
    ras, rmi}], "mean": {...}, "skipped": [case indexes]}``; ``results`` keeps the scored
    cases as :class:`~selo.selo_tasks.eval.CaseResult` (what the CSV and the terminal
    table are made of)."""

    results: list[CaseResult]


def evaluate_run(
    maps: str | os.PathLike,
    *,
    anno: str | os.PathLike | Sequence[Case] | None = None,
    images: str | os.PathLike | None = None,
    skip_missing: bool = False,
    out: str | os.PathLike | None = None,
    on_case: Callable[[CaseResult], object] | None = None,
) -> RunScores:
    """What ``selo eval`` does: the metrics of a folder of maps (a ``selo airslt`` run
    folder, or the published code's ``probmap_{i}.jpg``) against the annotations
    (default: AIR-SLT's). Every map is checked before any is scored; with
    ``skip_missing`` a case without a usable map is left out (and logged). A run folder is
    scored against its own annotations unless ``anno`` names others (which must hold the
    same cases). ``out``: also
    write the per-case metrics CSV there; ``on_case(result)`` after each case."""
    from .metrics import mean_metrics

    cases = list(anno) if _is_cases(anno) else maps_annotations(maps, anno)
    results, skipped = evaluate_cases(
        cases,
        maps,
        images_dir=images,
        skip_missing=_switch("skip_missing", skip_missing),
        on_case=on_case,
    )
    for _case, reason in skipped:
        log.warning("skipped: %s", reason)
    if not results:
        raise MapError(f"{maps}: no case has a usable map; nothing to score")
    if out is not None:
        write_metrics_csv(out, results)
    scores = RunScores(
        cases=[
            {"case": r.case.index, "image": r.case.image, "query": r.case.query}
            | r.metrics.as_dict()
            for r in results
        ],
        mean=mean_metrics(r.metrics for r in results).as_dict(),
        skipped=[c.index for c, _ in skipped],
    )
    scores.results = results
    return scores


# --- the lazy job -----------------------------------------------------------------------------


class _Job:
    """What the maps task needs, in a plain object so that dask does not compute the
    scene DataArray before calling it (the task reads only the windows it embeds)."""

    def __init__(self, scene, queries, options: Options, encoder, cache, client) -> None:
        import dask.array as da
        from dask.base import tokenize

        self.scene, self.queries, self.options = scene, queries, options
        self.encoder, self.cache, self.client = encoder, cache, client
        self.method = options.build_method()
        self.token = tokenize(
            scene.data.name if isinstance(scene.data, da.Array) else scene.data,
            queries,
            encoder.version,
            self.method,
            options.cut(encoder.input_size),
            None if cache is None else str(cache.root),
        )

    def __dask_tokenize__(self) -> str:
        return self.token


_DONE: OrderedDict[str, list[QueryMap]] = OrderedDict()  # recent jobs' cells, by token
_DONE_LOCK = threading.Lock()
_DONE_SIZE = 16


def _query_maps(job: _Job) -> list[QueryMap]:
    """The driver's query maps of the job (kept for the next compute in this process)."""
    from .session import build_driver

    with _DONE_LOCK:
        if job.token in _DONE:
            _DONE.move_to_end(job.token)
            return _DONE[job.token]
    driver = build_driver(job.options, job.encoder, _executor(job.client), cache=job.cache)
    table = driver.table(job.scene)
    embedded = driver.embed([(job.scene, table)])[0]
    maps = driver.query_maps([(embedded, q) for q in job.queries])
    with _DONE_LOCK:
        _DONE[job.token] = maps
        while len(_DONE) > _DONE_SIZE:
            _DONE.popitem(last=False)
    return maps


def _executor(client):
    """Embed on the cluster this task runs on, else on ``client``, else with threads here."""
    from .driver import ClientExecutor, LocalExecutor

    try:
        from distributed import get_worker, worker_client

        get_worker()
    except (ImportError, ValueError):
        return ClientExecutor(client) if client is not None else LocalExecutor()
    return _WorkerClientExecutor(worker_client)


class _WorkerClientExecutor:
    """Embedding batches submitted from inside a worker task (which secedes meanwhile)."""

    resources = None

    def __init__(self, worker_client) -> None:
        self.worker_client = worker_client

    def run(self, parts, what):
        from .driver import ClientExecutor

        with self.worker_client() as client:
            yield from ClientExecutor(client).run(parts, what)


def _mean_block(qm: QueryMap, block_info=None) -> np.ndarray:
    (r0, r1), (c0, c1) = block_info[None]["array-location"]
    return qm.mean.block(r0, r1, c0, c1)


# --- argument checks --------------------------------------------------------------------------


def _refuse_session_options(options: Options, why: str) -> None:
    """ParameterError for a cluster or report option where no run session is made."""
    for f, flag in Options.flags():
        if flag.group in ("cluster", "reports") and getattr(options, f.name) != f.default:
            raise ParameterError(
                f"{f.name} ({flag.name}) does not apply here: {why}; "
                "pass client= to embed on a distributed cluster"
            )


def _staging(options: Options) -> Cache:
    """Where scenes are staged: the embedding cache, or the default one without it."""
    cache = options.make_cache()
    return cache if cache is not None else Cache()


def _is_cases(anno) -> bool:
    """Whether ``anno`` is a list of cases (else a file, or None for AIR-SLT's)."""
    if isinstance(anno, Sequence) and not isinstance(anno, str):
        if not all(isinstance(c, Case) for c in anno):
            raise ParameterError("anno must be an annotation file or a list of Case objects")
        return True
    return False


def _cases(anno) -> list[Case]:
    """Cases from an annotation file (default: AIR-SLT's) or as given."""
    return list(anno) if _is_cases(anno) else load_annotations(anno)


def _switch(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ParameterError(f"{name} is True or False, got {value!r}")
    return value
