"""Sim: the embedding graph (lazy, table order, chunk-independent, named by stage)."""

from __future__ import annotations

import threading
import weakref

import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selo.models import EncoderSpec
from selo.models.registry import get_encoder
from selo.pipeline.cut import CutSpec, crop_batch
from selo.pipeline.profile import key_prefix
from selo.pipeline.scene import as_scene, region_reader
from selo.pipeline.sim import LOOKAHEAD, embedding_plan, scores
from selo.pipeline.windows import window_table


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    return np.repeat(np.repeat(small, 50, axis=0), 50, axis=1)  # 600 x 800 x 3


def test_plan_is_lazy_and_in_table_order(image):
    table = window_table(600, 800, (128, 256))
    spec = EncoderSpec("color")
    enc = get_encoder(spec)
    calls = []

    def counting(region, *args, **kwargs):
        calls.append(1)
        return crop_batch(region, *args, **kwargs)

    arr = region_reader(as_scene(da.from_array(image, chunks=(256, 256, 3))))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("selo.pipeline.sim.crop_batch", counting)
        plan = embedding_plan(
            arr, table, spec, cut=CutSpec(enc.input_size), dim=enc.embed_dim, strip=300, batch=7
        )
        assert calls == []  # building the graph computed nothing
        emb, has = plan.lazy()
        with dask.config.set(scheduler="sync"):
            emb, has = dask.compute(emb, has)
    assert len(calls) == len(plan.batches) > 1
    assert has.all() and emb.shape == (len(table), enc.embed_dim)
    # row i is window i of the table
    direct, _ = crop_batch(image, table.windows, enc.input_size)
    assert np.allclose(emb, enc.encode_images(direct), atol=1e-6)


def test_plan_is_chunk_independent(image):
    table = window_table(600, 800, (256,))
    spec = EncoderSpec("color")
    enc = get_encoder(spec)
    results = []
    for chunks in [(600, 800, 3), (100, 130, 3)]:
        plan = embedding_plan(
            region_reader(as_scene(da.from_array(image, chunks=chunks))),
            table,
            spec,
            cut=CutSpec(enc.input_size),
            dim=enc.embed_dim,
        )
        with dask.config.set(scheduler="sync"):
            results.append(plan.lazy()[0].compute())
    assert np.array_equal(*results)


def test_task_names_carry_the_stage(image):
    table = window_table(600, 800, (256,))
    spec = EncoderSpec("color")
    plan = embedding_plan(region_reader(as_scene(image)), table, spec, cut=CutSpec(64), dim=20)
    prefixes = {key_prefix(k) for k in dict(plan.lazy()[0].__dask_graph__())}
    assert {"cut", "sim"} <= prefixes
    labelled = embedding_plan(
        region_reader(as_scene(image)), table, spec, cut=CutSpec(64), dim=20, label="0.jpg"
    )
    prefixes = {key_prefix(k) for k in dict(labelled.lazy()[0].__dask_graph__())}
    assert {"cut-region-0.jpg", "cut-0.jpg", "sim-0.jpg"} <= prefixes  # per-scene seconds


def test_scores_are_cosine_similarities_with_nan_where_no_data():
    emb = np.array([[1, 0], [0.6, 0.8], [0, 0]], np.float32)
    s = scores(emb, np.array([True, True, False]), np.array([0.6, 0.8], np.float32))
    assert s.dtype == np.float64
    np.testing.assert_allclose(s[:2], [0.6, 1.0], rtol=1e-6)
    assert np.isnan(s[2])


def test_file_regions_read_the_windows_of_the_file(tmp_path, cache_dir):
    from scenes import colour_scene, write_geotiff_scene

    from selo.pipeline.scene import ArrayRegions, open_scene

    image = colour_scene((300, 400))
    scene = open_scene(write_geotiff_scene(tmp_path / "s.tif", image), chunk=256)
    reader = region_reader(scene)
    assert not isinstance(reader, ArrayRegions)
    rgb, valid = reader(10, 200, 30, 390)
    np.testing.assert_array_equal(rgb, image[10:200, 30:390])
    assert valid is None and rgb.flags.c_contiguous
    sub = region_reader(scene.isel(y=slice(50, 250), x=slice(100, 300)))
    assert not isinstance(sub, ArrayRegions)  # a slice is still read from the file
    np.testing.assert_array_equal(sub(0, 20, 0, 30)[0], image[50:70, 100:130])


class CountingRegions:
    """Regions of an in-memory image that count how often each pixel is read (by a call
    or by ``into``) and how many regions are alive at each read."""

    def __init__(self, image: np.ndarray, row_blocks=None, valid=None) -> None:
        self.image, self.valid, self.row_blocks = image, valid, row_blocks
        self.reads = np.zeros(image.shape[:2], int)
        self.lock = threading.Lock()
        self.regions: list[weakref.ref] = []
        self.most_alive = 0

    def __dask_tokenize__(self):
        return ("counting", id(self))

    def _count(self, r0, r1, c0, c1, region) -> None:
        with self.lock:
            self.reads[r0:r1, c0:c1] += 1
            self.regions = [r for r in self.regions if r() is not None]
            self.regions.append(weakref.ref(region))
            self.most_alive = max(self.most_alive, len(self.regions))

    def _valid(self, r0, r1, c0, c1):
        return None if self.valid is None else self.valid[r0:r1, c0:c1].copy()

    def __call__(self, r0, r1, c0, c1):
        rgb = self.image[r0:r1, c0:c1].copy()
        self._count(r0, r1, c0, c1, rgb)
        return rgb, self._valid(r0, r1, c0, c1)

    def into(self, out, r0, r1, c0, c1):
        out[...] = self.image[r0:r1, c0:c1]
        self._count(r0, r1, c0, c1, out.base)
        return self._valid(r0, r1, c0, c1)


