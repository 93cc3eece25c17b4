"""Faults: a worker killed mid-run, a run interrupted and resumed — results unchanged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from selo.selo_tasks.airslt import AirsltOptions, run_cases
from selo.selo_tasks.options import Options
from selo.selo_tasks.session import build_context
from selo.selo_tasks.synth import build_synthetic_airslt

pytestmark = pytest.mark.slow

CASES = [0, 1, 2, 3, 12, 13, 14]  # scenes 0.jpg and 13.jpg


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return build_synthetic_airslt(tmp_path_factory.mktemp("synth"), scale=0.5, cases=CASES)


def metrics_of(results):
    return [(r.case.index, r.metrics) for r in results]


def run_with(cluster, synth, out: Path, cache: Path):
    options = Options(cache=str(cache), chunk=512, batch=8, show_progress=False)
    ctx = build_context(options, cluster)
    return run_cases(ctx, synth.cases, AirsltOptions(images=synth.images, out=out))[0]


def test_killed_worker_does_not_change_results(synth, tmp_path):
    from selo.cluster import connect

    with connect(processes=False) as cluster:
        expected = metrics_of(run_with(cluster, synth, tmp_path / "clean", tmp_path / "cache-a"))

    killed = []
    with connect(workers=2, threads=1) as cluster:
        client = cluster.client
        pids = client.run(os.getpid)

        def assassin():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not killed:
                for addr, keys in client.processing().items():
                    if any(
                        str(k).startswith(("('sim-", "sim-", "flt-case", "eval-case")) for k in keys
                    ):
                        os.kill(pids[addr], signal.SIGKILL)
                        killed.append((addr, keys))
                        return
                time.sleep(0.005)

        thread = threading.Thread(target=assassin, daemon=True)
        thread.start()
        results = run_with(cluster, synth, tmp_path / "faulty", tmp_path / "cache-b")
        thread.join(timeout=5)
    assert killed, "the worker was not killed while it held a task"
    assert metrics_of(results) == expected


def start_run(synth, out: Path, cache: Path, *extra: str, workers: int = 2) -> subprocess.Popen:
    env = {**os.environ, "SELO_CACHE_DIR": str(cache)}
    cmd = [
        sys.executable,
        "-m",
        "selo",
        "airslt",
        "--images",
        str(synth.images),
        "--anno",
        str(synth.anno),
    ]
    return subprocess.Popen(
        [*cmd, "--out", str(out), "--workers", str(workers), "--batch", "8", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as in a terminal: a suite started in the background of a non-interactive
        # shell (`cmd &`) runs with SIGINT ignored, which its children would inherit, and
        # Python then never raises KeyboardInterrupt (the run goes on to its end)
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_run_resumes_to_identical_metrics(synth, tmp_path, sig):
    clean = start_run(synth, tmp_path / "clean", tmp_path / "cache-clean")
    assert clean.wait(timeout=300) == 0, clean.stderr.read()
    expected = (tmp_path / "clean" / "metrics.csv").read_text()

    # one worker thread, so that the cases finish one after another: the signal goes in as
    # the first case is finished
    out, cache = tmp_path / "run", tmp_path / "cache"
    proc = start_run(synth, out, cache, "--threads", "1", workers=1)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list(out.glob("case_*/metrics.json")):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    proc.send_signal(sig)
    code = proc.wait(timeout=120)
    finished = list(out.glob("case_*/metrics.json"))
    assert 1 <= len(finished) < len(CASES), "the run was not interrupted mid-way"
    assert not (out / "metrics.csv").exists()  # an unfinished run leaves no metrics table
    if sig == signal.SIGINT:
        assert code == 130 and "interrupted" in proc.stderr.read()
    stamps = {p: p.stat().st_mtime_ns for p in finished}

    resumed = start_run(synth, out, cache, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert (out / "metrics.csv").read_text() == expected
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # nothing done twice
    # no half-written file is left under a final name
    assert not [
        p for p in out.rglob("*") if p.name.startswith(".") and ".tmp-" in p.name and p.is_dir()
    ]
