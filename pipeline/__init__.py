"""The generic large-raster dataflow: scene input, windows, Cut, Sim, Gnt, Flt, outputs.

It knows nothing about SeLo metrics. The two defaults every layer shares live here so
that the command line can show them without importing the dataflow.
"""

DEFAULT_CHUNK = 4096
"""Default side of a scene chunk, in pixels."""

DEFAULT_BATCH = 64
"""Default number of windows per encoder batch."""
