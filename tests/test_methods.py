"""SeLo methods: v1 and v2 rules from spec/pipeline.md."""

from __future__ import annotations

import numpy as np
import pytest

from selo.errors import ParameterError
from selo.models.registry import get_encoder
from selo.pipeline.windows import window_table
from selo.selo_tasks.methods import V1, V2, get_method
from selo.selo_tasks.methods.v2 import csm_variants, expansion_boxes, top_windows


def test_v1_windows_are_the_window_table():
    t = V1().scene_windows(1000, 1200)
    assert np.array_equal(t.windows, window_table(1000, 1200, (256, 512, 768), (0.0, 0.5)).windows)
    assert np.array_equal(
        V1(scales=(128,)).scene_windows(300, 300).windows, window_table(300, 300, (128,)).windows
    )


def test_v2_stage_one_is_512_at_offset_zero():
    t = V2().scene_windows(1300, 1100)
    rows = sorted({(a, b) for a, b, _, _ in t.windows.tolist()})
    cols = sorted({(c, d) for _, _, c, d in t.windows.tolist()})
    assert rows == [(0, 512), (512, 1024), (788, 1300)]  # 1024 + 512 >= 1300 -> moved to the edge
    assert cols == [(0, 512), (512, 1024), (588, 1100)]


@pytest.mark.parametrize(("n", "k"), [(1, 1), (6, 1), (7, 2), (20, 4), (100, 16)])
def test_top_k_is_floor_fifteen_percent_plus_one(n, k):
    scores = np.arange(n, dtype=float)
    kept = top_windows(scores)
    assert len(kept) == k and list(kept) == list(range(n - 1, n - 1 - k, -1))


def test_top_k_ties_keep_table_order():
    assert list(top_windows(np.array([0.5, 0.9, 0.9, 0.1, 0.9, 0.2, 0.3, 0.4]))) == [1, 2]


def test_nine_points_two_sizes_per_kept_window():
    boxes = expansion_boxes(np.array([[1024, 1536, 2048, 2560]]), 5000, 5000)
    expected = set()
    points = [(1024, 2048), (1024, 2560), (1536, 2048), (1536, 2560), (1152, 2176), (1152, 2432),
              (1408, 2176), (1408, 2432), (1280, 2304)]  # fmt: skip
    for r, c in points:
        for h in (64, 128):
            expected.add((r - h, r + h, c - h, c + h))
    assert {tuple(b) for b in boxes.tolist()} == expected and len(boxes) == 18


def test_boxes_at_edges_start_at_zero_and_end_at_the_scene():
    boxes = {tuple(b) for b in expansion_boxes(np.array([[0, 512, 0, 512]]), 560, 600).tolist()}
    # corner (0, 0): start max(0 - h, 0) = 0, end 2h
    assert (0, 128, 0, 128) in boxes and (0, 256, 0, 256) in boxes
    # corner (512, 512) with h = 128: rows 384..min(640, 560) = 560
    assert (384, 560, 384, 600) in boxes
    # duplicates collapse: the corner boxes of neighbouring windows coincide
    two = expansion_boxes(np.array([[0, 512, 0, 512], [0, 512, 512, 1024]]), 2000, 2000)
    assert len(two) == len({tuple(b) for b in two.tolist()}) < 36


def test_boxes_beyond_a_small_scene_are_dropped():
    boxes = expansion_boxes(np.array([[0, 300, 0, 300]]), 300, 300)
    assert (
        len(boxes)
        and (boxes[:, 0] < 300).all()
        and (boxes[:, 1] <= 300).all()
        and (boxes[:, 1] > boxes[:, 0]).all()
    )


def test_csm_is_the_query_and_four_seeded_shuffles():
    q = "a white plane parked on a gray airport"
    variants = csm_variants(q, seed=3)
    assert variants[0] == q and len(variants) == 5
    assert all(sorted(v.split()) == sorted(q.split()) for v in variants)
    assert csm_variants(q, seed=3) == variants and csm_variants(q, seed=4) != variants


def test_csm_query_vector_is_the_normalised_mean():
    enc = get_encoder("color")
    q = "white plane on gray airport"
    v = V2(seed=1).query_vector(enc, q)
    mean = enc.encode_texts(csm_variants(q, 1)).mean(axis=0)
    assert np.allclose(v, mean / np.linalg.norm(mean), atol=1e-6)


def test_v2_contributions_are_kept_windows_then_boxes():
    m = V2()
    table = m.scene_windows(2048, 2048)  # 16 windows -> 3 kept
    scores = np.linspace(0, 1, len(table))
    refinement = m.refine(table, scores)
    inputs = m.contributions(table, scores, refinement, np.zeros(len(refinement.extra)))
    kept = top_windows(scores)
    assert np.array_equal(refinement.kept, kept)  # the top windows, computed once
    assert np.array_equal(inputs.windows[: len(kept)], table.windows[kept])
    assert np.array_equal(inputs.windows[len(kept) :], refinement.extra.windows)
    assert np.array_equal(inputs.scores[: len(kept)], scores[kept])


def test_get_method():
    assert get_method("v1", scales=(128,)).scales == (128,)
    assert get_method("v1", scales="128,256").scales == (128, 256)
    assert get_method("v1").scales == (256, 512, 768)
    assert get_method("v2", seed=5).seed == 5
    assert get_method("v2").seed == 0
    with pytest.raises(ParameterError, match="v3"):
        get_method("v3")


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("v1", {"seed": 3}, "--seed applies to v2 only"),
        ("v2", {"scales": (256,)}, "--scales applies to v1 only"),
        ("v2", {"seed": -1}, "--seed must be a whole number from 0"),
        ("v2", {"seed": 2**64}, "--seed must be a whole number from 0"),
        ("v1", {"scales": "0"}, "scales must be positive"),
    ],
)
def test_options_that_do_not_apply_are_refused(name, options, message):
    with pytest.raises(ParameterError, match=message):
        get_method(name, **options)
