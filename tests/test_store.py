"""Caches and outputs on a local disk and in an object store: the same assertions run on a
local folder and on an S3 bucket (moto's server on 127.0.0.1), as zarr's StoreTests do
for its stores. An object store cannot rename, so a folder is complete when its marker,
uploaded last, is there; readers, ``--resume`` and the cache trust nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from scenes import colour_scene, write_geotiff_scene

from selo.errors import OutputError
from selo.pipeline.cache import Cache, EmbeddingKey
from selo.pipeline.scene import open_scene
from selo.pipeline.store import (
    MARKER,
    RemotePath,
    as_path,
    atomic_path,
    atomic_write_text,
    is_complete,
)
from selo.pipeline.windows import window_table

KEY = EmbeddingKey(scene="abc", encoder="color-v1", windows="w1", preprocess="p1")
QUERY = "white roofs"


class Local:
    """A folder on the local disk."""

    def __init__(self, tmp_path: Path) -> None:
        self.base = tmp_path / "store"

    def root(self, name: str) -> Path:
        return self.base / name

    def files(self, root) -> set[str]:
        root = Path(root)
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


class S3:
    """A bucket of moto's S3 server."""

    def __init__(self, bucket: str, client) -> None:
        self.bucket, self.client = bucket, client

    def root(self, name: str) -> RemotePath:
        return RemotePath(f"s3://{self.bucket}/{name}")

    def files(self, root) -> set[str]:
        prefix = str(root).split("/", 3)[3] + "/"
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        return {o["Key"][len(prefix) :] for page in pages for o in page.get("Contents", [])}


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return Local(tmp_path)
    bucket, client, _ = request.getfixturevalue("s3_bucket")
    return S3(bucket, client)


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """This test's own temporary folder for selo's local temporaries (to see what is left)."""
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


# --- locations --------------------------------------------------------------------------------


def test_as_path_knows_object_stores_and_refuses_other_urls(tmp_path):
    assert as_path("s3://b/run/") == RemotePath("s3://b/run")
    assert as_path("/vsis3/b/run") == RemotePath("s3://b/run")
    assert isinstance(as_path("gs://b/c"), RemotePath) and isinstance(
        as_path("az://c/p"), RemotePath
    )
    assert as_path(str(tmp_path)) == tmp_path
    with pytest.raises(OutputError, match="s3://, gs:// or az://"):
        as_path("https://example.com/run")
    p = RemotePath("s3://b/run") / "case_01" / "metrics.json"
    assert (p.name, p.suffix, p.stem) == ("metrics.json", ".json", "metrics")
    assert p.parent == RemotePath("s3://b/run/case_01") and p.with_name("x") == p.parent / "x"
    assert p.relative_to(RemotePath("s3://b/run")).as_posix() == "case_01/metrics.json"
    assert RemotePath("s3://b").parent == RemotePath("s3://b")
    import pickle

    assert pickle.loads(pickle.dumps(p)) == p


# --- atomic writes ---------------------------------------------------------------------------


def test_files_and_folders_appear_whole_or_not_at_all(store, scratch):
    root = store.root("out")
    atomic_write_text(root / "run.json", '{"a": 1}')
    assert (root / "run.json").read_text() == '{"a": 1}'
    with atomic_path(root / "q01", folder=True) as folder:
        folder.mkdir()
        (folder / "a.txt").write_text("a")
        (folder / "sub").mkdir()
        (folder / "sub" / "b.txt").write_text("b")
    assert is_complete(root / "q01")
    assert (root / "q01" / "sub" / "b.txt").read_text() == "b"
    # a failed write leaves nothing new and the old version as it was
    for name, folder in (("run.json", False), ("q01", True)):
        with pytest.raises(RuntimeError), atomic_path(root / name, folder=folder) as tmp:
            tmp.mkdir() if folder else tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert (root / "run.json").read_text() == '{"a": 1}'
    assert (root / "q01" / "a.txt").read_text() == "a" and is_complete(root / "q01")
    # a folder written again replaces the old one: its objects of the old version go
    with atomic_path(root / "q01", folder=True) as folder:
        folder.mkdir()
        (folder / "c.txt").write_text("c")
    expected = {"run.json", "q01/c.txt"}
    if isinstance(root, RemotePath):
        expected.add(f"q01/{MARKER}")
    assert store.files(root) == expected
    assert not any(scratch.iterdir())  # no local temporaries left


def test_a_folder_in_an_object_store_without_its_marker_is_absent(s3_bucket):
    bucket, client, _ = s3_bucket
    folder = RemotePath(f"s3://{bucket}/out/q01")
    client.put_object(Bucket=bucket, Key="out/q01/a.txt", Body=b"a")  # an upload cut short
    assert folder.is_dir() and not is_complete(folder)
    client.put_object(Bucket=bucket, Key=f"out/q01/{MARKER}", Body=b"")
    assert is_complete(folder)


# --- the cache -------------------------------------------------------------------------------


