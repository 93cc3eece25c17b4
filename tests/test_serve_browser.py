"""`selo serve` in a real browser: Playwright (Python) driving the system's Chromium against
a server started here on a free port. Skipped, saying why, without Chromium or Playwright
(`.ci/run` installs both)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from browser import CHROMIUM, launch, type_sentence
from scenes import colour_scene, write_geotiff_scene

pytestmark = pytest.mark.slow

SHAPE = (1024, 1024)  # colour_scene: white block rows/cols 128..341, green 512..896
WHITE = (128, 341, 128, 341)
GREEN = (512, 896, 512, 896)
VIEWPORT = {"width": 1200, "height": 800}


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set SELO_CHROMIUM)"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    pytest.importorskip("fastapi", reason="pip install 'selo[serve]'")
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, browser):
    """A server of a 1024² colour scene on a free port, and `selo localize`'s files of it."""
    from selo.selo_tasks.cli import main
    from selo.selo_tasks.options import Options
    from selo.selo_tasks.serve import BackgroundServer
    from selo.selo_tasks.serve.state import ServeState
    from selo.selo_tasks.session import run_session

    root = tmp_path_factory.mktemp("browser")
    scene = write_geotiff_scene(root / "scene.tif", colour_scene(SHAPE))
    cache = root / "cache"
    args = ["localize", scene, "-q", "white", "--out", root / "localize", "--cache-dir", cache]
    assert main([str(a) for a in args]) == 0
    with run_session(Options(cache=str(cache), show_progress=False), one_scene=True) as ctx:
        state = ServeState.for_scenes(ctx, [scene])
        state.start_embedding()
        with BackgroundServer(state) as background:
            yield SimpleNamespace(url=background.url, state=state, localized=root / "localize")
        state.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.errors = errors  # a test expecting an error takes it out
    page.goto(server.url)
    page.wait_for_selector("body[data-status=ready]", timeout=60_000)
    yield page
    page.close()
    assert errors == []


def submit(page, sentence: str) -> dict:
    """Type a sentence, press Enter, wait for its overlay tiles; its timing record."""
    record = type_sentence(page, sentence)
    page.wait_for_selector(f"body[data-overlay='{record['id']}'][data-features='{record['id']}']")
    return record


def set_range(page, selector: str, value: float) -> None:
    page.eval_on_selector(
        selector, f"e => {{ e.value = {value}; e.dispatchEvent(new Event('input')); }}"
    )


def map_only(page) -> None:
    """Overlay opaque, markers and polygons hidden: the screenshot shows the tiles alone."""
    set_range(page, "#opacity", 1)
    for box in ("#show-centres", "#show-regions"):
        page.uncheck(box)


_JET = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[None], cv2.COLORMAP_JET)[0]
_VALUE = np.full(1 << 24, -1, np.int16)  # BGR colour -> the map value JET gives it
_VALUE[(_JET[:, 0].astype(int) << 16) | (_JET[:, 1].astype(int) << 8) | _JET[:, 2]] = np.arange(256)


def screen_values(page) -> np.ndarray:
    """The map values the screenshot of the map shows (-1 where a pixel is not a JET colour)."""
    shot = cv2.imdecode(
        np.frombuffer(page.locator("#map").screenshot(), np.uint8), cv2.IMREAD_COLOR
    )
    bgr = shot.astype(np.int64)
    return _VALUE[(bgr[..., 0] << 16) | (bgr[..., 1] << 8) | bgr[..., 2]]


def hot_spot(page, values: np.ndarray, columns: slice = slice(None)) -> tuple[float, float]:
    """The scene (row, col) of the centroid of the hottest screen pixels in ``columns``."""
    part = np.full(values.shape, -1, values.dtype)
    part[:, columns] = values[:, columns]
    hot = part >= part.max() - 8
    ys, xs = np.nonzero(hot)
    x0, y0, x1, y1 = page.evaluate(
        """([h, w]) => {
        const m = window.selo.state.map;
        const a = m.latLngToContainerPoint([0, 0]), b = m.latLngToContainerPoint([-h, w]);
        return [a.x, a.y, b.x, b.y];
    }""",
        list(SHAPE),
    )
    row = (ys.mean() + 0.5 - y0) / (y1 - y0) * SHAPE[0]
    col = (xs.mean() + 0.5 - x0) / (x1 - x0) * SHAPE[1]
    return row, col


def inside(point: tuple[float, float], box: tuple[int, int, int, int]) -> bool:
    r0, r1, c0, c1 = box
    return r0 <= point[0] <= r1 and c0 <= point[1] <= c1


