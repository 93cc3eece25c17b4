"""The prepared benchmark scripts run (tiny sizes, CPU): they measure, they do not assert times."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
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


def test_search_benchmark_runs_at_a_tiny_size(tmp_path):
    out = tmp_path / "BENCH.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_search.py"), "--sizes", "3",
         "--side", "1500", "--queries", "3", "--workdir", str(tmp_path / "w"), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "## Collection search: 10, 100 and 1,000 scenes" in text
    (row,) = [line for line in text.splitlines() if line.startswith("| 3 |")]
    assert " 1.000 | " in row  # int8 recall@20 against exact
    assert not (tmp_path / "w").exists()  # the indexes are removed


@pytest.fixture
def bench(monkeypatch):
    """The benchmark scripts' folder importable (they import their ``_common``)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return ROOT / "benchmarks"


@pytest.fixture
def tiny_arch(tmp_path):
    from tiny_clip import TINY_VIT, register_arch

    return register_arch(tmp_path, "selo-bench-vit", TINY_VIT)


@pytest.mark.slow
def test_encoders_benchmark_reports_precisions_and_peak_fraction(bench, tiny_arch, tmp_path):
    import bench_encoders

    out = tmp_path / "BENCH.md"
    bench_encoders.main(
        ["--arch", tiny_arch, "--batches", "1", "3", "--seconds", "0.01", "--rounds", "1",
         "--out", str(out)]
    )  # fmt: skip
    text = out.read_text()
    assert "## Encoders" in text and "GFLOP per window" in text
    rows = [line for line in text.splitlines() if line.startswith(("| 1 |", "| 3 |"))]
    assert len(rows) == 2
    for row in rows:  # batch, color, fp32, bf16, int8, int8 ÷ fp32, fp32 of peak
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 7 and all(float(c.replace(",", "")) > 0 for c in cells[1:5])
        assert cells[5].endswith("×") and cells[6].endswith("%")
    cosine = float(text.split("cosine to the fp32 embeddings of 32 random windows: min ")[1][:7])
    assert 0.99 <= cosine <= 1.0


@pytest.mark.slow
def test_int8_candidates_benchmark_measures_each_candidate(bench, tiny_arch, tmp_path):
    import bench_encoders

    out = tmp_path / "BENCH.md"
    bench_encoders.main(
        ["--candidates", "--arch", tiny_arch, "--batches", "2", "--seconds", "0.01",
         "--rounds", "1", "--out", str(out)]
    )  # fmt: skip
    text = out.read_text()
    assert "## Encoders: int8 candidates" in text
    rows = {
        line.split("|")[1].strip(): line
        for line in text.splitlines()
        if line.startswith("| ") and "---" not in line and "candidate |" not in line
    }
    names = ["torch fp32", "ONNX Runtime int8 dynamic, a batch per call"]
    if importlib.util.find_spec("torchao") is not None:  # a candidate where installed (bench)
        names.append("torchao int8 dynamic, eager")
    else:
        assert "torchao: not installed here (torchao)" in rows
    for name in names:
        cosine = float(rows[name].split("|")[4])
        assert 0.99 <= cosine <= 1.0, rows[name]
    assert float(rows["torch fp32"].split("|")[4]) > 0.99999


def test_startup_benchmark_reads_the_import_tree(bench):
    import bench_startup

    lines = [
        "import time: self [us] | cumulative | imported package",
        "import time:       100 |        100 |     b.c",
        "import time:        50 |        150 |   b",
        "import time:        10 |         10 |   d",
        "import time:         5 |        165 | a",
        "some other line on stderr",
        "import time:        20 |         20 | selo.x",
        "import time:         7 |          7 | b.e",
    ]
    roots = bench_startup.parse_importtime(lines)
    assert [(r.name, [c.name for c in r.children]) for r in roots] == [
        ("a", ["b", "d"]),
        ("selo.x", []),
        ("b.e", []),
    ]
    assert roots[0].children[0].children[0].name == "b.c"
    assert bench_startup.import_seconds(roots) == pytest.approx(192e-6)
    # b counts where it came in from outside (under a, and b.e later), not again for b.c
    top = bench_startup.top_packages(roots, 3)
    assert [name for name, _ in top] == ["a", "b", "d"]
    assert [s for _, s in top] == pytest.approx([165e-6, 157e-6, 10e-6])


@pytest.mark.slow
def test_startup_benchmark_measures_each_command(bench, tmp_path):
    import bench_startup

    out = tmp_path / "BENCH.md"
    out.write_text(
        f"# B\n\n## {bench_startup.HEADING}\n\n{bench_startup.TABLE_HEADER}\n"
        "| --- | --- | ---: | ---: | ---: | ---: | --- |\n"
        "| after | `selo --help` | 0.1 | 0.1 | 0.01 | 0.05 | click 0.01 |\n"
    )
    bench_startup.main(
        ["--state", "tiny", "--state", "same", "--repeats", "1", "--size", "512", "--top", "3",
         "--workdir", str(tmp_path / "w"), "--out", str(out)]
    )  # fmt: skip
    text = out.read_text()
    for state in ("tiny", "same"):
        rows = [r for r in text.splitlines() if r.startswith(f"| {state} |")]
        commands = [r.split("|")[2].strip() for r in rows]
        assert commands == [
            "`selo --help`",
            "`selo localize --help`",
            "`selo models`",
            "`selo localize SCENE -q white roofs --out OUT` (before its first stage)",
            "`selo localize SCENE -q white roofs --out OUT` (whole run)",
        ]
        numbers = [[x.strip() for x in r.split("|")[3:7]] for r in rows]
        cells = dict(zip(commands, numbers, strict=True))
        assert cells[commands[3]][:3] == ["–", "–", "–"]  # the start-up: imports only
        for c in (*commands[:3], commands[4]):
            wall, cpu, exit_, imports = map(float, cells[c])
            assert 0 < cpu and 0 <= exit_ < wall and 0 < imports
        assert float(cells[commands[3]][3]) <= float(cells[commands[4]][3])  # a part of it
        for row in rows:  # three packages, costliest first, each a part of the import time
            tops = [float(t.split()[1]) for t in row.split("|")[7].split(",")]
            total = float(row.split("|")[6])
            assert len(tops) == 3 and tops == sorted(tops, reverse=True) and tops[0] <= total
    assert "| after | `selo --help` |" in text  # rows of other states kept


