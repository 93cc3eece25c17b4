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
import math
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, ModelError
from ._torch import (
    OPENAI_MEAN,
    OPENAI_STD,
    ImageTransform,
    TorchEncoder,
    check_finite,
    check_keys,
    require,
    torch_device,
)
from .base import file_digest

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
    resize = _side(cfg.get("size", image_size), "shortest_edge", path)
    crop = (
        _side(cfg.get("crop_size", resize), "height", path)
        if cfg.get("do_center_crop", True)
        else resize
    )
    resample = cfg.get("resample", 3)
    if isinstance(resample, bool) or not isinstance(resample, int) or resample not in _RESAMPLE:
        raise ModelError(f"{path}: unsupported 'resample' {resample!r} (2: bilinear, 3: bicubic)")
    return ImageTransform(
        resize=resize,
        crop=crop,
        mean=_stats(cfg.get("image_mean", OPENAI_MEAN), "image_mean", path),
        std=_stats(cfg.get("image_std", OPENAI_STD), "image_std", path, positive=True),
        interpolation=_RESAMPLE[resample],
        crop_offset="floor",  # transformers' center_crop: (size - crop) // 2
    )


_MAX_IMAGE_SIDE = 4096


def _side(value: Any, key: str, path: Path) -> int:
    if isinstance(value, dict):
        value = value.get(key, value.get("height"))
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_IMAGE_SIDE:
        raise ModelError(
            f"{path}: unsupported image size {value!r} (a whole number of pixels from 1 to "
            f"{_MAX_IMAGE_SIDE})"
        )
    return value


