"""Encoder throughput: windows per second of ``color`` and of open_clip ViT-B-32 on CPU.

ViT-B-32 is built from open_clip's real architecture config with random
weights (speed does not depend on the weights, and nothing is downloaded).
Each encoder gets uint8 windows of its own ``input_size`` (64 for ``color``,
256 for CLIP-family models, which then resize to 224 themselves), one warm-up
call per batch size, then the best of ``--rounds`` rounds of repeated calls
lasting at least ``--seconds`` each. The result is a markdown table, printed
and written to the "Encoders" section of BENCHMARKS.md (other sections kept).

    python benchmarks/bench_encoders.py [--batches 1 8 32 64] [--seconds 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import time
from pathlib import Path

import numpy as np
from _common import BENCHMARKS_MD, machine, write_section

HEADING = "Encoders"


def windows_per_second(encoder, batch: int, seconds: float, rounds: int, seed: int = 0) -> float:
    """Windows embedded per second at this batch size: the best of ``rounds`` timed rounds.

    Each round repeats ``encode_images`` for at least ``seconds`` (and twice),
    after one warm-up call; the best round is the one least disturbed by other
    work on the machine, as with ``timeit``.
    """
    rng = np.random.default_rng(seed)
    side = encoder.input_size
    windows = rng.integers(0, 256, (batch, side, side, 3), dtype=np.uint8)
    encoder.encode_images(windows)
    best = 0.0
    for _ in range(rounds):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds or calls < 2:
            encoder.encode_images(windows)
            calls += 1
        best = max(best, calls * batch / elapsed)
    return best


def vit_b_32(batch: int):
    """open_clip ViT-B-32 with random weights, as a CPU encoder taking ``batch`` at a time."""
    import torch

    from selo.models.openclip import build_model, encoder_from_model

    torch.manual_seed(0)
    model = build_model("ViT-B-32")
    return encoder_from_model(
        model, arch="ViT-B-32", weights="random", device="cpu", batch_size=batch
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum time per round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per cell (best kept)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--out", type=Path, default=BENCHMARKS_MD)
    args = parser.parse_args(argv)

    import torch

    from selo.models.color import ColorEncoder

    torch.set_num_threads(args.threads)
    rows = []
    for batch in args.batches:
        color = windows_per_second(ColorEncoder(), batch, args.seconds, args.rounds)
        vit = windows_per_second(vit_b_32(batch), batch, args.seconds, args.rounds)
        rows.append(f"| {batch} | {color:,.0f} | {vit:,.1f} |")
        print(rows[-1], flush=True)

    command = "python benchmarks/bench_encoders.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    body = "\n".join(
        [
            "Windows embedded per second on CPU (`encode_images`, preprocessing included):",
            "`color` reads 64×64 windows; ViT-B-32 (open_clip config, random weights)",
            "reads 256×256 windows and resizes them to 224 itself. Each cell is the best of",
            f"{args.rounds} rounds of at least {args.seconds:g} s (the machine may be shared).",
            "",
            f"- machine: {machine()}; torch threads: {args.threads}",
            f"- date: {dt.date.today().isoformat()}; torch {torch.__version__}, "
            f"numpy {np.__version__}, Python {platform.python_version()}",
            f"- command: `{command.strip()}`",
            "",
            "| batch | color (windows/s) | ViT-B-32 (windows/s) |",
            "| ---: | ---: | ---: |",
            *rows,
        ]
    )
    write_section(HEADING, body, args.out)


if __name__ == "__main__":
    main()
