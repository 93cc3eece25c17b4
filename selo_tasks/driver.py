"""The one method driver: scenes and sentences in, cells and lazy finished maps out.

Every interface (``selo localize``, ``selo airslt``, ``selo demo``, the Python API,
``selo serve``) runs a method through :class:`Driver`:

1. :meth:`Driver.embed` — the scene windows' embeddings (Cut → Sim), from the
   :class:`~selo.pipeline.cache.Cache` or computed by the driver's executor and
   cached;
2. :meth:`Driver.query_maps` — per (scene, sentence): the query vector, the window
   scores, the method's second pass (v2's expansion boxes, all requests' boxes
   embedded in one submission), the contributing windows, and Gnt on the cell grid;
   each :class:`QueryMap` then gives the lazy finished map (Flt) from its cells.

Callers only decide what to write. The executor says where embeddings are computed:
:class:`ClientExecutor` on a distributed cluster (with a progress bar), or
:class:`LocalExecutor` with dask's threads in this process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import dask
import dask.array as da
import dask.threaded
import numpy as np
import xarray as xr

from ..errors import SceneError
from ..models import Encoder, EncoderSpec
from ..pipeline import DEFAULT_BATCH
from ..pipeline.cache import Cache, EmbeddingKey
from ..pipeline.cut import CutSpec
from ..pipeline.gnt import CellGrid, CellMap, accumulate, expand_lazy, quantize
from ..pipeline.preview import keep_preview, preview_shape
from ..pipeline.profile import StageProfiler, task_label
from ..pipeline.scene import region_reader, scene_key, scene_label, source_info
from ..pipeline.sim import EmbeddingPlan, embedding_plan, scores
from ..pipeline.windows import WindowTable
from .methods import MapInputs, Method, Refinement

__all__ = [
    "ClientExecutor",
    "Driver",
    "Embedded",
    "LocalExecutor",
    "QueryMap",
    "cell_maps",
]

log = logging.getLogger(__name__)

Progress = Callable[[str, int], object]  # (description, total) -> context yielding advance()


@dataclass(frozen=True, eq=False)
class Embedded:
    """A window table of a scene with its embeddings (N×D) and has-data flags (N)."""

    scene: xr.DataArray
    table: WindowTable
    embeddings: np.ndarray
    has_data: np.ndarray
    cached: bool
    preview: np.ndarray | None = None  # the scene's preview, when Cut made it

    def scores(self, query_vector: np.ndarray) -> np.ndarray:
        """Cosine similarity of every window with the query (float64; NaN where no data)."""
        return scores(self.embeddings, self.has_data, query_vector)


@dataclass(frozen=True, eq=False)
class QueryMap:
    """One (scene, sentence): the contributing windows, the mean map and its quantised
    uint8 map per cell, and the method that finishes it."""

    query: str
    inputs: MapInputs
    mean: CellMap
    u8: CellMap
    method: Method

    @property
    def shape(self) -> tuple[int, int]:
        return (self.mean.grid.height, self.mean.grid.width)

    def selo(self, chunks, valid: da.Array | None = None) -> da.Array:
        """The lazy finished SeLo map (uint8), 0 where ``valid`` is False."""
        out = self.method.finish(self.u8, chunks, shape=self.shape, valid=valid)
        return out if valid is None else da.where(valid.rechunk(out.chunks), out, np.uint8(0))

    def mean_map(self, chunks) -> da.Array:
        """The lazy mean map (float64), expanded from its cells."""
        return expand_lazy(self.mean, chunks)


def cell_maps(
    height: int, width: int, inputs: MapInputs, *, uncovered_counts: bool
) -> tuple[CellMap, CellMap]:
    """Gnt on the cell grid: the mean map and its quantised uint8 map, per cell."""
    grid = CellGrid.from_windows(height, width, inputs.windows)
    mean = accumulate(grid, inputs.windows, inputs.scores)
    return mean, quantize(mean, uncovered_counts=uncovered_counts)


# --- executors ------------------------------------------------------------------------------


class LocalExecutor:
    """Computes embedding batches with dask's threaded scheduler in this process."""

    def __init__(self, *, progress: Progress | None = None) -> None:
        self.progress = progress

    resources: dict | None = None

    def run(self, parts: list, what: str) -> Iterator[tuple[int, object]]:
        from dask.callbacks import Callback

        bar = self.progress(f"embedding {what}", len(parts)) if self.progress else nullcontext()
        with bar as advance:
            keys = {p.key for p in parts}
            done = Callback(posttask=lambda key, *_: key in keys and advance and advance())
            with done:
                results = dask.compute(*parts, scheduler=dask.threaded.get, optimize_graph=False)
            yield from enumerate(results)


