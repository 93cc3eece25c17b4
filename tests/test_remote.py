"""Remote scenes: URLs (HTTP and S3, served on 127.0.0.1 by tests/servers.py) read window
by window give the local maps byte for byte, fetch each byte about once, and are embedded
again exactly when the object changed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
import rasterio.shutil
from scenes import colour_scene, write_geotiff_scene

from selo.pipeline import remote
from selo.pipeline.source import locate_scenes

QUERY = "white roofs"
SCALES = ("--scales", "256,512")
OUTPUTS = ("selo_map.png", "selo_map.tif", "windows.csv", "regions.geojson")


def write_cog(path: Path, rgb: np.ndarray) -> Path:
    """A Cloud-Optimized GeoTIFF (512-pixel tiles, DEFLATE, overviews) of an (H, W, 3) image."""
    plain = path.with_name(path.stem + "-plain.tif")
    write_geotiff_scene(plain, rgb)
    rasterio.shutil.copy(plain, path, driver="COG", compress="deflate", blocksize=512)
    plain.unlink()
    return path


def localize(run_cli, scene, out: Path, cache: Path, *extra, query=QUERY) -> dict:
    code, _, err = run_cli(
        "localize", scene, "-q", query, "--out", out, "--cache-dir", cache, *SCALES, *extra
    )
    assert code == 0, err
    return json.loads((out / "run.json").read_text())


def same_outputs(a: Path, b: Path) -> None:
    (qa,), (qb,) = list(a.glob("q01-*")), list(b.glob("q01-*"))
    for name in OUTPUTS:
        assert (qa / name).read_bytes() == (qb / name).read_bytes(), name


@pytest.fixture(scope="module")
def cog(tmp_path_factory) -> Path:
    return write_cog(tmp_path_factory.mktemp("cog") / "scene.tif", colour_scene((700, 900)))


@pytest.fixture(scope="module")
def local_run(cog, tmp_path_factory, request) -> Path:
    """The local map of the COG: what every remote run must give."""
    from selo.selo_tasks.cli import main

    root = tmp_path_factory.mktemp("local")
    args = ["localize", cog, "-q", QUERY, "--out", root / "out", "--cache-dir", root / "cache"]
    assert main([str(a) for a in [*args, *SCALES]]) == 0
    return root / "out"


def test_http_scene_gives_the_local_map(run_cli, http_server, cog, local_run, tmp_path):
    shutil.copy(cog, http_server.root / "scene.tif")
    record = localize(run_cli, http_server.url("scene.tif"), tmp_path / "out", tmp_path / "c")
    same_outputs(tmp_path / "out", local_run)
    assert record["scene"] == http_server.url("scene.tif")
    assert http_server.bytes_sent() <= cog.stat().st_size  # range reads, never the file twice


def test_s3_scene_gives_the_local_map(run_cli, s3_bucket, cog, local_run, tmp_path):
    bucket, client, server = s3_bucket
    client.upload_file(str(cog), bucket, "imgs/scene.tif")
    server.reset()
    localize(run_cli, f"s3://{bucket}/imgs/scene.tif", tmp_path / "out", tmp_path / "c")
    same_outputs(tmp_path / "out", local_run)
    assert 0 < server.bytes_sent() <= cog.stat().st_size
    # the same object through GDAL's own path
    localize(run_cli, f"/vsis3/{bucket}/imgs/scene.tif", tmp_path / "vsi", tmp_path / "c")
    same_outputs(tmp_path / "vsi", local_run)


def test_az_scene_gives_the_local_map(run_cli, az_container, cog, local_run, tmp_path):
    container, client = az_container
    with open(cog, "rb") as f:
        client.upload_blob("imgs/scene.tif", f)
    localize(run_cli, f"az://{container}/imgs/scene.tif", tmp_path / "out", tmp_path / "c")
    same_outputs(tmp_path / "out", local_run)
    localize(run_cli, f"/vsiaz/{container}/imgs/scene.tif", tmp_path / "vsi", tmp_path / "c")
    same_outputs(tmp_path / "vsi", local_run)


def test_az_cache_and_outputs_give_the_local_files_and_exit_cleanly(
    az_container, cog, local_run, tmp_path
):
    """The `selo` program with its scene, cache and outputs in Azure Blob Storage: the local
    run's files, the second query from the cache in the container, and no traceback as the
    process exits (adlfs closes its clients on zarr's stopped loop: zarr-python#4221)."""
    container, client = az_container
    with open(cog, "rb") as f:
        client.upload_blob("imgs/scene.tif", f)
    base = f"az://{container}"
    for out in ("run", "again"):
        done = subprocess.run(
            [sys.executable, "-c", "from selo.selo_tasks.cli import main; main()", "localize",
             f"{base}/imgs/scene.tif", "-q", QUERY, *SCALES,
             "--cache-dir", f"{base}/cache", "--out", f"{base}/{out}"],
            capture_output=True, text=True, timeout=300, env={**os.environ, "NO_COLOR": "1"},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr and "Loop is not running" not in done.stderr
    names = {b.name for b in client.list_blobs()}
    (folder,) = {n.split("/")[1] for n in names if n.startswith("run/q01-")}
    assert f"run/{folder}/_SUCCESS" in names
    assert any(n.startswith("cache/embeddings.zarr/") for n in names)
    (local,) = local_run.glob("q01-*")
    for name in OUTPUTS:
        got = client.download_blob(f"run/{folder}/{name}").readall()
        assert got == (local / name).read_bytes(), name
    record = json.loads(client.download_blob("again/run.json").readall())
    assert record["windows_cached"], record  # the second query: embeddings from the container


def test_gdal_archive_path_gives_the_local_map(run_cli, cog, local_run, tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        z.write(cog, "inner/scene.tif")
    location = f"/vsizip/{tmp_path / 'a.zip'}/inner/scene.tif"
    localize(run_cli, location, tmp_path / "out", tmp_path / "c")
    same_outputs(tmp_path / "out", local_run)


def _block_spans(path: Path) -> list[tuple[int, int]]:
    """[first, last] bytes of every full-resolution pixel block of a GeoTIFF."""
    spans = []
    with rasterio.open(path) as ds:
        rows, cols = ds.block_shapes[0]
        for j in range(-(-ds.height // rows)):
            for i in range(-(-ds.width // cols)):
                offset = int(ds.get_tag_item(f"BLOCK_OFFSET_{i}_{j}", "TIFF", bidx=1))
                size = int(ds.get_tag_item(f"BLOCK_SIZE_{i}_{j}", "TIFF", bidx=1))
                spans.append((offset, offset + size - 1))
    return spans


GDAL_CHUNK = 16384  # GDAL reads a remote file in chunks of this size (CPL_VSIL_CURL_CHUNK_SIZE)


@pytest.mark.slow
def test_remote_cog_is_fetched_once_and_not_again_for_a_new_query(http_server, tmp_path):
    """A first query on a 4000² COG fetches at most 1.25x the file; a second query, on the
    cached embeddings in a new process (GDAL's caches empty), fetches no pixel bytes: only
    the header's first chunk (which in a COG runs into the smallest overview's data)."""
    cog = write_cog(http_server.root / "big.tif", colour_scene((4000, 4000)))
    url, cache = http_server.url("big.tif"), tmp_path / "cache"

    def run(out: str, query: str) -> dict:
        proc = subprocess.run(
            [sys.executable, "-m", "selo", "localize", url, "-q", query, "--out",
             str(tmp_path / out), "--cache-dir", str(cache), "--scales", "512,1024"],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return json.loads((tmp_path / out / "run.json").read_text())

    first = run("first", "white roofs")
    assert not first["windows_cached"]
    assert http_server.bytes_sent() <= 1.25 * cog.stat().st_size
    http_server.reset()
    second = run("second", "green trees")
    assert second["windows_cached"]
    blocks = _block_spans(cog)
    for r in http_server.requests:
        if r.sent:
            assert r.first is not None and r.last < GDAL_CHUNK, r  # the header chunk only
            assert not [b for b in blocks if b[0] <= r.last and r.first <= b[1]], r


def test_changed_object_is_embedded_again(run_cli, http_server, tmp_path):
    """Identity = URL + ETag/Last-Modified/size: the same object is not embedded again, a
    changed one is (and GDAL does not serve the old bytes from its cache)."""
    path = write_cog(http_server.root / "s.tif", colour_scene((400, 500), seed=1))
    url, cache = http_server.url("s.tif"), tmp_path / "cache"
    assert not localize(run_cli, url, tmp_path / "a", cache)["windows_cached"]
    assert localize(run_cli, url, tmp_path / "b", cache)["windows_cached"]
    changed = colour_scene((400, 500), seed=2)
    changed[:100, :100] = (255, 255, 255)
    write_cog(path, changed)
    assert not localize(run_cli, url, tmp_path / "c", cache)["windows_cached"]
    local = write_cog(tmp_path / "changed.tif", changed)
    localize(run_cli, local, tmp_path / "d", tmp_path / "cache-local")
    same_outputs(tmp_path / "c", tmp_path / "d")


def test_remote_jpeg_is_staged_once(run_cli, http_server, tmp_path):
    image = colour_scene((300, 400))
    path = http_server.root / "s.jpg"
    cv2.imwrite(str(path), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    url, cache = http_server.url("s.jpg"), tmp_path / "cache"
    localize(run_cli, url, tmp_path / "a", cache)
    assert http_server.bytes_sent() <= 2 * path.stat().st_size  # the header, then one download
    assert len(list((cache / "staged").glob("*.tif"))) == 1
    http_server.reset()
    assert localize(run_cli, url, tmp_path / "b", cache, query="green")["windows_cached"]
    assert http_server.bytes_sent() < path.stat().st_size  # the header only: the copy is kept
    localize(run_cli, path, tmp_path / "local", tmp_path / "cache-local")
    same_outputs(tmp_path / "a", tmp_path / "local")


def test_airslt_reads_its_images_from_an_s3_prefix(airslt_metrics, s3_bucket, tmp_path):
    from selo.selo_tasks.synth import build_synthetic_airslt

    bucket, client, _ = s3_bucket
    synth = build_synthetic_airslt(tmp_path / "synth", scale=0.2, cases=[0, 12])
    for image in synth.images.iterdir():
        client.upload_file(str(image), bucket, f"imgs/{image.name}")
    runs = {}
    for name, images in (("local", synth.images), ("s3", f"s3://{bucket}/imgs")):
        runs[name] = airslt_metrics(images, synth.anno, tmp_path / name, tmp_path / f"cache-{name}")
    assert runs["s3"] == runs["local"]


def test_locating_scenes_under_an_http_prefix(http_server):
    """An index page lists the prefix; without one, each name is asked for (HEAD)."""
    (http_server.root / "imgs").mkdir()
    for name in ("0.jpg", "1.jpg"):
        (http_server.root / "imgs" / name).write_bytes(b"x")
    prefix = http_server.url("imgs")
    found = locate_scenes(prefix, ["0.jpg", "1.jpg", "2.jpg"])
    assert sorted(found) == ["0.jpg", "1.jpg"]
    assert found["1.jpg"].location == prefix + "/1.jpg"
    http_server.listing = False
    http_server.reset()
    assert sorted(locate_scenes(prefix, ["0.jpg", "2.jpg"])) == ["0.jpg"]
    assert [r.method for r in http_server.requests].count("HEAD") >= 2


def test_serve_answers_sentences_on_a_url_scene(http_server, cog, local_run, tmp_path):
    pytest.importorskip("fastapi")
    from selo.selo_tasks.options import Options
    from selo.selo_tasks.serve.state import ServeState
    from selo.selo_tasks.session import run_session

    shutil.copy(cog, http_server.root / "scene.tif")
    options = Options(cache=str(tmp_path / "cache"), show_progress=False, scales="256,512")
    with run_session(options, one_scene=True) as ctx:
        state = ServeState.for_scenes(ctx, [http_server.url("scene.tif")])
        state.start_embedding()
        state.wait_embedded(120)
        try:
            (served,) = state.scenes.values()
            assert served.status == "ready", served.error
            spec = state.add_sentence(served.id, QUERY)
            entry = state.map(served.id, spec.id)
        finally:
            state.close()
    (folder,) = list(local_run.glob("q01-*"))
    expected = cv2.imread(str(folder / "selo_map.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(entry.finished, expected)


# --- credentials and endpoints -----------------------------------------------------------------


def test_endpoint_and_credentials_map_to_gdal_and_fsspec(monkeypatch):
    for name in ("AWS_S3_ENDPOINT", "AWS_HTTPS", "AWS_VIRTUAL_HOSTING", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("GDAL_HTTP_LOW_SPEED_TIME", "7")
    before = dict(os.environ)
    options = remote.gdal_options()
    assert options["AWS_S3_ENDPOINT"] == "127.0.0.1:9000"
    assert (options["AWS_HTTPS"], options["AWS_VIRTUAL_HOSTING"]) == ("NO", "FALSE")
    assert "GDAL_HTTP_LOW_SPEED_TIME" not in options  # the user's own setting stays theirs
    assert (
        options["GDAL_HTTP_CONNECTTIMEOUT"]
        == remote.DEFAULT_GDAL_OPTIONS["GDAL_HTTP_CONNECTTIMEOUT"]
    )
    s3 = remote.storage_options("s3://b/k")
    assert s3["endpoint_url"] == "http://127.0.0.1:9000"
    assert s3["config_kwargs"]["read_timeout"] == 7.0
    http = remote.storage_options("https://example.org/x.tif")
    assert http["client_kwargs"]["timeout"].sock_read == 7.0
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://minio.example:9443/")
    monkeypatch.setenv("AWS_VIRTUAL_HOSTING", "TRUE")
    options = remote.gdal_options()
    assert options["AWS_S3_ENDPOINT"] == "minio.example:9443" and options["AWS_HTTPS"] == "YES"
    assert "AWS_VIRTUAL_HOSTING" not in options
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.delenv("AWS_VIRTUAL_HOSTING")
    assert dict(os.environ) == before  # nothing here touches the environment


@pytest.mark.parametrize(
    ("location", "gdal", "url"),
    [
        ("https://h/a/b.tif", "/vsicurl/https://h/a/b.tif", "https://h/a/b.tif"),
        ("s3://bucket/k/x.tif", "/vsis3/bucket/k/x.tif", "s3://bucket/k/x.tif"),
        ("gs://bucket/x.tif", "/vsigs/bucket/x.tif", "gs://bucket/x.tif"),
        ("az://container/x.tif", "/vsiaz/container/x.tif", "az://container/x.tif"),
        ("/vsis3/bucket/x.tif", "/vsis3/bucket/x.tif", "s3://bucket/x.tif"),
        ("/vsicurl/http://h/x.tif", "/vsicurl/http://h/x.tif", "http://h/x.tif"),
        ("/data/x.tif", "/data/x.tif", None),
    ],
)
def test_locations_map_to_gdal_paths_and_urls(location, gdal, url):
    assert remote.gdal_path(location) == gdal
    assert remote.url_of(location) == url
    assert remote.is_remote(location) == (url is not None)
