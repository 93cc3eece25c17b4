"""Scoring a folder of SeLo maps against annotated cases (``selo eval``).

Maps are found by the names the published code writes (``probmap_{i}.jpg``)
and a few lossless alternatives, read as the published code reads them
(OpenCV, 8-bit grayscale), checked (exists, readable, 8-bit, the scene's
shape when known) for every case *before* any metric is computed, then scored
with :mod:`selo.selo_tasks.metrics`.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputNotFoundError, MapError, RunFolderError, SceneError, SeloError
from ..pipeline.scenefile import dataset, inspect_scene, read_pixels, verify_pixels
from .annotations import Case, load_annotations
from .metrics import INDICATORS, Metrics, evaluate, mean_metrics
from .run_folder import CASE_DIR, SELO_MAP, is_run_folder, run_annotations

__all__ = [
    "MAP_NAMES",
    "CaseResult",
    "find_map",
    "read_map",
    "map_shape",
    "evaluate_cases",
    "maps_annotations",
    "metrics_csv",
    "write_metrics_csv",
    "read_metrics_csv",
    "CsvRow",
    "METRIC_COLUMNS",
    "MEAN_ROW",
]

log = logging.getLogger(__name__)

# Looked for in this order; the first that exists is the case's map.
MAP_NAMES = (
    "probmap_{index}.png",
    "probmap_{index}.tif",
    "probmap_{index}.tiff",
    "probmap_{index}.jpg",
    "probmap_{index}.jpeg",
    "{index}.png",
    "{index}.tif",
    "{index}.tiff",
    f"{CASE_DIR}/{SELO_MAP}",  # a selo airslt run folder
)
METRIC_COLUMNS = ("case", "image", "query", *(i.name for i in INDICATORS))
"""The columns of a metrics CSV: the case, then the indicators in their table's order."""
MEAN_ROW = "mean"  # the case column of the last row: each indicator's mean over the cases


@dataclass(frozen=True)
class CaseResult:
    """One scored case."""

    case: Case
    metrics: Metrics
    map_path: str | None = None


def find_map(maps_dir: Path, index: int) -> Path | None:
    """The map of case ``index`` in ``maps_dir`` (see MAP_NAMES), or None."""
    found = [maps_dir / n.format(index=index) for n in MAP_NAMES]
    found = [p for p in found if p.is_file()]
    if len(found) > 1:
        log.debug(
            "case %d: several maps (%s); using %s",
            index,
            ", ".join(p.name for p in found),
            found[0],
        )
    return found[0] if found else None


def map_shape(path: Path, *, case: object) -> tuple[int, int]:
    """(H, W) of a map image from its header, without decoding it (the header checked
    as a scene's is: :func:`~selo.pipeline.scenefile.inspect_scene`)."""
    try:
        info = inspect_scene(path)
    except SeloError as e:
        reason = _reason(e, path)
        raise MapError(f"case {case}: cannot read {path} as an image ({reason})") from None
    return info.height, info.width


def read_map(path: str | os.PathLike[str], *, case: object = None) -> np.ndarray:
    """A SeLo map as uint8 H×W, decoded as the published code decodes it.

    The published evaluation reads maps with ``cv2.imread(path,
    IMREAD_GRAYSCALE)``; so do we (with ``IMREAD_ANYDEPTH`` only to notice
    16-bit files), so that JPEG maps decode to the same pixels, EXIF
    orientation and colour-to-gray conversion included. Maps must be 8-bit.
    First the file is checked whole (:func:`~selo.pipeline.scenefile.verify_pixels`:
    a lying header, a truncated or corrupt PNG or JPEG is a MapError, where OpenCV
    would fill the missing part with black or gray). Files OpenCV cannot read
    (e.g. some GeoTIFF layouts) are read with rasterio.
    """
    path = Path(path)
    where = f"case {case}: map {path}" if case is not None else f"map {path}"
    if not path.is_file():
        raise MapError(f"{where}: not found")
    try:
        verify_pixels(path)
    except SeloError as e:
        raise MapError(f"{where}: {_reason(e, path)}") from None
    try:
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)
    except cv2.error as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        reason = lines[-1] if lines else type(e).__name__
        raise MapError(f"{where}: OpenCV cannot read it ({reason})") from None
    if gray is None:
        gray = _read_with_rasterio(path, where)
    if gray.dtype != np.uint8:
        raise MapError(f"{where}: is {gray.dtype}; SeLo maps are 8-bit (uint8) images")
    return gray


def _reason(error: SeloError, path: Path) -> str:
    """A scene reader's message about ``path`` without the path it starts with."""
    text = str(error)
    prefix = f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def _read_with_rasterio(path: Path, where: str) -> np.ndarray:
    try:
        with dataset(path) as ds:
            if ds.count != 1:
                raise MapError(f"{where}: has {ds.count} bands; a SeLo map has one")
            pixels, _ = read_pixels(ds, [1])
            return pixels[0]
    except SceneError as e:
        raise MapError(f"{where}: cannot read as an image ({_reason(e, path)})") from None


