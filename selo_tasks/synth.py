"""A synthetic AIR-SLT: scenes of the real sizes, drawn from the real annotations.

The real AIR-SLT scenes are distributed separately by their authors; this
builds stand-ins that exercise the same code paths at the same scale.

Scene sizes (from the annotations, since the images are not here): the
published run log reports scene ``20.jpg`` as 10000 × 10001 (rows × columns),
and the test set's scenes are "about 3000 × 2300" otherwise. So a scene whose
annotations reach beyond 5000 px is 10000 rows × 10001 columns; any other is
``max(2300, extent_y)`` rows × ``max(3000, extent_x)`` columns, the extents
being the largest annotated coordinate rounded up to the next 100.

Rendering (so that the weight-free ``color`` encoder can find each case's
regions from its caption): a textured background in a colour none of the
scene's captions names; then, case by case in annotation order, the case's
polygons filled with the first colour its caption names (with ``dark``/
``light`` modifiers), with texture; a case whose caption names no colour is
filled with a neutral concrete gray-brown and cannot be found by ``color``
(its query gets a flat embedding). Everything is seeded and deterministic.
With ``scale`` S every size and coordinate is multiplied by S.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ParameterError
from ..models.color import PROTOTYPES, query_colours
from ..pipeline.store import atomic_path, atomic_write_text, ensure_dir, local_folder
from .annotations import Case, load_annotations

__all__ = ["scene_sizes", "caption_colour", "render_scene", "build_synthetic_airslt"]

LARGE_EXTENT = 5000
LARGE_SIZE = (10000, 10001)  # rows, columns: 20.jpg in the published log
MIN_SIZE = (2300, 3000)
MIN_SCALE, MAX_SCALE = 0.01, 1.0  # --scale: smaller scenes would lose whole polygons

# Concrete, for captions that name no colour (``color`` cannot find those).
_NEUTRAL = (150, 140, 125)
_BACKGROUNDS = ("tawny", "brown", "purple")


def scene_sizes(cases: Sequence[Case]) -> dict[str, tuple[int, int]]:
    """(rows, columns) of each scene named by ``cases``, by the rule in the module docstring."""
    extent: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for case in cases:
        for poly in case.polygons:
            for x, y in poly:
                e = extent[case.image]
                e[0], e[1] = max(e[0], x), max(e[1], y)
    sizes = {}
    for image, (ex, ey) in extent.items():
        if max(ex, ey) > LARGE_EXTENT:
            sizes[image] = LARGE_SIZE
        else:
            sizes[image] = (max(MIN_SIZE[0], _round_up(ey)), max(MIN_SIZE[1], _round_up(ex)))
    return sizes


def _round_up(v: float, step: int = 100) -> int:
    return int(math.ceil((v + 1) / step) * step)


def caption_colour(caption: str) -> tuple[str, tuple[int, int, int]] | None:
    """The first colour a caption names, in the ``color`` encoder's vocabulary: (name, RGB).

    Uses the encoder's own reading of the caption (synonyms, compounds such as
    ``grayblack``, dark/light modifiers), so the scene shows what it looks for.
    """
    named = query_colours(caption)
    if not named:
        return None
    first = next(iter(named))
    return first, PROTOTYPES[first]


def render_scene(
    shape: tuple[int, int], cases: Sequence[Case], *, scale: float = 1.0, seed: int = 0
) -> np.ndarray:
    """An RGB uint8 scene of ``shape`` with each case's polygons painted in its caption's colour."""
    rng = np.random.default_rng(seed)
    named = {colour for case in cases for colour in query_colours(case.query)}
    background = PROTOTYPES[next((b for b in _BACKGROUNDS if b not in named), "purple")]
    img = _textured(shape, background, rng)
    h, w = shape
    for case in cases:
        colour = caption_colour(case.query)
        polys = [(np.asarray(p, dtype=np.float64) * scale).astype(np.int32) for p in case.polygons]
        pts = np.concatenate(polys)
        x0, y0 = np.clip(pts.min(axis=0), 0, [w - 1, h - 1])
        x1, y1 = np.clip(pts.max(axis=0) + 1, 1, [w, h])
        if x1 <= x0 or y1 <= y0:
            continue
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [p - [x0, y0] for p in polys], 1)
        fill = _textured(mask.shape, colour[1] if colour else _NEUTRAL, rng)
        region = img[y0:y1, x0:x1]
        region[mask.astype(bool)] = fill[mask.astype(bool)]
    return img


def _textured(
    shape: tuple[int, int], rgb: tuple[int, int, int], rng: np.random.Generator
) -> np.ndarray:
    """A field of colour ``rgb`` with soft low-frequency shading and fine grain."""
    h, w = shape
    coarse = rng.normal(1.0, 0.06, (max(2, h // 64), max(2, w // 64))).astype(np.float32)
    shade = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    grain = rng.standard_normal((h, w), dtype=np.float32) * 6.0
    out = np.empty((h, w, 3), dtype=np.uint8)
    for ch, value in enumerate(rgb):
        out[..., ch] = np.clip(value * shade + grain, 0, 255)
    return out


@dataclass(frozen=True)
class SyntheticSet:
    """Where a synthetic AIR-SLT was written."""

    root: Path
    images: Path
    anno: Path
    cases: list[Case]
    sizes: dict[str, tuple[int, int]]


def build_synthetic_airslt(
    out: str | os.PathLike[str],
    *,
    scale: float = 1.0,
    cases: Sequence[int] | None = None,
    anno: str | os.PathLike[str] | None = None,
    seed: int = 0,
    progress=None,
) -> SyntheticSet:
    """Write ``images/*.jpg`` and a scaled ``anno.json`` under ``out``; reuse what is there.

    ``cases``: the case indexes to include (default all; the subset keeps its
    original indexes in the ``case`` column of results via its order).
    """
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise ParameterError(f"--scale must be a number, got {scale!r}")
    if not MIN_SCALE <= scale <= MAX_SCALE:
        raise ParameterError(f"--scale must be from {MIN_SCALE} to {MAX_SCALE}, got {scale!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**128:
        raise ParameterError(f"--seed must be a whole number from 0 to 2**128 - 1, got {seed}")
    all_cases = load_annotations(anno)
    chosen = [all_cases[i] for i in cases] if cases is not None else all_cases
    full_sizes = scene_sizes(all_cases)
    root = ensure_dir(local_folder(out, "selo synth-airslt"))
    images = ensure_dir(root / "images")
    settings = {"scale": scale, "seed": seed}
    previous = root / "synth.json"
    if previous.exists() and _settings_of(previous) != settings:
        for old in images.glob("*.jpg"):  # drawn with other settings: draw again
            old.unlink()
    sizes = {
        k: (max(1, round(h * scale)), max(1, round(w * scale))) for k, (h, w) in full_sizes.items()
    }
    by_scene: dict[str, list[Case]] = defaultdict(list)
    for c in all_cases:
        by_scene[c.image].append(c)
    wanted = list(dict.fromkeys(c.image for c in chosen))
    for k, image in enumerate(wanted):
        path = images / image
        if not path.exists():
            scene = render_scene(sizes[image], by_scene[image], scale=scale, seed=seed + k)
            with atomic_path(path) as tmp:
                ok, buf = cv2.imencode(
                    ".jpg", cv2.cvtColor(scene, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
                )
                tmp.write_bytes(buf.tobytes())
        if progress is not None:
            progress()
    entries = [
        {
            "caption": c.query,
            "jpg_name": c.image,
            "points": [[[x * scale, y * scale] for x, y in poly] for poly in c.polygons],
            "source_case": c.index,
        }
        for c in chosen
    ]
    anno_path = atomic_write_text(root / "anno.json", json.dumps(entries, indent=1))
    atomic_write_text(
        root / "synth.json",
        json.dumps({"settings": settings, "sizes": {k: sizes[k] for k in wanted}}, indent=1),
    )
    return SyntheticSet(
        root, images, anno_path, load_annotations(anno_path), {k: sizes[k] for k in wanted}
    )


def _settings_of(record: Path) -> object:
    """The settings an earlier synth.json records (None when it is unreadable: draw again)."""
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return data.get("settings") if isinstance(data, dict) else None
