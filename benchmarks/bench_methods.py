"""SeLo v1 against v2 on the synthetic AIR-SLT: time per stage and metrics side by side.

Uses the synthetic AIR-SLT of ``bench_airslt.py`` (built if missing) and the
``color`` encoder; each method runs with an empty embedding cache.

    python benchmarks/bench_methods.py [--scale 1.0] [--workdir /tmp/selo-bench-airslt]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import gib, stamp, write_section
from bench_airslt import run_airslt, stage_cells, synthetic


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/selo-bench-airslt"))
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    images, anno = synthetic(args.workdir, args.scale)
    rows = []
    for method in ("v1", "v2"):
        r = run_airslt(args.workdir, images, anno, f"color-{method}", ["--method", method])
        m = r["mean"]
        rows.append(
            f"| {method} | {r['bench']['wall']:.1f} | {stage_cells(r)} | {gib(r['bench']['peak'])} | "
            f"{m['rsu']:.4f} | {m['rda']:.4f} | {m['ras']:.4f} | {m['rmi']:.4f} |"
        )
        print(rows[-1], flush=True)
    body = "\n".join(
        [
            f"`selo airslt --method v1|v2` on the synthetic AIR-SLT (59 cases, scale {args.scale:g}),",
            "`color` encoder, embedded cluster, empty cache. Published (AMFMN, RSITMD): v1 Rsu",
            "0.6920 / Rda 0.6667 / Ras 0.3323 / Rmi 0.6772 in 27.35 min; v2 0.7199 / 0.6658 /",
            "0.2925 / 0.7021 in 13.34 min on the same machine.",
            "",
            stamp("bench_methods.py", argv),
            "",
            "| method | total s | cut s | sim s | gnt s | flt s | eval s | peak memory | Rsu ↑ | Rda ↑ | Ras ↓ | Rmi ↑ |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
        ]
    )
    write_section("Methods: v1 against v2", body)


if __name__ == "__main__":
    main()
