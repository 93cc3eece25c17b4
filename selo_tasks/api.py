"""The Python API: ``selo.open_scene``, ``selo.localize``, ``selo.evaluate``, ``selo.evaluate_run``.

Scenes are ``xarray.DataArray`` (y, x, band); :func:`localize` gives an
``xarray.Dataset`` with one lazy uint8 ``selo`` map and one float ``mean`` map per
sentence along a ``query`` dimension, georeferenced like the scene, so that::

    scene = selo.open_scene("tile.tif")
    ds = selo.localize(scene, ["green trees", "white planes"])
    ds.selo.sel(query="green trees").rio.to_raster("trees.tif")   # computes now

Nothing is read or embedded before a map is asked for: the embeddings (cached,
query-independent) and each query's cells are one small task of the graph, and the
map's blocks are computed from the cells (:mod:`selo.selo_tasks.driver`).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ..errors import ParameterError
from ..models import Encoder, EncoderSpec
from ..models.registry import cached_encoder
from ..pipeline import DEFAULT_BATCH, DEFAULT_CHUNK
from ..pipeline.cache import Cache
from ..pipeline.cut import CutSpec
from ..pipeline.outputs import MAP_CHUNK
from ..pipeline.scene import as_scene, scene_valid
from ..pipeline.scene import open_scene as _open_scene
from .annotations import Case, load_annotations
from .driver import ClientExecutor, Driver, LocalExecutor, QueryMap
from .eval import evaluate_cases, read_map
from .localize import check_queries
from .methods import Method, get_method
from .metrics import evaluate as _evaluate

__all__ = ["evaluate", "evaluate_run", "localize", "open_scene"]


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
    return _open_scene(path, bands=bands, asset=asset, chunk=chunk, cache=_cache(cache) or Cache())


def localize(
    scene: xr.DataArray | np.ndarray | str | os.PathLike,
    queries: str | Sequence[str],
    *,
    encoder: str | EncoderSpec | Encoder = "color",
    checkpoint: str | os.PathLike | None = None,
    method: str | Method = "v1",
    cache: Cache | str | os.PathLike | bool | None = None,
    client=None,
    chunk: int = MAP_CHUNK,
    batch: int = DEFAULT_BATCH,
    paper_compat: bool = False,
) -> xr.Dataset:
    """SeLo maps of ``scene`` for each sentence, lazily (see the module).

    ``encoder``: a spec (``"color"``, ``"openclip:ViT-B-32"``, a preset; with
    ``checkpoint``), or your own :class:`selo.Encoder`. ``method``: ``"v1"``, ``"v2"``
    or a :class:`~selo.selo_tasks.methods.Method`. ``cache``: where embeddings are
    kept (None: the default cache folder; False: no cache). ``client``: a
    ``distributed.Client`` to embed on (default: the cluster the graph runs on, or
    threads in this process). ``chunk``: the maps' chunk side."""
    queries = check_queries(queries)
    method = get_method(method)
    store = _cache(cache) if cache is not False else None
    if cache is None:
        store = Cache()
    scene = as_scene(scene, cache=store or Cache())
    enc, spec = _encoder(encoder, checkpoint)
    for q in queries:
        warning = enc.check_query(q)
        if warning:
            import logging

            logging.getLogger(__name__).warning("query %r: %s", q, warning)
    job = _Job(scene, queries, enc, spec, method, store, CutSpec(enc.input_size, paper_compat))
    job.batch, job.client = batch, client
    maps = dask.delayed(_query_maps, pure=True)(job, dask_key_name=f"gnt-maps-{job.token}")
    shape = (int(scene.sizes["y"]), int(scene.sizes["x"]))
    chunks = da.core.normalize_chunks(chunk, shape)
    valid = scene_valid(scene)
    valid = None if valid is None else valid.rechunk(chunks)
    selo, mean = [], []
    for i in range(len(queries)):
        qm = maps[i]
        finished = method.finish(qm.u8, chunks, shape=shape, valid=valid)
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
            "method": method.name,
            "encoder": enc.version,
            "selo_source": scene.attrs.get("selo_source", ""),
        },
    )
    ds["selo"].attrs["long_name"] = "SeLo map (uint8; P = value / 255)"
    ds["mean"].attrs["long_name"] = "mean window score per pixel (cosine similarity)"
    if valid is not None:
        ds["selo"] = ds["selo"].rio.write_nodata(0, encoded=False)
    return ds


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


