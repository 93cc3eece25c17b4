"""The cache: one folder that owns scene keys, staged scenes, window embeddings, scene
previews and collection indexes — on the local disk or in an object store.

``Cache(root)`` is the only place that knows the layout::

    <root>/scene-keys.json    content hash (SHA-256) per file path, size and mtime
    <root>/staged/<key>.v3.tif tiled GeoTIFF copies of JPEG/PNG/GIF/WEBP scenes
    <root>/embeddings.zarr/<id> window embeddings per EmbeddingKey
    <root>/previews/<key>-<rows>x<cols>.png decimated RGB pictures of scenes, for overlays
    <root>/indexes/<id>        collection indexes (pipeline.index owns what is inside);
                               the most recently used few are kept (memory-mapped: for a
                               root in an object store, in this machine's temporary folder)

The root is ``root`` when given, else ``$SELO_CACHE_DIR``, else
``$XDG_CACHE_HOME/selo``, else ``~/.cache/selo``; a root may be the URL of an object store
(``s3://bucket/cache``, ``gs://``, ``az://``), which every worker of a cluster reaches
without a shared disk: embeddings are a zarr 3 store there, staged copies are objects GDAL
reads there (``/vsis3/``), and the index and previews are objects too. Everything is
written through :func:`~selo.pipeline.store.atomic_path` — locally under a temporary name
and renamed when complete, in an object store uploaded object by object with a marker
last — so an interrupted write is never read back (an embedding entry without its marker
is absent); entries read back are checked (a staged copy must be the file selo wrote, of
the same size and modification time — or, in an object store, version — and a complete
GeoTIFF of the right size; an embedding entry must hold the right windows and match the
checksum written with it), and a damaged entry is made again, with a log line, instead
of being trusted. Two processes filling one entry at once write the same objects; an
entry mixed from two writers' objects fails its checksum and is made again.

Image embeddings do not depend on the query: computed once per (scene content,
encoder version, window table, preprocessing), a second query, a second run or a
resumed run embeds nothing again; any change of the four parts gives a new entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import CacheError, InputNotFoundError, OutputError, SeloError
from .remote import download, is_remote, object_info
from .scenefile import SceneInfo, dataset, tiff_data_end, write_staged_copy
from .store import (
    RemotePath,
    as_path,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    error_reason,
    folder_problem,
    is_complete,
    open_group,
)
from .windows import WindowTable

__all__ = ["Cache", "EmbeddingKey", "default_cache_dir"]

log = logging.getLogger(__name__)

_KEY_INDEX = "scene-keys.json"
_UNSAVED: set[str] = set()  # indexes that could not be saved (said once)
_STAGE_FORMAT = 3  # in the staged file's name: a new format never reuses an old file
_INDEX_LOCK = threading.Lock()  # scenes are staged by several threads at once
KEEP_INDEXES = 3  # collection indexes kept (the most recently used): each holds a copy of
# its scenes' embeddings (about 9 GB for 1,000 scenes of 10,000² with a 512-wide encoder)


def default_cache_dir() -> Path | RemotePath:
    """``$SELO_CACHE_DIR``, else ``$XDG_CACHE_HOME/selo``, else ``~/.cache/selo``."""
    if os.environ.get("SELO_CACHE_DIR"):
        return _expand(os.environ["SELO_CACHE_DIR"], "SELO_CACHE_DIR")
    base = os.environ.get("XDG_CACHE_HOME")
    if base:
        return _expand(base, "XDG_CACHE_HOME") / "selo"
    return _expand("~/.cache", "the home folder") / "selo"


def _expand(path: str | os.PathLike[str] | RemotePath, source: str) -> Path | RemotePath:
    try:
        return as_path(path).expanduser()
    except OutputError as e:  # a URL of another kind
        raise CacheError(str(e)) from None
    except RuntimeError as e:  # "~user" of an unknown user, or no home folder
        raise CacheError(
            f"{path}: {source} cannot be used as the cache folder ({e}); "
            "point --cache-dir or SELO_CACHE_DIR at a folder"
        ) from None


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
        self.root = _expand(root, "--cache-dir") if root else default_cache_dir()
        source = "--cache-dir" if root else "the cache folder ($SELO_CACHE_DIR or ~/.cache)"
        if isinstance(self.root, RemotePath):
            try:
                problem = folder_problem(self.root)
            except OSError as e:  # unreachable, forbidden: the store's words
                raise CacheError(f"{source} {e}") from None
            if problem is not None:
                raise CacheError(
                    f"{self.root}: {source} cannot be used ({problem}); "
                    "point --cache-dir or SELO_CACHE_DIR at a folder or a bucket you can write"
                )
            is_file = False
        else:
            try:
                is_file = self.root.exists() and not self.root.is_dir()
            except OSError as e:  # e.g. a name too long for the file system
                raise CacheError(
                    f"{self.root}: {source} cannot be used ({error_reason(e)}); "
                    "point --cache-dir or SELO_CACHE_DIR at a folder"
                ) from None
        if is_file:
            raise CacheError(
                f"{self.root}: {source} is a file, not a folder; "
                "point --cache-dir or SELO_CACHE_DIR at a folder"
            )
        self.embeddings_path = self.root / "embeddings.zarr"
        self.staged_dir = self.root / "staged"
        self.previews_dir = self.root / "previews"
        # collection indexes are memory-mapped files: a cache in an object store keeps its
        # indexes on this machine's disk (made again from the embeddings where missing)
        self.indexes_dir = (
            self.root / "indexes"
            if isinstance(self.root, Path)
            else Path(tempfile.gettempdir()) / "selo-indexes" / _digest_text(str(self.root))
        )

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
        entry = self._index().get(str(path), {})
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
        self._remember(path, _local_stamp(stat), sha256=digest)
        return digest

    def _index(self) -> dict:
        return _read_index(self.root / _KEY_INDEX)

    def _remember(self, path: Path | str, stamp: dict, **extra) -> None:
        """Record a file's stamp (size and modification time, or version: :func:`_stamp`)
        and ``extra`` in the index (in an object store, another process's entry written
        meanwhile may be lost: it is only computed again)."""
        index_path = self.root / _KEY_INDEX
        with _INDEX_LOCK:
            index = _read_index(index_path)
            index[str(path)] = {**stamp, **extra}
            try:
                atomic_write_text(index_path, json.dumps(index), what="scene key index")
            except OutputError as e:
                if str(index_path) not in _UNSAVED:  # said once per index, not per file
                    _UNSAVED.add(str(index_path))
                    log.warning("%s; keys will be recomputed next time", e)

    # --- staged scenes ----------------------------------------------------------------------

    def staged(self, location: str, key: str, info: SceneInfo) -> Path:
        """The tiled GeoTIFF copy of the file at ``location`` (a path or a URL; ``key``: a
        hex digest of its content's identity), made if missing or damaged.

        Written under a temporary name and renamed when complete, so a file under the
        final name is whole; one found there is still checked: it must be the file selo
        wrote (the index keeps its size and modification time: any later change, such as
        a copy cut short or a byte overwritten, is noticed), open, have the source's size
        and bands, and hold all its pixel blocks. A remote file is downloaded once, into
        the staging folder, and staged from there. In a cache in an object store the copy
        is an object there (GDAL reads it by range requests, from any worker)."""
        staged = self.staged_dir / f"{key}.v{_STAGE_FORMAT}.tif"
        if staged.exists():
            problem = self._staged_problem(staged, info, key)
            if problem is None:
                return staged
            if problem:  # (a copy of an older selo, not in the index, is made again quietly)
                log.warning("staged copy %s of %s %s; staging again", staged, location, problem)
            try:
                if isinstance(staged, Path) and staged.is_dir():
                    shutil.rmtree(staged)
                else:
                    staged.unlink(missing_ok=True)
            except OSError as e:
                raise CacheError(
                    f"{staged}: cannot replace this damaged staged copy ({error_reason(e)}); "
                    "remove it, or point --cache-dir at another folder"
                ) from None
        # (another process staging the same file meanwhile writes the same bytes)
        with atomic_path(staged, what=f"staged copy of {location}") as partial:
            if is_remote(location):
                _stage_download(location, info, partial)
            else:
                write_staged_copy(location, info, partial)
        self._remember(self._staged_name(staged), _stamp(staged), staged_from=key)
        return staged

    def _staged_name(self, staged: Path | RemotePath) -> str:
        """How the index names a staged copy: relative to the root, so that a cache
        folder moved or copied elsewhere keeps its staged copies."""
        return staged.relative_to(self.root).as_posix()

    def _staged_problem(self, staged: Path | RemotePath, info: SceneInfo, key: str) -> str | None:
        """None for a usable staged copy, else what is wrong with it ("" when the index
        does not know it at all)."""
        try:
            stamp = _stamp(staged)
            entry = self._index().get(self._staged_name(staged))
            if not isinstance(entry, dict):
                return ""
            if entry.get("staged_from") != key or any(entry.get(k) != v for k, v in stamp.items()):
                return "was changed after selo wrote it"
            with dataset(str(staged)) as ds:
                whole = (
                    ds.driver == "GTiff"
                    and (ds.height, ds.width, ds.count) == (info.height, info.width, info.count)
                    and tiff_data_end(ds) <= stamp["size"]
                )
            return None if whole else "is incomplete"
        except (SeloError, OSError) as e:
            return f"cannot be read ({e})"

    # --- embeddings -------------------------------------------------------------------------

    def get_embeddings(
        self, key: EmbeddingKey, table: WindowTable, *, dim: int | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(embeddings N×D float32, has_data N bool) for ``key``, or None when not cached.

        A damaged entry (unreadable, wrong windows, not ``dim`` wide, non-finite
        values, or not matching the checksum written with it) is logged and treated
        as missing, so it is computed and written again."""
        entry = self.embeddings_path / key.id
        try:
            if not is_complete(entry):  # (in an object store: not marked, not there)
                return None
        except OSError as e:
            log.warning("embedding cache entry %s cannot be read (%s); recomputing", entry, e)
            return None
        try:
            g = open_group(entry, mode="r")
            if g.attrs.get("key") != asdict(key) or not g.attrs.get("complete"):
                return None
            if "sha256" not in g.attrs:  # written by an older selo: computed again quietly
                return None
            if not np.array_equal(g["windows"][:], table.windows):
                return None
            emb, has = g["embeddings"][:], g["has_data"][:]
            width = emb.shape[1] if dim is None and emb.ndim == 2 else dim
            if emb.shape != (len(table), width) or has.shape != (len(table),):
                raise ValueError(f"shapes {emb.shape} and {has.shape} for {len(table)} windows")
            if emb.dtype != np.float32 or has.dtype != np.bool_:
                raise ValueError(f"types {emb.dtype} and {has.dtype}")
            if g.attrs.get("sha256") != _digest(emb, has, table.windows):
                raise ValueError("its checksum does not match")
            if not np.isfinite(emb).all():
                raise ValueError("non-finite values")
            return emb, has
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
            if not _is_group(root):  # missing or damaged
                (root / "zarr.json").unlink(missing_ok=True)
                try:
                    open_group(root, mode="a")
                except zarr.errors.ContainsGroupError:
                    if not _is_group(root):  # (another process made it meanwhile: fine)
                        raise
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
            has = np.ascontiguousarray(has_data, dtype=bool)
            g.create_array("has_data", shape=has.shape, dtype="bool")[:] = has
            g.create_array("windows", shape=table.windows.shape, dtype="int64")[:] = table.windows
            digest = _digest(e, has, table.windows)
            g.attrs.update({"key": asdict(key), "sha256": digest, "complete": True})

    # --- scene previews ---------------------------------------------------------------------

    def preview_path(self, key: str, shape: tuple[int, int]) -> Path | RemotePath:
        """Where the preview of shape (rows, cols) of the scene ``key`` is kept."""
        return self.previews_dir / f"{key}-{shape[0]}x{shape[1]}.png"

    def get_preview(self, key: str, shape: tuple[int, int]) -> np.ndarray | None:
        """The (rows, cols, 3) RGB preview of the scene ``key`` kept at ``shape``, or None."""
        import cv2

        try:
            data = self.preview_path(key, shape).read_bytes()
        except OSError:  # not kept (or a cache that cannot be read: made again)
            return None
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
        if bgr is None or bgr.shape[:2] != tuple(shape):
            return None
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def put_preview(self, key: str, preview: np.ndarray) -> None:
        """Keep the (rows, cols, 3) RGB preview of the scene ``key`` as PNG (a cache that
        cannot be written only costs time later)."""
        import cv2

        from .picture import PICTURE_PNG, encode_image

        data = encode_image(cv2.cvtColor(preview, cv2.COLOR_RGB2BGR), ".png", PICTURE_PNG)
        path = self.preview_path(key, preview.shape[:2])
        try:
            atomic_write_bytes(path, data, what="scene preview")
        except OutputError:
            pass

    # --- collection indexes ----------------------------------------------------------------

    def index_folder(self, ident: str) -> Path:
        """Where the collection index ``ident`` lives (what is inside: pipeline.index)."""
        return self.indexes_dir / ident

    def used_index(self, ident: str) -> None:
        """Mark an index as just used, and remove all but the :data:`KEEP_INDEXES` most
        recently used (an index another process is reading stays readable: its files
        are open)."""
        folder = self.index_folder(ident)
        try:
            os.utime(folder)
            folders = [p for p in self.indexes_dir.iterdir() if not p.name.startswith(".")]
            folders.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
        except OSError:
            return
        for old in folders[KEEP_INDEXES:]:
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)


