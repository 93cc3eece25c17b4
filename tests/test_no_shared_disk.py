"""A Dask cluster that shares no disk with the client: ``selo airslt`` with its images, cache
and run folder in an object store (moto's S3 server on 127.0.0.1) gives the metrics of a
local run, and a worker killed mid-run changes nothing.

How the test keeps the cluster off the client's disk: the scheduler and the workers run as
``dask scheduler`` / ``dask worker`` processes, each started by ``unshare --mount`` in a
mount namespace of its own with a fresh, empty tmpfs mounted over the test session's
temporary folder (pytest's base temporary folder, under ``/tmp``), which is also their
``TMPDIR``. Everything the test and the selo client write locally (the synthetic AIR-SLT,
the annotation file, the local run it is compared with, and every temporary: the client's
``TMPDIR`` is a folder in there too) is in that folder, so no worker can read any of it —
the test checks that a marker file the client put there is invisible to every worker and
to the scheduler — and whatever a worker writes to its own temporary folder (selo's
temporaries before an upload, Dask's spill folder) is invisible to the client. The only
way between them is the S3 endpoint (loopback networking is shared: the namespaces are
mount namespaces only). Only that folder is hidden, not all of ``/tmp``, so that a
checkout or virtual environment under ``/tmp`` stays visible to the workers, as selo's
installation would be on a cluster's machines. Needs root (or user namespaces) for
``unshare --mount``: skipped, saying so, where it is not permitted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from servers import free_port, wait_for_port

pytestmark = pytest.mark.slow

CASES = (0, 1, 2, 3, 17, 18, 19, 25, 26, 53, 54, 55)  # the demo's: four scenes
SCALE = 0.2
# a private, empty tmpfs over the folder named by SELO_HIDE, which is also the TMPDIR
ISOLATE = 'mount -t tmpfs tmpfs "$SELO_HIDE" && export TMPDIR="$SELO_HIDE" && exec "$@"'


def _unshare_problem(hide: Path) -> str | None:
    """Why this machine cannot give a process a private ``hide`` folder, or None."""
    if shutil.which("unshare") is None:
        return "the unshare command (util-linux) is not installed"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", ISOLATE, "sh", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "SELO_HIDE": str(hide)},
    )
    if probe.returncode != 0:
        return f"unshare --mount is not permitted here ({probe.stderr.strip() or probe.returncode})"
    return None


def isolated(*command: str, hide: Path, log: Path) -> subprocess.Popen:
    """``command`` in a mount namespace of its own with an empty tmpfs over ``hide`` (its
    TMPDIR too)."""
    with log.open("w") as out:
        return subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", ISOLATE, "sh", *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as one below
            env={**os.environ, "SELO_HIDE": str(hide)},
        )


@pytest.fixture
def hidden(tmp_path_factory, monkeypatch) -> Path:
    """The folder the cluster cannot see: the session's temporary root, holding every file
    of the test and the client's temporaries (its TMPDIR, in this process too)."""
    root = tmp_path_factory.getbasetemp()
    client_tmp = root / "client-tmp"
    client_tmp.mkdir(exist_ok=True)
    monkeypatch.setenv("TMPDIR", str(client_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(client_tmp))
    return root


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def objects(client, bucket: str, prefix: str) -> set[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


@pytest.fixture
def no_disk_cluster(s3_bucket, tmp_path, hidden):
    """``tcp://`` address of a scheduler and two single-threaded workers (with nannies), each
    in its own mount namespace where the ``hidden`` folder is a private tmpfs (see the
    module), started with the S3 endpoint and credentials of ``s3_bucket`` in their
    environment, as a cluster's machines would have theirs."""
    problem = _unshare_problem(hidden)
    if problem is not None:
        pytest.skip(f"needs a private temporary folder per process: {problem}")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).with_name("dask"))  # the dask command of this environment
    processes = [
        isolated(
            dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
            "--dashboard-address", ":0", hide=hidden, log=tmp_path / "scheduler.log",
        ),
    ]  # fmt: skip
    try:
        from distributed import Client

        if not wait_for_port(port, processes[0], 60):
            pytest.fail((tmp_path / "scheduler.log").read_text())
        processes.append(
            isolated(
                dask, "worker", address, "--nworkers", "2",
                "--nthreads", "1", "--memory-limit", "0", "--dashboard-address", ":0",
                hide=hidden, log=tmp_path / "workers.log",
            )
        )  # fmt: skip
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for process in reversed(processes):
            stop(process)


