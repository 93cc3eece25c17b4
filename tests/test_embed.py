"""Sim: the embedding graph (lazy, table order) and the embedding cache keys."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest

from selo.models import EncoderSpec
from selo.models.registry import get_encoder
from selo.pipeline.cut import crop_batch, to_rows
from selo.pipeline.embed import EmbeddingCache, EmbeddingKey, embedding_plan
from selo.pipeline.profile import key_prefix
from selo.pipeline.windows import window_table


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (3, 12, 16), dtype=np.uint8)
    return np.repeat(np.repeat(small, 50, axis=1), 50, axis=2)  # 3 x 600 x 800


def test_plan_is_lazy_and_in_table_order(image):
    table = window_table(600, 800, (128, 256))
    spec = EncoderSpec("color")
    enc = get_encoder(spec)
    calls = []

    def counting(region, *args, **kwargs):
        calls.append(1)
        return crop_batch(region, *args, **kwargs)

    arr = da.from_array(image, chunks=(3, 256, 256))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("selo.pipeline.embed.crop_batch", counting)
        plan = embedding_plan(
            arr, table, spec, size=enc.input_size, dim=enc.embed_dim, tile=300, batch=7
        )
        assert calls == []  # building the graph computed nothing
        emb, has = plan.lazy()
        with dask.config.set(scheduler="sync"):
            emb, has = dask.compute(emb, has)
    assert len(calls) == len(plan.batches) > 1
    assert has.all() and emb.shape == (len(table), enc.embed_dim)
    # row i is window i of the table
    direct, _ = crop_batch(to_rows(image), table.windows, enc.input_size)
    assert np.allclose(emb, enc.encode_images(direct), atol=1e-6)


def test_plan_is_chunk_independent(image):
    table = window_table(600, 800, (256,))
    spec = EncoderSpec("color")
    enc = get_encoder(spec)
    results = []
    for chunks in [(3, 600, 800), (3, 100, 130)]:
        plan = embedding_plan(
            da.from_array(image, chunks=chunks), table, spec, size=enc.input_size, dim=enc.embed_dim
        )
        with dask.config.set(scheduler="sync"):
            results.append(plan.lazy()[0].compute())
    assert np.array_equal(*results)


def test_task_names_carry_the_stage(image):
    table = window_table(600, 800, (256,))
    spec = EncoderSpec("color")
    plan = embedding_plan(da.from_array(image), table, spec, size=64, dim=20)
    prefixes = {key_prefix(k) for k in dict(plan.lazy()[0].__dask_graph__())}
    assert {"cut", "sim"} <= prefixes
    labelled = embedding_plan(da.from_array(image), table, spec, size=64, dim=20, label="0.jpg")
    prefixes = {key_prefix(k) for k in dict(labelled.lazy()[0].__dask_graph__())}
    assert {"cut-region-0.jpg", "cut-0.jpg", "sim-0.jpg"} <= prefixes  # per-scene seconds


KEY = EmbeddingKey(scene="abc", encoder="color-v1", windows="w1", preprocess="p1")


def test_cache_round_trip_and_key_parts(tmp_path):
    cache = EmbeddingCache(tmp_path)
    table = window_table(300, 300, (128,))
    emb = np.random.default_rng(1).normal(size=(len(table), 5)).astype(np.float32)
    has = np.ones(len(table), bool)
    assert cache.get(KEY, table) is None
    cache.put(KEY, table, emb, has)
    got = cache.get(KEY, table)
    assert got is not None and np.array_equal(got[0], emb) and got[1].all()
    # a change in any part of the key is a miss
    for field in ("scene", "encoder", "windows", "preprocess"):
        other = EmbeddingKey(**{**KEY.__dict__, field: "changed"})
        assert cache.get(other, table) is None
    # the same key with a different table (digest collision guard) is a miss
    assert cache.get(KEY, window_table(300, 301, (128,))) is None


def test_damaged_or_partial_entries_are_ignored(tmp_path):
    cache = EmbeddingCache(tmp_path)
    table = window_table(300, 300, (128,))
    cache.put(KEY, table, np.zeros((len(table), 3), np.float32), np.ones(len(table), bool))
    entry = cache.path / KEY.id
    (entry / "embeddings" / "zarr.json").write_text("{broken")
    assert cache.get(KEY, table) is None
    # leftovers of an interrupted write never count
    (cache.path / f".{KEY.id}.tmp-1234").mkdir()
    assert cache.get(EmbeddingKey("x", "y", "z", "w"), table) is None
