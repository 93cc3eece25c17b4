"""``selo compare``: same cases checked, the right differences, clear errors."""

from __future__ import annotations

import csv
import json
import shutil
from html.parser import HTMLParser
from urllib.parse import unquote

import pytest

from selo.errors import InputNotFoundError, RunFolderError, RunMismatchError
from selo.selo_tasks.compare import compare_runs, load_run
from selo.selo_tasks.report.compare_page import write_compare_html

METRICS = ("rsu", "ras", "rda", "rmi")


def per_case(run) -> dict[int, dict[str, float]]:
    with (run / "metrics.csv").open(newline="") as f:
        return {
            int(r["case"]): {k: float(r[k]) for k in METRICS}
            for r in csv.DictReader(f)
            if r["case"] != "mean"
        }


def copy_run(method_runs, tmp_path, name="v2"):
    run = tmp_path / name
    shutil.copytree(method_runs[name], run)
    return run


def drop_case(run, index: int) -> None:
    """Edit a run as if it had scored one case fewer (e.g. --skip-missing)."""
    record = json.loads((run / "run.json").read_text())
    record["case_list"] = [c for c in record["case_list"] if c["case"] != index]
    (run / "run.json").write_text(json.dumps(record))
    lines = (run / "metrics.csv").read_text().splitlines()
    (run / "metrics.csv").write_text(
        "\n".join(x for x in lines if not x.startswith(f"{index},")) + "\n"
    )


def test_differences_are_v2_minus_v1_largest_change_first(method_runs):
    a, b = method_runs["v1"], method_runs["v2"]
    result = compare_runs([load_run(a), load_run(b)])
    ma, mb = per_case(a), per_case(b)
    assert sorted(d.case for d in result.diffs) == [0, 1, 2, 3]
    for d in result.diffs:
        delta = d.delta(1)
        for k in METRICS:
            assert getattr(delta, k) == pytest.approx(mb[d.case][k] - ma[d.case][k], abs=1e-12)
    changes = [abs(mb[d.case]["rmi"] - ma[d.case]["rmi"]) for d in result.diffs]
    assert changes == sorted(changes, reverse=True)
    for run_means, m in zip(result.means, (ma, mb), strict=True):
        assert run_means.rmi == pytest.approx(sum(v["rmi"] for v in m.values()) / 4)
    assert result.left_out == ()


def test_cli_prints_the_tables_and_writes_the_page(run_cli, method_runs, tmp_path):
    page = tmp_path / "cmp" / "compare.html"
    code, out, err = run_cli(
        "compare", method_runs["v1"], method_runs["v2"], "--out", page, "--top", "2"
    )
    assert code == 0, err
    assert "Mean SeLo metrics over 4 shared cases" in out and "v2, color" in out
    assert "largest change of Rmi first" in out

    class Links(HTMLParser):
        links: list[str] = []

        def handle_starttag(self, tag, attrs):
            self.links += [v for k, v in attrs if k in ("href", "src")]

    parser = Links()
    parser.feed(page.read_text())
    relative = [x for x in parser.links if not x.startswith("data:")]
    assert sum(x.startswith("data:image/jpeg") for x in parser.links) == 8  # 4 cases x 2 runs
    assert relative and all((page.parent / unquote(x)).is_file() for x in relative)


def test_runs_of_different_cases_are_refused_unless_common(method_runs, tmp_path, run_cli):
    b = copy_run(method_runs, tmp_path)
    drop_case(b, 2)
    runs = [load_run(method_runs["v1"]), load_run(b)]
    with pytest.raises(RunMismatchError, match=r"1 only in A: v1 \(2\).*--common to compare the 3"):
        compare_runs(runs)
    result = compare_runs(runs, common=True)
    assert sorted(d.case for d in result.diffs) == [0, 1, 3] and result.left_out == (2,)
    code, _, err = run_cli("compare", method_runs["v1"], b, "--out", tmp_path / "c.html")
    assert code == 2 and err.count("\n") == 1 and "scored different cases" in err


def test_a_case_with_other_polygons_is_a_different_case(method_runs, tmp_path):
    b = copy_run(method_runs, tmp_path)
    record = json.loads((b / "run.json").read_text())
    record["case_list"][0]["digest"] = "0" * 16  # as if its annotation had changed
    record["annotations"]["digest"] = "f" * 16
    (b / "run.json").write_text(json.dumps(record))
    runs = [load_run(method_runs["v1"]), load_run(b)]
    with pytest.raises(RunMismatchError, match=r"1 differ in image, query or polygons \(0\)"):
        compare_runs(runs)
    with pytest.raises(RunMismatchError, match="different annotations"):
        compare_runs(runs)
    assert compare_runs(runs, common=True).left_out == (0,)


@pytest.mark.parametrize(
    "damage, error, message",
    [
        (lambda r: (r / "run.json").unlink(), RunFolderError, "run.json: not found"),
        (lambda r: (r / "run.json").write_text("{"), RunFolderError, "run.json: cannot be read"),
        (lambda r: (r / "metrics.csv").unlink(), RunFolderError, "metrics.csv: not found"),
        (
            lambda r: (r / "metrics.csv").write_text("case,rsu\n0,x\n"),
            RunFolderError,
            "metrics.csv, line 2",
        ),
        (
            lambda r: (r / "run.json").write_text('{"status": "running"}'),
            RunFolderError,
            "not finished",
        ),
        (
            lambda r: (r / "run.json").write_text('{"status": "complete"}'),
            RunFolderError,
            "no valid case list",
        ),
        (lambda r: shutil.rmtree(r), InputNotFoundError, "run folder not found"),
    ],
    ids=["no-run-json", "bad-json", "no-metrics", "bad-metrics", "unfinished", "old", "gone"],
)
def test_a_folder_that_is_not_a_finished_run(method_runs, tmp_path, damage, error, message):
    run = copy_run(method_runs, tmp_path)
    damage(run)
    with pytest.raises(error, match=message):
        load_run(run)


def test_three_runs_and_the_page(method_runs, tmp_path):
    runs = [load_run(method_runs[m]) for m in ("v1", "v2", "v1")]
    result = compare_runs(runs)
    assert result.labels[0] != result.labels[2]  # same folder name: full paths
    assert all(d.delta(2).rmi == 0 for d in result.diffs)
    text = write_compare_html(result, tmp_path / "c.html").read_text()
    assert text.count("<b>case ") == 4


@pytest.mark.parametrize("url", ["s3://bucket/run", "https://example.test/run", "/vsis3/b/run"])
def test_a_run_in_an_object_store_is_named_in_one_line(run_cli, url):
    with pytest.raises(RunFolderError, match="reads run folders on this machine's disk"):
        load_run(url)
    code, _, err = run_cli("compare", url, url)
    assert code == 2 and url in err and len(err.strip().splitlines()) == 1, err
