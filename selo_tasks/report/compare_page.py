"""``compare.html``: runs of the same cases side by side (:mod:`~selo.selo_tasks.compare`).

The page lists the runs with their mean metrics (and each one's differences from the
first), then every compared case, largest change of Rmi first, with each run's
annotated overlay (embedded thumbnails, linking to the full-size overlays in the run
folders) and metrics.
"""

from __future__ import annotations

import os
from pathlib import Path

from ...pipeline.store import atomic_write_text
from ..compare import RunComparison, case_ranges
from ..metrics import RMI, SHOWN, Metrics
from ..run_folder import OVERLAY, REPORT, case_dir
from .page import esc, link, overlay_thumbnail, signed

__all__ = ["write_compare_html"]


def _numbers(m: Metrics, base: Metrics | None) -> str:
    """A cell per indicator: its value and, beside a base, the difference from it."""
    cells = []
    for i in SHOWN:
        text = f"{i.label} {i.text(i.of(m))}"
        if base is not None:
            text += " " + signed(i, i.of(m) - i.of(base))
        cells.append(f"<td>{text}</td>")
    return "".join(cells)


def write_compare_html(comparison: RunComparison, path: str | os.PathLike[str]) -> Path:
    """Write the comparison page: runs, means, then every case's overlays side by side."""
    page = Path(path)
    c = comparison
    run_rows = "".join(
        f"<tr><td>{esc(label)}</td><td>{esc(run.path.resolve())}</td>"
        f"<td>{esc(run.description)}</td><td>{len(run.cases)}</td>"
        f'<td><a href="{link(run.path / REPORT, page)}">report</a></td>'
        f"{_numbers(m, None if k == 0 else c.means[0])}</tr>"
        for k, (run, label, m) in enumerate(zip(c.runs, c.labels, c.means, strict=True))
    )
    case_rows = []
    for d in c.diffs:
        cells = []
        for k, run in enumerate(c.runs):
            folder = case_dir(run.path, d.case)
            picture = overlay_thumbnail(
                folder, link(folder / OVERLAY, page), f"{esc(c.labels[k])}, case {d.case}"
            )
            base = None if k == 0 else d.metrics[0]
            numbers = _numbers(d.metrics[k], base)
            cells.append(f"<td>{picture}<table class='m'><tr>{numbers}</tr></table></td>")
        change = " ".join(signed(RMI, RMI.of(d.delta(r))) for r in range(1, len(c.runs)))
        case_rows.append(
            f"<tr><td class='info'><b>case {d.case}</b><br>{esc(d.image)}<q>{esc(d.query)}</q>"
            f"Δ{RMI.label} {change}</td>{''.join(cells)}</tr>"
        )
    heads = "".join(
        f"<th>{esc(label)}<br><small>{esc(r.description)}</small></th>"
        for r, label in zip(c.runs, c.labels, strict=True)
    )
    left_out = (
        f"<p class='note'>Left out (not scored identically by every run): "
        f"{esc(case_ranges(c.left_out))}.</p>"
        if c.left_out
        else ""
    )
    span = len(SHOWN)  # the means' columns
    lower = " ".join(f"{i.label}: lower is better." for i in SHOWN if not i.higher_is_better)
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
<th colspan="{span}">mean over the compared cases (Δ from {esc(c.labels[0])})</th></tr>\
{run_rows}</table>
{left_out}
<p class="note">Cases in order of the largest change of {RMI.label} from {esc(c.labels[0])} \
(gains and
losses alike). {lower} Click a thumbnail for the full-size overlay.</p>
<table class="cases"><tr><th>case</th>{heads}</tr>
{"".join(case_rows)}
</table></body></html>
"""
    return atomic_write_text(page, text)
