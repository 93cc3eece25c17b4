"""The collection index: its Gnt equals the cell accumulation, its search equals brute force
(exact), int8 re-ranks exactly with its recall measured, and damaged folders are refused."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st

from selo.errors import CollectionError, ParameterError
from selo.pipeline import index as index_module
from selo.pipeline.gnt import CellGrid, accumulate
from selo.pipeline.index import (
    CollectionIndex,
    IndexDamagedError,
    IndexWriter,
    choose_mode,
    quantize_rows,
)
from selo.pipeline.regions import cell_regions
from selo.pipeline.scene import Grid
from selo.pipeline.windows import window_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_search import World, synthetic_queries, synthetic_scene  # noqa: E402

PIXELS = Grid(1, 1, None, Affine.identity())


def grid(h: int, w: int) -> Grid:
    return Grid(h, w, None, Affine.identity())


def write(folder, scenes, *, width, int8=False) -> CollectionIndex:
    """An index of ``scenes``: [(table, has_data, embeddings)]."""
    with IndexWriter(folder, width=width, encoder="enc", int8=int8) as w:
        for i, (table, has, e) in enumerate(scenes):
            w.add(f"s{i}", f"k{i}", grid(table.height, table.width), table.windows, has, e)
    return CollectionIndex(folder, verify=True)


@st.composite
def scenes_and_scores(draw):
    h, w = draw(st.integers(1, 700)), draw(st.integers(1, 700))
    scales = draw(st.lists(st.sampled_from([64, 96, 128, 256]), min_size=1, max_size=3))
    table = window_table(h, w, scales)
    has = np.asarray(draw(st.lists(st.booleans(), min_size=len(table), max_size=len(table))))
    if not has.any():
        has[draw(st.integers(0, len(table) - 1))] = True
    scores = draw(st.lists(st.floats(-1, 1), min_size=int(has.sum()), max_size=int(has.sum())))
    return table, has, np.asarray(scores)


@settings(max_examples=60, deadline=None)
@given(scenes_and_scores())
def test_cell_means_equal_the_cell_accumulation(data):
    """Difference arrays on the cells give every cell the mean of gnt.accumulate."""
    table, has, scores = data
    with tempfile.TemporaryDirectory() as tmp:
        embeddings = np.zeros((len(table), 4), np.float32)
        with write(Path(tmp) / "ix", [(table, has, embeddings)], width=4) as index:
            cells = index.scene_cells(0, scores)
    kept = table.windows[has]
    ref = accumulate(CellGrid.from_windows(table.height, table.width, kept), kept, scores)
    assert np.array_equal(cells.covered, ref.covered)
    assert np.allclose(cells.mean[cells.covered], ref.values[ref.covered], rtol=0, atol=1e-12)
    assert (cells.mean[~cells.covered] == -np.inf).all()


def collection(n: int = 9, dim: int = 64, seed: int = 0):
    """Synthetic scenes of a few sizes (the benchmark's embeddings, narrower), some windows
    without data."""
    world = World(seed, dim=dim)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = [(900, 1200), (700, 700), (1300, 800)][i % 3]
        table = window_table(h, w, (128, 256, 384))
        has = rng.random(len(table)) > 0.05
        out.append((table, has, synthetic_scene(world, table.windows, h, w, seed=100 * seed + i)))
    return world, out


def brute_force(scenes, query, top):
    """Every scene's mean map (gnt.accumulate), its regions, all ranked together."""
    found = []
    for i, (table, has, e) in enumerate(scenes):
        kept = table.windows[has]
        mean = accumulate(
            CellGrid.from_windows(table.height, table.width, kept), kept, e[has] @ query
        )
        for n, r in enumerate(cell_regions(mean.values, mean.covered)):
            found.append((r.score, i, n, r))
    found.sort(key=lambda f: (-f[0], f[1], f[2]))
    return found[:top]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    world, scenes = collection()
    folder = tmp_path_factory.mktemp("index") / "ix"
    index = write(folder, scenes, width=64, int8=True)
    index.open_int8(verify=True)
    yield world, scenes, index
    index.close()


@pytest.mark.parametrize("top", [1, 5, 40])
def test_exact_search_equals_brute_force(synthetic, top):
    world, scenes, index = synthetic
    queries = synthetic_queries(world, 6)
    results = index.search(queries, top=top, mode="exact")
    for q, hits in zip(queries, results, strict=True):
        expected = brute_force(scenes, q, top)
        assert [(h.scene, h.region.peak) for h in hits] == [(s, r.peak) for _, s, _, r in expected]
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
        for h, (score, _, _, r) in zip(hits, expected, strict=True):
            assert h.score == pytest.approx(score, abs=1e-6)  # float32 products, another order
            assert np.array_equal(h.region.cells, r.cells)


def test_int8_scores_are_exact_and_its_recall_is_measured(synthetic):
    """int8 bounds the scenes; the scenes within reach are re-ranked exactly, so every
    reported region is an exact one (the same score, up to the order in which float32
    products are summed); recall@K against exact is measured."""
    world, scenes, index = synthetic
    queries = synthetic_queries(world, 9, seed=3)
    top = 8
    exact = index.search(queries, top=top, mode="exact")
    stats: dict = {}
    approx = index.search(queries, top=top, mode="int8", stats=stats)
    recalls = []
    for e, a in zip(exact, approx, strict=True):
        truth = {(h.scene, h.region.peak): h.score for h in e}
        got = {(h.scene, h.region.peak): h.score for h in a}
        recalls.append(len(truth.keys() & got.keys()) / len(truth))
        for key in truth.keys() & got.keys():
            assert got[key] == pytest.approx(truth[key], abs=1e-6)
    assert np.mean(recalls) >= 0.99, recalls
    assert len(stats["scenes_reranked"]) == len(queries)
    assert all(0 < m < 0.05 for m in stats["margins"]), stats["margins"]
    assert min(stats["scenes_reranked"]) < len(scenes)  # some scenes were never read exactly


def test_int8_codes_hold_each_row_to_half_a_step():
    rows = np.random.default_rng(0).standard_normal((50, 20)).astype(np.float32)
    rows[3] = 0
    codes, scales = quantize_rows(rows, 64)
    assert codes.shape == (50, 64) and not codes[:, 20:].any()
    back = codes[:, :20] * scales[:, None]
    assert (np.abs(back - rows) <= scales[:, None] / 2 + 1e-7).all()
    assert np.abs(codes).max() == 127


def test_int8_product_kernel_agrees_with_numpy(monkeypatch):
    rng = np.random.default_rng(1)
    codes = rng.integers(-127, 128, (300, 64)).astype(np.int8)
    queries = rng.standard_normal((3, 64)).astype(np.float32)
    expected = codes.astype(np.float64) @ queries.T.astype(np.float64)
    fast = index_module._int8_product(queries, 300)(codes)
    assert fast.shape == (300, 3)
    # bfloat16 output: 8 bits of mantissa
    assert np.allclose(fast, expected, rtol=2**-7, atol=np.abs(expected).max() * 2**-8)
    import torch

    monkeypatch.delattr(torch, "_weight_int8pack_mm")
    slow = index_module._int8_product(queries, 300)(codes)
    assert np.allclose(slow, expected, rtol=1e-6, atol=1e-3)


def test_reading_in_small_chunks_changes_nothing(synthetic, monkeypatch):
    world, _, index = synthetic
    queries = synthetic_queries(world, 4)
    whole = index.search(queries, top=10, mode="exact")
    monkeypatch.setattr(index_module, "CHUNK_BYTES", 1000)  # a few rows per read
    with CollectionIndex(index.folder) as small:
        assert small.matrix.chunk < 10
        small.open_int8()
        for mode in ("exact", "int8"):
            parts = small.search(queries, top=10, mode=mode)
            for a, b in zip(whole, parts, strict=True):
                assert [(h.scene, h.region.peak) for h in a] == [
                    (h.scene, h.region.peak) for h in b
                ]
                assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-6)


