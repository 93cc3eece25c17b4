"""The layout of a ``selo airslt`` (or ``selo demo``) run folder: every reader and writer
of one goes through these names and functions::

    run.json          the run record: settings, versions, encoder, the annotation file
                      and its digest, the stage table, the scored cases, status
    metrics.csv       one row per case and the mean row (written at the end)
    stages.png        the stage-time chart (scenes.png: time per scene)
    report.html       the run on one page: settings, metrics, every case's overlay
    profile.html      Dask performance report
    case_NN/          windows.csv, selo_map.png, overlay.png, thumb.jpg (overlay_plain.png
                      with --plain-overlays, probmap_N.jpg with --paper-compat) and
                      metrics.json, written last: a case is finished when it exists

A ``selo localize`` output folder has its run.json and profile.html too (its other files:
:mod:`~selo.selo_tasks.localize`).

A run folder may be the URL of an object store (``s3://bucket/run``): every file is
written there through :func:`~selo.pipeline.store.atomic_path` (each an object, whole or
not at all), and a case folder, uploaded file by file by the tasks that make them, is
finished when its metrics.json, uploaded last, is there.

A run records the annotation file it was scored with (its path and the digest of its
cases, :func:`annotations_record`); :func:`run_annotations` gives it back to whatever
reads the run later (``selo serve RUN_DIR``, ``selo eval``), and refuses another file
whose cases are not the same.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RunFolderError, RunMismatchError
from ..pipeline.store import RemotePath, as_path, atomic_write_text

if TYPE_CHECKING:
    from .annotations import Case

__all__ = [
    "CASE_DIR",
    "CASE_DIRS",
    "CASE_RECORD",
    "METRICS_CSV",
    "OVERLAY",
    "OVERLAY_PLAIN",
    "PAPER_MAP",
    "PROFILE",
    "REPORT",
    "RUN_JSON",
    "SCENES_PNG",
    "SELO_MAP",
    "STAGES_PNG",
    "THUMB",
    "WINDOWS_CSV",
    "annotations_record",
    "case_dir",
    "case_folders",
    "is_run_folder",
    "read_record",
    "run_annotations",
    "write_record",
]

RUN_JSON = "run.json"
METRICS_CSV = "metrics.csv"
STAGES_PNG, SCENES_PNG = "stages.png", "scenes.png"
REPORT = "report.html"
PROFILE = "profile.html"
CASE_DIR = "case_{index:02d}"
CASE_DIRS = "case_NN"  # how messages name the case folders
SELO_MAP = "selo_map.png"
WINDOWS_CSV = "windows.csv"
OVERLAY, OVERLAY_PLAIN, THUMB = "overlay.png", "overlay_plain.png", "thumb.jpg"
CASE_RECORD = "metrics.json"
PAPER_MAP = "probmap_{index}.jpg"  # the map as the published code stores it (--paper-compat)


def case_dir(out: Path | RemotePath, index: int) -> Path | RemotePath:
    """The folder of case ``index`` in the run folder ``out``."""
    return as_path(out) / CASE_DIR.format(index=index)


def case_folders(out: Path | RemotePath) -> list[Path | RemotePath]:
    """The folders of the run's finished cases (those with their metrics.json), in order."""
    pattern = CASE_DIR.split("{", 1)[0] + "*"
    return sorted((p for p in as_path(out).glob(pattern) if (p / CASE_RECORD).is_file()), key=str)


def is_run_folder(path: str | os.PathLike[str] | RemotePath) -> bool:
    """Whether ``path`` is a run folder (a folder with its run.json)."""
    path = as_path(path)
    return path.is_dir() and (path / RUN_JSON).is_file()


def read_record(out: str | os.PathLike[str] | RemotePath) -> dict:
    """The run's run.json; RunFolderError naming it when it is missing or not a record."""
    path = as_path(out) / RUN_JSON
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFolderError(f"{path}: not found; {out} is not a selo run folder") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise RunFolderError(f"{path}: cannot be read as JSON ({e})") from None
    if not isinstance(record, dict):
        raise RunFolderError(f"{path}: is not a run record (expected a JSON object)")
    return record


def write_record(out: str | os.PathLike[str] | RemotePath, record: dict) -> Path | RemotePath:
    """Write run.json atomically."""
    return atomic_write_text(as_path(out) / RUN_JSON, json.dumps(record, indent=1, default=str))


def annotations_record(cases: Sequence[Case], anno: str | os.PathLike[str] | None) -> dict:
    """The ``annotations`` entry of run.json: the file the run was given (absolute; the
    one shipped with selo when None), the digest of its cases and how many there are."""
    from .annotations import packaged_annotations
    from .run_info import annotations_digest

    path = Path(anno) if anno is not None else packaged_annotations()
    return {"file": str(path.resolve()), "digest": annotations_digest(cases), "cases": len(cases)}


def run_annotations(
    out: str | os.PathLike[str], anno: str | os.PathLike[str] | None = None
) -> tuple[Path, list[Case]]:
    """The annotation file of the run in ``out`` and its cases.

    Without ``anno``: the file run.json names (or, when it is gone, the one shipped with
    selo if its cases are the run's; a run recorded before runs named their file: the one
    shipped with selo). With ``anno``: that file, which must hold the cases the run was
    scored with (RunMismatchError otherwise)."""
    from .annotations import load_annotations, packaged_annotations  # (imports the metrics)
    from .run_info import annotations_digest

    entry = read_record(out).get("annotations")
    entry = entry if isinstance(entry, dict) else {}
    digest = entry.get("digest")
    recorded = entry.get("file")
    where = as_path(out) / RUN_JSON
    if anno is not None:
        path = Path(anno)
        cases = load_annotations(path)
        if digest is not None and annotations_digest(cases) != digest:
            run_file = f"{recorded}" if recorded else f"annotations with digest {digest}"
            raise RunMismatchError(
                f"{path}: not the annotations the run in {out} was scored with ({run_file}); "
                "leave out --anno to use the run's own"
            )
        return path, cases
    candidates = [Path(recorded)] if isinstance(recorded, str) else []
    candidates.append(packaged_annotations())
    for path in candidates:
        if _is_file(path):
            cases = load_annotations(path)
            if digest is None or annotations_digest(cases) == digest:
                return path, cases
    raise RunFolderError(
        f"{where}: the run's annotation file {recorded or '(not recorded)'} is missing or "
        "has changed since the run; pass --anno with the file the run was scored with"
    )


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; False for a name the file system cannot use at all."""
    try:
        return path.is_file()
    except (OSError, ValueError):  # too long, a loop of links, a NUL character
        return False
