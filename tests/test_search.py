"""``selo search`` and ``selo.search`` end to end with the ``color`` encoder: ranking across
scenes by raw similarity, the outputs (GeoJSON in EPSG:4326, GeoParquet, gallery, maps),
the index kept in the cache, and user mistakes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import geopandas
import numpy as np
import pytest
import zarr
from pyproj import Transformer
from scenes import colour_scene, write_geotiff_scene
from shapely import normalize, transform, wkt
from shapely.geometry import shape

import selo
from selo.pipeline.gnt import CellMap

SCALES = ("--scales", "128,256")
STRENGTHS = {"strong": 1.0, "half": 0.5, "faint": 0.25, "none": 0.0}
PATCH = (slice(150, 350), slice(400, 600))  # rows, cols of the red patch


def red_scene(strength: float, seed: int) -> np.ndarray:
    """colour_scene with a red patch blended in at ``strength``."""
    img = colour_scene((600, 800), seed=seed)
    patch = img[PATCH].astype(float)
    img[PATCH] = (patch * (1 - strength) + np.array([220, 30, 30]) * strength).astype(np.uint8)
    return img


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    """Four georeferenced scenes (red patches of different strengths) and one PNG without
    georeferencing (a red patch at 0.75)."""
    root = tmp_path_factory.mktemp("collection")
    folder = root / "tiles"
    folder.mkdir()
    for seed, (name, strength) in enumerate(STRENGTHS.items()):
        write_geotiff_scene(folder / f"{name}.tif", red_scene(strength, seed))
    cv2.imwrite(str(folder / "plain.png"), red_scene(0.75, 9)[..., ::-1])
    return folder


@pytest.fixture(scope="module")
def searched(scenes, tmp_path_factory):
    """One `selo search` of the folder for two sentences, with the maps of the top 2 scenes."""
    from selo.selo_tasks.cli import main

    work = tmp_path_factory.mktemp("searched")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SELO_CACHE_DIR", str(work / "cache"))
        code = main(
            ["search", str(scenes), "-q", "red roofs", "-q", "green trees", "--top", "6",
             "--maps", "2", "--out", str(work / "out"), *SCALES]
        )  # fmt: skip
    assert code == 0
    return work / "out", work / "cache"


def features(out: Path, query: str) -> list[dict]:
    data = json.loads((out / "hits.geojson").read_text())
    return [f for f in data["features"] if f["properties"]["query"] == query]


def test_a_strong_patch_outranks_a_faint_one(searched):
    out, _ = searched
    red = features(out, "red roofs")
    best = {}  # each scene's best rank
    for f in red:
        best.setdefault(Path(f["properties"]["scene"]).stem, f["properties"]["rank"])
    ranked = [name for name in best if name in STRENGTHS]
    assert ranked[:3] == ["strong", "half", "faint"] and "plain" in best
    scores = [f["properties"]["score"] for f in red]
    assert scores == sorted(scores, reverse=True) and len(red) == 6
    assert [f["properties"]["rank"] for f in red] == list(range(1, 7))
    for f in red[:3]:  # in the patch
        assert 400 <= f["properties"]["x_px"] <= 600 and 150 <= f["properties"]["y_px"] <= 350


def test_scores_are_the_raw_mean_map(searched):
    """A hit's score is the peak of the scene's mean map (what `selo localize` stores as
    maps.zarr/qNN/mean), never of the normalised SeLo map."""
    out, _ = searched
    top = next(f for f in features(out, "red roofs") if "strong" in f["properties"]["scene"])
    top = top["properties"]
    group = zarr.open_group(str(out / "maps" / "s0005-strong" / "maps.zarr" / "q01"), mode="r")
    mean = CellMap.from_zarr(group["mean"])
    assert top["score"] == pytest.approx(mean.values[mean.covered].max(), abs=1e-6)
    assert top["score"] < 1.0
    assert (out / "maps" / "s0005-strong" / "q01-red-roofs" / "selo_map.tif").is_file()


def test_geojson_is_epsg_4326_with_the_scene_crs_as_properties(searched, scenes):
    out, _ = searched
    data = json.loads((out / "hits.geojson").read_text())
    assert data["type"] == "FeatureCollection" and "crs" not in data  # RFC 7946: WGS 84
    to_lonlat = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    georeferenced = [f for f in data["features"] if f["properties"]["crs"] is not None]
    assert georeferenced
    for f in georeferenced:
        p = f["properties"]
        assert p["crs"] == "EPSG:32633" and p["coordinates"] == "EPSG:4326"
        # the scenes' transform: origin (500000, 4600000), 0.5 m pixels
        assert (p["x"], p["y"]) == (500000 + 0.5 * p["x_px"], 4600000 - 0.5 * p["y_px"])
        lon, lat = to_lonlat.transform(p["x"], p["y"])
        assert (p["lon"], p["lat"]) == pytest.approx((lon, lat), abs=1e-9)
        polygon = shape(f["geometry"])
        assert polygon.is_valid
        assert all(part.exterior.is_ccw for part in getattr(polygon, "geoms", [polygon]))
        in_crs = wkt.loads(p["polygon_crs"])
        in_px = wkt.loads(p["polygon_px"])
        assert in_crs.area == pytest.approx(in_px.area * 0.25) and p["area_px"] == in_px.area
        x0, y0, x1, y1 = in_px.bounds
        assert in_crs.bounds == pytest.approx((500000 + x0 / 2, 4600000 - y1 / 2,
                                               500000 + x1 / 2, 4600000 - y0 / 2))  # fmt: skip
        expected = transform(in_crs, lambda xy: np.column_stack(to_lonlat.transform(*xy.T)))
        assert normalize(polygon).equals_exact(normalize(expected), 1e-12)
        assert polygon.contains(shape({"type": "Point", "coordinates": [p["lon"], p["lat"]]}))


def test_a_scene_without_crs_keeps_pixel_coordinates(searched):
    out, _ = searched
    data = json.loads((out / "hits.geojson").read_text())
    plain = [f for f in data["features"] if f["properties"]["scene"].endswith("plain.png")]
    assert plain
    for f in plain:
        p = f["properties"]
        assert f["geometry"] is None and p["crs"] is None and p["lon"] is None
        assert p["coordinates"].startswith("pixel") and p["x"] is None
        assert wkt.loads(p["polygon_px"]).contains(wkt.loads(f"POINT ({p['x_px']} {p['y_px']})"))
    assert "scenes without a CRS" in data["selo:note"]


def test_parquet_holds_the_same_hits(searched):
    out, _ = searched
    frame = geopandas.read_parquet(out / "hits.parquet")
    data = json.loads((out / "hits.geojson").read_text())
    assert frame.crs.to_epsg() == 4326 and len(frame) == len(data["features"])
    for (_, row), f in zip(frame.iterrows(), data["features"], strict=True):
        assert (row["query"], row["rank"], row["scene"]) == (
            f["properties"]["query"], f["properties"]["rank"], f["properties"]["scene"],
        )  # fmt: skip
        assert row["score"] == f["properties"]["score"]
        if f["geometry"] is None:
            assert row.geometry is None
        else:
            assert row.geometry.equals_exact(shape(f["geometry"]), 1e-12)


def test_gallery_and_record(searched):
    out, cache = searched
    page = (out / "hits.html").read_text()
    n = len(json.loads((out / "hits.geojson").read_text())["features"])
    assert page.count('<img src="data:image/jpeg;base64,') == n
    assert "red roofs" in page and "green trees" in page and "maps/s0005-strong" in page
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "complete" and record["command"] == "search"
    assert record["scenes"] == 5 and record["index"]["mode"] == "exact"
    assert record["index"]["built"] is True
    assert not [p for p in out.parent.rglob("*") if ".tmp-" in p.name]


def test_the_index_is_kept_and_int8_finds_the_same(searched, scenes, run_cli, tmp_path):
    out, cache = searched
    again = tmp_path / "again"
    for mode in ("exact", "int8"):
        code, _, err = run_cli(
            "search", scenes, "-q", "red roofs", "-q", "green trees", "--top", "6",
            "--out", again, "--cache-dir", cache, "--index", mode, *SCALES,
        )  # fmt: skip
        assert code == 0, err
        record = json.loads((again / "run.json").read_text())
        assert record["index"]["built"] is False and record["index"]["mode"] == mode
        first = geopandas.read_parquet(out / "hits.parquet")
        second = geopandas.read_parquet(again / "hits.parquet")
        assert list(first["scene"]) == list(second["scene"])
        assert np.allclose(first["score"], second["score"], atol=1e-6)
    assert not (again / "maps").exists()


def test_python_search_returns_what_the_command_writes(searched, scenes, run_cli, tmp_path):
    _, cache = searched
    frame = selo.search(scenes, "red roofs", top=3, cache=cache)
    assert isinstance(frame, geopandas.GeoDataFrame) and frame.crs.to_epsg() == 4326
    assert list(frame["rank"]) == [1, 2, 3] and Path(frame["scene"][0]).stem in ("strong", "plain")
    code, _, err = run_cli(
        "search", scenes, "-q", "red roofs", "--top", "3", "--out", tmp_path, "--cache-dir", cache
    )
    assert code == 0, err
    written = geopandas.read_parquet(tmp_path / "hits.parquet")
    assert list(written["scene"]) == list(frame["scene"])
    assert list(written["score"]) == list(frame["score"])


def test_a_server_searches_an_opened_collection(searched, scenes):
    """What `selo serve` over a collection needs: the collection opened (from the cached
    index) once, then searched again and again; hits with their place in scene pixels, in
    the scene's CRS and in EPSG:4326."""
    from shapely.geometry import Point

    from selo.selo_tasks.options import Options
    from selo.selo_tasks.search import open_collection
    from selo.selo_tasks.session import run_session

    _, cache = searched
    options = Options(scales="128,256", cache=str(cache), show_progress=False)
    with run_session(options, one_scene=True) as ctx, open_collection(ctx, [scenes]) as coll:
        assert not coll.built and [s.number for s in coll.scenes] == [1, 2, 3, 4, 5]
        red = coll.search("red roofs", top=4)
        both = coll.search(["green trees", "red roofs"], top=4)
    assert [h.rank for h in red] == [1, 2, 3, 4] and [h.query_number for h in both[4:]] == [2] * 4
    assert [(h.scene.number, h.score) for h in red] == [
        (h.scene.number, h.score) for h in both if h.query == "red roofs"
    ]
    for hit in red:
        assert hit.geometry_px().contains(Point(hit.centre_px))
        if hit.georeferenced:
            assert hit.geometry_crs().contains(Point(hit.centre_crs()))
            assert hit.geometry_lonlat().contains(Point(hit.centre_lonlat()))
        else:
            assert hit.geometry_crs() is None and hit.centre_lonlat() is None


