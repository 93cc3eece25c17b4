"""``report.html``: one self-contained page per run, to read a run case by case.

The page holds the run's settings (from ``run.json``), the metrics table (the
mean row of ``metrics.csv`` and the flat-map / random-score baselines when the
run computed them), the stage and per-scene time charts, and a gallery of every
case — the annotated overlay's thumbnail, the caption and the four numbers —
sortable by Rsu, Ras, Rda or Rmi (a few lines of inline JavaScript). Thumbnails
and charts are embedded (base64), the full-size overlays and maps are relative
links into the run folder: the page needs no network and no other file to be
read, and the links work as long as it stays in its run folder.

:func:`finish_run_folder` is what a run calls at its end: charts, then the page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from ...pipeline.store import as_path, atomic_write_text
from ..eval import CsvRow, read_metrics_csv
from ..metrics import SHOWN, Metrics
from ..run_folder import (
    CASE_RECORD,
    METRICS_CSV,
    OVERLAY,
    OVERLAY_PLAIN,
    PROFILE,
    REPORT,
    SCENES_PNG,
    SELO_MAP,
    STAGES_PNG,
    case_dir,
    read_record,
    write_record,
)
from ..run_info import published_comparison
from .charts import scene_chart, stage_chart
from .page import embedded, esc, href, overlay_thumbnail

__all__ = ["write_charts", "write_report", "finish_run_folder", "add_baselines"]


def write_charts(out: Path, record: Mapping) -> dict[str, list[str]]:
    """``stages.png`` (published bars only beside a comparable run) and, for runs of
    several scenes, ``scenes.png``; returns what each chart drew."""
    comparison = published_comparison(record)
    title = f"selo airslt: {record.get('scored', 0)} cases, {record.get('wall_seconds', 0):.1f} s"
    drawn = {
        STAGES_PNG: stage_chart(
            out / STAGES_PNG, record["stages"], title=title, published=comparison
        )
    }
    scenes = {n: s["task_seconds"] for n, s in (record.get("scenes") or {}).items()}
    if len(scenes) > 1:
        drawn[SCENES_PNG] = scene_chart(
            out / SCENES_PNG, scenes, title="Task seconds per scene, by stage (summed over workers)"
        )
    else:
        (out / SCENES_PNG).unlink(missing_ok=True)
    return drawn


def finish_run_folder(out: Path, record: Mapping) -> Path | None:
    """Charts and ``report.html`` of a finished run (``record``: its run.json); no report
    when the run scored nothing (it has no metrics.csv)."""
    write_charts(out, record)
    if not (out / METRICS_CSV).is_file():
        (out / REPORT).unlink(missing_ok=True)
        return None
    return write_report(out)


def add_baselines(out: Path, baselines: Mapping[str, Metrics]) -> Path:
    """Record baseline means (e.g. flat map, random scores) in run.json; rewrite the report."""
    record = read_record(out)
    record["baselines"] = {name: m.as_dict() for name, m in baselines.items()}
    write_record(out, record)
    return write_report(out)


def _case_extra(folder: Path) -> dict:
    try:
        return json.loads((folder / CASE_RECORD).read_text())
    except (OSError, ValueError):
        return {}


def _kv(value: object) -> str:
    if isinstance(value, Mapping):
        if not value:
            return "—"
        return "<br>".join(f"{esc(k)}: {_kv(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return esc(", ".join(str(v) for v in value)) if value else "—"
    if isinstance(value, float):
        return esc(f"{value:.4g}")
    return esc("—" if value is None else value)


def _metric_cells(m: Metrics) -> str:
    return "".join(f"<td>{i.text(i.of(m))}</td>" for i in SHOWN)


def _metric_heads() -> str:
    return "".join(f"<th>{i.heading}</th>" for i in SHOWN)


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.sub{color:#555;margin:0 0 12px} table{border-collapse:collapse}
td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left} table.kv td{text-align:left}
tr.mean td{font-weight:600} tr.base td{color:#666}
.charts img{max-width:100%;border:1px solid #ddd;margin:4px 0}
.note{color:#555;font-size:13px;max-width:900px}
#gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:14px}
figure{margin:0;border:1px solid #ddd;border-radius:4px;padding:6px;background:#fafafa}
figure img{width:100%;display:block} figcaption{font-size:13px;margin-top:4px}
figcaption q{display:block;color:#333;margin:2px 0}
table.m{margin:3px 0} table.m td,table.m th{padding:1px 8px 1px 0;text-align:left;border:0}
table.m th{font-weight:normal;color:#555}
.none{height:120px;display:flex;align-items:center;justify-content:center;color:#888;background:#eee}
.sort{margin:0 0 10px} .links a{margin-right:8px} .dim{color:#777}
"""


def _script() -> str:
    """The gallery's sorting, with the indicators whose lower values are better from the
    indicator table."""
    lower = [i for i in SHOWN if not i.higher_is_better]
    is_lower = " || ".join(f"key === '{i.name}'" for i in lower) or "false"
    said = f"{', '.join(i.label for i in lower)}: lower is better"
    return f"""
function sortCases() {{
  const key = document.getElementById('sort-key').value;
  const best = document.getElementById('sort-order').value === 'best';
  const gallery = document.getElementById('gallery');
  const sign = ({is_lower} ? -1 : 1) * (best ? -1 : 1);  // {said}
  const cards = Array.from(gallery.querySelectorAll('figure'));
  cards.sort((a, b) => key === 'case' ? a.dataset.case - b.dataset.case
    : sign * (a.dataset[key] - b.dataset[key]) || a.dataset.case - b.dataset.case);
  cards.forEach((c) => gallery.appendChild(c));
}}
"""


