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