def test_a_url_prefix_and_a_stac_collection_are_collections_too(
    scenes, http_server, run_cli, tmp_path, cache_dir
):
    """The same GeoTIFFs named by local paths, served over HTTP (a URL prefix, listed) and
    as the items of a STAC ItemCollection: the same hits, named by their URL or item."""
    from test_stac import asset, item

    tifs = sorted(p for p in scenes.iterdir() if p.suffix == ".tif")
    for p in tifs:
        shutil.copy(p, http_server.root / p.name)
    http_server.listing = True
    features = [item({"visual": asset(str(p), roles=("visual",))}, item_id=p.stem) for p in tifs]
    stac = tmp_path / "items.json"
    stac.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    hits = {}
    for name, target in (("local", tifs), ("http", [http_server.url()]), ("stac", [stac])):
        out = tmp_path / name
        code, _, err = run_cli("search", *target, "-q", "red roofs", "--out", out, *SCALES)
        assert code == 0, (name, err)
        hits[name] = geopandas.read_parquet(out / "hits.parquet")
    assert list(hits["http"]["scene"]) == [
        http_server.url(Path(s).name) for s in hits["local"]["scene"]
    ]
    for name in ("http", "stac"):
        assert list(hits[name]["score"]) == list(hits["local"]["score"])
        assert list(hits[name]["lon"]) == list(hits["local"]["lon"])


