"""Human-readable reports: metric tables, stage tables, progress bars (rich)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from selo.selo_tasks.evaluate import CaseResult
from selo.selo_tasks.metrics import Metrics, mean_metrics

__all__ = ["console", "metrics_table", "stage_table", "progress", "shorten"]

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
    for name in ("Rsu ↑", "Rda ↑", "Ras ↓", "Rmi ↑"):
        t.add_column(name, justify="right")
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


def _fmt(m: Metrics) -> list[str]:
    return [f"{m.rsu:.4f}", f"{m.rda:.4f}", f"{m.ras:.4f}", f"{m.rmi:.4f}"]


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
