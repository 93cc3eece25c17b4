"""Encoder throughput on CPU: ``color`` and open_clip ViT-B-32 in fp32, bf16 and int8.

ViT-B-32 is built from open_clip's real architecture config with random
weights (speed does not depend on the weights, and nothing is downloaded).
Each encoder gets uint8 windows of its own ``input_size`` (64 for ``color``,
256 for CLIP-family models, which then resize to 224 themselves), one warm-up
call per batch size, then the best of ``--rounds`` rounds of repeated calls
lasting at least ``--seconds`` each. Beside the windows/s: this CPU's fp32 peak
(the best FLOP/s of a large matrix product with the same threads, measured in
the same run), the model's FLOP per window (``torch.utils.flop_counter``) and
so the fraction of that peak fp32 reaches; the int8 encoder's set-up time
(export and quantization) and the cosine of its embeddings to fp32's.

``--candidates`` instead compares the ways to run the image tower in int8 on
CPU (and their fp32 baselines), on preprocessed 224² input (batches of the last
of ``--batches``), as windows per CPU
second on one thread (fair on a shared machine), interleaved rounds: torch
fp32 and bf16 autocast; torch's deprecated ``torch.ao.quantization.quantize_dynamic``;
torchao's ``Int8DynamicActivationInt8WeightConfig``, eager and compiled; ONNX
Runtime fp32 and dynamic int8 (a batch per call, and one window per call as
selo runs it); OpenVINO fp32 and int8 weights with its dynamic quantization of
activations (NNCF), when ``openvino`` and ``nncf`` are installed.

The result is a markdown table, printed and written to the "Encoders" (or
"Encoders: int8 candidates") section of BENCHMARKS.md (other sections kept).

    python benchmarks/bench_encoders.py [--batches 1 8 32 64] [--precisions fp32 bf16 int8]
        [--seconds 2] [--rounds 3] [--threads 2] [--arch ViT-B-32] [--candidates]
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _common import BENCHMARKS_MD, stamp, write_section

HEADING = "Encoders"
CANDIDATES_HEADING = "Encoders: int8 candidates"
PRECISIONS = ("fp32", "bf16", "int8")


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


def clip_encoder(arch: str, precision: str, batch: int = 64):
    """open_clip ``arch`` with random weights (seed 0), as a CPU encoder in ``precision``."""
    import torch

    from selo.models.openclip import build_model, encoder_from_model

    torch.manual_seed(0)
    return encoder_from_model(
        build_model(arch), arch=arch, weights="random", device="cpu", batch_size=batch,
        precision=precision,
    )  # fmt: skip


def peak_flops(seconds: float, rounds: int, n: int = 4096) -> float:
    """FLOP/s of an n×n fp32 matrix product (2n³ FLOP), the best of ``rounds``."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)
    best = 0.0
    for _ in range(rounds):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds or calls < 2:
            torch.mm(a, b, out=out)
            calls += 1
        best = max(best, calls * 2 * n**3 / elapsed)
    return best


