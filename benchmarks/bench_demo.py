"""Wall time and peak memory of ``selo demo`` from a cold cache (what a newcomer waits).

python benchmarks/bench_demo.py [--workdir /tmp/selo-bench-demo]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from _common import gib, run_selo, stamp, write_section


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/selo-bench-demo"))
    args = parser.parse_args(argv)
    shutil.rmtree(args.workdir, ignore_errors=True)
    wall, peak, out = run_selo(
        ["demo", "--out", str(args.workdir / "demo")], cache=args.workdir / "cache"
    )
    rows = [
        " ".join(line.split())
        for line in out.splitlines()
        if any(k in line for k in ("12 cases", "flat map", "random scores"))
    ]
    body = "\n".join(
        [
            "`selo demo` with an empty cache and no synthetic data yet (it draws 4 scenes,",
            "starts an embedded cluster, runs 12 cases end to end, computes the baselines).",
            "",
            stamp("bench_demo.py", argv),
            "",
            "| wall | peak memory (all processes) |",
            "| ---: | ---: |",
            f"| {wall:.1f} s | {gib(peak)} |",
            "",
            "Its mean row and the two baselines (Rsu, Rda, Ras, Rmi):",
            "",
            *[f"    {r}" for r in rows],
        ]
    )
    write_section("Demo", body)


if __name__ == "__main__":
    main()
