"""Start-up and exit: what each ``selo`` command imports, what that costs, and how long its
process takes to end once its work is done, in fresh interpreters.

Each command runs as the ``selo`` program does (``cli.main()``), in a new ``python -X
importtime`` process, ``--repeats`` times: ``selo --help``, ``selo localize --help``,
``selo models``, and ``selo localize`` on a small synthetic GeoTIFF (``color``, empty
embedding cache), whose imports are split at its first stage (the moment the run starts
its first ``StageProfiler.stage``: everything imported before it is start-up cost). For
each: the process's wall and CPU seconds (user + system), its exit (seconds from the end
of the command's work to the end of the process: Python's shutdown), the seconds spent
importing (the sum of every module's own import time), and the top-level packages that
cost most (each package's cumulative import time where it was first imported from outside
itself; ``selo`` itself is left out, as it holds everything). Each number is the least of
the repeats (the run least disturbed by other work on a shared machine); the packages are
those of the run with the least import time.

``--state LABEL=PATH`` (repeatable) measures the selo found in the folder PATH (which
holds a ``selo`` package, e.g. ``git archive COMMIT | tar -x -C /tmp/before/selo``;
``--state LABEL`` alone: this environment's) under LABEL; several states are measured
interleaved, command by command and repeat by repeat, so that they share the machine's
state. Without it, the selo of this environment is measured under ``--label``.

Printed and written to the "Start-up" section of BENCHMARKS.md; rows with other labels
are kept, so that a before/after table builds up.

    python benchmarks/bench_startup.py [--label after] [--repeats 5] [--top 8]
        [--state before=/tmp/before --state after=/path/holding/selo]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from _common import BENCHMARKS_MD, byte_compile_selo, make_scene, stamp, write_section

HEADING = "Start-up"
MARKER = "selo-bench-startup: first stage"
DONE = "selo-bench-startup: work done at"
TABLE_HEADER = (
    "| state | command | wall s | CPU s | exit s | imports s | top packages (cumulative import s) |"
)
# runs the CLI as the `selo` program does (cli.main() with the process's arguments), printing
# DONE and the time on stderr once the command's work is done (its exit follows) and, with
# MARKER set, MARKER when the first stage starts; selo.pipeline.profile (which holds the
# stages) is then imported first, as every command with a stage imports it before that
# stage anyway
PROGRAM = """
import sys, time
import selo.selo_tasks.cli as cli

if {split!r}:
    from selo.pipeline import profile

    _stage = profile.StageProfiler.stage

    def stage(self, *args, **kwargs):
        if not getattr(stage, "seen", False):
            stage.seen = True
            print({marker!r}, file=sys.stderr, flush=True)
        return _stage(self, *args, **kwargs)

    profile.StageProfiler.stage = stage

_work = cli.cli.main

def work(*args, **kwargs):
    try:
        return _work(*args, **kwargs)
    finally:
        print({done!r}, time.time(), file=sys.stderr, flush=True)

cli.cli.main = work
cli.main()
"""
_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)\s*$")


@dataclass
class Node:
    """One module in ``-X importtime``'s tree: its own and cumulative microseconds."""

    name: str
    level: int
    self_us: int
    cumulative_us: int
    children: list[Node] = field(default_factory=list)


def parse_importtime(lines: list[str]) -> list[Node]:
    """The import tree of ``-X importtime`` lines (children are printed before their parent)."""
    stack: list[Node] = []
    for line in lines:
        m = _LINE.match(line)
        if not m:
            continue
        self_us, cum_us, indent, name = int(m[1]), int(m[2]), len(m[3]), m[4]
        level = (indent - 1) // 2
        node = Node(name, level, self_us, cum_us)
        while stack and stack[-1].level > level:
            node.children.insert(0, stack.pop())
        stack.append(node)
    return stack


def import_seconds(roots: list[Node]) -> float:
    """Seconds spent importing: every module's own time, summed."""

    def total(n: Node) -> int:
        return n.self_us + sum(total(c) for c in n.children)

    return sum(total(r) for r in roots) / 1e6


def top_packages(roots: list[Node], n: int, skip: tuple[str, ...] = ("selo",)) -> list[tuple]:
    """(package, seconds) of the ``n`` costliest top-level packages: each package's cumulative
    time summed over the places where it was imported from outside itself."""
    cost: dict[str, int] = defaultdict(int)

    def walk(node: Node, parent_root: str | None) -> None:
        root = node.name.split(".")[0]
        if root != parent_root:
            cost[root] += node.cumulative_us
        for c in node.children:
            walk(c, root)

    for r in roots:
        walk(r, None)
    ranked = sorted(((k, v / 1e6) for k, v in cost.items() if k not in skip), key=lambda kv: -kv[1])
    return ranked[:n]


@dataclass
class Run:
    """One process: wall and CPU seconds, seconds from the end of its work to its end, and
    its stderr lines."""

    wall: float
    cpu: float
    exit: float
    lines: list[str]


