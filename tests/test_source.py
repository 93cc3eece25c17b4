"""Scene sources: every indexing of a scene either reads exactly its pixels from the files
or falls back to the array, and the embedding cache keys on the pixels selected."""

from __future__ import annotations

import json
from pathlib import Path

import dask
import numpy as np
import pytest
import rasterio
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin

import selo
from selo.pipeline.cache import Cache
from selo.pipeline.scene import ArrayRegions, open_scene, region_reader, scene_key
from selo.pipeline.source import drop_source, selection_of

SHAPE = (45, 70)  # odd sizes, several 16-pixel blocks and chunks each way


def _write(path, data, **profile):
    profile = {
        "driver": "GTiff",
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "dtype": data.dtype,
        "crs": "EPSG:32633",
        "transform": from_origin(500_000, 4_600_000, 10, 10),
        "tiled": True,
        "blockxsize": 16,
        "blockysize": 16,
        **profile,
    }
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return path


def _pixels(bands: int, dtype, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    high = 256 if dtype == np.uint8 else 4000
    return rng.integers(0, high, (bands, *SHAPE)).astype(dtype)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Scenes of every kind of source: {name: (location, open_scene keywords)}."""
    d = tmp_path_factory.mktemp("sources")
    out = {"rgb8": (_write(d / "rgb8.tif", _pixels(3, np.uint8, 0)), {})}
    u16 = _pixels(4, np.uint16, 1)
    u16[:, :5, :9] = 0  # nodata in every band: no data there
    u16[1, 20:30, 30:40] = 0  # in one band only: data
    out["u16-nodata"] = (_write(d / "u16.tif", u16, nodata=0), {"bands": (4, 2, 1)})
    index = (np.arange(SHAPE[0] * SHAPE[1]).reshape(1, *SHAPE) % 7).astype(np.uint8)
    path = _write(d / "palette.tif", index, photometric="palette")
    with rasterio.open(path, "r+") as ds:
        ds.write_colormap(1, {i: (30 * i, 255 - 30 * i, (70 * i) % 256, 255) for i in range(7)})
        ds.colorinterp = [ColorInterp.palette]
    out["palette"] = (path, {})
    for i, name in enumerate(("red", "green", "blue")):  # a STAC item of three single-band files
        _write(d / f"{name}.tif", _pixels(1, np.uint16, 10 + i), nodata=i)
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
        "id": "stack",
        "geometry": None,
        "properties": {"datetime": "2026-01-01T00:00:00Z"},
        "links": [],
        "assets": {
            name: {
                "href": f"{name}.tif",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
                "eo:bands": [{"name": f"B{i}", "common_name": name}],
            }
            for i, name in enumerate(("red", "green", "blue"))
        },
    }
    (d / "item.json").write_text(json.dumps(item))
    out["stac-stack"] = (d / "item.json", {})
    cache = Cache(d / "cache")
    scenes = {k: open_scene(loc, chunk=16, cache=cache, **kw) for k, (loc, kw) in out.items()}
    return out, cache, scenes


@pytest.fixture(autouse=True)
def synchronous():
    """Small scenes: dask's synchronous scheduler is faster than its threads."""
    with dask.config.set(scheduler="synchronous"):
        yield


def _progression(values: np.ndarray) -> bool:
    if values.dtype.kind not in "iu" or not len(values):
        return False
    step = values[1] - values[0] if len(values) > 1 else 1
    return step >= 1 and np.array_equal(values, values[0] + step * np.arange(len(values)))


def _indexer(data, size: int, *, allow_empty: bool = False):
    kind = data.draw(st.sampled_from(["slice", "list", "progression"]))
    if kind == "slice":
        start = data.draw(st.none() | st.integers(-size, size))
        stop = data.draw(st.none() | st.integers(-size, size))
        step = data.draw(st.sampled_from([None, 1, 2, 3, 7, -1, -2]))
        index = slice(start, stop, step)
        if len(range(*index.indices(size))) == 0:
            return slice(None, None, step)
        return index
    if kind == "list":  # any order, repeats allowed
        return data.draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=6))
    first = data.draw(st.integers(0, size - 1))
    step = data.draw(st.integers(1, 5))
    count = data.draw(st.integers(1, (size - 1 - first) // step + 1))
    return np.arange(first, first + step * count, step)


def _index(data, scene: xr.DataArray) -> tuple[xr.DataArray, bool]:
    """A random indexing of ``scene``: (result, whether values were computed anew)."""
    computed = False
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["y", "x", "band", "sel", "chunk", "load", "arith"]))
        if op in ("y", "x"):
            scene = scene.isel({op: _indexer(data, scene.sizes[op])})
        elif op == "band":
            picks = data.draw(
                st.lists(st.integers(0, scene.sizes["band"] - 1), min_size=1, max_size=4)
            )
            scene = scene.isel(band=picks)
        elif op == "sel":  # by coordinate values: x ascending
            xs = scene.x.values
            i, j = sorted(data.draw(st.tuples(*[st.integers(0, len(xs) - 1)] * 2)))
            if np.all(np.diff(xs) > 0):
                scene = scene.sel(x=slice(xs[i], xs[j]))
        elif op == "chunk":
            scene = scene.chunk({"y": data.draw(st.integers(3, 40)), "x": 17})
        elif op == "load":
            scene = scene.compute()
        else:  # new values (here the same): the source no longer applies
            scene, computed = scene + np.uint8(0), True
        if data.draw(st.booleans()):
            scene = scene.transpose("band", "x", "y")
    return scene.transpose("y", "x", "band"), computed


