"""The collection index: every window of every scene as one matrix, and a sentence's best
regions across all of them.

A sentence is one query vector ``q``. Each window's score is ``e · q`` (its embedding
``e``); each cell's mean is the mean score of the windows covering it, so the cell means
of every scene are one matrix product followed by Gnt on the cells, computed here for
all scenes at once with two-dimensional difference arrays (four signed corners per
window, two cumulative sums per scene: O(windows + cells), no loop over windows).
Regions are then found on the cells (:mod:`.regions`) of the scenes that matter: scenes
are visited by decreasing bound on their best cell, and the visit stops as soon as the
``top``-th region found scores above every bound left.

Two ways to bound a scene:

- ``exact``: every window's exact score (the whole matrix is read once per search, in
  bounded chunks, and multiplied by the queries); the bound is the scene's exact best
  cell, so the result is exact (float32 products, as ``selo localize`` scores windows).
- ``int8``: each window's embedding minus the collection's mean, as int8 with one scale
  per window (a quarter of the matrix), gives approximate scores and cell means for
  every scene (torch's int8 weight-only matrix product, the query split into two
  bfloat16 halves); a scene's bound is its best approximate cell plus a margin: the
  largest error of the approximate cell means over a few calibration scenes, measured
  for each query, times :data:`MARGIN`. The scenes within reach are re-ranked exactly
  from the matrix, so every reported score is exact; a region is missed only when a
  cell's error exceeds the margin (recall@K against exact: ``benchmarks/bench_search.py``).

A low-rank projection (PCA) was measured too: it keeps what is common to many windows,
but its error on the cells (0.02–0.03 even with 256 of 512 axes, on the benchmark's
synthetic embeddings) is larger than the gaps between the scenes' best cells, so nearly
every scene had to be re-ranked; int8's error there is below 0.001.

Layout of an index folder (this module owns it; the cache says where it lives)::

    index.json     format, encoder, width, scenes (label, key, grid, rows, cell shape),
                   CRC-32 of every file, complete
    windows.f32    the embeddings of the windows with data, float32 (n, width), by scene
    cells.npz      per window its cell rectangle; per scene its cell edges
    int8/          mean.f32 (width), scales.f32 (n), codes.i8 (n, width padded to a
                   multiple of 64 with zeros), int8.json (its CRC-32s)

Files are read a chunk at a time, mapped into memory and dropped after use: resident
memory is two chunks, the per-window corner indices (32 bytes a window) and per-cell
counts, whatever the size of the matrix.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine

from ..errors import CollectionError, ParameterError
from . import EXACT_MAX_WINDOWS, INDEX_MODES
from .gnt import CellGrid
from .regions import CellRegion, cell_regions
from .scene import Grid
from .store import atomic_path, atomic_write_text

__all__ = [
    "FORMAT",
    "MARGIN",
    "MODES",
    "EXACT_MAX_WINDOWS",
    "CollectionIndex",
    "IndexDamagedError",
    "IndexHit",
    "IndexScene",
    "IndexWriter",
    "SceneCells",
    "cell_means",
    "cell_sums",
    "check_mode",
    "choose_mode",
    "quantize_rows",
]

log = logging.getLogger(__name__)

FORMAT = 1  # in index.json: another format is rebuilt, never read
MODES = tuple(m for m in INDEX_MODES if m != "auto")  # the searches an index runs
MARGIN = 1.5  # the int8 bound's margin: this many times the largest calibration error
CALIBRATION_SCENES = 8
MEAN_SAMPLE = 131_072  # windows the collection's mean is taken over
INT8_ALIGN = 64  # int8 rows are zero-padded to a multiple of this (the kernel needs 16)
INT8_THREADS = 4  # at most this many threads scan the int8 codes
CHUNK_BYTES = 32 * 2**20  # one read of a matrix
BLOCK_SCENES = 64  # scenes whose cell maps are made together
_SIGNS = np.array([1.0, -1.0, -1.0, 1.0])  # corners (r0, c0), (r0, c1), (r1, c0), (r1, c1)


class IndexDamagedError(Exception):
    """An index folder that cannot be used as it is (the caller builds it again)."""


@dataclass(frozen=True)
class IndexScene:
    """One scene of the index: how outputs name it, its grid, its rows and cells."""

    label: str
    key: str  # its embedding cache key
    grid: Grid
    start: int  # its windows are rows start:stop of the matrix
    stop: int
    cells: tuple[int, int]  # the cell grid's shape

    def as_json(self) -> dict:
        g = self.grid
        return {
            "label": self.label,
            "key": self.key,
            "height": g.height,
            "width": g.width,
            "crs": g.crs,
            "transform": list(g.transform)[:6],
            "rows": [self.start, self.stop],
            "cells": list(self.cells),
        }

    @classmethod
    def from_json(cls, d: dict) -> IndexScene:
        grid = Grid(int(d["height"]), int(d["width"]), d["crs"], Affine(*d["transform"]))
        return cls(d["label"], d["key"], grid, *map(int, d["rows"]), tuple(map(int, d["cells"])))


@dataclass(frozen=True, eq=False)
class SceneCells:
    """A scene's mean map for one query, on its cells (``mean`` is -inf where uncovered)."""

    row_edges: np.ndarray
    col_edges: np.ndarray
    mean: np.ndarray
    covered: np.ndarray