def flop_per_window(encoder) -> float:
    """FLOP of the image tower for one window (matrix products and convolutions)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    side = encoder.transform.crop
    # with gradients on: without them nn.MultiheadAttention takes its fused fast path,
    # whose projections the counter does not see
    with torch.enable_grad(), FlopCounterMode(display=False) as counter:
        encoder._image_features(torch.zeros(1, 3, side, side))
    return float(counter.get_total_flops())


def encoders_table(args) -> str:
    import torch

    from selo.models.color import ColorEncoder

    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    encoders, setup = {}, {}
    for p in args.precisions:
        t0, c0 = time.perf_counter(), time.process_time()
        encoders[p] = clip_encoder(args.arch, p, max(args.batches))
        setup[p] = (time.perf_counter() - t0, time.process_time() - c0)
    flop = flop_per_window(encoders[args.precisions[0]])
    measured, peak = [], 0.0
    for batch in args.batches:
        color = windows_per_second(ColorEncoder(), batch, args.seconds, args.rounds)
        speed = dict.fromkeys(encoders, 0.0)
        for _ in range(args.rounds):  # interleaved: a busy spell hits every precision
            peak = max(peak, peak_flops(args.seconds, 1))  # and the peak
            for p, e in encoders.items():
                speed[p] = max(speed[p], windows_per_second(e, batch, args.seconds, 1))
        measured.append((batch, color, speed))
        print(batch, f"{color:,.0f}", {p: round(v, 1) for p, v in speed.items()}, flush=True)
    rows = []
    for batch, color, speed in measured:
        cells = [f"{batch}", f"{color:,.0f}", *(f"{speed[p]:,.1f}" for p in args.precisions)]
        if "fp32" in speed:
            if "int8" in speed:
                cells.append(f"{speed['int8'] / speed['fp32']:.2f}×")
            cells.append(f"{speed['fp32'] * flop / peak:.0%}")
        rows.append("| " + " | ".join(cells) + " |")

    notes = [
        f"- fp32 peak: {peak / 1e9:,.1f} GFLOP/s (best 4096² fp32 `torch.mm`, "
        f"{args.threads} threads, one round beside each round of the encoders); {args.arch} image tower: {flop / 1e9:.2f} GFLOP per "
        "window (`torch.utils.flop_counter`, 2 FLOP per multiply-add)",
        f"- 1-min load average at the start: {load:.1f} (other work on the machine)",
    ]
    if "int8" in encoders:
        rng = np.random.default_rng(1)
        windows = rng.integers(0, 256, (32, 256, 256, 3), dtype=np.uint8)
        reference = clip_encoder(args.arch, "fp32").encode_images(windows)
        cos = np.sum(encoders["int8"].encode_images(windows) * reference, axis=1)
        wall, cpu = setup["int8"]
        notes.append(
            f"- int8: set-up (model built, image tower exported to ONNX and quantized) "
            f"{wall:.1f} s wall, {cpu:.1f} s CPU, once per process; cosine to the fp32 "
            f"embeddings of 32 random windows: min {cos.min():.5f}, mean {cos.mean():.5f}"
        )
    head = ["batch", "color", *(f"{args.arch} {p}" for p in args.precisions)]
    if "fp32" in encoders:
        head += (["int8 ÷ fp32"] if "int8" in encoders else []) + ["fp32 of peak"]
    return "\n".join(
        [
            "Windows embedded per second on CPU (`encode_images`, preprocessing included):",
            f"`color` reads 64×64 windows; {args.arch} (open_clip config, random weights)",
            "reads 256×256 windows and resizes them to 224 itself. Each cell is the best of",
            f"{args.rounds} rounds of at least {args.seconds:g} s, the precisions' rounds "
            "interleaved (the machine may be shared).",
            "`fp32 of peak` is fp32's FLOP/s (windows/s × FLOP per window) over the fp32 peak",
            "measured in the same run. `int8` is `--precision int8` (ONNX Runtime, one window per",
            "call, windows side by side on the threads); `bf16` is torch autocast.",
            "",
            stamp("bench_encoders.py", args.argv),
            f"- torch {torch.__version__}, {args.threads} threads",
            *notes,
            "",
            "| " + " | ".join(head) + " |",
            "| " + " | ".join("---:" for _ in head) + " |",
            *rows,
        ]
    )


# --------------------------------------------------------------------------- candidates


def _ort(path: Path) -> Callable:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"pixels": x.numpy()})[0]


def candidates(arch: str, work: Path) -> tuple[int, dict[str, Callable | str]]:
    """The tower's input side, and name → a function of float32 N×3×side×side pixels (or
    why it is not available)."""
    import torch

    from selo.models._onnx import export_onnx, quantize_onnx

    found: dict[str, Callable | str] = {}
    encoder = clip_encoder(arch, "fp32")
    tower, side = encoder.model.visual, encoder.transform.crop
    found["torch fp32"] = tower

    def bf16(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return tower(x).float()

    found["torch bf16 autocast"] = bf16
    with warnings.catch_warnings():  # its deprecation notice, once
        warnings.simplefilter("ignore")
        found["torch.ao quantize_dynamic (deprecated)"] = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(tower), {torch.nn.Linear}, dtype=torch.qint8
        )
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError as e:  # (pip install 'selo[bench]')
        found["torchao"] = f"not installed here ({e.name})"
    else:
        q = copy.deepcopy(tower)
        quantize_(q, Int8DynamicActivationInt8WeightConfig())
        found["torchao int8 dynamic, eager"] = q
        found["torchao int8 dynamic, torch.compile"] = torch.compile(copy.deepcopy(q))

    fp32 = export_onnx(tower, side, work / "fp32.onnx")
    int8 = quantize_onnx(fp32, work / "int8.onnx")
    found["ONNX Runtime fp32"] = _ort(fp32)
    found["ONNX Runtime int8 dynamic, a batch per call"] = _ort(int8)
    found["selo --precision int8 (ONNX Runtime, a window per call)"] = clip_encoder(
        arch, "int8"
    )._images
    try:
        import nncf
        import openvino as ov
    except ImportError as e:
        found["OpenVINO"] = f"not installed here ({e.name})"
        return side, found
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"}
    fp = core.compile_model(core.read_model(str(fp32)), "CPU", config)
    found["OpenVINO fp32"] = lambda x: fp(x.numpy())[0]
    weights = nncf.compress_weights(
        core.read_model(str(fp32)), mode=nncf.CompressWeightsMode.INT8_SYM
    )
    dyn = core.compile_model(weights, "CPU", {**config, "DYNAMIC_QUANTIZATION_GROUP_SIZE": 768})
    found["OpenVINO int8 weights (NNCF), dynamic activations (group 768)"] = lambda x: dyn(
        x.numpy()
    )[0]
    return side, found


def _versions() -> str:
    """The versions of the libraries compared (OpenVINO and NNCF are no selo dependency)."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("torch", "torchao", "onnxruntime", "openvino", "nncf"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def candidates_table(args) -> str:
    import torch

    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        side, found = candidates(args.arch, Path(tmp))
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(args.batches[-1], 3, side, side, generator=generator)
        runs = {k: f for k, f in found.items() if callable(f)}
        with torch.inference_mode():
            ref = torch.nn.functional.normalize(runs["torch fp32"](x), dim=-1)
            cos, first = {}, {}
            for name, f in runs.items():
                t0 = time.perf_counter()
                y = torch.as_tensor(np.asarray(f(x))).float()
                first[name] = time.perf_counter() - t0
                cos[name] = torch.nn.functional.cosine_similarity(y, ref).min().item()
            best = dict.fromkeys(runs, 0.0)
            for _ in range(args.rounds):  # interleaved: a busy spell hits every candidate
                for name, f in runs.items():
                    calls, c0 = 0, time.process_time()
                    while (cpu := time.process_time() - c0) < args.seconds or calls < 2:
                        f(x)
                        calls += 1
                    best[name] = max(best[name], calls * len(x) / cpu)
    base = best["torch fp32"]
    rows = [
        f"| {name} | {best[name]:.1f} | {best[name] / base:.2f}× | {cos[name]:.5f} "
        f"| {first[name]:.1f} |"
        for name in runs
    ]
    rows += [
        f"| {name}: {why} | – | – | – | – |" for name, why in found.items() if isinstance(why, str)
    ]
    for r in rows:
        print(r, flush=True)
    return "\n".join(
        [
            f"Ways to run the {args.arch} image tower (open_clip config, random weights) in int8",
            f"on this CPU, on {len(x)} preprocessed {side}² windows per call: windows per CPU second",
            "on one thread (so that other work on the shared machine costs nothing), the best",
            f"of {args.rounds} interleaved rounds of at least {args.seconds:g} CPU seconds, and",
            "the least cosine of each candidate's embeddings to torch fp32's. The first call",
            "(seconds) includes torch.compile's compilation where there is one.",
            "",
            stamp("bench_encoders.py", args.argv),
            f"- {_versions()}; 1-min load average at the start: {load:.1f}",
            "",
            "| candidate | windows per CPU s | ÷ torch fp32 | min cosine | first call s |",
            "| --- | ---: | ---: | ---: | ---: |",
            *rows,
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum time per round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per cell (best kept)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--arch", default="ViT-B-32", help="open_clip architecture")
    parser.add_argument(
        "--candidates", action="store_true", help="compare int8 implementations instead"
    )
    parser.add_argument("--out", type=Path, default=BENCHMARKS_MD)
    args = parser.parse_args(argv)
    args.argv = argv
    if args.candidates:
        write_section(CANDIDATES_HEADING, candidates_table(args), args.out)
    else:
        write_section(HEADING, encoders_table(args), args.out)


if __name__ == "__main__":
    main()
