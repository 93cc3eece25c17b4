"""open_clip checkpoints as selo encoders (``openclip:<arch>``).

Remote-sensing CLIP models such as RemoteCLIP and GeoRSCLIP are distributed as
open_clip state dicts for one of open_clip's built-in architectures. The model
is built from open_clip's architecture config (no download: weights come only
from the local checkpoint), the checkpoint is loaded all-or-nothing, and the
preprocessing is the architecture's own (resize the shortest side to its image
size, bicubic, centre crop, OpenAI mean/std) applied in torch to whole batches.
Architectures whose tokenizer or text tower would need a Hugging Face download
are refused (use ``hf-clip:<dir>`` for those), as are timm vision towers.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError
from ._torch import (
    ImageTransform,
    TorchEncoder,
    load_into,
    load_state_dict,
    require,
    torch_device,
)
from .base import file_digest
from .presets import PRESETS

__all__ = [
    "OpenClipEncoder",
    "arch_config",
    "build_model",
    "encoder_from_model",
    "load_openclip",
    "load_weights",
    "quick_gelu_warning",
    "transform_of",
]

_INSTALL = "pip install open_clip_torch  (or: pip install 'selo[clip]')"

# Checkpoint entries that do not affect embeddings: the contrastive temperature
# and bias, and bookkeeping fields of OpenAI-style exports.
_OPTIONAL = frozenset({"logit_scale", "logit_bias"})
_OPENAI_EXPORT_KEYS = frozenset({"input_resolution", "context_length", "vocab_size"})
_IGNORED = _OPTIONAL | _OPENAI_EXPORT_KEYS

# Checkpoint file names of presets trained with QuickGELU (OpenAI CLIP and its fine-tunes).
_QUICK_GELU_FILES = {
    p.filename.lower(): p.name for p in PRESETS.values() if p.arch.endswith("-quickgelu")
}


def _open_clip() -> Any:
    return require("open_clip", _INSTALL)


def arch_config(arch: str, *, kind: str = "openclip") -> dict[str, Any]:
    """A copy of open_clip's config for ``arch``, checked to be buildable offline."""
    open_clip = _open_clip()
    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        close = difflib.get_close_matches(arch, open_clip.list_models(), n=5, cutoff=0.5)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise ModelError(
            f"unknown open_clip architecture in {kind}:{arch}{hint} "
            "(open_clip.list_models() lists them all)"
        )
    text, vision = cfg.get("text_cfg", {}), cfg.get("vision_cfg", {})
    if "multimodal_cfg" in cfg:
        raise ModelError(f"{kind}:{arch} is a captioning (CoCa) model, not a CLIP encoder")
    if text.get("hf_model_name") or text.get("hf_tokenizer_name") or "siglip" in arch.lower():
        raise ModelError(
            f"{kind}:{arch} needs a Hugging Face tokenizer or text model that open_clip would "
            "download; selo never downloads. Save the model as a local Hugging Face CLIP "
            "directory and use hf-clip:<dir>, or pick a CLIP architecture"
        )
    if vision.get("timm_model_name"):
        raise ModelError(f"{kind}:{arch} has a timm vision tower, which selo does not support")
    if not isinstance(vision.get("image_size", 224), int):
        raise ModelError(f"{kind}:{arch} has a non-square image size {vision['image_size']}")
    return cfg


def build_model(arch: str, *, kind: str = "openclip", **overrides: Any) -> torch.nn.Module:
    """An open_clip model of architecture ``arch`` with random weights, in eval mode.

    ``overrides`` replace top-level config entries (``quick_gelu``) or, for
    ``context_length``, the text context length. The preprocessing config is
    the one open_clip gives weights without a pretrained tag.
    """
    open_clip = _open_clip()
    cfg = arch_config(arch, kind=kind)
    if "context_length" in overrides:
        cfg["text_cfg"]["context_length"] = overrides.pop("context_length")
    cfg.update(overrides)
    model_cls = open_clip.CustomTextCLIP if cfg.pop("custom_text", False) else open_clip.CLIP
    model = model_cls(**cfg)
    preprocess = open_clip.transform.PreprocessCfg(size=model.visual.image_size)
    open_clip.set_model_preprocess_cfg(model, asdict(preprocess))
    return model.eval()


def transform_of(model: torch.nn.Module) -> ImageTransform:
    """The eval preprocessing an open_clip model declares, as a batched torch transform."""
    pp = _open_clip().get_model_preprocess_cfg(model)
    size = pp["size"]
    size = size[0] if isinstance(size, (tuple, list)) and len(set(size)) == 1 else size
    mode = pp.get("resize_mode", "shortest")
    if not isinstance(size, int) or mode != "shortest":
        raise ModelError(
            f"unsupported open_clip preprocessing (size {size}, resize_mode {mode!r}); "
            "selo applies shortest-side resize and centre crop to square images"
        )
    return ImageTransform(
        resize=size,
        crop=size,
        mean=tuple(pp["mean"]),
        std=tuple(pp["std"]),
        interpolation=pp.get("interpolation", "bicubic"),
    )


