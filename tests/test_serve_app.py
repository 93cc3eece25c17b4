"""The web app of `selo serve` (selo_tasks/serve/app.py): tiles equal to `selo localize`'s
files, downloads, JSON errors, safety, concurrency and a bounded load test (its times and
memory thresholds are ``perf`` tests, outside the default run: ``python -m pytest -m perf``)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from scenes import colour_scene, write_geotiff_scene

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from selo.selo_tasks.cli import main  # noqa: E402
from selo.selo_tasks.options import Options  # noqa: E402
from selo.selo_tasks.serve import BackgroundServer, allowed_hosts  # noqa: E402
from selo.selo_tasks.serve.app import MAX_BODY, create_app  # noqa: E402
from selo.selo_tasks.serve.state import MAX_SENTENCE_CHARS, ServeState  # noqa: E402
from selo.selo_tasks.serve.tiles import TILE, TileGrid  # noqa: E402
from selo.selo_tasks.session import run_session  # noqa: E402

SHAPE = (800, 1000)  # not a multiple of 256: edge tiles are cut
SENTENCES = ("white roofs", "green trees")


def decode(png: bytes) -> np.ndarray:
    """Gray as it is; colour as BGRA (palette PNGs and JPEGs have no alpha: opaque)."""
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    if image.ndim == 3 and image.shape[2] == 3:
        image = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    return image


def client_of(state: ServeState) -> TestClient:
    app = create_app(state, allowed_hosts=allowed_hosts("127.0.0.1"))
    return TestClient(app, base_url="http://127.0.0.1")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A server of an 800x1000 colour scene (embedded), and `selo localize`'s files of it."""
    root = tmp_path_factory.mktemp("serve")
    scene = write_geotiff_scene(root / "scene.tif", colour_scene(SHAPE))
    cache = root / "cache"
    args = ["localize", scene, "--out", root / "localize", "--cache-dir", cache]
    for q in SENTENCES:
        args += ["-q", q]
    assert main([str(a) for a in args]) == 0
    options = Options(cache=str(cache), show_progress=False)
    lines: list[str] = []
    with run_session(options, one_scene=True) as ctx:
        state = ServeState.for_scenes(ctx, [scene], report=lines.append)
        state.start_embedding()
        state.wait_embedded(60)
        yield SimpleNamespace(
            root=root,
            scene=scene,
            cache=cache,
            ctx=ctx,
            state=state,
            client=client_of(state),
            lines=lines,
            localized=root / "localize",
        )
        state.close()


def ask(client, sentence: str, scene: str = "s1") -> dict:
    response = client.post(f"/api/scenes/{scene}/maps", json={"sentence": sentence})
    assert response.status_code == 200, response.text
    return response.json()


def test_info_and_scene(served):
    info = served.client.get("/api/info").json()
    assert info["mode"] == "scenes" and info["max_sentence_chars"] == MAX_SENTENCE_CHARS
    (scene,) = info["scenes"]
    assert (scene["id"], scene["height"], scene["width"]) == ("s1", *SHAPE)
    assert scene["crs"] == "EPSG:32633" and scene["zmax"] == 2 and scene["status"] == "ready"
    assert scene["transform"] == [0.5, 0.0, 500000.0, 0.0, -0.5, 4600000.0]
    assert "/api/scenes/s1/tiles/{z}/{x}/{y}.jpg?v=" in scene["tiles"]
    assert str(served.scene) not in json.dumps(info)  # ids, never paths
    assert any("windows" in line and "ready" in line for line in served.lines)
    assert served.client.get("/").headers["content-type"].startswith("text/html")
    assert served.client.get("/static/vendor/leaflet/leaflet.js").status_code == 200


