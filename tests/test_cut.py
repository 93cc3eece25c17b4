"""Cut: batch planning and cropping."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selo.pipeline.cut import CutSpec, crop_batch, plan_batches, strip_rows
from selo.pipeline.windows import window_table


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 5000),
    w=st.integers(1, 5000),
    strip=st.integers(64, 3000),
    batch=st.integers(1, 100),
)
def test_every_window_in_exactly_one_batch_inside_its_bbox(h, w, strip, batch):
    t = window_table(h, w, (256, 512, 768))
    batches = plan_batches(t, strip=strip, batch=batch)
    idx = np.concatenate([b.index for b in batches])
    # the batches of one strip share their region (read once)
    strips = {(b.bbox, int(t.windows[b.index[0], 0] // strip)) for b in batches}
    assert len(strips) == len({b.bbox for b in batches})
    for b in batches:
        assert len(set((t.windows[b.index, 0] // strip).tolist())) == 1
    assert sorted(idx.tolist()) == list(range(len(t)))
    for b in batches:
        assert 1 <= len(b.index) <= batch
        r0, r1, c0, c1 = b.bbox
        win = t.windows[b.index]
        assert (win[:, 0] >= r0).all() and (win[:, 1] <= r1).all()
        assert (win[:, 2] >= c0).all() and (win[:, 3] <= c1).all()
        # one strip per batch: the bounding box stays within the strip + largest window
        assert r1 - r0 < strip + 768
        rel = b.relative(t)
        assert (rel >= 0).all()


def test_crop_batch_equals_direct_crops():
    rng = np.random.default_rng(0)
    region = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    windows = np.array([[0, 256, 0, 256], [44, 300, 144, 400], [10, 20, 30, 45]])
    crops, has = crop_batch(region, windows, 64)
    assert crops.shape == (3, 64, 64, 3) and crops.dtype == np.uint8 and has.all()
    for crop, (r0, r1, c0, c1) in zip(crops, windows, strict=True):
        direct = cv2.resize(
            np.ascontiguousarray(region[r0:r1, c0:c1]),
            (64, 64),
            interpolation=cv2.INTER_CUBIC,
        )
        assert np.array_equal(crop, direct)


def test_windows_without_data_are_flagged():
    region = np.zeros((100, 100, 3), np.uint8)
    valid = np.zeros((100, 100), bool)
    valid[:10, :10] = True
    windows = np.array([[0, 50, 0, 50], [50, 100, 50, 100]])
    _, has = crop_batch(region, windows, 16, valid)
    assert has.tolist() == [True, False]


def test_bad_plan_arguments():
    with pytest.raises(ValueError):
        plan_batches(window_table(100, 100, (64,)), strip=0)


def test_paper_compat_jpeg_round_trip_matches_the_published_files(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(5)
    region = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    crops, _ = crop_batch(region, np.array([[0, 256, 0, 256]]), CutSpec(256, jpeg=True))
    # what the published code does: cv2.imwrite of the BGR crop, PIL reads it as RGB
    bgr = cv2.resize(
        region[:256, :256][..., ::-1].copy(), (256, 256), interpolation=cv2.INTER_CUBIC
    )
    cv2.imwrite(str(tmp_path / "0_256_0_256.jpg"), bgr)
    published = np.asarray(Image.open(tmp_path / "0_256_0_256.jpg").convert("RGB"))
    assert np.array_equal(crops[0], published)
    plain, _ = crop_batch(region, np.array([[0, 256, 0, 256]]), 256)
    assert not np.array_equal(plain[0], crops[0])  # the round trip is lossy


def test_cut_key_names_everything_the_cut_does():
    assert CutSpec(256).key != CutSpec(256, jpeg=True).key != CutSpec(224).key
    with pytest.raises(ValueError, match="positive"):
        CutSpec(0)


@pytest.mark.parametrize(
    ("width", "rows"), [(1, 4096), (10_000, 4096), (20_000, 2048), (40_000, 1024), (10**7, 256)]
)
def test_strips_follow_the_memory_budget(width, rows):
    assert strip_rows(width) == rows