def small_index(folder: Path, *, int8=False) -> Path:
    _, scenes = collection(3, dim=16, seed=5)
    write(folder, scenes, width=16, int8=int8).close()
    return folder


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: (f / "windows.f32").write_bytes((f / "windows.f32").read_bytes()[:-4]),
        lambda f: _flip(f / "windows.f32", 1234),
        lambda f: _flip(f / "cells.npz", 200),
        lambda f: (f / "cells.npz").unlink(),
        lambda f: (f / "index.json").write_text("{"),
        lambda f: (f / "index.json").write_text('{"format": 1}'),
    ],
    ids=["truncated", "flipped-windows", "flipped-cells", "no-cells", "bad-json", "incomplete"],
)
def test_damaged_index_folders_are_refused(tmp_path, damage):
    folder = small_index(tmp_path / "ix")
    damage(folder)
    with pytest.raises(IndexDamagedError):
        CollectionIndex(folder, verify=True).close()


def test_damaged_int8_part_is_not_opened(tmp_path):
    folder = small_index(tmp_path / "ix", int8=True)
    with CollectionIndex(folder) as index:
        assert index.open_int8(verify=True)
    _flip(folder / "int8" / "codes.i8", 100)
    with CollectionIndex(folder) as index:
        assert not index.open_int8(verify=True)
        index.add_int8()  # made again
        assert index.open_int8(verify=True)


