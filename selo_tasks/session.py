"""A run session: encoder, cluster, cache, profiler and driver set up once, torn down once.

The encoder is built in the client process first, so that a bad model name,
a missing checkpoint or a missing dependency is reported before any cluster
starts. Workers build their own copy, once per process.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..cluster import RunCluster, connect
from ..models import Encoder, EncoderSpec
from ..pipeline.cache import Cache
from ..pipeline.profile import StageProfiler, left_on_success
from ..pipeline.store import RemotePath, local_file
from .driver import ClientExecutor, Driver, LocalExecutor
from .methods import Method
from .options import Options
from .report.terminal import progress

__all__ = [
    "RunContext",
    "build_context",
    "build_driver",
    "describe_encoder",
    "run_session",
    "versions",
]

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    """What a run needs everywhere: its options, cluster, profiler, encoder, cache, driver."""

    options: Options
    cluster: RunCluster
    profiler: StageProfiler
    spec: EncoderSpec | Encoder
    encoder: Encoder
    cache: Cache
    method: Method
    driver: Driver


@contextmanager
def run_session(
    options: Options, *, one_scene: bool = False, profile_html: Path | None = None
) -> Iterator[RunContext]:
    """Yield a :class:`RunContext`; with ``profile_html`` a Dask performance report is
    written there.

    The cluster follows the work: ``one_scene`` work with no cluster option given runs
    on dask's threads in this process (nothing to start: a single scene keeps every
    core busy without worker processes); otherwise the embedded cluster (threads in
    this process, or ``--workers`` processes), the given scheduler or the GPU cluster."""
    encoder = options.build_encoder(cached=False)  # before any cluster starts
    started = time.perf_counter()
    local = one_scene and not (
        options.scheduler or options.gpu or options.workers or options.in_process or profile_html
    )
    with connect(
        options.scheduler,
        gpu=options.gpu,
        workers=options.workers,
        threads=options.threads,
        # worker processes only when asked for (--workers): on the machines measured,
        # threads in this process ran the synthetic AIR-SLT 1.4x faster (nothing to
        # pickle between processes; numpy, OpenCV, GDAL and torch release the GIL)
        processes=bool(options.workers) and not options.in_process,
        local_threads=local,
    ) as cluster:
        log.debug("Dask cluster: %s", _describe(cluster.describe()))
        if cluster.client is not None:
            _warm_up(cluster, options.spec)
        with _performance_report(profile_html):
            yield build_context(options, cluster, encoder=encoder)
    log.debug("session closed after %.1f s", time.perf_counter() - started)


@contextmanager
def _performance_report(target: Path | RemotePath | None) -> Iterator[None]:
    """Dask's performance report of the block, written to ``target`` (a local file, or an
    object uploaded) when the block succeeds; nothing without a target."""
    if target is None:
        yield
        return
    from distributed import performance_report

    with (
        local_file(target) as filename,
        left_on_success(performance_report(filename=str(filename))),
    ):
        yield


def build_context(
    options: Options, cluster: RunCluster, *, encoder: Encoder | None = None
) -> RunContext:
    """The run context of ``options`` on a connected cluster (the encoder built if not given)."""
    encoder = encoder or options.build_encoder(cached=False)
    cache = options.make_cache()
    profiler = StageProfiler(cluster.client)
    bar = (lambda what, total: progress(what, total)) if options.show_progress else None
    if cluster.client is None:
        executor = LocalExecutor(progress=bar)
    else:
        executor = ClientExecutor(cluster.client, resources=cluster.encoder_resources, progress=bar)
    driver = build_driver(options, encoder, executor, cache=cache, profiler=profiler)
    staging = cache if cache is not None else Cache()  # scenes are staged even without one
    return RunContext(
        options, cluster, profiler, options.spec, encoder, staging, driver.method, driver
    )


def build_driver(
    options: Options,
    encoder: Encoder,
    executor: LocalExecutor | ClientExecutor | None = None,
    *,
    cache: Cache | None,
    profiler: StageProfiler | None = None,
) -> Driver:
    """The one driver of ``options`` (what every command and the Python API run)."""
    return Driver(
        encoder=encoder,
        spec=options.spec,
        method=options.build_method(),
        cut=options.cut(encoder.input_size),
        cache=cache,
        executor=executor,
        batch=options.batch,
        profiler=profiler,
    )


def describe_encoder(ctx: RunContext) -> dict:
    """The encoder as run.json records it."""
    enc = ctx.encoder
    return {
        "spec": ctx.spec.name,
        "checkpoint": ctx.spec.checkpoint,
        "version": enc.version,
        "dim": enc.embed_dim,
        "input_size": enc.input_size,
        "device": enc.device,
    }


def _warm_up(cluster, spec: EncoderSpec | Encoder) -> None:
    """Import the pipeline and load (and run) the encoder on every worker before timing starts.

    (The published timings likewise start after the model is loaded.)
    """
    try:
        cluster.client.run(_prepare_worker, spec)
    except Exception as e:  # noqa: BLE001 - a worker that cannot prepare fails later, clearly
        log.debug("worker warm-up failed: %s", e)


def _prepare_worker(spec: EncoderSpec | Encoder, dask_worker=None) -> None:
    """Each worker: the pipeline imported, the encoder loaded and run once, and OpenCV's
    thread pool sized to the worker's own threads (several worker processes each with a
    pool of every core would fight for the cores)."""
    import cv2
    import numpy as np

    if dask_worker is not None:  # client.run gives the worker it runs on
        cv2.setNumThreads(max(1, int(dask_worker.state.nthreads)))

    from ..models.registry import cached_encoder
    from ..pipeline import (
        scene,  # noqa: F401 - imports rasterio, rioxarray
        sim,  # noqa: F401 - imports cv2, dask.array
    )

    encoder = spec if isinstance(spec, Encoder) else cached_encoder(spec)
    side = encoder.input_size
    encoder.encode_images(np.zeros((1, side, side, 3), np.uint8))  # first-call set-up


def _describe(d: dict) -> str:
    if d["kind"] == "threads":
        return f"dask threads in this process ({d['threads']})"
    if d["kind"] == "address":
        return f"{d['address']} ({d['workers']} workers, {d['threads']} threads)"
    return (
        f"embedded, {d['workers']} workers x {max(1, d['threads'] // max(1, d['workers']))} threads"
    )


def versions() -> dict[str, str]:
    """Versions of selo and the libraries that shape its numbers, for run.json (read from
    the installed distributions: nothing is imported for it, torch included)."""
    from importlib.metadata import PackageNotFoundError, version

    import rasterio

    out = {"selo": __version__, "python": platform.python_version()}
    for name, dist in (
        ("numpy", "numpy"),
        ("rasterio", "rasterio"),
        ("opencv", "opencv-python-headless"),
        ("dask", "dask"),
        ("torch", "torch"),
        ("open_clip", "open_clip_torch"),
    ):
        try:
            out[name] = version(dist)
        except PackageNotFoundError:
            pass
    out["gdal"] = rasterio.__gdal_version__
    return out
