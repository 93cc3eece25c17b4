"""``report.html`` of a run: every case, the numbers of metrics.csv, links that resolve."""

from __future__ import annotations

import base64
import csv
import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import cv2
import numpy as np
import pytest

from selo.pipeline.picture import blend_overlay
from selo.pipeline.preview import decimate
from selo.selo_tasks.annotations import load_annotations
from selo.selo_tasks.metrics import Metrics, evaluate_case
from selo.selo_tasks.report.case_overlay import read_scene_preview, write_case_overlays
from selo.selo_tasks.report.run_page import add_baselines, write_report

METRICS = ("rsu", "ras", "rda", "rmi")


class Page(HTMLParser):
    """The parts of a report the tests read: links, images, case cards and their text."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.cards: list[dict] = []
        self.scripts: list[dict] = []
        self._card_depth = 0
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self._depth += 1
        for name in ("href", "src"):
            if name in a:
                self.links.append(a[name])
        if tag == "script":
            self.scripts.append(a)
        if tag == "figure" and "data-case" in a:
            self.cards.append({**a, "text": []})
            self._card_depth = self._depth

    def handle_endtag(self, tag):
        if tag == "figure" and self._card_depth == self._depth:
            self._card_depth = 0
        self._depth -= 1

    def handle_data(self, data):
        if self._card_depth and data.strip():
            self.cards[-1]["text"].append(data.strip())


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def rows(run: Path) -> list[dict]:
    with (run / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_report_shows_every_case_with_the_numbers_of_metrics_csv(method_runs):
    run = method_runs["v1"]
    page = parse(run / "report.html")
    cases = [r for r in rows(run) if r["case"] != "mean"]
    assert [c["data-case"] for c in page.cards] == [r["case"] for r in cases]
    for card, row in zip(page.cards, cases, strict=True):
        for k in METRICS:
            assert card[f"data-{k}"] == row[k]  # full precision, for sorting
            assert f"{float(row[k]):.4f}" in card["text"]  # as shown
        assert row["query"] in " ".join(card["text"])
    mean = rows(run)[-1]
    text = (run / "report.html").read_text()
    assert "".join(f"<td>{float(mean[k]):.4f}</td>" for k in METRICS) in text
    assert 'id="sort-key"' in text and "function sortCases" in text


def test_report_links_resolve_and_need_no_network(method_runs):
    run = method_runs["v1"]
    page = parse(run / "report.html")
    assert not page.scripts or all("src" not in s for s in page.scripts)  # inline only
    images = 0
    for link in page.links:
        assert not link.startswith(("http:", "https:", "//")), link
        if link.startswith("#"):
            assert f'id="{link[1:]}"' in (run / "report.html").read_text(), link
        elif link.startswith("data:"):
            head, data = link.split(",", 1)
            raw = base64.b64decode(data, validate=True)
            assert cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR) is not None, head
            images += 1
        else:
            assert (run / unquote(link)).is_file(), link
    assert images == 4 + 2  # a thumbnail per case, stages.png and scenes.png
    overlays = {link for link in page.links if link.endswith("/overlay.png")}
    assert overlays == {f"case_{i:02d}/overlay.png" for i in range(4)}  # clicking opens them


def test_overlay_png_is_the_published_overlay_with_marks_and_a_legend(method_runs, tmp_path):
    run = method_runs["v1"]
    record = json.loads((run / "run.json").read_text())
    images = Path(record["images"])
    case = load_annotations(images.parent / "anno.json")[2]
    folder = run / "case_02"
    selo = cv2.imread(str(folder / "selo_map.png"), cv2.IMREAD_UNCHANGED)
    preview = read_scene_preview(images / case.image, None)
    plain = blend_overlay(preview, decimate(selo, preview.shape[:2]))
    annotated = cv2.imread(str(folder / "overlay.png"))
    h, w = plain.shape[:2]
    assert annotated.shape[1] == w and annotated.shape[0] > h  # the legend panel below
    changed = np.any(annotated[:h] != plain, axis=2)
    assert 0.001 < changed.mean() < 0.2  # marks only: the rest is the published overlay
    x, y = case.polygons[0][0]  # a polygon corner is outlined
    sy, sx = h / selo.shape[0], w / selo.shape[1]
    r, c = round(y * sy), round(x * sx)
    assert changed[max(0, r - 2) : r + 3, max(0, c - 2) : c + 3].any()
    assert not (folder / "overlay_plain.png").exists()  # only with plain_overlays
    detail = evaluate_case(selo, case.polygon_arrays())
    write_case_overlays(tmp_path, selo, preview, case, detail, plain=True)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "overlay_plain.png")), plain)
    assert cv2.imread(str(folder / "thumb.jpg")).shape[1] <= 320
    saved = json.loads((folder / "metrics.json").read_text())
    detail = evaluate_case(selo, case.polygon_arrays())
    assert [tuple(c[:2]) for c in saved["centres"]] == list(detail.centres)
    assert [c[2] for c in saved["centres"]] == detail.counted()


def test_run_json_records_cases_and_per_scene_seconds(method_runs):
    record = json.loads((method_runs["v1"] / "run.json").read_text())
    assert [c["case"] for c in record["case_list"]] == [0, 1, 2, 3]
    sizes = json.loads((Path(record["images"]).parent / "synth.json").read_text())["sizes"]
    assert {n: [s["height"], s["width"]] for n, s in record["scenes"].items()} == sizes
    for scene in record["scenes"].values():
        assert scene["task_seconds"]["eval"] > 0 and scene["task_seconds"]["flt"] > 0
    for stage in ("flt", "eval"):  # per-scene seconds are part of the stage's task seconds
        per_scene = sum(s["task_seconds"][stage] for s in record["scenes"].values())
        assert 0 < per_scene <= record["stages"][stage]["task"] + 1e-9
    assert (method_runs["v1"] / "scenes.png").is_file()


def test_baselines_go_into_run_json_and_the_report(method_runs, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(method_runs["v1"], run)
    add_baselines(run, {"flat map": Metrics(0.0, 0.0, 1.0, 0.0)})
    assert json.loads((run / "run.json").read_text())["baselines"]["flat map"]["ras"] == 1.0
    text = (run / "report.html").read_text()
    assert "flat map" in text and "<td>1.0000</td>" in text


def test_report_of_a_run_without_overlays(method_runs, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(method_runs["v1"], run)
    for thumb in run.glob("case_*/thumb.jpg"):
        thumb.unlink()
    page = parse(write_report(run))
    assert len(page.cards) == 4
    assert "no overlay" in (run / "report.html").read_text()


@pytest.mark.parametrize("missing", ["run.json", "metrics.csv"])
def test_report_needs_the_run_files(method_runs, tmp_path, missing):
    import shutil

    from selo.errors import SeloError

    run = tmp_path / "run"
    shutil.copytree(method_runs["v1"], run)
    (run / missing).unlink()
    with pytest.raises((SeloError, OSError)):
        write_report(run)


def test_scene_previews_are_cached_by_content(method_runs, tmp_path, monkeypatch):
    import shutil

    from selo.pipeline.cache import Cache
    from selo.selo_tasks.report import case_overlay

    record = json.loads((method_runs["v1"] / "run.json").read_text())
    scene = tmp_path / "images" / "0.jpg"
    scene.parent.mkdir()
    shutil.copy(Path(record["images"]) / "0.jpg", scene)
    cache = Cache(tmp_path / "cache")
    first = case_overlay.read_scene_preview(scene, cache)
    assert len(list((tmp_path / "cache" / "previews").glob("*.png"))) == 1

    def no_decimation(*args):
        raise AssertionError("the preview should come from the cache")

    monkeypatch.setattr("selo.pipeline.preview._read_preview", no_decimation)
    np.testing.assert_array_equal(case_overlay.read_scene_preview(scene, cache), first)
    cv2.imwrite(str(scene), cv2.imread(str(scene))[::-1])  # new content: a new preview
    monkeypatch.undo()
    assert not np.array_equal(case_overlay.read_scene_preview(scene, cache), first)
    assert len(list((tmp_path / "cache" / "previews").glob("*.png"))) == 2
