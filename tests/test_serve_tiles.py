"""The tile pyramid of `selo serve` (selo_tasks/serve/tiles.py) against a slow reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scenes import colour_scene, write_geotiff_scene

from selo.errors import ParameterError
from selo.pipeline.preview import decimate
from selo.pipeline.scene import open_scene
from selo.selo_tasks.serve.tiles import (
    BACKGROUND,
    TILE,
    SceneTiles,
    TileGrid,
    colormap_png,
    map_tile,
    max_zoom,
)


def decode(png: bytes) -> np.ndarray:
    """Gray as it is; colour as BGRA (palette PNGs and JPEGs have no alpha: opaque)."""
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    if image.ndim == 3 and image.shape[2] == 3:
        image = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    return image


def reference_samples(height, width, z, x, y):
    """Tile pixel i shows scene pixel y*span + floor((i + 1/2) * f), one pixel at a time."""
    zmax = max_zoom(height, width)
    f = 2 ** (zmax - z)
    span = TILE * f
    rows = [y * span + int((i + 0.5) * f) for i in range(TILE)]
    cols = [x * span + int((i + 0.5) * f) for i in range(TILE)]
    return [r for r in rows if r < height], [c for c in cols if c < width]


@pytest.mark.parametrize(
    ("shape", "zmax"),
    [
        ((1, 1), 0),  # one pixel: one tile at zoom 0
        ((256, 256), 0),  # exactly one tile
        ((257, 10), 1),  # one row over a tile
        ((700, 900), 2),
        ((1024, 1024), 2),
        ((10000, 10000), 6),
        ((40000, 100), 8),  # a long strip: the longer side counts
    ],
)
def test_max_zoom(shape, zmax):
    assert max_zoom(*shape) == zmax == TileGrid(*shape).zmax


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 3000), st.data())
def test_samples_follow_the_rule(height, width, data):
    grid = TileGrid(height, width)
    z = data.draw(st.integers(0, grid.zmax))
    across, down = grid.counts(z)
    x, y = data.draw(st.integers(0, across - 1)), data.draw(st.integers(0, down - 1))
    rows, cols = grid.samples(z, x, y)
    ref_rows, ref_cols = reference_samples(height, width, z, x, y)
    assert rows.tolist() == ref_rows and cols.tolist() == ref_cols
    # a tile shows scene pixels exactly when its part of the scene reaches its first sample
    # (the last tile of a side may hold fewer rows or columns than one tile pixel spans)
    r0, r1, c0, c1 = grid.window(z, x, y)
    f = 2 ** (grid.zmax - z)
    assert (len(rows) > 0) == (r1 - r0 > f // 2) and (len(cols) > 0) == (c1 - c0 > f // 2)


def test_a_last_tile_holding_less_than_one_tile_pixel_shows_nothing():
    """Row 1536 alone is the last tile's part of a 1537-row scene at zoom 2 (a tile pixel is
    2 rows there, sampled at its second row): no row is shown, as the rule says."""
    grid = TileGrid(1537, 8)
    rows, cols = grid.samples(2, 0, 3)
    assert rows.tolist() == [] and cols.tolist() == [1, 3, 5, 7]


def test_a_strip_thinner_than_a_tile_pixel_gives_blank_tiles():
    grid = TileGrid(1, 600)  # zoom 0 samples row 1 of 4 (f = 4): outside the one-row scene
    assert len(grid.samples(0, 0, 0)[0]) == 0
    finished = np.full((1, 600), 200, np.uint8)
    assert not decode(map_tile(finished, grid, 0, 0, 0, "jet")).any()
    assert not decode(map_tile(finished, grid, 0, 0, 0, "gray")).any()
    full = decode(map_tile(finished, grid, grid.zmax, 0, 0, "gray"))
    assert (full[0] == 200).all() and not full[1:].any()


def test_tiles_cover_the_scene_once_at_full_resolution():
    grid = TileGrid(700, 900)
    across, down = grid.counts(grid.zmax)
    seen = np.zeros((700, 900), int)
    for x in range(across):
        for y in range(down):
            r0, r1, c0, c1 = grid.window(grid.zmax, x, y)
            seen[r0:r1, c0:c1] += 1
    assert (seen == 1).all()


@pytest.mark.parametrize(
    ("z", "x", "y"),
    [
        (-1, 0, 0),  # negative zoom
        (3, 0, 0),  # past the finest zoom
        (2, 4, 0),  # x past the last tile (900 px: tiles 0..3)
        (2, 0, 3),  # y past the last tile (700 px: tiles 0..2)
        (0, 1, 0),  # at zoom 0 there is one tile
        (2, -1, 0),  # negative x
    ],
)
def test_missing_tiles_are_refused(z, x, y):
    with pytest.raises(ParameterError, match="no tile"):
        TileGrid(700, 900).check(z, x, y)


def test_map_tiles_full_resolution_and_decimated():
    rng = np.random.default_rng(0)
    finished = rng.integers(0, 256, (700, 900), dtype=np.uint8)
    grid = TileGrid(700, 900)
    # full resolution: the window itself, padded with 0 (gray) / transparent (jet)
    gray = decode(map_tile(finished, grid, 2, 3, 2, "gray"))
    assert gray.shape == (TILE, TILE)
    np.testing.assert_array_equal(gray[: 700 - 512, : 900 - 768], finished[512:, 768:])
    assert not gray[700 - 512 :].any() and not gray[:, 900 - 768 :].any()
    jet = decode(map_tile(finished, grid, 2, 3, 2, "jet"))
    assert jet.shape == (TILE, TILE, 4)
    colours = cv2.applyColorMap(finished[512:, 768:], cv2.COLORMAP_JET)
    np.testing.assert_array_equal(jet[: 700 - 512, : 900 - 768, :3], colours)
    assert (jet[: 700 - 512, : 900 - 768, 3] == 255).all() and not jet[700 - 512 :, :, 3].any()
    # zoom 0: one tile of the whole map, the sample `decimate` takes of a 1024-pixel square
    whole = decode(map_tile(finished, grid, 0, 0, 0, "gray"))
    rows, cols = reference_samples(700, 900, 0, 0, 0)
    np.testing.assert_array_equal(whole[: len(rows), : len(cols)], finished[rows][:, cols])
    interior = map_tile(finished, grid, 2, 1, 1, "jet")  # all inside: a palette PNG
    assert interior[25] == 3  # IHDR colour type 3: indexed colour
    colours = cv2.applyColorMap(finished[256:512, 256:512], cv2.COLORMAP_JET)
    np.testing.assert_array_equal(decode(interior)[..., :3], colours)
    padded = np.zeros((1024, 1024), np.uint8)
    padded[:700, :900] = finished
    np.testing.assert_array_equal(
        whole[: len(rows), : len(cols)], decimate(padded, (256, 256))[: len(rows), : len(cols)]
    )


def test_map_tile_refuses_a_map_of_another_shape():
    with pytest.raises(Exception, match="the map is"):
        map_tile(np.zeros((10, 10), np.uint8), TileGrid(700, 900), 0, 0, 0, "jet")


def test_colormap_is_the_tiles_jet():
    legend = decode(colormap_png())
    assert legend.shape == (1, 256, 4)
    ramp = np.arange(256, dtype=np.uint8)[None]
    np.testing.assert_array_equal(legend[..., :3], cv2.applyColorMap(ramp, cv2.COLORMAP_JET))


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    return write_geotiff_scene(
        tmp_path_factory.mktemp("tiles") / "scene.tif", colour_scene((1100, 1300))
    )


def near(a: np.ndarray, b: np.ndarray, mean: float = 5) -> bool:
    """JPEG (quality 90) of a texture of +-6 noise: close, not equal."""
    return np.abs(a.astype(int) - b.astype(int)).mean() < mean


def test_scene_tiles_full_resolution_are_the_pixels(scene_file):
    tiles = SceneTiles(open_scene(scene_file))
    zmax = tiles.grid.zmax
    pixels = colour_scene((1100, 1300))
    for x, y in [(2, 1), (5, 0), (5, 4), (0, 4)]:  # inside; edge tiles, cut by the scene's edges
        r0, r1, c0, c1 = tiles.grid.window(zmax, x, y)
        data = tiles.tile(zmax, x, y)
        assert data[:2] == b"\xff\xd8"  # JPEG
        tile = decode(data)[..., 2::-1]  # RGB
        assert near(tile[: r1 - r0, : c1 - c0], pixels[r0:r1, c0:c1])
        beyond = [tile[r1 - r0 + 8 :].reshape(-1, 3), tile[:, c1 - c0 + 8 :].reshape(-1, 3)]
        beyond = np.concatenate(beyond)
        assert len(beyond) == 0 or near(beyond, np.array([BACKGROUND]), 2)


def test_scene_tiles_decimated(scene_file):
    tiles = SceneTiles(open_scene(scene_file))
    pixels = colour_scene((1100, 1300))
    z = tiles.grid.zmax - 1  # a windowed read of 512 px squares into 256
    rows, cols = tiles.grid.samples(z, 1, 1)
    assert near(decode(tiles.tile(z, 1, 1))[..., 2::-1], pixels[rows][:, cols])
    coarse = decode(tiles.tile(0, 0, 0))[..., 2::-1]  # from the preview
    rows, cols = tiles.grid.samples(0, 0, 0)
    assert near(coarse[len(rows) + 8 :], np.array([BACKGROUND]), 2)
    # the white block (top-left) is white in the coarse tile too
    block = coarse[len(rows) // 8 + 5 : len(rows) // 3 - 5, len(cols) // 8 + 5 : len(cols) // 3 - 5]
    assert (block > 215).all()


def test_scene_tiles_nodata_is_background(tmp_path):
    rgb = colour_scene((300, 300))
    rgb[:100] = 0
    path = write_geotiff_scene(tmp_path / "nodata.tif", rgb, nodata=0)
    tiles = SceneTiles(open_scene(path))
    tile = decode(tiles.tile(tiles.grid.zmax, 0, 0))[..., 2::-1]
    assert near(tile[:92], np.array([BACKGROUND]), 2) and near(tile[108:256], rgb[108:256, :256])


def test_scene_tiles_of_an_array_scene():
    from selo.pipeline.scene import as_scene

    pixels = colour_scene((600, 700))
    tiles = SceneTiles(as_scene(pixels))
    for z in range(tiles.grid.zmax + 1):
        rows, cols = tiles.grid.samples(z, 0, 0)
        tile = decode(tiles.tile(z, 0, 0))[: len(rows), : len(cols), 2::-1]
        assert near(tile, pixels[rows][:, cols])
