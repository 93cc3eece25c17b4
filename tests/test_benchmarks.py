"""The prepared benchmark scripts run (tiny sizes, CPU): they measure, they do not assert times."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_benchmark_runs_on_the_cpu_with_tiny_sizes(tmp_path):
    out = tmp_path / "BENCH.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--tiny",
         "--workdir", str(tmp_path / "w"), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "## GPU" in text and "| ViT-B-32 | 2 |" in text
    assert "synthetic AIR-SLT at scale 0.1 on the CPU" in text and "min** wall" in text


def test_airslt_benchmark_keeps_the_rows_of_models_it_did_not_run(tmp_path, monkeypatch):
    """A run of one model rewrites its own row and keeps the other models' rows (a run of
    `--models vit-b-32` once dropped the `color` row, and the other way round)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_airslt

    cells = "| 59 | 0.49 | 10.4 | 1.8 | 0.3 | 3.0 | 8.9 | 1.67 GiB | 0.8677 | 34.3× | 2026-12-02 |"
    color, vit = f"| color {cells}", f"| vit-b-32 {cells}"
    md = tmp_path / "BENCHMARKS.md"
    separator = (
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    )
    table = "\n".join([bench_airslt.TABLE_HEADER, separator, color, vit])
    md.write_text(f"## {bench_airslt.HEADING}\n\ntext\n\n{table}\n\n## Next\n\n| a | b |\n")
    monkeypatch.setattr(bench_airslt, "BENCHMARKS_MD", md)
    assert bench_airslt.earlier_rows(["vit-b-32"]) == [color]
    assert bench_airslt.earlier_rows(["color"]) == [vit]
    assert bench_airslt.earlier_rows(["color", "vit-b-32"]) == []


@pytest.mark.slow
def test_remote_benchmark_runs_at_a_tiny_size(tmp_path):
    out = tmp_path / "BENCH.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_remote.py"), "--size", "600",
         "--workdir", str(tmp_path / "w"), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "## Remote scenes: HTTP and S3 against a local file" in text
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert {"local", "http", "s3", "s3, cache and out in S3"} <= set(rows)
    for name in ("http", "s3", "s3, cache and out in S3"):
        cells = [c.strip() for c in rows[name].split("|")[1:-1]]
        assert cells[3].endswith("MiB") and 0 < float(cells[4]) <= 1.25  # each byte about once
        assert cells[7].endswith("KiB")
    import re

    scene = re.search(r"fetched (\d+) KiB of the scene \(its header chunk\)", text)
    assert scene is not None and int(scene.group(1)) <= 64  # no pixel blocks: cached in S3