@dataclass(frozen=True, eq=False)
class IndexHit:
    """A ranked region: the query's number, its rank (1 first), the scene's number in the
    index, the region on the scene's cells and the scene's cell map."""

    query: int
    rank: int
    scene: int
    region: CellRegion
    cells: SceneCells

    @property
    def score(self) -> float:
        return self.region.score


def cell_sums(
    corners: np.ndarray, values: np.ndarray, scenes: int, shape: tuple[int, int]
) -> np.ndarray:
    """Per cell, the sum of ``values`` over the windows covering it, for ``scenes`` scenes
    sharing the cell shape ``(nr, nc)``: (scenes, nr, nc).

    ``corners`` holds each window's four flat indices into the scenes' (nr + 1, nc + 1)
    difference arrays, laid one after another: a window adds its value at its top-left
    and bottom-right corners and subtracts it at the other two, and cumulative sums
    along rows, then columns, give each cell's sum."""
    nr, nc = shape
    weights = (np.asarray(values, dtype=np.float64)[:, None] * _SIGNS).ravel()
    sums = np.bincount(corners.ravel(), weights, minlength=scenes * (nr + 1) * (nc + 1))
    sums = sums.reshape(scenes, nr + 1, nc + 1)
    np.cumsum(sums, axis=1, out=sums)
    np.cumsum(sums, axis=2, out=sums)
    return sums[:, :nr, :nc]


