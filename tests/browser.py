"""The one way the browser tests, `benchmarks/bench_serve.py` and `docs/screenshots.py`
drive Chromium: Debian's executable (Playwright's own download is not reachable here),
headless and offline, and a sentence typed into `selo serve`'s page."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("SELO_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(playwright):
    """Chromium started by ``playwright`` (a ``sync_playwright()`` instance)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def type_sentence(page, sentence: str, *, timeout: float = 60_000) -> dict:
    """Type ``sentence`` into the page's query box and press Enter; once its overlay tiles
    are drawn, the page's timing record of it (``id``, ``ms``, ``cached``, ...)."""
    before = page.evaluate("window.selo.timings.length")
    page.fill("#sentence", sentence)
    page.press("#sentence", "Enter")
    page.wait_for_function(f"window.selo.timings.length > {before}", timeout=timeout)
    return page.evaluate("window.selo.timings[window.selo.timings.length - 1]")
