"""Encoders behind one small interface, and the registry that builds them.

``models`` imports nothing else of selo except the shared error types
(``selo.errors``), so a third-party encoder only needs this package.
"""

from .base import DEFAULT_ENCODER, PRECISIONS, Encoder, EncoderSpec, l2_normalize, select_device
from .registry import cached_encoder, get_encoder, list_presets, parse_spec

__all__ = [
    "DEFAULT_ENCODER",
    "PRECISIONS",
    "Encoder",
    "EncoderSpec",
    "cached_encoder",
    "get_encoder",
    "l2_normalize",
    "list_presets",
    "parse_spec",
    "select_device",
]
