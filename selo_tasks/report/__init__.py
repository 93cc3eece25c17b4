"""Everything selo shows a person: terminal tables, the pictures of a run and its HTML pages.

- :mod:`.terminal`: metric, stage and comparison tables, progress bars (rich);
- :mod:`.charts`: ``stages.png`` and ``scenes.png``, a run's time;
- :mod:`.drawing`: marks and legends drawn on an overlay;
- :mod:`.case_overlay`: a case's annotated ``overlay.png`` and ``thumb.jpg``;
- :mod:`.page`: what every HTML page shares (escaping, links, embedded pictures, metric
  cells);
- :mod:`.run_page`: ``report.html`` of a run; :mod:`.compare_page`: ``compare.html``;
  :mod:`.search_page`: ``hits.html`` of a ``selo search``.
"""
