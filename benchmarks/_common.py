"""Shared helpers of the benchmark scripts: machine description, BENCHMARKS.md sections,
peak memory of a process tree, and the stamp every result carries."""

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


def run_selo(args: list[str], *, cache: Path, fresh: bool = True) -> tuple[float, int, str]:
    """Run ``python -m selo ARGS`` with its own cache (emptied first unless ``fresh`` is
    False); (wall seconds, peak bytes, stdout)."""
    import shutil
    import subprocess

    if fresh:
        shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "SELO_CACHE_DIR": str(cache)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "selo", *args],
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
