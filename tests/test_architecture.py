"""The package is its architecture: dependencies point one way (import-linter contracts in
pyproject.toml), and the stages are found by name."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the environment running the tests (activated or not), else whatever PATH finds
_BESIDE = Path(sys.executable).with_name("lint-imports")
LINT_IMPORTS = str(_BESIDE) if _BESIDE.exists() else shutil.which("lint-imports")


@pytest.mark.skipif(LINT_IMPORTS is None, reason="import-linter not installed")
def test_import_contracts_are_kept():
    proc = subprocess.run(
        [LINT_IMPORTS, "--config", str(ROOT / "pyproject.toml")],
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
