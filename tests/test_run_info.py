"""What a run records for its report: case digests, per-scene seconds, and whether its
stage times may stand beside the published ones (and the charts that follow)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from selo.selo_tasks.annotations import load_annotations
from selo.selo_tasks.report.charts import scene_chart, stage_chart
from selo.selo_tasks.run_info import (
    annotations_digest,
    case_digest,
    published_comparison,
    scene_seconds,
)
from selo.selo_tasks.synth import scene_sizes

STAGES = {
    "cut": {"wall": 1.0, "task": 1.5},
    "sim": {"wall": 5.0, "task": 9.0},
    "gnt": {"wall": 0.5, "task": 0.1},
    "flt": {"wall": 3.0, "task": 5.5},
    "eval": {"wall": 2.0, "task": 3.9},
}
PUBLISHED_GRAY = (170, 170, 170)


def airslt_record(cases=None, *, scale=1.0, method=None):
    """A run.json as ``selo airslt`` writes it, for the full AIR-SLT by default."""
    cases = load_annotations() if cases is None else cases
    sizes = scene_sizes(load_annotations())
    scenes = {}
    for c in cases:
        h, w = sizes[c.image]
        s = scenes.setdefault(
            c.image, {"height": round(h * scale), "width": round(w * scale), "cases": []}
        )
        s["cases"].append(c.index)
    return {
        "command": "airslt",
        "method": method or {"name": "v1", "scales": [256, 512, 768]},
        "case_list": [{"case": c.index, "digest": case_digest(c)} for c in cases],
        "scenes": scenes,
    }


def test_the_full_airslt_with_v1_is_comparable():
    verdict = published_comparison(airslt_record())
    assert verdict.comparable
    assert "59 cases over 22 scenes" in verdict.reason


@pytest.mark.parametrize(
    "record",
    [
        airslt_record(load_annotations()[:12]),  # a subset
        airslt_record(scale=0.5),  # the demo's half size
        airslt_record(method={"name": "v2"}),  # another method
        airslt_record(method={"name": "v1", "scales": [256, 512]}),  # other windows
        {**airslt_record(), "command": "localize"},  # not a test-set run
        {},  # a record that says nothing
    ],
    ids=["subset", "half-size", "v2", "scales", "localize", "empty"],
)
def test_other_runs_are_not_comparable(record):
    verdict = published_comparison(record)
    assert not verdict.comparable
    assert verdict.reason.startswith("published times not shown")


def test_real_scenes_a_little_off_the_derived_sizes_are_comparable():
    assert published_comparison(airslt_record(scale=1.03)).comparable
    assert not published_comparison(airslt_record(scale=0.9)).comparable


def gray_pixels(path) -> int:
    img = cv2.imread(str(path))
    return int(np.all(img == PUBLISHED_GRAY, axis=2).sum())


def test_stage_chart_draws_published_bars_only_beside_a_comparable_run(tmp_path):
    alone = stage_chart(
        tmp_path / "a.png",
        STAGES,
        title="demo",
        published=published_comparison(airslt_record(scale=0.5)),
    )
    beside = stage_chart(
        tmp_path / "b.png", STAGES, title="full", published=published_comparison(airslt_record())
    )
    assert alone == [f"run:{s}" for s in STAGES]
    assert beside == [
        *(x for s in STAGES for x in (f"run:{s}", f"published:{s}") if x != "published:eval")
    ]
    assert gray_pixels(tmp_path / "a.png") < 50  # no published bar (a few text pixels)
    assert gray_pixels(tmp_path / "b.png") > 1000
    assert stage_chart(tmp_path / "c.png", STAGES, title="no verdict") == alone


def test_scene_chart_stacks_stages_longest_scene_first(tmp_path):
    scenes = {"0.jpg": {"flt": 1.0, "eval": 1.0}, "13.jpg": {"sim": 4.0, "eval": 0.5}}
    assert scene_chart(tmp_path / "s.png", scenes, title="per scene") == ["13.jpg", "0.jpg"]
    assert cv2.imread(str(tmp_path / "s.png")).shape[1] == 900


def test_scene_seconds_from_task_name_prefixes():
    everything = load_annotations()
    cases = [everything[0], everything[1], everything[4]]  # 0.jpg, 0.jpg, 10.jpg
    seconds = scene_seconds(
        {
            "cut-region-0.jpg": 0.5,
            "cut-0.jpg": 0.25,
            "sim-0.jpg": 2.0,
            "sim-10.jpg": 1.0,
            "flt-preview-10.jpg": 0.1,
            "gnt-case-1": 0.125,
            "flt-case-4": 0.3,
            "eval-case-0": 0.5,
            "eval-case-99": 7.0,  # a case this run did not score
            "sim": 9.0,  # an unlabelled embedding
            "getitem": 1.0,  # dask's own
        },
        cases,
    )
    assert {s: {k: v for k, v in st.items() if v} for s, st in seconds.items()} == {
        "0.jpg": {"cut": 0.75, "sim": 2.0, "gnt": 0.125, "eval": 0.5},
        "10.jpg": {"sim": 1.0, "flt": pytest.approx(0.4)},
    }


def test_case_digests_follow_every_field():
    case = load_annotations()[0]
    base = case_digest(case)
    for change in (
        {"index": 1},
        {"image": "1.jpg"},
        {"query": case.query + "!"},
        {"polygons": case.polygons[:1] + ((((1.0, 1.0), (5.0, 1.0), (5.0, 5.0)),))},
    ):
        assert case_digest(type(case)(**{**case.__dict__, **change})) != base
    cases = load_annotations()
    assert annotations_digest(cases) != annotations_digest(cases[:-1])
