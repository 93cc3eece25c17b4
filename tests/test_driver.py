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
    options = Options(in_process=True, cache_dir=str(tmp_path / "cache"), show_progress=False)
    with run_session(options) as ctx:
        scene = open_scene(scene_path, chunk=options.chunk, cache=ctx.cache)
        together = ctx.driver.embed([(scene, a), (scene, b), (scene, a)])
        crops, _ = crop_batch(colour_scene((h, w)), b.windows, ctx.encoder.input_size)
        direct = ctx.encoder.encode_images(crops)
    assert [len(e.table) for e in together] == [3, 4, 3]
    np.testing.assert_allclose(together[0].embeddings, direct[:3], atol=1e-6)
    np.testing.assert_allclose(together[1].embeddings, direct, atol=1e-6)
    np.testing.assert_array_equal(together[2].embeddings, together[0].embeddings)
