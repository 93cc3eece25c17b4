"""``selo eval``: finding, reading and scoring maps; the CSV; errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from scenes import square

from selo.selo_tasks.annotations import load_annotations
from selo.selo_tasks.eval import read_map
from selo.selo_tasks.metrics import evaluate


def blob_map(seed, shape=(300, 400)):
    rng = np.random.default_rng(seed)
    small = rng.random((3, 4))
    m = cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.uint8(255 * (m - m.min()) / (m.max() - m.min()))


@pytest.fixture
def maps(tmp_path, small_anno):
    d = tmp_path / "maps"
    d.mkdir()
    cv2.imwrite(str(d / "probmap_0.jpg"), blob_map(0))  # the published naming (lossy)
    cv2.imwrite(str(d / "probmap_1.png"), blob_map(1))
    cv2.imwrite(str(d / "2.png"), blob_map(2))
    return d


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_eval_scores_every_case_and_writes_csv(run_cli, small_anno, maps, tmp_path):
    out = tmp_path / "m.csv"
    code, stdout, _ = run_cli("eval", "--anno", small_anno, "--maps", maps, "--out", out)
    assert code == 0
    rows = read_csv(out)
    assert [r["case"] for r in rows] == ["0", "1", "2", "mean"]
    cases = load_annotations(small_anno)
    for row, case, name in zip(
        rows, cases, ["probmap_0.jpg", "probmap_1.png", "2.png"], strict=False
    ):
        # the JPEG is decoded exactly as the published code decodes it
        u = cv2.imread(str(maps / name), cv2.IMREAD_GRAYSCALE)
        expected = evaluate(u, case.polygon_arrays())
        assert float(row["rmi"]) == expected.rmi and float(row["rsu"]) == expected.rsu
        assert row["query"] == case.query and row["image"] == case.image
    mean = np.mean([float(r["rmi"]) for r in rows[:3]])
    assert float(rows[3]["rmi"]) == pytest.approx(mean, abs=1e-15)
    assert "mean" in stdout and "Rmi" in stdout


def test_eval_default_output_next_to_maps(run_cli, small_anno, maps):
    assert run_cli("eval", "--anno", small_anno, "--maps", maps)[0] == 0
    assert len(read_csv(maps / "metrics.csv")) == 4


def test_lossless_map_preferred_when_several_exist(tmp_path, small_anno, maps, run_cli):
    cv2.imwrite(str(maps / "probmap_0.png"), np.zeros((300, 400), np.uint8))
    run_cli("eval", "--anno", small_anno, "--maps", maps)
    assert float(read_csv(maps / "metrics.csv")[0]["rsu"]) == 0.0


def test_missing_map_fails_before_any_work(run_cli, small_anno, maps):
    (maps / "2.png").unlink()
    code, out, err = run_cli("eval", "--anno", small_anno, "--maps", maps)
    assert code == 2
    assert err.count("\n") == 1 and "case 2: no map in" in err and "Traceback" not in err
    assert not (maps / "metrics.csv").exists()


def test_skip_missing_leaves_the_case_out_of_the_means(run_cli, small_anno, maps):
    (maps / "2.png").unlink()
    code, out, err = run_cli("eval", "--anno", small_anno, "--maps", maps, "--skip-missing")
    assert code == 0
    rows = read_csv(maps / "metrics.csv")
    assert [r["case"] for r in rows] == ["0", "1", "mean"]
    assert "skipped" in out and "2" in out


def test_shape_must_match_the_image(run_cli, small_anno, maps, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.zeros((300, 400, 3), np.uint8))
    cv2.imwrite(str(images / "b.png"), np.zeros((310, 400, 3), np.uint8))
    code, _, err = run_cli("eval", "--anno", small_anno, "--maps", maps, "--images", images)
    assert code == 2 and "case 2: map" in err and "400x300" in err and "400x310" in err


def test_unreadable_and_wrong_dtype_maps(tmp_path, small_anno, maps, run_cli):
    (maps / "probmap_1.png").write_bytes(b"not a png at all")
    code, _, err = run_cli("eval", "--anno", small_anno, "--maps", maps)
    assert code == 2 and "case 1" in err and "probmap_1.png" in err
    cv2.imwrite(str(maps / "probmap_1.png"), np.zeros((300, 400), np.uint16))
    code, _, err = run_cli("eval", "--anno", small_anno, "--maps", maps)
    assert code == 2 and "uint16" in err and "8-bit" in err


def test_colour_map_is_read_as_gray_like_the_published_code(tmp_path):
    rgb = np.dstack([blob_map(0), blob_map(1), blob_map(2)])
    path = tmp_path / "c.png"
    cv2.imwrite(str(path), rgb)
    assert np.array_equal(read_map(path), cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))


def test_missing_maps_folder_and_bad_anno(run_cli, tmp_path, small_anno):
    code, _, err = run_cli("eval", "--anno", small_anno, "--maps", tmp_path / "nope")
    assert code == 2 and "maps folder not found" in err
    bad = tmp_path / "bad.json"
    bad.write_text("[{]")
    code, _, err = run_cli("eval", "--anno", bad, "--maps", tmp_path)
    assert code == 2 and "bad.json: not valid JSON" in err


def test_console_script_exit_code_and_one_line_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "selo", "eval", "--maps", str(tmp_path / "none")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"selo: error: {tmp_path / 'none'}: maps folder not found"
    ]


def test_a_run_folder_is_scored_against_its_own_annotations(run_folder, run_cli, tmp_path):
    """Without --anno the run's annotation file (named in its run.json), not AIR-SLT's; a
    file of other cases is refused in one line."""
    run = run_folder / "run"
    out = tmp_path / "m.csv"
    code, _, err = run_cli("eval", "--maps", run, "--out", out)
    assert code == 0, err
    assert out.read_text() == (run / "metrics.csv").read_text()
    other = tmp_path / "other.json"
    other.write_text(
        json.dumps([{"caption": "x", "jpg_name": "a.png", "points": [square(1, 1, 9)]}])
    )
    code, _, err = run_cli("eval", "--maps", run, "--anno", other, "--out", out)
    assert code == 2 and err.count("\n") == 1 and "not the annotations the run" in err


def test_a_run_records_its_annotation_file(tmp_path):
    """The file is named absolute; a run of the shipped AIR-SLT annotations finds them again
    after they moved (a new install), by the digest of their cases."""
    from selo.selo_tasks import run_folder
    from selo.selo_tasks.annotations import packaged_annotations

    cases = load_annotations()
    entry = run_folder.annotations_record(cases, None)
    assert entry["file"] == str(packaged_annotations().resolve()) and entry["cases"] == 59
    entry["file"] = str(tmp_path / "old-install" / "anno.json")
    run_folder.write_record(tmp_path, {"annotations": entry})
    path, found = run_folder.run_annotations(tmp_path)
    assert path == packaged_annotations() and found == cases
