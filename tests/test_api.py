"""The Python API: lazy, chunk-independent, any scene array, your own encoder, CLI's maps."""

from __future__ import annotations

import re

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
    a = selo.localize(scene, "white roofs", chunk=4096).selo
    b = selo.localize(scene, "white roofs", chunk=256).selo
    assert a.chunks[1] == (500,) and b.chunks[1] == (256, 244)  # maps: at most 2048
    a, b = a.values, b.values
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
    ],
)
def test_bad_arguments_are_clear_errors(scene_path, kwargs, message):
    args = {"queries": ["white roofs"], **kwargs}
    with pytest.raises(ParameterError, match=message):
        selo.localize(scene_path, args.pop("queries"), **args)


BAD_OPTIONS = [
    ({"batch": 0}, "--batch must be a whole number from 1 to 4096"),
    ({"chunk": 100}, "--chunk must be a whole number from 256"),
    ({"chunk": (130, 170)}, "--chunk must be a whole number"),
    ({"scales": "0"}, "scales must be positive"),
    ({"scales": "a,b"}, "scales must be whole numbers"),
    ({"method": "v9"}, "unknown method 'v9'"),
    ({"seed": 3}, "--seed applies to v2 only"),
    ({"method": "v2", "seed": -1}, "--seed must be a whole number from 0"),
    ({"precision": "fp8"}, "unknown precision 'fp8'"),
    ({"encoder": "openclip:"}, "unknown encoder spec 'openclip:'"),
    ({"encoder": Counting(), "checkpoint": "w.pt"}, "checkpoint goes with an encoder spec"),
    ({"cache": 3.5}, "cache must be"),
    ({"batch": 4, "nonsense": 1}, "unknown option 'nonsense'"),
]


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS)
def test_bad_options_fail_at_call_time_before_any_work(
    options, message, scene_path, cache_dir, monkeypatch
):
    """A value that cannot work is a SeloError naming the option when localize is called,
    not a bare error when the Dataset is computed: nothing is read or embedded."""
    from selo.errors import SeloError

    reads = []
    original = rasterio.io.DatasetReader.read
    monkeypatch.setattr(
        rasterio.io.DatasetReader, "read", lambda *a, **k: reads.append(1) or original(*a, **k)
    )
    with pytest.raises(SeloError, match=re.escape(message)):
        selo.localize(np.zeros((300, 400, 3), np.uint8), "white roofs", **options)
    with pytest.raises(SeloError, match=re.escape(message)):
        selo.localize(scene_path, "white roofs", **options)
    assert reads == []


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS[:4])
def test_the_command_functions_check_options_before_writing(
    options, message, scene_path, tmp_path, cache_dir
):
    with pytest.raises(ParameterError, match=re.escape(message)):
        selo.localize_files(scene_path, "white roofs", tmp_path / "out", **options)
    with pytest.raises(ParameterError, match=re.escape(message)):
        selo.airslt(tmp_path, tmp_path / "run", **options)
    with pytest.raises(ParameterError, match=re.escape(message)):
        selo.demo(tmp_path / "demo", **options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]  # nothing written


def test_open_scene_checks_its_options(scene_path):
    with pytest.raises(ParameterError, match="--chunk must be"):
        selo.open_scene(scene_path, chunk=0)
    with pytest.raises(ParameterError, match="cache must be"):
        selo.open_scene(scene_path, cache=7)


def test_session_options_do_not_apply_to_the_lazy_api(scene_path):
    for options in ({"workers": 2}, {"scheduler": "tcp://h:8786"}, {"profile": True}):
        with pytest.raises(ParameterError, match="does not apply here.*client="):
            selo.localize(scene_path, "white roofs", **options)


def test_options_object_and_keywords(scene_path, cache_dir):
    """An Options object and keywords give the same maps; keywords change the object's."""
    options = selo.Options(method="v2", batch=8)
    a = selo.localize(scene_path, "white roofs", options=options)
    b = selo.localize(scene_path, "white roofs", method="v2", batch=8)
    c = selo.localize(scene_path, "white roofs", options=options, method="v1")
    assert a.attrs["method"] == b.attrs["method"] == "v2" and c.attrs["method"] == "v1"
    np.testing.assert_array_equal(a.selo.values, b.selo.values)


def test_localize_files_writes_what_selo_localize_writes(run_cli, scene_path, tmp_path, cache_dir):
    record = selo.localize_files(scene_path, ["white roofs"], tmp_path / "api", chunk=256)
    code, _, err = run_cli(
        "localize", scene_path, "-q", "white roofs", "--out", tmp_path / "cli", "--chunk", "256"
    )
    assert code == 0, err
    assert record["options"]["chunk"] == 256 and record["status"] == "complete"
    for name in ("selo_map.png", "windows.csv", "regions.geojson"):
        a = (tmp_path / "api" / "q01-white-roofs" / name).read_bytes()
        assert a == (tmp_path / "cli" / "q01-white-roofs" / name).read_bytes(), name


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
    run = selo.evaluate_run(maps, anno=small_anno, out=tmp_path / "m.csv")
    assert [c["case"] for c in run["cases"]] == [0, 1, 2]
    assert (tmp_path / "m.csv").read_text().startswith("case,image,query,")
    assert run["cases"][0]["rsu"] == pytest.approx(metrics["rsu"])
    assert run["mean"]["rmi"] == pytest.approx(np.mean([c["rmi"] for c in run["cases"]]))
