"""The published SeLo v1 mechanics, re-implemented for timing comparisons (not part of selo).

Stage by stage as the published generate_selo.py works (our own code, same
mechanics): the whole scene is read with ``cv2.imread``; Cut writes every
window, resized to 256×256 (bicubic), as a JPEG file named by its coordinates
(duplicates overwrite each other); Sim reads each file back with PIL, one at
a time (batch size 1), embeds it and scores it against the query; Gnt reads
the scene again (``cv2.imread``, inside the published Gnt timer), adds each
score into whole-scene float64 sum and count arrays and divides them in a
Python loop over every pixel; Flt normalises, runs ``cv2.medianBlur`` (251) on
the whole map and colours it into the overlay (``applyColorMap`` and
``addWeighted``, inside the published Flt timer). File writes are outside the
timers, as in the published code.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def published_v1(scene: Path, query: str, encoder, workdir: Path, scales=(256, 512, 768)) -> dict:
    """Run the mechanics; returns stage seconds, windows and scores (in file order) and the map."""
    times = {}
    t0 = time.perf_counter()
    img = cv2.imread(str(scene))
    rows, cols = img.shape[:2]
    crops = workdir / "subimages"
    shutil.rmtree(crops, ignore_errors=True)
    crops.mkdir(parents=True)
    for step in scales:
        for gap in (step, int(0.5 * step)):
            for c in range(step - gap, cols, step):
                c0, c1 = (cols - step, cols) if c + step >= cols else (c, c + step)
                for r in range(step - gap, rows, step):
                    r0, r1 = (rows - step, rows) if r + step >= rows else (r, r + step)
                    cut = cv2.resize(img[r0:r1, c0:c1], (256, 256), interpolation=cv2.INTER_CUBIC)
                    cv2.imwrite(str(crops / f"{r0}_{r1}_{c0}_{c1}.jpg"), cut)
    times["cut"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    text = encoder.encode_texts([query])[0]
    files = os.listdir(crops)
    scores = []
    for name in files:
        window = np.asarray(Image.open(crops / name).convert("RGB"))
        if window.shape[0] != encoder.input_size:
            size = (encoder.input_size, encoder.input_size)
            window = cv2.resize(window, size, interpolation=cv2.INTER_CUBIC)
        scores.append(float(encoder.encode_images(window[None])[0] @ text))
    times["sim"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    img = cv2.imread(str(scene))
    rows, cols = img.shape[:2]
    heat = np.zeros((rows, cols), dtype=float)
    count = np.zeros((rows, cols), dtype=float)
    windows = []
    for name, score in zip(files, scores, strict=True):
        r0, r1, c0, c1 = (int(v) for v in name[:-4].split("_"))
        windows.append((r0, r1, c0, c1))
        heat[r0:r1, c0:c1] += score
        count[r0:r1, c0:c1] += 1
    for i in range(rows):
        for j in range(cols):
            heat[i, j] = heat[i, j] / count[i, j]
    times["gnt"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    shifted = heat - np.min(heat)
    prob = np.uint8(255 * (shifted / np.max(shifted)))
    selo = cv2.medianBlur(prob, 251)
    cv2.addWeighted(img, 0.7, cv2.applyColorMap(selo, cv2.COLORMAP_JET), 0.3, 0)
    times["flt"] = time.perf_counter() - t0
    shutil.rmtree(crops, ignore_errors=True)
    return {"times": times, "windows": np.array(windows), "scores": np.array(scores), "map": selo}
