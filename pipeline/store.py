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

from selo.errors import OutputError

__all__ = ["atomic_path", "atomic_write_text", "ensure_dir", "output_error"]


def output_error(path: str | os.PathLike[str], e: OSError) -> OutputError:
    """An OutputError for ``path`` that says what to do about ``e``."""
    if e.errno == errno.ENOSPC:
        hint = "the disk is full; free space or choose another --out"
    elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "permission denied; choose a writable --out"
    elif e.errno == errno.ENOTDIR:
        hint = "a parent of it is a file, not a folder"
    else:
        hint = e.strerror or str(e)
    return OutputError(f"{path}: cannot write ({hint})")


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """Create folder ``path`` (and parents) or raise OutputError saying why not."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{p}: exists and is not a folder; choose another output folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise output_error(p, e) from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise OutputError(f"{p}: folder is not writable; choose another output folder")
    return p


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, folder: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success it is renamed to ``path``.

    With ``folder=True`` the caller fills a folder (e.g. a zarr store) and an
    existing folder at ``path`` is replaced. On any exception the temporary is
    deleted and ``path`` is left as it was.
    """
    final = Path(path)
    if final.is_dir() and not folder:
        raise OutputError(f"{final}: is a folder; expected a file name")
    ensure_dir(final.parent)
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
    except OSError as e:
        _remove(tmp)
        if isinstance(e, OutputError):
            raise
        raise output_error(final, e) from None
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)