def entry(n: int, value: float):
    table = window_table(300, 300, (128,))
    return table, np.full((len(table), n), value, np.float32), np.ones(len(table), bool)


def test_cache_round_trip_and_key_parts(store):
    cache = Cache(store.root("cache"))
    table, emb, has = entry(5, 0.5)
    emb[0] = np.arange(5)
    assert cache.get_embeddings(KEY, table) is None
    cache.put_embeddings(KEY, table, emb, has)
    got = cache.get_embeddings(KEY, table)
    assert got is not None and np.array_equal(got[0], emb) and got[1].all()
    for field in ("scene", "encoder", "windows", "preprocess"):
        other = EmbeddingKey(**{**KEY.__dict__, field: "changed"})
        assert cache.get_embeddings(other, table) is None
    assert cache.get_embeddings(KEY, window_table(300, 301, (128,))) is None
    assert f"embeddings.zarr/{KEY.id}/zarr.json" in store.files(cache.root)


def test_damaged_or_unfinished_entries_are_made_again(store, caplog):
    cache = Cache(store.root("cache"))
    table, emb, has = entry(3, 1.0)
    cache.put_embeddings(KEY, table, emb, has)
    where = cache.embeddings_path / KEY.id
    (where / "embeddings" / "zarr.json").write_bytes(b"{broken")
    assert cache.get_embeddings(KEY, table) is None
    cache.put_embeddings(KEY, table, emb, has)
    assert cache.get_embeddings(KEY, table) is not None
    # a changed chunk fails the checksum
    (where / "embeddings" / "c" / "0" / "0").write_bytes(b"\0" * 64)
    assert cache.get_embeddings(KEY, table) is None
    # an entry without its marker (an upload cut short, a rename never made) is absent,
    # quietly: nothing to warn about
    cache.put_embeddings(KEY, table, emb, has)
    if isinstance(where, RemotePath):
        (where / "zarr.json").unlink()
    else:
        import shutil

        shutil.rmtree(where)
    caplog.clear()
    assert cache.get_embeddings(KEY, table) is None and not caplog.records
    cache.put_embeddings(KEY, table, emb, has)
    assert np.array_equal(cache.get_embeddings(KEY, table)[0], emb)