# --- user mistakes ---------------------------------------------------------------------------


def search(run_cli, tmp, *scenes, extra=()):
    return run_cli("search", *scenes, "-q", "red", "--out", tmp / "out", *SCALES, *extra)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("selo: error: "), err
    return lines[0]


def test_an_empty_collection(run_cli, tmp_path, cache_dir):
    (tmp_path / "empty").mkdir()
    code, _, err = search(run_cli, tmp_path, tmp_path / "empty", str(tmp_path / "*.tif"))
    assert code == 2 and "no scenes found" in one_line(err)
    assert not any((tmp_path / "out").iterdir())


def test_unusable_scenes_are_listed_and_can_be_skipped(run_cli, scenes, tmp_path, cache_dir):
    (tmp_path / "notes.tif").write_text("not a raster")
    args = (scenes / "strong.tif", tmp_path / "notes.tif", tmp_path / "missing.tif")
    code, _, err = search(run_cli, tmp_path, *args)
    line = one_line(err)
    assert code == 2 and "2 of 3 scene(s) cannot be searched" in line
    assert "notes.tif: not a raster" in line and "missing.tif" in line and "--skip-bad" in line
    assert not any((tmp_path / "out").iterdir())
    code, _, err = search(run_cli, tmp_path, *args, extra=("--skip-bad",))
    assert code == 0, err
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["scenes"] == 1 and {Path(s).name for s, _ in record["skipped"]} == {
        "notes.tif", "missing.tif",
    }  # fmt: skip


