"""The overlays of one AIR-SLT case: annotated ``overlay.png``, a thumbnail, and optionally
the published-style ``overlay_plain.png``.

``overlay.png`` is the published overlay (the scene at most 1024 px on its longer side,
``0.7 * scene + 0.3 * JET(map)``) with the case's annotated polygons outlined, each
region's centre and radius (the circle within which an attention centre counts for
Ras and Rda) dashed, the attention centres marked — a white disc for those within
some region's radius (they counted), a magenta cross for the others — and a legend
panel below with the caption and the four metrics. ``thumb.jpg`` is the same marks on
a 320 px thumbnail (for ``report.html``). ``overlay_plain.png`` is the overlay alone,
as the published code draws it.

The scene preview is read once per scene (:func:`submit_previews`) and given to every
case of the scene; each case decimates its map inside the task that holds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import dask
import dask.local
import numpy as np

from ...pipeline.cache import Cache
from ...pipeline.picture import PICTURE_PNG, blend_overlay, write_image
from ...pipeline.preview import decimate, read_preview
from ...pipeline.profile import task_label
from ...pipeline.scene import open_scene
from ..annotations import Case
from ..metrics import SHOWN, CaseEvaluation
from ..run_folder import OVERLAY, OVERLAY_PLAIN, THUMB
from .drawing import draw_marks, with_legend

__all__ = [
    "PREVIEW_SIDE",
    "THUMB_SIDE",
    "LEGEND",
    "read_scene_preview",
    "submit_previews",
    "write_case_overlays",
]

PREVIEW_SIDE = 1024
THUMB_SIDE = 320
_JPEG = (cv2.IMWRITE_JPEG_QUALITY, 80)

LEGEND = (
    ("ramp", "SeLo map"),
    ("outline", "annotated region"),
    ("circle", "region centre, radius"),
    ("hit", "attention centre within a radius (counted)"),
    ("miss", "attention centre outside (not counted)"),
)


def read_scene_preview(location, cache: Cache) -> np.ndarray:
    """The scene's (rows, cols, 3) RGB preview, at most PREVIEW_SIDE px on its longer side
    (:func:`~selo.pipeline.preview.read_preview`, kept in the cache); ``location``: what
    :func:`~selo.pipeline.scene.open_scene` opens (a path, a URL, a SceneRef)."""
    with dask.config.set(scheduler=dask.local.get_sync):
        return read_preview(open_scene(location, cache=cache), PREVIEW_SIDE, cache=cache)


def submit_previews(client, paths: Mapping[str, object], cache: Cache) -> dict:
    """{scene name: future of its preview}, one task per scene (``flt-preview-<scene>-…``);
    tasks carry each scene's location (a path, a URL or a SceneRef), never an open file."""
    return {
        name: client.submit(
            read_scene_preview,
            path,
            cache,
            key=f"flt-preview-{task_label(name)}-{dask.base.tokenize(path, cache.root)}",
            pure=False,
        )
        for name, path in paths.items()
    }


def _marks(case: Case, evaluation: CaseEvaluation) -> dict:
    counted = evaluation.counted()
    return {
        "outlines": case.polygon_arrays(),
        "circles": evaluation.regions,
        "hits": [c for c, k in zip(evaluation.centres, counted, strict=True) if k],
        "misses": [c for c, k in zip(evaluation.centres, counted, strict=True) if not k],
    }


def write_case_overlays(
    folder: Path,
    selo: np.ndarray,
    preview: np.ndarray,
    case: Case,
    evaluation: CaseEvaluation,
    *,
    plain: bool = False,
) -> None:
    """Write ``overlay.png`` and ``thumb.jpg`` (and ``overlay_plain.png`` with ``plain``)."""
    height, width = selo.shape
    heat = decimate(selo, preview.shape[:2])
    overlay = blend_overlay(preview, heat)
    if plain:
        write_image(folder / OVERLAY_PLAIN, overlay, PICTURE_PNG)
    marks = _marks(case, evaluation)
    m = evaluation.metrics
    numbers = "   ".join(
        f"{i.label} {i.text(i.of(m))}" + ("" if i.higher_is_better else " (lower is better)")
        for i in SHOWN
    )
    counted = f"({len(marks['hits'])} of {len(evaluation.centres)} attention centres counted)"
    annotated = with_legend(
        draw_marks(overlay, (overlay.shape[0] / height, overlay.shape[1] / width), **marks),
        captions=(f"case {case.index}, {case.image}: {case.query}", f"{numbers}   {counted}"),
        entries=LEGEND,
    )
    write_image(folder / OVERLAY, annotated, PICTURE_PNG)
    factor = min(1.0, THUMB_SIDE / max(overlay.shape[:2]))
    size = (max(1, round(overlay.shape[1] * factor)), max(1, round(overlay.shape[0] * factor)))
    small = cv2.resize(overlay, size, interpolation=cv2.INTER_AREA)
    thumb = draw_marks(small, (size[1] / height, size[0] / width), **marks)
    write_image(folder / THUMB, thumb, _JPEG)
