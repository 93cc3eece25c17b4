"""How far ``--precision int8`` moves the synthetic AIR-SLT from fp32: maps and metrics.

Runs ``selo airslt`` twice on the same synthetic AIR-SLT (``selo synth-airslt
--scale``), each with an empty embedding cache on the CPU: ``--precision fp32``
and ``--precision int8``, with open_clip ViT-B-32 of random weights (saved to a
local checkpoint; or ``--model``/``--checkpoint``). Then compares, case by case,
the uint8 maps (``selo_map.png``: the fraction of identical pixels, the largest
pixel difference) and the metrics (``metrics.csv``: the largest difference of
each of Rsu, Rda, Ras, Rmi over the cases, and of their means), beside each
run's wall time. ``--cases`` runs a subset (AIR-SLT case indices; their scenes
only), so that a small run fits a test or a busy machine.

The metrics of random weights mean nothing; what is measured is how much int8
changes what fp32 computes. Printed and written to the "int8 agreement"
section of BENCHMARKS.md.

    python benchmarks/bench_int8_agreement.py [--scale 1] [--cases 0 1 2 ...]
        [--workdir /tmp/selo-bench-int8] [--model openclip:ViT-B-32 --checkpoint PATH]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from _common import BENCHMARKS_MD, run_selo, stamp, write_section
from bench_airslt import model_args, synthetic

HEADING = "int8 agreement"
METRICS = ("rsu", "rda", "ras", "rmi")
PRECISIONS = ("fp32", "int8")


def subset(anno: Path, cases: list[int] | None, work: Path) -> tuple[Path, list[int]]:
    """An annotation file with only ``cases`` (all when None), and their AIR-SLT indices."""
    entries = json.loads(anno.read_text())
    if cases is None:
        return anno, list(range(len(entries)))
    unknown = sorted(set(cases) - set(range(len(entries))))
    if unknown:
        raise SystemExit(f"--cases: no case {unknown} among the {len(entries)} cases")
    chosen = sorted(set(cases))
    path = work / f"anno-{'-'.join(map(str, chosen))}.json"
    path.write_text(json.dumps([entries[i] for i in chosen]))
    return path, chosen


def read_metrics(run: Path) -> dict[str, dict[str, float]]:
    """metrics.csv as {case (or "mean"): {metric: value}}."""
    with open(run / "metrics.csv", newline="") as f:
        return {row["case"]: {m: float(row[m]) for m in METRICS} for row in csv.DictReader(f)}


def read_map(path: Path) -> np.ndarray:
    import cv2

    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if a is None:
        raise SystemExit(f"cannot read {path}")
    return a


def read_scores(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(windows r0,r1,c0,c1,scale; scores) of a case's windows.csv."""
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return table[:, :5], table[:, 5]


def compare(a: Path, b: Path) -> dict:
    """Pixels, window scores and metrics of run ``b`` against run ``a`` (same cases)."""
    ma, mb = read_metrics(a), read_metrics(b)
    if set(ma) != set(mb):
        raise SystemExit(f"the runs scored other cases: {sorted(ma)} and {sorted(mb)}")
    cases = [c for c in ma if c != "mean"]
    same = total = worst = 0
    score_diff, spans = [], []
    for case in cases:
        folder = f"case_{int(case):02d}"
        (wa, sa), (wb, sb) = (read_scores(r / folder / "windows.csv") for r in (a, b))
        if not np.array_equal(wa, wb):
            raise SystemExit(f"case {case}: the runs scored other windows")
        score_diff.append(float(np.abs(sa - sb).max()) if len(sa) else 0.0)
        spans.append(float(np.ptp(sa)) if len(sa) else 0.0)
        pa, pb = (read_map(r / folder / "selo_map.png") for r in (a, b))
        if pa.shape != pb.shape:
            raise SystemExit(f"case {case}: maps of other shapes {pa.shape} and {pb.shape}")
        same += int(np.count_nonzero(pa == pb))
        total += pa.size
        worst = max(worst, int(np.abs(pa.astype(np.int16) - pb.astype(np.int16)).max()))
    largest = {
        m: max(((abs(ma[c][m] - mb[c][m]), c) for c in cases), default=(0.0, "")) for m in METRICS
    }
    mean = {m: abs(ma["mean"][m] - mb["mean"][m]) for m in METRICS} if "mean" in ma else {}
    relative = [d / s for d, s in zip(score_diff, spans, strict=True) if s > 0]
    return {
        "cases": len(cases),
        "score_diff": max(score_diff, default=0.0),
        "span": float(np.median(spans)) if spans else 0.0,
        "relative": (max(relative, default=0.0), float(np.median(relative)) if relative else 0.0),
        "pixels": total,
        "identical": same / total if total else 1.0,
        "largest_pixel": worst,
        "largest": largest,
        "mean": mean,
        "means": (ma.get("mean", {}), mb.get("mean", {})),
    }