def _stage_download(location: str, info: SceneInfo, target: Path) -> None:
    """Stage a remote file: downloaded once beside ``target``, staged, the download removed;
    errors name the URL, not the download."""
    got = target.with_name(target.name + ".download")
    try:
        download(location, got)
        write_staged_copy(str(got), info, target)
    except SeloError as e:
        error = type(e).__new__(type(e))
        error.args = tuple(str(a).replace(str(got), location) for a in e.args)
        raise error from None
    finally:
        got.unlink(missing_ok=True)


def _local_stamp(stat: os.stat_result) -> dict:
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _stamp(path: Path | RemotePath) -> dict:
    """What the index remembers of a file selo wrote, to notice a later change: its size and
    modification time, or an object's size and version (ETag, Last-Modified)."""
    if isinstance(path, RemotePath):
        info = object_info(str(path))
        return {"size": info.size, "version": info.version}
    return _local_stamp(path.stat())


def _digest(embeddings: np.ndarray, has_data: np.ndarray, windows: np.ndarray) -> str:
    """SHA-256 of an entry's arrays (shapes and bytes): a changed byte is noticed."""
    h = hashlib.sha256()
    for a in (embeddings, has_data, np.asarray(windows, dtype=np.int64)):
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _is_group(root: Path | RemotePath) -> bool:
    """Whether a zarr group's metadata is at ``root``."""
    return _read_index(root / "zarr.json").get("node_type") == "group"


def _read_index(path: Path | RemotePath) -> dict:
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return index if isinstance(index, dict) else {}


def _digest_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
