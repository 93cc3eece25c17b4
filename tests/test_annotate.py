"""Annotated overlays: the published blend, marks in scene pixels, the legend panel."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from selo.errors import ParameterError
from selo.pipeline.outputs import write_overlay
from selo.pipeline.picture import blend_overlay, encode_image, write_image
from selo.selo_tasks.report.drawing import draw_marks, with_legend


@pytest.fixture
def picture():
    rng = np.random.default_rng(0)
    preview = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    heat = rng.integers(0, 256, (60, 80), dtype=np.uint8)
    return preview, heat


def test_blend_is_the_published_overlay(picture, tmp_path):
    preview, heat = picture
    written = cv2.imread(str(write_overlay(tmp_path / "o.png", preview, heat)))
    np.testing.assert_array_equal(blend_overlay(preview, heat), written)


def test_marks_are_drawn_in_scene_pixels_on_a_copy(picture):
    preview, heat = picture
    base = blend_overlay(preview, heat)
    square = np.array([[100, 100], [300, 100], [300, 300], [100, 300]], float)  # scene px
    out = draw_marks(base, (0.1, 0.1), outlines=[square], hits=[(600, 400)], misses=[(200, 500)])
    assert not np.shares_memory(out, base)
    changed = np.any(out != base, axis=2)
    assert changed[10, 10:31].all()  # the outline's top edge at rows 10, cols 10..30
    assert np.array_equal(out[40, 60], [255, 255, 255])  # the hit's white disc
    assert changed[50, 20]  # the miss's cross
    assert not changed[30:36, 40:50].any()  # elsewhere the overlay is untouched


def test_legend_panel_below_keeps_the_width(picture):
    preview, heat = picture
    base = blend_overlay(preview, heat)
    out = with_legend(base, captions=["case 0: a white plane"], entries=[("ramp", "map")])
    assert out.shape[1] == base.shape[1] and out.shape[0] > base.shape[0]
    np.testing.assert_array_equal(out[: base.shape[0]], base)
    wide = with_legend(base, captions=["é"], entries=[(k, "x" * 30) for k in ("hit", "miss")])
    assert wide.shape[0] > out.shape[0]  # entries that do not fit wrap onto more rows
    with pytest.raises(ParameterError, match="unknown legend entry"):
        with_legend(base, captions=[], entries=[("star", "x")])


def test_encoding_errors_are_parameter_errors(tmp_path):
    image = np.zeros((4, 4, 3), np.uint8)
    assert encode_image(image, ".png")[:4] == b"\x89PNG"
    with pytest.raises(ParameterError, match=".xyz"):
        write_image(tmp_path / "a.xyz", image)
    with pytest.raises(ParameterError, match="uint8"):
        encode_image(image.astype(float), ".png")
    assert not list(tmp_path.iterdir())  # nothing written
