"""The cache: one folder that owns scene keys, staged scenes and window embeddings.

``Cache(root)`` is the only place that knows the layout::

    <root>/scene-keys.json    content hash (SHA-256) per file path, size and mtime
    <root>/staged/<key>.v3.tif tiled GeoTIFF copies of JPEG/PNG/GIF/WEBP scenes
    <root>/embeddings.zarr/<id> window embeddings per EmbeddingKey

The root is ``root`` when given, else ``$SELO_CACHE_DIR``, else
``$XDG_CACHE_HOME/selo``, else ``~/.cache/selo``. Everything is written under a
temporary name and renamed when complete, so an interrupted write is never read
back; entries read back are checked (a staged copy must be a complete GeoTIFF of
the right size, an embedding entry must hold the right windows), and a damaged
entry is made again, with a log line, instead of being trusted.

Image embeddings do not depend on the query: computed once per (scene content,
encoder version, window table, preprocessing), a second query, a second run or a
resumed run embeds nothing again; any change of the four parts gives a new entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from selo.errors import CacheError, InputNotFoundError, OutputError, SeloError
from selo.pipeline.scenefile import SceneInfo, dataset, tiff_data_end, write_staged_copy
from selo.pipeline.store import atomic_path, atomic_write_text, error_reason
from selo.pipeline.windows import WindowTable

__all__ = ["Cache", "EmbeddingKey", "default_cache_dir"]

log = logging.getLogger(__name__)

_KEY_INDEX = "scene-keys.json"
_STAGE_FORMAT = 3  # in the staged file's name: a new format never reuses an old file


def default_cache_dir() -> Path:
    """``$SELO_CACHE_DIR``, else ``$XDG_CACHE_HOME/selo``, else ``~/.cache/selo``."""
    if os.environ.get("SELO_CACHE_DIR"):
        return Path(os.environ["SELO_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "selo"


@dataclass(frozen=True)
class EmbeddingKey:
    """Everything the embeddings of a scene depend on."""

    scene: str  # the scene's content (file hash, band choice, conversion, pixel window)
    encoder: str  # encoder version (includes a hash of its weights and its preprocessing)
    windows: str  # window table digest (scene size and every window)
    preprocess: str  # how windows become encoder input (pipeline.cut.CutSpec.key)

    @property
    def id(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]


class Cache:
    """Scene keys, staged scenes and embeddings under one root folder (see the module)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_cache_dir()
        if self.root.exists() and not self.root.is_dir():
            source = "--cache-dir" if root else "the cache folder ($SELO_CACHE_DIR or ~/.cache)"
            raise CacheError(
                f"{self.root}: {source} is a file, not a folder; "
                "point --cache-dir or SELO_CACHE_DIR at a folder"
            )
        self.embeddings_path = self.root / "embeddings.zarr"
        self.staged_dir = self.root / "staged"

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cache) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    # --- scene keys -------------------------------------------------------------------------

    def scene_key(self, path: str | os.PathLike) -> str:
        """The SHA-256 of the file's bytes, as hex: a key that follows the content.

        Hashes are remembered in ``scene-keys.json`` by absolute path, size and
        modification time, so an unchanged file is not read again."""
        path = Path(path).resolve()
        try:
            stat = path.stat()
        except FileNotFoundError as e:
            raise InputNotFoundError(f"{path}: scene not found; check the path") from e
        index_path = self.root / _KEY_INDEX
        index = _read_index(index_path)
        entry = index.get(str(path), {})
        if (
            isinstance(entry, dict)
            and entry.get("size") == stat.st_size
            and entry.get("mtime_ns") == stat.st_mtime_ns
            and isinstance(entry.get("sha256"), str)
        ):
            return entry["sha256"]
        try:
            with path.open("rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError as e:
            raise InputNotFoundError(f"{path}: cannot read the scene ({e.strerror})") from e
        index[str(path)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
        try:
            atomic_write_text(index_path, json.dumps(index), what="scene key index")
        except OutputError as e:
            log.warning("%s; keys will be recomputed next time", e)
        return digest

    # --- staged scenes ----------------------------------------------------------------------

    def staged(self, path: Path, info: SceneInfo) -> Path:
        """The tiled GeoTIFF copy of ``path``, made if missing or damaged.

        Written under a temporary name and renamed when complete, so a file under
        the final name is whole; one found there is still checked (it opens, has the
        source's size and bands, and its pixel blocks are all in the file)."""
        key = self.scene_key(path)
        staged = self.staged_dir / f"{key}.v{_STAGE_FORMAT}.tif"
        if staged.is_file():
            if self._staged_ok(staged, info):
                return staged
            log.warning("staged copy %s of %s is damaged; staging again", staged, path)
            staged.unlink(missing_ok=True)
        # (another process staging the same file meanwhile writes the same bytes)
        with atomic_path(staged, what=f"staged copy of {path}") as partial:
            write_staged_copy(path, info, partial)
        return staged

    @staticmethod
    def _staged_ok(staged: Path, info: SceneInfo) -> bool:
        try:
            with dataset(staged) as ds:
                return (
                    ds.driver == "GTiff"
                    and (ds.height, ds.width, ds.count) == (info.height, info.width, info.count)
                    and tiff_data_end(ds) <= staged.stat().st_size
                )
        except (SeloError, OSError):
            return False

    # --- embeddings -------------------------------------------------------------------------

    def get_embeddings(
        self, key: EmbeddingKey, table: WindowTable
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(embeddings N×D float32, has_data N bool) for ``key``, or None when not cached.

        A damaged entry (unreadable, wrong windows, non-finite values) is logged and
        treated as missing, so it is computed and written again."""
        import zarr

        entry = self.embeddings_path / key.id
        if not entry.is_dir():
            return None
        try:
            g = zarr.open_group(str(entry), mode="r")
            if g.attrs.get("key") != asdict(key) or not g.attrs.get("complete"):
                return None
            if not np.array_equal(g["windows"][:], table.windows):
                return None
            emb, has = g["embeddings"][:], g["has_data"][:]
            if emb.shape != (len(table), emb.shape[1]) or has.shape != (len(table),):
                raise ValueError(f"shapes {emb.shape} and {has.shape} for {len(table)} windows")
            if not np.isfinite(emb).all():
                raise ValueError("non-finite values")
            return emb, has.astype(bool)
        except Exception as e:  # noqa: BLE001 - a damaged entry is recomputed, not fatal
            log.warning("embedding cache entry %s is damaged (%s); recomputing", entry, e)
            return None

    def put_embeddings(
        self, key: EmbeddingKey, table: WindowTable, embeddings: np.ndarray, has_data: np.ndarray
    ) -> None:
        """Store an entry atomically (a damaged entry under the same key is replaced)."""
        import zarr

        root = self.embeddings_path
        try:
            root.mkdir(parents=True, exist_ok=True)
            if not (root / "zarr.json").exists():
                zarr.open_group(str(root), mode="a")
        except OSError as e:
            raise CacheError(
                f"{root}: cannot write the embedding cache ({error_reason(e)}); set --cache-dir "
                "to a writable folder with free space"
            ) from None
        # (an entry written meanwhile by another run holds the same embeddings)
        with atomic_path(root / key.id, folder=True, what="embedding cache entry") as tmp:
            g = zarr.open_group(str(tmp), mode="w")
            e = np.ascontiguousarray(embeddings, dtype=np.float32)
            g.create_array(
                "embeddings",
                shape=e.shape,
                dtype="float32",
                chunks=(max(1, min(len(e), 4096)), max(1, e.shape[1])),
            )[:] = e
            g.create_array("has_data", shape=has_data.shape, dtype="bool")[:] = has_data
            g.create_array("windows", shape=table.windows.shape, dtype="int64")[:] = table.windows
            g.attrs.update({"key": asdict(key), "complete": True})


def _read_index(path: Path) -> dict:
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return index if isinstance(index, dict) else {}
