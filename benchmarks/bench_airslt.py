"""The whole synthetic AIR-SLT (59 cases, 22 scenes at full size) with ``selo airslt``.

Builds the synthetic AIR-SLT once (``selo synth-airslt``: scenes of the real
sizes, two of them 10000×10001), then runs ``selo airslt`` with an empty
embedding cache on the embedded cluster for each model:

- ``color``, the weight-free default;
- ``vit-b-32``: open_clip ViT-B-32 with random weights (saved to a local
  checkpoint), i.e. the cost of a real CLIP model (the metrics mean nothing).

Reports total and per-stage seconds (wall, from the run's own profiler), peak
memory of all processes, and the published v1 time for the same test set
(16.92 min on an RTX 3090 with AMFMN). On a GPU machine the same command uses
the GPU (``--device`` defaults to CUDA when present).

    python benchmarks/bench_airslt.py [--models color vit-b-32] [--workdir /tmp/selo-airslt]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from _common import BENCHMARKS_MD, gib, run_selo, stamp, write_section

HEADING = "AIR-SLT: the whole test set"
PUBLISHED_MIN = 16.92
STAGES = ("cut", "sim", "gnt", "flt", "eval")
TABLE_HEADER = (
    "| model | cases | total (min) | cut s | sim s | gnt s | flt s | eval s | peak memory "
    "| mean Rmi | vs 16.92 min | measured |"
)


def random_vit_b_32(path: Path) -> Path:
    """A local open_clip ViT-B-32 checkpoint with random weights."""
    if not path.exists():
        import torch

        from selo.models.openclip import build_model

        torch.manual_seed(0)
        torch.save(build_model("ViT-B-32").state_dict(), path)
    return path


def model_args(name: str, work: Path) -> list[str]:
    if name == "color":
        return ["--model", "color"]
    if name == "vit-b-32":
        return [
            "--model",
            "openclip:ViT-B-32",
            "--checkpoint",
            str(random_vit_b_32(work / "vit-b-32-random.pt")),
        ]
    raise SystemExit(f"unknown model {name!r} (color, vit-b-32)")


def synthetic(work: Path, scale: float) -> tuple[Path, Path]:
    data = work / f"synth-{scale:g}"
    if not (data / "anno.json").exists():
        run_selo(["synth-airslt", str(data), "--scale", str(scale)], cache=work / "cache-synth")
    return data / "images", data / "anno.json"


def run_airslt(work: Path, images: Path, anno: Path, tag: str, extra: list[str]) -> dict:
    out = work / f"run-{tag}"
    args = ["airslt", "--images", str(images), "--anno", str(anno), "--out", str(out), *extra]
    wall, peak, _ = run_selo(args, cache=work / f"cache-{tag}")
    record = json.loads((out / "run.json").read_text())
    record["bench"] = {"wall": wall, "peak": peak}
    return record


def stage_cells(r: dict) -> str:
    """The wall seconds of each stage of a run record, as table cells."""
    return " | ".join(f"{r['stages'].get(s, {}).get('wall', 0.0):.1f}" for s in STAGES)


def row(name: str, r: dict) -> str:
    stages = stage_cells(r)
    wall = r["bench"]["wall"]
    return (
        f"| {name} | {r['scored']} | {wall / 60:.2f} | {stages} | {gib(r['bench']['peak'])} | "
        f"{r['mean']['rmi']:.4f} | {PUBLISHED_MIN * 60 / wall:.1f}× | {dt.date.today().isoformat()} |"
    )


def earlier_rows(models: list[str]) -> list[str]:
    """Rows of this section already in BENCHMARKS.md for models not run now (kept)."""
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else ""
    section = (
        text.split(f"## {HEADING}", 1)[-1].split("\n## ", 1)[0] if f"## {HEADING}" in text else ""
    )
    rows = [
        line
        for line in section.splitlines()
        if line.startswith("| ") and line.count("|") == TABLE_HEADER.count("|")
    ]
    return [r for r in rows if r.split("|")[1].strip() not in (*models, "model", "---")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["color", "vit-b-32"])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/selo-bench-airslt"))
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    images, anno = synthetic(args.workdir, args.scale)
    rows = earlier_rows(args.models)
    for name in args.models:
        record = run_airslt(args.workdir, images, anno, name, model_args(name, args.workdir))
        rows.append(row(name, record))
        print(rows[-1], flush=True)
    body = "\n".join(
        [
            f"`selo airslt` on the synthetic AIR-SLT (59 cases, 22 scenes, scale {args.scale:g}: the",
            "real sizes, two scenes of 10000×10001), v1, scales 256/512/768, default options",
            "(embedded cluster, profile.html written), empty embedding cache, CPU only. Stage columns are wall",
            "seconds from the run's profiler (stages overlap; each run's wall time is shared",
            "among the stages that ran in it). `vit-b-32` is open_clip ViT-B-32 with random",
            "weights: the cost of a real CLIP model, not its accuracy. The published v1 run took",
            f"{PUBLISHED_MIN} min on an RTX 3090 with AMFMN (Cut 0.93, Sim 5.72, Gnt 7.38, Flt 0.74 min).",
            "",
            stamp("bench_airslt.py", argv) + " (rows of models not in this command: earlier runs)",
            "",
            TABLE_HEADER,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
            *rows,
        ]
    )
    write_section(HEADING, body)


if __name__ == "__main__":
    main()
