"""The generic large-raster dataflow: scene input, windows, Cut, Sim, Gnt, Flt, outputs.

It knows nothing about SeLo metrics. The defaults every layer shares live here so that
the command line can show them without importing the dataflow.
"""

DEFAULT_CHUNK = 4096
"""Default side of a scene chunk, in pixels."""

DEFAULT_BATCH = 64
"""Default number of windows per encoder batch."""

INDEX_MODES = ("auto", "exact", "int8")
"""The collection index's modes (``--index``; the first is the default): every window
scored exactly, int8 scores bounding each scene with the scenes within reach re-ranked
exactly, or ``auto``: exact up to :data:`EXACT_MAX_WINDOWS` windows, else int8."""

EXACT_MAX_WINDOWS = 1_000_000
"""Collection index, ``auto`` mode: exact up to this many windows (about 230 scenes of
10,000²), where an exact search still takes well under a second on 2 cores
(``benchmarks/bench_search.py``); int8 beyond."""