@pytest.mark.parametrize("kind", ["rgb8", "u16-nodata", "palette", "stac-stack"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_indexing_reads_exactly_the_selected_pixels_or_falls_back(sources, kind, data):
    """Random isel/sel/chunk/load chains: a scene whose rows and columns are evenly spaced
    forward (and whose values are the source's) is read from the files, and the pixels read
    equal ``.values``; anything else is read through the array."""
    scene, computed = _index(data, sources[2][kind])
    selection = selection_of(scene)
    exact = not computed and _progression(scene.row.values) and _progression(scene.col.values)
    assert (selection is not None) == exact
    if scene.sizes["band"] == 3:  # a scene: Cut reads it through region_reader
        reader = region_reader(scene)
        assert isinstance(reader, ArrayRegions) == (not exact)
    else:
        reader = selection
    if reader is None:
        return
    h, w = scene.sizes["y"], scene.sizes["x"]
    r0, r1 = sorted(data.draw(st.tuples(st.integers(0, h), st.integers(0, h))))
    c0, c1 = sorted(data.draw(st.tuples(st.integers(0, w), st.integers(0, w))))
    if (r0, c0) == (r1, c1) or r0 == r1 or c0 == c1:
        r0, r1, c0, c1 = 0, h, 0, w
    rgb, valid = reader(r0, r1, c0, c1)
    np.testing.assert_array_equal(rgb, scene.values[r0:r1, c0:c1])
    if "valid" in scene.coords:
        np.testing.assert_array_equal(valid, scene.coords["valid"].values[r0:r1, c0:c1])
    else:
        assert valid is None
    # Cut's chained regions read the rows below into the region itself: the same pixels
    out = np.full((r1 - r0 + 2, c1 - c0, rgb.shape[2]), 77, np.uint8)
    into_valid = reader.into(out[1:-1], r0, r1, c0, c1)
    np.testing.assert_array_equal(out[1:-1], rgb)
    assert (out[[0, -1]] == 77).all()
    np.testing.assert_array_equal(into_valid, valid)


@pytest.mark.parametrize("kind", ["rgb8", "u16-nodata", "stac-stack"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_cache_key_differs_when_the_pixels_differ(sources, kind, data):
    """Two indexings of one scene: different pixels (or validity) give different keys; the
    same selection of the source gives the same key, however it was reached."""
    cache, scene = sources[1], sources[2][kind]
    a, _ = _index(data, scene)
    b, _ = _index(data, scene)
    if a.sizes["band"] != 3 or b.sizes["band"] != 3:
        return
    key_a, key_b = scene_key(a, cache), scene_key(b, cache)
    same = a.shape == b.shape and np.array_equal(a.values, b.values)
    if same and "valid" in a.coords:
        same = np.array_equal(a.coords["valid"].values, b.coords["valid"].values)
    if not same:
        assert key_a != key_b
    sa, sb = selection_of(a), selection_of(b)
    if (
        sa is not None
        and sb is not None
        and (sa.rows, sa.cols, sa.channels)
        == (
            sb.rows,
            sb.cols,
            sb.channels,
        )
    ):
        assert key_a == key_b


def test_band_swap_localizes_the_selected_bands(tmp_path):
    """The scene of the issue: left half red, right half blue. After isel(band=[2, 1, 0])
    the right half is red, and "red" must score it higher; each order has its own cache
    entry (the swapped scene used to embed the file's order and share the original's)."""
    img = np.zeros((3, 256, 512), np.uint8)
    img[0, :, :256] = 255  # red left
    img[2, :, 256:] = 255  # blue right
    path = _write(tmp_path / "halves.tif", img, blockxsize=256, blockysize=256)
    cache = Cache(tmp_path / "cache")
    scene = selo.open_scene(path, cache=cache)
    means = {}
    for name, s in (("original", scene), ("swapped", scene.isel(band=[2, 1, 0]))):
        mean = selo.localize(s, "red", cache=cache, method="v1")["mean"].values[0]
        means[name] = (mean[:, :256].mean(), mean[:, 256:].mean())
    assert means["original"][0] > means["original"][1]
    assert means["swapped"][1] > means["swapped"][0]
    assert scene_key(scene, cache) != scene_key(scene.isel(band=[2, 1, 0]), cache)
    entries = list((tmp_path / "cache" / "embeddings.zarr").iterdir())
    assert len([e for e in entries if e.is_dir()]) == 2


def test_values_changed_in_place_can_drop_their_source(sources):
    """The documented caveat: in-place changes keep the encoding; drop_source reads the
    array's own values."""
    (location, kw), cache = sources[0]["rgb8"], sources[1]
    scene = open_scene(location, cache=cache, **kw).load()
    scene.values[:10] = 0
    assert selection_of(scene) is not None
    plain = drop_source(scene)
    assert selection_of(plain) is None
    rgb, _ = region_reader(plain)(0, 10, 0, 10)
    assert not rgb.any()


def test_reprojection_falls_back_to_the_array(sources):
    (location, kw), cache = sources[0]["rgb8"], sources[1]
    scene = open_scene(location, cache=cache, **kw)
    moved = scene.transpose("band", "y", "x").rio.reproject("EPSG:3857")
    assert selection_of(moved.transpose("y", "x", "band")) is None


def test_one_band_made_gray_is_read_from_the_file(sources):
    """A 2-D band of a scene is a gray scene (as_scene repeats it): read as that band thrice."""
    from selo.pipeline.scene import as_scene

    scene = as_scene(sources[2]["u16-nodata"].isel(band=1))
    selection = selection_of(scene)
    assert selection is not None and selection.channels == (1, 1, 1)
    rgb, valid = region_reader(scene)(0, SHAPE[0], 0, SHAPE[1])
    np.testing.assert_array_equal(rgb, scene.values)
    np.testing.assert_array_equal(valid, scene.coords["valid"].values)


# --- collection_sources: SCENES arguments of selo search -------------------------------------


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _locations(items) -> list[str]:
    from selo.pipeline.source import collection_sources

    return [ref.location for ref in collection_sources(items)]


def test_collection_sources_take_files_folders_and_globs_in_order(tmp_path):
    a = _touch(tmp_path / "tiles" / "b.tif")
    b = _touch(tmp_path / "tiles" / "a.TIF")  # suffixes in any case
    c = _touch(tmp_path / "tiles" / "sub" / "c.jpg")
    notes = _touch(tmp_path / "tiles" / "notes.txt")  # not a raster suffix: not from a folder
    single = _touch(tmp_path / "one.png")
    assert _locations([tmp_path / "tiles"]) == [str(b), str(a)]  # the folder's own rasters
    assert _locations([str(tmp_path / "tiles" / "*.tif")]) == [str(a)]
    assert _locations([str(tmp_path / "**" / "*.jpg")]) == [str(c)]  # ** reaches subfolders
    # a glob passes what it matches (files whatever their names, as a shell does; folders
    # as folders)
    assert _locations([single, str(tmp_path / "tiles" / "*")]) == [
        str(single), str(b), str(a), str(notes), str(c),
    ]  # fmt: skip


def test_collection_sources_keep_a_missing_path_and_repeats(tmp_path):
    a = _touch(tmp_path / "a.tif")
    missing = tmp_path / "missing.tif"
    (tmp_path / "empty").mkdir()
    assert _locations([a, missing, tmp_path / "empty", str(tmp_path / "*.png")]) == [
        str(a), str(missing),
    ]  # fmt: skip
    assert _locations([a, tmp_path]) == [str(a), str(a)]  # named twice: the caller says so
    assert _locations([]) == []


def test_reads_decode_blocks_in_threads_unless_the_host_chose(sources, monkeypatch):
    """GDAL's threaded decoding (fewer CPU seconds) gives the same pixels; a host's own
    GDAL_NUM_THREADS is left as it is."""
    from rasterio.env import get_gdal_config

    from selo.pipeline import source

    seen = []
    real = source.dataset

    def recording(location):
        seen.append(get_gdal_config("GDAL_NUM_THREADS"))
        return real(location)

    monkeypatch.setattr(source, "dataset", recording)
    reader = region_reader(sources[2]["rgb8"])
    threaded, _ = reader(3, 44, 5, 69)
    with rasterio.Env(GDAL_NUM_THREADS="1"):
        single, _ = reader(3, 44, 5, 69)
    assert [str(v) for v in seen] == ["ALL_CPUS", "1"]
    np.testing.assert_array_equal(threaded, single)