@pytest.mark.parametrize("index", [1, 2])
def test_full_resolution_tiles_equal_the_localize_png(served, index):
    record = ask(served.client, SENTENCES[index - 1])
    folder = next(served.localized.glob(f"q{index:02d}-*"))
    png = cv2.imread(str(folder / "selo_map.png"), cv2.IMREAD_UNCHANGED)
    grid = TileGrid(*SHAPE)
    z = grid.zmax
    across, down = grid.counts(z)
    for x in range(across):
        for y in range(down):
            r0, r1, c0, c1 = grid.window(z, x, y)
            url = record["tiles"].format(z=z, x=x, y=y)
            gray = decode(served.client.get(url, params={"style": "gray"}).content)
            assert gray.shape == (TILE, TILE)
            assert gray[: r1 - r0, : c1 - c0].tobytes() == png[r0:r1, c0:c1].tobytes()
            assert not gray[r1 - r0 :].any() and not gray[:, c1 - c0 :].any()
            jet = decode(served.client.get(url).content)
            colours = cv2.applyColorMap(png[r0:r1, c0:c1], cv2.COLORMAP_JET)
            assert jet[: r1 - r0, : c1 - c0, :3].tobytes() == colours.tobytes()
            assert (jet[: r1 - r0, : c1 - c0, 3] == 255).all()


def test_coarser_tiles_sample_the_localize_png(served):
    record = ask(served.client, SENTENCES[0])
    png = cv2.imread(str(next(served.localized.glob("q01-*")) / "selo_map.png"), 0)
    grid = TileGrid(*SHAPE)
    for z, x, y in [(0, 0, 0), (1, 1, 1), (1, 0, 1)]:
        rows, cols = grid.samples(z, x, y)
        url = record["tiles"].format(z=z, x=x, y=y)
        gray = decode(served.client.get(url, params={"style": "gray"}).content)
        np.testing.assert_array_equal(gray[: len(rows), : len(cols)], png[rows][:, cols])


def test_downloads_equal_what_localize_writes(served):
    record = ask(served.client, SENTENCES[0])
    folder = next(served.localized.glob("q01-*"))
    tif = served.client.get(record["geotiff"])
    assert tif.headers["content-type"] == "image/tiff"
    assert 'filename="selo_map-white-roofs.tif"' in tif.headers["content-disposition"]
    assert tif.content == (folder / "selo_map.tif").read_bytes()
    regions = served.client.get(record["geojson"], params={"download": 1})
    assert "attachment" in regions.headers["content-disposition"]
    assert regions.json() == json.loads((folder / "regions.geojson").read_text())
    kinds = [f["properties"]["kind"] for f in regions.json()["features"]]
    assert kinds[0] == "centre" and "region" in kinds


def test_a_sentence_asked_again_is_the_same_map(served):
    first = ask(served.client, "  a white roof  ")
    again = ask(served.client, "a white roof")
    assert first["id"] == again["id"] and first["sentence"] == "a white roof"
    assert again["cached"] is True
    history = served.client.get("/api/scenes/s1/maps").json()
    assert [h["sentence"] for h in history].count("a white roof") == 1
    assert served.client.get(f"/api/scenes/s1/maps/{first['id']}").json()["id"] == first["id"]


