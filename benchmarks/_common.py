"""Shared helpers of the benchmark scripts: machine description, BENCHMARKS.md sections,
peak memory of a process tree, the stamp every result carries, and the synthetic
GeoTIFF scene the one-scene benchmarks share."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shlex
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
# the slow reference implementations (test oracles) live in tests/reference.py
sys.path.insert(0, str(ROOT / "tests"))


def machine() -> str:
    """CPU model, core count and memory, from /proc/cpuinfo where there is one."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        model = found.group(1).strip() if found else model
    gib = psutil.virtual_memory().total / 2**30
    return f"{model}, {os.cpu_count()} cores, {gib:.0f} GiB"


def stamp(script: str, argv: list[str] | None = None) -> str:
    """Markdown lines: machine, date, versions and the command that produced a result."""
    import numpy

    args = sys.argv[1:] if argv is None else argv
    command = " ".join(["python", f"benchmarks/{script}", *map(shlex.quote, args)])
    return "\n".join(
        [
            f"- machine: {machine()}",
            f"- date: {dt.date.today().isoformat()}; "
            f"Python {platform.python_version()}, numpy {numpy.__version__}",
            f"- command: `{command}`",
        ]
    )


def write_section(heading: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the ``## heading`` section of BENCHMARKS.md, keeping the others."""
    head = f"## {heading}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"{head}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(head)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)
    print(f"written to {path} (section '{heading}')")


class PeakMemory:
    """Samples the resident memory of a process and all its children (every 50 ms).

    ``peak`` is the largest sum seen, in bytes: the memory the whole run needed,
    workers included.
    """

    def __init__(self, pid: int | None = None, interval: float = 0.05) -> None:
        self.process = psutil.Process(pid or os.getpid())
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.process, *self.process.children(recursive=True)]
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                return
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


# the bytecode of selo's modules, written once per interpreter before selo is timed
BYTE_COMPILE = """
import os, py_compile, selo
root = os.path.dirname(selo.__file__)
for folder, subfolders, files in os.walk(root):
    subfolders[:] = [d for d in subfolders if d[0] not in "._" and d not in SKIP]
    for name in files:
        if name.endswith(".py"):
            py_compile.compile(os.path.join(folder, name), doraise=True)
""".replace("SKIP", repr({"tests", "benchmarks", "node_modules"}))
_COMPILED: set[tuple[str, str]] = set()


def byte_compile_selo(python: str | None = None, env: dict | None = None) -> None:
    """Write the bytecode of the selo that ``python`` imports, as ``pip install`` does (once
    per interpreter and ``PYTHONPATH``). An editable checkout under PYTHONDONTWRITEBYTECODE
    (as on CI machines) would otherwise compile each of its modules in every process: 0.13 s
    of a second query on the 10k² scene that no installed selo pays."""
    import subprocess

    env = dict(os.environ if env is None else env)
    key = (python or sys.executable, env.get("PYTHONPATH", ""))
    if key not in _COMPILED:
        subprocess.run([key[0], "-c", BYTE_COMPILE], env=env, check=True, timeout=600)
        _COMPILED.add(key)


def run_selo(
    args: list[str], *, cache: Path | str, fresh: bool = True, python: str | None = None
) -> tuple[float, int, str]:
    """Run ``python -m selo ARGS`` with its own cache (emptied first unless ``fresh`` is
    False), by this interpreter or ``python`` (another installation's); (wall seconds, peak
    bytes, stdout)."""
    import shutil
    import subprocess

    if fresh:
        shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "SELO_CACHE_DIR": str(cache)}
    byte_compile_selo(python, env)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [python or sys.executable, "-m", "selo", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with PeakMemory(proc.pid) as mem:
        out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"selo {' '.join(args)} failed:\n{err}")
    return time.perf_counter() - t0, mem.peak, out


def make_scene(path: Path, size: int) -> Path:
    """A textured synthetic scene (scene 15.jpg's polygons scaled to ``size``), written
    strip by strip so that even 20,000² fits in memory."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from selo.selo_tasks.annotations import load_annotations
    from selo.selo_tasks.synth import render_scene

    if path.exists():
        return path
    cases = [c for c in load_annotations() if c.image == "15.jpg"]
    tile = min(size, 5000)
    base = render_scene((tile, tile), cases, scale=tile / 3000)
    profile = dict(
        driver="GTiff", height=size, width=size, count=3, dtype="uint8", crs="EPSG:32633",
        transform=from_origin(500000, 4600000, 0.5, 0.5), tiled=True, blockxsize=512,
        blockysize=512, compress="deflate",
    )  # fmt: skip
    tmp = path.with_suffix(".partial.tif")
    with rasterio.open(tmp, "w", **profile) as ds:
        for top in range(0, size, tile):
            rows = min(tile, size - top)
            strip = np.tile(base[:rows], (1, -(-size // tile), 1))[:, :size]
            ds.write(strip.transpose(2, 0, 1), window=Window(0, top, size, rows))
    tmp.rename(path)
    return path
