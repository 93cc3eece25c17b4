"""``selo compare RUN_A RUN_B [RUN_C ...]``: runs of the same cases, side by side.

Runs are comparable when they scored the same cases: the same case indexes with
the same image, query and polygons (the digests in each run.json, see
:mod:`~selo.selo_tasks.run_info`). Otherwise the comparison is refused with a
:class:`~selo.errors.RunMismatchError`, unless ``common`` limits it to the cases
every run scored identically. Means are taken over the compared cases; per-case
differences are each run's metrics minus the first run's, ordered by the largest
change of Rmi (gains and losses alike) first. The HTML page shows each case's
annotated overlays side by side (embedded thumbnails, linking to the full-size
overlays in the run folders).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import click

from ..errors import InputNotFoundError, RunFolderError, RunMismatchError

if TYPE_CHECKING:
    from .metrics import Metrics

__all__ = [
    "RunFolder",
    "CaseDiff",
    "RunComparison",
    "load_run",
    "compare_runs",
    "comparison_tables",
    "write_compare_html",
    "compare_cmd",
]

_KEYS = ("rsu", "ras", "rda", "rmi")


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
    folder = Path(path)
    if not folder.exists():
        raise InputNotFoundError(f"{folder}: run folder not found")
    if not folder.is_dir():
        raise RunFolderError(f"{folder}: is not a folder; give a run folder (with run.json)")
    run_json = folder / "run.json"
    try:
        record = json.loads(run_json.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFolderError(f"{run_json}: not found; {folder} is not a selo run folder") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RunFolderError(f"{run_json}: cannot be read as JSON ({e})") from None
    if not isinstance(record, dict):
        raise RunFolderError(f"{run_json}: is not a run record (expected a JSON object)")
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
    metrics = _read_metrics(folder / "metrics.csv")
    if set(metrics) != set(cases):
        raise RunFolderError(
            f"{folder / 'metrics.csv'}: its cases ({_ranges(metrics)}) are not those of "
            f"run.json ({_ranges(cases)}); the run folder is damaged, run it again"
        )
    return RunFolder(folder, record, cases, metrics)


def _read_metrics(path: Path) -> dict[int, Metrics]:
    from .metrics import Metrics

    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise RunFolderError(f"{path}: not found; the run did not finish") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise RunFolderError(f"{path}: cannot be read ({e})") from None
    out = {}
    for n, row in enumerate(rows, start=2):
        if row.get("case") == "mean":
            continue
        try:
            values = {k: float(row[k]) for k in _KEYS}
            index = int(row["case"])
        except (KeyError, TypeError, ValueError):
            raise RunFolderError(
                f"{path}, line {n}: expected case,image,query,rsu,rda,ras,rmi with numbers"
            ) from None
        if not all(math.isfinite(v) for v in values.values()):
            raise RunFolderError(f"{path}, line {n}: a metric is not a finite number")
        out[index] = Metrics(**values)
    if not out:
        raise RunFolderError(f"{path}: holds no case")
    return out


def _ranges(indexes) -> str:
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
        from .metrics import Metrics

        a, b = self.metrics[0], self.metrics[run]
        return Metrics(*(getattr(b, k) - getattr(a, k) for k in ("rsu", "rda", "ras", "rmi")))

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
        parts.append(f"{len(only_a)} only in {la} ({_ranges(only_a)})")
    if only_b:
        parts.append(f"{len(only_b)} only in {lb} ({_ranges(only_b)})")
    if changed:
        parts.append(f"{len(changed)} differ in image, query or polygons ({_ranges(changed)})")
    digests = [(r.record.get("annotations") or {}).get("digest") for r in (a, b)]
    files = (
        f"; different annotations (digests {digests[0]} and {digests[1]})"
        if digests[0] != digests[1]
        else ""
    )
    hint = (
        f"pass --common to compare the {shared} case(s) they share"
        if shared
        else "they share no case"
    )
    return f"{la} and {lb} scored different cases: {', '.join(parts)}{files}; {hint}"


def comparison_tables(comparison: RunComparison, *, top: int = 10) -> list:
    """Rich tables: mean metrics per run, and the ``top`` cases that changed most."""
    from rich.table import Table

    from .report import shorten

    c = comparison
    means = Table(title=f"Mean SeLo metrics over {len(c.diffs)} shared cases", title_justify="left")
    for name in ("run", "method, model", "Rsu ↑", "Ras ↓", "Rda ↑", "Rmi ↑", "ΔRmi"):
        means.add_column(name, justify="left" if name in ("run", "method, model") else "right")
    for k, (run, label, m) in enumerate(zip(c.runs, c.labels, c.means, strict=True)):
        delta = "" if k == 0 else _signed(m.rmi - c.means[0].rmi)
        means.add_row(label, run.description, *_fmt(m), delta)
    cases = Table(
        title=f"Per case, largest change of Rmi first (differences from {c.labels[0]})",
        title_justify="left",
    )
    cases.add_column("case", justify="right")
    cases.add_column("image")
    cases.add_column("query", no_wrap=True, overflow="ellipsis")
    cases.add_column(f"Rmi {c.labels[0].split(':')[0]}", justify="right")
    detailed = len(c.runs) == 2  # all four differences; with more runs only ΔRmi per run
    for label in c.labels[1:]:
        letter = label.split(":")[0]
        for name in ("ΔRsu", "ΔRas", "ΔRda", "ΔRmi") if detailed else ("ΔRmi",):
            cases.add_column(f"{name} {letter}", justify="right")
    for d in c.diffs[:top]:
        cells = [str(d.case), d.image, shorten(d.query, 36), f"{d.metrics[0].rmi:.4f}"]
        for r in range(1, len(c.runs)):
            delta = d.delta(r)
            if detailed:
                cells += [_signed(delta.rsu), _signed(-delta.ras, delta.ras), _signed(delta.rda)]
            cells.append(_signed(delta.rmi))
        cases.add_row(*cells)
    return [means, cases]


def _fmt(m: Metrics) -> list[str]:
    return [f"{m.rsu:.4f}", f"{m.ras:.4f}", f"{m.rda:.4f}", f"{m.rmi:.4f}"]


def _signed(good: float, shown: float | None = None) -> str:
    """``shown`` (default ``good``) with its sign, green when ``good`` > 0, red when < 0."""
    value = good if shown is None else shown
    text = f"{value:+.4f}"
    if abs(good) < 5e-5:
        return text
    return f"[green]{text}[/green]" if good > 0 else f"[red]{text}[/red]"


def _link(target: Path, page: Path) -> str:
    rel = os.path.relpath(target.resolve(), page.parent.resolve())
    return "/".join(quote(p) for p in Path(rel).parts)


def write_compare_html(comparison: RunComparison, path: str | os.PathLike[str]) -> Path:
    """Write the comparison page: runs, means, then every case's overlays side by side."""
    import html

    from ..pipeline.store import atomic_write_text
    from .case_overlay import OVERLAY, THUMB
    from .report_html import embedded

    page = Path(path)
    c = comparison
    esc = html.escape

    def numbers(m: Metrics, base: Metrics | None) -> str:
        cells = []
        for k, label, better in (("rsu", "Rsu", 1), ("ras", "Ras", -1), ("rda", "Rda", 1)):
            cells.append(_cell(label, getattr(m, k), base and getattr(base, k), better))
        cells.append(_cell("Rmi", m.rmi, base and base.rmi, 1))
        return "".join(cells)

    run_rows = "".join(
        f"<tr><td>{esc(label)}</td><td>{esc(str(run.path.resolve()))}</td>"
        f"<td>{esc(run.description)}</td><td>{len(run.cases)}</td>"
        f'<td><a href="{_link(run.path / "report.html", page)}">report</a></td>'
        f"{numbers(m, None if k == 0 else c.means[0])}</tr>"
        for k, (run, label, m) in enumerate(zip(c.runs, c.labels, c.means, strict=True))
    )
    case_rows = []
    for d in c.diffs:
        cells = []
        for k, run in enumerate(c.runs):
            folder = run.path / f"case_{d.case:02d}"
            thumb = embedded(folder / THUMB, "image/jpeg")
            picture = (
                f'<a href="{_link(folder / OVERLAY, page)}"><img src="{thumb}" '
                f'alt="{esc(c.labels[k])}, case {d.case}"></a>'
                if thumb is not None and (folder / OVERLAY).is_file()
                else '<div class="none">no overlay</div>'
            )
            base = None if k == 0 else d.metrics[0]
            cells.append(
                f"<td>{picture}<table class='m'><tr>{numbers(d.metrics[k], base)}</tr></table></td>"
            )
        change = " ".join(_html_signed(d.delta(r).rmi) for r in range(1, len(c.runs)))
        case_rows.append(
            f"<tr><td class='info'><b>case {d.case}</b><br>{esc(d.image)}<q>{esc(d.query)}</q>"
            f"ΔRmi {change}</td>{''.join(cells)}</tr>"
        )
    heads = "".join(
        f"<th>{esc(label)}<br><small>{esc(r.description)}</small></th>"
        for r, label in zip(c.runs, c.labels, strict=True)
    )
    left_out = (
        f"<p class='note'>Left out (not scored identically by every run): "
        f"{esc(_ranges(c.left_out))}.</p>"
        if c.left_out
        else ""
    )
    text = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>selo compare</title><style>
