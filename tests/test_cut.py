"""Cut: batch planning and cropping."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selo.pipeline.cut import (
    CutSpec,
    RegionRead,
    carry_region,
    crop_batch,
    plan_batches,
    plan_region_reads,
    strip_rows,
)
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


def _regions(t, strip):
    return list(dict.fromkeys(b.bbox for b in plan_batches(t, strip=strip)))


@settings(max_examples=80, deadline=None)
@given(
    h=st.integers(1, 4000),
    w=st.integers(1, 900),
    strip=st.integers(64, 1500),
    block=st.none() | st.tuples(st.integers(0, 700), st.integers(1, 800)),
    chain=st.none() | st.integers(1, 5),
)
def test_chained_reads_hold_every_region_and_decode_each_block_once(h, w, strip, block, chain):
    t = window_table(h, w, (256, 512, 768))
    regions = _regions(t, strip)
    reads = plan_region_reads(regions, height=h, strip=strip, blocks=block, chain=chain)
    assert len(reads) == len(regions)
    follow = block is not None and block[1] <= strip  # taller blocks are not followed
    if follow:
        first, rows = block[0] % block[1], block[1]
    length = 0
    for i, ((r0, r1, c0, c1), read) in enumerate(zip(regions, reads, strict=True)):
        b0, b1, d0, d1 = read.box
        # the read box holds the region, its bottom down to the next block edge or to the
        # bottom of the region it carries rows from
        assert b0 == r0 and d0 <= c0 and c1 <= d1 and r1 <= b1 <= h
        edge = min(h, r1 + (first - r1) % rows) if follow else r1
        assert b1 == (max(edge, reads[i - 1].box[1]) if read.carried else edge)
        # carried rows come from the region before, which holds them, in the same columns
        assert 0 <= read.carried <= b1 - b0
        length = length + 1 if read.carried else 1
        assert chain is None or length <= chain
        if read.carried:
            p0, p1, q0, q1 = reads[i - 1].box
            assert p0 <= b0 and (q0, q1) == (d0, d1) and read.carried == p1 - b0
    # one chain (a full window table): every pixel read once, every block by one read
    if chain is None:
        assert not any(r.carried == 0 for r in reads[1:])
        spans = [(r.box[0] + r.carried, r.box[1]) for r in reads if r.carried < r.box[1] - r.box[0]]
        rows_read = np.zeros(h, int)
        for a, b in spans:
            rows_read[a:b] += 1
        assert (rows_read == 1).all()
        if follow:  # each read starts on a block edge but the first
            for a, _ in spans[1:]:
                assert (a - first) % rows == 0


@settings(max_examples=60, deadline=None)
@given(
    boxes=st.lists(
        st.tuples(*[st.integers(0, 300), st.integers(1, 200)] * 2), min_size=1, max_size=8
    ),
    strip=st.integers(8, 64),
    chain=st.none() | st.integers(1, 3),
)
def test_chains_of_any_boxes_read_no_more_than_the_boxes_apart(boxes, strip, chain):
    """Sparse boxes (the windows of a second pass): chained reads never decode more
    pixels than reading each box apart, and every region is held by its read."""
    regions = sorted((r, r + h, c, c + w) for r, h, c, w in boxes)
    height = max(r1 for _, r1, _, _ in regions)
    reads = plan_region_reads(regions, height=height, strip=strip, chain=chain)
    decoded = sum((r.box[1] - r.box[0] - r.carried) * (r.box[3] - r.box[2]) for r in reads)
    apart = sum((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in regions)
    assert decoded <= apart
    for (r0, r1, c0, c1), read in zip(regions, reads, strict=True):
        b0, b1, d0, d1 = read.box
        assert b0 == r0 and r1 <= b1 and d0 <= c0 and c1 <= d1


def test_carried_region_equals_the_region_read_whole():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (90, 70, 3), dtype=np.uint8)
    valid = rng.random((90, 70)) > 0.2
    calls = []

    def regions(r0, r1, c0, c1):
        calls.append((r0, r1, c0, c1))
        return image[r0:r1, c0:c1].copy(), valid[r0:r1, c0:c1].copy()

    before = (10, 60, 5, 70)
    previous = regions(*before)
    got, got_valid = carry_region(regions, previous, before, RegionRead((40, 85, 8, 60), 20))
    assert calls[-1] == (60, 85, 8, 60)  # only the rows the region before lacks
    np.testing.assert_array_equal(got, image[40:85, 8:60])
    np.testing.assert_array_equal(got_valid, valid[40:85, 8:60])
    # a region the one before holds whole reads nothing; no validity anywhere stays None
    whole = carry_region(regions, (previous[0], None), before, RegionRead((12, 50, 5, 70), 38))
    assert len(calls) == 2 and whole[1] is None
    np.testing.assert_array_equal(whole[0], image[12:50, 5:70])


def test_bad_chain():
    with pytest.raises(ValueError, match="chain"):
        plan_region_reads([(0, 10, 0, 10)], height=10, strip=5, chain=0)
