"""selo: semantic localization (SeLo) on large remote-sensing rasters.

The Python API (lazy, on xarray)::

    import selo

    scene = selo.open_scene("tile.tif")            # (y, x, band) DataArray, .rio georeferenced
    ds = selo.localize(scene, ["green trees", "white planes"])
    ds.selo.sel(query="green trees").rio.to_raster("trees.tif")
    hits = selo.search("tiles/*.tif", "white planes")  # GeoDataFrame: the best regions
    selo.evaluate(ds.selo.sel(query="green trees").values, polygons)

and the commands as functions (``selo.localize_files``, ``selo.airslt``, ``selo.demo``,
``selo.evaluate_run``, ``selo.serve``), all taking the run options of :class:`selo.Options`.

The package is laid out as its architecture: ``selo.pipeline`` is the generic
large-raster dataflow (Cut, Sim, Gnt, Flt), ``selo.models`` the encoders (subclass
:class:`selo.Encoder` to bring your own), ``selo.cluster`` where a run's Dask
cluster comes from, and ``selo.selo_tasks`` the SeLo methods, metrics (Eval),
AIR-SLT runs and the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.2.0"

__all__ = [
    "Cache",
    "Encoder",
    "EncoderSpec",
    "Options",
    "__version__",
    "airslt",
    "demo",
    "evaluate",
    "evaluate_run",
    "localize",
    "localize_files",
    "open_scene",
    "search",
    "serve",
    "synth_airslt",
]

if TYPE_CHECKING:  # pragma: no cover
    from .models import Encoder, EncoderSpec
    from .pipeline.cache import Cache
    from .selo_tasks.api import (
        Options,
        airslt,
        demo,
        evaluate,
        evaluate_run,
        localize,
        localize_files,
        open_scene,
        search,
        serve,
        synth_airslt,
    )

_LAZY = {"Cache": "selo.pipeline.cache", "Encoder": "selo.models", "EncoderSpec": "selo.models"}
_LAZY |= {n: "selo.selo_tasks.api" for n in __all__ if n not in _LAZY and n != "__version__"}


def __getattr__(name: str):
    """Import the API on first use, so ``import selo`` (and ``selo --help``) stay quick."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'selo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
