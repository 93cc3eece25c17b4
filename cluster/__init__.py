"""How a run gets its Dask cluster: embedded, an existing scheduler, or GPUs.

``cluster`` imports nothing else of selo except the shared error types.
"""

from .connect import (
    MAX_THREADS,
    RunCluster,
    check_cluster,
    connect,
    default_layout,
    max_workers,
    unseen_paths,
)

__all__ = [
    "MAX_THREADS",
    "RunCluster",
    "check_cluster",
    "connect",
    "default_layout",
    "max_workers",
    "unseen_paths",
]
