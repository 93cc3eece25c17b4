"""``selo airslt``: the whole-test-set run, resume, missing scenes, synthetic data, demo."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from selo.selo_tasks.annotations import load_annotations
from selo.selo_tasks.metrics import evaluate
from selo.selo_tasks.report.run_page import write_charts
from selo.selo_tasks.run_info import published_comparison
from selo.selo_tasks.synth import build_synthetic_airslt, caption_colour, scene_sizes

FAST = ("--in-process",)
CASES = [0, 1, 12, 13]  # scenes 0.jpg and 13.jpg


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return build_synthetic_airslt(tmp_path_factory.mktemp("synth"), scale=0.3, cases=CASES)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run_airslt(run_cli, synth, out, *args):
    code, stdout, err = run_cli(
        "airslt", "--images", synth.images, "--anno", synth.anno, "--out", out, *FAST, *args
    )
    assert code == 0, err
    return stdout


def test_scene_sizes_rule():
    sizes = scene_sizes(load_annotations())
    assert len(sizes) == 22
    assert sizes["20.jpg"] == sizes["21.jpg"] == (10000, 10001)
    assert sizes["0.jpg"] == (2300, 3000)  # the usual size
    assert sizes["4.jpg"] == (2400, 3900)  # annotations reach x = 3841, y = 2303
    for case in load_annotations():  # every polygon lies inside its scene
        h, w = sizes[case.image]
        pts = np.concatenate(case.polygon_arrays())
        assert pts[:, 0].max() < w and pts[:, 1].max() < h


def test_synthetic_scenes_paint_each_case_in_its_colour(synth):
    assert [c.query for c in synth.cases] == [load_annotations()[i].query for i in CASES]
    img = cv2.cvtColor(cv2.imread(str(synth.images / "0.jpg")), cv2.COLOR_BGR2RGB)
    assert img.shape[:2] == synth.sizes["0.jpg"] == (690, 900)
    case = synth.cases[1]  # "there is a white house ..." (painted after case 0)
    name, rgb = caption_colour(case.query)
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(mask, [p.astype(np.int32) for p in case.polygon_arrays()], 1)
    inner = cv2.erode(mask, np.ones((9, 9), np.uint8)).astype(bool)
    assert name == "white"
    assert np.abs(img[inner].mean(axis=0) - rgb).max() < 12


def test_run_scores_every_case_and_writes_the_run_folder(run_cli, synth, tmp_path, cache_dir):
    out = tmp_path / "run"
    stdout = run_airslt(run_cli, synth, out, "--profile")
    rows = read_csv(out / "metrics.csv")
    assert [r["case"] for r in rows] == ["0", "1", "2", "3", "mean"]
    for row, case in zip(rows, synth.cases, strict=False):
        selo = cv2.imread(
            str(out / f"case_{case.index:02d}" / "selo_map.png"), cv2.IMREAD_UNCHANGED
        )
        assert selo.shape == synth.sizes[case.image]
        m = evaluate(selo, case.polygon_arrays())  # the CSV holds the metrics of the written map
        assert float(row["rmi"]) == m.rmi and float(row["rsu"]) == m.rsu
        assert (out / f"case_{case.index:02d}" / "windows.csv").is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["scored"] == 4
    assert {"cut", "sim", "gnt", "flt", "eval"} <= set(run["stages"])
    assert all(run["stages"][s]["task"] > 0 for s in ("cut", "sim", "eval"))
    assert (out / "stages.png").is_file() and (out / "profile.html").is_file()
    assert "mean" in stdout and "Time per stage" in stdout
    # colour captions are found: better than a flat map (Rmi 0) by far
    assert float(rows[-1]["rmi"]) > 0.5


def test_resume_recomputes_only_unfinished_cases(run_cli, synth, tmp_path, cache_dir):
    out = tmp_path / "run"
    run_airslt(run_cli, synth, out)
    first = (out / "metrics.csv").read_text()
    done = out / "case_00" / "metrics.json"
    stamp = done.stat().st_mtime_ns
    (out / "case_02" / "metrics.json").unlink()  # as if interrupted before case 2 finished
    (out / "metrics.csv").unlink()
    run_airslt(run_cli, synth, out, "--resume")
    assert (out / "metrics.csv").read_text() == first
    assert done.stat().st_mtime_ns == stamp  # finished cases were not recomputed
    assert (out / "case_02" / "metrics.json").is_file()


def test_resume_ignores_cases_of_another_configuration(run_cli, synth, tmp_path, cache_dir):
    out = tmp_path / "run"
    run_airslt(run_cli, synth, out)
    stamp = (out / "case_00" / "metrics.json").stat().st_mtime_ns
    run_airslt(run_cli, synth, out, "--resume", "--scales", "256,512")
    assert (out / "case_00" / "metrics.json").stat().st_mtime_ns != stamp


def test_missing_scenes_are_listed(run_cli, synth, tmp_path, cache_dir):
    images = tmp_path / "images"
    images.mkdir()
    (images / "0.jpg").write_bytes((synth.images / "0.jpg").read_bytes())
    code, _, err = run_cli(
        "airslt", "--images", images, "--anno", synth.anno, "--out", tmp_path / "o", *FAST
    )
    assert code == 2 and "1 scene(s) named by the annotations are missing: 13.jpg" in err
    code, out, _ = run_cli(
        "airslt",
        "--images",
        images,
        "--anno",
        synth.anno,
        "--out",
        tmp_path / "o",
        *FAST,
        "--skip-missing",
    )
    assert code == 0 and "2 case(s) skipped" in out
    assert [r["case"] for r in read_csv(tmp_path / "o" / "metrics.csv")] == ["0", "1", "mean"]


def test_v2_run(run_cli, synth, tmp_path, cache_dir):
    out = tmp_path / "v2"
    run_airslt(run_cli, synth, out, "--method", "v2")
    run = json.loads((out / "run.json").read_text())
    assert run["method"]["name"] == "v2" and run["scored"] == 4


@pytest.mark.slow
def test_demo_beats_flat_and_random_maps(run_cli, tmp_path, cache_dir):
    code, out, err = run_cli("demo", "--out", tmp_path / "demo")
    assert code == 0, err
    rows = read_csv(tmp_path / "demo" / "run" / "metrics.csv")
    assert len(rows) == 13
    assert float(rows[-1]["rmi"]) > 0.6
    assert "random scores" in out and "flat map" in out
    run = tmp_path / "demo" / "run"
    assert (run / "case_00" / "overlay.png").is_file()
    record = json.loads((run / "run.json").read_text())
    assert set(record["baselines"]) == {"flat map", "random scores"}
    report = (run / "report.html").read_text()
    assert "random scores" in report and report.count('<figure data-case="') == 12
    # 12 half-size cases are not the published 59: the stage chart shows the run alone
    verdict = published_comparison(record)
    assert not verdict.comparable and "12 cases over 4 scenes" in verdict.reason
    assert "published:" not in " ".join(write_charts(run, record)["stages.png"])


def test_paper_compat_scores_the_decoded_jpeg(run_cli, synth, tmp_path, cache_dir):
    out = tmp_path / "pc"
    run_airslt(run_cli, synth, out, "--paper-compat")
    rows = read_csv(out / "metrics.csv")
    for row, case in zip(rows, synth.cases, strict=False):
        jpeg = out / f"case_{case.index:02d}" / f"probmap_{case.index}.jpg"
        decoded = cv2.imread(
            str(jpeg), cv2.IMREAD_GRAYSCALE
        )  # as the published evaluation reads it
        assert float(row["rmi"]) == evaluate(decoded, case.polygon_arrays()).rmi
