"""The package is its architecture: dependencies point one way (import-linter contracts in
pyproject.toml), and the stages are found by name."""

from __future__ import annotations

import ast
import json
import logging
import re
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


# --- one definition of each table and layout -----------------------------------------------

PACKAGE = ("pipeline", "selo_tasks", "models", "cluster")


def package_sources() -> list[Path]:
    modules = sorted(ROOT.glob("*.py"))
    return modules + [p for folder in PACKAGE for p in sorted((ROOT / folder).rglob("*.py"))]


def string_literals(path: Path) -> list[tuple[int, str]]:
    """(line, text) of the string literals of a module that are not documentation (module,
    class, function and attribute docstrings); an f-string's text with ``{}`` for each value."""
    tree = ast.parse(path.read_text())
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for i, statement in enumerate(body):
            documents = i == 0 or isinstance(body[i - 1], ast.Assign | ast.AnnAssign)
            if documents and isinstance(statement, ast.Expr):
                skip.add(id(statement.value))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            found.append((node.lineno, text))
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
        ):
            found.append((node.lineno, node.value))
    return found


def opencv_calls(path: Path) -> set[str]:
    """The ``cv2.<function>`` names a module uses."""
    return {
        node.attr
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "cv2"
    }


INDICATOR = re.compile(r"Δ?(rsu|rda|ras|rmi|Rsu|Rda|Ras|Rmi)( [↑↓])?")  # a name, label, heading
QUOTED_INDICATOR = re.compile(r"""['"](rsu|rda|ras|rmi)['"]""")  # e.g. in generated JavaScript
SPEC_FORM = re.compile(r"(color|openclip|hf-clip|longclip|amfmn):(<[\w.]+>|[A-Z.]+)")
RUN_FOLDER_NAMES = (
    "run.json",
    "metrics.csv",
    "metrics.json",
    "report.html",
    "stages.png",
    "scenes.png",
    "profile.html",
    "selo_map.png",
    "windows.csv",
    "overlay.png",
    "overlay_plain.png",
    "thumb.jpg",
)
LOCALIZE_NAMES = ("run.json", "selo_map.png", "windows.csv", "overlay.png")  # its own layout


def layout_name(text: str) -> str | None:
    """The run-folder or cache name a path-like literal spells (``case_NN`` folders too)."""
    if not text or re.search(r"\s", text):
        return None  # prose
    if re.match(r"case_(\{|NN|\d)", text):
        return "case_NN"
    last = text.rsplit("/", 1)[-1]
    return last if last in (*RUN_FOLDER_NAMES, "previews") else None


def definitions(text: str) -> list[str]:
    """What a string literal defines a second time, if it is not in its owner module."""
    found = []
    if INDICATOR.fullmatch(text) or QUOTED_INDICATOR.search(text):
        found.append("indicator")
    if SPEC_FORM.fullmatch(text) or len(SPEC_FORM.findall(text)) > 1:  # a form, or a list
        found.append("spec form")
    if layout_name(text):
        found.append(layout_name(text))
    return found


def test_each_table_and_layout_is_defined_once():
    """The indicator table (names, labels, directions) lives in selo_tasks/metrics.py, the
    encoder kinds' spec forms in models/presets.py, the run folder's names in
    selo_tasks/run_folder.py (a localize output folder's own files in localize.py), the
    cache's in pipeline/cache.py, and OpenCV's finishing filters in pipeline/filters.py: a
    second spelling elsewhere in the package is a second definition."""
    owners = {
        "indicator": {"selo_tasks/metrics.py"},
        "spec form": {"models/presets.py"},
        "previews": {"pipeline/cache.py"},
        **{name: {"selo_tasks/run_folder.py"} for name in (*RUN_FOLDER_NAMES, "case_NN")},
    }
    for name in LOCALIZE_NAMES:
        owners[name] = owners[name] | {"selo_tasks/localize.py"}
    offenders = []
    for path in package_sources():
        where = path.relative_to(ROOT).as_posix()
        for line, text in string_literals(path):
            offenders += [
                f"{where}:{line}: {text.strip()!r} ({what})"
                for what in definitions(text.strip())
                if where not in owners[what]
            ]
        filters = opencv_calls(path) & {"medianBlur", "GaussianBlur"}
        if filters and where != "pipeline/filters.py":
            offenders.append(f"{where}: calls {filters}, the filter table's (pipeline/filters.py)")
    for script in (ROOT / "selo_tasks" / "serve" / "static").glob("*.js"):
        text = script.read_text()
        if QUOTED_INDICATOR.search(text) or re.search(r"\b(Rsu|Rda|Ras|Rmi)\b", text):
            offenders.append(f"{script.name}: spells an indicator (the server sends the table)")
    assert not offenders, "\n".join(offenders)


def test_the_scan_finds_a_second_definition(tmp_path):
    """The scan above is not blind: it finds each kind of second definition."""
    module = tmp_path / "pipeline" / "second.py"
    module.parent.mkdir()
    module.write_text(
        '"""Docstrings may say Rsu and metrics.json."""\n'
        'KEYS = ("rsu", "Ras ↓")\n'
        'HELP = "openclip:ARCH"\n'
        'PROSE = f"use hf-clip:<dir> or {1}: metrics.json is written last"\n'
        "def case(out, i):\n"
        '    return out / f"case_{i:02d}" / "metrics.json"\n'
    )
    found = sorted(what for _, text in string_literals(module) for what in definitions(text))
    assert found == ["case_NN", "indicator", "indicator", "metrics.json", "spec form"]


def test_an_installed_selo_has_every_package_and_file():
    """``pip install selo`` (not editable) ships what pyproject.toml lists: every folder of
    the package holding code is a listed package, and every other file a listed pattern
    matches (a missing `selo.selo_tasks.report` once broke every installed command)."""
    import fnmatch
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages, data = set(config["packages"]), config["package-data"]
    tracked = subprocess.run(
        ["git", "ls-files"], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout.split()
    outside = ("tests/", "benchmarks/", "docs/", ".ci/", ".")
    missing = []
    for name in tracked:
        if name.startswith(outside) or "/" not in name and not name.endswith((".py", ".typed")):
            continue
        folder, _, file = name.rpartition("/")
        package = "selo" + ("." + folder.replace("/", ".") if folder else "")
        if file.endswith(".py"):
            if package not in packages:
                missing.append(f"{name}: package {package} not listed")
        elif not any(
            fnmatch.fnmatch(name.removeprefix(_folder(owner)), pattern)
            for owner, patterns in data.items()
            if name.startswith(_folder(owner))
            for pattern in patterns
        ):
            missing.append(f"{name}: no package-data pattern matches it")
    assert not missing, missing


def _folder(package: str) -> str:
    """The folder of a package of the installed ``selo`` in this repository ("" for selo)."""
    parts = package.split(".")[1:]
    return "/".join(parts) + "/" if parts else ""
