"""What every HTML page of selo shares: escaping, links, embedded pictures, a case's
overlay thumbnail and signed differences of an indicator."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from urllib.parse import quote

from ..metrics import Indicator
from ..run_folder import OVERLAY, THUMB

__all__ = ["esc", "href", "link", "embedded", "overlay_thumbnail", "signed"]


def esc(value: object) -> str:
    """``value`` as HTML text (quotes escaped too)."""
    return html.escape(str(value), quote=True)


def href(*parts: str) -> str:
    """A relative link from path parts, each percent-encoded."""
    return "/".join(quote(p) for p in parts)


def link(target: Path, page: Path) -> str:
    """A relative link from the page at ``page`` to ``target``."""
    return href(*Path(os.path.relpath(target.resolve(), page.parent.resolve())).parts)


def embedded(path: Path, mime: str) -> str | None:
    """A ``data:`` URI of the file, or None when it is missing."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def overlay_thumbnail(folder: Path, target: str, alt: str, *, title: str | None = None) -> str:
    """A case folder's thumbnail, embedded, linking to ``target`` (its full-size overlay);
    a "no overlay" box when the case has none."""
    thumb = embedded(folder / THUMB, "image/jpeg")
    if thumb is None or not (folder / OVERLAY).is_file():
        return '<div class="none">no overlay</div>'
    titled = f' title="{title}"' if title else ""
    return f'<a href="{target}"{titled}><img src="{thumb}" alt="{alt}"></a>'


def signed(indicator: Indicator, difference: float) -> str:
    """A difference with its sign, in a span of class ``up`` (a gain) or ``down`` (a loss)."""
    cls = {1: "up", -1: "down"}.get(indicator.verdict(difference), "")
    return f'<span class="{cls}">{indicator.signed(difference)}</span>'
