"""``selo demo``: a small synthetic AIR-SLT, end to end, in seconds.

Twelve real AIR-SLT cases over four scenes (their captions name colours), drawn
at half size by :mod:`selo.selo_tasks.synth`, run with the weight-free
``color`` encoder on the embedded cluster, scored with the published metrics,
and compared with two maps that know nothing: a flat map and the map of
random window scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .airslt import AirsltOptions, AirsltRun, run_airslt
from .annotations import Case
from .driver import cell_maps
from .methods import Method
from .metrics import Metrics, evaluate, mean_metrics
from .options import Options
from .report.run_page import add_baselines
from .synth import build_synthetic_airslt

__all__ = ["DEMO_CASES", "DEMO_SCALE", "run_demo", "baseline_metrics"]

DEMO_CASES = (0, 1, 2, 3, 17, 18, 19, 25, 26, 53, 54, 55)  # scenes 0, 15, 19 and 8
DEMO_SCALE = 0.5


def run_demo(
    out: Path, options: Options, *, cases: Sequence[int] = DEMO_CASES
) -> tuple[AirsltRun, dict[str, Metrics]]:
    """Build the synthetic subset under ``out/data``, run it into ``out/run``; returns the
    run and the baselines' mean metrics on the same cases."""
    synth = build_synthetic_airslt(out / "data", scale=DEMO_SCALE, cases=cases)
    run = run_airslt(
        synth.cases,
        AirsltOptions(images=synth.images, out=out / "run", anno=synth.anno, overlays=True),
        options,
        profile=False,
    )
    baselines = baseline_metrics(synth.cases, synth.sizes, options.build_method())
    add_baselines(run.out, baselines)  # into run.json and report.html
    return run, baselines


def baseline_metrics(
    cases: Sequence[Case], sizes: dict[str, tuple[int, int]], method: Method, *, seed: int = 0
) -> dict[str, Metrics]:
    """Mean metrics of a flat map and of the map from uniformly random window scores."""
    rng = np.random.default_rng(seed)
    flat, rand = [], []
    for case in cases:
        h, w = sizes[case.image]
        flat.append(evaluate(np.zeros((h, w), np.uint8), case.polygon_arrays()))
        table = method.scene_windows(h, w)
        scores = rng.uniform(-1, 1, len(table))
        refinement = method.refine(table, scores)  # second-pass methods: random box scores too
        extra = None if refinement is None else rng.uniform(-1, 1, len(refinement.extra))
        inputs = method.contributions(table, scores, refinement, extra)
        _, u8 = cell_maps(h, w, inputs, uncovered_counts=method.uncovered_counts)
        rand.append(evaluate(method.finish_array(u8), case.polygon_arrays()))
    return {"flat map": mean_metrics(flat), "random scores": mean_metrics(rand)}
