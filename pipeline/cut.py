"""Cut: window pixels cropped from the scene's chunks and resized for the encoder.

Windows are grouped by the tile (default 2048 px) holding their top-left
corner. Each tile's region (the bounding box of its windows) is read once
from the lazy scene array, as rows of RGB pixels, and its batches crop their
windows from it as views, so a task touches only the chunks its windows need
and memory is bounded by tile + largest window, whatever the scene size. Each
window is resized to ``size`` × ``size`` with OpenCV's bicubic interpolation
(no antialiasing), as the published code does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from selo.pipeline.windows import WindowTable

__all__ = [
    "Batch",
    "plan_batches",
    "crop_batch",
    "to_rows",
    "jpeg_round_trip",
    "MIN_VALID_FRACTION",
]

# A window whose pixels are all nodata is not embedded (it has nothing to show).
MIN_VALID_FRACTION = 0.0


@dataclass(frozen=True, eq=False)
class Batch:
    """Windows cut together: their rows in the table and the region they are cut from.

    ``bbox`` is the bounding box of all windows of the batch's tile, so the
    batches of one tile share one region.
    """

    index: np.ndarray  # (n,) rows of the window table
    bbox: tuple[int, int, int, int]  # r0, r1, c0, c1 of the tile's region

    def relative(self, table: WindowTable) -> np.ndarray:
        """The batch's windows in coordinates relative to the bounding box."""
        w = table.windows[self.index].copy()
        w[:, :2] -= self.bbox[0]
        w[:, 2:] -= self.bbox[2]
        return w


def plan_batches(table: WindowTable, *, tile: int = 2048, batch: int = 64) -> list[Batch]:
    """Batches of at most ``batch`` windows, grouped by the tile of their top-left corner.

    Every window is in exactly one batch; batches are ordered by tile (row
    major), windows inside a batch keep table order.
    """
    if tile < 1 or batch < 1:
        raise ValueError(f"tile and batch must be positive, got {tile} and {batch}")
    w = table.windows
    tr, tc = w[:, 0] // tile, w[:, 2] // tile
    order = np.lexsort((np.arange(len(w)), tc, tr))
    batches = []
    for group in _split_by_tile(order, tr[order], tc[order]):
        for i in range(0, len(group), batch):
            idx = group[i : i + batch]
            sel = w[idx]
            bbox = (
                int(sel[:, 0].min()),
                int(sel[:, 1].max()),
                int(sel[:, 2].min()),
                int(sel[:, 3].max()),
            )
            batches.append(Batch(idx, bbox))
    return batches


def _split_by_tile(order: np.ndarray, tr: np.ndarray, tc: np.ndarray) -> Iterator[np.ndarray]:
    change = np.flatnonzero((np.diff(tr) != 0) | (np.diff(tc) != 0)) + 1
    yield from np.split(order, change)


def to_rows(region: np.ndarray) -> np.ndarray:
    """A (3, h, w) band-first region as a contiguous (h, w, 3) array (one copy per tile)."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(region), 0, -1))


def crop_batch(
    rgb: np.ndarray,
    windows: np.ndarray,
    size: int,
    valid: np.ndarray | None = None,
    *,
    jpeg: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``windows`` (relative r0, r1, c0, c1) from an (h, w, 3) uint8 region.

    Returns (n, size, size, 3) uint8 RGB windows resized bicubically, and a
    (n,) bool array: True where the window has data (always, without ``valid``).
    Crops are views of ``rgb`` (OpenCV reads their rows in place). With
    ``jpeg`` each resized window makes the published code's round trip: written
    as JPEG by OpenCV (quality 95) and read back by PIL.
    """
    out = np.empty((len(windows), size, size, 3), dtype=np.uint8)
    has_data = np.ones(len(windows), dtype=bool)
    for i, (r0, r1, c0, c1) in enumerate(np.asarray(windows).tolist()):
        out[i] = cv2.resize(rgb[r0:r1, c0:c1], (size, size), interpolation=cv2.INTER_CUBIC)
        if jpeg:
            out[i] = jpeg_round_trip(out[i])
        if valid is not None:
            has_data[i] = valid[r0:r1, c0:c1].mean() > MIN_VALID_FRACTION
    return out, has_data


def jpeg_round_trip(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` after the published code's crop files: ``cv2.imwrite`` JPEG (of the BGR
    image), then ``PIL.Image.open(...).convert("RGB")``."""
    import io

    from PIL import Image

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("OpenCV could not encode a window as JPEG")
    return np.asarray(Image.open(io.BytesIO(buf.tobytes())).convert("RGB"))