def run(args: list[str], *, cache: Path, split: bool = False, path: str | None = None) -> Run:
    """``selo ARGS`` in a new ``python -X importtime`` process (the selo in the folder
    ``path`` if given)."""
    code = PROGRAM.format(split=split, marker=MARKER, done=DONE)
    env = {**os.environ, "SELO_CACHE_DIR": str(cache)}
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join([path, *filter(None, [env.get("PYTHONPATH")])])
    byte_compile_selo(env=env)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code, *args],
        env=env, capture_output=True, text=True, cwd=cache.parent, timeout=600,
    )  # fmt: skip
    ended, wall = time.time(), time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = "\n".join(line for line in proc.stderr.splitlines() if not _LINE.match(line))
        raise SystemExit(f"selo {' '.join(args)} failed:\n{tail[-2000:]}")
    lines = proc.stderr.splitlines()
    done = next(float(line.split()[-1]) for line in lines if line.startswith(DONE))
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return Run(wall, cpu, ended - done, lines)


def rows_of(runs: list[Run], *, top: int, split: bool) -> list[dict]:
    """Rows for one command of one state: the whole process, and with ``split`` its
    start-up (the imports before the first stage); each number the least of the runs, the
    packages those of the run with the least import time."""
    parts = {"": [r.lines for r in runs]}
    if split:
        if any(MARKER not in r.lines for r in runs):
            raise SystemExit("the command started no stage")
        parts = {
            "before its first stage": [r.lines[: r.lines.index(MARKER)] for r in runs],
            "whole run": [r.lines for r in runs],
        }
    rows = []
    for part, lines in parts.items():
        trees = [parse_importtime(part_lines) for part_lines in lines]
        seconds = [import_seconds(t) for t in trees]
        least = seconds.index(min(seconds))
        whole = not part.startswith("before")
        rows.append(
            {
                "part": part,
                "wall": min(r.wall for r in runs) if whole else None,
                "cpu": min(r.cpu for r in runs) if whole else None,
                "exit": min(r.exit for r in runs) if whole else None,
                "imports": seconds[least],
                "top": top_packages(trees[least], top),
            }
        )
    return rows


def earlier_rows(text: str, label: str) -> list[str]:
    """Rows of the section already in ``text`` with another state label (kept)."""
    if f"## {HEADING}" not in text:
        return []
    section = text.split(f"## {HEADING}", 1)[1].split("\n## ", 1)[0]
    return [
        line
        for line in section.splitlines()
        if line.startswith("| ")
        and line.count("|") == TABLE_HEADER.count("|")
        and line.split("|")[1].strip() not in (label, "state", "---")
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", default="before", help="the state measured (table column)")
    parser.add_argument(
        "--state",
        action="append",
        default=[],
        metavar="LABEL[=PATH]",
        help="measure the selo in the folder PATH (default: this environment's) under LABEL "
        "(repeatable: the states interleaved)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top", type=int, default=8, help="packages listed per command")
    parser.add_argument("--size", type=int, default=1024, help="side of the localize scene")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=BENCHMARKS_MD)
    args = parser.parse_args(argv)
    states = {label: path or None for label, _, path in map(lambda s: s.partition("="), args.state)}
    states = states or {args.label: None}
    with tempfile.TemporaryDirectory(prefix="selo-startup-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        scene = make_scene(work / f"scene-{args.size}.tif", args.size)
        commands = [
            (["--help"], False),
            (["localize", "--help"], False),
            (["models"], False),
            (["localize", str(scene), "-q", "white roofs", "--out", str(work / "out")], True),
        ]
        rows = []
        for command, split in commands:
            runs: dict[str, list[Run]] = {label: [] for label in states}
            for i in range(args.repeats):
                for label, path in states.items():  # interleaved
                    cache = work / f"cache-{label}-{i}"
                    runs[label].append(run(command, cache=cache, split=split, path=path))
            shown = " ".join(["selo", *command]).replace(str(scene), "SCENE")
            shown = shown.replace(str(work / "out"), "OUT")
            for label in states:
                for r in rows_of(runs[label], top=args.top, split=split):
                    what = f"`{shown}`" + (f" ({r['part']})" if r["part"] else "")
                    tops = ", ".join(f"{name} {s:.2f}" for name, s in r["top"])
                    cells = [
                        "–" if r[k] is None else f"{r[k]:.{d}f}"
                        for k, d in (("wall", 2), ("cpu", 2), ("exit", 3))
                    ]
                    rows.append(
                        f"| {label} | {what} | {' | '.join(cells)} | {r['imports']:.2f} | {tops} |"
                    )
                    print(rows[-1], flush=True)
    text = args.out.read_text() if args.out.exists() else ""
    body = "\n".join(
        [
            "Imports and exit of each command, each run as the `selo` program in a new",
            "`python -X importtime` process: wall and CPU seconds (user + system) of the",
            "process, exit seconds (from the end of the command's work to the end of the",
            "process: Python's shutdown), seconds spent importing (every module's own import",
            "time, summed), and the top-level packages that cost most (cumulative import",
            "seconds where each was first imported from outside itself; nested packages count",
            f"in both). `selo localize` runs on a synthetic {args.size}² GeoTIFF with `color`",
            "and an empty cache; its start-up is what it imports before its first stage",
            f"starts. Each number the least of {args.repeats} runs"
            + (", the states interleaved" if len(states) > 1 else "")
            + "; the packages those of the run with the least import time.",
            "",
            stamp("bench_startup.py", argv),
            "",
            TABLE_HEADER,
            "| --- | --- | ---: | ---: | ---: | ---: | --- |",
            *[r for r in earlier_rows(text, args.label) if r.split("|")[1].strip() not in states],
            *rows,
        ]
    )
    write_section(HEADING, body, args.out)


if __name__ == "__main__":
    main()