def test_scenes_of_other_encoders_or_widths_are_refused(tmp_path):
    table = window_table(300, 300, (128,))
    has = np.ones(len(table), bool)
    e = np.ones((len(table), 8), np.float32)
    with IndexWriter(tmp_path / "ix", width=8, encoder="a", preprocess="cut-1") as w:
        w.add("one.tif", "k1", grid(300, 300), table.windows, has, e, encoder="a")
        with pytest.raises(CollectionError, match="two.tif: embedded with encoder 'b'"):
            w.add("two.tif", "k2", grid(300, 300), table.windows, has, e, encoder="b")
        with pytest.raises(CollectionError, match="three.tif: embedded with preprocessing"):
            w.add("three.tif", "k3", grid(300, 300), table.windows, has, e, preprocess="x")
        with pytest.raises(CollectionError, match="four.tif: embeddings of shape"):
            w.add("four.tif", "k4", grid(300, 300), table.windows, has, e[:, :4])
        with pytest.raises(CollectionError, match="five.tif: every pixel is nodata"):
            w.add("five.tif", "k5", grid(300, 300), table.windows, ~has, e)
    with CollectionIndex(tmp_path / "ix") as index:
        assert len(index.scenes) == 1
        index.check_encoder("a")
        with pytest.raises(CollectionError, match="embedded with 'a', not 'b'"):
            index.check_encoder("b")
        with pytest.raises(CollectionError, match="query vectors are 4 wide"):
            index.search(np.ones((1, 4)), top=1)


def test_search_arguments_are_checked(tmp_path):
    with CollectionIndex(small_index(tmp_path / "ix")) as index:
        q = np.ones((1, 16), np.float32) / 4
        for top in (0, -1, 1.5, True):
            with pytest.raises(ParameterError, match="top"):
                index.search(q, top=top)
        with pytest.raises(ParameterError, match="unknown index mode"):
            index.search(q, top=1, mode="fast")
        with pytest.raises(ParameterError, match="no int8 part"):
            index.search(q, top=1, mode="int8")
    with pytest.raises(CollectionError, match="no scene"):
        IndexWriter(tmp_path / "empty", width=4, encoder="a").finish()


def test_auto_mode_is_exact_up_to_the_limit():
    limit = index_module.EXACT_MAX_WINDOWS
    assert choose_mode("auto", limit) == "exact" and choose_mode("auto", limit + 1) == "int8"
    assert choose_mode("int8", 5) == "int8" and choose_mode("exact", 10**9) == "exact"
    with pytest.raises(ParameterError):
        choose_mode("pca", 5)