def evaluate_cases(
    cases: Sequence[Case],
    maps_dir: str | os.PathLike[str],
    *,
    images_dir: str | os.PathLike[str] | None = None,
    skip_missing: bool = False,
    on_case: Callable[[CaseResult], None] | None = None,
) -> tuple[list[CaseResult], list[tuple[Case, str]]]:
    """Score every case's map; returns (results, skipped cases with the reason).

    All maps are located and their shapes checked first, so a missing or
    mismatched map is reported before any work is done (or, with
    ``skip_missing``, the case is skipped and said so).
    """
    maps_dir = Path(maps_dir)
    if not maps_dir.is_dir():
        raise InputNotFoundError(f"{maps_dir}: maps folder not found")
    planned: list[tuple[Case, Path]] = []
    skipped: list[tuple[Case, str]] = []
    for case in cases:
        try:
            planned.append((case, _checked_map(case, maps_dir, images_dir)))
        except MapError as e:
            if not skip_missing:
                raise
            skipped.append((case, str(e)))
    results = []
    for case, path in planned:
        selo_map = read_map(path, case=case.index)
        result = CaseResult(
            case, evaluate(selo_map, case.polygon_arrays(), case=case.index), str(path)
        )
        results.append(result)
        if on_case is not None:
            on_case(result)
    return results, skipped


def _checked_map(case: Case, maps_dir: Path, images_dir: str | os.PathLike[str] | None) -> Path:
    path = find_map(maps_dir, case.index)
    if path is None:
        names = ", ".join(n.format(index=case.index) for n in MAP_NAMES[:5])
        raise MapError(f"case {case.index}: no map in {maps_dir} (looked for {names}, ...)")
    if images_dir is not None:
        image = Path(images_dir) / case.image
        if not image.is_file():
            raise InputNotFoundError(f"case {case.index}: image {image} not found")
        shape = map_shape(path, case=case.index)
        try:
            expected = map_shape(image, case=case.index)
        except MapError:
            raise SceneError(f"case {case.index}: cannot read image {image}") from None
        if shape != expected:
            raise MapError(
                f"case {case.index}: map {path} is {shape[1]}x{shape[0]} (WxH) "
                f"but image {image} is {expected[1]}x{expected[0]}"
            )
    return path


def maps_annotations(
    maps_dir: str | os.PathLike[str], anno: str | os.PathLike[str] | None = None
) -> list[Case]:
    """The cases the maps in ``maps_dir`` are scored against: a run folder's own (see
    :func:`~selo.selo_tasks.run_folder.run_annotations`), else those of ``anno`` (default:
    the AIR-SLT annotations shipped with selo)."""
    if is_run_folder(maps_dir):
        return run_annotations(maps_dir, anno)[1]
    return load_annotations(anno)


def metrics_csv(results: Sequence[CaseResult]) -> str:
    """CSV text: one row per case (case,image,query,rsu,rda,ras,rmi) and a final mean row.

    Values are written with full precision (``repr``) so that they can be
    compared with other implementations to 1e-9.
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(METRIC_COLUMNS)
    for r in results:
        w.writerow([r.case.index, r.case.image, r.case.query, *_values(r.metrics)])
    if results:
        w.writerow([MEAN_ROW, "", "", *_values(mean_metrics(r.metrics for r in results))])
    return buf.getvalue()


def _values(m: Metrics) -> list[str]:
    return [repr(i.of(m)) for i in INDICATORS]


@dataclass(frozen=True)
class CsvRow:
    """One case's row of a metrics CSV."""

    case: int
    image: str
    query: str
    metrics: Metrics


def read_metrics_csv(path: str | os.PathLike[str]) -> tuple[list[CsvRow], Metrics | None]:
    """The case rows of a metrics CSV (:func:`metrics_csv`) and its mean row (None when it
    has none); RunFolderError naming the file, and the line, when it is not one."""
    from ..pipeline.store import as_path

    path = as_path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except FileNotFoundError:
        raise RunFolderError(f"{path}: not found; the run did not finish") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise RunFolderError(f"{path}: cannot be read ({e})") from None
    cases, mean = [], None
    for n, row in enumerate(rows, start=2):
        is_mean = row.get("case") == MEAN_ROW
        try:
            metrics = Metrics.from_dict(row)
            case = (
                None if is_mean else CsvRow(int(row["case"]), row["image"], row["query"], metrics)
            )
        except (KeyError, TypeError, ValueError):
            raise RunFolderError(
                f"{path}, line {n}: expected {','.join(METRIC_COLUMNS)} with numbers"
            ) from None
        if not all(math.isfinite(v) for v in metrics.as_dict().values()):
            raise RunFolderError(f"{path}, line {n}: a metric is not a finite number")
        if is_mean:
            mean = metrics
        else:
            cases.append(case)
    if not cases:
        raise RunFolderError(f"{path}: holds no case")
    return cases, mean


def write_metrics_csv(path: str | os.PathLike[str], results: Sequence[CaseResult]) -> Path:
    """Write :func:`metrics_csv` to ``path`` atomically (temporary name, then rename)."""
    from ..pipeline.store import atomic_write_text

    return atomic_write_text(path, metrics_csv(results))
