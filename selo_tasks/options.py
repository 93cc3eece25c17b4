"""The options of a SeLo run, set once: encoder, method, dataflow, cluster, reports.

Every command that runs SeLo (``localize``, ``airslt``, ``demo``) and the Python API
build one :class:`Options`; each layer reads the fields it needs from it (nothing is
copied from layer to layer). Values that cannot work are refused here, with the
reason, before anything starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil

from ..errors import ParameterError
from ..models import EncoderSpec
from ..pipeline import DEFAULT_BATCH, DEFAULT_CHUNK

__all__ = ["Options", "MIN_CHUNK", "MAX_CHUNK", "MAX_BATCH"]

MIN_CHUNK = 256
MAX_CHUNK = 32768  # a chunk of 32768² RGB pixels is 3 GiB: larger ones cannot be held
MAX_BATCH = 4096  # 4096 windows of 256² RGB are 800 MB per batch
MAX_THREADS = 256
_WORKER_MEMORY = 256 * 2**20  # the least a worker process needs to hold its chunks


@dataclass(frozen=True)
class Options:
    """How a run computes. ``scales`` (v1) and ``seed`` (v2) are None when not given."""

    # encoder
    model: str = "color"
    checkpoint: str | None = None
    device: str | None = None
    precision: str | None = None  # models.PRECISIONS; None: half on CUDA, fp32 elsewhere
    # method
    method: str = "v1"
    scales: tuple[int, ...] | str | None = None
    seed: int | None = None
    # dataflow
    chunk: int = DEFAULT_CHUNK
    batch: int = DEFAULT_BATCH
    cache_dir: str | None = None
    paper_compat: bool = False  # the published code's JPEG round trips, windows and maps
    # cluster
    scheduler: str | None = None
    gpu: bool = False
    workers: int | None = None
    threads: int | None = None
    in_process: bool = False
    # reports
    profile_html: Path | None = None
    show_progress: bool = True
    extra: dict = field(default_factory=dict, compare=False)  # command-specific, for run.json

    def __post_init__(self) -> None:
        _int_in("--chunk", self.chunk, MIN_CHUNK, MAX_CHUNK, "pixels per chunk side")
        _int_in("--batch", self.batch, 1, MAX_BATCH, "windows per batch")
        cores = os.cpu_count() or 1
        most = max(1, min(8 * cores, psutil.virtual_memory().total // _WORKER_MEMORY))
        if self.workers is not None:
            _int_in("--workers", self.workers, 1, most, f"worker processes on {cores} cores")
        if self.threads is not None:
            _int_in("--threads", self.threads, 1, MAX_THREADS, "threads per worker")
        if self.scheduler is not None:
            if not isinstance(self.scheduler, str) or "://" not in self.scheduler:
                raise ParameterError(
                    f"--scheduler must be a Dask scheduler address such as tcp://host:8786, "
                    f"got {self.scheduler!r}"
                )
            if self.gpu:
                raise ParameterError(
                    "--scheduler and --gpu exclude each other: a GPU cluster is either "
                    "yours or embedded"
                )
        self.encoder_spec  # noqa: B018 - an unknown precision fails here
        if self.paper_compat and self.precision not in (None, "fp32"):
            raise ParameterError("--paper-compat runs the encoder in fp32; leave out --precision")
        self.build_method()  # options that do not fit the method fail here

    def build_method(self):
        """The method these options name, with its own options (others refused)."""
        from .methods import get_method

        return get_method(self.method, scales=self.scales, seed=self.seed)

    @property
    def encoder_spec(self) -> EncoderSpec:
        """The encoder to build; ``--paper-compat`` runs it in fp32, as the published tools."""
        precision = "fp32" if self.paper_compat else self.precision
        return EncoderSpec(self.model, self.checkpoint, self.device, precision)

    def cut(self, input_size: int):
        """How windows become input for an encoder reading ``input_size`` squares."""
        from ..pipeline.cut import CutSpec

        return CutSpec(input_size, jpeg=self.paper_compat)

    def but(self, **changes) -> Options:
        """A copy with ``changes``."""
        return replace(self, **changes)

    def describe(self) -> dict:
        """The options as run.json records them."""
        return {
            "model": self.model,
            "checkpoint": self.checkpoint,
            "device": self.device,
            "precision": self.encoder_spec.precision,
            "chunk": self.chunk,
            "batch": self.batch,
            "cache_dir": self.cache_dir,
            "paper_compat": self.paper_compat,
            **self.extra,
        }


def _int_in(name: str, value: object, lo: int, hi: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ParameterError(
            f"{name} must be a whole number from {lo} to {hi} ({what}), got {value!r}"
        )
