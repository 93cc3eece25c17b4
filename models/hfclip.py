"""Local Hugging Face CLIP directories as selo encoders (``hf-clip:<dir>``).

The directory is what ``CLIPModel.save_pretrained`` and the tokenizer's
``save_pretrained`` write: ``config.json`` (``model_type`` ``clip``), the
weights (``model.safetensors`` or ``pytorch_model.bin``, possibly sharded),
the tokenizer files and, usually, ``preprocessor_config.json``. Everything is
read with ``local_files_only=True``. The preprocessing comes from
``preprocessor_config.json`` (resize the shortest edge, centre crop,
``image_mean``/``image_std``), pixel for pixel as ``CLIPImageProcessor`` (the
PIL one) applies it; without it, CLIP's defaults at the vision tower's image size.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from selo.errors import CheckpointError, ModelError
from selo.models._torch import (
    OPENAI_MEAN,
    OPENAI_STD,
    ImageTransform,
    TorchEncoder,
    check_keys,
    require,
    torch_device,
)
from selo.models.base import file_digest

__all__ = ["HFClipEncoder", "load_hfclip", "dir_digest", "hf_transform"]

_WEIGHT_PATTERNS = ("*.safetensors", "*.bin")
_CONFIG_FILES = ("config.json", "preprocessor_config.json")
_RESAMPLE = {2: "bilinear", 3: "bicubic"}  # PIL codes used in preprocessor configs


def dir_digest(directory: Path) -> str:
    """16 hex digits over the weight files and configs of a model directory."""
    files = sorted(
        {p for pattern in _WEIGHT_PATTERNS for p in directory.glob(pattern)}
        | {directory / n for n in _CONFIG_FILES if (directory / n).is_file()}
    )
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}:{file_digest(f, 64)}\n".encode())
    return h.hexdigest()[:16]


def hf_transform(directory: Path, image_size: int) -> ImageTransform:
    """The eval preprocessing declared by ``preprocessor_config.json``, or CLIP's defaults."""
    path = directory / "preprocessor_config.json"
    if not path.is_file():
        return ImageTransform(resize=image_size, crop=image_size)
    cfg = _read_json(path)
    resize = _side(cfg.get("size", image_size), "shortest_edge")
    crop = (
        _side(cfg.get("crop_size", resize), "height") if cfg.get("do_center_crop", True) else resize
    )
    return ImageTransform(
        resize=resize,
        crop=crop,
        mean=tuple(cfg.get("image_mean", OPENAI_MEAN)),
        std=tuple(cfg.get("image_std", OPENAI_STD)),
        interpolation=_RESAMPLE.get(cfg.get("resample", 3), "bicubic"),
        crop_offset="floor",  # transformers' center_crop: (size - crop) // 2
    )


def _side(value: Any, key: str) -> int:
    if isinstance(value, dict):
        value = value.get(key, value.get("height"))
    if not isinstance(value, int):
        raise ModelError(f"unsupported image size in preprocessor_config.json: {value!r}")
    return value


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from e


class HFClipEncoder(TorchEncoder):
    """A transformers ``CLIPModel`` with its tokenizer."""

    def __init__(self, *, tokenizer: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tokenizer = tokenizer

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        pooled = self.model.vision_model(pixel_values=pixels).pooler_output
        return self.model.visual_projection(pooled)

    def _text_features(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(
            texts,
            padding="max_length",
            truncation=True,
            max_length=self.context_length,
            return_tensors="pt",
        ).to(self.device)
        out = self.model.text_model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )
        return self.model.text_projection(out.pooler_output)

    def _token_count(self, text: str) -> int:
        return len(self.tokenizer(text)["input_ids"])


def load_hfclip(
    directory: str | Path,
    *,
    name: str | None = None,
    device: str | None = None,
    precision: str | None = None,
) -> HFClipEncoder:
    """The ``hf-clip:<dir>`` encoder of a local Hugging Face CLIP directory."""
    d = Path(directory).expanduser()
    spec = name or f"hf-clip:{directory}"
    if not d.is_dir():
        raise CheckpointError(f"{spec}: no such model directory: {d}")
    if not (d / "config.json").is_file():
        raise CheckpointError(
            f"{spec}: {d} has no config.json; expected a Hugging Face CLIP directory "
            "(config.json, model.safetensors or pytorch_model.bin, tokenizer files)"
        )
    model_type = _read_json(d / "config.json").get("model_type")
    if model_type != "clip":
        raise ModelError(f"{spec}: config.json says model_type {model_type!r}, expected 'clip'")
    if not any(p for pattern in _WEIGHT_PATTERNS for p in d.glob(pattern)):
        raise CheckpointError(f"{spec}: {d} has no weights (*.safetensors or *.bin)")
    transformers = require("transformers")
    model = _from_pretrained(transformers, d, spec)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(d, local_files_only=True)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{spec}: cannot load the tokenizer from {d}: {e}") from e
    transform = hf_transform(d, model.config.vision_config.image_size)
    return HFClipEncoder(
        name=spec,
        version=f"hf-clip:{d.name}@{dir_digest(d)}+{transform.tag}",
        model=model,
        transform=transform,
        embed_dim=int(model.config.projection_dim),
        context_length=int(model.config.text_config.max_position_embeddings),
        tokenizer=tokenizer,
        device=torch_device(device),
        precision=precision,
    )


def _from_pretrained(transformers: Any, d: Path, spec: str) -> torch.nn.Module:
    try:
        model, info = transformers.CLIPModel.from_pretrained(
            d, local_files_only=True, output_loading_info=True
        )
    except (OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{spec}: cannot load the model from {d}: {e}") from e
    check_keys(
        f"{spec} ({d})",
        missing=[k for k in info.get("missing_keys", ()) if "logit_scale" not in k],
        unexpected=list(info.get("unexpected_keys", ())),
        mismatched=[str(m[0]) for m in info.get("mismatched_keys", ())],
    )
    return model.float()
