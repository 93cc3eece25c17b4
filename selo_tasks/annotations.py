"""AIR-SLT annotations: ``anno.json`` read into validated, typed cases.

The format (from the published test set): a JSON list; entry ``i`` is case
``i`` with ``caption`` (the query sentence), ``jpg_name`` (the scene's file
name inside the images folder) and ``points`` (a list of polygons, each a list
of ``[x, y]`` pixel coordinates, x = column, y = row; points may repeat).

Every problem is reported as an :class:`~selo.errors.AnnotationError` that
names the file, the case index and the field, before any work starts.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import AnnotationError, InputNotFoundError, SeloError
from .metrics import MAX_COORD, validate_polygons

__all__ = [
    "Case",
    "load_annotations",
    "parse_annotations",
    "packaged_annotations",
    "check_image_name",
    "check_text",
]

Point = tuple[float, float]


@dataclass(frozen=True)
class Case:
    """One AIR-SLT case: a scene, a query and the regions it should find."""

    index: int
    image: str
    query: str
    polygons: tuple[tuple[Point, ...], ...]

    def polygon_arrays(self) -> list[np.ndarray]:
        """The polygons as (n, 2) float64 arrays of [x, y]."""
        return [np.asarray(p, dtype=np.float64) for p in self.polygons]


def packaged_annotations() -> Path:
    """Path of the AIR-SLT ``anno.json`` shipped with selo (MIT, see its LICENSE)."""
    return Path(str(resources.files("selo.selo_tasks").joinpath("data/air-slt/anno.json")))


def load_annotations(path: str | os.PathLike[str] | None = None) -> list[Case]:
    """Read and validate an annotation file (default: the packaged AIR-SLT one)."""
    p = Path(path) if path is not None else packaged_annotations()
    try:
        exists, is_dir = p.exists(), p.is_dir()
    except OSError as e:  # a name too long, a loop of links
        raise AnnotationError(f"{p}: cannot be used as a path ({e.strerror})") from None
    if not exists:
        raise InputNotFoundError(f"{p}: annotation file not found")
    if is_dir:
        raise AnnotationError(f"{p}: is a folder; give the path of anno.json")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{p}: cannot read as UTF-8 text ({e})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise AnnotationError(
            f"{p}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})"
        ) from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise AnnotationError(f"{p}: not valid JSON for selo ({e})") from None
    except RecursionError:
        raise AnnotationError(f"{p}: not valid JSON for selo (nested too deeply)") from None
    return parse_annotations(data, source=str(p))


def parse_annotations(data: object, *, source: str = "annotations") -> list[Case]:
    """Validate already-parsed annotation JSON into cases."""
    if not isinstance(data, list):
        raise AnnotationError(f"{source}: expected a JSON list of cases, got {type(data).__name__}")
    if not data:
        raise AnnotationError(f"{source}: contains no cases")
    return [_parse_case(entry, i, source) for i, entry in enumerate(data)]


MAX_NAME_BYTES = 255  # the longest file name of common file systems


def check_text(text: str, *, where: str, error: type[SeloError] = AnnotationError) -> str:
    """``text`` if it is valid Unicode, else ``error``: a lone surrogate (which JSON's
    ``\\ud800`` escapes and undecodable command-line bytes produce) cannot be
    encoded, tokenized or written as UTF-8."""
    for i, ch in enumerate(text):
        if "\ud800" <= ch <= "\udfff":
            raise error(
                f"{where}: not valid Unicode text (a lone surrogate {ch!r} at character {i})"
            )
    return text


def check_image_name(name: str, *, where: str) -> str:
    """``name`` if it is a plain file name inside the images folder, else AnnotationError.

    Absolute paths, ``..`` and path separators are refused so that an
    annotation file can never make selo read outside the images folder; so are
    names longer than file systems allow and names that are not valid text.
    """
    check_text(name, where=f"{where}, field 'jpg_name'")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise AnnotationError(
            f"{where}, field 'jpg_name': {name[:40]!r}... is {len(name.encode('utf-8'))} bytes "
            f"long; file names have at most {MAX_NAME_BYTES}"
        )
    bad = (
        not name
        or name.strip() != name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or os.path.isabs(name)
        or "\x00" in name
        or (len(name) > 1 and name[1] == ":")
    )
    if bad:
        raise AnnotationError(
            f"{where}, field 'jpg_name': {name!r} is not a plain file name inside the images folder"
        )
    return name


def _parse_case(entry: object, index: int, source: str) -> Case:
    where = f"{source}: case {index}"
    if not isinstance(entry, dict):
        raise AnnotationError(f"{where}: expected an object with caption, jpg_name, points")
    missing = [k for k in ("caption", "jpg_name", "points") if k not in entry]
    if missing:
        raise AnnotationError(f"{where}: missing field(s) {', '.join(repr(k) for k in missing)}")
    caption, image, points = entry["caption"], entry["jpg_name"], entry["points"]
    if not isinstance(caption, str) or not caption.strip():
        raise AnnotationError(f"{where}, field 'caption': must be a non-empty sentence")
    check_text(caption, where=f"{where}, field 'caption'")
    if not isinstance(image, str):
        raise AnnotationError(f"{where}, field 'jpg_name': must be a string")
    check_image_name(image, where=where)
    polygons = _parse_polygons(points, where)
    validate_polygons([np.asarray(p) for p in polygons], where=f"{where}, field 'points'")
    return Case(index=index, image=image, query=caption.strip(), polygons=polygons)


def _parse_polygons(points: object, where: str) -> tuple[tuple[Point, ...], ...]:
    field = f"{where}, field 'points'"
    if not isinstance(points, list) or not points:
        raise AnnotationError(f"{field}: must be a non-empty list of polygons")
    first = points[0]
    if isinstance(first, list) and first and all(isinstance(v, int | float) for v in first):
        raise AnnotationError(
            f"{field}: must be a list of polygons, each a list of [x, y] points; "
            "this looks like one polygon (wrap it in another list)"
        )
    polygons = []
    for j, poly in enumerate(points):
        if not isinstance(poly, list):
            raise AnnotationError(f"{field}, polygon {j}: must be a list of [x, y] points")
        pts = []
        for k, pt in enumerate(poly):
            pts.append(_parse_point(pt, f"{field}, polygon {j}, point {k}"))
        polygons.append(tuple(pts))
    return tuple(polygons)


def _parse_point(pt: object, where: str) -> Point:
    if not isinstance(pt, Sequence) or isinstance(pt, str) or len(pt) != 2:
        raise AnnotationError(f"{where}: must be an [x, y] pair, got {_short(pt)}")
    xy = []
    for name, v in zip("xy", pt, strict=True):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise AnnotationError(f"{where}: {name} is not a finite number ({_short(v)})")
        if isinstance(v, float) and not math.isfinite(v):
            raise AnnotationError(f"{where}: {name} is not a finite number ({v!r})")
        if abs(v) > MAX_COORD:
            raise AnnotationError(
                f"{where}: {name} is not a pixel coordinate ({_short(v)} is beyond "
                f"±{MAX_COORD}, the 32-bit range the published code truncates points to)"
            )
        xy.append(float(v))
    return (xy[0], xy[1])


def _short(value: object) -> str:
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int too long to print, a nested too deep
        return f"a {type(value).__name__} too large to show"
    return text if len(text) <= 40 else text[:37] + "..."
