"""Start-up: what each ``selo`` command imports, and what that costs, in fresh interpreters.

Each command runs in a new ``python -X importtime`` process (``--repeats``
times; the run with the least import time is kept, the least disturbed by
other work on the machine): ``selo --help``, ``selo localize --help``, ``selo
models``, and ``selo localize`` on a small synthetic GeoTIFF (``color``, empty
embedding cache), whose imports are split at its first stage (the moment the
run starts its first ``StageProfiler.stage``: everything imported before it is
start-up cost). For each: the process's wall seconds, the seconds spent
importing (the sum of every module's own import time), and the top-level
packages that cost most (each package's cumulative import time where it was
first imported from outside itself; ``selo`` itself is left out, as it holds
everything).

Printed and written to the "Start-up" section of BENCHMARKS.md. ``--label``
names the state measured (e.g. "before"); rows with other labels are kept, so
that a before/after table builds up.

    python benchmarks/bench_startup.py [--label before] [--repeats 3] [--top 8]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from _common import BENCHMARKS_MD, make_scene, stamp, write_section

HEADING = "Start-up"
MARKER = "selo-bench-startup: first stage"
TABLE_HEADER = "| state | command | wall s | imports s | top packages (cumulative import s) |"
# runs the CLI as ``python -m selo`` does, printing MARKER on stderr when the first stage
# starts; selo.pipeline.profile (which holds the stages) is imported first, as every command
# with a stage imports it before that stage anyway
STAGE_MARKER = f"""
import sys
from selo.pipeline import profile

_stage = profile.StageProfiler.stage

def stage(self, *args, **kwargs):
    if not getattr(stage, "seen", False):
        stage.seen = True
        print({MARKER!r}, file=sys.stderr, flush=True)
    return _stage(self, *args, **kwargs)

profile.StageProfiler.stage = stage
from selo.selo_tasks.cli import main

sys.exit(main(sys.argv[1:]))
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


def run(args: list[str], *, cache: Path, marker: bool = False) -> tuple[float, list[str]]:
    """(wall seconds, stderr lines) of ``python -X importtime -m selo ARGS`` in a new process."""
    command = [sys.executable, "-X", "importtime"]
    command += ["-c", STAGE_MARKER] if marker else ["-m", "selo"]
    env = {**os.environ, "SELO_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    proc = subprocess.run(
        [*command, *args], env=env, capture_output=True, text=True, cwd=cache.parent, timeout=600
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join(line for line in proc.stderr.splitlines() if not _LINE.match(line))
        raise SystemExit(f"selo {' '.join(args)} failed:\n{tail[-2000:]}")
    return wall, proc.stderr.splitlines()


def measure(args: list[str], *, work: Path, repeats: int, top: int, split: bool) -> list[dict]:
    """Rows for one command: the whole process, and with ``split`` its start-up (the imports
    before the first stage); the repeat with the least import time is kept."""
    best: dict[str, dict] = {}
    for i in range(repeats):
        cache = work / f"cache-{i}"
        wall, lines = run(args, cache=cache, marker=split)
        parts = {"whole run" if split else "": lines}
        if split:
            if MARKER not in lines:
                raise SystemExit(f"selo {' '.join(args)} started no stage")
            parts["before its first stage"] = lines[: lines.index(MARKER)]
        for part, part_lines in parts.items():
            roots = parse_importtime(part_lines)
            row = {
                "part": part,
                "wall": wall,
                "imports": import_seconds(roots),
                "top": top_packages(roots, top),
            }
            if part not in best or row["imports"] < best[part]["imports"]:
                best[part] = row
    return [best[p] for p in reversed(list(best))]  # the start-up, then the whole run


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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top", type=int, default=8, help="packages listed per command")
    parser.add_argument("--size", type=int, default=1024, help="side of the localize scene")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=BENCHMARKS_MD)
    args = parser.parse_args(argv)
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
            shown = " ".join(["selo", *command]).replace(str(scene), "SCENE")
            shown = shown.replace(str(work / "out"), "OUT")
            for r in measure(command, work=work, repeats=args.repeats, top=args.top, split=split):
                what = f"`{shown}`" + (f" ({r['part']})" if r["part"] else "")
                tops = ", ".join(f"{name} {s:.2f}" for name, s in r["top"])
                wall = "–" if r["part"].startswith("before") else f"{r['wall']:.2f}"
                rows.append(f"| {args.label} | {what} | {wall} | {r['imports']:.2f} | {tops} |")
                print(rows[-1], flush=True)
    text = args.out.read_text() if args.out.exists() else ""
    body = "\n".join(
        [
            "Imports of each command, each in a new `python -X importtime` process: wall seconds of",
            "the process, seconds spent importing (every module's own import time, summed), and",
            "the top-level packages that cost most (cumulative import seconds where each was first",
            "imported from outside itself; nested packages count in both). `selo localize` runs",
            f"on a synthetic {args.size}² GeoTIFF with `color` and an empty cache; its start-up is",
            "what it imports before its first stage starts. Best of "
            f"{args.repeats} runs (least import time).",
            "",
            stamp("bench_startup.py", argv),
            "",
            TABLE_HEADER,
            "| --- | --- | ---: | ---: | --- |",
            *earlier_rows(text, args.label),
            *rows,
        ]
    )
    write_section(HEADING, body, args.out)


if __name__ == "__main__":
    main()