class OpenClipEncoder(TorchEncoder):
    """An open_clip ``CLIP``/``CustomTextCLIP`` model with its tokenizer."""

    def __init__(self, *, tokenizer: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tokenizer = tokenizer

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    def _text_features(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts, context_length=self.context_length)
        return self.model.encode_text(tokens.to(self.device))

    def _token_count(self, text: str) -> int:
        return len(self.tokenizer.encode(text)) + 2


def encoder_from_model(
    model: torch.nn.Module,
    *,
    arch: str,
    weights: str,
    kind: str = "openclip",
    name: str | None = None,
    device: str | None = None,
    batch_size: int = 64,
    precision: str | None = None,
) -> OpenClipEncoder:
    """Wrap an in-memory open_clip model of architecture ``arch`` as an encoder.

    ``weights`` identifies the weights (a checkpoint digest) and goes into
    ``version`` together with ``kind``, ``arch``, the preprocessing tag and a
    precision other than fp32.
    """
    open_clip = _open_clip()
    transform = transform_of(model)
    text_tower = model.text if hasattr(model, "text") else model
    context_length = int(text_tower.context_length)
    # open_clip's plain BPE tokenizer (bundled vocabulary), as get_tokenizer would pick
    # for the architectures arch_config accepts, without its log lines
    text_cfg = (open_clip.get_model_config(arch) or {}).get("text_cfg", {})
    tokenizer = open_clip.SimpleTokenizer(
        context_length=context_length, **text_cfg.get("tokenizer_kwargs", {})
    )
    return OpenClipEncoder(
        name=name or f"{kind}:{arch}",
        version=f"{kind}:{arch}@{weights}+{transform.tag}",
        model=model,
        transform=transform,
        embed_dim=int(model.visual.output_dim),
        context_length=context_length,
        tokenizer=tokenizer,
        device=torch_device(device),
        batch_size=batch_size,
        precision=precision,
    )


def quick_gelu_warning(
    arch: str, checkpoint: str | Path, state: dict[str, torch.Tensor]
) -> str | None:
    """A warning when ``openclip:<arch>`` (GELU) is given weights trained with QuickGELU.

    The weights alone cannot say which activation they were trained with (the
    keys and shapes are the same), so this looks for what reliably marks
    OpenAI-CLIP-derived files: the bookkeeping entries of OpenAI's own exports
    (``input_resolution``, ``context_length``, ``vocab_size``), the file name of
    a QuickGELU preset (``RS5M_ViT-B-32.pt``), or ``openai`` in the file's path
    (``timm/vit_base_patch32_clip_224.openai``). Nothing is said for an
    architecture without a ``-quickgelu`` twin, or one that already uses QuickGELU.
    """
    open_clip = _open_clip()
    twin = f"{arch}-quickgelu"
    if arch.endswith("-quickgelu") or twin not in open_clip.list_models():
        return None
    if (open_clip.get_model_config(arch) or {}).get("quick_gelu"):
        return None
    path = Path(checkpoint)
    preset = _QUICK_GELU_FILES.get(path.name.lower())
    if preset is not None:
        why, use = f"it is named like the {preset} checkpoint", f"--model {preset}"
    elif _OPENAI_EXPORT_KEYS & set(state):
        why, use = "it has the entries of an OpenAI CLIP export", f"--model openclip:{twin}"
    elif "openai" in str(path).lower():
        why, use = "its path names OpenAI", f"--model openclip:{twin}"
    else:
        return None
    return (
        f"checkpoint {checkpoint} looks like OpenAI-CLIP-derived weights, trained with "
        f"QuickGELU activations ({why}), but openclip:{arch} uses GELU, which changes every "
        f"embedding; use {use} (openclip:{twin} is the same architecture with QuickGELU)"
    )


def load_weights(
    model: torch.nn.Module,
    checkpoint: str | Path,
    *,
    spec: str,
    adapt: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
    check: Callable[[dict[str, torch.Tensor]], None] | None = None,
) -> str:
    """Load a local state dict into an open_clip model (after ``adapt``); its digest.

    ``check`` sees the state dict as read, before anything else. Old-style
    checkpoints with the text tower at the top level are converted for
    ``CustomTextCLIP`` models, as open_clip itself does.
    """
    state = load_state_dict(checkpoint)
    if check is not None:
        check(state)
    if adapt is not None:
        state = adapt(state)
    if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
        state = _open_clip().model.convert_to_custom_text_state_dict(state)
    load_into(
        model, state, f"checkpoint {checkpoint} (for {spec})", optional=_OPTIONAL, ignored=_IGNORED
    )
    return file_digest(checkpoint)


def load_openclip(
    arch: str,
    checkpoint: str | Path,
    *,
    name: str | None = None,
    device: str | None = None,
    precision: str | None = None,
) -> OpenClipEncoder:
    """The ``openclip:<arch>`` encoder with weights from a local open_clip state dict.

    Weights that look trained with QuickGELU in a GELU architecture get a
    warning naming the right preset (:func:`quick_gelu_warning`); presets are
    loaded as their authors load them and get none.
    """

    def check(state: dict[str, torch.Tensor]) -> None:
        message = None if name in PRESETS else quick_gelu_warning(arch, checkpoint, state)
        if message:
            warnings.warn(message, UserWarning, stacklevel=4)

    model = build_model(arch)
    digest = load_weights(model, checkpoint, spec=f"openclip:{arch}", check=check)
    return encoder_from_model(
        model, arch=arch, weights=digest, name=name, device=device, precision=precision
    )
