"""Long-CLIP checkpoints (LRSCLIP, Long-CLIP) as selo encoders (``longclip:<arch>``).

Long-CLIP is OpenAI's CLIP (QuickGELU activations) with a 248-token text
context. Its checkpoints keep two text position tables, ``positional_embedding``
and ``positional_embedding_res`` (248 rows each), and the text tower adds

    positional_embedding * mask1 + positional_embedding_res * mask2

where ``mask1`` selects the first 20 positions and ``mask2`` the other 228.
The masks are 0/1 constants, so at inference this is exactly one table: rows
0–19 of ``positional_embedding`` followed by rows 20–247 of
``positional_embedding_res`` (x·1 + y·0 = x for finite y, in any precision).
We fold the two tables into that one and load the result into an open_clip
``CLIP`` of the same architecture with ``quick_gelu=True`` and context length
248; every other key has the same name and shape in both code bases.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .openclip import OpenClipEncoder, build_model, encoder_from_model, load_weights

__all__ = ["LONGCLIP_CONTEXT", "LONGCLIP_KEEP", "fold_positional_embedding", "load_longclip"]

LONGCLIP_CONTEXT = 248
"""Text context length of Long-CLIP models."""

LONGCLIP_KEEP = 20
"""Leading positions taken from ``positional_embedding`` (Long-CLIP's ``mask1``)."""


def fold_positional_embedding(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Long-CLIP state dict with its two text position tables folded into one.

    A state dict without ``positional_embedding_res`` is returned unchanged, so
    a plain 248-position checkpoint loads too.
    """
    if "positional_embedding_res" not in state:
        return state
    folded = dict(state)
    res = folded.pop("positional_embedding_res")
    pos = folded["positional_embedding"]
    if pos.shape != res.shape:
        return state  # let the key check report the odd shapes
    folded["positional_embedding"] = torch.cat([pos[:LONGCLIP_KEEP], res[LONGCLIP_KEEP:]])
    return folded


def load_longclip(
    arch: str,
    checkpoint: str | Path,
    *,
    name: str | None = None,
    device: str | None = None,
    precision: str | None = None,
) -> OpenClipEncoder:
    """The ``longclip:<arch>`` encoder with weights from a local Long-CLIP state dict."""
    model = build_model(arch, kind="longclip", quick_gelu=True, context_length=LONGCLIP_CONTEXT)
    spec = f"longclip:{arch}, a Long-CLIP state dict"
    digest = load_weights(model, checkpoint, spec=spec, adapt=fold_positional_embedding)
    return encoder_from_model(
        model,
        arch=arch,
        kind="longclip",
        weights=digest,
        name=name,
        device=device,
        precision=precision,
    )
