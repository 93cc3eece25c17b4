"""How a run gets its Dask cluster: embedded, an existing scheduler, or GPUs.

``cluster`` imports nothing else of selo except the shared error types.
"""

from .connect import RunCluster, connect, default_layout

__all__ = ["RunCluster", "connect", "default_layout"]
