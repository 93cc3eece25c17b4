"""What a run records beyond its metrics, for its report and for ``selo compare``.

- **Cases**: each scored case with a digest of what defines it (index, image, query,
  polygons), and a digest of the whole annotation set the run was given, so that two
  runs can be checked to have scored the same cases.
- **Scenes**: each scene's size and its summed task seconds per stage, measured by the
  stage profiler from task names: case tasks carry the case index
  (``flt-case-3-…``), embedding and preview tasks the scene's label
  (``sim-0.jpg-…``, see :func:`~selo.pipeline.profile.task_label`). Work done in the
  client process (opening scenes, cell maps) is not in these seconds.
- **Published comparison**: whether the run's stage times may stand beside the
  published v1 table (:func:`published_comparison`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..pipeline.profile import STAGES, task_label
from .annotations import Case

__all__ = [
    "PUBLISHED_SETUP",
    "PUBLISHED_SCALES",
    "PIXEL_TOLERANCE",
    "Comparison",
    "case_digest",
    "annotations_digest",
    "scene_seconds",
    "run_details",
    "published_comparison",
]

PUBLISHED_SETUP = "SeLo v1, AMFMN, RTX 3090"
PUBLISHED_SCALES = [256, 512, 768]
PIXEL_TOLERANCE = 0.10  # case pixels within 10% of the full AIR-SLT's (real scenes vary a little)


def case_digest(case: Case) -> str:
    """16 hex digits of SHA-256 over the case's index, image, query and polygons."""
    text = json.dumps([case.index, case.image, case.query, case.polygons])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def annotations_digest(cases: Sequence[Case]) -> str:
    """16 hex digits of SHA-256 over the digests of ``cases``, in order."""
    return hashlib.sha256(" ".join(map(case_digest, cases)).encode()).hexdigest()[:16]


def scene_seconds(
    prefix_seconds: Mapping[str, float], cases: Sequence[Case]
) -> dict[str, dict[str, float]]:
    """{scene: {stage: task seconds}} from the profiler's seconds per task-name prefix.

    A prefix ``<stage>-case-<i>`` belongs to case ``i``'s scene; any other prefix
    whose last ``-`` part is a scene's label (``cut-region-<label>``, ``sim-<label>``,
    ``flt-preview-<label>``) to that scene; the rest (unlabelled tasks) to none."""
    of_case = {c.index: c.image for c in cases}
    of_label = {task_label(c.image): c.image for c in cases}
    out: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(STAGES, 0.0))
    for prefix, seconds in prefix_seconds.items():
        parts = prefix.split("-")
        if parts[0] not in STAGES or len(parts) < 2:
            continue
        if len(parts) == 3 and parts[1] == "case" and parts[2].isdigit():
            scene = of_case.get(int(parts[2]))
        else:
            scene = of_label.get(parts[-1])
        if scene is not None:
            out[scene][parts[0]] += seconds
    order = list(dict.fromkeys(c.image for c in cases))
    return {s: out[s] for s in order if s in out}


def run_details(
    scored: Sequence[Case], images: str | Path, prefix_seconds: Mapping[str, float]
) -> dict:
    """The ``case_list``, ``scenes`` and ``finished_at`` entries of run.json."""
    from ..pipeline.source import inspect_source, locate_scenes

    seconds = scene_seconds(prefix_seconds, scored)
    scenes = {}
    names = list(dict.fromkeys(c.image for c in scored))
    refs = locate_scenes(images, names) if names else {}
    for name in names:
        info = inspect_source(refs[name])[0]  # the header only
        scenes[name] = {
            "height": info.height,
            "width": info.width,
            "cases": [c.index for c in scored if c.image == name],
            "task_seconds": seconds.get(name, dict.fromkeys(STAGES, 0.0)),
        }
    return {
        "case_list": [
            {"case": c.index, "image": c.image, "query": c.query, "digest": case_digest(c)}
            for c in scored
        ],
        "scenes": scenes,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


@dataclass(frozen=True)
class Comparison:
    """Whether a run's stage times may be drawn beside the published ones, and why."""

    comparable: bool
    reason: str


@functools.cache
def _reference() -> tuple[frozenset[str], int, int]:
    """(case digests, case pixels, scenes) of the full AIR-SLT at the sizes of
    :func:`~selo.selo_tasks.synth.scene_sizes`."""
    from .annotations import load_annotations
    from .synth import scene_sizes

    cases = load_annotations()
    sizes = scene_sizes(cases)
    pixels = sum(sizes[c.image][0] * sizes[c.image][1] for c in cases)
    return frozenset(map(case_digest, cases)), pixels, len(sizes)


def published_comparison(record: Mapping) -> Comparison:
    """Comparable when the run is ``selo airslt`` with method v1 at scales 256/512/768,
    scored exactly the 59 AIR-SLT cases (by digest) and its case pixels (the sum over
    cases of their scene's pixels: the published code cuts and fills each case's
    scene) are within :data:`PIXEL_TOLERANCE` of the full AIR-SLT's.

    The encoder and the machine may differ; the reason says what was compared."""
    digests, ref_pixels, ref_scenes = _reference()
    method = record.get("method") or {}
    case_list = record.get("case_list") or []
    scenes = record.get("scenes") or {}
    pixels = sum(s["height"] * s["width"] * len(s["cases"]) for s in scenes.values())
    this = (
        f"this run: {len(case_list)} cases over {len(scenes)} scenes, "
        f"{pixels / 1e6:,.0f} Mpx summed over cases, {method.get('name', '?')}"
        + (f" at {'/'.join(map(str, method['scales']))}" if method.get("scales") else "")
    )
    full = (
        f"the published table ({PUBLISHED_SETUP}) is the full AIR-SLT: "
        f"{len(digests)} cases over {ref_scenes} scenes, {ref_pixels / 1e6:,.0f} Mpx summed over "
        "cases, "
        f"v1 at {'/'.join(map(str, PUBLISHED_SCALES))}"
    )
    same = (
        record.get("command") == "airslt"
        and method.get("name") == "v1"
        and list(method.get("scales", [])) == PUBLISHED_SCALES
        and {c.get("digest") for c in case_list} == digests
        and len(case_list) == len(digests)
        and abs(pixels - ref_pixels) <= PIXEL_TOLERANCE * ref_pixels
    )
    if same:
        return Comparison(
            True,
            f"published times beside this run, which did the same work: {this}; {full}; "
            "the model and the machine may differ",
        )
    return Comparison(False, f"published times not shown: {this}; {full}")
