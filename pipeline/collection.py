"""A collection: the scenes that SCENES arguments name, in order.

:func:`collection_sources` is the one place where arguments become scene sources:

- an existing file is one scene (whatever its name: GDAL decides whether it is a raster);
- an existing folder is every raster file under it (by :data:`RASTER_SUFFIXES`, hidden
  files and folders left out), in sorted order;
- a pattern with ``*``, ``?`` or ``[`` is expanded as a glob (``**`` reaches into
  subfolders), sorted: the files it matches are scenes whatever their names (as a shell
  would pass them), the folders it matches are expanded as folders;
- anything else is kept as it is, so that opening it says what is wrong (not found).

Sources are kept in argument order and not deduplicated: naming a scene twice is a
mistake the caller reports (:mod:`selo.selo_tasks.search`).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["RASTER_SUFFIXES", "collection_sources"]

RASTER_SUFFIXES = frozenset(
    {".tif", ".tiff", ".jpg", ".jpeg", ".png", ".gif", ".webp", ".jp2", ".img", ".vrt"}
)
"""File suffixes (lower case) taken from a folder: the raster formats selo reads."""

_MAGIC = ("*", "?", "[")


def collection_sources(items: Iterable[str | os.PathLike]) -> list[Path]:
    """The scene sources named by ``items`` (files, folders, globs), in order (see module)."""
    sources: list[Path] = []
    for item in items:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            sources += _folder(path)
        elif not path.exists() and any(c in text for c in _MAGIC):
            for match in sorted(glob.glob(text, recursive=True)):
                found = Path(match)
                sources += _folder(found) if found.is_dir() else [found]
        else:
            sources.append(path)
    return sources


def _folder(folder: Path) -> list[Path]:
    """Raster files under ``folder`` (hidden ones left out), sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [
            Path(root) / f
            for f in sorted(files)
            if not f.startswith(".") and Path(f).suffix.lower() in RASTER_SUFFIXES
        ]
    return found
