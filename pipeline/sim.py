"""Sim: window embeddings as a lazy Dask graph (Cut → Sim), batch by batch.

Image embeddings do not depend on the query, so they are the expensive,
reusable artefact of a scene (kept by :class:`selo.pipeline.cache.Cache`); a
query's scores are then one matrix product (:func:`scores`).

Graph: for each strip of rows a ``cut-region-…`` task makes its region: read, or
(chained, :func:`~selo.pipeline.cut.plan_region_reads`) the rows it shares with the
strip before copied from that region and the rest read, so that each pixel is decoded
about once; for each :class:`~selo.pipeline.cut.Batch` a ``cut-…`` task crops and
resizes its windows from the region and a ``sim-…`` task embeds them with the encoder,
which each worker process loads once (:func:`selo.models.registry.cached_encoder`). On
GPU clusters ``sim`` tasks ask for the ``GPU`` resource. Tasks carry the scene's reader
(its source: paths and numbers) and other tasks' results, never an open file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import dask
import dask.array as da
import numpy as np
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

from ..errors import portable_errors
from ..models import Encoder, EncoderSpec
from . import DEFAULT_BATCH
from .cut import (
    CutSpec,
    carry_region,
    crop_batch,
    plan_batches,
    plan_region_reads,
    strip_rows,
)
from .windows import WindowTable

__all__ = ["EmbeddingPlan", "embedding_plan", "scores"]

LOOKAHEAD = 2  # regions read ahead of the last one whose windows are all embedded

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class EmbeddingPlan:
    """The lazy Cut → Sim graph of a window table, one part per batch.

    ``parts[i]`` is a dask Delayed of ``(embeddings n_i×D float32, has-data
    n_i bool)`` for ``batches[i]``; compute them in any way (as futures for a
    progress bar, or all at once with :meth:`lazy`) and :meth:`assemble` the
    results. Task names start with ``cut-`` (region reads and crops) and
    ``sim-`` (encoder), for the stage profiler; compute with graph
    optimisation off so that they keep those names and each tile's region is
    read once.
    """

    table: WindowTable
    batches: list
    parts: list
    dim: int
    #: with a preview shape: Delayed (rows of the preview, (n, cols, 3) uint8) per strip,
    #: cut from the regions Cut reads anyway (:meth:`assemble_preview`); empty otherwise
    preview_parts: list = field(default_factory=list)
    preview_shape: tuple[int, int] | None = None

    def lazy(self) -> tuple[da.Array, da.Array]:
        """All embeddings and has-data flags as two dask arrays, in table order."""
        order = self._order()
        embs, flags = [], []
        for b, part in zip(self.batches, self.parts, strict=True):
            embs.append(da.from_delayed(part[0], shape=(len(b.index), self.dim), dtype=np.float32))
            flags.append(da.from_delayed(part[1], shape=(len(b.index),), dtype=bool))
        return da.concatenate(embs)[order], da.concatenate(flags)[order]

    def assemble(
        self, results: list[tuple[np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Computed parts (in ``parts`` order) joined into table order."""
        order = self._order()
        emb = np.concatenate([e for e, _ in results])[order]
        has = np.concatenate([f for _, f in results])[order]
        return emb, has

    def _order(self) -> np.ndarray:
        return np.argsort(np.concatenate([b.index for b in self.batches]), kind="stable")

    def assemble_preview(self, results: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """The scene's preview from the computed ``preview_parts`` (row positions, pixels)."""
        out = np.empty((*self.preview_shape, 3), np.uint8)
        for rows, pixels in results:
            out[rows] = pixels
        return out


def preview_plan(
    bboxes: list[tuple[int, int, int, int]],
    height: int,
    width: int,
    shape: tuple[int, int],
) -> dict[int, tuple[np.ndarray, np.ndarray]] | None:
    """Which preview rows each region gives: {index in ``bboxes``: (preview row positions,
    source rows)}, every preview row from the last region (in reading order) that holds
    its source row; None when the regions do not hold every row and column (then read
    the preview apart).

    Preview pixel (i, j) is the scene pixel under its centre, ``decimation_indices``."""
    from .preview import decimation_indices

    rows = decimation_indices(height, shape[0])
    owner = np.full(len(rows), -1)
    for k, (r0, r1, c0, c1) in enumerate(bboxes):
        if c0 == 0 and c1 == width:
            owner[(rows >= r0) & (rows < r1)] = k
    if (owner < 0).any():
        return None
    return {
        k: (np.flatnonzero(owner == k), rows[owner == k])
        for k in range(len(bboxes))
        if (owner == k).any()
    }


def scores(embeddings: np.ndarray, has_data: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine similarity of every window with a unit query vector (float64; NaN where
    the window has no data)."""
    s = (embeddings @ np.asarray(query, dtype=np.float32)).astype(np.float64)
    s[~has_data] = np.nan
    return s


def embedding_plan(
    regions: Callable[[int, int, int, int], tuple[np.ndarray, np.ndarray | None]],
    table: WindowTable,
    spec: EncoderSpec | Encoder,
    *,
    cut: CutSpec,
    dim: int,
    strip: int | None = None,
    batch: int = DEFAULT_BATCH,
    resources: dict | None = None,
    label: str = "",
    preview: tuple[int, int] | None = None,
    chain: int | None = None,
) -> EmbeddingPlan:
    """The lazy Cut → Sim graph of ``table`` over a scene's ``regions``.

    ``regions(r0, r1, c0, c1)`` gives ``(rgb (h, w, 3) uint8, valid (h, w) bool or None)``
    (:func:`selo.pipeline.scene.region_reader`); it is called once per strip, inside
    the task, for the rows that the region before (in a chain of ``chain`` strips) does
    not hold; a reader's ``row_blocks`` (the rows its source decodes together) and
    ``into`` (a read into a given array) let each pixel be decoded once. Windows with no
    data are not embedded (their rows are zero and flagged False). ``cut`` says how
    windows become encoder input. ``label`` (e.g. the scene's name, through
    :func:`~selo.pipeline.profile.task_label`) goes into every task name —
    ``cut-region-<label>-…``, ``cut-<label>-…``, ``sim-<label>-…`` — so that the
    profiler can say how long each scene took. With ``preview`` (rows, cols), the scene's
    preview is cut from the same regions (``cut-preview-…`` tasks), so the scene's pixels
    are decoded once for both, where the regions hold every row and column.
    """
    tag = f"{label}-" if label else ""
    strip = strip_rows(table.width) if strip is None else strip
    batches = plan_batches(table, strip=strip, batch=batch)
    boxes = list(dict.fromkeys(b.bbox for b in batches))  # one region per strip
    reads = plan_region_reads(
        boxes,
        height=table.height,
        strip=strip,
        blocks=getattr(regions, "row_blocks", None),
        chain=chain,
    )
    rows = (
        None
        if preview is None
        else preview_plan([r.box for r in reads], table.height, table.width, preview)
    )
    if rows is not None:
        from .preview import decimation_indices

        cols = decimation_indices(table.width, preview[1])
    of_box: dict[tuple[int, int, int, int], list[int]] = {}
    for k, b in enumerate(batches):
        of_box.setdefault(b.bbox, []).append(k)
    # The graph is written out (a region depends on the region before and on the tasks
    # two regions up): dask.delayed would merge and cull each argument's whole graph again.
    tokenize = dask.base.tokenize
    cuts: dict = {}  # cut-… tasks (reads, crops, preview rows)
    sims: dict = {}  # sim-… tasks (the encoder; with the resources asked for)
    made: list[str] = []  # the key of each region
    users: list[list[str]] = []  # the keys of the tasks that read each region
    parts: list[str] = [""] * len(batches)
    previews: list[str] = []
    for i, (bbox, read) in enumerate(zip(boxes, reads, strict=True)):
        after = users[i - LOOKAHEAD] if i >= LOOKAHEAD else []
        if read.carried:
            before = reads[i - 1].box
            key = f"cut-region-{tag}{tokenize(regions, made[-1], before, read, after)}"
            cuts[key] = (_carried, regions, made[-1], before, read, after)
        else:
            key = f"cut-region-{tag}{tokenize(regions, read.box, after)}"
            cuts[key] = (_read, regions, read.box, after)
        made.append(key)
        users.append([])
        for k in of_box[bbox]:  # windows relative to the region as read (maybe wider)
            rel = table.windows[batches[k].index] - np.array(read.box)[[0, 0, 2, 2]]
            token = tokenize(key, rel, cut)
            cuts[f"cut-{tag}{token}"] = (_crop, key, rel, cut)
            parts[k] = f"sim-{tag}{tokenize(token, spec)}"
            sims[parts[k]] = (_embed, f"cut-{tag}{token}", spec)
            users[-1].append(parts[k])
        if rows is not None and i in rows:
            positions, source = rows[i]
            previews.append(f"cut-preview-{tag}{tokenize(key, source, cols)}")
            cuts[previews[-1]] = (_preview_rows, key, positions, source - read.box[0], cols)
            users[-1].append(previews[-1])
    name = tokenize(made, parts, previews)
    cut_layer, sim_layer = f"cut-{tag}{name}", f"sim-{tag}{name}"
    annotations = {"resources": resources} if resources else None  # GPUs for the encoder
    graph = HighLevelGraph(
        {cut_layer: MaterializedLayer(cuts), sim_layer: MaterializedLayer(sims, annotations)},
        {cut_layer: set(), sim_layer: {cut_layer}},
    )
    sim_parts = [Delayed(k, graph, length=2, layer=sim_layer) for k in parts]
    preview_parts = [Delayed(k, graph, layer=cut_layer) for k in previews]
    if rows is None:
        return EmbeddingPlan(table, batches, sim_parts, dim)
    return EmbeddingPlan(table, batches, sim_parts, dim, preview_parts, tuple(preview))


@portable_errors
def _read(regions, box: tuple[int, int, int, int], after: list):
    """A region read whole. ``after``: the results of the tasks two regions up (unused),
    which it waits for, so that at most three regions are in memory in any order of
    running the tasks."""
    return regions(*box)


@portable_errors
def _carried(regions, previous, before, read, after: list):
    """A region chained to the one before (:func:`~selo.pipeline.cut.carry_region`);
    ``after`` as in :func:`_read`."""
    return carry_region(regions, previous, before, read)


def _preview_rows(region, positions: np.ndarray, rows: np.ndarray, cols: np.ndarray):
    rgb, _ = region  # pixels without data are already 0 in the region
    return positions, np.ascontiguousarray(rgb[rows][:, cols])


@portable_errors
def _crop(region: tuple[np.ndarray, np.ndarray | None], windows: np.ndarray, cut: CutSpec):
    rows, valid = region
    return crop_batch(rows, windows, cut, valid)


@portable_errors
def _embed(
    cut: tuple[np.ndarray, np.ndarray], spec: EncoderSpec | Encoder
) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, has-data) of a cut batch; windows without data get zero rows.

    ``spec`` builds the encoder once per process; an :class:`Encoder` object (a user's
    own model) travels with the task as it is."""
    from ..models.registry import cached_encoder

    crops, has_data = cut
    encoder = spec if isinstance(spec, Encoder) else cached_encoder(spec)
    out = np.zeros((len(crops), encoder.embed_dim), dtype=np.float32)
    if has_data.any():
        out[has_data] = encoder.encode_images(crops[has_data])
    return out, has_data
