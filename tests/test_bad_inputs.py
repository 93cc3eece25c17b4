"""Every entry of the bad-input catalogue, through the CLI: one clear line, exit 2, nothing lost."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from bad_inputs import CATALOGUE, markdown

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("bad", CATALOGUE, ids=[b.name for b in CATALOGUE])
def test_bad_input(bad, run_cli, tmp_path, cache_dir, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    made = bad.args(work)  # the arguments, or a context (a server running) yielding them
    if bad.patch is not None:
        bad.patch(monkeypatch)
    with made if hasattr(made, "__enter__") else contextlib.nullcontext(made) as args:
        code, out, err = run_cli(*args)
    assert code == bad.code, (out, err)
    if bad.code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1, err  # one line, no traceback
        assert lines[0].startswith("selo: error: ") or lines[0].startswith("Error: "), err
        assert bad.message in lines[0]
        assert "Traceback" not in err
    else:
        assert bad.message in out + err
    # nothing half-written is left under a final name
    leftovers = [p for p in tmp_path.rglob("*") if ".tmp-" in p.name or p.name.endswith(".partial")]
    assert not leftovers, leftovers


def test_failed_runs_leave_no_finished_looking_outputs(run_cli, tmp_path, cache_dir, monkeypatch):
    disk_full = next(b for b in CATALOGUE if b.name == "disk fills up while writing")
    work = tmp_path / "work"
    work.mkdir()
    disk_full.patch(monkeypatch)
    assert run_cli(*disk_full.args(work))[0] == 2
    assert not list((work / "out").rglob("selo_map.png"))
    assert '"status": "running"' in (work / "out" / "run.json").read_text()


def test_debug_shows_the_traceback(run_cli, tmp_path):
    code, _, err = run_cli("--debug", "localize", tmp_path / "missing.tif", "-q", "x")
    assert code == 2 and "selo: error:" in err
    code, _, err = run_cli("--debug", "eval", "--maps", tmp_path / "none")
    assert code == 2 and "Traceback" in err


def test_readme_troubleshooting_is_generated_from_the_catalogue():
    assert markdown() in README.read_text(), "run: python tests/bad_inputs.py, paste into README.md"
