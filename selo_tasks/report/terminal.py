"""The terminal's reports: metric tables, stage tables, comparison tables, progress bars
(rich)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..eval import CaseResult
from ..metrics import INDICATORS, RMI, SHOWN, Indicator, Metrics, mean_metrics

if TYPE_CHECKING:
    from ..compare import RunComparison

__all__ = [
    "console",
    "err_console",
    "metrics_table",
    "comparison_tables",
    "stage_table",
    "progress",
    "shorten",
]

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)


def shorten(text: str, width: int = 48) -> str:
    """``text`` cut to ``width`` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def metrics_table(
    results: Sequence[CaseResult],
    *,
    title: str = "SeLo metrics",
    baselines: Mapping[str, Metrics] | None = None,
) -> Table:
    """One row per case, the mean, and optional baseline rows (e.g. flat/random maps)."""
    t = Table(title=title, title_justify="left")
    t.add_column("case", justify="right")
    t.add_column("image")
    t.add_column("query")
    for i in INDICATORS:
        t.add_column(i.heading, justify="right")
    for r in results:
        m = r.metrics
        t.add_row(str(r.case.index), r.case.image, shorten(r.case.query), *_fmt(m))
    if results:
        t.add_section()
        t.add_row(
            "mean",
            f"{len(results)} cases",
            "",
            *_fmt(mean_metrics(r.metrics for r in results)),
            style="bold",
        )
    for name, m in (baselines or {}).items():
        t.add_row("", name, "", *_fmt(m), style="dim")
    return t


def _fmt(m: Metrics, order: Sequence[Indicator] = INDICATORS) -> list[str]:
    return [i.text(i.of(m)) for i in order]


def comparison_tables(comparison: RunComparison, *, top: int = 10) -> list[Table]:
    """Tables of a comparison: mean metrics per run, and the ``top`` cases whose Rmi
    changed most."""
    c = comparison
    means = Table(title=f"Mean SeLo metrics over {len(c.diffs)} shared cases", title_justify="left")
    means.add_column("run")
    means.add_column("method, model")
    for name in (*(i.heading for i in SHOWN), f"Δ{RMI.label}"):
        means.add_column(name, justify="right")
    for k, (run, label, m) in enumerate(zip(c.runs, c.labels, c.means, strict=True)):
        delta = "" if k == 0 else _signed(RMI, RMI.of(m) - RMI.of(c.means[0]))
        means.add_row(label, run.description, *_fmt(m, SHOWN), delta)
    cases = Table(
        title=f"Per case, largest change of {RMI.label} first (differences from {c.labels[0]})",
        title_justify="left",
    )
    cases.add_column("case", justify="right")
    cases.add_column("image")
    cases.add_column("query", no_wrap=True, overflow="ellipsis")
    cases.add_column(f"{RMI.label} {c.labels[0].split(':')[0]}", justify="right")
    # all four differences of two runs; with more runs only the change of Rmi per run
    shown = SHOWN if len(c.runs) == 2 else (RMI,)
    for label in c.labels[1:]:
        for i in shown:
            cases.add_column(f"Δ{i.label} {label.split(':')[0]}", justify="right")
    for d in c.diffs[:top]:
        cells = [str(d.case), d.image, shorten(d.query, 36), RMI.text(RMI.of(d.metrics[0]))]
        for r in range(1, len(c.runs)):
            delta = d.delta(r)
            cells += [_signed(i, i.of(delta)) for i in shown]
        cases.add_row(*cells)
    return [means, cases]


def _signed(indicator: Indicator, difference: float) -> str:
    """A difference with its sign, green when a gain, red when a loss."""
    text = indicator.signed(difference)
    colour = {1: "green", -1: "red"}.get(indicator.verdict(difference))
    return f"[{colour}]{text}[/{colour}]" if colour else text


def stage_table(
    stages: Mapping[str, Mapping[str, float]], *, title: str = "Time per stage"
) -> Table:
    """The paper's stage table: wall seconds and summed task seconds per stage."""
    t = Table(title=title, title_justify="left")
    t.add_column("stage")
    t.add_column("wall s", justify="right")
    t.add_column("task s", justify="right")
    t.add_column("share", justify="right")
    total = sum(s.get("wall", 0.0) for s in stages.values()) or 1.0
    for name, s in stages.items():
        wall = s.get("wall", 0.0)
        t.add_row(name, f"{wall:.2f}", f"{s.get('task', 0.0):.2f}", f"{100 * wall / total:.0f}%")
    return t


@contextmanager
def progress(description: str, total: int, *, enabled: bool = True) -> Iterator:
    """A progress bar on stderr; yields ``advance(n=1)``. Quiet when not a terminal."""
    if not enabled:
        yield lambda n=1: None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