def _card(out: Path, row: CsvRow) -> str:
    index = row.case
    folder = case_dir(out, index)
    name = folder.name
    extra = _case_extra(folder)
    data = " ".join(f'data-{i.name}="{esc(repr(i.of(row.metrics)))}"' for i in SHOWN)
    picture = overlay_thumbnail(
        folder,
        href(name, OVERLAY),
        f"annotated overlay of case {index}",
        title="full-size overlay",
    )
    centres = extra.get("centres")
    counted = (
        f"{sum(1 for c in centres if c[2])} of {len(centres)} attention centres counted"
        if isinstance(centres, list)
        else ""
    )
    links = [
        f'<a href="{href(name, f)}">{label}</a>'
        for f, label in ((OVERLAY, "overlay"), (OVERLAY_PLAIN, "plain overlay"), (SELO_MAP, "map"))
        if (folder / f).is_file()
    ]
    numbers = f"<tr>{_metric_heads()}</tr><tr>{_metric_cells(row.metrics)}</tr>"
    return (
        f'<figure data-case="{index}" {data}>{picture}<figcaption>'
        f"<b>case {index}</b> · {esc(row.image)}<q>{esc(row.query)}</q>"
        f'<table class="m">{numbers}</table><span class="dim">{counted}</span>'
        f'<div class="links">{"".join(links)}</div></figcaption></figure>'
    )


def write_report(out: Path) -> Path:
    """Write ``out/report.html`` from the run folder's run.json, metrics.csv and case files."""
    out = as_path(out)
    record = read_record(out)
    rows, mean = read_metrics_csv(out / METRICS_CSV)
    method = record.get("method") or {}
    encoder = record.get("encoder") or {}
    scenes = record.get("scenes") or {}
    metric_rows = []
    if mean is not None:
        metric_rows.append(
            f'<tr class="mean"><td>mean of {len(rows)} cases</td>{_metric_cells(mean)}</tr>'
        )
    for name, values in (record.get("baselines") or {}).items():
        cells = _metric_cells(Metrics.from_dict(values))
        metric_rows.append(f'<tr class="base"><td>{esc(name)}</td>{cells}</tr>')
    settings = {
        "command": record.get("command"),
        "images": record.get("images"),
        "cases given": record.get("cases"),
        "cases scored": record.get("scored"),
        "skipped (scene missing)": record.get("skipped"),
        "annotations digest": (record.get("annotations") or {}).get("digest"),
        "method": method,
        "encoder": encoder,
        "options": record.get("options"),
        "wall seconds": record.get("wall_seconds"),
        "finished": record.get("finished_at"),
    }
    settings_rows = "".join(
        f"<tr><td>{esc(k)}</td><td>{_kv(v)}</td></tr>" for k, v in settings.items()
    )
    versions = _kv({"cluster": record.get("cluster"), "versions": record.get("versions")})
    stage_rows = "".join(
        f"<tr><td>{esc(n)}</td><td>{s.get('wall', 0):.2f}</td><td>{s.get('task', 0):.2f}</td>"
        f"<td>{int(s.get('tasks', 0))}</td></tr>"
        for n, s in (record.get("stages") or {}).items()
    )
    charts = []
    for file, alt in (
        (STAGES_PNG, "wall seconds per stage"),
        (SCENES_PNG, "task seconds per scene"),
    ):
        uri = embedded(out / file, "image/png")
        if uri is not None:
            charts.append(f'<img src="{uri}" alt="{alt}">')
    profile = (
        f' Dask\'s own report: <a href="{href(PROFILE)}">{PROFILE}</a>.'
        if (out / PROFILE).is_file()
        else ""
    )
    options = "".join(
        f'<option value="{k}">{label}</option>'
        for k, label in (("case", "case"), *((i.name, i.label) for i in SHOWN))
    )
    cards = "\n".join(_card(out, r) for r in rows)
    title = f"selo {record.get('command', 'run')} run: {out.name}"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{esc(title)}</h1>
<p class="sub">{esc(out.resolve())} · {len(rows)} cases over {len(scenes)} scenes ·
{esc(method.get("name", "?"))} ·
{esc(encoder.get("spec", "?"))} on {esc(encoder.get("device", "?"))} ·
{float(record.get("wall_seconds") or 0):.1f} s wall</p>
<h2>Metrics</h2>
<table class="metrics"><tr><th></th>{_metric_heads()}</tr>{"".join(metric_rows)}</table>
<p class="note">↑ higher is better, ↓ lower is better. Per-case values are in
<a href="{href(METRICS_CSV)}">{METRICS_CSV}</a>. On this page: <a href="#cases">cases</a> ·
<a href="#time">time</a> · <a href="#settings">settings</a>.</p>
<h2 id="cases">Cases</h2>
<div class="sort">sort by <select id="sort-key" onchange="sortCases()">{options}</select>
<select id="sort-order" onchange="sortCases()"><option value="worst">worst first</option>
<option value="best">best first</option></select>
<span class="dim">Thumbnails: annotated regions outlined, each region's centre and radius
dashed, attention centres as white discs (within a radius: counted by Ras and Rda) or
magenta crosses (not counted). Click for the full-size overlay.</span></div>
<div id="gallery">
{cards}
</div>
<h2 id="time">Time</h2>
<div class="charts">{"<br>".join(charts)}</div>
<table><tr><th>stage</th><th>wall s</th><th>task s</th><th>tasks</th></tr>{stage_rows}</table>
<p class="note">Per-scene seconds are task seconds summed over workers (work in the client
process — opening scenes, cell maps — is not in them).{profile}</p>
<h2 id="settings">Settings</h2>
<table class="kv">{settings_rows}</table>
<details><summary>cluster and versions</summary><p>{versions}</p></details>
<script>{_script()}</script>
</body></html>
"""
    return atomic_write_text(out / REPORT, page)