def test_the_encoder_warning_reaches_the_page(served):
    assert "no colour word" in ask(served.client, "planes near the terminal")["warning"]
    assert ask(served.client, "white planes")["warning"] is None


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "message"),
    [
        ("get", "/api/scenes/s9", None, 404, "no scene 's9'"),  # unknown scene
        ("get", "/api/scenes/s9/tiles/0/0/0.jpg", None, 404, "no scene"),
        ("get", "/api/scenes/s1/maps/m0000", None, 404, "no map 'm0000'"),  # unknown map
        ("get", "/api/scenes/s1/maps/m0000/tiles/0/0/0.png", None, 404, "no map"),
        ("get", "/api/scenes/s1/maps/m0000/tiles/0/0/0", None, 404, "not found"),  # no .png
        ("get", "/api/scenes/s1/maps/m0000/selo_map.tif", None, 404, "no map"),
        ("get", "/api/scenes/s1/tiles/3/0/0.jpg", None, 404, "zoom must be 0..2"),
        ("get", "/api/scenes/s1/tiles/2/4/0.jpg", None, 404, "x must be 0..3"),
        ("get", "/api/scenes/s1/tiles/2/0/-1.jpg", None, 404, "and y 0..3"),
        ("get", "/api/scenes/s1/tiles/a/0/0.jpg", None, 422, "z: Input should be a valid integer"),
        ("get", "/api/scenes/s1/tiles/1/0.5/0.jpg", None, 422, "x: Input should be"),
        ("get", "/api/scenes/s1/tiles/1/0/y.jpg", None, 422, "y: Input should be"),
        ("get", "/api/scenes/s1/tiles/1/0/0", None, 404, "not found"),  # no .jpg
        ("get", "/api/scenes/s1/tiles/99999999999999999999/0/0.jpg", None, 404, "no tile"),
        ("post", "/api/scenes/s1/maps", {"sentence": ""}, 422, "the sentence is empty"),
        ("post", "/api/scenes/s1/maps", {"sentence": "   \n"}, 422, "the sentence is empty"),
        ("post", "/api/scenes/s1/maps", {"sentence": "w" * 1001}, 422, "at most 1000"),
        ("post", "/api/scenes/s1/maps", {"sentence": 7}, 422, "must be a JSON string"),
        ("post", "/api/scenes/s1/maps", {"text": "white"}, 422, 'send {"sentence"'),
        ("post", "/api/scenes/s1/maps", ["white"], 422, 'send {"sentence"'),
        ("post", "/api/scenes/s9/maps", {"sentence": "white"}, 404, "no scene"),
        ("get", "/api/nothing", None, 404, "not found: /api/nothing"),
        ("delete", "/api/scenes/s1", None, 405, "Method Not Allowed"),
    ],
)
def test_errors_are_clear_json(served, method, url, body, status, message):
    response = served.client.request(method, url, json=body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"] and response.json()["status"] == status


def test_an_internal_error_answers_an_id_and_logs_the_traceback(served, monkeypatch, caplog):
    """The answer says "internal error" and an id, never the exception's text (it may name
    paths: --host 0.0.0.0 lets others ask); the server's log has the id and the traceback."""
    secret = "/home/someone/secret/scene.tif"

    def broken(sid):
        raise RuntimeError(f"cannot open {secret}")

    monkeypatch.setattr(served.state, "history", broken)
    with caplog.at_level("ERROR", logger="selo.selo_tasks.serve.app"):
        response = served.client.get("/api/scenes/s1/maps")
    assert response.status_code == 500 and response.json()["status"] == 500
    error = response.json()["error"]
    assert error.startswith("internal error (id ") and secret not in response.text
    ident = error.removeprefix("internal error (id ").split(";")[0]
    [record] = [r for r in caplog.records if ident in r.getMessage()]
    assert "GET /api/scenes/s1/maps" in record.getMessage()
    assert record.exc_info and secret in str(record.exc_info[1])  # the traceback, in the log
    assert served.client.get("/api/info").status_code == 200  # the server goes on


def test_selo_errors_answer_their_class_status(served, monkeypatch):
    """Each error class's http_status (errors.py) is the answer's status: no other table."""
    from selo import errors

    classes = [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, errors.SeloError) and c is not errors.SeloError
    ]
    assert {errors.UnknownIdError.http_status, errors.SceneNotReadyError.http_status} == {404, 409}
    for cls in classes:
        error = cls.__new__(cls, "what went wrong")
        error.args = ("what went wrong",)

        def broken(sid, error=error):
            raise error

        monkeypatch.setattr(served.state, "history", broken)
        response = served.client.get("/api/scenes/s1/maps")
        assert response.status_code == cls.http_status, cls
        assert response.json() == {"error": "what went wrong", "status": cls.http_status}


def test_bad_style_and_bad_body(served):
    record = ask(served.client, SENTENCES[0])
    bad = served.client.get(record["tiles"].format(z=0, x=0, y=0), params={"style": "hot"})
    assert bad.status_code == 422 and "style must be jet or gray" in bad.json()["error"]
    broken = served.client.post("/api/scenes/s1/maps", content=b'{"sentence": ')
    assert broken.status_code == 422 and "must be JSON" in broken.json()["error"]
    big = served.client.post("/api/scenes/s1/maps", content=b"x" * (MAX_BODY + 1))
    assert big.status_code == 413 and str(MAX_BODY) in big.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2f..%2f..%2fetc%2fpasswd",
        "/static/vendor/../../state.py",  # package files beside static/ are not served
        "/static/%2e%2e/state.py",
        "/api/scenes/..%2f..%2fetc%2fpasswd",
        "/api/scenes/s1/maps/..%2f..%2fscene.tif/selo_map.tif",
        "/scene.tif",
        "/api/scenes/s1/tiles/0/0/..%2f..%2f0.jpg",
    ],
)
def test_paths_never_reach_the_file_system(served, path):
    response = served.client.get(path)
    assert response.status_code == 404, response.text
    assert b"root:" not in response.content and b"import" not in response.content