def test_airslt_on_a_cluster_without_a_shared_disk(
    no_disk_cluster, s3_bucket, run_cli, tmp_path, hidden
):
    from distributed import Client

    from selo.selo_tasks.cli import main
    from selo.selo_tasks.synth import build_synthetic_airslt

    bucket, s3, _ = s3_bucket
    synth = build_synthetic_airslt(tmp_path / "synth", scale=SCALE, cases=CASES)
    for image in Path(synth.images).iterdir():
        s3.upload_file(str(image), bucket, f"imgs/{image.name}")

    # the cluster cannot see the client's files (nor the synthetic set among them)
    assert tmp_path.is_relative_to(hidden) and Path(tempfile.gettempdir()).is_relative_to(hidden)
    marker = tmp_path / "only-the-client-sees-this"
    marker.write_text("x")
    with Client(no_disk_cluster, timeout=60) as client:
        seen = client.run(os.path.exists, str(marker))
        assert len(seen) == 2 and not any(seen.values())
        assert client.run_on_scheduler(os.path.exists, str(marker)) is False
        assert not any(client.run(os.path.exists, str(synth.anno)).values())
        workers = client.run(os.getpid)

    # local paths the workers cannot see are refused before any work, naming one
    code, _, err = run_cli("airslt", "--anno", synth.anno, "--images", f"s3://{bucket}/imgs",
                           "--cache-dir", f"s3://{bucket}/cache", "--out", tmp_path / "here",
                           "--scheduler", no_disk_cluster)  # fmt: skip
    assert code == 2 and f"{tmp_path / 'here'}: the workers of" in err, err
    assert objects(s3, bucket, "cache/staged/") == set()  # refused before staging anything

    local = tmp_path / "local"
    args = ["airslt", "--anno", synth.anno, "--no-profile"]
    here = ["--images", synth.images, "--out", local / "run", "--cache-dir", local / "cache"]
    assert main([str(a) for a in [*args, *here, "--in-process"]]) == 0

    run = f"s3://{bucket}/run"
    there = ["--images", f"s3://{bucket}/imgs", "--cache-dir", f"s3://{bucket}/cache"]
    command = [sys.executable, "-m", "selo", *args, *there, "--out", run]
    command += ["--scheduler", no_disk_cluster]
    with (tmp_path / "client.log").open("w") as log:
        client_run = subprocess.Popen([str(a) for a in command], stdout=log, stderr=log)
    try:
        # a worker SIGKILLed once the first case is finished, long before the run is
        deadline = time.monotonic() + 300
        while not any(k.endswith("/metrics.json") for k in objects(s3, bucket, "run/case_")):
            assert client_run.poll() is None, (tmp_path / "client.log").read_text()
            assert time.monotonic() < deadline, "no case finished in 300 s"
            time.sleep(0.05)
        victim = next(iter(workers.values()))
        os.kill(victim, signal.SIGKILL)
        finished = {k for k in objects(s3, bucket, "run/") if k.endswith("metrics.json")}
        assert "run/metrics.csv" not in objects(s3, bucket, "run/")
        assert len(finished) < len(CASES), "the run finished before the worker was killed"
        assert client_run.wait(300) == 0, (tmp_path / "client.log").read_text()
    finally:
        if client_run.poll() is None:
            client_run.kill()
            client_run.wait()

    remote_csv = s3.get_object(Bucket=bucket, Key="run/metrics.csv")["Body"].read()
    assert remote_csv == (local / "run" / "metrics.csv").read_bytes()
    record = json.loads(s3.get_object(Bucket=bucket, Key="run/run.json")["Body"].read())
    assert record["status"] == "complete" and record["scored"] == len(CASES)
    assert record["cluster"]["address"] == no_disk_cluster
    keys = objects(s3, bucket, "")
    for index in range(len(CASES)):
        for name in ("metrics.json", "selo_map.png", "overlay.png", "windows.csv"):
            assert f"run/case_{index:02d}/{name}" in keys
        local_map = (local / "run" / f"case_{index:02d}" / "selo_map.png").read_bytes()
        remote_map = s3.get_object(Bucket=bucket, Key=f"run/case_{index:02d}/selo_map.png")
        assert remote_map["Body"].read() == local_map
    assert {"run/report.html", "run/stages.png"} <= keys
    # the JPEG scenes were staged into the bucket (what the workers read), not on a disk
    assert sum(k.startswith("cache/staged/") for k in keys) == 4
    with Client(no_disk_cluster, timeout=60) as client:  # the nanny started a new worker
        client.wait_for_workers(2, timeout=60)
        pids = set(client.run(os.getpid).values())
        assert len(pids) == 2 and victim not in pids

    # selo localize on the same cluster: the local map, its files in the bucket
    scene = ["localize", "-q", "a white house", "--scales", "128,256"]
    code, _, err = run_cli(*scene, Path(synth.images) / "0.jpg", "--out", local / "loc",
                           "--cache-dir", local / "cache")  # fmt: skip
    assert code == 0, err
    there = ["--out", f"s3://{bucket}/loc", "--cache-dir", f"s3://{bucket}/cache"]
    there += ["--scheduler", no_disk_cluster]
    code, _, err = run_cli(*scene, f"s3://{bucket}/imgs/0.jpg", *there)
    assert code == 0, err
    (folder,) = (local / "loc").glob("q01-*")
    for name in ("selo_map.png", "selo_map.tif", "windows.csv", "regions.geojson"):
        remote_file = s3.get_object(Bucket=bucket, Key=f"loc/{folder.name}/{name}")
        assert remote_file["Body"].read() == (folder / name).read_bytes(), name
