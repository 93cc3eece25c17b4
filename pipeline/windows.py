"""The window table: which (r0, r1, c0, c1) windows a scene is cut into.

One pure function of (height, width, scales, offsets) drives both cutting and
accumulation. Rule (the published SeLo code's), for a scale ``s`` and an
offset fraction ``f`` (0 and 0.5 by default):

- the first start is ``o = s - int((1 - f) * s)`` (0 for f = 0, ``s/2`` for
  f = 0.5 and even ``s``), and starts go ``o, o+s, o+2s, ...`` while
  ``start < H`` — the stride is always ``s``;
- a window ``(r0, r0 + s)`` with ``r0 + s >= H`` is moved to the edge:
  ``(H - s, H)``;
- the same along columns with ``W``; every (row span, column span) pair is a window;
- the union over scales and offsets, duplicates removed (first one kept).

A scene smaller than ``s`` along an axis gets one span ``(0, H)`` on that axis
for that scale (the published code would crash); the table records which
scales were clamped so that the caller can say so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ParameterError

__all__ = ["WindowTable", "window_table", "axis_spans", "parse_scales", "DEFAULT_SCALES"]

DEFAULT_SCALES = (256, 512, 768)
MAX_SCALE = 1 << 20  # windows larger than any scene selo can hold
DEFAULT_OFFSETS = (0.0, 0.5)


@dataclass(frozen=True, eq=False)
class WindowTable:
    """Windows of one scene: ``windows`` (N, 4) int64 rows (r0, r1, c0, c1), half-open.

    ``scales`` (N,) is the scale that produced each window; ``clamped`` lists
    the scales larger than the scene along some axis.
    """

    height: int
    width: int
    windows: np.ndarray
    scales: np.ndarray
    clamped: tuple[int, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def digest(self) -> str:
        """A short hash of the scene size and windows, for cache keys."""
        h = hashlib.sha256(f"{self.height}x{self.width}".encode())
        h.update(np.ascontiguousarray(self.windows, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]

    def subset(self, index: np.ndarray) -> WindowTable:
        """The table restricted to the rows ``index`` (in that order)."""
        return WindowTable(
            self.height, self.width, self.windows[index], self.scales[index], self.clamped
        )


def axis_spans(length: int, size: int, offset: int) -> list[tuple[int, int]]:
    """(start, end) spans along one axis of ``length``: starts offset, offset+size, ... < length.

    A span reaching the end (``start + size >= length``) is moved to
    ``(length - size, length)``; with ``size > length`` every span is ``(0, length)``.
    """
    if length <= 0 or size <= 0:
        raise ParameterError(
            f"axis length and window size must be positive, got {length} and {size}"
        )
    spans = []
    for start in range(offset, length, size):
        end = start + size
        if end >= length:
            start, end = max(length - size, 0), length
        spans.append((start, end))
    return spans


def window_table(
    height: int,
    width: int,
    scales: Sequence[int] = DEFAULT_SCALES,
    offsets: Sequence[float] = DEFAULT_OFFSETS,
) -> WindowTable:
    """All windows for the given scales and offset fractions (see the module rule)."""
    if height <= 0 or width <= 0:
        raise ParameterError(f"scene size must be positive, got {width}x{height}")
    scales = parse_scales(scales)
    rows: list[np.ndarray] = []
    owner: list[np.ndarray] = []
    for s in scales:
        for f in offsets:
            if not 0.0 <= f < 1.0:
                raise ParameterError(f"offset fractions must be in [0, 1), got {f}")
            o = s - int((1 - f) * s)
            r = np.asarray(axis_spans(height, s, o), dtype=np.int64)
            c = np.asarray(axis_spans(width, s, o), dtype=np.int64)
            if len(r) == 0 or len(c) == 0:  # the offset lies beyond a small scene
                continue
            grid = np.empty((len(r), len(c), 4), dtype=np.int64)
            grid[:, :, 0:2] = r[:, None, :]
            grid[:, :, 2:4] = c[None, :, :]
            rows.append(grid.reshape(-1, 4))
            owner.append(np.full(len(r) * len(c), s, dtype=np.int64))
    windows = np.concatenate(rows)
    owners = np.concatenate(owner)
    _, first = np.unique(windows, axis=0, return_index=True)
    keep = np.sort(first)
    clamped = tuple(s for s in scales if s > height or s > width)
    return WindowTable(height, width, windows[keep], owners[keep], clamped)


def parse_scales(scales: Sequence[int] | str) -> tuple[int, ...]:
    """Window sizes as ints from 1 to :data:`MAX_SCALE`, from a sequence or a string like
    ``"256,512,768"``."""
    items = scales.replace("_", ",").split(",") if isinstance(scales, str) else list(scales)
    out = []
    for item in items:
        text = str(item).strip()
        shown = text if len(text) <= 24 else text[:20] + "..."
        try:
            if isinstance(item, bool):
                raise ValueError
            value = int(text)
        except ValueError:  # not a number, or more than 4300 digits
            raise ParameterError(f"scales must be whole numbers of pixels, got {shown!r}") from None
        if value <= 0:
            raise ParameterError(f"scales must be positive pixel sizes, got {shown}")
        if value > MAX_SCALE:
            raise ParameterError(
                f"scales must be at most {MAX_SCALE} pixels, got {shown} (a window larger "
                "than the scene is clamped to the scene: give the scene's size instead)"
            )
        out.append(value)
    if not out:
        raise ParameterError("at least one scale is needed")
    return tuple(dict.fromkeys(out))
