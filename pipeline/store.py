"""Writing outputs so that nothing half-written ever looks finished.

Every file or folder selo produces is first written under a temporary name in
the destination folder and renamed into place only when complete (a rename
within one file system is atomic). Failures (full disk, permissions) become an
:class:`~selo.errors.OutputError` naming the destination, and the temporary
is removed.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import OutputError

__all__ = [
    "path_problem",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "ensure_dir",
    "staged_outputs",
    "error_reason",
    "output_error",
]


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


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """Create folder ``path`` (and parents) or raise OutputError saying why not."""
    p = Path(path)
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
    path: str | os.PathLike[str], *, folder: bool = False, what: str = "file"
) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success it is renamed to ``path``.

    With ``folder=True`` the caller fills a folder (e.g. a zarr store) and an
    existing folder at ``path`` is replaced. On any exception the temporary is
    deleted and ``path`` is left as it was; I/O failures (OS or GDAL) become an
    OutputError naming ``path`` and the ``what`` being written.
    """
    from rasterio._err import CPLE_BaseError  # GDAL errors rasterio passes through as they are
    from rasterio.errors import RasterioError

    final = Path(path)
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
        if folder and final.is_dir():
            old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
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
    not at all. On any exception nothing in ``out`` changes."""
    out = ensure_dir(out)
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


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, what: str = "file") -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path, what=what) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, what: str = "file") -> Path:
    """Write ``text`` to ``path`` atomically, as UTF-8 (characters UTF-8 cannot hold,
    such as lone surrogates, are written as ``\\uXXXX`` escapes instead of failing)."""
    return atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"), what=what)


def _remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)
