"""Writing outputs so that nothing half-written ever looks finished, on a local disk or in an
object store.

A destination is a local path or the URL of an object store (``s3://``, ``gs://``,
``az://``: :func:`as_path` gives a :class:`RemotePath` for it, which has the few
operations of :class:`pathlib.Path` selo's readers and writers use). Every file or folder
selo produces goes through :func:`atomic_path`, the one writer path:

- **local**: written under a temporary name in the destination folder and renamed into
  place only when complete (a rename within one file system is atomic);
- **object store** (which cannot rename): written into a local temporary folder
  (``$TMPDIR``), then uploaded. A file is one object, which a store shows whole or not at
  all. A folder is uploaded object by object, then its *marker* last — the group's own
  ``zarr.json`` for a zarr group, else an empty ``_SUCCESS`` object — after its old marker
  was removed and before objects of an older version left over are: a folder without
  its marker is absent (:func:`is_complete`), never half there.

Failures (full disk, permissions, a missing bucket, wrong credentials, an unreachable
endpoint) become an :class:`~selo.errors.OutputError` naming the destination, and the
temporary is removed.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from ..errors import InputNotFoundError, OutputError, RemoteError
from .remote import filesystem, object_store_url, remote_error, storage_options

__all__ = [
    "MARKER",
    "RemotePath",
    "as_path",
    "path_problem",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "ensure_dir",
    "staged_outputs",
    "error_reason",
    "folder_problem",
    "is_complete",
    "local_file",
    "local_folder",
    "open_group",
    "output_error",
]

MARKER = "_SUCCESS"  # the last object of a folder uploaded to an object store (not a zarr group)
ZARR_METADATA = "zarr.json"  # a zarr group's own metadata: the marker of a group uploaded
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def error_reason(error: BaseException) -> str:
    """The innermost message of an error chain: GDAL's or the OS's own words."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return getattr(error, "strerror", None) or str(error).strip()


def path_problem(path: str | os.PathLike[str]) -> str | None:
    """Why the file system cannot use ``path`` as a name at all (a NUL byte, characters it
    cannot encode, too long, a loop of links), or None: a path that does not exist (yet)
    is fine (who needs it says so)."""
    try:
        os.fspath(path).encode("utf-8")  # GDAL and zarr take UTF-8 names only
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        return e.strerror or str(e)
    except UnicodeError:
        return "characters that are not UTF-8"
    except (ValueError, TypeError) as e:  # "embedded null byte"; not a path at all
        return str(e)
    return None


def output_error(path: str | os.PathLike[str], e: BaseException, what: str = "file") -> OutputError:
    """An OutputError for ``path`` that says what went wrong and what to do."""
    code = getattr(e, "errno", None)
    if code == errno.ENOSPC:
        hint = "the disk is full: free space or choose another output folder"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "permission denied: choose a writable output folder"
    elif code == errno.ENOTDIR:
        hint = "a parent of it is a file, not a folder"
    else:
        hint = "choose a writable folder with enough free space"
    return OutputError(f"{path}: cannot write the {what} ({error_reason(e)}); {hint}")


# --- locations in object stores ---------------------------------------------------------------


