"""STAC: an Item is a scene (its visual asset, or its red/green/blue bands stacked), an
ItemCollection or a Catalog a list of scenes; assets read by selo's own reader."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from selo.errors import SceneError
from selo.pipeline.cache import Cache
from selo.pipeline.scene import open_scene, source_info
from selo.pipeline.source import expand_sources, locate_scenes

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
SHAPE = (90, 120)


def write_band(path, data, *, pixel=10.0, nodata=0):
    data = data[None] if data.ndim == 2 else data
    profile = dict(driver="GTiff", count=data.shape[0], height=data.shape[1], width=data.shape[2],
                   dtype=data.dtype, crs="EPSG:32633", nodata=nodata,
                   transform=from_origin(600_000, 5_000_000, pixel, pixel))  # fmt: skip
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return path


def asset(href, common=None, name=None, roles=("data",), media=COG, bands=None):
    out = {"href": href, "type": media, "roles": list(roles)}
    if bands is not None:
        out["eo:bands"] = bands
    elif common or name:
        out["eo:bands"] = [{"name": name or common, "common_name": common}]
    return out


def item(assets: dict, item_id="S2B_TEST", links=()) -> dict:
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
        "id": item_id,
        "geometry": {"type": "Point", "coordinates": [15.0, 45.0]},
        "bbox": [15.0, 45.0, 15.0, 45.0],
        "properties": {"datetime": "2026-06-01T10:00:00Z"},
        "links": list(links),
        "assets": assets,
    }


@pytest.fixture
def s2(tmp_path):
    """A Sentinel-2 L2A-like item: uint16 reflectance bands (nodata 0) as single-band COGs,
    a JPEG2000-style duplicate of red, a 20 m band, a thumbnail and metadata; no visual."""
    rng = np.random.default_rng(0)
    bands = {}
    for name in ("red", "green", "blue", "nir"):
        data = rng.integers(1000, 9000, SHAPE).astype(np.uint16)
        data[:4, :6] = 0  # no data in a corner
        bands[name] = data
        write_band(tmp_path / f"{name}.tif", data)
    write_band(tmp_path / "swir16.tif", rng.integers(1000, 9000, (45, 60)).astype(np.uint16),
               pixel=20.0)  # fmt: skip
    assets = {
        "red": asset("red.tif", "red", "B04"),
        "red-jp2": asset("red.tif", "red", "B04", media="image/jp2"),
        "green": asset("green.tif", "green", "B03"),
        "blue": asset("blue.tif", "blue", "B02"),
        "nir": asset("nir.tif", "nir", "B08"),
        "swir16": asset("swir16.tif", "swir16", "B11"),
        "thumbnail": asset("thumb.jpg", roles=("thumbnail",), media="image/jpeg"),
        "granule_metadata": asset("meta.xml", roles=("metadata",), media="application/xml"),
    }
    path = tmp_path / "item.json"
    path.write_text(json.dumps(item(assets)))
    return path, bands


def stacked(tmp_path, bands, names) -> np.ndarray:
    """The pixels a local 3-band file of these bands opens to (the same stretch rules)."""
    path = write_band(tmp_path / "stack.tif", np.stack([bands[n] for n in names]))
    return open_scene(path, cache=Cache(tmp_path / "c2")).values


def test_item_without_visual_stacks_its_red_green_blue_bands(s2, tmp_path):
    path, bands = s2
    scene = open_scene(path, cache=Cache(tmp_path / "c"))
    np.testing.assert_array_equal(scene.values, stacked(tmp_path, bands, ["red", "green", "blue"]))
    info = source_info(scene)
    assert [f.rsplit("/", 1)[-1] for f in info["files"]] == ["red.tif", "green.tif", "blue.tif"]
    assert info["dtype"] == "uint16"
    assert not scene.coords["valid"].values[:4, :6].any() and scene.coords["valid"].values[4:].all()
    assert scene.rio.crs.to_epsg() == 32633


def test_bands_by_name_choose_assets(s2, tmp_path):
    path, bands = s2
    scene = open_scene(path, bands=("nir", "red", "green"), cache=Cache(tmp_path / "c"))
    np.testing.assert_array_equal(scene.values, stacked(tmp_path, bands, ["nir", "red", "green"]))
    by_band_name = open_scene(path, bands=("B08", "B04", "B03"), cache=Cache(tmp_path / "c"))
    np.testing.assert_array_equal(by_band_name.values, scene.values)


def test_one_asset_is_read_as_a_file(s2, tmp_path):
    path, bands = s2
    scene = open_scene(path, asset="nir", cache=Cache(tmp_path / "c"))  # one band: gray
    single = write_band(tmp_path / "nir-copy.tif", bands["nir"])
    np.testing.assert_array_equal(scene.values, open_scene(single, cache=Cache(tmp_path)).values)


def test_visual_asset_comes_first(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (3, *SHAPE)).astype(np.uint8)
    write_band(tmp_path / "tci.tif", rgb, nodata=None)
    write_band(tmp_path / "red.tif", rgb[0].astype(np.uint16) * 30)
    assets = {"red": asset("red.tif", "red"), "visual": asset("tci.tif", roles=("visual",))}
    path = tmp_path / "item.json"
    path.write_text(json.dumps(item(assets)))
    scene = open_scene(path, cache=Cache(tmp_path / "c"))
    np.testing.assert_array_equal(scene.transpose("band", "y", "x").values, rgb)
    swapped = open_scene(path, bands=(3, 2, 1), cache=Cache(tmp_path / "c"))  # numbers: visual
    np.testing.assert_array_equal(swapped.transpose("band", "y", "x").values, rgb[::-1])


def test_assets_on_different_grids_are_refused(s2, tmp_path):
    path, _ = s2
    with pytest.raises(SceneError, match="different grids") as e:
        open_scene(path, bands=("red", "green", "swir16"), cache=Cache(tmp_path / "c"))
    assert "red.tif" in str(e.value) and "swir16.tif" in str(e.value)


@pytest.mark.parametrize(
    ("assets", "kw", "message"),
    [
        ({"thumbnail": asset("t.jpg", roles=("thumbnail",), media="image/jpeg")}, {},
         "no usable asset"),
        ({"red": asset("r.tif", "red")}, {"asset": "visual"}, "no asset 'visual'"),
        ({"red": asset("r.tif", "red")}, {"bands": ("red", "green", "blue")},
         "no band named 'green'"),
        ({"red": asset("r.tif", "red")}, {"bands": (1, 2, 3)}, "band numbers need one asset"),
    ],
)  # fmt: skip
def test_items_without_a_usable_asset(tmp_path, assets, kw, message):
    path = tmp_path / "item.json"
    path.write_text(json.dumps(item(assets)))
    with pytest.raises(SceneError, match=message) as e:
        open_scene(path, cache=Cache(tmp_path / "c"), **kw)
    assert str(path) in str(e.value)


def test_a_collection_is_not_one_scene(tmp_path):
    path = tmp_path / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(SceneError, match="a list of scenes"):
        open_scene(path, cache=Cache(tmp_path / "c"))


def test_item_url_without_suffix_and_relative_hrefs(s2, http_server, tmp_path):
    """A STAC API item URL (no .json) over HTTP, its assets relative to it: read remotely."""
    path, bands = s2
    folder = http_server.root / "collections" / "s2" / "items"
    folder.mkdir(parents=True)
    for name in ("red", "green", "blue"):
        shutil.copy(path.parent / f"{name}.tif", folder / f"{name}.tif")
    shutil.copy(path, folder / "S2B_TEST")
    scene = open_scene(http_server.url("collections/s2/items/S2B_TEST"), cache=Cache(tmp_path))
    np.testing.assert_array_equal(scene.values, stacked(tmp_path, bands, ["red", "green", "blue"]))
    assert http_server.bytes_sent("red.tif") > 0


def test_localize_an_item_from_the_command_line(run_cli, s2, tmp_path):
    path, _ = s2
    out = tmp_path / "out"
    code, _, err = run_cli(
        "localize", path, "-q", "green fields", "--out", out, "--bands", "nir,red,green",
        "--scales", "64", "--cache-dir", tmp_path / "cache",
    )  # fmt: skip
    assert code == 0, err
    record = json.loads((out / "run.json").read_text())
    assert record["scene"] == str(path)
    assert [f.rsplit("/", 1)[-1] for f in record["scene_info"]["files"]] == [
        "nir.tif",
        "red.tif",
        "green.tif",
    ]
    code, _, err = run_cli("localize", path, "-q", "x", "--out", out, "--asset", "nope")
    assert code == 2 and "no asset 'nope'" in err and str(path) in err


def _synthetic_collection(tmp_path, kind: str):
    """A synthetic AIR-SLT whose scenes are STAC items (ids without the .jpg) in an
    ItemCollection, or in a static Catalog with one file per item."""
    from selo.selo_tasks.synth import build_synthetic_airslt

    synth = build_synthetic_airslt(tmp_path / "synth", scale=0.2, cases=[0, 12])
    root = tmp_path / "stac"
    root.mkdir()
    features = []
    for image in sorted(synth.images.iterdir()):
        shutil.copy(image, root / image.name)
        media = "image/jpeg"
        features.append(item({"visual": asset(image.name, roles=("visual",), media=media)},
                             item_id=image.stem))  # fmt: skip
    if kind == "items":
        path = root / "items.json"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        return synth, path
    links = []
    for feature in features:
        (root / f"{feature['id']}.json").write_text(json.dumps(feature))
        links.append({"rel": "item", "href": f"./{feature['id']}.json"})
    catalog = {"type": "Catalog", "stac_version": "1.0.0", "id": "synth",
               "description": "synthetic AIR-SLT", "links": links}  # fmt: skip
    path = root / "catalog.json"
    path.write_text(json.dumps(catalog))
    return synth, path


@pytest.mark.parametrize("kind", ["items", "catalog"])
def test_airslt_reads_the_items_of_a_collection(airslt_metrics, tmp_path, kind):
    synth, collection = _synthetic_collection(tmp_path, kind)
    refs = expand_sources(collection)
    assert sorted(r.name for r in refs) == sorted(p.stem for p in synth.images.iterdir())
    assert sorted(locate_scenes(collection, ["0.jpg", "13.jpg", "99.jpg"])) == ["0.jpg", "13.jpg"]
    runs = {}
    for name, images in (("local", synth.images), ("stac", collection)):
        runs[name] = airslt_metrics(images, synth.anno, tmp_path / name, tmp_path / f"cache-{name}")
    assert runs["stac"] == runs["local"]
