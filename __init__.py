"""selo: semantic localization (SeLo) on large remote-sensing rasters.

The Python API (lazy, on xarray)::

    import selo

    scene = selo.open_scene("tile.tif")            # (y, x, band) DataArray, .rio georeferenced
    ds = selo.localize(scene, ["green trees", "white planes"])
    ds.selo.sel(query="green trees").rio.to_raster("trees.tif")
    selo.evaluate(ds.selo.sel(query="green trees").values, polygons)

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
    "__version__",
    "evaluate",
    "evaluate_run",
    "localize",
    "open_scene",
]

if TYPE_CHECKING:  # pragma: no cover
    from .models import Encoder, EncoderSpec
    from .pipeline.cache import Cache
    from .selo_tasks.api import evaluate, evaluate_run, localize, open_scene

_LAZY = {
    "Cache": "selo.pipeline.cache",
    "Encoder": "selo.models",
    "EncoderSpec": "selo.models",
    "evaluate": "selo.selo_tasks.api",
    "evaluate_run": "selo.selo_tasks.api",
    "localize": "selo.selo_tasks.api",
    "open_scene": "selo.selo_tasks.api",
}


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
