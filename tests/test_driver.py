"""The method driver: embedding passes over several tables, query maps for every interface."""

from __future__ import annotations

import numpy as np
from scenes import colour_scene, write_geotiff_scene

from selo.pipeline.cut import crop_batch
from selo.pipeline.scene import open_scene
from selo.pipeline.windows import WindowTable
from selo.selo_tasks.options import Options
from selo.selo_tasks.session import run_session


def _table(h: int, w: int, windows: list[tuple[int, int, int, int]]) -> WindowTable:
    arr = np.asarray(windows, dtype=np.int64)
    return WindowTable(h, w, arr, arr[:, 1] - arr[:, 0])


def test_tables_sharing_batches_are_embedded_together(tmp_path):
    """Two tables of one scene whose first tile is cut identically (as v2's expansion boxes
    of two queries can be) share Dask tasks; each still gets all its own embeddings."""
    h, w = 2300, 300
    scene_path = write_geotiff_scene(tmp_path / "tall.tif", colour_scene((h, w)))
    shared = [(0, 128, 0, 128), (64, 192, 64, 192), (500, 756, 0, 256)]
    a = _table(h, w, shared)
    b = _table(h, w, [*shared, (2100, 2228, 100, 228)])  # one more window, in another tile
    options = Options(in_process=True, cache=str(tmp_path / "cache"), show_progress=False)
    with run_session(options) as ctx:
        scene = open_scene(scene_path, chunk=options.chunk, cache=ctx.cache)
        together = ctx.driver.embed([(scene, a), (scene, b), (scene, a)])
        crops, _ = crop_batch(colour_scene((h, w)), b.windows, ctx.encoder.input_size)
        direct = ctx.encoder.encode_images(crops)
    assert [len(e.table) for e in together] == [3, 4, 3]
    np.testing.assert_allclose(together[0].embeddings, direct[:3], atol=1e-6)
    np.testing.assert_allclose(together[1].embeddings, direct, atol=1e-6)
    np.testing.assert_array_equal(together[2].embeddings, together[0].embeddings)


def test_cut_makes_the_scene_preview_from_the_pixels_it_reads(tmp_path, monkeypatch):
    """The preview Cut cuts from its strips equals the decimated read of the file, and is
    kept in the cache for the next read_preview."""
    from selo.pipeline import preview as preview_module
    from selo.pipeline.preview import read_preview

    h, w = 1500, 1300
    image = colour_scene((h, w))
    scene_path = write_geotiff_scene(tmp_path / "s.tif", image)
    options = Options(in_process=True, cache=str(tmp_path / "cache"), show_progress=False)
    with run_session(options) as ctx:
        scene = open_scene(scene_path, chunk=512, cache=ctx.cache)
        table = ctx.driver.table(scene)
        (embedded,) = ctx.driver.embed([(scene, table)], preview_side=400)
        assert embedded.preview is not None and embedded.preview.shape == (400, 347, 3)
        expected = preview_module._read_preview(scene, (400, 347))
        np.testing.assert_array_equal(embedded.preview, expected)

        def no_read(*args):
            raise AssertionError("the preview should come from the cache")

        monkeypatch.setattr(preview_module, "_read_preview", no_read)
        np.testing.assert_array_equal(read_preview(scene, 400, cache=ctx.cache), expected)