class RemotePath:
    """A file or folder in an object store, named by its URL, with the operations of
    :class:`pathlib.Path` that selo's readers and writers use (writes go through
    :func:`atomic_path`). It holds only the URL, so tasks carry it to workers on other
    machines, which reach the store with their own environment's credentials
    (:func:`selo.pipeline.remote.storage_options`).

    Failed requests raise :class:`~selo.errors.RemoteError` naming the URL (an OSError,
    as a local file's would), a missing object FileNotFoundError."""

    __slots__ = ("url",)

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"RemotePath({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __dask_tokenize__(self) -> str:
        return self.url

    def __reduce__(self):
        return (RemotePath, (self.url,))

    def __truediv__(self, name: str | os.PathLike[str]) -> RemotePath:
        return RemotePath(f"{self.url}/{os.fspath(name).strip('/')}")

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def parent(self) -> RemotePath:
        head, _, tail = self.url.rpartition("/")
        return self if head.endswith(":/") or not tail else RemotePath(head)

    def with_name(self, name: str) -> RemotePath:
        return self.parent / name

    def relative_to(self, other: RemotePath) -> PurePosixPath:
        if not self.url.startswith(other.url + "/"):
            raise ValueError(f"{self} is not inside {other}")
        return PurePosixPath(self.url[len(other.url) + 1 :])

    def resolve(self) -> RemotePath:
        return self

    def expanduser(self) -> RemotePath:
        return self

    def _fs(self):
        return filesystem(self.url)

    def _info(self) -> dict | None:
        fs, path = self._fs()
        try:
            fs.invalidate_cache(path)  # another process may have written it meanwhile
            return fs.info(path)
        except FileNotFoundError:
            return None
        except Exception as e:  # noqa: BLE001 - every failed request, named in one line
            raise remote_error(self.url, e) from None

    def exists(self) -> bool:
        return self._info() is not None

    def is_file(self) -> bool:
        info = self._info()
        return info is not None and info.get("type") == "file"

    def is_dir(self) -> bool:
        info = self._info()
        return info is not None and info.get("type") == "directory"

    def read_bytes(self) -> bytes:
        fs, path = self._fs()
        try:
            return fs.cat_file(path)
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "no such object", self.url) from None
        except IsADirectoryError:
            raise
        except Exception as e:  # noqa: BLE001
            raise remote_error(self.url, e) from None

    def read_text(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self.read_bytes().decode(encoding, errors)

    def write_bytes(self, data: bytes) -> int:
        """One PUT: the object appears whole or not at all."""
        fs, path = self._fs()
        try:
            fs.pipe_file(path, bytes(data))
        except Exception as e:  # noqa: BLE001
            raise remote_error(self.url, e) from None
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def unlink(self, missing_ok: bool = False) -> None:
        fs, path = self._fs()
        try:
            fs.rm_file(path)
        except FileNotFoundError:
            if not missing_ok:
                raise FileNotFoundError(errno.ENOENT, "no such object", self.url) from None
        except Exception as e:  # noqa: BLE001
            raise remote_error(self.url, e) from None
        fs.invalidate_cache(path)

    def iterdir(self) -> Iterator[RemotePath]:
        """The objects and "folders" (prefixes) directly inside this one."""
        fs, path = self._fs()
        try:
            fs.invalidate_cache(path)
            names = fs.ls(path, detail=False)
        except FileNotFoundError:
            names = []
        except Exception as e:  # noqa: BLE001
            raise remote_error(self.url, e) from None
        for name in sorted(str(n).rstrip("/") for n in names):
            if name != path.rstrip("/"):
                yield self / name.rsplit("/", 1)[-1]

    def glob(self, pattern: str) -> Iterator[RemotePath]:
        """The entries directly inside whose names match ``pattern`` (one level only)."""
        if "/" in pattern:
            raise ValueError(f"{pattern}: RemotePath.glob matches names in one folder only")
        return (p for p in self.iterdir() if fnmatch.fnmatchcase(p.name, pattern))

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: an object store has no folders, only names with slashes."""


def as_path(location: str | os.PathLike[str] | RemotePath) -> Path | RemotePath:
    """A local :class:`~pathlib.Path`, or a :class:`RemotePath` for the URL of an object store
    (``s3://``, ``gs://``, ``az://``); another URL is an OutputError (selo cannot write there)."""
    if isinstance(location, RemotePath | Path):
        return location
    if isinstance(location, str):
        url = object_store_url(location)
        if url is not None:
            return RemotePath(url)
        if _SCHEME.match(location):
            raise OutputError(
                f"{location}: selo writes caches and outputs to local folders and to s3://, "
                "gs:// or az:// URLs only; choose one of those"
            )
    return Path(location)


def local_folder(location: str | os.PathLike[str] | RemotePath, what: str) -> Path:
    """``location`` as a local folder; a URL is an OutputError saying that ``what`` writes
    only to local folders."""
    path = as_path(location)
    if isinstance(path, RemotePath):
        raise OutputError(f"{path}: {what} writes to a local folder only; give a local path")
    return path


def folder_problem(folder: RemotePath) -> str | None:
    """Why ``folder`` cannot hold selo's files (an object in its place, its bucket or
    container missing), or None; a failed request raises a RemoteError naming it."""
    info = folder._info()
    if info is not None:
        return None if info.get("type") == "directory" else "is an object, not a folder"
    fs, path = folder._fs()
    bucket = path.split("/", 1)[0]
    try:
        fs.invalidate_cache(bucket)
        fs.info(bucket)
    except FileNotFoundError:
        return f"the bucket {bucket} does not exist"
    except Exception as e:  # noqa: BLE001
        raise remote_error(folder.url, e) from None
    return None


def is_complete(folder: Path | RemotePath) -> bool:
    """Whether a folder written by :func:`atomic_path` (``folder=True``) is there, whole: a
    local one exists (it was renamed into place whole), one in an object store has its
    marker (see the module)."""
    if isinstance(folder, RemotePath):
        return (folder / ZARR_METADATA).is_file() or (folder / MARKER).is_file()
    return folder.is_dir()


def open_group(path: Path | RemotePath, *, mode: str):
    """The zarr group at a local folder or in an object store (opened with the storage
    options of :func:`selo.pipeline.remote.storage_options`)."""
    import zarr

    if isinstance(path, RemotePath):
        return zarr.open_group(path.url, mode=mode, storage_options=storage_options(path.url))
    return zarr.open_group(str(path), mode=mode)


@contextmanager
def local_file(path: str | os.PathLike[str] | RemotePath) -> Iterator[Path]:
    """A local file name for a library that writes a file itself (Dask's performance report):
    ``path`` when it is local; else a temporary file, uploaded to ``path`` if the block
    succeeds and left the file there."""
    final = as_path(path)
    if isinstance(final, Path):
        yield final
        return
    scratch = Path(tempfile.mkdtemp(prefix="selo-"))
    try:
        yield scratch / final.name
        if (scratch / final.name).is_file():
            atomic_write_bytes(final, (scratch / final.name).read_bytes())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _upload(tmp: Path, final: RemotePath, *, folder: bool) -> None:
    """Upload a finished temporary file as one object, or a folder as its objects and then
    its marker (see the module)."""
    fs, root = final._fs()
    if not folder:
        fs.put_file(str(tmp), root)
        fs.invalidate_cache(root)
        return
    files = sorted(p for p in tmp.rglob("*") if p.is_file())
    names = {p: p.relative_to(tmp).as_posix() for p in files}
    marker = tmp / ZARR_METADATA if (tmp / ZARR_METADATA).is_file() else None
    for name in (ZARR_METADATA, MARKER):  # an older version is absent while this one arrives
        if fs.exists(f"{root}/{name}"):
            fs.rm_file(f"{root}/{name}")
    others = [p for p in files if p != marker]
    if others:
        fs.put([str(p) for p in others], [f"{root}/{names[p]}" for p in others])
    fs.invalidate_cache(root)
    new = {f"{root}/{n}" for n in names.values()}
    old = [o for o in fs.find(root) if o not in new]  # objects of an older version
    if old:
        fs.rm(old)
    if marker is not None:
        fs.put_file(str(marker), f"{root}/{ZARR_METADATA}")
    else:
        fs.pipe_file(f"{root}/{MARKER}", b"")
    fs.invalidate_cache(root)


def _remote_output_error(final: RemotePath, e: BaseException, what: str) -> OutputError:
    error = e if isinstance(e, RemoteError | InputNotFoundError) else remote_error(final.url, e)
    reason = str(error).removeprefix(f"{final}: ")
    return OutputError(f"{final}: cannot write the {what}: {reason}")


def ensure_dir(path: str | os.PathLike[str] | RemotePath) -> Path | RemotePath:
    """Create folder ``path`` (and parents) or raise OutputError saying why not; a folder in
    an object store is checked (its bucket, the credentials, the endpoint) instead."""
    p = as_path(path)
    if isinstance(p, RemotePath):
        try:
            problem = folder_problem(p)
        except OSError as e:
            raise _remote_output_error(p, e, "output folder") from None
        if problem is not None:
            raise OutputError(f"{p}: {problem}; choose another output folder")
        return p
    try:
        is_file = p.exists() and not p.is_dir()
    except OSError as e:  # a name too long, a loop of links
        raise OutputError(
            f"{p}: cannot be used as a folder ({error_reason(e)}); choose another output folder"
        ) from None
    if is_file:
        raise OutputError(f"{p}: exists and is not a folder; choose another output folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(
            f"{p}: cannot create this folder ({error_reason(e)}); choose a writable output folder"
        ) from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise OutputError(f"{p}: folder is not writable; choose another output folder")
    return p


@contextmanager
def atomic_path(
    path: str | os.PathLike[str] | RemotePath, *, folder: bool = False, what: str = "file"
) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success it is renamed to ``path``. For a
    ``path`` in an object store, a path in a local temporary folder instead, uploaded on
    success (a file as one object, a folder object by object and its marker last: see the
    module).

    With ``folder=True`` the caller fills a folder (e.g. a zarr store) and an
    existing folder at ``path`` is replaced. On any exception the temporary is
    deleted and ``path`` is left as it was; I/O failures (OS or GDAL, or the store's)
    become an OutputError naming ``path`` and the ``what`` being written.
    """
    from rasterio._err import CPLE_BaseError  # GDAL errors rasterio passes through as they are
    from rasterio.errors import RasterioError

    final = as_path(path)
    if isinstance(final, RemotePath):
        scratch = Path(tempfile.mkdtemp(prefix="selo-"))
        try:
            try:
                yield scratch / final.name
            except OutputError:
                raise
            except (OSError, RasterioError, CPLE_BaseError) as e:
                raise output_error(final, e, what) from e
            try:
                _upload(scratch / final.name, final, folder=folder)
            except Exception as e:  # noqa: BLE001 - the store's own errors (botocore, aiohttp)
                raise _remote_output_error(final, e, what) from e
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    if final.is_dir() and not folder:
        raise OutputError(f"{final}: is a folder; give a file name for the {what}")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(
            f"{final}: cannot create the folder {final.parent} ({error_reason(e)}); "
            "choose a writable output folder"
        ) from None
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if folder:
            _replace_folder(tmp, final)
        else:
            os.replace(tmp, final)
    except OutputError:
        raise
    except (OSError, RasterioError, CPLE_BaseError) as e:
        raise output_error(final, e, what) from e
    finally:
        _remove(tmp)


@contextmanager
def staged_outputs(
    out: str | os.PathLike[str], *, last: str, stale: tuple[str, ...] = ()
) -> Iterator[Path]:
    """Yield a hidden folder inside ``out`` to write a set of outputs in; on success each
    entry is moved into ``out`` (replacing one of the same name), ``last`` last, and the
    ``stale`` names not written this time are removed, so the outputs appear together or
    not at all. On any exception nothing in ``out`` changes. In an object store the folder
    is a local temporary one and each entry is uploaded through :func:`atomic_path` (a
    folder's marker last), ``last`` last."""
    out = ensure_dir(out)
    if isinstance(out, RemotePath):
        with _staged_remote(out, last=last, stale=stale) as stage:
            yield stage
        return
    stage = out / f".staged.tmp-{uuid.uuid4().hex[:8]}"
    try:
        stage.mkdir()
    except OSError as e:
        raise output_error(out, e, "outputs") from e
    try:
        yield stage
        names = sorted(p.name for p in stage.iterdir())
        names = [n for n in names if n != last] + ([last] if last in names else [])
        for name in [*(s for s in stale if s not in names), *names]:
            target = out / name
            old = out / f".{name}.old-{uuid.uuid4().hex[:8]}"
            if target.exists():
                os.replace(target, old)
            if name in names:
                os.replace(stage / name, target)
            _remove(old)
    except OutputError:
        raise
    except OSError as e:
        raise output_error(out, e, "outputs") from e
    finally:
        _remove(stage)


@contextmanager
def _staged_remote(out: RemotePath, *, last: str, stale: tuple[str, ...]) -> Iterator[Path]:
    """:func:`staged_outputs` for a folder in an object store."""
    stage = Path(tempfile.mkdtemp(prefix="selo-"))
    try:
        yield stage
        names = sorted(p.name for p in stage.iterdir())
        names = [n for n in names if n != last] + ([last] if last in names else [])
        fs, root = out._fs()
        try:
            for name in stale:
                if name not in names and fs.exists(f"{root}/{name}"):
                    fs.rm(f"{root}/{name}", recursive=True)
        except Exception as e:  # noqa: BLE001 - the store's own errors (botocore, aiohttp)
            raise _remote_output_error(out, e, "outputs") from e
        for name in names:
            entry = stage / name
            with atomic_path(out / name, folder=entry.is_dir(), what="outputs") as tmp:
                os.replace(entry, tmp)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _replace_folder(tmp: Path, final: Path) -> None:
    """Rename the finished folder ``tmp`` to ``final``, replacing a folder there. Another
    process doing the same at once (two runs filling one cache entry) may move the old
    folder first, or put its own complete one in place first: then that one is kept."""
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    try:
        if final.is_dir():
            try:
                os.replace(final, old)
            except FileNotFoundError:
                pass  # moved away by the other process
        try:
            os.replace(tmp, final)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not final.is_dir():
                raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_bytes(
    path: str | os.PathLike[str] | RemotePath, data: bytes, *, what: str = "file"
) -> Path | RemotePath:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path, what=what) as tmp:
        tmp.write_bytes(data)
    return as_path(path)


def atomic_write_text(
    path: str | os.PathLike[str] | RemotePath, text: str, *, what: str = "file"
) -> Path | RemotePath:
    """Write ``text`` to ``path`` atomically, as UTF-8 (characters UTF-8 cannot hold,
    such as lone surrogates, are written as ``\\uXXXX`` escapes instead of failing)."""
    return atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"), what=what)


def _remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)