def run(
    work: Path, images: Path, anno: Path, model: list[str], precision: str, reuse: bool
) -> tuple[Path, float]:
    """The run folder and wall seconds of ``selo airslt`` in ``precision``; with ``reuse``, a
    finished run already in ``work`` (same images, model, precision and case count) is kept
    and its own wall time reported."""
    out = work / f"run-{precision}"
    record = out / "run.json"
    if reuse and record.exists():
        r = json.loads(record.read_text())
        o = r.get("options", {})
        if (
            r.get("status") == "complete"
            and r.get("images") == str(images)
            and (o.get("precision"), o.get("model")) == (precision, model[1])
            and r.get("cases") == len(json.loads(anno.read_text()))
        ):
            return out, float(r["wall_seconds"])
    args = [
        "airslt", "--images", str(images), "--anno", str(anno), "--out", str(out),
        "--no-profile", "--device", "cpu", "--precision", precision, *model,
    ]  # fmt: skip
    wall, _, _ = run_selo(args, cache=work / f"cache-{precision}")
    return out, wall


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="synthetic AIR-SLT scale")
    parser.add_argument("--cases", type=int, nargs="+", default=None, help="case indices")
    parser.add_argument("--model", default=None, help="default: ViT-B-32, random weights")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/selo-bench-int8"))
    parser.add_argument(
        "--reuse", action="store_true", help="keep finished runs in --workdir (compare only)"
    )
    parser.add_argument("--out", type=Path, default=BENCHMARKS_MD)
    args = parser.parse_args(argv)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    if args.model is None:
        model, name = model_args("vit-b-32", work), "ViT-B-32 (random weights)"
    else:
        model = ["--model", args.model] + (
            ["--checkpoint", args.checkpoint] * bool(args.checkpoint)
        )
        name = args.model
    images, anno = synthetic(work, args.scale)
    anno, chosen = subset(anno, args.cases, work)
    walls = {}
    runs = {}
    for p in PRECISIONS:
        runs[p], walls[p] = run(work, images, anno, model, p, args.reuse)
        print(f"{p}: {walls[p] / 60:.2f} min", flush=True)
    c = compare(runs["fp32"], runs["int8"])
    largest = " · ".join(  # case numbers of the subset file back to AIR-SLT's
        f"{m.capitalize()} {d:.4f} (case {chosen[int(case)]})"
        for m, (d, case) in c["largest"].items()
    )
    mean = " · ".join(f"{m.capitalize()} {d:.4f}" for m, d in c["mean"].items())
    fp32_rmi, int8_rmi = (
        c["means"][0].get("rmi", float("nan")),
        c["means"][1].get("rmi", float("nan")),
    )
    what = "all 59 cases" if args.cases is None else f"cases {', '.join(map(str, chosen))}"
    row = (
        f"| {name} | {c['cases']} | {args.scale:g} | {walls['fp32'] / 60:.2f} | "
        f"{walls['int8'] / 60:.2f} | {walls['fp32'] / walls['int8']:.2f}× | "
        f"{c['identical']:.2%} | {c['largest_pixel']} | "
        f"{max(d for d, _ in c['largest'].values()):.4f} | {fp32_rmi:.4f} / {int8_rmi:.4f} |"
    )
    print(row)
    body = "\n".join(
        [
            "`selo airslt` on the synthetic AIR-SLT with `--precision fp32` and with `--precision",
            "int8` (CPU, empty embedding caches, `--no-profile`, v1 defaults), then the two runs",
            "compared case by case: the share of identical pixels over all uint8 maps",
            "(`selo_map.png`), the largest pixel difference, and the largest difference of any",
            "metric of any case. Random weights: the metrics mean nothing; the differences are",
            "what int8 changes. Minutes are the wall time of each whole run (set-up included).",
            "",
            stamp("bench_int8_agreement.py", argv),
            f"- {what} at scale {args.scale:g}: {c['pixels']:,} map pixels",
            *(
                [
                    "- --reuse: the runs already in the work folder (made by this command without "
                    "--reuse) compared again; minutes are their run.json wall times"
                ]
                if args.reuse
                else []
            ),
            f"- largest difference per metric over the cases: {largest}",
            f"- difference of the means: {mean}",
            f"- window scores (cosines): largest difference {c['score_diff']:.4f}; the fp32 "
            f"scores of a case span {c['span']:.4f} (median over the cases), so int8 moved a "
            f"score by at most {c['relative'][0]:.1%} of its case's span (median "
            f"{c['relative'][1]:.1%}). Maps stretch each case's scores to 0–255, so the "
            "narrower the span (random weights: nearly flat), the more pixels move",
            "",
            "| model | cases | scale | fp32 min | int8 min | speed-up | identical map pixels "
            "| largest pixel Δ | largest metric Δ | mean Rmi fp32 / int8 |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
            row,
        ]
    )
    write_section(HEADING, body, args.out)


if __name__ == "__main__":
    main()
