"""Charts of a run's time, drawn with OpenCV (no plotting dependency): wall seconds per
stage beside the published v1 times (when comparable), task seconds per scene."""

from __future__ import annotations

import math
from collections.abc import Mapping

import cv2
import numpy as np

from ...pipeline.picture import write_image
from ..run_info import Comparison
from .drawing import FONT
from .terminal import shorten

__all__ = ["PUBLISHED_STAGES", "STAGE_COLOURS", "stage_chart", "scene_chart"]

# Published SeLo v1 stage times on AIR-SLT (RTX 3090, AMFMN, scales 256/512/768), seconds.
PUBLISHED_STAGES = {"cut": 0.93 * 60, "sim": 5.72 * 60, "gnt": 7.38 * 60, "flt": 0.74 * 60}
STAGE_COLOURS = {  # BGR
    "cut": (200, 120, 30),
    "sim": (60, 160, 60),
    "gnt": (40, 140, 230),
    "flt": (160, 80, 160),
    "eval": (110, 110, 110),
}


def _wrap(text: str, width: int, scale: float) -> list[str]:
    """``text`` broken into lines of at most ``width`` pixels in OpenCV's font."""
    lines: list[str] = []
    for word in text.split():
        line = f"{lines[-1]} {word}" if lines else word
        if lines and cv2.getTextSize(line, FONT, scale, 1)[0][0] <= width:
            lines[-1] = line
        else:
            lines.append(word)
    return lines


def stage_chart(
    path,
    stages: Mapping[str, Mapping[str, float]],
    *,
    title: str,
    published: Comparison | None = None,
) -> list[str]:
    """A PNG bar chart of wall seconds per stage (log scale); returns the bars drawn,
    ``"run:<stage>"`` and ``"published:<stage>"``.

    The published v1 times are drawn only when ``published`` says the run is
    comparable (:func:`~selo.selo_tasks.run_info.published_comparison`); its reason
    is printed under the chart either way. Drawn with OpenCV (no plotting
    dependency); written atomically.
    """
    show = published is not None and published.comparable
    names = [n for n in stages if stages[n].get("wall", 0) > 0] or list(stages)
    rows = [
        (n, stages[n].get("wall", 0.0), PUBLISHED_STAGES.get(n) if show else None) for n in names
    ]
    width, left, row_h = 900, 120, 44 if show else 28
    note = _wrap(published.reason, width - 24, 0.42) if published is not None else []
    height = 70 + row_h * len(rows) + 40 + 18 * len(note) + 8
    img = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(img, title, (12, 30), FONT, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    values = [v for _, a, b in rows for v in (a, b) if v]
    lo = math.floor(math.log10(max(min(values, default=0.01), 1e-3)))
    hi = math.log10(max([1.0, *values]) * 2)

    def x_of(seconds: float) -> int:
        frac = (math.log10(max(seconds, 10**lo)) - lo) / (hi - lo)
        return left + int(frac * (width - left - 170))

    drawn = []
    axis_top, axis_bottom = 52, 60 + row_h * len(rows)
    for p in range(lo, math.ceil(hi) + 1):
        x = x_of(10.0**p)
        cv2.line(img, (x, axis_top), (x, axis_bottom), (225, 225, 225), 1)
        cv2.putText(
            img,
            f"{10.0**p:g} s",
            (x - 12, axis_bottom + 16),
            FONT,
            0.4,
            (90, 90, 90),
            1,
            cv2.LINE_AA,
        )
    for i, (name, ours, pub) in enumerate(rows):
        y = 60 + i * row_h
        colour = STAGE_COLOURS.get(name, (200, 120, 30))
        cv2.putText(img, name, (12, y + 17), FONT, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.rectangle(img, (left, y + 4), (x_of(ours), y + 18), colour, -1)
        drawn.append(f"run:{name}")
        label = f"{ours:.2f} s (this run)" if show else f"{ours:.2f} s"
        cv2.putText(img, label, (x_of(ours) + 6, y + 17), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        if pub:
            cv2.rectangle(img, (left, y + 22), (x_of(pub), y + 36), (170, 170, 170), -1)
            drawn.append(f"published:{name}")
            cv2.putText(
                img,
                f"{pub:.0f} s (published)",
                (x_of(pub) + 6, y + 35),
                FONT,
                0.45,
                (90, 90, 90),
                1,
                cv2.LINE_AA,
            )
    for k, line in enumerate(note):
        y = axis_bottom + 40 + 18 * k
        cv2.putText(img, line, (12, y), FONT, 0.42, (60, 60, 60), 1, cv2.LINE_AA)
    write_image(path, img)
    return drawn


def scene_chart(path, scenes: Mapping[str, Mapping[str, float]], *, title: str) -> list[str]:
    """A PNG of summed task seconds per scene, one bar per scene stacked by stage
    (longest first, linear scale); returns the scenes drawn, in drawing order."""
    order = sorted(scenes, key=lambda s: -sum(scenes[s].values()))
    stages = [s for s in STAGE_COLOURS if any(scenes[n].get(s, 0) > 0 for n in order)]
    width, left, row_h = 900, 110, 22
    height = 84 + row_h * len(order) + 34
    img = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(img, title, (12, 26), FONT, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    x = 12
    for s in stages:  # legend
        cv2.rectangle(img, (x, 40), (x + 14, 54), STAGE_COLOURS[s], -1)
        cv2.putText(img, s, (x + 19, 52), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        x += 30 + cv2.getTextSize(s, FONT, 0.45, 1)[0][0]
    top = max((sum(scenes[n].values()) for n in order), default=0.0) or 1.0
    step = 10 ** math.floor(math.log10(top / 4)) if top > 0 else 1
    step *= next(m for m in (1, 2, 5, 10) if top / (step * m) <= 6)
    scale = (width - left - 80) / top
    y0, y1 = 70, 70 + row_h * len(order)
    for k in range(int(top / step) + 1):
        gx = left + int(k * step * scale)
        cv2.line(img, (gx, y0 - 4), (gx, y1), (225, 225, 225), 1)
        cv2.putText(
            img, f"{k * step:g} s", (gx - 10, y1 + 16), FONT, 0.4, (90, 90, 90), 1, cv2.LINE_AA
        )
    for i, name in enumerate(order):
        y = y0 + i * row_h
        cv2.putText(img, shorten(name, 14), (12, y + 15), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        x = float(left)
        for s in stages:
            w = scenes[name].get(s, 0.0) * scale
            if w > 0:
                cv2.rectangle(
                    img,
                    (int(x), y + 3),
                    (max(int(x) + 1, int(x + w)), y + 18),
                    STAGE_COLOURS[s],
                    -1,
                )
            x += w
        total = sum(scenes[name].values())
        cv2.putText(
            img, f"{total:.2f} s", (int(x) + 6, y + 16), FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA
        )
    write_image(path, img)
    return order