def _stats(value: Any, key: str, path: Path, *, positive: bool = False) -> tuple[float, ...]:
    """Three finite numbers (per-channel mean or std; std positive)."""
    ok = (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and all(math.isfinite(v) and (v > 0 or not positive) for v in value)
    )
    if not ok:
        need = "three positive numbers" if positive else "three finite numbers"
        raise ModelError(f"{path}: {key!r} must be {need}, one per colour channel, got {value!r}")
    return tuple(float(v) for v in value)


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; anything else (unreadable, not JSON, not an object)
    is a CheckpointError naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise CheckpointError(f"cannot read {path}: {_one_line(e)}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _one_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


# Sizes a CLIP config may declare (a damaged config.json could otherwise ask for a
# model of terabytes before its weights are even read).
_CONFIG_LIMITS = {
    "projection_dim": 1 << 14,
    "hidden_size": 1 << 14,
    "intermediate_size": 1 << 16,
    "num_hidden_layers": 512,
    "num_attention_heads": 1024,
    "max_position_embeddings": 1 << 16,
    "vocab_size": 1 << 22,
    "image_size": _MAX_IMAGE_SIDE,
    "patch_size": _MAX_IMAGE_SIDE,
    "num_channels": 16,
}


def _check_config(config: dict[str, Any], path: Path) -> None:
    """The sizes of a CLIP ``config.json`` are whole numbers in a usable range."""
    parts = [("", config)]
    for name in ("text_config", "vision_config"):
        sub = config.get(name)
        if sub is not None and not isinstance(sub, dict):
            raise CheckpointError(f"{path}: {name!r} must be an object, got {type(sub).__name__}")
        parts.append((f"{name}.", sub or {}))
    for prefix, part in parts:
        for key, most in _CONFIG_LIMITS.items():
            if key not in part or part[key] is None:
                continue
            value = part[key]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
                raise CheckpointError(
                    f"{path}: {prefix}{key} is {value!r}, not a whole number from 1 to {most}; "
                    "the file is damaged"
                )


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
    try:
        is_dir = d.is_dir()
    except OSError as e:  # a name too long, a loop of links
        raise CheckpointError(f"{spec}: cannot use {d} as a folder ({e.strerror})") from None
    if not is_dir:
        raise CheckpointError(f"{spec}: no such model directory: {d}")
    if not (d / "config.json").is_file():
        raise CheckpointError(
            f"{spec}: {d} has no config.json; expected a Hugging Face CLIP directory "
            "(config.json, model.safetensors or pytorch_model.bin, tokenizer files)"
        )
    config = _read_json(d / "config.json")
    model_type = config.get("model_type")
    if model_type != "clip":
        raise ModelError(f"{spec}: config.json says model_type {model_type!r}, expected 'clip'")
    _check_config(config, d / "config.json")
    if not any(p for pattern in _WEIGHT_PATTERNS for p in d.glob(pattern)):
        raise CheckpointError(f"{spec}: {d} has no weights (*.safetensors or *.bin)")
    transformers = require("transformers")
    _route_logs(transformers)
    _check_shapes(transformers, d, spec)
    model = _from_pretrained(transformers, d, spec)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(d, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - any reader failure: damaged or missing files
        raise CheckpointError(f"{spec}: cannot load the tokenizer from {d}: {_one_line(e)}") from e
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


def _check_shapes(transformers: Any, d: Path, spec: str) -> None:
    """The sizes ``config.json`` declares match the tensors of the safetensors files (read
    from their headers only): a damaged config would otherwise build a model of another
    size, even one too large for memory, before its weights are found not to fit."""
    files = sorted(d.glob("*.safetensors"))
    if not files:
        return  # pickled weights: their shapes cannot be read without loading them
    try:
        config = transformers.CLIPConfig.from_pretrained(d, local_files_only=True)
        t, v = config.text_config, config.vision_config
        side = v.image_size // v.patch_size
        expected = {
            "text_model.embeddings.token_embedding.weight": (t.vocab_size, t.hidden_size),
            "text_model.embeddings.position_embedding.weight": (
                t.max_position_embeddings,
                t.hidden_size,
            ),
            "text_model.encoder.layers.0.mlp.fc1.weight": (t.intermediate_size, t.hidden_size),
            "vision_model.embeddings.patch_embedding.weight": (
                v.hidden_size,
                v.num_channels,
                v.patch_size,
                v.patch_size,
            ),
            "vision_model.embeddings.position_embedding.weight": (side * side + 1, v.hidden_size),
            "vision_model.encoder.layers.0.mlp.fc1.weight": (v.intermediate_size, v.hidden_size),
            "text_projection.weight": (config.projection_dim, t.hidden_size),
            "visual_projection.weight": (config.projection_dim, v.hidden_size),
        }
        layers = {"text_model": t.num_hidden_layers, "vision_model": v.num_hidden_layers}
    except Exception as e:  # noqa: BLE001 - a config transformers cannot use
        raise CheckpointError(f"{spec}: unusable {d / 'config.json'}: {_one_line(e)}") from e
    safetensors = require("safetensors", "pip install safetensors")
    shapes: dict[str, tuple[int, ...]] = {}
    for f in files:
        try:
            with safetensors.safe_open(str(f), framework="pt") as st:
                shapes.update({k: tuple(st.get_slice(k).get_shape()) for k in st.keys()})
        except Exception as e:  # noqa: BLE001 - any reader failure means an unusable file
            raise CheckpointError(f"{spec}: cannot read {f}: {_one_line(e)}") from e
    for key, shape in expected.items():
        if key in shapes and shapes[key] != shape:
            raise CheckpointError(
                f"{spec}: {d / 'config.json'} declares {key} of shape {shape}, but the weights "
                f"hold {shapes[key]}; the config or the weights are damaged or of another model"
            )
    for tower, count in layers.items():
        found = {k.split(".")[3] for k in shapes if k.startswith(f"{tower}.encoder.layers.")}
        if found and len(found) != count:
            raise CheckpointError(
                f"{spec}: {d / 'config.json'} declares {count} layers in {tower}, but the "
                f"weights hold {len(found)}; the config or the weights are damaged"
            )


def _route_logs(transformers: Any) -> None:
    """transformers' messages through Python's logging, errors only: its own handler is
    bound to the stderr of the moment it was made, which may be closed since (a second
    run in one process, a test's captured stream)."""
    logs = transformers.utils.logging
    logs.disable_default_handler()
    logs.enable_propagation()
    logs.set_verbosity_error()


def _from_pretrained(transformers: Any, d: Path, spec: str) -> torch.nn.Module:
    bars = transformers.utils.logging
    shown = bars.is_progress_bar_enabled()
    bars.disable_progress_bar()  # a "Loading weights" bar per load is noise in selo's output
    try:
        model, info = transformers.CLIPModel.from_pretrained(
            d, local_files_only=True, output_loading_info=True
        )
    except Exception as e:  # noqa: BLE001 - any reader failure: damaged weights or config
        raise CheckpointError(f"{spec}: cannot load the model from {d}: {_one_line(e)}") from e
    finally:
        if shown:
            bars.enable_progress_bar()
    check_keys(
        f"{spec} ({d})",
        missing=[k for k in info.get("missing_keys", ()) if "logit_scale" not in k],
        unexpected=list(info.get("unexpected_keys", ())),
        mismatched=[str(m[0]) for m in info.get("mismatched_keys", ())],
    )
    check_finite(model.state_dict(), f"{spec} ({d})")
    return model.float()
