"""The cache: scene keys, staged copies and embeddings under one root, checked when read."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from selo.errors import CacheError
from selo.pipeline.cache import Cache, EmbeddingKey, default_cache_dir
from selo.pipeline.scene import open_scene
from selo.pipeline.windows import window_table

KEY = EmbeddingKey(scene="abc", encoder="color-v1", windows="w1", preprocess="p1")


def test_damaged_or_partial_entries_are_ignored_and_replaced(tmp_path):
    cache = Cache(tmp_path)
    table = window_table(300, 300, (128,))
    cache.put_embeddings(
        KEY, table, np.zeros((len(table), 3), np.float32), np.ones(len(table), bool)
    )
    entry = cache.embeddings_path / KEY.id
    (entry / "embeddings" / "zarr.json").write_text("{broken")
    assert cache.get_embeddings(KEY, table) is None
    # leftovers of an interrupted write never count
    (cache.embeddings_path / f".{KEY.id}.tmp-1234").mkdir()
    assert cache.get_embeddings(EmbeddingKey("x", "y", "z", "w"), table) is None
    # a new put replaces the damaged entry
    cache.put_embeddings(
        KEY, table, np.ones((len(table), 3), np.float32), np.ones(len(table), bool)
    )
    assert cache.get_embeddings(KEY, table)[0].all()


def test_non_finite_embeddings_are_not_trusted(tmp_path):
    cache = Cache(tmp_path)
    table = window_table(300, 300, (128,))
    emb = np.zeros((len(table), 3), np.float32)
    emb[0, 0] = np.nan
    cache.put_embeddings(KEY, table, emb, np.ones(len(table), bool))
    assert cache.get_embeddings(KEY, table) is None


def test_root_follows_the_argument_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SELO_CACHE_DIR", str(tmp_path / "env"))
    assert Cache().root == tmp_path / "env" == default_cache_dir()
    assert Cache(tmp_path / "arg").root == tmp_path / "arg"
    monkeypatch.delenv("SELO_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert Cache().root == tmp_path / "xdg" / "selo"


@pytest.mark.parametrize("from_env", [True, False])
def test_a_file_as_cache_folder_is_a_clear_error(tmp_path, monkeypatch, from_env):
    taken = tmp_path / "taken"
    taken.write_text("x")
    if from_env:
        monkeypatch.setenv("SELO_CACHE_DIR", str(taken))
    with pytest.raises(CacheError, match="taken: .* is a file, not a folder"):
        Cache() if from_env else Cache(taken)


def test_scene_keys_live_under_the_given_root(tmp_path, monkeypatch):
    monkeypatch.setenv("SELO_CACHE_DIR", str(tmp_path / "default"))
    scene = tmp_path / "s.bin"
    scene.write_bytes(b"pixels")
    Cache(tmp_path / "mine").scene_key(scene)
    assert (tmp_path / "mine" / "scene-keys.json").is_file()
    assert not (tmp_path / "default").exists()


def test_damaged_staged_copy_is_staged_again(tmp_path):
    import cv2

    png = tmp_path / "s.png"
    image = np.random.default_rng(0).integers(0, 256, (600, 700, 3), dtype=np.uint8)
    cv2.imwrite(str(png), image)
    cache = Cache(tmp_path / "cache")
    first = open_scene(png, cache=cache)
    staged = first.encoding["selo_source"].files[0].location
    data = open(staged, "rb").read()
    with open(staged, "wb") as f:  # a truncated copy under the final name
        f.write(data[: len(data) // 2])
    again = open_scene(png, cache=cache)
    assert again.encoding["selo_source"].files[0].location == staged
    with rasterio.open(staged) as ds:
        assert ds.read().shape == (3, 600, 700)
    np.testing.assert_array_equal(again.values, image[:, :, ::-1])


def test_previews_are_kept_in_the_cache_folder(tmp_path):
    """A preview comes back as it was kept (lossless PNG), only at its own shape; one the
    cache cannot write is simply not kept."""
    cache = Cache(tmp_path / "cache")
    rgb = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    assert cache.get_preview("abc", (30, 40)) is None
    cache.put_preview("abc", rgb)
    assert cache.preview_path("abc", (30, 40)).parent == cache.root / "previews"
    np.testing.assert_array_equal(cache.get_preview("abc", (30, 40)), rgb)
    assert cache.get_preview("abc", (15, 20)) is None and cache.get_preview("x", (30, 40)) is None
    cache.preview_path("abc", (30, 40)).write_bytes(b"not a png")
    assert cache.get_preview("abc", (30, 40)) is None
    (tmp_path / "file").write_text("")
    blocked = Cache(tmp_path / "blocked")
    blocked.previews_dir = tmp_path / "file" / "previews"  # cannot be made
    blocked.put_preview("abc", rgb)
    assert blocked.get_preview("abc", (30, 40)) is None