def test_other_host_headers_are_refused(served):
    response = served.client.get("/api/info", headers={"host": "attacker.example:8765"})
    assert response.status_code == 400 and "attacker.example" in response.json()["error"]
    assert served.client.get("/api/info", headers={"host": "localhost:8765"}).status_code == 200
    assert allowed_hosts("0.0.0.0") is None  # --host 0.0.0.0: any name reaches it


def test_a_scene_still_embedding_answers_409(served):
    scene = served.state.scenes["s1"]
    scene.status = "embedding"
    try:
        response = served.client.post("/api/scenes/s1/maps", json={"sentence": "white"})
        assert response.status_code == 409 and "embedding" in response.json()["error"]
    finally:
        scene.status = "ready"


def test_sentences_longer_than_the_encoder_reads(served, monkeypatch):
    reason = "the query has 90 tokens but clip reads at most 77"
    monkeypatch.setattr(
        served.ctx.encoder, "too_long", lambda text: reason if "x" in text else None
    )
    response = served.client.post("/api/scenes/s1/maps", json={"sentence": "white x"})
    assert response.status_code == 422 and reason in response.json()["error"]


def test_concurrent_requests_for_a_new_sentence_compute_it_once(served, monkeypatch):
    driver = served.ctx.driver
    calls = []
    original = driver.query_maps

    def counted(requests):
        calls.append([q for _, q in requests])
        time.sleep(0.2)  # the others arrive while it computes
        return original(requests)

    monkeypatch.setattr(driver, "query_maps", counted)
    with ThreadPoolExecutor(8) as pool:
        records = list(pool.map(lambda _: ask(served.client, "white walls"), range(8)))
        record = records[0]
        url = record["tiles"].format(z=2, x=1, y=1)
        tiles = list(pool.map(lambda _: served.client.get(url).content, range(8)))
    assert calls == [["white walls"]]
    assert len({r["id"] for r in records}) == 1 and len(set(tiles)) == 1


def test_evicted_maps_are_computed_again(served, tmp_path):
    one_map = SHAPE[0] * SHAPE[1]
    state = ServeState.for_scenes(served.ctx, [served.scene], cache_bytes=int(2.5 * one_map))
    state.start_embedding()
    state.wait_embedded(60)
    client = client_of(state)
    try:
        records = [ask(client, s) for s in ("white", "green", "tawny", "white roofs")]
        assert len(state.maps) == 2 and state.maps.nbytes <= state.maps.max_bytes
        url = records[3]["tiles"].format(z=2, x=0, y=0)
        before = client.get(url, params={"style": "gray"}).content
        for record in records[:2]:  # "white" and "green" again: "white roofs" is dropped
            client.get(record["tiles"].format(z=0, x=0, y=0))
        assert ("s1", records[3]["id"]) not in state.maps
        assert client.get(url, params={"style": "gray"}).content == before  # computed again
    finally:
        state.close()


@pytest.mark.slow
def test_v2_maps_equal_the_localize_png(served, tmp_path):
    """--method v2 (a second pass of expansion boxes per sentence, Gaussian finish)."""
    out = tmp_path / "v2"
    args = ["localize", served.scene, "-q", "white roofs", "--method", "v2", "--out", out]
    assert main([str(a) for a in [*args, "--cache-dir", served.cache]]) == 0
    png = cv2.imread(str(out / "q01-white-roofs" / "selo_map.png"), cv2.IMREAD_UNCHANGED)
    options = Options(cache=str(served.cache), method="v2", show_progress=False)
    with run_session(options, one_scene=True) as ctx:
        state = ServeState.for_scenes(ctx, [served.scene])
        state.start_embedding()
        state.wait_embedded(60)
        record = ask(client_of(state), "white roofs")
        grid = TileGrid(*SHAPE)
        for x, y in [(0, 0), (3, 3)]:
            r0, r1, c0, c1 = grid.window(grid.zmax, x, y)
            url = record["tiles"].format(z=grid.zmax, x=x, y=y)
            tile = decode(client_of(state).get(url, params={"style": "gray"}).content)
            assert tile[: r1 - r0, : c1 - c0].tobytes() == png[r0:r1, c0:c1].tobytes()
        state.close()