def test_staged_copies_live_in_the_cache_and_are_checked(store, tmp_path):
    png = tmp_path / "s.png"
    image = np.random.default_rng(0).integers(0, 256, (600, 700, 3), dtype=np.uint8)
    cv2.imwrite(str(png), image)
    cache = Cache(store.root("cache"))
    first = open_scene(png, cache=cache)
    staged = first.encoding["selo_source"].files[0].location
    assert staged.startswith(str(cache.root / "staged") + "/")
    np.testing.assert_array_equal(first.values, image[:, :, ::-1])
    index = json.loads((cache.root / "scene-keys.json").read_text())
    assert any(k.startswith("staged/") for k in index) and str(png.resolve()) in index
    data = as_path(staged).read_bytes()
    as_path(staged).write_bytes(data[: len(data) // 2])  # cut short under the final name
    again = open_scene(png, cache=cache)
    assert again.encoding["selo_source"].files[0].location == staged
    assert as_path(staged).read_bytes() == data
    np.testing.assert_array_equal(again.values, image[:, :, ::-1])


def test_previews_are_kept_in_the_cache(store):
    cache = Cache(store.root("cache"))
    rgb = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    assert cache.get_preview("abc", (30, 40)) is None
    cache.put_preview("abc", rgb)
    assert cache.preview_path("abc", (30, 40)).parent == cache.root / "previews"
    np.testing.assert_array_equal(cache.get_preview("abc", (30, 40)), rgb)
    assert cache.get_preview("abc", (15, 20)) is None
    cache.preview_path("abc", (30, 40)).write_bytes(b"not a png")
    assert cache.get_preview("abc", (30, 40)) is None


FILL = """
import sys, time
import numpy as np
from selo.pipeline.cache import Cache, EmbeddingKey
from selo.pipeline.scene import open_scene
from selo.pipeline.windows import window_table

root, scene, value, start = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
cache = Cache(root)
key = EmbeddingKey(scene="abc", encoder="color-v1", windows="w1", preprocess="p1")
table = window_table(300, 300, (128,))
emb = np.full((len(table), 4), value, np.float32)
while time.time() < start:
    time.sleep(0.005)
open_scene(scene, cache=cache)  # both stage the same JPEG
for _ in range(8):
    cache.put_embeddings(key, table, emb, np.ones(len(table), bool))
"""


def test_two_processes_filling_one_entry_corrupt_nothing(store, tmp_path):
    """Two processes stage the same scene and write the same cache entry at once (each its
    own values, so that a mixed entry would show) while this one reads it: every read is
    one writer's entry whole or nothing; afterwards the entry is whole or absent and the
    staged copy is whole."""
    import time

    jpeg = tmp_path / "s.jpg"
    image = colour_scene((500, 600))
    cv2.imwrite(str(jpeg), image[:, :, ::-1])
    root = store.root("cache")
    start = time.time() + 6  # both processes past their imports
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", FILL, str(root), str(jpeg), str(v), str(start)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in (1.0, 2.0)
    ]
    cache = Cache(root)
    table = window_table(300, 300, (128,))
    seen = set()
    while any(w.poll() is None for w in writers):
        got = cache.get_embeddings(KEY, table)
        if got is not None:
            values = set(np.unique(got[0]).tolist())
            assert values in ({1.0}, {2.0}), values
            seen.add(values.pop())
        time.sleep(0.01)
    for w in writers:
        assert w.wait() == 0, w.stderr.read()
    final = cache.get_embeddings(KEY, table)
    assert final is None or set(np.unique(final[0]).tolist()) in ({1.0}, {2.0})
    scene = open_scene(jpeg, cache=cache)
    staged = scene.encoding["selo_source"].files[0].location
    assert staged.startswith(str(root / "staged"))
    alone = open_scene(jpeg, cache=Cache(tmp_path / "alone"))  # staged by one process
    np.testing.assert_array_equal(scene.values, alone.values)
    assert seen, "the reader never saw an entry"


# --- run folders -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from selo.selo_tasks.synth import build_synthetic_airslt

    return build_synthetic_airslt(tmp_path_factory.mktemp("synth"), scale=0.2, cases=[0, 1, 12])


def airslt(run_cli, synth, out, cache, *extra) -> None:
    code, _, err = run_cli(
        "airslt", "--images", synth.images, "--anno", synth.anno, "--out", out,
        "--cache-dir", cache, "--in-process", "--no-profile", *extra,
    )  # fmt: skip
    assert code == 0, err


def test_resume_trusts_only_finished_cases(store, run_cli, synth, tmp_path):
    """A case without its metrics.json (written last) is computed again, whatever else of it
    is there; finished cases are kept as they are; the metrics equal an uninterrupted run's."""
    out, cache = store.root("run"), store.root("cache")
    airslt(run_cli, synth, out, cache)
    first = (out / "metrics.csv").read_bytes()
    kept = (out / "case_00" / "metrics.json").read_bytes()
    record = json.loads(kept)
    record["metrics"]["rmi"] = 0.123  # a changed record proves case 0 was not recomputed
    (out / "case_00" / "metrics.json").write_bytes(json.dumps(record).encode())
    (out / "case_01" / "metrics.json").unlink()  # case 1 cut short: its other files remain
    (out / "case_01" / "selo_map.png").write_bytes(b"half a map")
    (out / "metrics.csv").unlink()
    airslt(run_cli, synth, out, cache, "--resume")
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[1].split(",")[-1] == "0.123"  # case 0 kept
    assert rows[2:4] == first.decode().splitlines()[2:4]  # cases 1 and 2 as before
    png = cv2.imdecode(np.frombuffer((out / "case_01" / "selo_map.png").read_bytes(), np.uint8), 0)
    assert png is not None and png.shape == synth.sizes["0.jpg"]
    assert {"run.json", "report.html", "stages.png"} <= store.files(out)


def test_localize_writes_the_same_files(store, run_cli, tmp_path):
    scene = write_geotiff_scene(tmp_path / "s.tif", colour_scene((300, 400)))
    local = tmp_path / "local"
    args = ["localize", scene, "-q", QUERY, "--scales", "128,256", "--profile"]
    code, _, err = run_cli(*args, "--out", local, "--cache-dir", tmp_path / "c")
    assert code == 0, err
    out = store.root("loc")
    code, _, err = run_cli(*args, "--out", out, "--cache-dir", store.root("cache"))
    assert code == 0, err
    names = Local(tmp_path).files(local)
    remote_names = store.files(out) - {f"q01-white-roofs/{MARKER}"}
    assert remote_names == names
    assert "profile.html" in names  # (written by Dask's report, then uploaded)
    for name in names - {"run.json", "profile.html"}:
        assert (out / name).read_bytes() == (local / name).read_bytes(), name
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "complete"
    assert record["outputs"][0]["folder"] == str(out / "q01-white-roofs")
    assert is_complete(out / "q01-white-roofs") and is_complete(out / "maps.zarr" / "q01")
    from selo.pipeline.gnt import CellMap
    from selo.pipeline.store import open_group

    mean = CellMap.from_zarr(open_group(out / "maps.zarr" / "q01", mode="r")["mean"])
    assert mean.to_array().shape == (300, 400)
    assert not os.path.exists("s3:")  # nothing made locally under the URL's name


@pytest.mark.parametrize("command", ["demo --out", "synth-airslt"])
def test_commands_of_local_folders_refuse_a_url(command, run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(*command.split(), "s3://bucket/x")
    assert code == 2 and "writes to a local folder only" in err, err
    assert not any(tmp_path.iterdir())  # nothing made under the URL's name
