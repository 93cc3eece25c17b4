"""``selo compare RUN_A RUN_B [RUN_C ...]``: runs of the same cases, side by side.

Runs are comparable when they scored the same cases: the same case indexes with
the same image, query and polygons (the digests in each run.json, see
:mod:`~selo.selo_tasks.run_info`). Otherwise the comparison is refused with a
:class:`~selo.errors.RunMismatchError`, unless ``common`` limits it to the cases
every run scored identically. Means are taken over the compared cases; per-case
differences are each run's metrics minus the first run's, ordered by the largest
change of Rmi (gains and losses alike) first. The tables and the page that show a
comparison: :mod:`~selo.selo_tasks.report.terminal` and
:mod:`~selo.selo_tasks.report.compare_page`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputNotFoundError, RunFolderError, RunMismatchError
from .eval import read_metrics_csv
from .run_folder import METRICS_CSV, RUN_JSON, read_record

if TYPE_CHECKING:
    from .metrics import Metrics

__all__ = [
    "RunFolder",
    "CaseDiff",
    "RunComparison",
    "load_run",
    "compare_runs",
    "case_ranges",
]


@dataclass(frozen=True)
class RunFolder:
    """A finished run read back: its run.json, and per case its identity and metrics."""

    path: Path
    record: dict
    cases: dict[int, dict]  # index -> {"image", "query", "digest"}
    metrics: dict[int, Metrics]

    @property
    def description(self) -> str:
        method = (self.record.get("method") or {}).get("name", "?")
        encoder = (self.record.get("encoder") or {}).get("spec", "?")
        return f"{method}, {encoder}"


def load_run(path: str | os.PathLike[str]) -> RunFolder:
    """Read a finished run folder; a clear error naming the file when it is not one."""
    from ..pipeline.remote import is_remote

    if is_remote(path):
        raise RunFolderError(
            f"{os.fspath(path)}: compare reads run folders on this machine's disk; "
            "copy the run here first (e.g. aws s3 sync URL ./run)"
        )
    folder = Path(path)
    if not folder.exists():
        raise InputNotFoundError(f"{folder}: run folder not found")
    if not folder.is_dir():
        raise RunFolderError(f"{folder}: is not a folder; give a run folder (with run.json)")
    record = read_record(folder)
    run_json = folder / RUN_JSON
    if record.get("status") != "complete":
        raise RunFolderError(
            f"{run_json}: the run is not finished (status {record.get('status')!r}); "
            "finish it (selo airslt ... --resume) before comparing"
        )
    case_list = record.get("case_list")
    if not isinstance(case_list, list) or not all(
        isinstance(c, dict) and {"case", "image", "query", "digest"} <= set(c) for c in case_list
    ):
        raise RunFolderError(
            f"{run_json}: has no valid case list (made by an older selo?); "
            "run it again to compare it"
        )
    cases = {int(c["case"]): {k: c[k] for k in ("image", "query", "digest")} for c in case_list}
    rows, _ = read_metrics_csv(folder / METRICS_CSV)
    metrics = {row.case: row.metrics for row in rows}
    if set(metrics) != set(cases):
        raise RunFolderError(
            f"{folder / METRICS_CSV}: its cases ({case_ranges(metrics)}) are not those of "
            f"{RUN_JSON} ({case_ranges(cases)}); the run folder is damaged, run it again"
        )
    return RunFolder(folder, record, cases, metrics)


def case_ranges(indexes) -> str:
    """``0-3, 7, 9-10`` for a set of case indexes."""
    items = sorted(indexes)
    parts, start = [], None
    for i, v in enumerate(items):
        if start is None:
            start = v
        if i + 1 == len(items) or items[i + 1] != v + 1:
            parts.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ", ".join(parts) or "none"


@dataclass(frozen=True)
class CaseDiff:
    """One compared case: its metrics in every run and each run's change from the first."""

    case: int
    image: str
    query: str
    metrics: tuple[Metrics, ...]

    def delta(self, run: int) -> Metrics:
        """Run ``run``'s metrics minus the first run's."""
        return self.metrics[run].minus(self.metrics[0])

    @property
    def largest_change(self) -> float:
        """The largest |ΔRmi| over the runs after the first."""
        return max(abs(self.delta(r).rmi) for r in range(1, len(self.metrics)))