def test_three_sentences_and_a_comparison(page, server):
    map_only(page)
    white = submit(page, "white")
    assert white["cached"] is False and white["ms"] > 0
    assert inside(hot_spot(page, screen_values(page)), WHITE)
    green = submit(page, "green")
    assert inside(hot_spot(page, screen_values(page)), GREEN)
    third = submit(page, "tawny ground")
    assert len({white["id"], green["id"], third["id"]}) == 3
    assert page.locator("#history li").count() == 3
    again = submit(page, "white")  # from the server's cache
    assert again["id"] == white["id"] and again["cached"] is True

    # white on the left of the divider, green on the right
    page.select_option("#compare", value=green["id"])
    page.wait_for_selector(f"body[data-compare='{green['id']}']")
    set_range(page, "#swipe", 0.5)
    values = screen_values(page)
    middle = values.shape[1] // 2
    assert inside(hot_spot(page, values, slice(0, middle - 2)), WHITE)
    assert inside(hot_spot(page, values, slice(middle + 2, None)), GREEN)
    page.click("#flip")  # now green on the left, white on the right
    page.wait_for_selector(f"body[data-overlay='{green['id']}'][data-compare='{white['id']}']")
    flipped = screen_values(page)
    # each side now shows the other map's cool half: the hot spots left the screen
    assert flipped[:, : middle - 2].max() < values[:, : middle - 2].max() - 20
    assert flipped[:, middle + 2 :].max() < values[:, middle + 2 :].max() - 20


def test_the_downloaded_geotiff_equals_the_cli_one(page, server):
    submit(page, "white")
    with page.expect_download() as info:
        page.click("#dl-tif")
    download = info.value
    assert download.suggested_filename == "selo_map-white.tif"
    expected = (server.localized / "q01-white" / "selo_map.tif").read_bytes()
    assert Path(download.path()).read_bytes() == expected
    with page.expect_download() as info:
        page.click("#dl-geojson")
    regions = json.loads(Path(info.value.path()).read_text())
    assert regions == json.loads((server.localized / "q01-white" / "regions.geojson").read_text())


def test_markers_regions_and_cursor(page, server):
    submit(page, "white")
    assert page.locator(".centre-icon").count() >= 1
    assert page.locator("#centres li").count() == page.locator(".centre-icon").count()
    assert page.locator(".leaflet-overlay-pane path").count() >= 1  # the regions
    box = page.locator("#map").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    text = page.inner_text("#cursor")
    assert "row 5" in text and "col 5" in text and "EPSG:32633" in text  # the scene's middle


def test_errors_show_in_the_page(page, server):
    page.evaluate("document.getElementById('sentence').maxLength = 5000")  # past the box's limit
    page.fill("#sentence", "w" * 1500)
    page.press("#sentence", "Enter")
    page.wait_for_function("document.getElementById('error').textContent.length > 0")
    assert "at most 1000" in page.inner_text("#error")
    assert page.errors == [
        "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    ]
    page.errors.clear()


def test_a_run_folder(browser, tmp_path):
    """An airslt run folder: cases listed with metrics, annotation polygons on the map."""
    from scenes import square

    from selo.selo_tasks.cli import main
    from selo.selo_tasks.serve import BackgroundServer
    from selo.selo_tasks.serve.state import ServeState

    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), colour_scene((600, 800))[..., ::-1])
    anno = tmp_path / "anno.json"
    cases = [
        {"caption": "a white block", "jpg_name": "a.png", "points": [square(100, 75, 166)]},
        {"caption": "green field", "jpg_name": "a.png", "points": [square(400, 300, 300)]},
    ]
    anno.write_text(json.dumps(cases))
    out = tmp_path / "run"
    args = ["airslt", "--images", images, "--anno", anno, "--out", out, "--in-process"]
    assert main([str(a) for a in [*args, "--no-profile", "--cache-dir", tmp_path / "c"]]) == 0
    state = ServeState.for_run(out, anno=anno)
    with BackgroundServer(state) as background:
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(background.url)
        page.wait_for_selector("#history li")
        assert page.locator("#history li").count() == 2
        assert "Rmi" in page.inner_text("#history")
        page.click("#history li >> nth=1")
        page.wait_for_selector("body[data-features='case-01']")
        assert "Rmi" in page.inner_text("#metrics")
        assert page.locator("path[stroke='#39ff14']").count() == 1  # the annotation polygon
        assert page.locator("#ask-box").is_hidden()
        page.close()
    state.close()


# --- a collection: the hit list, the Web-Mercator view, a hit opened where it is ---------------


