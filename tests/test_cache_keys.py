"""Embeddings are reused only when scene, encoder, window table and preprocessing all match."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scenes import colour_scene, write_geotiff_scene
from tiny_clip import make_hf_clip_dir


def cached(run_cli, scene, out, *args) -> bool:
    code, _, err = run_cli(
        "localize", scene, "-q", "white roofs", "--out", out, "--in-process", *args
    )
    assert code == 0, err
    return json.loads((out / "run.json").read_text())["windows_cached"]


@pytest.fixture
def scene(tmp_path):
    return write_geotiff_scene(tmp_path / "scene.tif", colour_scene((500, 600)))


def test_same_inputs_reuse_embeddings(run_cli, scene, tmp_path, cache_dir):
    assert not cached(run_cli, scene, tmp_path / "a", "--scales", "128,256")
    assert cached(run_cli, scene, tmp_path / "b", "--scales", "128,256")


def test_changed_scene_content_recomputes(run_cli, scene, tmp_path, cache_dir):
    assert not cached(run_cli, scene, tmp_path / "a", "--scales", "128,256")
    img = colour_scene((500, 600))
    img[:50, :50] = 0  # same size, same name, other pixels
    write_geotiff_scene(scene, img)
    assert not cached(run_cli, scene, tmp_path / "b", "--scales", "128,256")


def test_changed_window_table_recomputes(run_cli, scene, tmp_path, cache_dir):
    assert not cached(run_cli, scene, tmp_path / "a", "--scales", "128,256")
    assert not cached(run_cli, scene, tmp_path / "b", "--scales", "128")


def test_changed_preprocessing_recomputes(run_cli, scene, tmp_path, cache_dir):
    assert not cached(run_cli, scene, tmp_path / "a", "--scales", "128,256")
    assert not cached(run_cli, scene, tmp_path / "b", "--scales", "128,256", "--bands", "3,2,1")
    assert cached(run_cli, scene, tmp_path / "c", "--scales", "128,256", "--bands", "3,2,1")


def test_changed_encoder_weights_recompute(run_cli, scene, tmp_path, cache_dir):
    model = make_hf_clip_dir(tmp_path / "model", seed=0)
    spec = ("--model", f"hf-clip:{model}", "--scales", "256")
    assert not cached(run_cli, scene, tmp_path / "a", *spec)
    assert cached(run_cli, scene, tmp_path / "b", *spec)
    make_hf_clip_dir(tmp_path / "model", seed=1)  # new weights in the same folder
    assert not cached(run_cli, scene, tmp_path / "c", *spec)
    # another encoder altogether
    assert not cached(run_cli, scene, tmp_path / "d", "--scales", "256")


def test_clip_family_model_runs_end_to_end(run_cli, scene, tmp_path, cache_dir):
    model = make_hf_clip_dir(tmp_path / "model", seed=0)
    cached(run_cli, scene, tmp_path / "a", "--model", f"hf-clip:{model}", "--scales", "256")
    record = json.loads((tmp_path / "a" / "run.json").read_text())
    assert record["encoder"]["spec"].startswith("hf-clip:") and record["encoder"]["dim"] > 0
    import cv2

    selo = cv2.imread(
        str(tmp_path / "a" / "q01-white-roofs" / "selo_map.png"), cv2.IMREAD_UNCHANGED
    )
    assert selo.shape == (500, 600) and np.ptp(selo) > 0


def test_paper_compat_is_a_preprocessing_change(run_cli, scene, tmp_path, cache_dir):
    assert not cached(run_cli, scene, tmp_path / "a", "--scales", "256")
    assert not cached(run_cli, scene, tmp_path / "b", "--scales", "256", "--paper-compat")
    assert (tmp_path / "b" / "q01-white-roofs" / "selo_map.jpg").is_file()
    assert cached(run_cli, scene, tmp_path / "c", "--scales", "256", "--paper-compat")