def test_embedding_progress_reaches_the_page(served, tmp_path):
    scene = write_geotiff_scene(tmp_path / "new.tif", colour_scene((600, 700), seed=5))
    state = ServeState.for_scenes(served.ctx, [scene])
    client = client_of(state)
    assert client.get("/api/scenes/s1").json()["status"] == "waiting"
    response = client.post("/api/scenes/s1/maps", json={"sentence": "white"})
    assert response.status_code == 409 and "waiting" in response.json()["error"]
    state.start_embedding()
    state.wait_embedded(60)
    described = client.get("/api/scenes/s1").json()
    progress = described["progress"]
    assert described["status"] == "ready" and progress["what"] == "embedding new.tif"
    assert progress["total"] >= 1 and progress["done"] == progress["total"]
    state.close()


def test_serve_command_errors(run_cli, tmp_path):
    code, _, err = run_cli("serve", tmp_path / "missing.tif")
    assert code == 2 and "missing.tif: not found" in err
    code, _, err = run_cli("serve", tmp_path)  # a folder is a collection: this one is empty
    assert code == 2 and "no scenes found" in err
    code, out, _ = run_cli("serve", "--help")
    assert code == 0 and "--map-cache" in out and "RUN_DIR" in out and "--skip-bad" in out


def test_serve_without_fastapi_says_what_to_install(run_cli, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "fastapi", None)
    scene = write_geotiff_scene(tmp_path / "s.tif", colour_scene((300, 300)))
    code, _, err = run_cli("serve", scene)
    assert code == 2 and "pip install 'selo[serve]'" in err