@pytest.mark.slow
def test_int8_agreement_benchmark_compares_maps_and_metrics(bench, tmp_path):
    import bench_int8_agreement
    from tiny_clip import make_hf_clip_dir

    model = make_hf_clip_dir(tmp_path / "model")
    out = tmp_path / "BENCH.md"
    bench_int8_agreement.main(
        ["--scale", "0.1", "--cases", "3", "0", "--model", f"hf-clip:{model}",
         "--workdir", str(tmp_path / "w"), "--out", str(out)]
    )  # fmt: skip
    text = out.read_text()
    assert "## int8 agreement" in text and "cases 0, 3 at scale 0.1" in text
    row = next(r for r in text.splitlines() if r.startswith(f"| hf-clip:{model} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "2" and cells[2] == "0.1"
    # the reported agreement, recomputed from the two runs' maps
    import cv2

    maps = {
        p: [
            cv2.imread(str(tmp_path / "w" / f"run-{p}" / f"case_{i:02d}" / "selo_map.png"), -1)
            for i in (0, 1)
        ]
        for p in ("fp32", "int8")
    }
    same = sum(int((a == b).sum()) for a, b in zip(maps["fp32"], maps["int8"], strict=True))
    total = sum(a.size for a in maps["fp32"])
    assert cells[6] == f"{same / total:.2%}"
    diff = max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(*maps.values(), strict=True))
    assert cells[7] == str(diff)
    assert 0 <= float(cells[8]) <= 1
    # --reuse compares the finished runs again without running them
    record = tmp_path / "w" / "run-int8" / "run.json"
    before = record.stat().st_mtime_ns
    bench_int8_agreement.main(
        ["--scale", "0.1", "--cases", "3", "0", "--model", f"hf-clip:{model}", "--reuse",
         "--workdir", str(tmp_path / "w"), "--out", str(out)]
    )  # fmt: skip
    assert record.stat().st_mtime_ns == before
    again = next(r for r in out.read_text().splitlines() if r.startswith(f"| hf-clip:{model} |"))
    assert again.split("|")[7:10] == row.split("|")[7:10]  # the same agreement
    # the comparison itself: a run against itself is identical everywhere
    run = tmp_path / "w" / "run-fp32"
    same = bench_int8_agreement.compare(run, run)
    assert same["identical"] == 1.0 and same["largest_pixel"] == 0
    assert all(d == 0 for d, _ in same["largest"].values())


@pytest.mark.slow
def test_floor_benchmark_compares_installations_against_one_floor(bench, tmp_path):
    import bench_floor

    out = tmp_path / "BENCH.md"
    bench_floor.main(
        ["--sizes", "600", "--no-airslt", "--repeat", "2", "--python", f"again={sys.executable}",
         "--workdir", str(tmp_path / "work"), "--out", str(out)]
    )  # fmt: skip
    text = out.read_text()
    assert "## Floor: selo beside the unavoidable work" in text
    assert "the median of 2, each another sentence" in text
    (row,) = [line for line in text.splitlines() if line.startswith("| 600² | again |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    floor = float(cells[2].strip("*"))
    assert floor > 0 and float(cells[3]) > 0 and float(cells[5]) > 0
    # the ratio of the unrounded seconds (a tiny scene's floor is a few hundredths)
    assert float(cells[4].rstrip("×")) == pytest.approx(float(cells[3]) / floor, rel=0.3)


def test_writes_benchmark_measures_each_deflate_level(bench, tmp_path):
    """bench_writes: the codec table, and selo's own GeoTIFF writer at every DEFLATE level
    with the level selo uses marked; --map measures a map from a file instead."""
    import bench_writes
    import rasterio

    from selo.pipeline.outputs import COG_OPTIONS

    out = tmp_path / "BENCH.md"
    work = tmp_path / "w"
    bench_writes.main(["--size", "600", "--workdir", str(work), "--out", str(out)])
    text = out.read_text()
    assert "A finished-looking 600² uint8 map" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [int(r.split("|")[1]) for r in rows] == list(range(1, 10))
    (used,) = [r for r in rows if "**selo**" in r]
    assert int(used.split("|")[1]) == COG_OPTIONS["LEVEL"] == 5  # restored after the sweep
    assert all(float(r.split("|")[4]) > 0 for r in rows)  # MB written
    with rasterio.open(work / "selo.tif") as ds:
        written = ds.read(1)
    bench_writes.main(["--map", str(work / "selo.tif"), "--workdir", str(work / "m"),
                       "--out", str(out)])  # fmt: skip
    assert "The 600×600 map selo.tif (`--map`)" in out.read_text()
    assert written.shape == (600, 600)
