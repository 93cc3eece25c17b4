"""Sim: window embeddings as a lazy Dask graph (Cut → Sim), batch by batch.

Image embeddings do not depend on the query, so they are the expensive,
reusable artefact of a scene (kept by :class:`selo.pipeline.cache.Cache`); a
query's scores are then one matrix product (:func:`scores`).

Graph: for each :class:`~selo.pipeline.cut.Batch`, a ``cut-…`` task crops and
resizes its windows from a slice of the lazy scene array and a ``sim-…`` task
embeds them with the encoder, which each worker process loads once
(:func:`selo.models.registry.cached_encoder`). On GPU clusters ``sim`` tasks
ask for the ``GPU`` resource.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np

from selo.models import Encoder, EncoderSpec
from selo.pipeline.cut import DEFAULT_BATCH, CutSpec, crop_batch, plan_batches
from selo.pipeline.windows import WindowTable

__all__ = ["EmbeddingPlan", "embedding_plan", "scores"]

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


def scores(embeddings: np.ndarray, has_data: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine similarity of every window with a unit query vector (float64; NaN where
    the window has no data)."""
    s = (embeddings @ np.asarray(query, dtype=np.float32)).astype(np.float64)
    s[~has_data] = np.nan
    return s


def embedding_plan(
    image: da.Array,
    table: WindowTable,
    spec: EncoderSpec | Encoder,
    *,
    cut: CutSpec,
    dim: int,
    valid: da.Array | None = None,
    tile: int = 2048,
    batch: int = DEFAULT_BATCH,
    resources: dict | None = None,
) -> EmbeddingPlan:
    """The lazy Cut → Sim graph of ``table`` over an (H, W, 3) uint8 dask ``image``.

    ``valid``: (H, W) bool dask array (False = nodata), or None. Windows with no
    data are not embedded (their rows are zero and flagged False). ``cut`` says
    how windows become encoder input.
    """
    batches = plan_batches(table, tile=tile, batch=batch)
    parts = []
    regions: dict[tuple[int, int, int, int], tuple] = {}
    for b in batches:
        if b.bbox not in regions:  # one read per tile, shared by its batches
            r0, r1, c0, c1 = b.bbox
            region = _Region(image[r0:r1, c0:c1], None if valid is None else valid[r0:r1, c0:c1])
            regions[b.bbox] = dask.delayed(_read_region, pure=True)(
                region, dask_key_name=f"cut-region-{region.token}"
            )
        region = regions[b.bbox]
        rel = b.relative(table)
        token = dask.base.tokenize(region.key, rel, cut)
        crops = dask.delayed(_crop, pure=True)(region, rel, cut, dask_key_name=f"cut-{token}")
        with dask.annotate(resources=resources) if resources else nullcontext():
            part = dask.delayed(_embed, pure=True, nout=2)(
                crops, spec, dask_key_name=f"sim-{dask.base.tokenize(token, spec)}"
            )
        parts.append(part)
    return EmbeddingPlan(table, batches, parts, dim)


class _Region:
    """A window of the lazy scene (and of its has-data mask), read inside the task that needs it.

    Held in a plain object so that dask does not fold the window into the outer
    graph: computed in the task with graph optimisation, the read fuses down to
    exactly this window of the file (or staged store), so memory per task is
    one region, never whole chunks.
    """

    def __init__(self, pixels: da.Array, valid: da.Array | None) -> None:
        self.pixels = pixels
        self.valid = valid
        self.token = dask.base.tokenize(pixels.name, None if valid is None else valid.name)


def _read_region(region: _Region) -> tuple[np.ndarray, np.ndarray | None]:
    parts = [region.pixels] if region.valid is None else [region.pixels, region.valid]
    computed = dask.compute(*parts, scheduler="sync")
    return np.ascontiguousarray(computed[0]), (computed[1] if len(computed) > 1 else None)


def _crop(region: tuple[np.ndarray, np.ndarray | None], windows: np.ndarray, cut: CutSpec):
    rows, valid = region
    return crop_batch(rows, windows, cut, valid)


def _embed(
    cut: tuple[np.ndarray, np.ndarray], spec: EncoderSpec | Encoder
) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, has-data) of a cut batch; windows without data get zero rows.

    ``spec`` builds the encoder once per process; an :class:`Encoder` object (a user's
    own model) travels with the task as it is."""
    from selo.models.registry import cached_encoder

    crops, has_data = cut
    encoder = spec if isinstance(spec, Encoder) else cached_encoder(spec)
    out = np.zeros((len(crops), encoder.embed_dim), dtype=np.float32)
    if has_data.any():
        out[has_data] = encoder.encode_images(crops[has_data])
    return out, has_data
