"""The Python API: lazy, chunk-independent, any scene array, your own encoder, CLI's maps."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import xarray as xr
from scenes import colour_scene, square, write_geotiff_scene

import selo
from selo.errors import ParameterError
from selo.models import Encoder, l2_normalize


@pytest.fixture
def scene_path(tmp_path):
    return write_geotiff_scene(tmp_path / "scene.tif", colour_scene((500, 600)))


class Counting(Encoder):
    """A user's own encoder: mean colour of the window vs. a fixed colour per word."""

    name = "counting"
    input_size = 32
    embed_dim = 3
    words = {"white": (1.0, 1.0, 1.0), "green": (0.0, 1.0, 0.0), "tawny": (1.0, 0.6, 0.2)}

    def __init__(self) -> None:
        self.images = 0

    @property
    def version(self) -> str:
        return "counting-1"

    def encode_images(self, images):
        self.images += len(images)
        means = np.asarray(images, np.float32).mean(axis=(1, 2)) / 255 + 0.01
        return l2_normalize(means)

    def encode_texts(self, texts):
        return l2_normalize(np.array([self.words[t.split()[0]] for t in texts], np.float32))


def test_open_scene_is_a_lazy_georeferenced_dataarray(scene_path, cache_dir):
    scene = selo.open_scene(scene_path, chunk=256)
    assert isinstance(scene, xr.DataArray) and scene.dims == ("y", "x", "band")
    assert scene.chunks is not None and scene.rio.crs.to_string() == "EPSG:32633"
    np.testing.assert_array_equal(scene.values, colour_scene((500, 600)))


def test_localize_computes_nothing_until_asked(scene_path, cache_dir, monkeypatch):
    reads = []
    original = rasterio.io.DatasetReader.read
    monkeypatch.setattr(
        rasterio.io.DatasetReader, "read", lambda *a, **k: reads.append(1) or original(*a, **k)
    )
    enc = Counting()
    ds = selo.localize(selo.open_scene(scene_path), ["white roofs", "green trees"], encoder=enc)
    assert reads == [] and enc.images == 0  # nothing read, nothing embedded
    assert ds.selo.dtype == np.uint8 and ds.selo.dims == ("query", "y", "x")
    assert list(ds["query"].values) == ["white roofs", "green trees"]
    ds.selo.sel(query="green trees").compute()
    assert reads and enc.images > 0


def test_user_encoder_end_to_end_and_to_raster(scene_path, tmp_path):
    enc = Counting()
    ds = selo.localize(scene_path, "white roofs", encoder=enc, cache=False)
    out = tmp_path / "white.tif"
    ds.selo.sel(query="white roofs").rio.to_raster(out)
    with rasterio.open(out) as written, rasterio.open(scene_path) as source:
        assert written.crs == source.crs and written.transform == source.transform
        selo_map = written.read(1)
    # the white block (rows 62..166, cols 112..300 of colour_scene) is the hot spot
    assert selo_map[100:140, 150:250].mean() > selo_map[300:450, 350:500].mean() + 50


def test_maps_do_not_depend_on_the_chunking(scene_path, cache_dir):
    scene = selo.open_scene(scene_path)
    a = selo.localize(scene, "white roofs", chunk=4096).selo.values
    b = selo.localize(scene, "white roofs", chunk=(130, 170)).selo.values
    np.testing.assert_array_equal(a, b)


def test_same_map_as_selo_localize(run_cli, scene_path, tmp_path, cache_dir):
    code, _, err = run_cli(
        "localize", scene_path, "-q", "white roofs", "--out", tmp_path / "o", "--in-process"
    )
    assert code == 0, err
    with rasterio.open(tmp_path / "o" / "q01-white-roofs" / "selo_map.tif") as ds:
        cli = ds.read(1)
    api = selo.localize(selo.open_scene(scene_path), "white roofs").selo.values[0]
    np.testing.assert_array_equal(api, cli)


def test_a_subset_and_an_in_memory_array_are_scenes(scene_path, cache_dir):
    scene = selo.open_scene(scene_path)
    sub = scene.isel(y=slice(50, 450), x=slice(100, 500))
    ds = selo.localize(sub, "green trees")
    assert ds.selo.shape == (1, 400, 400)
    assert ds.selo.rio.transform() == sub.rio.transform()  # georeferenced like the subset
    in_memory = selo.localize(sub.values, "green trees", cache=False)
    np.testing.assert_array_equal(ds.selo.values, in_memory.selo.values)
    # a subset is keyed by its pixels: its embeddings are not those of the whole scene
    whole = selo.localize(scene, "green trees").selo.values[0]
    assert whole.shape == (500, 600)


def test_the_mean_map_is_the_float_map_of_the_cells(scene_path, cache_dir):
    ds = selo.localize(selo.open_scene(scene_path), "white roofs", method="v1")
    mean = ds["mean"].values[0]
    assert mean.dtype == np.float64 and np.isfinite(mean).all() and np.ptp(mean) > 0


def test_v2_through_the_api(scene_path, cache_dir):
    ds = selo.localize(selo.open_scene(scene_path), "white roofs", method="v2")
    assert ds.attrs["method"] == "v2" and ds.selo.values.any()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"queries": []}, "non-empty sentence"),
        ({"queries": [" "]}, "non-empty sentence"),
        ({"encoder": 3}, "encoder must be"),
        ({"method": "v9"}, "unknown method"),
        ({"cache": 3.5}, "cache must be"),
    ],
)
def test_bad_arguments_are_clear_errors(scene_path, kwargs, message):
    args = {"queries": ["white roofs"], **kwargs}
    with pytest.raises(ParameterError, match=message):
        selo.localize(scene_path, args.pop("queries"), **args)


def test_evaluate_and_evaluate_run(tmp_path, small_anno):
    import cv2

    u = np.zeros((300, 400), np.uint8)
    u[40:140, 50:150] = 255
    metrics = selo.evaluate(u, [square(50, 40, 100)])
    assert set(metrics) == {"rsu", "rda", "ras", "rmi"} and metrics["rsu"] > 0.9
    maps = tmp_path / "maps"
    maps.mkdir()
    for i in range(3):
        cv2.imwrite(str(maps / f"probmap_{i}.png"), u)
    run = selo.evaluate_run(maps, anno=small_anno)
    assert [c["case"] for c in run["cases"]] == [0, 1, 2]
    assert run["cases"][0]["rsu"] == pytest.approx(metrics["rsu"])
    assert run["mean"]["rmi"] == pytest.approx(np.mean([c["rmi"] for c in run["cases"]]))
