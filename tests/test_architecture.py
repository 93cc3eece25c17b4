"""The package is its architecture: dependencies point one way (import-linter contracts in
pyproject.toml), and the stages are found by name."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter not installed")
def test_import_contracts_are_kept():
    proc = subprocess.run(
        ["lint-imports", "--config", str(ROOT / "pyproject.toml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 kept, 0 broken" in proc.stdout


def test_every_stage_has_its_module():
    for name in ("cut", "sim", "gnt", "flt"):
        assert (ROOT / "pipeline" / f"{name}.py").is_file()
    assert (ROOT / "selo_tasks" / "eval.py").is_file() and (
        ROOT / "selo_tasks" / "metrics.py"
    ).is_file()


def test_the_package_imports_itself_relatively():
    """Static tools (import graphs, linters) follow explicit relative imports; an absolute
    ``selo.`` import inside the package would hide an arrow, because the repository root
    is the package."""
    offenders = []
    for folder in ("pipeline", "selo_tasks", "models", "cluster"):
        for path in (ROOT / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                stripped = line.strip()
                if stripped.startswith(("from selo.", "import selo.", "from selo import")):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert not offenders, offenders
