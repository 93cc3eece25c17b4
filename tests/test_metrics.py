"""SeLo metrics: hand-computed cases from the spec, a slow reference, and invariants."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.extra.numpy import arrays
from reference import reference_centres, reference_metrics
from strategies import maps, polygons

from selo.errors import AnnotationError, MapError
from selo.selo_tasks import metrics as M
from selo.selo_tasks.annotations import load_annotations


def square(x0, y0, size):
    return np.array(
        [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size]], dtype=np.float64
    )


def close(a, b, tol=1e-9):
    return abs(a - b) <= tol


# --- hand-computed cases ------------------------------------------------------------------------


def test_map_equal_to_mask_scores_perfectly():
    # A 400x400 square centred at (700, 600) in a 1400x1200 map, map = mask.
    poly = square(500, 400, 400)
    u = M.gt_mask((1200, 1400), [poly]) * np.uint8(255)
    m = M.evaluate(u, [poly])
    # All mass inside -> left = S_gt / eps, Rsu = 1. fillPoly covers 500..900
    # inclusive; each 50-wide box pass shifts content by +0.5 px (anchor 25), so
    # the peak plateau is centred at ((500 + 900 + 5) / 2, (400 + 800 + 5) / 2).
    cx, cy, r = M.region_centre_radius(poly)
    assert (cx, cy, r) == (700, 600, int(1.5 * math.hypot(200, 200)))
    assert M.attention_centres(u) == [(702, 602)]
    ras = (math.exp(3 * math.hypot(2, 2) / r) - 1) / (math.exp(3) - 1)
    assert m.rsu == 1.0 and close(m.ras, ras) and m.rda == 1.0
    assert close(m.rmi, 0.4 + 0.35 * (1 - ras) + 0.25)


def test_all_mass_outside_scores_zero():
    poly = square(100, 100, 200)  # a corner region
    mask = M.gt_mask((1500, 1500), [poly])
    u = (1 - mask) * np.uint8(255)
    m = M.evaluate(u, [poly])
    cx, cy, r = M.region_centre_radius(poly)
    centres = M.attention_centres(u)
    assert centres and all(math.dist((cx, cy), c) > r for c in centres)
    # S_gt = 0 -> Rsu = 0; no centre within r -> offset = r -> g = 1 -> Ras = 1; Rda = 0.
    assert m.rsu == 0.0 and m.ras == 1.0 and m.rda == 0.0 and m.rmi == 0.0


def test_no_centre_when_map_is_below_half():
    # Uniform P = 100/255 < 0.5: one plateau, but its centre is dropped.
    poly = square(200, 300, 300)
    h, w = 1000, 1200
    u = np.full((h, w), 100, np.uint8)
    m = M.evaluate(u, [poly])
    assert M.attention_centres(u) == []
    a = int(M.gt_mask((h, w), [poly]).sum())
    p = 100 / 255
    expected_rsu = 1 - math.exp(-0.707 * (a * p) / ((h * w - a) * p + 1e-7) * (h * w - a) / a)
    assert close(m.rsu, expected_rsu)
    assert m.ras == 1.0 and m.rda == 0.0
    assert close(m.rmi, 0.4 * expected_rsu)


def test_constant_map_above_half_has_one_centre_at_the_middle():
    u = np.full((900, 1300), 200, np.uint8)
    # the whole map is one plateau; its centroid is ((W-1)/2, (H-1)/2) truncated
    assert M.attention_centres(u) == [(649, 449)]


def test_two_centres_in_one_region():
    # Two bright 200x200 blocks 1200 px apart inside one big region.
    h, w = 1400, 2600
    u = np.zeros((h, w), np.uint8)
    u[600:800, 500:700] = 255
    u[600:800, 1700:1900] = 255
    poly = square(100, 100, 2400)  # centre (1300, 1300), r = int(1.5 * mean dist)
    cx, cy, r = M.region_centre_radius(poly)
    assert (cx, cy) == (1300, 1300)
    assert r == int(1.5 * math.hypot(1200, 1200))
    # symmetric blocks [a, b] peak at (a + b + 5) / 2 after the five box passes
    centres = M.attention_centres(u)
    assert sorted(centres) == [(602, 702), (1802, 702)]
    m = M.evaluate(u, [poly])
    # Rda: n = 2, mean point (1202, 702), each centre 600 from it.
    assert close(m.rda, 0.5 * (1 - 600 / r) + math.exp(-0.5 * 4))
    d1 = math.dist((1300, 1300), (602, 702))
    d2 = math.dist((1300, 1300), (1802, 702))
    g = ((d1 + d2) / 2) / r
    assert close(m.ras, (math.exp(3 * g) - 1) / (math.exp(3) - 1))


def test_one_centre_in_each_of_two_regions():
    h, w = 1400, 2600
    u = np.zeros((h, w), np.uint8)
    u[600:800, 500:700] = 255
    u[600:800, 1700:1900] = 255
    polys = [square(450, 550, 300), square(1650, 550, 300)]
    m = M.evaluate(u, polys)
    assert m.rda == 1.0
    # region centres (600, 700), (1800, 700); attention centres (602, 702), (1802, 702)
    g = np.mean([math.hypot(2, 2) / M.region_centre_radius(p)[2] for p in polys])
    assert close(m.ras, (math.exp(3 * g) - 1) / (math.exp(3) - 1))


def test_ties_keep_label_order():
    # Two equal peaks: the stable sort keeps raster order of their first pixel,
    # so the one whose top row comes first is listed first even if it is to the right.
    u = np.zeros((1500, 3000), np.uint8)
    u[300:500, 2300:2500] = 200  # first in raster order
    u[400:600, 300:500] = 200
    assert M.attention_centres(u) == [(2402, 402), (402, 502)]
    # a brighter peak moves ahead regardless of order
    u[400:600, 300:500] = 220
    assert M.attention_centres(u) == [(402, 502), (2402, 402)]


def test_gray_lookup_reproduces_the_float_truncation():
    k = np.arange(256)
    assert np.array_equal(M._GRAY_LUT, np.asarray((k / 255.0) * 255.0, dtype=np.uint8))
    # A float map built by multiplying with 1/255 is not k/255 exactly: the
    # truncation to uint8 then drops a level, and the float path keeps that.
    p = np.full((10, 10), 33 * (1 / 255.0))
    assert np.asarray(p * 255.0, np.uint8)[0, 0] == 32
    assert M._gray(p)[0, 0] == 32
    assert M._gray(np.full((10, 10), 33, np.uint8))[0, 0] == 33


def test_centre_and_radius_follow_the_published_truncations():
    # repeated points count every time; int() truncates the means
    pts = np.array([[0, 0], [10, 0], [10, 10], [0, 10], [0, 10]], dtype=np.float64)
    cx, cy, r = M.region_centre_radius(pts)
    assert (cx, cy) == (4, 6)
    d = [math.dist(p, (4, 6)) for p in pts]
    assert r == int(np.mean(d) * 1.5)


def test_uint8_and_float_maps_agree():
    rng = np.random.default_rng(3)
    u = cv2.resize(
        rng.integers(0, 256, (6, 8), dtype=np.uint8), (1600, 1200), interpolation=cv2.INTER_LINEAR
    )
    polys = [square(300, 200, 400), square(1000, 600, 300)]
    a = M.evaluate(u, polys)
    b = M.evaluate(u / 255.0, polys)
    for k in ("rsu", "rda", "ras", "rmi"):
        assert close(getattr(a, k), getattr(b, k), 1e-12)


# --- against the slow reference ------------------------------------------------------------------


def random_map(rng, h, w):
    kind = rng.integers(0, 4)
    if kind == 0:  # smooth blobs
        small = rng.random((rng.integers(2, 6), rng.integers(2, 6)))
        m = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        m = (m - m.min()) / (m.max() - m.min() + 1e-12)
        return np.uint8(255 * m)
    if kind == 1:  # noise
        return rng.integers(0, 256, (h, w), dtype=np.uint8)
    if kind == 2:  # blocks with ties
        small = rng.integers(0, 4, (rng.integers(1, 5), rng.integers(1, 5))).astype(np.uint8) * 85
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    return np.full((h, w), rng.integers(0, 256), np.uint8)


@st.composite
def scored_maps(draw, min_side: int = 60, max_side: int = 700):
    """A map and 1 to 3 polygons inside it."""
    u = draw(maps(min_side, max_side))
    h, w = u.shape
    return u, draw(st.lists(polygons(h, w), min_size=1, max_size=3))


def usable(polys, shape) -> bool:
    """Whether the polygons are regions the metrics can score (else the example does not
    apply)."""
    try:
        M.validate_polygons(polys, shape=shape)
    except AnnotationError:
        return False
    return True


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=scored_maps())
def test_matches_the_slow_reference(case):
    u, polys = case
    assume(usable(polys, u.shape))
    ours = M.evaluate(u, polys).as_dict()
    ref = reference_metrics(u / 255.0, polys)
    for k in ref:
        assert close(ours[k], ref[k]), (k, ours[k], ref[k])


@pytest.mark.parametrize("index", [0, 19, 40])
def test_matches_the_slow_reference_on_airslt_polygons(index):
    case = load_annotations()[index]
    polys = case.polygon_arrays()
    rng = np.random.default_rng(index)
    u = random_map(rng, 2400, 3900)
    ours = M.evaluate(u, polys).as_dict()
    ref = reference_metrics(u / 255.0, polys)
    for k in ref:
        assert close(ours[k], ref[k]), (k, ours[k], ref[k])


@settings(max_examples=60, deadline=None)
@given(b=arrays(np.bool_, st.tuples(st.integers(1, 80), st.integers(1, 80))))
def test_component_centroids_match_skimage_order_and_values(b):
    from skimage import measure

    labels = measure.label(b, connectivity=2)
    expected = [tuple(p.centroid) for p in measure.regionprops(labels)]
    ours = M._component_centroids(b)
    assert [(int(r), int(c)) for r, c in ours] == [(int(r), int(c)) for r, c in expected]
    assert np.allclose(ours, expected) if expected else ours == []


def test_attention_centres_match_reference_on_peaky_maps():
    rng = np.random.default_rng(7)
    for _ in range(5):
        u = np.zeros((1800, 2400), np.uint8)
        for _ in range(rng.integers(1, 8)):
            y, x = rng.integers(0, 1700), rng.integers(0, 2300)
            u[y : y + 100, x : x + 100] = rng.choice([130, 200, 255])
        expected = reference_centres(u / 255.0)
        assert M.attention_centres(u) == expected
        assert M.attention_centres(u, threads=3) == expected  # the filters on row strips


# --- invariants ---------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(u=arrays(np.uint8, (200, 300)), amount=st.integers(1, 255), data=st.data())
def test_rsu_rises_when_mass_moves_into_the_regions(u, amount, data):
    poly = square(50, 40, 100)
    mask = M.gt_mask(u.shape, [poly]).astype(bool)
    inside = np.argwhere(mask & (u <= 255 - amount))
    outside = np.argwhere(~mask & (u >= amount))
    assume(len(inside) and len(outside))  # mass can move in
    before = M.rsu(u, mask.astype(np.uint8))
    v = u.copy()
    yi, xi = inside[data.draw(st.integers(0, len(inside) - 1), label="into")]
    yo, xo = outside[data.draw(st.integers(0, len(outside) - 1), label="from")]
    v[yi, xi] += amount
    v[yo, xo] -= amount
    after = M.rsu(v, mask.astype(np.uint8))
    assert after >= before
    if before < 1.0:
        assert after > before


@settings(max_examples=25, deadline=None)
@given(case=scored_maps(100, 600))
def test_indicators_stay_in_range(case):
    u, polys = case
    assume(usable(polys, u.shape))
    m = M.evaluate(u, polys)
    for v in (m.rsu, m.rda, m.ras, m.rmi):
        assert 0.0 <= v <= 1.0


@settings(max_examples=25, deadline=None)
@given(patch=maps(60, 60), dy=st.integers(0, 180), dx=st.integers(0, 180))
def test_translation_of_map_and_polygons_leaves_metrics_unchanged(patch, dy, dx):
    # Content kept >= 375 px from every border (box filters spread 125 px, and the
    # reflected part of a 1000-wide maximum window then only sees zeros).
    poly = np.array([[10, 5], [50, 12], [45, 55], [8, 40]], dtype=np.float64)

    def at(y, x):
        u = np.zeros((1000, 1000), np.uint8)
        u[y : y + 60, x : x + 60] = patch
        return M.evaluate(u, [poly + [x, y]])

    a, b = at(380, 380), at(380 + dy, 380 + dx)
    assert a == b


@pytest.mark.parametrize(
    ("poly", "message"),
    [
        ([[0, 0], [10, 10], [0, 0]], "fewer than 3 distinct points"),  # 2 distinct points
        ([[0, 0], [10, 10], [20, 20], [30, 30]], "zero area"),  # collinear
        ([[100, 100], [100.4, 100], [100, 100.4]], "radius"),  # too small to have a radius
        ([[5000, 5000], [5100, 5000], [5100, 5100]], "entirely outside"),
    ],
)
def test_degenerate_polygons_are_named(poly, message):
    with pytest.raises(AnnotationError, match=message) as e:
        M.evaluate(np.zeros((300, 300), np.uint8), [np.array(poly, dtype=np.float64)], case=7)
    assert "case 7, polygon 0" in str(e.value)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((3, 4, 3), np.uint8),
        np.zeros((0, 5), np.uint8),
        np.zeros((5, 5), np.int32),
        np.full((5, 5), 1.5),
    ],
)
def test_bad_maps_are_refused(bad):
    with pytest.raises(MapError):
        M.evaluate(bad, [square(0, 0, 3)])


@pytest.mark.slow
def test_full_resolution_10k_map():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (40, 40), dtype=np.uint8)
    u = cv2.resize(small, (10001, 10000), interpolation=cv2.INTER_LINEAR)
    case = load_annotations()[31]  # on scene 20.jpg, 10000 x 10001 in the published log
    m = M.evaluate(u, case.polygon_arrays())
    for v in (m.rsu, m.rda, m.ras, m.rmi):
        assert 0.0 <= v <= 1.0
    # sums agree with a plain float64 summation
    mask = M.gt_mask(u.shape, case.polygon_arrays())
    p = u / 255.0
    s_gt = np.sum(p * mask)
    left = s_gt / (np.sum(p) - s_gt + 1e-7)
    right = (u.size - mask.sum()) / mask.sum()
    assert close(m.rsu, 1 - np.exp(-0.707 * left * right))


# --- attention centres chunk by chunk ---------------------------------------------------------


@pytest.mark.parametrize("chunk", [37, 64, 100, 1000])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lazy_attention_centres_equal_the_whole_map(chunk, seed):
    import dask.array as da

    from selo.selo_tasks.metrics import attention_centres, attention_centres_lazy

    rng = np.random.default_rng(seed)
    small = rng.random((6, 8))
    m = cv2.resize(small, (400, 300), interpolation=cv2.INTER_CUBIC)
    u = np.uint8(255 * (m - m.min()) / (m.max() - m.min()))
    u[rng.random(u.shape) < 0.001] = 255  # isolated spikes: many small components
    whole = attention_centres(u, box=6, max_size=40)
    lazy = attention_centres_lazy(da.from_array(u, chunks=77), box=6, max_size=40, chunk=chunk)
    assert lazy == whole and len(whole) > 3


def test_lazy_attention_centres_of_flat_and_empty_maps():
    from selo.selo_tasks.metrics import attention_centres, attention_centres_lazy

    for value in (0, 200):
        u = np.full((300, 400), value, np.uint8)
        assert attention_centres_lazy(u, box=6, max_size=40) == attention_centres(
            u, box=6, max_size=40
        )


def test_lazy_attention_centres_with_the_published_filter_sizes():
    import dask.array as da

    from selo.selo_tasks.metrics import attention_centres, attention_centres_lazy

    rng = np.random.default_rng(7)
    m = cv2.resize(rng.random((5, 6)), (1900, 1600), interpolation=cv2.INTER_CUBIC)
    u = np.uint8(255 * (m - m.min()) / (m.max() - m.min()))
    lazy = attention_centres_lazy(da.from_array(u, chunks=(700, 650)), chunk=700)
    assert lazy == attention_centres(u) and lazy


def test_lazy_attention_centres_of_a_spooled_map(tmp_path):
    from affine import Affine

    from selo.pipeline.outputs import spool
    from selo.pipeline.scene import Grid
    from selo.selo_tasks.metrics import attention_centres, attention_centres_lazy

    rng = np.random.default_rng(4)
    m = cv2.resize(rng.random((5, 7)), (500, 420), interpolation=cv2.INTER_CUBIC)
    u = np.uint8(255 * (m - m.min()) / (m.max() - m.min()))
    spooled = spool(tmp_path / "s.tif", u, like=Grid(420, 500, None, Affine.identity()))
    lazy = attention_centres_lazy(spooled, box=6, max_size=40, chunk=90)
    assert lazy == attention_centres(u, box=6, max_size=40) and lazy


@settings(max_examples=60, deadline=None)
@given(
    cells=hnp.arrays(np.uint8, st.tuples(st.integers(1, 6), st.integers(1, 6))),
    noise=hnp.arrays(np.uint8, st.tuples(st.integers(1, 200), st.integers(1, 50))),
    smooth=st.booleans(),
    cuts=st.lists(st.integers(1, 90), max_size=8),
    threads=st.integers(1, 3),
)
def test_centre_stream_on_strips_of_any_heights_equals_the_whole_map(
    cells, noise, smooth, cuts, threads
):
    """Maps (smooth with plateaus and spikes, or noise) given in strips of any heights: the
    same local maxima and centres as the whole map (filters 6 and 40 px, so the strips are
    shorter and longer than the filters' reach)."""
    from selo.pipeline.components import raster_components
    from selo.selo_tasks.metrics import CentreStream, ranked_centres

    u = noise
    if smooth:
        u = cv2.resize(cells, u.shape[::-1], interpolation=cv2.INTER_LINEAR)
        u[::37, ::23] = 255  # isolated spikes: small components
    h = u.shape[0]
    stream, top = CentreStream(u.shape, box=6, max_size=40, threads=threads), 0
    for n in [*cuts, h]:
        stream.add(u[top : top + n])
        top = min(top + n, h)
    # the local-maximum pixels themselves (their components' sizes and exact centroids)
    assert stream.components() == raster_components(M._peaks(u, box=6, max_size=40))
    got = ranked_centres(stream.candidates(), lambda x, y: int(u[y, x]))
    assert got == M.attention_centres(u, box=6, max_size=40)


def test_centre_stream_needs_every_row():
    from selo.selo_tasks.metrics import CentreStream

    stream = CentreStream((100, 50), box=6, max_size=40)
    stream.add(np.zeros((60, 50), np.uint8))
    with pytest.raises(MapError, match="all 100 rows"):
        stream.candidates()