def _embed_all(reader, table, *, strip, chain, scheduler="sync", preview=None):
    spec = EncoderSpec("color")
    enc = get_encoder(spec)
    plan = embedding_plan(
        reader, table, spec, cut=CutSpec(enc.input_size), dim=enc.embed_dim, strip=strip,
        batch=5, chain=chain, preview=preview,
    )  # fmt: skip
    with dask.config.set(scheduler=scheduler, num_workers=4):
        done = dask.compute(*plan.parts, *plan.preview_parts)
    emb, has = plan.assemble(done[: len(plan.parts)])
    pictures = plan.assemble_preview(done[len(plan.parts) :]) if plan.preview_parts else None
    return emb, has, pictures


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(40, 700),
    w=st.integers(40, 300),
    scales=st.lists(st.integers(16, 300), min_size=1, max_size=3, unique=True),
    strip=st.integers(16, 200),
    blocks=st.none() | st.tuples(st.integers(0, 50), st.integers(1, 64)),
    nodata=st.booleans(),
)
def test_each_pixel_is_read_once_and_the_embeddings_are_the_regions_read_whole(
    h, w, scales, strip, blocks, nodata
):
    rng = np.random.default_rng(h * w)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    valid = rng.random((h, w)) > 0.3 if nodata else None
    table = window_table(h, w, scales)
    chained = CountingRegions(image, blocks, valid)
    emb, has, pictures = _embed_all(chained, table, strip=strip, chain=None, preview=(9, 7))
    covered = np.zeros((h, w), bool)
    for r0, r1, c0, c1 in table.windows:
        covered[r0:r1, c0:c1] = True
    assert (chained.reads[covered] == 1).all() and chained.reads.max() == 1
    # the scheme before: each strip's region read apart (chains of one region)
    apart = CountingRegions(image, None, valid)
    old_emb, old_has, old_pictures = _embed_all(apart, table, strip=strip, chain=1, preview=(9, 7))
    np.testing.assert_array_equal(emb, old_emb)
    np.testing.assert_array_equal(has, old_has)
    if pictures is not None or old_pictures is not None:
        np.testing.assert_array_equal(pictures, old_pictures)
    # and both are the windows cut straight from the image
    enc = get_encoder(EncoderSpec("color"))
    direct, direct_has = crop_batch(image, table.windows, enc.input_size, valid)
    np.testing.assert_array_equal(has, direct_has)
    np.testing.assert_allclose(emb[has], enc.encode_images(direct[has]), atol=1e-6)


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_regions_in_memory_are_bounded_whatever_the_order(scheduler):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (1500, 200, 3), dtype=np.uint8)
    table = window_table(1500, 200, (64, 128))
    reader = CountingRegions(image, (0, 32))
    emb, _, _ = _embed_all(reader, table, strip=64, chain=None, scheduler=scheduler)
    n_regions = len({b for b in (tuple(w) for w in table.windows[:, :1] // 64)})
    assert n_regions > 10
    # a region is read only once the embeddings two regions up are done: the region
    # before, the one being read, and the last one whose windows are still being cut
    assert reader.most_alive <= LOOKAHEAD + 1
    assert emb.shape == (len(table), 20)


def test_a_file_is_decoded_block_by_block_once(tmp_path, cache_dir, monkeypatch):
    from scenes import colour_scene, write_geotiff_scene

    import selo.pipeline.source as source
    from selo.pipeline.scene import open_scene

    image = colour_scene((1100, 300))  # 256-row tiles
    scene = open_scene(write_geotiff_scene(tmp_path / "s.tif", image), chunk=256)
    scene = scene.isel(y=slice(37, None))  # blocks begin at scene rows 219, 475, ...
    windows = []
    real = source.read_region

    def recording(src, rows, cols, channels, **kwargs):
        windows.append((rows.start, rows.stop))
        return real(src, rows, cols, channels, **kwargs)

    monkeypatch.setattr(source, "read_region", recording)
    table = window_table(scene.sizes["y"], 300, (64, 200))
    emb, has, _ = _embed_all(region_reader(scene), table, strip=256, chain=None)
    blocks = [set(range(a // 256, (b - 1) // 256 + 1)) for a, b in windows]
    assert len(windows) > 3
    assert sum(len(b) for b in blocks) == len(set().union(*blocks))  # no block decoded twice
    enc = get_encoder(EncoderSpec("color"))
    direct, _ = crop_batch(image[37:], table.windows, enc.input_size)
    assert has.all()
    np.testing.assert_allclose(emb, enc.encode_images(direct), atol=1e-6)