def cell_means(corners: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The mean score per cell (:func:`cell_sums` over ``counts``, the windows per cell);
    -inf where no window covers the cell."""
    sums = cell_sums(corners, scores, counts.shape[0], counts.shape[1:])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(counts > 0, sums / counts, -np.inf)


# --- writing ------------------------------------------------------------------------------------


class IndexWriter:
    """Writes an index folder scene by scene, in bounded memory::

    with IndexWriter(folder, width=512, encoder=version) as w:
        w.add(label, key, grid, windows, has_data, embeddings)
        ...
    # complete here; with int8=True also its int8 part
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        width: int,
        encoder: str,
        preprocess: str = "",
        int8: bool = False,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.width = int(width)
        self.encoder = encoder
        self.preprocess = preprocess
        self.int8 = int8
        self.scenes: list[IndexScene] = []
        self.extra: dict = {}
        self._rows = 0
        self._rects: list[np.ndarray] = []
        self._edges: list[tuple[np.ndarray, np.ndarray]] = []
        self._crc = 0
        self._file = (self.folder / "windows.f32").open("wb")

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, kind, *exc) -> None:
        if kind is None:
            self.finish()
        else:
            self._file.close()

    def add(
        self,
        label: str,
        key: str,
        grid: Grid,
        windows: np.ndarray,
        has_data: np.ndarray,
        embeddings: np.ndarray,
        *,
        encoder: str | None = None,
        preprocess: str | None = None,
    ) -> IndexScene:
        """Append a scene: its windows with data, their embeddings and cell rectangles.

        ``encoder`` and ``preprocess`` (its embedding key's parts) must be the index's:
        scenes embedded by another encoder or another preprocessing cannot be compared."""
        for what, mine, theirs in (
            ("encoder", self.encoder, encoder),
            ("preprocessing", self.preprocess, preprocess),
        ):
            if theirs is not None and theirs != mine:
                first = self.scenes[0].label if self.scenes else "the collection"
                raise CollectionError(
                    f"{label}: embedded with {what} {theirs!r}, but {first} with {mine!r}; "
                    "a collection is searched with one encoder: embed every scene with it"
                )
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.width:
            raise CollectionError(
                f"{label}: embeddings of shape {embeddings.shape}, but the collection's "
                f"are {self.width} wide; a collection is searched with one encoder"
            )
        keep = np.flatnonzero(np.asarray(has_data, dtype=bool))
        if len(keep) == 0:
            raise CollectionError(f"{label}: every pixel is nodata, nothing to search")
        w = np.asarray(windows, dtype=np.int64)[keep]
        cells = CellGrid.from_windows(grid.height, grid.width, w)
        rows = np.searchsorted(cells.row_edges, w[:, :2])
        cols = np.searchsorted(cells.col_edges, w[:, 2:])
        self._rects.append(np.concatenate([rows, cols], axis=1).astype(np.int32))
        self._edges.append((cells.row_edges, cells.col_edges))
        data = np.ascontiguousarray(embeddings[keep], dtype=np.float32)
        self._crc = zlib.crc32(data, self._crc)
        self._file.write(data)
        scene = IndexScene(label, key, grid, self._rows, self._rows + len(keep), cells.shape)
        self._rows += len(keep)
        self.scenes.append(scene)
        return scene

    def finish(self) -> None:
        """Write the cells, the record and (with ``int8``) the int8 part."""
        self._file.close()
        if not self.scenes:
            raise CollectionError("no scene to index")
        rows = [r for r, _ in self._edges]
        cols = [c for _, c in self._edges]
        arrays = {
            "rects": np.concatenate(self._rects),
            "row_edges": np.concatenate(rows),
            "col_edges": np.concatenate(cols),
            "row_starts": np.cumsum([0, *map(len, rows)]),
            "col_starts": np.cumsum([0, *map(len, cols)]),
        }
        np.savez(self.folder / "cells.npz", **arrays)
        record = {
            "format": FORMAT,
            "encoder": self.encoder,
            "preprocess": self.preprocess,
            "width": self.width,
            "windows": self._rows,
            "scenes": [s.as_json() for s in self.scenes],
            "crc32": {
                "windows.f32": self._crc,
                "cells.npz": _crc_file(self.folder / "cells.npz"),
            },
            **self.extra,
            "complete": True,
        }
        atomic_write_text(self.folder / "index.json", json.dumps(record), what="index record")
        if self.int8:
            with CollectionIndex(self.folder) as index:
                index.add_int8()


def _crc_file(path: Path, buffer: int = CHUNK_BYTES) -> int:
    crc = 0
    with path.open("rb", buffering=0) as f:
        block = bytearray(buffer)
        view = memoryview(block)
        while n := f.readinto(block):
            crc = zlib.crc32(view[:n], crc)
    return crc


# --- reading ------------------------------------------------------------------------------------