def evaluate_run(
    maps: str | os.PathLike,
    *,
    anno: str | os.PathLike | None = None,
    images: str | os.PathLike | None = None,
    skip_missing: bool = False,
) -> dict:
    """The metrics of a folder of maps (a ``selo airslt`` run folder, or the published
    code's ``probmap_{i}.jpg``): ``{"cases": [{case, image, query, rsu, rda, ras, rmi}],
    "mean": {...}, "skipped": [...]}``."""
    from .metrics import mean_metrics

    cases = load_annotations(anno)
    results, skipped = evaluate_cases(cases, maps, images_dir=images, skip_missing=skip_missing)
    rows = [
        {"case": r.case.index, "image": r.case.image, "query": r.case.query, **r.metrics.as_dict()}
        for r in results
    ]
    mean = mean_metrics(r.metrics for r in results).as_dict() if results else None
    return {"cases": rows, "mean": mean, "skipped": [c.index for c, _ in skipped]}


# --- the lazy job -----------------------------------------------------------------------------


class _Job:
    """What the maps task needs, in a plain object so that dask does not compute the
    scene DataArray before calling it (the task reads only the windows it embeds)."""

    def __init__(self, scene, queries, encoder, spec, method, cache, cut) -> None:
        self.scene, self.queries, self.encoder, self.spec = scene, queries, encoder, spec
        self.method, self.cache, self.cut = method, cache, cut
        self.batch, self.client = DEFAULT_BATCH, None
        self.token = dask.base.tokenize(
            scene.data.name if isinstance(scene.data, da.Array) else scene.data,
            queries,
            encoder.version,
            method,
            cut,
            None if cache is None else str(cache.root),
        )

    def __dask_tokenize__(self) -> str:
        return self.token


_DONE: OrderedDict[str, list[QueryMap]] = OrderedDict()  # recent jobs' cells, by token
_DONE_LOCK = threading.Lock()
_DONE_SIZE = 16


def _query_maps(job: _Job) -> list[QueryMap]:
    """The driver's query maps of the job (kept for the next compute in this process)."""
    with _DONE_LOCK:
        if job.token in _DONE:
            _DONE.move_to_end(job.token)
            return _DONE[job.token]
    driver = Driver(
        encoder=job.encoder,
        spec=job.spec,
        method=job.method,
        cut=job.cut,
        cache=job.cache,
        executor=_executor(job.client),
        batch=job.batch,
    )
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
        with self.worker_client() as client:
            yield from ClientExecutor(client).run(parts, what)


def _mean_block(qm: QueryMap, block_info=None) -> np.ndarray:
    (r0, r1), (c0, c1) = block_info[None]["array-location"]
    return qm.mean.block(r0, r1, c0, c1)


def _encoder(encoder, checkpoint) -> tuple[Encoder, EncoderSpec | Encoder]:
    if isinstance(encoder, Encoder):
        if checkpoint is not None:
            raise ParameterError("checkpoint goes with an encoder spec, not an Encoder object")
        return encoder, encoder
    if isinstance(encoder, EncoderSpec):
        spec = (
            encoder
            if checkpoint is None
            else EncoderSpec(encoder.name, str(checkpoint), encoder.device)
        )
    elif isinstance(encoder, str):
        spec = EncoderSpec(encoder, None if checkpoint is None else str(checkpoint))
    else:
        raise ParameterError(
            f"encoder must be a spec string (e.g. 'color'), an EncoderSpec or an Encoder, "
            f"got {type(encoder).__name__}"
        )
    return cached_encoder(spec), spec


def _cache(cache) -> Cache | None:
    if cache is None or cache is False:
        return None
    if cache is True:
        return Cache()
    if isinstance(cache, Cache):
        return cache
    if isinstance(cache, str | os.PathLike):
        return Cache(Path(cache))
    raise ParameterError(f"cache must be a Cache, a folder path, None or False, got {cache!r}")
