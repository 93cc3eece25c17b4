"""Start-up and exit: each command imports only what it uses, and its process ends with
nothing lost.

Each command runs as the ``selo`` program does, in a new interpreter; the modules it
imported are read at its exit. A heavy library that a command does not use (torch,
xarray and pandas, scipy, zarr, boto3, distributed, ...) fails the test when it creeps
back in. No timings here: ``benchmarks/bench_startup.py`` measures them.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from scenes import colour_scene, write_geotiff_scene

# what a command runs as `selo ...` (cli.main() with the process's arguments), the modules
# imported and whether the cycle collector runs written to SELO_TEST_MODULES at exit
PROGRAM = """
import atexit, gc, json, os, sys
atexit.register(
    lambda: open(os.environ["SELO_TEST_MODULES"], "w").write(
        json.dumps({"modules": sorted(sys.modules), "collector": gc.isenabled()})
    )
)
from selo.selo_tasks.cli import main
main()
"""

# libraries no command imports unless it uses them (the encoders', the servers', the
# cluster's, the remote stores', the collection search's)
NEVER = (
    "torch", "open_clip", "transformers", "onnxruntime", "distributed", "bokeh", "pystac",
    "s3fs", "aiohttp", "geopandas", "shapely", "fastapi", "uvicorn", "starlette",
)  # fmt: skip
# the dataflow's libraries, and what they import in turn where installed (dask.array:
# scipy; xarray: pandas; rasterio: boto3; zarr: fsspec)
DATAFLOW = ("dask", "xarray", "pandas", "rioxarray", "scipy", "zarr", "numcodecs", "fsspec")
READERS = ("rasterio", "boto3", "cv2")
TABLES = ("rich",)


def modules_of(args: list[str], tmp_path, **env) -> tuple[set[str], subprocess.CompletedProcess]:
    """The top-level packages that ``selo ARGS`` imported, and the finished process (with
    ``collector``: whether the cycle collector was running at its exit)."""
    record = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", PROGRAM, *args],
        env={**os.environ, "SELO_TEST_MODULES": str(record), **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert record.exists(), proc.stderr
    seen = json.loads(record.read_text())
    proc.collector = seen["collector"]
    return {m.split(".")[0] for m in seen["modules"]}, proc


def imported_by(code: str) -> set[str]:
    """The top-level packages that a fresh interpreter has imported after ``code``."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    return {m.split(".")[0] for m in json.loads(out.splitlines()[-1])}


@pytest.mark.parametrize(
    "code",
    [
        "import selo",
        "import selo.selo_tasks.cli",
        "import selo; selo.evaluate, selo.evaluate_run",  # the API, scenes and maps unused
    ],
)
def test_importing_selo_and_the_cli_imports_no_dataflow(code):
    heavy = imported_by(code) & {*NEVER, *DATAFLOW, *TABLES}
    assert not heavy, f"{code!r} imports {sorted(heavy)}"


@pytest.mark.parametrize(
    ("args", "denied"),
    [
        (["--help"], (*NEVER, *DATAFLOW, *READERS, *TABLES)),
        (["localize", "--help"], (*NEVER, *DATAFLOW, *READERS, *TABLES)),
        (["search", "--help"], (*NEVER, *DATAFLOW, *READERS, *TABLES)),
        (["models"], (*NEVER, *DATAFLOW, "rasterio", "boto3")),
    ],
)
def test_help_and_models_import_only_what_they_print(args, denied, tmp_path):
    imported, proc = modules_of(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not imported & set(denied), f"selo {' '.join(args)}: {sorted(imported & set(denied))}"


def test_eval_imports_no_dataflow(tmp_path, small_anno):
    """Scoring maps reads them and runs the metrics: no dask, xarray or zarr."""
    maps = tmp_path / "maps"
    maps.mkdir()
    for i in range(3):
        cv2.imwrite(str(maps / f"probmap_{i}.png"), np.full((300, 400), 40 * i, np.uint8))
    imported, proc = modules_of(["eval", "--anno", str(small_anno), "--maps", str(maps)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (maps / "metrics.csv").exists()
    assert not imported & {*NEVER, *DATAFLOW}, sorted(imported & {*NEVER, *DATAFLOW})
    assert proc.collector  # paused for the imports only


def test_localize_imports_no_encoder_or_cluster_library_and_loses_nothing_at_exit(tmp_path):
    """One local scene with ``color``: no torch, no cluster, no STAC or remote store; and the
    process, which ends without Python's final collections, has written and flushed
    everything: the report's last line, run.json complete, every output of the query."""
    scene = write_geotiff_scene(tmp_path / "scene.tif", colour_scene((300, 400)))
    out = tmp_path / "out"
    args = ["localize", str(scene), "-q", "green trees", "--out", str(out), "--scales", "128,256"]
    env = {"SELO_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "500"}  # (one line each)
    imported, proc = modules_of(args, tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    assert not imported & set(NEVER), sorted(imported & set(NEVER))
    assert proc.collector  # paused while the modules came in, running again for the work
    assert proc.stdout.rstrip().splitlines()[-1] == f"run record: {out / 'run.json'}"
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "complete"
    (folder,) = [o["folder"] for o in record["outputs"]]
    names = {p.name for p in (out / folder).iterdir()}
    expected = {"windows.csv", "selo_map.png", "selo_map.tif", "overlay.png", "regions.geojson"}
    assert expected <= names
    assert cv2.imread(str(out / folder / "selo_map.png"), cv2.IMREAD_UNCHANGED).shape == (300, 400)


@pytest.mark.parametrize("args", [["models"], ["synth-airslt", "{tmp}/synth", "--scale", "0.05"]])
def test_a_command_run_in_process_leaves_the_collector_alone(run_cli, args, tmp_path):
    """Only the ``selo`` program pauses the collector for its imports and freezes its objects
    as it exits; ``main(argv)`` called from Python (tests, notebooks) leaves its host's
    collector as it was, running and unfrozen."""
    before = gc.get_freeze_count()
    code, _, err = run_cli(*[a.format(tmp=tmp_path) for a in args])
    assert code == 0, err
    assert gc.isenabled()
    assert gc.get_freeze_count() == before
