"""Sim: the embedding graph (lazy, table order, chunk-independent, named by stage)."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest

from selo.models import EncoderSpec
from selo.models.registry import get_encoder
from selo.pipeline.cut import CutSpec, crop_batch
from selo.pipeline.profile import key_prefix
from selo.pipeline.scene import as_scene, region_reader
from selo.pipeline.sim import embedding_plan, scores
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
