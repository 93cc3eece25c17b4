"""The machinery every SeLo run shares: embed scenes (cached), score queries, build maps.

Used by ``selo localize`` (one scene, many queries, chunked outputs) and
``selo airslt`` (many scenes and cases, metrics). Work runs on the run's Dask
cluster; the client process only holds window tables, embeddings (N×D) and
cell grids, never a whole scene.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from selo.cluster import RunCluster
from selo.errors import SceneError
from selo.models import Encoder, EncoderSpec
from selo.pipeline.accumulate import CellGrid, CellMap, accumulate, quantize
from selo.pipeline.embed import EmbeddingCache, EmbeddingKey, EmbeddingPlan, embedding_plan
from selo.pipeline.profile import StageProfiler, task_label
from selo.pipeline.raster import Scene, scene_key
from selo.pipeline.windows import WindowTable
from selo.selo_tasks.methods import MapInputs, Method
from selo.selo_tasks.report import progress

__all__ = [
    "RunContext",
    "Embedded",
    "embed_scenes",
    "query_contributions",
    "cell_maps",
    "QueryCells",
]

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    """What a run needs everywhere: cluster, profiler, encoder, cache and options."""

    cluster: RunCluster
    profiler: StageProfiler
    spec: EncoderSpec
    encoder: Encoder
    cache: EmbeddingCache
    chunk: int = 4096
    batch: int = 64
    show_progress: bool = True
    paper_compat: bool = False  # windows make the published code's JPEG round trip


@dataclass(frozen=True, eq=False)
class Embedded:
    """A window table of a scene with its embeddings (N×D) and has-data flags (N)."""

    scene: Scene
    table: WindowTable
    embeddings: np.ndarray
    has_data: np.ndarray
    cached: bool

    def scores(self, query_vector: np.ndarray) -> np.ndarray:
        """Cosine similarity of every window with the query (float64; NaN where no data)."""
        s = (self.embeddings @ np.asarray(query_vector, dtype=np.float32)).astype(np.float64)
        s[~self.has_data] = np.nan
        return s


def _preprocess(scene: Scene, encoder: Encoder, jpeg: bool) -> str:
    """Everything between the file and the encoder's input: bands, uint8 conversion, cut."""
    cut = f"cut{encoder.input_size}-bicubic" + ("-jpeg" if jpeg else "")
    return f"bands={scene.bands}|{scene.conversion}|{cut}"


def embed_scenes(
    ctx: RunContext,
    items: Sequence[tuple[Scene, WindowTable]],
    *,
    what: str = "windows",
    require_data: bool = True,
) -> list[Embedded]:
    """Embeddings of each (scene, table), from the cache or computed in one pass on the cluster.

    All uncached tables are submitted together (the cluster balances them) and
    each is cached as soon as it completes. With ``require_data`` a scene whose
    windows all lack data is an error (it has nothing to localize).
    """
    results: list[Embedded | None] = [None] * len(items)
    todo: list[tuple[int, EmbeddingKey, EmbeddingPlan]] = []
    same: dict[str, list[int]] = {}  # identical requests (same key) are computed once
    enc = ctx.encoder
    for i, (scene, table) in enumerate(items):
        key = EmbeddingKey(
            scene_key(scene.info.path),
            enc.version,
            table.digest,
            _preprocess(scene, enc, ctx.paper_compat),
        )
        if key.id in same:
            same[key.id].append(i)
            continue
        same[key.id] = [i]
        hit = ctx.cache.get(key, table)
        if hit is not None:
            log.debug("embeddings of %s (%d windows) from the cache", scene.info.path, len(table))
            results[i] = Embedded(scene, table, hit[0], hit[1], cached=True)
            continue
        valid = None if scene.valid is None else scene.valid.data
        plan = embedding_plan(
            scene.rgb.data,
            table,
            ctx.spec,
            size=enc.input_size,
            dim=enc.embed_dim,
            valid=valid,
            batch=ctx.batch,
            resources=ctx.cluster.encoder_resources,
            jpeg=ctx.paper_compat,
            label=task_label(scene.info.path.name),  # per-scene task seconds (run report)
        )
        todo.append((i, key, plan))
    if todo:
        for i, emb, has in _compute_plans(ctx, [plan for _, _, plan in todo], what):
            j, key, plan = todo[i]
            ctx.cache.put(key, plan.table, emb, has)
            results[j] = Embedded(items[j][0], plan.table, emb, has, cached=False)
    for indexes in same.values():
        for i in indexes[1:]:
            results[i] = results[indexes[0]]
    for e in results:
        if require_data and not e.has_data.any():
            raise SceneError(
                f"{e.scene.info.path}: every pixel is nodata, nothing to localize "
                f"(nodata value {e.scene.info.nodata}); check the file or choose another scene"
            )
    return results  # type: ignore[return-value]


