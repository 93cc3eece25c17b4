"""`selo serve SCENES...` over a collection (selo_tasks/serve: state.for_collection, app,
mercator): the hits of a sentence over every scene (those of `selo search`), Web-Mercator
tiles of the scenes and of their maps against GDAL's own warp of the files (WarpedVRT),
regions in lon/lat, and bad requests and inputs."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scenes import (
    COLLECTION_PATCH,
    COLLECTION_SHAPE,
    collection_scenes,
    write_collection,
)

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("morecantile")

import morecantile  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402
from pyproj import Transformer  # noqa: E402
from shapely import wkt  # noqa: E402
from shapely.geometry import Point, shape  # noqa: E402

from selo.selo_tasks.options import Options  # noqa: E402
from selo.selo_tasks.serve import allowed_hosts  # noqa: E402
from selo.selo_tasks.serve.app import create_app  # noqa: E402
from selo.selo_tasks.serve.mercator import tile_bounds  # noqa: E402
from selo.selo_tasks.serve.state import ServeState  # noqa: E402
from selo.selo_tasks.serve.tiles import BACKGROUND  # noqa: E402
from selo.selo_tasks.session import run_session  # noqa: E402

SCALES = "128,256"
SCENES = collection_scenes()
PATCH = COLLECTION_PATCH
SHAPE = COLLECTION_SHAPE
TMS = morecantile.tms.get("WebMercatorQuad")


def client_of(state: ServeState) -> TestClient:
    return TestClient(create_app(state, allowed_hosts=allowed_hosts("127.0.0.1")),
                      base_url="http://127.0.0.1")  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A server of the four scenes' folder, and `selo search`'s hits of it."""
    from selo.selo_tasks.cli import main

    root = tmp_path_factory.mktemp("collection")
    folder = write_collection(root / "tiles")
    cache = root / "cache"
    out = root / "search"
    args = ["search", folder, "-q", "red roofs", "--top", "4", "--out", out]
    assert main([str(a) for a in [*args, "--scales", SCALES, "--cache-dir", cache]]) == 0
    options = Options(cache=str(cache), scales=SCALES, show_progress=False)
    lines: list[str] = []
    with run_session(options, one_scene=True) as ctx:
        state = ServeState.for_collection(ctx, [folder], report=lines.append)
        yield SimpleNamespace(
            root=root, folder=folder, cache=cache, out=out, ctx=ctx, state=state,
            client=client_of(state), lines=lines,
        )  # fmt: skip
        state.close()


def ids(served) -> dict[str, str]:
    """Scene name -> its id in the server."""
    return {s["name"]: s["id"] for s in served.client.get("/api/info").json()["scenes"]}


def search(client, sentence: str, top: int = 4) -> dict:
    response = client.post("/api/search", json={"sentence": sentence, "top": top})
    assert response.status_code == 200, response.text
    return response.json()


def ask(client, scene: str, sentence: str) -> dict:
    response = client.post(f"/api/scenes/{scene}/maps", json={"sentence": sentence})
    assert response.status_code == 200, response.text
    return response.json()


def centre_tile(name: str, z: int) -> morecantile.Tile:
    """The tile of zoom ``z`` holding the middle of the red patch of scene ``name``."""
    _, crs, transform = SCENES[name]
    x, y = transform * ((PATCH[1].start + PATCH[1].stop) / 2, (PATCH[0].start + PATCH[0].stop) / 2)
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    return TMS.tile(lon, lat, z)