class ClientExecutor:
    """Computes embedding batches on a distributed cluster, in one submission, as they
    complete; each result is released as soon as it is gathered."""

    def __init__(self, client, *, resources: dict | None = None, progress: Progress | None = None):
        self.client = client
        self.resources = resources
        self.progress = progress

    def run(self, parts: list, what: str) -> Iterator[tuple[int, object]]:
        from distributed import as_completed

        bar = self.progress(f"embedding {what}", len(parts)) if self.progress else nullcontext()
        with bar as advance:
            futures = self.client.compute(parts, optimize_graph=False)
            index = {f.key: i for i, f in enumerate(futures)}
            pending = as_completed(futures)
            del futures
            for future in pending:
                result = future.result()
                if advance:
                    advance()
                yield index.pop(future.key), result
                future.release()
                del future, result


# --- the driver -----------------------------------------------------------------------------


class Driver:
    """Runs a method: embeddings (cached) and per-query cell maps; see the module."""

    def __init__(
        self,
        *,
        encoder: Encoder,
        spec: EncoderSpec | Encoder,
        method: Method,
        cut: CutSpec,
        cache: Cache | None,
        executor: LocalExecutor | ClientExecutor | None = None,
        batch: int = DEFAULT_BATCH,
        profiler: StageProfiler | None = None,
    ) -> None:
        self.encoder = encoder
        self.spec = spec  # what tasks carry to build the encoder (or the encoder itself)
        self.method = method
        self.cut = cut
        self.cache = cache
        self.executor = executor or LocalExecutor()
        self.batch = batch
        self.profiler = profiler

    def _stage(self, name: str):
        return self.profiler.stage(name) if self.profiler is not None else nullcontext()

    def table(self, scene: xr.DataArray) -> WindowTable:
        """The method's scene windows; says which window sizes exceed the scene."""
        table = self.method.scene_windows(int(scene.sizes["y"]), int(scene.sizes["x"]))
        if table.clamped:
            log.warning(
                "%s: %dx%d is smaller than window size(s) %s; those windows cover the whole scene",
                scene_label(scene),
                table.width,
                table.height,
                ", ".join(map(str, table.clamped)),
            )
        return table

    def key(self, scene: xr.DataArray, table: WindowTable, cache: Cache) -> EmbeddingKey:
        """Everything the embeddings of ``table`` over ``scene`` depend on."""
        return EmbeddingKey(
            scene_key(scene, cache), self.encoder.version, table.digest, self.cut.key
        )

    def embed(
        self,
        items: Sequence[tuple[xr.DataArray, WindowTable]],
        *,
        what: str = "windows",
        require_data: bool = True,
        preview_side: int | None = None,
    ) -> list[Embedded]:
        """Embeddings of each (scene, table), from the cache or computed in one pass.

        All uncached tables are submitted together (the cluster balances them) and
        each is cached as soon as it completes; identical requests are computed once.
        With ``require_data`` a scene whose windows all lack data is an error. With
        ``preview_side``, Cut also makes each embedded scene's preview (that size, from
        the pixels it reads anyway) and keeps it in the cache for ``read_preview``."""
        results: list[Embedded | None] = [None] * len(items)
        todo: list[tuple[int, EmbeddingKey | None, EmbeddingPlan]] = []
        same: dict[object, list[int]] = {}
        for i, (scene, table) in enumerate(items):
            key = self.key(scene, table, self.cache) if self.cache is not None else None
            ident = key.id if key is not None else (id(scene), table.digest)
            if ident in same:
                same[ident].append(i)
                continue
            same[ident] = [i]
            hit = None
            if key is not None:
                hit = self.cache.get_embeddings(key, table, dim=self.encoder.embed_dim)
            if hit is not None:
                log.debug(
                    "embeddings of %s (%d windows) from the cache", scene_label(scene), len(table)
                )
                results[i] = Embedded(scene, table, hit[0], hit[1], cached=True)
                continue
            plan = embedding_plan(
                region_reader(scene),
                table,
                self.spec,
                cut=self.cut,
                dim=self.encoder.embed_dim,
                batch=self.batch,
                resources=self.executor.resources,
                label=task_label(Path(scene_label(scene)).name),  # per-scene task seconds
                preview=None
                if preview_side is None
                else preview_shape((table.height, table.width), preview_side),
            )
            todo.append((i, key, plan))
        if todo:
            with self._stage("cut"):  # scene reads count here; "sim-" tasks count as Sim
                for n, emb, has, preview in self._compute([plan for _, _, plan in todo], what):
                    i, key, plan = todo[n]
                    if key is not None:
                        self.cache.put_embeddings(key, plan.table, emb, has)
                    if preview is not None and self.cache is not None:
                        keep_preview(items[i][0], preview, self.cache)
                    results[i] = Embedded(items[i][0], plan.table, emb, has, False, preview)
        for indexes in same.values():
            for i in indexes[1:]:
                results[i] = results[indexes[0]]
        if require_data:
            for e in results:
                if not e.has_data.any():
                    raise SceneError(
                        f"{scene_label(e.scene)}: every pixel is nodata, nothing to localize "
                        f"(nodata value {source_info(e.scene).get('nodata')}); check the file or "
                        "choose another scene"
                    )
        return results  # type: ignore[return-value]

    def _compute(self, plans: list[EmbeddingPlan], what: str):
        """Yield (plan index, embeddings, has-data, preview or None) as each plan's batches
        (and preview rows) complete.

        Plans of one scene can share batches (same region, same windows: same task
        key); each distinct task is computed once and serves all its owners."""
        sizes = [(len(p.parts), len(p.preview_parts)) for p in plans]
        done: list[list] = [[None] * (a + b) for a, b in sizes]
        left = [a + b for a, b in sizes]
        owners: dict[str, list[tuple[int, int]]] = {}
        unique = []
        for i, plan in enumerate(plans):
            for k, part in enumerate([*plan.parts, *plan.preview_parts]):
                if part.key not in owners:
                    owners[part.key] = []
                    unique.append(part)
                owners[part.key].append((i, k))
        keys = [part.key for part in unique]
        for n, result in self.executor.run(unique, what):
            for i, k in owners[keys[n]]:
                done[i][k] = result
                left[i] -= 1
                if left[i] == 0:
                    plan, nparts = plans[i], sizes[i][0]
                    emb, has = plan.assemble(done[i][:nparts])
                    preview = (
                        plan.assemble_preview(done[i][nparts:]) if plan.preview_parts else None
                    )
                    done[i] = []
                    yield i, emb, has, preview

    def query_maps(self, requests: Sequence[tuple[Embedded, str]]) -> list[QueryMap]:
        """The map of each (embedded scene, sentence): Gnt on the cell grid, lazily finished.

        A method with a second pass (v2's expansion boxes) gets the extra windows of all
        requests embedded in one submission, so the cluster works on them together."""
        method = self.method
        firsts: list[tuple[np.ndarray, WindowTable, np.ndarray, Refinement | None]] = []
        for embedded, query in requests:
            q = method.query_vector(self.encoder, query)
            keep = np.flatnonzero(embedded.has_data)
            table = embedded.table.subset(keep)
            s = embedded.scores(q)[keep]
            refinement = method.refine(table, s) if len(table) else None
            firsts.append((q, table, s, refinement))
        second = [
            (e.scene, r.extra)
            for (e, _), (_, _, _, r) in zip(requests, firsts, strict=True)
            if r is not None and len(r.extra)
        ]
        boxes = iter(self.embed(second, what="expansion boxes", require_data=False))
        out = []
        for (embedded, query), (q, table, s, refinement) in zip(requests, firsts, strict=True):
            extra_scores = None
            if refinement is not None and len(refinement.extra):
                embedded_boxes = next(boxes)
                keep = np.flatnonzero(embedded_boxes.has_data)
                refinement = Refinement(refinement.kept, refinement.extra.subset(keep))
                extra_scores = embedded_boxes.scores(q)[keep]
            inputs = method.contributions(table, s, refinement, extra_scores)
            h, w = embedded.table.height, embedded.table.width
            with self._stage("gnt"):
                mean, u8 = cell_maps(h, w, inputs, uncovered_counts=method.uncovered_counts)
            out.append(QueryMap(query, inputs, mean, u8, method))
        return out
