"""The options of a SeLo run, set once: encoder, method, dataflow, cluster, reports.

Every way of running SeLo — the commands (``localize``, ``airslt``, ``demo``,
``serve``) and the Python API (``selo.localize``, ``selo.localize_files``, ...) —
builds one :class:`Options`; each layer reads the fields it needs from it (nothing is
copied from layer to layer). Values that cannot work are refused here, with the
reason and the option's name, before anything is read or computed.

The fields are the one table of options: each field's :class:`Flag` says how the
command line spells it, its help, its limits and its group; the click options of
``selo_tasks.cli`` are generated from it, and the same limits are checked here.
The checks that belong to another owner are asked of it: the encoder spec and its
precision (:mod:`selo.models`), the method and its scales and seed
(:func:`~selo.selo_tasks.methods.get_method`), the scheduler address
(:func:`selo.cluster.check_cluster`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..cluster import MAX_THREADS, check_cluster, max_workers
from ..errors import ParameterError
from ..models import DEFAULT_ENCODER, PRECISIONS, Encoder, EncoderSpec, parse_spec
from ..models.presets import spec_forms
from ..pipeline import DEFAULT_BATCH, DEFAULT_CHUNK
from ..pipeline.store import as_path, path_problem
from ..pipeline.windows import DEFAULT_SCALES
from .methods import DEFAULT_METHOD, DEFAULT_SEED, METHODS

if TYPE_CHECKING:  # pragma: no cover
    from ..pipeline.cache import Cache
    from ..pipeline.store import RemotePath
    from .methods import Method

__all__ = ["DEFAULT_TOP", "Flag", "Options", "MIN_CHUNK", "MAX_CHUNK", "MAX_BATCH"]

MIN_CHUNK = 256
MAX_CHUNK = 32768  # a chunk of 32768² RGB pixels is 3 GiB: larger ones cannot be held
MAX_BATCH = 4096  # 4096 windows of 256² RGB are 800 MB per batch
DEFAULT_TOP = 20  # selo search: regions per sentence, ranked across the collection

GROUPS = ("encoder", "method", "dataflow", "cluster", "reports")
KINDS = ("text", "path", "int", "switch", "onoff")


@dataclass(frozen=True)
class Flag:
    """How an option appears on the command line, and the limits checked for it.

    ``kind``: ``text``, ``path``, ``int``, ``switch`` (--gpu) or ``onoff``
    (--profile/--no-profile, None: the command's default); ``limits``: (lowest, highest)
    of a whole number (or a function giving them, for limits of this machine), shown in
    the help and checked here; ``choices`` are shown as the click choice (and checked by
    their owner); ``default``: the default shown where the field's own default is None
    (the owner's default); ``shared``: every command that runs SeLo has the option (else
    only those that ask for it)."""

    name: str
    help: str
    group: str
    kind: str = "text"
    limits: tuple[int, int] | Callable[[], tuple[int, int]] | None = None
    unit: str = ""
    choices: tuple[str, ...] | None = None
    default: str | None = None
    shared: bool = True

    def __post_init__(self) -> None:
        if self.group not in GROUPS or self.kind not in KINDS:
            raise ValueError(f"{self.name}: unknown group {self.group!r} or kind {self.kind!r}")

    def range(self) -> tuple[int, int] | None:
        return self.limits() if callable(self.limits) else self.limits

    def help_text(self, default: object = None) -> str:
        """The help line: the text, then the limits, then the owner's default."""
        text = self.help
        lo_hi = self.range()
        if lo_hi is not None:
            text += f", {lo_hi[0]} to {lo_hi[1]}" + (f" ({self.unit})" if self.unit else "")
        if default is None and self.default is not None:
            text += f" [default: {self.default}]"
        return text + "."


def _option(default, flag: Flag, **kw):
    return field(default=default, metadata={"flag": flag}, **kw)


def _workers() -> tuple[int, int]:
    return 1, max_workers()


@dataclass(frozen=True)
class Options:
    """How a run computes: every field is a keyword of the Python API and (where it has a
    :class:`Flag`) an option of the commands."""

    # encoder
    encoder: str | EncoderSpec | Encoder = _option(
        DEFAULT_ENCODER,
        Flag(
            "--model",
            f"Encoder: {spec_forms(upper=True)} or a preset (see: selo models)",
            "encoder",
        ),
    )
    checkpoint: str | os.PathLike | None = _option(
        None, Flag("--checkpoint", "Local weights file of the model", "encoder", kind="path")
    )
    device: str | None = _option(
        None,
        Flag("--device", "cpu, cuda or cuda:N (default: CUDA when present, else CPU)", "encoder"),
    )
    precision: str | None = _option(
        None,
        Flag(
            "--precision",
            "Encoder precision (default: bf16, or fp16, on CUDA; fp32 on CPU; --paper-compat: "
            "fp32); int8: CPU only, faster, not the published protocol",
            "encoder",
            choices=tuple(PRECISIONS),
        ),
    )
    # method
    method: str | Method = _option(
        DEFAULT_METHOD, Flag("--method", "SeLo method", "method", choices=tuple(METHODS))
    )
    scales: tuple[int, ...] | str | None = _option(
        None,
        Flag(
            "--scales",
            "v1 only: window sizes in pixels, comma-separated",
            "method",
            default=",".join(map(str, DEFAULT_SCALES)),
        ),
    )
    seed: int | None = _option(
        None,
        Flag(
            "--seed",
            "v2 only: seed of the query word shuffles, 0 to 2**63 - 1",
            "method",
            kind="int",
            default=str(DEFAULT_SEED),
        ),
    )
    # dataflow
    chunk: int = _option(
        DEFAULT_CHUNK,
        Flag("--chunk", "Dask chunk side (px)", "dataflow", "int", (MIN_CHUNK, MAX_CHUNK)),
    )
    batch: int = _option(
        DEFAULT_BATCH,
        Flag("--batch", "Windows per encoder batch", "dataflow", "int", (1, MAX_BATCH)),
    )
    cache: Cache | str | os.PathLike | bool | None = _option(
        None,
        Flag(
            "--cache-dir",
            "Embedding cache: a folder or an s3://, gs://, az:// URL (default: ~/.cache/selo "
            "or $SELO_CACHE_DIR)",
            "dataflow",
            kind="path",
        ),
    )
    paper_compat: bool = _option(
        False,
        Flag(
            "--paper-compat",
            "Make the published code's JPEG round trips: windows before embedding; maps "
            "before eval (airslt), also as selo_map.jpg (localize); the encoder in fp32",
            "dataflow",
            kind="switch",
            shared=False,
        ),
    )
    zarr_map: bool = _option(
        False,
        Flag(
            "--zarr-map",
            "Also store each uint8 SeLo map in maps.zarr/qNN/selo (selo_map.png and .tif hold "
            "it already; maps.zarr always holds the mean map's cells)",
            "dataflow",
            kind="switch",
            shared=False,
        ),
    )
    # cluster
    scheduler: str | None = _option(
        None,
        Flag(
            "--scheduler", "Address of an existing Dask scheduler (e.g. tcp://host:8786)", "cluster"
        ),
    )
    gpu: bool = _option(
        False,
        Flag("--gpu", "Embedded GPU cluster: one dask-cuda worker per GPU", "cluster", "switch"),
    )
    workers: int | None = _option(
        None,
        Flag(
            "--workers",
            "Embedded cluster: this many worker processes (default: threads in this process)",
            "cluster",
            "int",
            _workers,
            unit=f"on {os.cpu_count() or 1} cores",
        ),
    )
    threads: int | None = _option(
        None,
        Flag(
            "--threads", "Embedded cluster: threads per worker", "cluster", "int", (1, MAX_THREADS)
        ),
    )
    in_process: bool = _option(
        False,
        Flag(
            "--in-process",
            "A distributed cluster of threads in this process even for one scene (the embedded "
            "cluster's default layout; with --workers: threads, not processes)",
            "cluster",
            "switch",
        ),
    )
    # reports
    profile: bool | None = _option(
        None,
        Flag(
            "--profile",
            "Write a Dask performance report, profile.html (default: on for airslt only)",
            "reports",
            "onoff",
        ),
    )
    show_progress: bool = True  # progress bars on stderr (the CLI: when it is a terminal)

    def __post_init__(self) -> None:
        for f, flag in self.flags():
            _check(flag, getattr(self, f.name), f.default)
        if not isinstance(self.show_progress, bool):
            raise ParameterError(f"show_progress must be True or False, got {self.show_progress!r}")
        _check_cache(self.cache)
        check_cluster(self.scheduler, gpu=self.gpu)
        self.spec  # noqa: B018 - an unknown encoder spec or precision fails here
        if self.paper_compat and self.precision not in (None, "fp32"):
            raise ParameterError("--paper-compat runs the encoder in fp32; leave out --precision")
        self.build_method()  # options that do not fit the method fail here

    @classmethod
    def flags(cls) -> Iterator[tuple[object, Flag]]:
        """(field, flag) of every option the command line has, in the table's order."""
        for f in fields(cls):
            if "flag" in f.metadata:
                yield f, f.metadata["flag"]

    @classmethod
    def from_keywords(cls, options: Options | None = None, **keywords) -> Options:
        """``options`` (default: the defaults) with ``keywords`` changed; an unknown keyword
        is a ParameterError naming it (what the Python API's functions take)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(keywords) - known)
        if unknown:
            raise ParameterError(
                f"unknown option {unknown[0]!r}; the options are: {', '.join(sorted(known))}"
            )
        if options is None:
            return cls(**keywords)
        if not isinstance(options, Options):
            raise ParameterError(f"options must be a selo.Options, got {type(options).__name__}")
        return options.but(**keywords) if keywords else options

    def build_method(self) -> Method:
        """The method these options name, with its own options (others refused)."""
        from .methods import get_method

        return get_method(self.method, scales=self.scales, seed=self.seed)

    @property
    def spec(self) -> EncoderSpec | Encoder:
        """What builds the encoder (tasks carry it): an :class:`EncoderSpec` — in fp32 with
        ``paper_compat``, as the published tools — or the user's own :class:`Encoder`."""
        enc = self.encoder
        if isinstance(enc, Encoder):
            given = [n for n in ("checkpoint", "device", "precision") if getattr(self, n)]
            if given:
                raise ParameterError(
                    f"{given[0]} goes with an encoder spec, not with an Encoder object"
                )
            return enc
        if self.checkpoint is not None and not isinstance(self.checkpoint, str | os.PathLike):
            raise ParameterError(
                f"--checkpoint must be a path, got {type(self.checkpoint).__name__}"
            )
        if isinstance(enc, str):
            parse_spec(enc)  # an unknown spec fails before anything is loaded
            enc = EncoderSpec(enc)
        elif not isinstance(enc, EncoderSpec):
            raise ParameterError(
                f"encoder must be a spec string (e.g. {DEFAULT_ENCODER!r}), an EncoderSpec or "
                f"an Encoder, got {type(enc).__name__}"
            )
        precision = "fp32" if self.paper_compat else self.precision or enc.precision
        checkpoint = self.checkpoint if self.checkpoint is not None else enc.checkpoint
        return EncoderSpec(
            enc.name,
            None if checkpoint is None else str(checkpoint),
            self.device if self.device is not None else enc.device,
            precision,
        )

    def build_encoder(self, *, cached: bool = True) -> Encoder:
        """The encoder (built once per process with ``cached``; your own one as it is)."""
        from ..models.registry import cached_encoder, get_encoder

        spec = self.spec
        if isinstance(spec, Encoder):
            return spec
        return cached_encoder(spec) if cached else get_encoder(spec)

    def make_cache(self) -> Cache | None:
        """The embedding cache: the default one (None), a folder, a Cache; None for False."""
        from ..pipeline.cache import Cache

        if self.cache is False:
            return None
        if self.cache is None or self.cache is True:
            return Cache()
        return self.cache if isinstance(self.cache, Cache) else Cache(self.cache)

    @property
    def map_chunk(self) -> int:
        """The chunk side of finished maps: ``chunk``, at most the writers' (2048)."""
        from ..pipeline.outputs import MAP_CHUNK

        return min(self.chunk, MAP_CHUNK)

    def profile_html(self, folder: str | os.PathLike, *, default: bool) -> Path | RemotePath | None:
        """Where the run writes its Dask performance report (``default``: when not told)."""
        from .run_folder import PROFILE

        wanted = default if self.profile is None else self.profile
        return as_path(folder) / PROFILE if wanted else None

    def cut(self, input_size: int):
        """How windows become input for an encoder reading ``input_size`` squares."""
        from ..pipeline.cut import CutSpec

        return CutSpec(input_size, jpeg=self.paper_compat)

    def but(self, **changes) -> Options:
        """A copy with ``changes`` (checked again)."""
        return replace(self, **changes)

    def describe(self) -> dict:
        """The options as run.json records them."""
        spec = self.spec
        cache = self.cache
        return {
            "model": spec.name,
            "checkpoint": getattr(spec, "checkpoint", None),
            "device": self.device,
            "precision": getattr(spec, "precision", None),
            "chunk": self.chunk,
            "batch": self.batch,
            "cache_dir": None
            if cache is None or isinstance(cache, bool)
            else str(getattr(cache, "root", cache)),
            "paper_compat": self.paper_compat,
        }


def _check(flag: Flag, value: object, default: object) -> None:
    """The table's own checks of one option: on/off options, whole numbers in their
    limits, path names the file system can use (what a text or a path means is checked
    by its owner, see the module)."""
    if flag.kind == "switch" and not isinstance(value, bool):
        raise ParameterError(f"{flag.name} is on or off (True or False), got {value!r}")
    if flag.kind == "onoff" and value is not None and not isinstance(value, bool):
        raise ParameterError(f"{flag.name} is on, off or None (the default), got {value!r}")
    if flag.kind == "path" and isinstance(value, str | os.PathLike):
        reason = path_problem(value)
        if reason is not None:
            raise ParameterError(f"{flag.name} {value!r} cannot be used as a path ({reason})")
    lo_hi = flag.range()
    if lo_hi is not None and (value is not None or default is not None):
        lo, hi = lo_hi
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            unit = f" ({flag.unit})" if flag.unit else ""
            raise ParameterError(
                f"{flag.name} must be a whole number from {lo} to {hi}{unit}, got {value!r}"
            )


def _check_cache(cache: object) -> None:
    if cache is None or isinstance(cache, bool | str | os.PathLike):
        return
    from ..pipeline.cache import Cache

    if not isinstance(cache, Cache):
        raise ParameterError(f"cache must be a Cache, a folder path, None or False, got {cache!r}")
