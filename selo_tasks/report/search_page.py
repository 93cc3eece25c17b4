"""``hits.html``: the page of a ``selo search``, one self-contained file (thumbnails embedded).

It turns the search's record and one card per hit (made by
:mod:`selo.selo_tasks.search`: rank, score, scene, place, thumbnail, links) into the page
and knows nothing else of the search. For each sentence: its hits in rank order,
each the crop of its scene under the mean map (JET, the sentence's own colour scale from
the scenes' background to the best score), the region outlined and its attention centre
marked, with a link that opens the hit in ``selo serve`` of the same scenes (at its default
address) and links to the scene's full SeLo map where ``--maps`` wrote it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path

from ...pipeline.store import atomic_write_text
from ..serve import DEFAULT_HOST, DEFAULT_PORT
from .page import esc, href

__all__ = ["HITS_HTML", "SERVE_URL", "data_uri", "write_hits_html"]

HITS_HTML = "hits.html"
SERVE_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"  # `selo serve`, as it starts by default

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.sub,.note{color:#555;margin:0 0 12px} .note{font-size:13px;max-width:900px}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:14px}
figure{margin:0;border:1px solid #ddd;border-radius:4px;padding:6px;background:#fafafa}
figure img{width:100%;display:block} figcaption{font-size:13px;margin-top:4px}
.dim{color:#777} .links a{margin-right:8px} .path{word-break:break-all}
"""


def data_uri(data: bytes, mime: str) -> str:
    """A ``data:`` URI holding ``data``."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _card(card: Mapping) -> str:
    links = f'<a href="{esc(SERVE_URL + card["serve"])}">open in selo serve</a>'
    if card.get("maps"):
        base = href(*Path(card["maps"]).parts)
        links += (
            f'<a href="{base}/overlay.png">SeLo map over the scene</a>'
            f'<a href="{base}/selo_map.tif">GeoTIFF</a>'
            f'<a href="{base}/regions.geojson">regions</a>'
        )
    links = f'<div class="links">{links}</div>'
    return (
        f'<figure><img src="{card["thumbnail"]}" alt="hit {card["rank"]}: '
        f'{esc(card["scene_name"])}"><figcaption><b>#{card["rank"]}</b> · score '
        f"{card['score']:.4f} · {esc(card['scene_name'])}<br>"
        f'<span class="dim">{esc(card["where"])} · {card["area_px"]:,} px²</span><br>'
        f'<span class="dim path">{esc(card["scene"])}</span>{links}</figcaption></figure>'
    )


def write_hits_html(out: str | Path, record: Mapping, cards: Sequence[Mapping]) -> Path:
    """Write ``out/hits.html``: the gallery of ``cards`` (one per hit, sentence after
    sentence)."""
    sections = []
    for number, query in enumerate(record["queries"], start=1):
        mine = [c for c in cards if c["query_number"] == number]
        if mine:
            lo, hi = mine[0]["scale"]
            scale = (
                f"colours: the mean cosine from {lo:.4f} (blue; the lowest background of "
                f"these scenes) to {hi:.4f} (red; the best hit)"
            )
            body = f'<div class="gallery">{"".join(_card(c) for c in mine)}</div>'
        else:
            scale, body = "", '<p class="note">no region found.</p>'
        sections.append(
            f"<h2>{number}. {esc(query)}</h2>"
            f'<p class="note">{len(mine)} hit(s) · {esc(scale)}</p>{body}'
        )
    index = record.get("index", {})
    skipped = record.get("skipped") or []
    skipped_note = (
        f'<p class="note">{len(skipped)} scene(s) left out: '
        + "; ".join(f"{esc(s)}: {esc(r)}" for s, r in skipped)
        + "</p>"
        if skipped
        else ""
    )
    encoder = record.get("encoder", {})
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>selo search</title><style>{_CSS}</style></head>
<body>
<h1>selo search: {len(record["queries"])} sentence(s) over {record["scenes"]} scene(s)</h1>
<p class="sub">top {record["top"]} regions per sentence, ranked across every scene by their
peak mean cosine · {esc(encoder.get("spec", "?"))} · index: {esc(index.get("mode", "?"))},
{index.get("windows", 0):,} windows · searched in {index.get("search_seconds", 0):.2f} s</p>
<p class="note">Each picture is the hit's scene around its region, under the scene's mean
map (the mean cosine of the windows covering each pixel); the region is outlined, its
attention centre (the peak) marked. All hits: <a href="hits.geojson">hits.geojson</a>,
<a href="hits.parquet">hits.parquet</a>. “open in selo serve” shows a hit at its place
with its scene's SeLo map while <code>selo serve</code> of the same scenes runs at
{SERVE_URL} (another address: the same link after it, <code>/#q=…&amp;hit=N</code>).</p>
{skipped_note}
{"".join(sections)}
</body></html>
"""
    return atomic_write_text(Path(out) / HITS_HTML, page, what="search page")
