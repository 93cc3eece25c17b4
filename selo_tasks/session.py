"""A run session: encoder, cluster, cache, profiler and reports set up once, torn down once.

The encoder is built in the client process first, so that a bad model name,
a missing checkpoint or a missing dependency is reported before any cluster
starts. Workers build their own copy, once per process.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from selo import __version__
from selo.cluster import connect
from selo.models import EncoderSpec
from selo.models.registry import get_encoder
from selo.pipeline.embed import EmbeddingCache
from selo.pipeline.profile import StageProfiler
from selo.selo_tasks.runner import RunContext

__all__ = ["SessionOptions", "run_session", "versions"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionOptions:
    """Where a run computes and with what model (the CLI's shared options)."""

    model: str = "color"
    checkpoint: str | None = None
    device: str | None = None
    precision: str | None = None
    scheduler: str | None = None
    gpu: bool = False
    workers: int | None = None
    threads: int | None = None
    processes: bool = True
    cache_dir: str | None = None
    chunk: int = 4096
    batch: int = 64
    profile_html: Path | None = None
    show_progress: bool = True
    paper_compat: bool = False


@contextmanager
def run_session(options: SessionOptions) -> Iterator[RunContext]:
    """Yield a :class:`RunContext`; with ``profile_html`` a Dask performance report is written."""
    spec = EncoderSpec(options.model, options.checkpoint, options.device, options.precision)
    encoder = get_encoder(spec)
    cache = EmbeddingCache(options.cache_dir)
    started = time.perf_counter()
    with connect(
        options.scheduler,
        gpu=options.gpu,
        workers=options.workers,
        threads=options.threads,
        processes=options.processes,
    ) as cluster:
        log.debug("Dask cluster: %s", _describe(cluster.describe()))
        _warm_up(cluster, spec)
        report = nullcontext()
        if options.profile_html is not None:
            from distributed import performance_report

            report = performance_report(filename=str(options.profile_html))
        with report:
            yield RunContext(
                cluster=cluster,
                profiler=StageProfiler(cluster.client),
                spec=spec,
                encoder=encoder,
                cache=cache,
                chunk=options.chunk,
                batch=options.batch,
                show_progress=options.show_progress,
                paper_compat=options.paper_compat,
            )
    log.debug("session closed after %.1f s", time.perf_counter() - started)


def _warm_up(cluster, spec: EncoderSpec) -> None:
    """Import the pipeline and load (and run) the encoder on every worker before timing starts.

    (The published timings likewise start after the model is loaded.)
    """
    try:
        cluster.client.run(_prepare_worker, spec)
    except Exception as e:  # noqa: BLE001 - a worker that cannot prepare fails later, clearly
        log.debug("worker warm-up failed: %s", e)


def _prepare_worker(spec: EncoderSpec) -> None:
    import numpy as np

    import selo.pipeline.embed  # noqa: F401 - imports cv2, rasterio, zarr, dask.array
    import selo.pipeline.raster  # noqa: F401
    from selo.models.registry import cached_encoder

    encoder = cached_encoder(spec)
    side = encoder.input_size
    encoder.encode_images(np.zeros((1, side, side, 3), np.uint8))  # first-call set-up


def _describe(d: dict) -> str:
    if d["kind"] == "address":
        return f"{d['address']} ({d['workers']} workers, {d['threads']} threads)"
    return (
        f"embedded, {d['workers']} workers x {max(1, d['threads'] // max(1, d['workers']))} threads"
    )


def versions() -> dict[str, str]:
    """Versions of selo and the libraries that shape its numbers, for run.json."""
    import cv2
    import dask
    import numpy
    import scipy
    import skimage

    out = {
        "selo": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "opencv": cv2.__version__,
        "scikit-image": skimage.__version__,
        "dask": dask.__version__,
    }
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        pass
    return out
