"""Tiny CLIP-family models with random weights, built offline for the model tests.

The open_clip architectures are registered as open_clip model configs (as a
user's built-in arch would be), so the registry builds them by name; the
Hugging Face folder is what ``save_pretrained`` writes, with a tiny BPE
vocabulary made here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TINY_VIT = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
TINY_RN = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def register_arch(directory: Path, name: str, cfg: dict) -> str:
    """Make ``name`` an open_clip built-in architecture with config ``cfg``."""
    import open_clip

    path = directory / f"{name}.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    return name


def smooth_windows(n: int = 5, size: int = 256, seed: int = 0) -> np.ndarray:
    """uint8 RGB windows with smooth structure (upsampled noise), N×size×size×3."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    return np.stack([cv2.resize(s, (size, size), interpolation=cv2.INTER_CUBIC) for s in small])


def make_hf_clip_dir(directory: Path, *, seed: int = 0, processor: bool = True) -> Path:
    """A tiny Hugging Face CLIP folder: config, safetensors weights, tokenizer, preprocessor."""
    import torch
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel

    directory.mkdir(parents=True, exist_ok=True)
    chars = [chr(i) for i in range(33, 127)]
    merges = [("g", "r"), ("gr", "e"), ("e", "n</w>"), ("gre", "en</w>")]
    vocab = [*chars, *(c + "</w>" for c in chars), *("".join(m) for m in merges)]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (directory / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    )
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "CLIPTokenizer", "model_max_length": 77})
    )
    tok = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    special = {
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tok),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            **special,
        },
        vision_config={
            "image_size": 64,
            "patch_size": 16,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
        projection_dim=32,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(directory)
    if processor:
        CLIPImageProcessor(
            size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}
        ).save_pretrained(directory)
    return directory