def test_a_scene_named_twice_or_copied(run_cli, scenes, tmp_path, cache_dir):
    copy = shutil.copy(scenes / "half.tif", tmp_path / "copy.tif")
    code, _, err = search(run_cli, tmp_path, scenes / "strong.tif", scenes / "strong.tif")
    assert code == 2 and "named twice" in one_line(err)
    code, _, err = search(run_cli, tmp_path, scenes / "half.tif", copy)
    assert code == 2 and f"copy.tif: the same scene as {scenes / 'half.tif'}" in one_line(err)
    code, _, err = search(run_cli, tmp_path, scenes / "half.tif", copy, extra=("--skip-bad",))
    assert code == 0, err


def test_a_scene_without_data(run_cli, scenes, tmp_path, cache_dir):
    nodata = write_geotiff_scene(tmp_path / "nd.tif", np.zeros((300, 400, 3), np.uint8), nodata=0)
    code, _, err = search(run_cli, tmp_path, scenes / "faint.tif", nodata)
    assert code == 2 and "nd.tif: every pixel is nodata" in one_line(err)
    code, _, err = search(run_cli, tmp_path, scenes / "faint.tif", nodata, extra=("--skip-bad",))
    assert code == 0, err


def test_a_failed_write_leaves_the_earlier_outputs(
    run_cli, scenes, tmp_path, cache_dir, monkeypatch
):
    code, _, err = search(run_cli, tmp_path, scenes / "strong.tif")
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir() if p.is_file()}

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(geopandas.GeoDataFrame, "to_parquet", full)
    code, _, err = search(run_cli, tmp_path, scenes / "faint.tif")
    assert code == 2 and "No space left on device" in one_line(err)
    after = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert after == before  # nothing of the failed search, nothing half-written


def test_an_output_folder_that_is_a_file_fails_first(run_cli, scenes, tmp_path, cache_dir):
    (tmp_path / "out").write_text("a file")
    code, _, err = search(run_cli, tmp_path, scenes / "strong.tif")
    assert code == 2 and "out: exists and is not a folder" in one_line(err)
    assert not (cache_dir / "indexes").exists()  # nothing was embedded or indexed


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--top", "0", "--top"), ("--maps", "-1", "--maps"), ("--index", "fast", "--index")],
)
def test_bad_options(run_cli, scenes, tmp_path, option, value, message):
    code, _, err = search(run_cli, tmp_path, scenes / "strong.tif", extra=(option, value))
    assert code == 2 and message in err