@pytest.fixture(scope="module")
def collection(tmp_path_factory, browser):
    """A server of four scenes (three places in three CRSs and a PNG without) on a free
    port, and `selo search`'s hits of them."""
    from scenes import write_collection

    from selo.selo_tasks.cli import main
    from selo.selo_tasks.options import Options
    from selo.selo_tasks.serve import BackgroundServer
    from selo.selo_tasks.serve.state import ServeState
    from selo.selo_tasks.session import run_session

    root = tmp_path_factory.mktemp("collection")
    folder = write_collection(root / "tiles")
    cache, scales = root / "cache", "128,256"
    args = ["search", folder, "-q", "red roofs", "--top", "4", "--out", root / "search"]
    assert main([str(a) for a in [*args, "--scales", scales, "--cache-dir", cache]]) == 0
    hits = json.loads((root / "search" / "hits.geojson").read_text())["features"]
    options = Options(cache=str(cache), scales=scales, show_progress=False)
    with run_session(options, one_scene=True) as ctx:
        state = ServeState.for_collection(ctx, [folder])
        with BackgroundServer(state) as background:
            yield SimpleNamespace(url=background.url, state=state, hits=hits)
        state.close()


@pytest.fixture
def map_page(browser, collection):
    page = browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    yield page
    page.close()
    assert errors == []


def wait_for_hit(page, rank: int) -> None:
    """Until hit ``rank`` is open: the map moved there and its scene's overlay drawn."""
    page.wait_for_function(
        f"document.body.dataset.hit === '{rank}' && window.selo.state.a"
        " && document.body.dataset.overlay === window.selo.state.a.id",
        timeout=60_000,
    )


def view(page) -> dict:
    return page.evaluate(
        """() => {
        const m = window.selo.state.map, b = m.getBounds();
        return {zoom: m.getZoom(), view: document.body.dataset.view,
                bounds: [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]};
    }"""
    )


def shows(bounds: list[float], lon: float, lat: float) -> bool:
    west, south, east, north = bounds
    return west <= lon <= east and south <= lat <= north


def opened_at(page, p: dict, georeferenced: bool) -> bool:
    """Whether the page shows the hit of properties ``p`` (hits.geojson): in the Web-Mercator
    view at its lon/lat, or in its scene's pixel view at its centre (lat = -row)."""
    on_screen = view(page)
    if georeferenced:
        return on_screen["view"] == "mercator" and shows(on_screen["bounds"], p["lon"], p["lat"])
    return on_screen["view"] == "pixel" and shows(on_screen["bounds"], p["x_px"], -p["y_px"])


def test_a_sentence_lists_the_hits_and_a_hit_opens_where_it_is(map_page, collection):
    page = map_page
    page.goto(collection.url)
    page.wait_for_selector("body[data-status=ready][data-view=mercator]")
    assert page.locator("#scene option").count() == 5  # the map and the four scenes
    page.fill("#sentence", "red roofs")
    page.press("#sentence", "Enter")
    page.wait_for_selector("body[data-searched='1']")
    assert page.locator("#hits li").count() == 4
    names = [h["properties"]["scene"].rsplit("/", 1)[-1] for h in collection.hits]
    assert [t.split(" ")[0] for t in page.locator("#hits li").all_inner_texts()] == names

    # a georeferenced hit: the map flies to it, its scene's map on top, its region outlined
    hit = next(h for h in collection.hits if h["geometry"] is not None)["properties"]
    page.click(f"#hits li[data-rank='{hit['rank']}']")
    wait_for_hit(page, hit["rank"])
    assert opened_at(page, hit, georeferenced=True)
    on_screen = view(page)
    scene = page.evaluate("window.selo.state.scene")
    assert scene["name"] == hit["scene"].rsplit("/", 1)[-1]
    assert on_screen["zoom"] >= scene["mercator"]["zoom"] - 1  # close enough to see the region
    assert page.locator("path[stroke='#ffeb3b']").count() == 1  # the hit's region
    assert page.evaluate("location.hash") == f"#q=red%20roofs&hit={hit['rank']}"
    map_only(page)
    x, y = page.evaluate(
        f"(() => {{ const p = window.selo.state.map.latLngToContainerPoint([{hit['lat']}, "
        f"{hit['lon']}]); return [Math.round(p.x), Math.round(p.y)]; }})()"
    )
    values = screen_values(page)
    assert np.median(values[y - 3 : y + 4, x - 3 : x + 4]) >= 128  # the hot part of the map

    # a hit in the scene without CRS: its pixel view, fitted to the region
    plain = next(h for h in collection.hits if h["geometry"] is None)["properties"]
    page.click(f"#hits li[data-rank='{plain['rank']}']")
    wait_for_hit(page, plain["rank"])
    assert opened_at(page, plain, georeferenced=False)
    assert page.input_value("#scene") == page.evaluate("window.selo.state.scene.id")


def test_a_hit_of_selo_search_opens_at_its_place(map_page, collection):
    """The "Done when" of collection search: each hit of hits.geojson opens in `selo serve`
    at its place, from its ``serve`` link."""
    page = map_page
    for feature in collection.hits:
        p = feature["properties"]
        page.goto(collection.url + p["serve"])
        wait_for_hit(page, p["rank"])
        assert opened_at(page, p, georeferenced=feature["geometry"] is not None)
        assert page.evaluate("window.selo.state.hit.score") == p["score"]