body{{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}}
table{{border-collapse:collapse}} td,th{{padding:3px 8px;border-bottom:1px solid #ddd;
vertical-align:top;text-align:left}} .cases img{{width:300px;display:block}}
td.info{{width:220px}} q{{display:block;margin:2px 0}} .note{{color:#555}}
table.m td{{border:0;padding:1px 6px 1px 0;font-size:12px}} .up{{color:#080}} .down{{color:#b00}}
.none{{width:300px;height:100px;background:#eee;color:#888;display:flex;align-items:center;
justify-content:center}}
</style></head><body>
<h1>selo compare: {len(c.runs)} runs, {len(c.diffs)} cases</h1>
<table><tr><th>run</th><th>folder</th><th>method, model</th><th>cases</th><th></th>
<th colspan="4">mean over the compared cases (Δ from {esc(c.labels[0])})</th></tr>{run_rows}</table>
{left_out}
<p class="note">Cases in order of the largest change of Rmi from {esc(c.labels[0])} (gains and
losses alike). Ras: lower is better. Click a thumbnail for the full-size overlay.</p>
<table class="cases"><tr><th>case</th>{heads}</tr>
{"".join(case_rows)}
</table></body></html>
"""
    return atomic_write_text(page, text)


def _cell(label: str, value: float, base: float | None, better: int) -> str:
    text = f"{label} {value:.4f}"
    if base is not None:
        text += " " + _html_signed((value - base) * better, value - base)
    return f"<td>{text}</td>"


def _html_signed(good: float, shown: float | None = None) -> str:
    value = good if shown is None else shown
    cls = "" if abs(good) < 5e-5 else ("up" if good > 0 else "down")
    return f'<span class="{cls}">{value:+.4f}</span>'


@click.command("compare")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--out",
    type=click.Path(path_type=str),
    default="compare.html",
    show_default=True,
    help="The HTML page with each case's overlays side by side.",
)
@click.option("--common", is_flag=True, help="Compare only the cases every run scored identically.")
@click.option(
    "--top",
    type=click.IntRange(0),
    default=10,
    show_default=True,
    help="Cases to print (the page has all).",
)
def compare_cmd(runs, out, common, top):
    """Compare runs of the same cases: RUN_A RUN_B [RUN_C ...] (selo airslt run folders).

    Checks that the runs scored the same cases (index, image, query, polygons), prints
    the mean metrics of each run and the cases whose Rmi changed most from RUN_A, and
    writes an HTML page with each case's overlays side by side. Runs of different cases
    are refused unless --common limits the comparison to the cases they share.
    """
    from .report import console

    if len(runs) < 2:
        raise click.UsageError("give at least two run folders")
    comparison = compare_runs([load_run(r) for r in runs], common=common)
    for table in comparison_tables(comparison, top=top):
        console.print(table)
    if comparison.left_out:
        console.print(
            f"[yellow]{len(comparison.left_out)} case(s) not scored identically by every run, "
            f"left out: {_ranges(comparison.left_out)}[/yellow]"
        )
    console.print(f"side by side: {write_compare_html(comparison, out)}")
