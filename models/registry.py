"""Build encoders from spec strings: the kinds of :data:`~selo.models.presets.KINDS`
(``color``, ``openclip:<arch>``, ``hf-clip:<dir>``, ...) and the named presets of
:mod:`selo.models.presets`.

The torch loaders (and torch, open_clip, transformers) are imported only
when such an encoder is built. :func:`cached_encoder` keeps one encoder per
spec and process, so Dask workers load a model once, not once per task.
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path

from ..errors import CheckpointError, ModelError, ParameterError
from .base import Encoder, EncoderSpec
from .presets import KINDS, PRESETS, SPEC_FORMS, Preset, spec_forms

__all__ = ["get_encoder", "cached_encoder", "list_presets", "parse_spec"]


def parse_spec(name: str) -> tuple[str, str]:
    """Split a spec into (kind, argument): ``"openclip:ViT-B-32"`` → ``("openclip", "ViT-B-32")``.

    ``color`` gives ``("color", "")`` and a preset name ``("preset", name)``.
    Only the first colon separates, so directory arguments may contain colons.
    """
    spec = name.strip()
    kind, sep, arg = spec.partition(":")
    if not sep:
        if spec in KINDS and not KINDS[spec].argument:
            return spec, ""
        if spec in PRESETS:
            return "preset", spec
    elif kind in KINDS and KINDS[kind].argument and arg.strip():
        return kind, arg.strip()
    raise ModelError(
        f"unknown encoder spec {name!r}; use one of: {spec_forms()}, or a preset: "
        f"{', '.join(PRESETS)} (`selo models` lists them)"
    )


def list_presets() -> list[Preset]:
    """The model table: the spec forms, then the named presets."""
    return [*SPEC_FORMS, *PRESETS.values()]


def get_encoder(
    spec: str | EncoderSpec,
    checkpoint: str | Path | None = None,
    device: str | None = None,
    precision: str | None = None,
) -> Encoder:
    """The encoder a spec names, with weights from ``checkpoint`` where it needs one.

    ``checkpoint``, ``device`` and ``precision`` given here override those of an
    :class:`EncoderSpec`. ``device`` ``None``/``"auto"`` means CUDA when present,
    else CPU; ``precision`` ``None`` means bf16/fp16 on CUDA, fp32 elsewhere.
    """
    if isinstance(spec, EncoderSpec):
        checkpoint = checkpoint if checkpoint is not None else spec.checkpoint
        device = device if device is not None else spec.device
        precision = precision if precision is not None else spec.precision
        spec = spec.name
    EncoderSpec(spec, precision=precision)  # checks the precision before loading anything
    kind, arg = parse_spec(spec)
    name = spec.strip()
    if kind == "preset":
        preset = PRESETS[arg]
        if checkpoint is None:
            raise CheckpointError(
                f"preset {preset.name} needs its checkpoint file {preset.filename} "
                f"(download it from {preset.source}); pass its path with --checkpoint"
            )
        kind, arg = preset.kind, preset.arch
    row = KINDS[kind]
    if row.checkpoint is None and checkpoint is not None:
        raise ParameterError(f"{name} takes no checkpoint (got {checkpoint}); {row.no_checkpoint}")
    if row.torch:
        from ._torch import resolve_precision, torch_device

        device = torch_device(device)  # fail before loading weights
        resolve_precision(precision, device)  # e.g. int8 on CUDA, before loading weights
    if row.checkpoint is not None and checkpoint is None:
        raise CheckpointError(
            f"{name} needs a checkpoint: pass --checkpoint PATH to a local {row.checkpoint} "
            "(or use a preset; `selo models` lists them)"
        )
    module, function = row.loader.split(":")
    load = getattr(importlib.import_module(f".{module}", __package__), function)
    files = (arg,) if row.checkpoint is None else (arg, checkpoint)
    return load(*files, name=name, device=device, precision=precision)


_CACHE: dict[EncoderSpec, Encoder] = {}
_CACHE_LOCK = threading.Lock()


def cached_encoder(spec: EncoderSpec) -> Encoder:
    """The encoder for ``spec``, built once per process (thread-safe).

    Dask tasks carry the small, picklable spec; the first task on a worker
    process builds the model and later ones reuse it.
    """
    with _CACHE_LOCK:
        encoder = _CACHE.get(spec)
        if encoder is None:
            encoder = _CACHE[spec] = get_encoder(spec)
        return encoder
