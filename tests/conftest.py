"""Shared fixtures: running the CLI in-process, tiny annotation files; the hypothesis
profile."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import settings
from scenes import square

# The property tests draw the same examples on every run ("deterministic", the default), so
# a suite that passed once passes again; SELO_HYPOTHESIS=explore draws new ones each run
# (to look for counterexamples; a failure prints the example to pin with @example).
settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("SELO_HYPOTHESIS", "deterministic"))


@pytest.fixture
def run_cli(capsys):
    """Run ``selo ARGS`` in this process; returns (exit code, stdout, stderr)."""
    from selo.selo_tasks.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def airslt_metrics(run_cli):
    """Run ``selo airslt`` in this process over ``images``; returns metrics.csv's rows."""
    import csv

    def run(images, anno: Path, out: Path, cache: Path) -> list[dict]:
        code, _, err = run_cli(
            "airslt", "--images", images, "--anno", anno, "--out", out, "--in-process",
            "--cache-dir", cache, "--no-profile",
        )  # fmt: skip
        assert code == 0, err
        with open(out / "metrics.csv", newline="") as f:
            return list(csv.DictReader(f))

    return run


@pytest.fixture
def small_anno(tmp_path) -> Path:
    """An anno.json with three cases on two 400x300 scenes."""
    cases = [
        {"caption": "a green field", "jpg_name": "a.png", "points": [square(50, 40, 100)]},
        {
            "caption": "a gray roof",
            "jpg_name": "a.png",
            "points": [square(200, 150, 80), square(20, 200, 60)],
        },
        {"caption": "a white plane\n", "jpg_name": "b.png", "points": [square(100, 100, 120)]},
    ]
    path = tmp_path / "anno.json"
    path.write_text(json.dumps(cases))
    return path


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A private selo cache for the test (embeddings, staged scenes)."""
    d = tmp_path / "cache"
    monkeypatch.setenv("SELO_CACHE_DIR", str(d))
    return d


def pytest_collection_modifyitems(config, items):
    """``perf`` tests (timing and memory thresholds, which depend on the machine) run only
    when a marker expression names them (``-m perf``), never in a plain or quick run."""
    if "perf" in (config.getoption("markexpr") or ""):
        return
    perf = [item for item in items if item.get_closest_marker("perf")]
    if perf:
        config.hook.pytest_deselected(items=perf)
        items[:] = [item for item in items if not item.get_closest_marker("perf")]


def pytest_addoption(parser):
    parser.addoption(
        "--fuzz-long",
        action="store_true",
        default=False,
        help="tests/test_fuzz.py: try ten times as many damaged files and random inputs",
    )


@pytest.fixture(scope="session")
def method_runs(tmp_path_factory):
    """Two finished ``selo airslt`` runs of the same four synthetic cases (scenes 0.jpg and
    13.jpg at 0.3 scale), with methods v1 and v2: {"v1": folder, "v2": folder}."""
    from selo.selo_tasks.cli import main
    from selo.selo_tasks.synth import build_synthetic_airslt

    root = tmp_path_factory.mktemp("method-runs")
    synth = build_synthetic_airslt(root / "synth", scale=0.3, cases=[0, 1, 12, 13])
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SELO_CACHE_DIR", str(root / "cache"))
        for method in ("v1", "v2"):
            out = root / method
            args = ["airslt", "--images", synth.images, "--anno", synth.anno, "--out", out]
            code = main([str(a) for a in [*args, "--in-process", "--method", method]])
            assert code == 0
            runs[method] = out
    return runs


@pytest.fixture(scope="session")
def run_folder(tmp_path_factory):
    """A finished `selo airslt` run of three cases on two small scenes, scored with its own
    annotation file: root/run, root/anno.json, root/images."""
    import cv2
    from scenes import colour_scene

    from selo.selo_tasks.cli import main

    root = tmp_path_factory.mktemp("run")
    images = root / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), colour_scene((300, 400))[..., ::-1])
    cv2.imwrite(str(images / "b.png"), colour_scene((300, 400), seed=1)[..., ::-1])
    cases = [
        {"caption": "a white block", "jpg_name": "a.png", "points": [square(50, 37, 83)]},
        {"caption": "green field", "jpg_name": "a.png", "points": [square(200, 150, 150)]},
        {"caption": "a white plane", "jpg_name": "b.png", "points": [square(50, 37, 83)]},
    ]
    anno = root / "anno.json"
    anno.write_text(json.dumps(cases))
    args = ["airslt", "--images", images, "--anno", anno, "--out", root / "run", "--in-process"]
    args += ["--no-profile", "--cache-dir", root / "cache"]
    assert main([str(a) for a in args]) == 0
    return root


# --- servers on 127.0.0.1 (tests/servers.py) ----------------------------------------------------


@pytest.fixture
def http_server(tmp_path):
    """A RangeServer over ``tmp_path/www``: put files in ``http_server.root``."""
    from servers import RangeServer

    with RangeServer(tmp_path / "www") as server:
        yield server


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server for the session (tests/servers.py: S3Server)."""
    pytest.importorskip("moto.server")
    from servers import S3Server

    with S3Server() as server:
        yield server


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    """Azurite's Blob service for the session (tests/servers.py: AzuriteServer); skipped,
    saying so, where Azurite (``SELO_AZURITE`` or ``azurite-blob`` on the PATH: ``npm install
    azurite``, as .ci/run does) or adlfs is not installed."""
    import shutil

    pytest.importorskip("adlfs")
    executable = os.environ.get("SELO_AZURITE") or shutil.which("azurite-blob")
    if not executable:
        pytest.skip("Azurite is not installed (npm install azurite; or SELO_AZURITE=PATH)")
    from servers import AzuriteServer

    with AzuriteServer(executable, tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture
def az_container(azurite, monkeypatch):
    """An empty container of its own for the test, with Azurite's connection string in the
    environment: ``(container name, azure.storage.blob ContainerClient)``."""
    import uuid

    from azure.storage.blob import BlobServiceClient

    for name in ("AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_ACCESS_KEY", "AZURE_STORAGE_SAS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    name = f"selo-{uuid.uuid4().hex[:12]}"
    return name, service.create_container(name)


@pytest.fixture
def s3_bucket(s3_server, monkeypatch):
    """An empty bucket of its own for the test, with the credentials and AWS_ENDPOINT_URL
    of the S3 server in the environment: ``(bucket name, boto3 client, server)``."""
    import uuid

    import boto3

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    client = boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1")
    bucket = f"selo-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    s3_server.reset()
    return bucket, client, s3_server
