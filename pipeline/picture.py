"""Pictures selo writes: the published SeLo overlay and one image encoder.

:func:`blend_overlay` is the published overlay's pixels (``overlay.png`` of ``selo
localize``, the background of the run report's annotated overlays); every picture is
encoded by :func:`encode_image` with :data:`PICTURE_PNG` for PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..errors import MapError, ParameterError
from .store import as_path, atomic_path

__all__ = ["PICTURE_PNG", "blend_overlay", "encode_image", "write_image"]


def blend_overlay(preview_rgb: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The published overlay as a BGR image: ``heat`` through OpenCV's JET colour
    map, blended ``0.7 * scene + 0.3 * colours``.

    ``preview_rgb``: (rows, cols, 3) uint8 RGB; ``heat``: uint8 (rows, cols)."""
    if preview_rgb.dtype != np.uint8 or preview_rgb.ndim != 3 or preview_rgb.shape[2] != 3:
        raise ParameterError(
            f"preview_rgb must be a (rows, cols, 3) uint8 RGB image, got "
            f"{preview_rgb.dtype} {preview_rgb.shape}"
        )
    if not isinstance(heat, np.ndarray) or heat.dtype != np.uint8 or heat.ndim != 2:
        got = f"{type(heat).__name__} {getattr(heat, 'dtype', '')} {getattr(heat, 'shape', '')}"
        raise MapError(f"the overlay map must be a 2-D uint8 numpy array, got {got}")
    if heat.shape != preview_rgb.shape[:2]:
        raise MapError(
            f"the overlay map has shape {heat.shape}, but the preview is {preview_rgb.shape[:2]}"
        )
    colours = cv2.applyColorMap(heat, cv2.COLORMAP_JET)
    scene = cv2.cvtColor(preview_rgb, cv2.COLOR_RGB2BGR)
    return cv2.addWeighted(scene, 0.7, colours, 0.3, 0)


PICTURE_PNG = (cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB)
"""OpenCV's PNG settings for every picture selo writes (overlays, cached scene previews):
zlib level 1 with the "sub" filter only. Measured on AIR-SLT-sized overlays: 35 ms and
1.3 MB, against 31 ms and 1.5 MB for OpenCV's default (also level 1, every filter chosen
per row) and 60 ms with every filter tried."""


def encode_image(image: np.ndarray, ext: str, params: Sequence[int] = ()) -> bytes:
    """``image`` encoded by OpenCV as ``ext`` (".png", ".jpg"); an error if it cannot be."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
        raise ParameterError(f"cannot encode a {image.dtype} {image.shape} image; give uint8")
    try:
        ok, buf = cv2.imencode(ext, image, list(params))
    except cv2.error as e:
        raise ParameterError(f"OpenCV cannot encode an image as {ext!r}: {e.err}") from None
    if not ok:
        raise ParameterError(f"OpenCV cannot encode a {image.dtype} {image.shape} image as {ext}")
    return buf.tobytes()


def write_image(path: str | Path, image: np.ndarray, params: Sequence[int] = ()) -> Path:
    """Encode ``image`` by the path's suffix and write it atomically."""
    data = encode_image(image, as_path(path).suffix, params)
    with atomic_path(path, what="image") as tmp:
        tmp.write_bytes(data)
    return as_path(path)
