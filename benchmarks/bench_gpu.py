"""The GPU benchmark, as one command for a machine with one NVIDIA GPU (well under 8 minutes).

1. Encoder throughput: windows per second of open_clip ViT-B-32 and ViT-L-14 (real
   architecture configs, random weights: speed does not depend on the weights) by batch
   size and precision (fp32, bf16, fp16), uint8 windows of 256² in, Pillow-exact
   preprocessing on the device included.
2. The whole synthetic AIR-SLT (59 cases, scale 1) with ``selo airslt --gpu`` and
   ViT-B-32 (random weights, saved as a local checkpoint), empty cache: wall time and the
   stage table, beside the published v1 run (16.92 min, RTX 3090, AMFMN).

Everything is printed, and written to the "GPU" section of BENCHMARKS.md. Without CUDA
(or with ``--tiny``) the same code runs on the CPU with tiny sizes — that is how it is
tested; the figures are then not GPU figures and the section says so.

    python benchmarks/bench_gpu.py [--workdir /tmp/selo-gpu] [--tiny] [--no-airslt]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import run_selo, stamp, write_section
from bench_airslt import random_vit_b_32
from bench_encoders import windows_per_second

HEADING = "GPU"
PUBLISHED_MIN = 16.92


def throughput(arch: str, batch: int, precision: str, device: str, seconds: float) -> float:
    """Windows per second of ``encode_images`` (best of 3 rounds of ≥ ``seconds``)."""
    import torch

    from selo.models.openclip import build_model, encoder_from_model

    torch.manual_seed(0)
    enc = encoder_from_model(
        build_model(arch), arch=arch, weights="random", device=device, batch_size=batch,
        precision=precision,
    )  # fmt: skip
    # after a warm-up call (cuDNN autotuning, first allocations), the best of 3 rounds
    best = windows_per_second(enc, batch, seconds, rounds=3)
    del enc
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return best


def airslt(work: Path, *, gpu: bool, scale: float) -> dict:
    ckpt = random_vit_b_32(work / "vit-b-32-random.pt")
    data = work / f"synth-{scale:g}"
    if not (data / "anno.json").exists():
        run_selo(["synth-airslt", str(data), "--scale", str(scale)], cache=work / "cache-synth")
    out = work / "airslt"
    args = [
        "airslt", "--images", str(data / "images"), "--anno", str(data / "anno.json"),
        "--out", str(out), "--no-profile", "--model", "openclip:ViT-B-32",
        "--checkpoint", str(ckpt),
    ]  # fmt: skip
    if gpu:
        args.append("--gpu")
    wall, peak, _ = run_selo(args, cache=work / "cache-airslt")
    record = json.loads((out / "run.json").read_text())
    return {"wall": wall, "peak": peak, "stages": record["stages"], "cluster": record["cluster"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/selo-gpu"))
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, CPU allowed (tests)")
    parser.add_argument("--no-airslt", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="markdown file (BENCHMARKS.md)")
    args = parser.parse_args(argv)
    import torch

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    tiny = args.tiny or not cuda
    archs = ["ViT-B-32"] if tiny else ["ViT-B-32", "ViT-L-14"]
    batches = [2] if tiny else [16, 64, 256]
    precisions = ["fp32"] if not cuda else ["fp32", "bf16", "fp16"]
    seconds = 0.05 if tiny else 2.0
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name(0) if cuda else "CPU (no CUDA: not a GPU figure)"
    rows = ["| model | batch | " + " | ".join(precisions) + " |"]
    rows.append("| --- | ---: | " + " | ".join("---:" for _ in precisions) + " |")
    t0 = time.perf_counter()
    for arch in archs:
        for batch in batches:
            cells = [f"{throughput(arch, batch, p, device, seconds):,.0f}" for p in precisions]
            rows.append(f"| {arch} | {batch} | " + " | ".join(cells) + " |")
            print(rows[-1], flush=True)
    body = [
        f"Device: {name}. Windows embedded per second (`encode_images`: uint8 256² windows in, "
        "Pillow-exact resize to 224 and the towers on the device), random weights, best of 3 "
        "rounds.",
        "",
        stamp("bench_gpu.py", argv),
        "",
        *rows,
        "",
        f"(encoder table measured in {time.perf_counter() - t0:.0f} s)",
    ]
    if not args.no_airslt:
        a = airslt(work, gpu=cuda, scale=0.1 if tiny else 1.0)
        stages = ", ".join(
            f"{s} {v['wall']:.1f} s wall / {v['task']:.1f} s task" for s, v in a["stages"].items()
        )
        what = (
            "synthetic AIR-SLT at scale 0.1 on the CPU (a test of the script)"
            if tiny
            else (
                "whole synthetic AIR-SLT (59 cases, scale 1), `--gpu`, ViT-B-32 (random weights), "
                "empty cache"
            )
        )
        body += [
            "",
            f"{what}: **{a['wall'] / 60:.2f} min** wall (published v1: {PUBLISHED_MIN} min on an "
            f"RTX 3090 with AMFMN), peak {a['peak'] / 2**30:.2f} GiB; stages: {stages}; "
            f"cluster: {a['cluster'].get('kind')} with {a['cluster'].get('workers')} worker(s).",
        ]
        print(body[-1], flush=True)
    if args.out is not None or not tiny:
        write_section(HEADING, "\n".join(body), *([args.out] if args.out else []))


if __name__ == "__main__":
    main()