def _compute_plans(ctx: RunContext, plans: list[EmbeddingPlan], what: str):
    """Yield (plan index, embeddings, has-data) as each plan's batches complete."""
    from distributed import as_completed

    client = ctx.cluster.client
    total = sum(len(p.parts) for p in plans)
    done: list[list] = [[None] * len(p.parts) for p in plans]
    left = [len(p.parts) for p in plans]
    # The block is "cut": scene reads count there; "sim-" tasks count as Sim.
    bar = progress(f"embedding {what}", total, enabled=ctx.show_progress)
    with ctx.profiler.stage("cut"), bar as advance:
        # Plans of one scene can share batches (same region, same windows: same
        # task key); each distinct task is computed once and serves all its owners.
        owners: dict[str, list[tuple[int, int]]] = {}
        unique = []
        for i, plan in enumerate(plans):
            for k, part in enumerate(plan.parts):
                if part.key not in owners:
                    owners[part.key] = []
                    unique.append(part)
                owners[part.key].append((i, k))
        # one submission: a tile's region, shared by several batches, is read once
        futures = client.compute(unique, optimize_graph=False)
        owner = {f.key: owners[part.key] for f, part in zip(futures, unique, strict=True)}
        pending = as_completed(futures)
        del futures  # each result is released as soon as it is gathered (with its inputs)
        for future in pending:
            result = future.result()
            for i, k in owner.pop(future.key):
                done[i][k] = result
                advance()
                left[i] -= 1
                if left[i] == 0:
                    emb, has = plans[i].assemble(done[i])
                    yield i, emb, has
            future.release()
            del future, result


@dataclass(frozen=True, eq=False)
class QueryCells:
    """One query's mean map and quantised uint8 map, per cell."""

    mean: CellMap
    u8: CellMap


def query_contributions(
    ctx: RunContext, method: Method, requests: Sequence[tuple[Embedded, str]]
) -> list[MapInputs]:
    """The windows and scores whose mean is each (scene, query)'s map.

    A method with a second pass (v2's expansion boxes) gets the extra windows
    of all requests embedded in one submission, so the cluster works on them
    together.
    """
    firsts = []
    for embedded, query in requests:
        q = method.query_vector(ctx.encoder, query)
        keep = np.flatnonzero(embedded.has_data)
        table = embedded.table.subset(keep)
        scores = embedded.scores(q)[keep]
        extra = method.refine(table, scores) if len(table) else None
        firsts.append((q, table, scores, extra if extra is not None and len(extra) else None))
    second = [
        (e.scene, f[3]) for (e, _), f in zip(requests, firsts, strict=True) if f[3] is not None
    ]
    seconds = iter(embed_scenes(ctx, second, what="expansion boxes", require_data=False))
    out = []
    for q, table, scores, extra in firsts:
        extra_scores = None
        if extra is not None:
            boxes = next(seconds)
            keep2 = np.flatnonzero(boxes.has_data)
            extra, extra_scores = extra.subset(keep2), boxes.scores(q)[keep2]
        out.append(method.contributions(table, scores, extra, extra_scores))
    return out


def cell_maps(height: int, width: int, inputs: MapInputs, *, uncovered_counts: bool) -> QueryCells:
    """Gnt on the cell grid: the mean map and its quantised uint8 map, per cell."""
    grid = CellGrid.from_windows(height, width, inputs.windows)
    mean = accumulate(grid, inputs.windows, inputs.scores)
    return QueryCells(mean, quantize(mean, uncovered_counts=uncovered_counts))


def describe_encoder(ctx: RunContext) -> dict:
    """The encoder as run.json records it."""
    enc = ctx.encoder
    return {
        "spec": ctx.spec.name,
        "checkpoint": ctx.spec.checkpoint,
        "version": enc.version,
        "dim": enc.embed_dim,
        "input_size": enc.input_size,
        "device": enc.device,
    }


def warn_if_clamped(scene: object, table: WindowTable) -> None:
    """Say which window sizes exceed the scene (those windows cover it whole)."""
    if table.clamped:
        log.warning(
            "%s: %dx%d is smaller than window size(s) %s; those windows cover the whole scene",
            scene,
            table.width,
            table.height,
            ", ".join(map(str, table.clamped)),
        )