class _Matrix:
    """A (rows, width) matrix in a file (float32, or another ``dtype``), read by rows into
    reused buffers."""

    def __init__(self, path: Path, rows: int, width: int, dtype=np.float32) -> None:
        self.path, self.rows, self.width = path, rows, width
        self.dtype = np.dtype(dtype)
        try:
            self.fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            raise IndexDamagedError(f"{path}: {e.strerror}") from None
        size = os.fstat(self.fd).st_size
        if size != rows * width * self.dtype.itemsize:
            os.close(self.fd)
            raise IndexDamagedError(
                f"{path}: {size} bytes, not {rows * width * self.dtype.itemsize}"
            )
        self.chunk = max(1, CHUNK_BYTES // (self.dtype.itemsize * max(width, 1)))

    def close(self) -> None:
        os.close(self.fd)

    def read(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows start:stop (into ``out`` when given)."""
        if out is None:
            out = np.empty((stop - start, self.width), self.dtype)
        view = memoryview(out).cast("B")
        offset, done = start * self.width * self.dtype.itemsize, 0
        while done < len(view):
            n = os.preadv(self.fd, [view[done:]], offset + done)
            if n <= 0:
                raise IndexDamagedError(f"{self.path}: ends before row {stop}")
            done += n
        return out

    def chunks(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) chunk after chunk, each a read-only view of the file mapped into
        memory (the page cache, not copied: copies cost more than the products); a chunk
        is unmapped once the caller drops it, so at most two are resident."""
        stop = self.rows if stop is None else stop
        row_bytes = self.width * self.dtype.itemsize
        for a in range(start, stop, self.chunk):
            b = min(a + self.chunk, stop)
            offset = a * row_bytes
            aligned = offset - offset % mmap.ALLOCATIONGRANULARITY
            try:
                # copy-on-write: a writable view (torch takes no read-only arrays), never
                # written back
                mapped = mmap.mmap(
                    self.fd, offset + (b - a) * row_bytes - aligned, offset=aligned,
                    access=mmap.ACCESS_COPY,
                )  # fmt: skip
            except (OSError, ValueError) as e:
                raise IndexDamagedError(f"{self.path}: {e}") from None
            rows = np.frombuffer(mapped, self.dtype, (b - a) * self.width, offset - aligned)
            yield a, rows.reshape(b - a, self.width)

    def product(self, right: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        """``rows[start:stop] @ right`` (float32), chunk by chunk."""
        stop = self.rows if stop is None else stop
        out = np.empty((stop - start, right.shape[1]), np.float32)
        for a, rows in self.chunks(start, stop):
            np.matmul(rows, right, out=out[a - start : a - start + len(rows)])
        return out

    def crc32(self) -> int:
        crc = 0
        for _, rows in self.chunks():
            crc = zlib.crc32(rows, crc)
        return crc


@dataclass(frozen=True, eq=False)
class _Block:
    """Consecutive scenes with one cell shape: their cell maps are made together."""

    first: int  # scene numbers first:last
    last: int
    start: int  # their rows start:stop
    stop: int
    corners: np.ndarray  # (stop - start, 4) flat corner indices into the block's arrays
    counts: np.ndarray  # (m, nr, nc) windows per cell
    bases: np.ndarray  # each scene's first corner index


class CollectionIndex:
    """An index folder opened for searching (see the module); ``with`` closes its files."""

    def __init__(self, folder: str | os.PathLike, *, verify: bool = False) -> None:
        self.folder = Path(folder)
        try:
            record = json.loads((self.folder / "index.json").read_text())
            if record.get("format") != FORMAT or record.get("complete") is not True:
                raise IndexDamagedError(f"{self.folder}: not a complete index of format {FORMAT}")
            self.record = record
            self.encoder: str = record["encoder"]
            self.preprocess: str = record.get("preprocess", "")
            self.width = int(record["width"])
            self.scenes = [IndexScene.from_json(s) for s in record["scenes"]]
            self.rows = int(record["windows"])
            with np.load(self.folder / "cells.npz") as z:
                cells = {k: z[k] for k in z.files}
        except IndexDamagedError:
            raise
        except Exception as e:  # noqa: BLE001 - anything unreadable is rebuilt
            raise IndexDamagedError(f"{self.folder}: {e}") from None
        self.matrix = _Matrix(self.folder / "windows.f32", self.rows, self.width)
        self.int8: _Int8 | None = None
        try:
            if verify:
                self._verify(record)
            self._cells(cells)
        except IndexDamagedError:
            self.close()
            raise
        except Exception as e:  # noqa: BLE001
            self.close()
            raise IndexDamagedError(f"{self.folder}: {e}") from None

    def __enter__(self) -> CollectionIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.matrix.close()
        if self.int8 is not None:
            self.int8.codes.close()

    def _verify(self, record: dict) -> None:
        crc = record.get("crc32", {})
        if crc.get("cells.npz") != _crc_file(self.folder / "cells.npz"):
            raise IndexDamagedError(f"{self.folder}/cells.npz: its checksum does not match")
        if crc.get("windows.f32") != self.matrix.crc32():
            raise IndexDamagedError(f"{self.folder}/windows.f32: its checksum does not match")

    def _cells(self, cells: dict) -> None:
        """Corner indices and counts per block; the cell edges of every scene."""
        rects = cells["rects"]
        if rects.shape != (self.rows, 4) or self.scenes[-1].stop != self.rows:
            raise IndexDamagedError(f"{self.folder}: cells do not match the windows")
        rs, cs = cells["row_starts"], cells["col_starts"]
        self.edges = [
            (cells["row_edges"][rs[i] : rs[i + 1]], cells["col_edges"][cs[i] : cs[i + 1]])
            for i in range(len(self.scenes))
        ]
        self.blocks: list[_Block] = []
        self.block_of = np.empty(len(self.scenes), np.int64)
        first = 0
        while first < len(self.scenes):
            shape = self.scenes[first].cells
            last = first + 1
            while (
                last < len(self.scenes)
                and last - first < BLOCK_SCENES
                and self.scenes[last].cells == shape
            ):
                last += 1
            nr, nc = shape
            size = (nr + 1) * (nc + 1)
            start, stop = self.scenes[first].start, self.scenes[last - 1].stop
            local = np.repeat(
                np.arange(last - first, dtype=np.int64) * size,
                [s.stop - s.start for s in self.scenes[first:last]],
            )
            r = rects[start:stop].astype(np.int64)
            a, b, c, d = r[:, 0] * (nc + 1), r[:, 1] * (nc + 1), r[:, 2], r[:, 3]
            corners = local[:, None] + np.stack([a + c, a + d, b + c, b + d], axis=1)
            counts = np.ascontiguousarray(
                cell_sums(corners, np.ones(stop - start), last - first, shape)
            )
            bases = np.arange(last - first, dtype=np.int64) * size
            self.blocks.append(_Block(first, last, start, stop, corners, counts, bases))
            self.block_of[first:last] = len(self.blocks) - 1
            first = last

    # --- the int8 part ------------------------------------------------------------------------

    def add_int8(self) -> None:
        """Write the int8 part (``int8/``, atomically) from the matrix, and open it."""
        step = max(1, self.rows // MEAN_SAMPLE)
        total, n = np.zeros(self.width), 0
        for a, rows in self.matrix.chunks():
            sample = rows[-a % step :: step]  # rows that are multiples of step
            total += sample.sum(axis=0, dtype=np.float64)
            n += len(sample)
        mean = (total / n).astype(np.float32)
        padded = -(-self.width // INT8_ALIGN) * INT8_ALIGN
        with atomic_path(self.folder / "int8", folder=True, what="index") as tmp:
            tmp.mkdir()
            (tmp / "mean.f32").write_bytes(mean.tobytes())
            crc_codes = crc_scales = 0
            with (tmp / "codes.i8").open("wb") as codes_file:
                with (tmp / "scales.f32").open("wb") as scales_file:
                    for _, rows in self.matrix.chunks():
                        codes, scales = quantize_rows(rows - mean, padded)
                        crc_codes = zlib.crc32(codes, crc_codes)
                        crc_scales = zlib.crc32(scales, crc_scales)
                        codes_file.write(codes)
                        scales_file.write(scales)
            info = {"width": padded, "crc32": {"codes.i8": crc_codes, "scales.f32": crc_scales}}
            (tmp / "int8.json").write_text(json.dumps(info))
        self.int8 = _Int8.open(self.folder / "int8", self.rows, self.width)

    def open_int8(self, *, verify: bool = False) -> bool:
        """Open the int8 part; False when there is none (or it is damaged)."""
        try:
            self.int8 = _Int8.open(self.folder / "int8", self.rows, self.width, verify)
        except IndexDamagedError as e:
            if (self.folder / "int8").exists():
                log.warning("index part %s is damaged; making it again", e)
            return False
        return True

    # --- searching ----------------------------------------------------------------------------

    def check_encoder(self, version: str) -> None:
        """CollectionError unless queries of encoder ``version`` can search this index."""
        if version != self.encoder:
            raise CollectionError(
                f"{self.folder}: the collection was embedded with {self.encoder!r}, not "
                f"{version!r}; search it with the encoder that embedded it"
            )

    def scene_cells(self, scene: int, scores: np.ndarray) -> SceneCells:
        """The scene's cell map from its windows' scores."""
        block = self.blocks[self.block_of[scene]]
        s = self.scenes[scene]
        corners = block.corners[s.start - block.start : s.stop - block.start]
        local = corners - block.bases[scene - block.first]
        counts = block.counts[scene - block.first][None]
        mean = cell_means(local, scores, counts)[0]
        return SceneCells(*self.edges[scene], mean, counts[0] > 0)

    def best_cells(self, scores: np.ndarray) -> np.ndarray:
        """Every scene's best cell mean from all windows' scores (n,)."""
        best = np.empty(len(self.scenes))
        for block in self.blocks:
            means = cell_means(block.corners, scores[block.start : block.stop], block.counts)
            best[block.first : block.last] = means.max(axis=(1, 2))
        return best

    def search(
        self,
        queries: np.ndarray,
        *,
        top: int,
        mode: str = "exact",
        stats: dict | None = None,
    ) -> list[list[IndexHit]]:
        """The ``top`` best regions of the collection for each query vector (rows of
        ``queries``, unit length), ranked; see the module for ``mode``. ``stats``, when
        given, receives what the search did (scenes re-ranked, margins)."""
        q = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        if q.shape[1] != self.width:
            raise CollectionError(
                f"query vectors are {q.shape[1]} wide, the collection's embeddings "
                f"{self.width}; search it with the encoder that embedded it"
            )
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise ParameterError(f"top must be a positive whole number, got {top!r}")
        if mode not in MODES:
            raise ParameterError(f"unknown index mode {mode!r}; use one of {', '.join(MODES)}")
        if mode == "int8" and self.int8 is None:
            raise ParameterError("this index has no int8 part: add_int8() or open_int8() first")
        exact: dict[int, np.ndarray] = {}  # scene -> exact scores of its windows, all queries

        def exact_scores(scene: int) -> np.ndarray:
            if scene not in exact:
                s = self.scenes[scene]
                exact[scene] = self.matrix.product(q.T, s.start, s.stop)
            return exact[scene]

        if mode == "exact":
            everything = self.matrix.product(q.T)
            for i, s in enumerate(self.scenes):
                exact[i] = everything[s.start : s.stop]
            bounds = [self.best_cells(everything[:, k]) for k in range(len(q))]
            margins = [0.0] * len(q)
        else:
            approx = self.int8.scores(q)
            bounds, margins = [], []
            for k in range(len(q)):
                margin = MARGIN * self._calibrate(approx[:, k], k, exact_scores)
                bounds.append(self.best_cells(approx[:, k]) + margin)
                margins.append(margin)
        out = []
        visited = []
        for k in range(len(q)):
            ranked, n = _rank(
                bounds[k], lambda i, k=k: self.scene_cells(i, exact_scores(i)[:, k]), top
            )
            visited.append(n)
            out.append(
                [IndexHit(k, r, scene, region, cells) for r, (scene, region, cells) in ranked]
            )
        if stats is not None:
            stats.update(mode=mode, scenes_reranked=visited, margins=margins)
        return out

    def _calibrate(
        self, approx: np.ndarray, k: int, exact_scores: Callable[[int], np.ndarray]
    ) -> float:
        """The largest error of the approximate cell means over the calibration scenes."""
        n = len(self.scenes)
        picks = np.unique(np.linspace(0, n - 1, min(n, CALIBRATION_SCENES)).round().astype(int))
        error = 0.0
        for i in picks.tolist():
            s = self.scenes[i]
            true = self.scene_cells(i, exact_scores(i)[:, k])
            guess = self.scene_cells(i, approx[s.start : s.stop])
            error = max(error, float(np.abs(true.mean - guess.mean)[true.covered].max()))
        return error


def _rank(
    bounds: np.ndarray, cells_of: Callable[[int], SceneCells], top: int
) -> tuple[list[tuple[int, tuple[int, CellRegion, SceneCells]]], int]:
    """The ``top`` best regions, visiting scenes by decreasing bound until the ``top``-th
    region found scores above every bound left; ([(rank, (scene, region, cells))], scenes
    visited). Ties rank by scene, then by the scenes' own order."""
    order = np.argsort(-np.asarray(bounds), kind="stable")
    found: list[tuple[float, int, int, CellRegion, SceneCells]] = []
    visited = 0
    for scene in order.tolist():
        if len(found) >= top and found[top - 1][0] > bounds[scene]:
            break
        if not np.isfinite(bounds[scene]):
            break  # no covered cell left anywhere
        visited += 1
        cells = cells_of(scene)
        floor = found[top - 1][0] if len(found) >= top else -np.inf
        for n, region in enumerate(cell_regions(cells.mean, cells.covered, floor=floor, limit=top)):
            found.append((region.score, scene, n, region, cells))
        found.sort(key=lambda f: (-f[0], f[1], f[2]))
        del found[top:]
    return [(r, (s, reg, c)) for r, (_, s, _, reg, c) in enumerate(found, start=1)], visited


def quantize_rows(rows: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row as int8 codes (zero-padded to ``width`` columns) and its scale,
    ``row ≈ codes * scale``, the scale being the row's largest magnitude / 127."""
    scales = np.abs(rows).max(axis=1) / 127
    scales[scales == 0] = 1
    codes = np.zeros((len(rows), width), np.int8)
    codes[:, : rows.shape[1]] = np.rint(rows / scales[:, None])
    return codes, scales.astype(np.float32)


class _Int8:
    """The int8 part of an index: the mean, and every window's codes and scale."""

    def __init__(self, mean: np.ndarray, scales: np.ndarray, codes: _Matrix) -> None:
        self.mean, self.scales, self.codes = mean, scales, codes

    @classmethod
    def open(cls, folder: Path, rows: int, width: int, verify: bool = False) -> _Int8:
        try:
            info = json.loads((folder / "int8.json").read_text())
            padded = int(info["width"])
            mean = np.fromfile(folder / "mean.f32", np.float32)
            scales = np.fromfile(folder / "scales.f32", np.float32)
        except Exception as e:  # noqa: BLE001 - anything unreadable is made again
            raise IndexDamagedError(f"{folder}: {e}") from None
        if mean.shape != (width,) or scales.shape != (rows,) or padded % INT8_ALIGN:
            raise IndexDamagedError(f"{folder}: parts of the wrong shape")
        if not (np.isfinite(mean).all() and np.isfinite(scales).all()):
            raise IndexDamagedError(f"{folder}: non-finite values")
        codes = _Matrix(folder / "codes.i8", rows, padded, np.int8)
        crc = info.get("crc32", {})
        if verify and (
            codes.crc32() != crc.get("codes.i8") or zlib.crc32(scales) != crc.get("scales.f32")
        ):
            codes.close()
            raise IndexDamagedError(f"{folder}: a checksum does not match")
        return cls(mean, scales, codes)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """Approximate scores of every window (rows, queries): ``q·mean + scale (codes·q)``;
        each chunk of codes is split among the cores (the kernel uses about one each)."""
        q = np.zeros((len(queries), self.codes.width), np.float32)
        q[:, : queries.shape[1]] = queries
        product = _int8_product(q, self.codes.chunk)
        out = np.empty((self.codes.rows, len(q)), np.float32)
        workers = max(1, min(INT8_THREADS, os.cpu_count() or 1))
        with ThreadPoolExecutor(workers) as pool:
            for a, codes in self.codes.chunks():
                step = -(-len(codes) // workers)
                starts = range(0, len(codes), step)
                parts = pool.map(lambda s, c=codes, n=step: product(c[s : s + n]), starts)
                for s, part in zip(starts, parts, strict=True):
                    out[a + s : a + s + len(part)] = part
        out *= self.scales[:, None]
        out += queries @ self.mean
        return out


def _int8_product(queries: np.ndarray, rows: int) -> Callable[[np.ndarray], np.ndarray]:
    """``codes -> codes @ queries.T`` (float32) for int8 codes (at most ``rows`` of them) as
    wide as ``queries``: torch's int8 weight-only kernel, the queries split into two
    bfloat16 halves (hi + lo keeps 16 bits of each value) and its bfloat16 results widened
    by their bits; numpy where torch lacks the kernel."""
    try:
        import torch

        kernel = torch._weight_int8pack_mm
    except (ImportError, AttributeError):
        return lambda codes: codes.astype(np.float32) @ queries.T
    if queries.shape[1] % 16:  # the kernel's block (it crashes on other widths)
        raise ValueError(f"int8 rows must be a multiple of 16 wide, got {queries.shape[1]}")
    q = torch.from_numpy(queries)
    hi = q.bfloat16()
    halves = torch.cat([hi, (q - hi.float()).bfloat16()])
    ones = torch.ones(rows, dtype=torch.bfloat16)  # the per-row scales are applied after
    n = len(queries)

    def product(codes: np.ndarray) -> np.ndarray:
        y = kernel(halves, torch.from_numpy(codes), ones[: len(codes)])
        # bfloat16 is the upper half of a float32: widen it with numpy (torch's own
        # conversion costs as much as the product here)
        wide = (y.view(torch.int16).numpy().astype(np.int32) << 16).view(np.float32)
        return (wide[:n] + wide[n:]).T

    return product


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`~selo.pipeline.INDEX_MODES` (``--index``), else a
    ParameterError naming them."""
    if mode not in INDEX_MODES:
        *first, last = INDEX_MODES
        raise ParameterError(f"--index must be {', '.join(first)} or {last}, got {mode!r}")
    return mode


def choose_mode(mode: str, windows: int) -> str:
    """``auto``: exact up to :data:`EXACT_MAX_WINDOWS` windows, else int8; otherwise ``mode``."""
    if check_mode(mode) == "auto":
        return "exact" if windows <= EXACT_MAX_WINDOWS else "int8"
    return mode