def test_a_port_in_use_is_a_clear_error(served):
    from selo.errors import OutputError
    from selo.selo_tasks.serve import bind

    taken = bind("127.0.0.1", 0)
    try:
        with pytest.raises(OutputError, match="pass another --port"):
            bind("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()


def test_every_connection_has_tcp_nodelay(served):
    """Every connection has TCP_NODELAY (else Nagle's algorithm and delayed ACKs add 40 ms
    to keep-alive requests): asyncio sets it on sockets made with proto IPPROTO_TCP."""
    import socket

    import httpx

    from selo.selo_tasks.serve import bind

    probe = bind("127.0.0.1", 0)
    assert probe.proto == socket.IPPROTO_TCP
    probe.close()
    with BackgroundServer(served.state) as server, httpx.Client(base_url=server.url) as client:
        for _ in range(3):  # one connection, kept alive
            assert client.get("/api/info").status_code == 200
        connections = server.server.server_state.connections
        assert connections
        for connection in connections:
            sock = connection.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


@pytest.mark.perf
def test_keep_alive_requests_are_not_delayed(served):
    """The time the TCP_NODELAY test is about: a tile over a kept-alive connection in well
    under Nagle's 40 ms (a timing threshold: ``python -m pytest -m perf`` runs it)."""
    import statistics

    import httpx

    with BackgroundServer(served.state) as server, httpx.Client(base_url=server.url) as client:
        record = client.post("/api/scenes/s1/maps", json={"sentence": "white"}).json()
        seconds = []
        for _ in range(20):  # one connection, kept alive
            t0 = time.perf_counter()
            assert client.get(record["tiles"].format(z=2, x=1, y=1)).status_code == 200
            seconds.append(time.perf_counter() - t0)
    assert statistics.median(seconds) < 0.03


# --- a bounded load test against a real server -----------------------------------------------


def rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def run_load(served) -> dict:
    """50 new sentences at once and 2,000 tile requests (32 at a time) from httpx against
    uvicorn, /api/info asked meanwhile; the answers, the map cache after, the times and the
    peak memory growth of this process."""
    import asyncio

    import httpx

    cache_bytes = 64 * 2**20  # the 50 maps of this scene (0.8 MB each) and their cells
    state = ServeState.for_scenes(served.ctx, [served.scene], cache_bytes=cache_bytes)
    state.start_embedding()
    state.wait_embedded(60)
    colours = ("white", "green", "red", "blue", "tawny", "gray", "black", "yellow", "brown")
    sentences = [f"{colours[i % len(colours)]} thing number {i}" for i in range(50)]
    grid = TileGrid(*SHAPE)
    rng = np.random.default_rng(0)
    peak = [rss()]
    start_rss = peak[0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.05)

    async def load(url: str) -> dict:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
            pings: list[float] = []
            busy = True

            async def ping() -> None:
                while busy:
                    t0 = time.perf_counter()
                    assert (await client.get("/api/info")).status_code == 200
                    pings.append(time.perf_counter() - t0)
                    await asyncio.sleep(0.05)

            pinger = asyncio.create_task(ping())
            posts = await asyncio.gather(
                *(client.post("/api/scenes/s1/maps", json={"sentence": s}) for s in sentences)
            )
            assert [p.status_code for p in posts] == [200] * 50
            ids = [p.json()["id"] for p in posts]
            gate = asyncio.Semaphore(32)

            async def tile(i: int) -> int:
                z = int(rng.integers(0, grid.zmax + 1))
                across, down = grid.counts(z)
                x, y = int(rng.integers(0, across)), int(rng.integers(0, down))
                mid = ids[int(rng.integers(0, len(ids)))]
                path = f"/api/scenes/s1/maps/{mid}/tiles/{z}/{x}/{y}.png"
                if i % 4 == 0:
                    path = f"/api/scenes/s1/tiles/{z}/{x}/{y}.jpg"
                async with gate:
                    response = await client.get(path)
                assert response.headers["content-type"] in ("image/png", "image/jpeg")
                return response.status_code

            t0 = time.perf_counter()
            codes = await asyncio.gather(*(tile(i) for i in range(2000)))
            seconds = time.perf_counter() - t0
            busy = False
            await pinger
            return {"codes": codes, "pings": sorted(pings), "tile_seconds": seconds}

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with BackgroundServer(state) as server:
            t0 = time.perf_counter()
            result = asyncio.run(load(server.url))
            result["wall"] = time.perf_counter() - t0
    finally:
        stop.set()
        sampler.join()
        state.close()
    result.update(maps=len(state.maps), nbytes=state.maps.nbytes, cache_bytes=cache_bytes)
    result["growth"] = peak[0] - start_rss
    return result


@pytest.mark.slow
def test_load_50_new_sentences_and_2000_tiles(served):
    """Under load every request is answered, /api/info too, and the map cache stays within
    its bound."""
    result = run_load(served)
    assert result["codes"] == [200] * 2000
    assert result["maps"] <= 50 and result["nbytes"] <= result["cache_bytes"]
    assert result["pings"]  # /api/info answered while the maps were computed


@pytest.mark.perf
def test_load_latency_and_memory(served):
    """The same load's times and memory against thresholds (``python -m pytest -m perf``)."""
    result = run_load(served)
    pings = result["pings"]
    assert pings and pings[-1] < 5.0, f"/api/info took up to {pings[-1]:.2f} s under load"
    assert pings[len(pings) // 2] < 1.0
    growth = result["growth"]
    assert growth < 512 * 2**20, f"memory grew by {growth / 2**20:.0f} MiB"
    print(
        f"load: {result['wall']:.1f} s, 2000 tiles in {result['tile_seconds']:.1f} s, "
        f"/api/info median {pings[len(pings) // 2] * 1000:.0f} ms max {pings[-1] * 1000:.0f} ms, "
        f"memory +{growth / 2**20:.0f} MiB"
    )


def test_file_stems_follow_localize(served):
    assert ask(served.client, "White Roofs!")["file_stem"] == "white-roofs"
    assert Path(ask(served.client, "white")["geotiff"]).name == "selo_map.tif"
