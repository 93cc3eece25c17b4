"""``selo localize`` end to end on small scenes: outputs, exactness, georeferencing, cache."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import rasterio
import zarr
from reference import reference_mean_map, reference_selo_map
from scenes import colour_scene, write_geotiff_scene

from selo.pipeline.gnt import CellMap
from selo.selo_tasks.metrics import attention_centres

FAST = ("--in-process", "--chunk", "256")


def read_windows(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    windows = np.array([[int(r[k]) for k in ("r0", "r1", "c0", "c1")] for r in rows])
    return (
        windows,
        np.array([float(r["score"]) for r in rows]),
        np.array([int(r["scale"]) for r in rows]),
    )


@pytest.fixture
def scene(tmp_path):
    return write_geotiff_scene(tmp_path / "scene.tif", colour_scene((700, 900)))


def run_localize(run_cli, scene, out, *args):
    code, stdout, stderr = run_cli("localize", scene, "--out", out, *FAST, *args)
    assert code == 0, stderr
    return json.loads((out / "run.json").read_text())


def test_outputs_per_query_and_map_equals_reference_from_windows_csv(
    run_cli, scene, tmp_path, cache_dir
):
    out = tmp_path / "out"
    record = run_localize(
        run_cli, scene, out, "-q", "white roofs", "-q", "green trees", "--zarr-map"
    )
    assert record["status"] == "complete" and record["windows"] > 0
    assert {"cut", "sim", "gnt", "flt"} <= set(record["stages"])
    assert [o["query"] for o in record["outputs"]] == ["white roofs", "green trees"]
    for o in record["outputs"]:
        folder = out / o["folder"].split("/")[-1]
        for name in (
            "windows.csv",
            "selo_map.png",
            "selo_map.tif",
            "overlay.png",
            "regions.geojson",
        ):
            assert (folder / name).is_file(), name
        windows, scores, scales = read_windows(folder / "windows.csv")
        assert set(scales) == {256, 512, 768}
        selo = cv2.imread(str(folder / "selo_map.png"), cv2.IMREAD_UNCHANGED)
        assert selo.shape == (700, 900) and selo.dtype == np.uint8
        mean = reference_mean_map((700, 900), windows, scores)
        expected = reference_selo_map(mean)
        assert np.array_equal(selo, expected)  # bit for bit
        maps = zarr.open_group(str(out / "maps.zarr" / folder.name[:3]), mode="r")
        stored_mean = CellMap.from_zarr(maps["mean"]).to_array()
        assert np.array_equal(stored_mean, mean) and np.array_equal(maps["selo"][:], selo)
        with rasterio.open(folder / "selo_map.tif") as ds, rasterio.open(scene) as src:
            assert ds.crs == src.crs and ds.transform == src.transform
            assert ds.block_shapes[0] != (1, 900) and ds.compression is not None
            assert np.array_equal(ds.read(1), selo)
        geo = json.loads((folder / "regions.geojson").read_text())
        kinds = {f["properties"]["kind"] for f in geo["features"]}
        assert "centre" in kinds
        centres = [
            (f["properties"]["col"], f["properties"]["row"])
            for f in geo["features"]
            if f["properties"]["kind"] == "centre"
        ]
        assert centres == attention_centres(selo)  # exactly the metrics' centres
    # the white block is top-left, the green block bottom-right
    white = cv2.imread(str(out / "q01-white-roofs" / "selo_map.png"), cv2.IMREAD_UNCHANGED)
    green = cv2.imread(str(out / "q02-green-trees" / "selo_map.png"), cv2.IMREAD_UNCHANGED)
    assert white[150, 200] > white[500, 600] and green[500, 600] > green[150, 200]


def test_second_run_embeds_nothing(run_cli, scene, tmp_path, cache_dir):
    first = run_localize(run_cli, scene, tmp_path / "a", "-q", "white roofs")
    second = run_localize(run_cli, scene, tmp_path / "b", "-q", "gray road")
    assert not first["windows_cached"] and second["windows_cached"]
    assert "sim" not in second["stages"]  # nothing was embedded


def test_each_writer_is_timed_and_maps_zarr_holds_the_cells_only(
    run_cli, scene, tmp_path, cache_dir
):
    record = run_localize(run_cli, scene, tmp_path / "o", "-q", "white roofs")
    (output,) = record["outputs"]
    files = {"windows.csv", "selo_map.png", "selo_map.tif", "overlay.png", "regions.geojson"}
    assert set(output["writers"]) == files | {"maps.zarr"}
    assert all(0 < s < record["wall_seconds"] for s in output["writers"].values())
    folder = tmp_path / "o" / "q01-white-roofs"
    assert {p.name for p in folder.iterdir()} == files
    group = zarr.open_group(str(tmp_path / "o" / "maps.zarr" / "q01"), mode="r")
    assert set(group) == {"mean"}  # the uint8 map only with --zarr-map


def test_v2_method(run_cli, scene, tmp_path, cache_dir):
    record = run_localize(run_cli, scene, tmp_path / "v2", "-q", "white roofs", "--method", "v2")
    assert record["method"]["name"] == "v2"
    folder = tmp_path / "v2" / "q01-white-roofs"
    windows, scores, _ = read_windows(folder / "windows.csv")
    selo = cv2.imread(str(folder / "selo_map.png"), cv2.IMREAD_UNCHANGED)
    mean = reference_mean_map((700, 900), windows, scores)
    assert np.array_equal(selo, reference_selo_map(mean, finish="gaussian"))


def test_scene_smaller_than_windows_and_one_band(run_cli, tmp_path, cache_dir):
    gray = colour_scene((120, 200))[..., :1]
    path = write_geotiff_scene(tmp_path / "small.tif", gray)
    record = run_localize(run_cli, path, tmp_path / "o", "-q", "white")
    assert record["windows"] == 1  # every scale clamps to the whole 200x120 scene
    assert cv2.imread(
        str(tmp_path / "o" / "q01-white" / "selo_map.png"), cv2.IMREAD_UNCHANGED
    ).shape == (120, 200)


def test_jpeg_scene_without_crs(run_cli, tmp_path, cache_dir):
    path = tmp_path / "scene.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(colour_scene((500, 600)), cv2.COLOR_RGB2BGR))
    run_localize(run_cli, path, tmp_path / "o", "-q", "white roofs", "--scales", "128,256")
    with rasterio.open(tmp_path / "o" / "q01-white-roofs" / "selo_map.tif") as ds:
        assert ds.crs is None and ds.shape == (500, 600)


def test_nodata_pixels_stay_nodata(run_cli, tmp_path, cache_dir):
    img = colour_scene((600, 800)).astype(np.uint16) * 200
    img[:, 500:] = 0  # right part without data
    path = write_geotiff_scene(tmp_path / "nd.tif", img, nodata=0)
    run_localize(run_cli, path, tmp_path / "o", "-q", "white roofs", "--scales", "128,256")
    with rasterio.open(tmp_path / "o" / "q01-white-roofs" / "selo_map.tif") as ds:
        assert ds.nodata == 0
        band = ds.read(1)
    assert (band[:, 520:] == 0).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-q", "  "), "non-empty"),
        (("-q", "x", "--scales", "0"), "scales must be positive"),
        (("-q", "x", "--scales", "abc"), "whole numbers"),
        (("-q", "x", "--model", "nope"), "nope"),
        (("-q", "x", "--bands", "1,2"), "three bands"),
    ],
)
def test_bad_options_are_one_line_errors(run_cli, scene, tmp_path, cache_dir, args, message):
    code, _, err = run_cli("localize", scene, "--out", tmp_path / "o", *FAST, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_missing_scene(run_cli, tmp_path):
    code, _, err = run_cli("localize", tmp_path / "none.tif", "-q", "x")
    assert code == 2 and "none.tif: scene not found" in err


def test_spooled_maps_give_the_same_files_as_maps_in_memory(
    run_cli, scene, tmp_path, cache_dir, monkeypatch
):
    from selo.selo_tasks import localize

    run_localize(run_cli, scene, tmp_path / "memory", "-q", "white roofs", "--zarr-map")
    monkeypatch.setattr(localize, "IN_MEMORY_PIXELS", 1)  # every map spooled to a file
    run_localize(run_cli, scene, tmp_path / "spooled", "-q", "white roofs", "--zarr-map")
    stored = [
        zarr.open_group(str(tmp_path / run / "maps.zarr" / "q01"), mode="r")["selo"][:]
        for run in ("memory", "spooled")
    ]
    np.testing.assert_array_equal(stored[0], stored[1])
    a = tmp_path / "memory" / "q01-white-roofs"
    for other in ("spooled",):
        b = tmp_path / other / "q01-white-roofs"
        for name in ("selo_map.png", "selo_map.tif"):
            with rasterio.open(a / name) as x, rasterio.open(b / name) as y:
                np.testing.assert_array_equal(x.read(), y.read())
        assert json.loads((a / "regions.geojson").read_text()) == json.loads(
            (b / "regions.geojson").read_text()
        )
        assert sorted(p.name for p in b.iterdir()) == sorted(p.name for p in a.iterdir())


def test_a_spooled_map_gives_the_bytes_of_a_map_in_memory(
    run_cli, tmp_path, cache_dir, monkeypatch
):
    """Wider than the overlay (2048 px): the overlay and the regions are sampled from the
    strips by the same rule as from a map in memory; the GeoTIFF's overviews too."""
    from selo.selo_tasks import localize

    path = write_geotiff_scene(tmp_path / "wide.tif", colour_scene((300, 2300)))
    args = ("-q", "white roofs", "--scales", "256", "--paper-compat")
    run_localize(run_cli, path, tmp_path / "memory", *args)
    monkeypatch.setattr(localize, "IN_MEMORY_PIXELS", 1)  # every map spooled to a file
    record = run_localize(run_cli, path, tmp_path / "spooled", *args)
    a, b = (tmp_path / run / "q01-white-roofs" for run in ("memory", "spooled"))
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and "selo_map.jpg" in names
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert set(record["outputs"][0]["writers"]) == {*names, "maps.zarr"}


def test_one_scene_runs_on_threads_without_a_cluster(run_cli, scene, tmp_path, cache_dir):
    code, _, err = run_cli("localize", scene, "-q", "white roofs", "--out", tmp_path / "t")
    assert code == 0, err
    record = json.loads((tmp_path / "t" / "run.json").read_text())
    assert record["cluster"]["kind"] == "threads"
    with rasterio.open(tmp_path / "t" / "q01-white-roofs" / "selo_map.tif") as ds:
        threads = ds.read(1)
    run_localize(run_cli, scene, tmp_path / "c", "-q", "white roofs")  # --in-process cluster
    with rasterio.open(tmp_path / "c" / "q01-white-roofs" / "selo_map.tif") as ds:
        np.testing.assert_array_equal(ds.read(1), threads)