def warped(path: Path, z: int, x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
    """GDAL's own warp of the file onto tile (z, x, y), nearest: (bands, 256, 256) and
    where the file is (the reference the tiles are checked against)."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.transform import from_bounds
    from rasterio.vrt import WarpedVRT

    with rasterio.open(path) as src, WarpedVRT(
        src, crs="EPSG:3857", transform=from_bounds(*tile_bounds(z, x, y), 256, 256),
        width=256, height=256, resampling=Resampling.nearest, add_alpha=True,
    ) as vrt:  # fmt: skip
        bands = vrt.read()
        return bands[:-1], bands[-1] > 0


def decode_rgb(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


def decode_la(png: bytes) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(Image.open(io.BytesIO(png)).convert("LA"))
    return image[..., 0], image[..., 1]


# --- the collection and its hits --------------------------------------------------------------


def test_info_places_the_georeferenced_scenes(served):
    info = served.client.get("/api/info").json()
    assert info["mode"] == "collection" and info["skipped"] == 0
    scenes = {s["name"]: s for s in info["scenes"]}
    assert list(scenes) == list(SCENES)  # the folder's order: ids s1..s4
    assert [s["id"] for s in info["scenes"]] == ["s1", "s2", "s3", "s4"]
    assert str(served.folder) not in json.dumps(info)  # ids and names, never paths
    assert scenes["plain.png"]["mercator"] is None and scenes["plain.png"]["crs"] is None
    mercator = info["mercator"]
    assert mercator["scenes"] == 3 and "/api/mercator/{z}/{x}/{y}.jpg?v=" in mercator["tiles"]
    for name, (_, crs, transform) in SCENES.items():
        if crs is None:
            continue
        placed = scenes[name]["mercator"]
        to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        h, w = SHAPE
        edges = [(0, 0), (w, 0), (0, h), (w, h)]
        corners = [to_lonlat.transform(*(transform * xy)) for xy in edges]
        west, south, east, north = placed["lonlat"]
        for lon, lat in corners:
            assert west - 1e-9 <= lon <= east + 1e-9 and south - 1e-9 <= lat <= north + 1e-9
        footprint = shape(placed["footprint"])
        middle = to_lonlat.transform(*(transform * (w / 2, h / 2)))
        assert footprint.is_valid and footprint.contains(Point(middle))
        assert footprint.exterior.is_ccw
        # the native zoom: its tile pixels no larger than the scene's, the zoom before larger
        to_mercator = Transformer.from_crs(crs, "EPSG:3857", always_xy=True)
        (x0, y0), (x1, y1) = (to_mercator.transform(*(transform * xy)) for xy in ((0, 0), (w, h)))
        pixel = min(abs(x1 - x0) / w, abs(y1 - y0) / h)
        z = placed["zoom"]
        assert TMS.matrix(z).cellSize <= pixel < TMS.matrix(z - 1).cellSize
        assert mercator["zoom"] >= z
    box = mercator["lonlat"]
    assert box[0] == pytest.approx(-70.0) and box[2] > 15.0  # from Chile to the 33rd zone


def test_the_hits_are_those_of_selo_search(served):
    """The server's hits of a sentence are the rows of `selo search`'s hits.geojson: the
    same ranks, scenes, scores and places; each carries its scene's id."""
    found = search(served.client, "red roofs")
    written = json.loads((served.out / "hits.geojson").read_text())["features"]
    assert found["sentence"] == "red roofs" and found["scenes"] == 4
    assert len(found["hits"]) == len(written) == 4  # one region in each of these small scenes
    names = ids(served)
    for hit, feature in zip(found["hits"], written, strict=True):
        p = feature["properties"]
        assert hit["rank"] == p["rank"] and hit["score"] == p["score"]
        assert hit["scene_name"] == Path(p["scene"]).name
        assert hit["scene"] == names[hit["scene_name"]]
        assert hit["centre_px"] == [p["x_px"], p["y_px"]] and hit["area_px"] == p["area_px"]
        assert shape(hit["polygon_px"]).equals(wkt.loads(p["polygon_px"]))
        assert p["serve"] == f"/#q=red%20roofs&hit={p['rank']}"
        if feature["geometry"] is None:
            assert hit["geometry"] is None and hit["centre_lonlat"] is None
            continue
        assert hit["centre_lonlat"] == [p["lon"], p["lat"]]
        assert shape(hit["geometry"]).equals_exact(shape(feature["geometry"]), 1e-12)
        assert hit["bounds_lonlat"] == list(shape(feature["geometry"]).bounds)
    assert found["hits"][0]["scene_name"] == "plain.png"  # no CRS: in the list all the same
    again = search(served.client, "red roofs")
    assert again["hits"] == found["hits"]


def test_a_search_page_links_each_hit_to_serve(served):
    page = (served.out / "hits.html").read_text()
    assert 'href="http://127.0.0.1:8765/#q=red%20roofs&amp;hit=1"' in page
    assert page.count(">open in selo serve</a>") == 4


# --- Web-Mercator tiles -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["utm31.tif", "lonlat.tif"])
def test_scene_tiles_are_the_scene_reprojected(served, name):
    """At the scene's native zoom a tile is GDAL's warp of the file (WarpedVRT, nearest),
    as JPEG; where the scene is not, the page's background."""
    z = served.client.get(f"/api/scenes/{ids(served)[name]}").json()["mercator"]["zoom"]
    for dz in (0, 2):
        t = centre_tile(name, z - dz)
        tile = decode_rgb(served.client.get(f"/api/mercator/{t.z}/{t.x}/{t.y}.jpg").content)
        expected, inside = warped(served.folder / name, t.z, t.x, t.y)
        assert inside.sum() > 1000
        diff = np.abs(tile.astype(int) - np.moveaxis(expected, 0, -1))[inside]
        assert diff.mean() < (4 if dz == 0 else 8), (dz, diff.mean())  # JPEG; coarser: resampled
        outside = cv2.erode((~inside).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        if outside.any():  # away from the scene's edge (JPEG blurs it)
            assert np.abs(tile[outside].astype(int) - BACKGROUND).mean() < 3


def test_a_tile_elsewhere_is_background(served):
    z = served.client.get("/api/info").json()["mercator"]["zoom"]
    response = served.client.get(f"/api/mercator/{z}/0/0.jpg")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert np.abs(decode_rgb(response.content).astype(int) - BACKGROUND).max() <= 2
    # the world: every scene in this tile, none 4 pixels across (the page shows dots)
    whole = decode_rgb(served.client.get("/api/mercator/0/0/0.jpg").content)
    assert np.abs(whole.astype(int) - BACKGROUND).max() <= 2


@pytest.mark.parametrize("name", ["utm31.tif", "lonlat.tif"])
def test_map_tiles_are_the_map_reprojected(served, name):
    """An overlay tile's values are the scene's SeLo map (its GeoTIFF) warped by GDAL,
    nearest; alpha where the scene is; JET colours of the same values."""
    sid = ids(served)[name]
    record = ask(served.client, sid, "red roofs")
    tif = served.root / f"{name}-map.tif"
    tif.write_bytes(served.client.get(record["geotiff"]).content)
    z = served.client.get(f"/api/scenes/{sid}").json()["mercator"]["zoom"]
    for dz in (0, 3):
        t = centre_tile(name, z - dz)
        url = record["mercator_tiles"].format(z=t.z, x=t.x, y=t.y)
        values, alpha = decode_la(served.client.get(url, params={"style": "gray"}).content)
        expected, inside = warped(tif, t.z, t.x, t.y)
        assert ((alpha == 255) == inside).mean() > 0.99 and set(np.unique(alpha)) <= {0, 255}
        both = inside & (alpha == 255)
        same = values[both] == expected[0][both]
        assert same.mean() > (0.99 if dz == 0 else 0.9), same.mean()
        assert values[both].max() > 150  # the patch: the hot part of the map
        jet = cv2.imdecode(np.frombuffer(served.client.get(url).content, np.uint8), -1)
        colours = cv2.applyColorMap(values, cv2.COLORMAP_JET)
        assert (jet[..., 3] == alpha).all()
        assert (jet[..., :3][alpha == 255] == colours[alpha == 255]).all()
    far = record["mercator_tiles"].format(z=z, x=0, y=0)
    assert not decode_la(served.client.get(far, params={"style": "gray"}).content)[1].any()


def test_regions_in_lonlat(served):
    sid = ids(served)["utm31.tif"]
    record = ask(served.client, sid, "red roofs")
    in_crs = served.client.get(record["geojson"]).json()
    lonlat = served.client.get(record["geojson"], params={"lonlat": 1}).json()
    assert "crs" not in lonlat and len(lonlat["features"]) == len(in_crs["features"])
    to_lonlat = Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True)
    for a, b in zip(in_crs["features"], lonlat["features"], strict=True):
        assert a["properties"] == b["properties"]
        if a["geometry"]["type"] == "Point":
            expected = to_lonlat.transform(*a["geometry"]["coordinates"])
            assert b["geometry"]["coordinates"] == pytest.approx(expected, abs=1e-9)
    plain = ask(served.client, ids(served)["plain.png"], "red roofs")
    assert "mercator_tiles" not in plain
    response = served.client.get(plain["geojson"], params={"lonlat": 1})
    assert response.status_code == 404 and "no place on the map" in response.json()["error"]


# --- bad requests and inputs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "message"),
    [
        ("get", "/api/mercator/99/0/0.jpg", None, 404, "zoom must be 0.."),
        ("get", "/api/mercator/3/8/0.jpg", None, 404, "x and y must be 0..7"),
        ("get", "/api/mercator/3/0/-1.jpg", None, 404, "x and y must be 0..7"),
        ("get", "/api/mercator/-1/0/0.jpg", None, 404, "zoom must be 0.."),
        ("get", "/api/mercator/a/0/0.jpg", None, 422, "z: Input should be a valid integer"),
        ("get", "/api/mercator/1/0.5/0.jpg", None, 422, "x: Input should be"),
        ("get", "/api/mercator/1/0/0.png", None, 404, "not found"),
        ("get", "/api/mercator/99999999999999999999/0/0.jpg", None, 404, "no tile"),
        ("get", "/api/scenes/s3/maps/m0000/mercator/0/0/0.png", None, 404, "no map 'm0000'"),
        ("get", "/api/scenes/s9/maps/m0000/mercator/0/0/0.png", None, 404, "no scene 's9'"),
        ("post", "/api/search", {"sentence": ""}, 422, "the sentence is empty"),
        ("post", "/api/search", {"sentence": "w" * 1001}, 422, "at most 1000"),
        ("post", "/api/search", {"sentence": 3}, 422, "must be a JSON string"),
        ("post", "/api/search", {"sentence": "red", "top": 0}, 422, "top must be a whole"),
        ("post", "/api/search", {"sentence": "red", "top": 1001}, 422, "from 1 to 1000"),
        ("post", "/api/search", {"sentence": "red", "top": "5"}, 422, "top must be"),
        ("post", "/api/search", {"sentence": "red", "top": True}, 422, "top must be"),
        ("post", "/api/search", {"sentence": "red", "top": 2.5}, 422, "top must be"),
        ("post", "/api/search", {"text": "red"}, 422, 'send {"sentence"'),
        ("post", "/api/search", [], 422, 'send {"sentence"'),
        ("get", "/api/search", None, 405, "Method Not Allowed"),
    ],
)
def test_bad_requests_are_clear_json(served, method, url, body, status, message):
    response = served.client.request(method, url, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"] and response.json()["status"] == status


def test_bad_map_tile_requests(served):
    names = ids(served)
    record = ask(served.client, names["utm31.tif"], "red roofs")
    z = served.client.get(f"/api/scenes/{names['utm31.tif']}").json()["mercator"]["zoom"]
    too_deep = served.client.get(record["mercator_tiles"].format(z=z + 1, x=0, y=0))
    assert too_deep.status_code == 404 and f"zoom must be 0..{z}" in too_deep.json()["error"]
    bad_style = served.client.get(record["mercator_tiles"].format(z=0, x=0, y=0),
                                  params={"style": "hot"})  # fmt: skip
    assert bad_style.status_code == 422 and "style must be jet or gray" in bad_style.json()["error"]
    plain = ask(served.client, names["plain.png"], "red roofs")
    url = plain["tiles"].replace("/tiles/", "/mercator/").format(z=0, x=0, y=0)
    response = served.client.get(url)
    assert response.status_code == 404 and "no place on the map" in response.json()["error"]


def test_one_scene_has_no_collection_search(served):
    state = ServeState.for_scenes(served.ctx, [served.folder / "utm31.tif"])
    client = client_of(state)
    try:
        response = client.post("/api/search", json={"sentence": "red"})
        assert response.status_code == 409 and "SCENES..." in response.json()["error"]
        response = client.get("/api/mercator/0/0/0.jpg")
        assert response.status_code == 404 and "no georeferenced scenes" in response.json()["error"]
        assert client.get("/api/info").json()["mercator"] is None
    finally:
        state.close()


def test_bad_scenes_are_listed_or_skipped(served, tmp_path):
    (tmp_path / "notes.tif").write_text("not a raster")
    items = [served.folder / "utm31.tif", tmp_path / "notes.tif", tmp_path / "missing.tif"]
    from selo.errors import CollectionError

    with pytest.raises(CollectionError, match="2 of 3 scene.s. cannot be searched") as e:
        ServeState.for_collection(served.ctx, items)
    assert "notes.tif: not a raster" in str(e.value) and "--skip-bad" in str(e.value)
    state = ServeState.for_collection(served.ctx, items, skip_bad=True)
    try:
        info = client_of(state).get("/api/info").json()
        assert info["skipped"] == 2 and [s["name"] for s in info["scenes"]] == ["utm31.tif"]
        assert [h["scene"] for h in search(client_of(state), "red roofs", 3)["hits"]] == ["s1"]
    finally:
        state.close()
    with pytest.raises(CollectionError, match="no scenes found"):
        ServeState.for_collection(served.ctx, [tmp_path / "*.png"])


def test_serve_command_of_a_collection_errors(run_cli, served, tmp_path):
    (tmp_path / "notes.tif").write_text("not a raster")
    common = ("--port", "0", "--scales", SCALES, "--cache-dir", served.cache)
    code, _, err = run_cli("serve", served.folder / "utm31.tif", tmp_path / "notes.tif", *common)
    assert code == 2 and "1 of 2 scene(s) cannot be searched" in err and "notes.tif" in err
    code, _, err = run_cli("serve", str(tmp_path / "*.tif"), "--index", "exact", *common)
    assert code == 2 and "1 of 1 scene(s) cannot be searched" in err
    code, _, err = run_cli("serve", served.folder / "utm31.tif", "--skip-bad")
    assert code == 2 and "--skip-bad goes with a collection" in err
    code, _, err = run_cli("serve", served.folder, "--index", "fast")
    assert code == 2 and "'fast' is not one of" in err
    code, _, err = run_cli("serve", served.out)  # a search's output: what to do instead
    assert code == 2 and "the output of selo search; serve its scenes" in err


# --- the geometry of Web-Mercator tiles -------------------------------------------------------


@st.composite
def placed_tiles(draw):
    """A small georeferenced grid (a CRS of three, a place and pixel size), and a tile of a
    zoom around its native one near it."""
    from affine import Affine

    from selo.pipeline.scene import Grid
    from selo.selo_tasks.serve.mercator import place

    crs = draw(st.sampled_from(["EPSG:32631", "EPSG:4326", "EPSG:3857"]))
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    if crs == "EPSG:4326":
        size = draw(st.sampled_from([1e-5, 1e-4, 2e-3]))
        x0, y0 = draw(st.floats(-179, 170)), draw(st.floats(-80, 80))
    else:
        size = draw(st.sampled_from([0.5, 10.0, 300.0]))
        x0 = (
            draw(st.floats(200_000, 800_000)) if crs == "EPSG:32631" else draw(st.floats(-1e7, 1e7))
        )
        y0 = draw(st.floats(0, 8_000_000))
    grid = Grid(h, w, crs, Affine(size, 0, x0, 0, -size, y0))
    placement = place(grid)
    assume(placement is not None)
    z = max(0, placement.zoom - draw(st.integers(0, 6)))
    west, south, east, north = placement.lonlat
    lon = draw(st.floats(west, east)) if east > west else west
    lat = draw(st.floats(south, north)) if north > south else south
    t = TMS.tile(lon, lat, z)
    return placement, z, t.x + draw(st.integers(-1, 1)), t.y + draw(st.integers(-1, 1))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(placed_tiles())
def test_a_tile_window_holds_every_pixel_under_the_tile(case):
    """Placement.window (the tile's bounds taken to the scene's pixels) holds every scene
    pixel whose centre lies in the tile: the reference warps each centre to EPSG:3857."""
    placement, z, x, y = case
    assume(0 <= x < 2**z and 0 <= y < 2**z)
    g = placement.grid
    rows, cols = np.mgrid[0 : g.height, 0 : g.width] + 0.5
    xs, ys = g.transform * (cols.ravel(), rows.ravel())
    mx, my = Transformer.from_crs(g.crs, "EPSG:3857", always_xy=True).transform(xs, ys)
    left, bottom, right, top = tile_bounds(z, x, y)
    under = ((mx >= left) & (mx < right) & (my > bottom) & (my <= top)).reshape(g.shape)
    window = placement.window(z, x, y)
    if window is None:
        assert not under.any()
        return
    r0, r1, c0, c1 = window
    assert 0 <= r0 < r1 <= g.height and 0 <= c0 < c1 <= g.width
    inside = np.zeros(g.shape, bool)
    inside[r0:r1, c0:c1] = True
    assert not (under & ~inside).any()


@pytest.mark.parametrize(
    ("target", "one"),
    [
        ("utm31.tif", True),  # a file
        ("missing.tif", True),  # said to be missing, as before
        ("item.json", True),  # a STAC item
        ("items.json", False),  # a STAC ItemCollection
        (".", False),  # a folder
        ("*.tif", False),  # a glob
        ("http://127.0.0.1:9/scenes/a.tif?signature=1", True),  # a scene's URL
        ("http://127.0.0.1:9/scenes/", False),  # a URL prefix (nothing listens there)
    ],
)
def test_one_scene_or_a_collection(target, one, tmp_path, monkeypatch):
    """`selo serve` of one target serves one scene as before unless it names a collection."""
    from selo.selo_tasks.serve import _one_scene

    (tmp_path / "utm31.tif").write_bytes(b"II*\x00")  # what a scene is: its name says
    (tmp_path / "item.json").write_text(json.dumps({"type": "Feature", "id": "a"}))
    (tmp_path / "items.json").write_text(json.dumps({"type": "FeatureCollection"}))
    monkeypatch.chdir(tmp_path)
    assert _one_scene(target) is one
