"""Human-readable reports: metric tables, stage tables, progress bars (rich)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from selo.selo_tasks.eval import CaseResult
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


# Published SeLo v1 stage times on AIR-SLT (RTX 3090, AMFMN, scales 256/512/768), seconds.
PUBLISHED_STAGES = {"cut": 0.93 * 60, "sim": 5.72 * 60, "gnt": 7.38 * 60, "flt": 0.74 * 60}


def stage_chart(path, stages: Mapping[str, Mapping[str, float]], *, title: str) -> None:
    """A PNG bar chart of wall seconds per stage, next to the published v1 times (log scale).

    Drawn with OpenCV to avoid a plotting dependency; written atomically.
    """
    import math

    import cv2
    import numpy as np

    from selo.pipeline.store import atomic_path

    names = [n for n in stages if stages[n].get("wall", 0) > 0] or list(stages)
    rows = [(n, stages[n].get("wall", 0.0), PUBLISHED_STAGES.get(n)) for n in names]
    width, left, row_h = 900, 120, 44
    height = 90 + row_h * len(rows) + 40
    img = np.full((height, width, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, title, (12, 30), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    lo, hi = -2.0, math.log10(max([1.0] + [v for _, a, b in rows for v in (a, b) if v]) * 2)

    def x_of(seconds: float) -> int:
        frac = (math.log10(max(seconds, 10**lo)) - lo) / (hi - lo)
        return left + int(frac * (width - left - 150))

    for i, (name, ours, published) in enumerate(rows):
        y = 60 + i * row_h
        cv2.putText(img, name, (12, y + 22), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.rectangle(img, (left, y + 4), (x_of(ours), y + 18), (200, 120, 30), -1)
        cv2.putText(
            img, f"{ours:.2f} s", (x_of(ours) + 6, y + 17), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA
        )
        if published:
            cv2.rectangle(img, (left, y + 22), (x_of(published), y + 36), (170, 170, 170), -1)
            cv2.putText(
                img,
                f"{published:.0f} s (published)",
                (x_of(published) + 6, y + 35),
                font,
                0.45,
                (90, 90, 90),
                1,
                cv2.LINE_AA,
            )
    y = height - 24
    for p in range(int(lo), int(math.ceil(hi)) + 1):
        x = x_of(10.0**p)
        cv2.line(img, (x, 52), (x, y - 10), (225, 225, 225), 1)
        cv2.putText(img, f"{10.0**p:g}s", (x - 12, y + 8), font, 0.4, (90, 90, 90), 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".png", img)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
