"""The window table against a slow, literal reading of the spec."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selo.errors import ParameterError
from selo.pipeline.windows import axis_spans, parse_scales, window_table


def slow_windows(h, w, scales, offsets=(0.0, 0.5)):
    """The published loops, one window at a time, duplicates collapsing by name."""
    seen, out = set(), []
    for s in scales:
        for f in offsets:
            gap = int((1 - f) * s)
            for r in range(s - gap, h, s):
                r0, r1 = r, r + s
                if r1 >= h:
                    r0, r1 = max(h - s, 0), h
                for c in range(s - gap, w, s):
                    c0, c1 = c, c + s
                    if c1 >= w:
                        c0, c1 = max(w - s, 0), w
                    if (r0, r1, c0, c1) not in seen:
                        seen.add((r0, r1, c0, c1))
                        out.append((r0, r1, c0, c1))
    return out


def test_spec_example_rows_of_a_1000_high_scene():
    # offset 0: 0, 256, 512, 744(->1000); offset 128: 128, 384, 640, 896 -> (744, 1000) again
    assert axis_spans(1000, 256, 0) == [(0, 256), (256, 512), (512, 768), (744, 1000)]
    assert axis_spans(1000, 256, 128) == [(128, 384), (384, 640), (640, 896), (744, 1000)]
    t = window_table(1000, 256, scales=[256])
    assert sorted({tuple(w[:2]) for w in t.windows.tolist()}) == [
        (0, 256),
        (128, 384),
        (256, 512),
        (384, 640),
        (512, 768),
        (640, 896),
        (744, 1000),
    ]


@pytest.mark.parametrize(
    ("h", "w", "scales"),
    [
        (1000, 1000, (256,)),  # the spec's example
        (2300, 3000, (256, 512, 768)),  # a typical AIR-SLT scene
        (10000, 10001, (256, 512, 768)),  # the largest AIR-SLT scene
        (768, 768, (256, 512, 768)),  # exact multiples: edge windows coincide
        (257, 1025, (256,)),  # one pixel beyond a multiple
        (300, 200, (256, 512)),  # smaller than a window on one or both axes
        (1, 1, (256,)),  # a 1-pixel scene
        (999, 999, (255,)),  # odd scale: offset is 255 - int(0.5 * 255) = 128
    ],
)
def test_matches_the_published_loops(h, w, scales):
    t = window_table(h, w, scales)
    assert [tuple(x) for x in t.windows.tolist()] == slow_windows(h, w, scales)


@settings(max_examples=100, deadline=None)
@given(
    h=st.integers(1, 3000),
    w=st.integers(1, 3000),
    scales=st.lists(st.integers(24, 1200), min_size=1, max_size=4, unique=True),
)
def test_property_matches_slow_reference(h, w, scales):
    t = window_table(h, w, scales)
    assert [tuple(x) for x in t.windows.tolist()] == slow_windows(h, w, scales)
    r0, r1, c0, c1 = t.windows.T
    # inside the scene, the size of their scale (or the whole axis when clamped)
    assert (r0 >= 0).all() and (r1 <= h).all() and (c0 >= 0).all() and (c1 <= w).all()
    assert np.array_equal(r1 - r0, np.minimum(t.scales, h))
    assert np.array_equal(c1 - c0, np.minimum(t.scales, w))
    # every pixel is covered
    cover = np.zeros((h + 1,), int)
    for a, b in {(a, b) for a, b in zip(r0.tolist(), r1.tolist(), strict=True)}:
        cover[a] += 1
        cover[b] -= 1
    assert (np.cumsum(cover)[:h] > 0).all()
    assert set(t.clamped) == {s for s in scales if s > h or s > w}


def test_offsets_are_a_parameter():
    t = window_table(1024, 1024, scales=[512], offsets=[0.0])
    assert t.windows.tolist() == [
        [0, 512, 0, 512],
        [0, 512, 512, 1024],
        [512, 1024, 0, 512],
        [512, 1024, 512, 1024],
    ]


def test_digest_changes_with_windows():
    a, b = window_table(1000, 1000), window_table(1000, 1001)
    assert a.digest == window_table(1000, 1000).digest and a.digest != b.digest


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("256,512,768", (256, 512, 768)),
        ("256_512", (256, 512)),
        ([128], (128,)),
        ("512, 512", (512,)),
    ],
)
def test_parse_scales(value, expected):
    assert parse_scales(value) == expected


@pytest.mark.parametrize("bad", ["0", "-256", "abc", "", "256,x", [0]])
def test_bad_scales(bad):
    with pytest.raises(ParameterError):
        parse_scales(bad)


def test_bad_offsets_and_sizes():
    with pytest.raises(ParameterError):
        window_table(100, 100, [64], offsets=[1.0])
    with pytest.raises(ParameterError):
        window_table(0, 100, [64])