@dataclass(frozen=True)
class RunComparison:
    """Runs compared over the same cases."""

    runs: tuple[RunFolder, ...]
    labels: tuple[str, ...]
    diffs: tuple[CaseDiff, ...]  # largest change of Rmi first
    means: tuple[Metrics, ...]
    left_out: tuple[int, ...]  # cases some run did not score identically (with common)


def _labels(runs: Sequence[RunFolder]) -> tuple[str, ...]:
    names = [r.path.name or str(r.path) for r in runs]
    if len(set(names)) < len(names):
        names = [str(r.path) for r in runs]
    return tuple(f"{chr(65 + i) if i < 26 else i}: {n}" for i, n in enumerate(names))


def compare_runs(runs: Sequence[RunFolder], *, common: bool = False) -> RunComparison:
    """Compare ``runs`` (two or more) case by case; see the module docstring."""
    from .metrics import mean_metrics

    if len(runs) < 2:
        raise RunMismatchError("give at least two run folders to compare")
    labels = _labels(runs)
    keyed = [{(i, c["digest"]) for i, c in r.cases.items()} for r in runs]
    shared = set.intersection(*keyed)
    if not common:
        first = runs[0]
        for run, label, keys in zip(runs[1:], labels[1:], keyed[1:], strict=True):
            if keys != keyed[0]:
                raise RunMismatchError(_mismatch(first, run, labels[0], label, len(shared)))
    if not shared:
        raise RunMismatchError(
            f"{' and '.join(labels)} have no case in common (same index, image, query and "
            "polygons); nothing to compare"
        )
    indexes = sorted(i for i, _ in shared)
    every = set().union(*(set(r.cases) for r in runs))
    diffs = [
        CaseDiff(
            i,
            runs[0].cases[i]["image"],
            runs[0].cases[i]["query"],
            tuple(r.metrics[i] for r in runs),
        )
        for i in indexes
    ]
    diffs.sort(key=lambda d: (-d.largest_change, d.case))
    means = tuple(mean_metrics(r.metrics[i] for i in indexes) for r in runs)
    return RunComparison(
        tuple(runs), labels, tuple(diffs), means, tuple(sorted(every - set(indexes)))
    )


def _mismatch(a: RunFolder, b: RunFolder, la: str, lb: str, shared: int) -> str:
    only_a = sorted(set(a.cases) - set(b.cases))
    only_b = sorted(set(b.cases) - set(a.cases))
    changed = sorted(i for i in set(a.cases) & set(b.cases) if a.cases[i] != b.cases[i])
    parts = []
    if only_a:
        parts.append(f"{len(only_a)} only in {la} ({case_ranges(only_a)})")
    if only_b:
        parts.append(f"{len(only_b)} only in {lb} ({case_ranges(only_b)})")
    if changed:
        ranges = case_ranges(changed)
        parts.append(f"{len(changed)} differ in image, query or polygons ({ranges})")
    files = ""
    entries = [r.record.get("annotations") for r in (a, b)]
    entries = [e if isinstance(e, dict) else {} for e in entries]
    if entries[0].get("digest") != entries[1].get("digest"):
        named = [
            f"{label}: {e['file']} (digest {e.get('digest')})"
            if e.get("file")
            else f"{label}: digest {e.get('digest')}"
            for label, e in zip((la, lb), entries, strict=True)
        ]
        files = f"; different annotations ({', '.join(named)})"
    hint = (
        f"pass --common to compare the {shared} case(s) they share"
        if shared
        else "they share no case"
    )
    return f"{la} and {lb} scored different cases: {', '.join(parts)}{files}; {hint}"
