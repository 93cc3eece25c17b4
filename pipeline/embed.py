"""Sim: window embeddings as Dask tasks, and the cache that makes them reusable.

Image embeddings do not depend on the query, so they are the expensive,
reusable artefact of a scene: computed once per (scene content, encoder
version, window table, preprocessing) and kept in ``embeddings.zarr``. A
second query, a second run, or a resumed run embeds nothing again; any change
of the four parts of the key gives a new entry.

Graph: for each :class:`~selo.pipeline.cut.Batch`, a ``cut-…`` task crops and
resizes its windows from a slice of the lazy scene array and a ``sim-…`` task
embeds them with the encoder, which each worker process loads once
(:func:`selo.models.registry.cached_encoder`). On GPU clusters ``sim`` tasks
ask for the ``GPU`` resource.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import dask
import dask.array as da
import numpy as np

from selo.errors import CacheError
from selo.models import EncoderSpec
from selo.pipeline.cut import crop_batch, plan_batches, to_rows
from selo.pipeline.raster import default_cache_dir
from selo.pipeline.windows import WindowTable

__all__ = ["EmbeddingKey", "EmbeddingCache", "EmbeddingPlan", "embedding_plan"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddingKey:
    """Everything the embeddings of a scene depend on."""

    scene: str  # content hash of the scene file
    encoder: str  # encoder version (includes a hash of its weights)
    windows: str  # window table digest (scene size and every window)
    preprocess: str  # band choice, conversion to uint8, cut size and interpolation

    @property
    def id(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]


class EmbeddingCache:
    """Embeddings per :class:`EmbeddingKey` in one zarr store (``<root>/embeddings.zarr``).

    Each entry is a group ``<key id>`` holding ``embeddings`` (N×D float32),
    ``has_data`` (N bool) and ``windows`` (N×4 int64), with the key in its
    attributes. Entries are written under a temporary name and renamed when
    complete, so an interrupted write is never read back.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root else default_cache_dir()
        self.path = self.root / "embeddings.zarr"

    def get(self, key: EmbeddingKey, table: WindowTable) -> tuple[np.ndarray, np.ndarray] | None:
        """(embeddings, has_data) for ``key``, or None when not cached (or damaged)."""
        import zarr

        entry = self.path / key.id
        if not entry.is_dir():
            return None
        try:
            g = zarr.open_group(str(entry), mode="r")
            if g.attrs.get("key") != asdict(key) or not g.attrs.get("complete"):
                return None
            windows = g["windows"][:]
            if not np.array_equal(windows, table.windows):
                return None
            return g["embeddings"][:], g["has_data"][:]
        except Exception as e:  # noqa: BLE001 - a damaged entry is recomputed, not fatal
            log.warning("embedding cache entry %s is unreadable (%s); recomputing", entry, e)
            return None

    def put(
        self, key: EmbeddingKey, table: WindowTable, embeddings: np.ndarray, has_data: np.ndarray
    ) -> None:
        """Store an entry atomically; an entry written meanwhile by someone else is kept."""
        import zarr

        try:
            self.path.mkdir(parents=True, exist_ok=True)
            if not (self.path / "zarr.json").exists():
                zarr.open_group(str(self.path), mode="a")
            tmp = self.path / f".{key.id}.tmp-{uuid.uuid4().hex[:8]}"
            g = zarr.open_group(str(tmp), mode="w")
            e = np.ascontiguousarray(embeddings, dtype=np.float32)
            g.create_array(
                "embeddings", shape=e.shape, dtype="float32", chunks=(min(len(e), 4096), e.shape[1])
            )[:] = e
            g.create_array("has_data", shape=has_data.shape, dtype="bool")[:] = has_data
            g.create_array("windows", shape=table.windows.shape, dtype="int64")[:] = table.windows
            g.attrs.update({"key": asdict(key), "complete": True})
            try:
                os.replace(tmp, self.path / key.id)
            except OSError:  # written concurrently by another run: keep theirs
                _rmtree(tmp)
        except OSError as e:
            raise CacheError(
                f"{self.path}: cannot write the embedding cache ({e}); set --cache-dir"
            ) from None


def _rmtree(p: Path) -> None:
    import shutil

    shutil.rmtree(p, ignore_errors=True)


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


def embedding_plan(
    image: da.Array,
    table: WindowTable,
    spec: EncoderSpec,
    *,
    size: int,
    dim: int,
    valid: da.Array | None = None,
    tile: int = 2048,
    batch: int = 64,
    resources: dict | None = None,
    jpeg: bool = False,
    label: str = "",
) -> EmbeddingPlan:
    """The lazy Cut → Sim graph of ``table`` over a (3, H, W) uint8 dask ``image``.

    ``valid``: (H, W) bool dask array (False = nodata), or None. Windows with no
    data are not embedded (their rows are zero and flagged False). ``jpeg``:
    windows make the published code's JPEG round trip before embedding.
    ``label`` (e.g. the scene's name, through
    :func:`~selo.pipeline.profile.task_label`) goes into every task name —
    ``cut-region-<label>-…``, ``cut-<label>-…``, ``sim-<label>-…`` — so that the
    profiler can say how long each scene took.
    """
    tag = f"{label}-" if label else ""
    batches = plan_batches(table, tile=tile, batch=batch)
    parts = []
    regions: dict[tuple[int, int, int, int], tuple] = {}
    for b in batches:
        if b.bbox not in regions:  # one read per tile, shared by its batches
            r0, r1, c0, c1 = b.bbox
            region = _Region(image[:, r0:r1, c0:c1], None if valid is None else valid[r0:r1, c0:c1])
            regions[b.bbox] = dask.delayed(_read_region, pure=True)(
                region, dask_key_name=f"cut-region-{tag}{region.token}"
            )
        region = regions[b.bbox]
        rel = b.relative(table)
        token = dask.base.tokenize(region.key, rel, size, jpeg)
        crops = dask.delayed(_crop, pure=True)(
            region, rel, size, jpeg, dask_key_name=f"cut-{tag}{token}"
        )
        with dask.annotate(resources=resources) if resources else nullcontext():
            part = dask.delayed(_embed, pure=True, nout=2)(
                crops, spec, dask_key_name=f"sim-{tag}{dask.base.tokenize(token, spec)}"
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
    return to_rows(computed[0]), (computed[1] if len(computed) > 1 else None)


def _crop(region: tuple[np.ndarray, np.ndarray | None], windows: np.ndarray, size: int, jpeg: bool):
    rows, valid = region
    return crop_batch(rows, windows, size, valid, jpeg=jpeg)


def _embed(cut: tuple[np.ndarray, np.ndarray], spec: EncoderSpec) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, has-data) of a cut batch; windows without data get zero rows."""
    from selo.models.registry import cached_encoder

    crops, has_data = cut
    encoder = cached_encoder(spec)
    out = np.zeros((len(crops), encoder.embed_dim), dtype=np.float32)
    if has_data.any():
        out[has_data] = encoder.encode_images(crops[has_data])
    return out, has_data
