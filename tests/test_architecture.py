"""The package is its architecture: dependencies point one way (import-linter contracts in
pyproject.toml), and the stages are found by name."""

from __future__ import annotations

import json
import logging
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


_SNAPSHOT = r"""
import importlib, json, logging, os, pkgutil, sys, warnings

def snapshot():
    loggers = {}
    for name, logger in [("", logging.root), *logging.root.manager.loggerDict.items()]:
        if isinstance(logger, logging.Logger):
            loggers[name] = [logger.level, [type(f).__name__ for f in logger.filters],
                             [type(h).__name__ for h in logger.handlers],
                             logger.propagate, logger.disabled]
    import rasterio.env
    return {"loggers": loggers, "warnings": [repr(f) for f in warnings.filters],
            "env": dict(os.environ), "gdal_cachemax": rasterio.env.get_gdal_config("GDAL_CACHEMAX")}

def selo_modules():
    import selo
    names = ["selo"]
    for info in pkgutil.walk_packages(selo.__path__, "selo."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return names
"""


def _python(code: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _SNAPSHOT + code], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_selo_leaves_the_host_alone():
    """Importing selo and every subpackage changes no logging configuration, warnings filter,
    environment variable or GDAL setting of the host process (the libraries selo imports are
    imported first, so that only selo's own doing is compared)."""
    imported = _python(
        "for n in selo_modules(): importlib.import_module(n)\n"
        "print(json.dumps(sorted(m for m in sys.modules if not m.startswith('selo'))))"
    )
    before_after = _python(
        f"deps = {imported!r}\n"
        "for m in deps:\n"
        "    try: importlib.import_module(m)\n"
        "    except Exception: pass\n"
        "before = snapshot()\n"
        "for n in selo_modules(): importlib.import_module(n)\n"
        "print(json.dumps([before, snapshot()]))"
    )
    before, after = before_after
    assert after["warnings"] == before["warnings"]
    assert after["env"] == before["env"]
    assert after["gdal_cachemax"] == before["gdal_cachemax"]
    for name, state in after["loggers"].items():
        if name in before["loggers"]:
            assert state == before["loggers"][name], name
        else:  # a logger selo made (logging.getLogger(__name__)) is not configured
            assert state == [logging.NOTSET, [], [], True, False], name
