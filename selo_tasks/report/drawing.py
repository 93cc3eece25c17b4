"""Annotated overlays: outlines, circles and markers drawn on an overlay, and a legend.

The overlay is the published SeLo style (:func:`~selo.pipeline.picture.blend_overlay`,
the pixels :func:`~selo.pipeline.outputs.write_overlay` writes); :func:`draw_marks` draws
on a copy of it, in the overlay's pixels, shapes given in scene pixels
(x = column, y = row); :func:`with_legend` adds a panel below with a caption,
the colour ramp and what each mark means. OpenCV only; text is ASCII (OpenCV's
Hershey fonts have no other glyphs). This module knows nothing of SeLo metrics:
callers say which points are "hits" and which are "misses".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from ...errors import ParameterError

__all__ = ["LEGEND_KINDS", "ascii_text", "draw_marks", "with_legend"]

# BGR colours
WHITE, BLACK, MAGENTA = (255, 255, 255), (0, 0, 0), (255, 0, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX  # every text of the report's pictures
LEGEND_KINDS = ("ramp", "outline", "circle", "hit", "miss")


def _thickness(image: np.ndarray) -> int:
    """Line width that reads at this image size: 1 px up to 400 px, then one more per 400."""
    return max(1, round(min(image.shape[:2]) / 400))


def draw_marks(
    image: np.ndarray,
    scale: tuple[float, float],
    *,
    outlines: Sequence[np.ndarray] = (),
    circles: Sequence[tuple[float, float, float]] = (),
    hits: Sequence[tuple[float, float]] = (),
    misses: Sequence[tuple[float, float]] = (),
) -> np.ndarray:
    """A copy of BGR ``image`` with marks drawn; shapes are in scene pixels, multiplied
    by ``scale`` = (rows, cols) of the image per scene pixel.

    ``outlines``: (n, 2) [x, y] polygons, closed white lines on a black edge;
    ``circles``: (cx, cy, r), dashed white circles with a cross at the centre;
    ``hits``: filled white discs; ``misses``: magenta crosses in a ring."""
    out = image.copy()
    sy, sx = scale
    t = _thickness(out)

    def px(x: float, y: float) -> tuple[int, int]:
        return round(x * sx), round(y * sy)

    polys = [
        np.array([px(x, y) for x, y in np.asarray(p, float)], np.int32).reshape(-1, 1, 2)
        for p in outlines
    ]
    cv2.polylines(out, polys, True, BLACK, t + 2, cv2.LINE_AA)
    cv2.polylines(out, polys, True, WHITE, t, cv2.LINE_AA)
    for cx, cy, r in circles:
        centre, radius = px(cx, cy), max(1, round(r * math.sqrt(sx * sy)))
        _dashed_circle(out, centre, radius, t)
        _cross(out, centre, 3 * t + 2, WHITE, t)
    for x, y in misses:
        _miss(out, px(x, y), t)
    for x, y in hits:
        _hit(out, px(x, y), t)
    return out


def _dashed_circle(image: np.ndarray, centre, radius: int, t: int) -> None:
    """Dashes of about 5 line widths, gaps as long, at least 8 dashes."""
    dashes = max(8, round(2 * math.pi * radius / (10 * t + 6)))
    step = 360 / (2 * dashes)
    for k in range(dashes):
        a = 2 * k * step
        cv2.ellipse(image, centre, (radius, radius), 0, a, a + step, BLACK, t + 2, cv2.LINE_AA)
        cv2.ellipse(image, centre, (radius, radius), 0, a, a + step, WHITE, t, cv2.LINE_AA)


def _cross(image: np.ndarray, centre, size: int, colour, t: int) -> None:
    x, y = centre
    cv2.line(image, (x - size, y), (x + size, y), colour, t, cv2.LINE_AA)
    cv2.line(image, (x, y - size), (x, y + size), colour, t, cv2.LINE_AA)


def _hit(image: np.ndarray, centre, t: int) -> None:
    cv2.circle(image, centre, 4 * t + 3, BLACK, -1, cv2.LINE_AA)
    cv2.circle(image, centre, 4 * t + 1, WHITE, -1, cv2.LINE_AA)


def _miss(image: np.ndarray, centre, t: int) -> None:
    x, y = centre
    d = 3 * t + 2
    for colour, width in ((BLACK, t + 2), (MAGENTA, t)):
        cv2.circle(image, centre, 4 * t + 2, colour, width, cv2.LINE_AA)
        cv2.line(image, (x - d, y - d), (x + d, y + d), colour, width, cv2.LINE_AA)
        cv2.line(image, (x - d, y + d), (x + d, y - d), colour, width, cv2.LINE_AA)


def ascii_text(text: str) -> str:
    """``text`` with whitespace collapsed and characters OpenCV cannot draw as ``?``."""
    return " ".join(text.split()).encode("ascii", "replace").decode("ascii")


def _fit(text: str, width: int, font_scale: float) -> str:
    """``text`` cut (with ``...``) to fit ``width`` pixels."""
    if cv2.getTextSize(text, FONT, font_scale, 1)[0][0] <= width:
        return text
    while text and cv2.getTextSize(text + "...", FONT, font_scale, 1)[0][0] > width:
        text = text[:-1]
    return text.rstrip() + "..."


def with_legend(
    image: np.ndarray,
    *,
    captions: Sequence[str],
    entries: Sequence[tuple[str, str]],
    ramp: tuple[str, str] = ("0", "1"),
) -> np.ndarray:
    """``image`` over a white legend panel: caption lines on top (cut to fit), then
    entries laid out left to right (wrapping): ``(kind, label)`` with ``kind`` one of
    :data:`LEGEND_KINDS`; ``ramp`` draws the JET colour ramp between its two labels."""
    width = image.shape[1]
    fs, pad, row_h = 0.45, 8, 24
    t = 1
    items = []
    for kind, label in entries:
        if kind not in LEGEND_KINDS:
            raise ParameterError(f"unknown legend entry {kind!r}; use one of {LEGEND_KINDS}")
        label = ascii_text(label)
        text_w = cv2.getTextSize(label, FONT, fs, 1)[0][0]
        sample_w = 150 if kind == "ramp" else 22
        items.append((kind, label, sample_w + 6 + text_w))
    rows: list[list] = [[]]
    x = pad
    for item in items:
        if rows[-1] and x + item[2] > width - pad:
            rows.append([])
            x = pad
        rows[-1].append(item)
        x += item[2] + 18
    top = pad + row_h * len(captions)
    panel = np.full((top + len(rows) * row_h + pad, width, 3), 255, np.uint8)
    for i, line in enumerate(captions):
        text = _fit(ascii_text(line), width - 2 * pad, 0.5)
        cv2.putText(panel, text, (pad, pad + 15 + i * row_h), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    for i, row in enumerate(rows):
        y = top + row_h * i + row_h // 2  # middle of the row
        x = pad
        for kind, label, item_w in row:
            if kind == "ramp":
                levels = np.linspace(0, 255, 110).astype(np.uint8)[None]
                bar = np.repeat(cv2.applyColorMap(levels, cv2.COLORMAP_JET), 10, axis=0)
                lo_w = cv2.getTextSize(ramp[0], FONT, 0.4, 1)[0][0]
                cv2.putText(panel, ramp[0], (x, y + 4), FONT, 0.4, BLACK, 1, cv2.LINE_AA)
                bx = x + lo_w + 4
                shown = max(0, min(110, width - bx))
                panel[y - 5 : y + 5, bx : bx + shown] = bar[:, :shown]
                cv2.putText(panel, ramp[1], (bx + 114, y + 4), FONT, 0.4, BLACK, 1, cv2.LINE_AA)
                text_x = x + 156
            else:
                c = (x + 11, y)
                swatch = panel[y - 11 : y + 12, x : x + 23]
                swatch[:] = (150, 150, 150)  # marks are drawn on gray, as they look on maps
                if kind == "outline":
                    cv2.rectangle(panel, (x + 3, y - 7), (x + 19, y + 7), BLACK, t + 2)
                    cv2.rectangle(panel, (x + 3, y - 7), (x + 19, y + 7), WHITE, t)
                elif kind == "circle":
                    _dashed_circle(panel, c, 9, t)
                    _cross(panel, c, 4, WHITE, t)
                elif kind == "hit":
                    _hit(panel, c, t)
                else:
                    _miss(panel, c, t)
                text_x = x + 28
            cv2.putText(panel, label, (text_x, y + 5), FONT, fs, BLACK, 1, cv2.LINE_AA)
            x += item_w + 18
    return np.vstack([image, panel])
