"""selo: semantic localization (SeLo) on large remote-sensing rasters.

The package is laid out as its architecture (see README): ``selo.pipeline`` is
the generic large-raster dataflow, ``selo.models`` the encoders,
``selo.cluster`` where a run's Dask cluster comes from, and ``selo.selo_tasks``
the SeLo methods, metrics, AIR-SLT runs and the command line.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
