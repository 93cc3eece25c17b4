"""The encoder interface every model implements.

An encoder turns window pixels and query sentences into vectors in one space;
the SeLo score of a window is the cosine similarity of the two, i.e. the dot
product of the L2-normalised vectors. The pipeline resizes every window to
``input_size`` × ``input_size`` (bicubic, as the published code does) before
calling :meth:`Encoder.encode_images`; anything beyond that (crop, mean/std,
dtype, device) is the encoder's own business.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ParameterError

__all__ = [
    "DEFAULT_ENCODER",
    "PRECISIONS",
    "Encoder",
    "EncoderSpec",
    "l2_normalize",
    "select_device",
    "file_digest",
    "as_nhwc",
]


DEFAULT_ENCODER = "color"
"""The encoder every command and the Python API use unless told otherwise (no weights)."""

PRECISIONS: dict[str, str] = {
    "fp32": "IEEE float32, as the published tools (the default on CPU)",
    "bf16": "torch autocast to bfloat16 (the default on CUDA where supported)",
    "fp16": "torch autocast to float16 (the default on CUDA without bf16)",
    "int8": "CPU only: the image tower's Linear layers in int8 (ONNX Runtime dynamic "
    "quantization), the rest and the text tower in float32; faster, not the published protocol",
}
"""Precisions a torch encoder can run in (``None``: automatic), with what each means."""


@dataclass(frozen=True)
class EncoderSpec:
    """What is needed to build an encoder anywhere (picklable; tasks carry it).

    ``name`` is a registry spec such as ``color``, ``openclip:ViT-B-32`` or a
    preset name; ``checkpoint`` a local weights path where the spec needs one;
    ``device`` ``None``/``"auto"`` (CUDA when present, else CPU), ``"cpu"``,
    ``"cuda"`` or ``"cuda:N"``; ``precision`` one of :data:`PRECISIONS`, or
    ``None`` for automatic (bf16 on CUDA where supported, else fp16; fp32 on
    CPU); ``int8`` runs on CPU only. The ``color`` encoder computes in float32
    whatever it says.
    """

    name: str = DEFAULT_ENCODER
    checkpoint: str | None = None
    device: str | None = None
    precision: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ParameterError(f"the encoder spec must be a string, got {self.name!r}")
        for name in ("checkpoint", "device"):
            if not isinstance(getattr(self, name), str | None):
                raise ParameterError(f"--{name} must be a string, got {getattr(self, name)!r}")
        if self.precision not in (None, *PRECISIONS):
            raise ParameterError(
                f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}"
            )


class Encoder(ABC):
    """One image/text embedding model.

    Attributes set by every implementation:

    - ``name``: the registry spec that built it (``color``, ``openclip:ViT-B-32``, ...).
    - ``input_size``: side of the square uint8 windows ``encode_images`` expects.
    - ``embed_dim``: length of the vectors.
    - ``device``: the torch device string actually used (``cpu`` for ``color``).
    """

    name: str
    input_size: int
    embed_dim: int
    device: str = "cpu"

    @property
    @abstractmethod
    def version(self) -> str:
        """A string that changes whenever the embeddings could change.

        It names the implementation, its preprocessing and a digest of the
        weights file, so that embedding caches never mix models.
        """

    @abstractmethod
    def encode_images(self, images: np.ndarray) -> np.ndarray:
        """Embed uint8 windows (N×H×W×3 or N×3×H×W) as float32 N×D, rows L2-normalised."""

    @abstractmethod
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed sentences as float32 M×D, rows L2-normalised."""

    def check_query(self, text: str) -> str | None:
        """A warning for the user when this encoder cannot use ``text`` well, else None."""
        return None

    def too_long(self, text: str) -> str | None:
        """Why ``text`` is longer than this encoder reads (the end would be cut off), else None."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} dim={self.embed_dim} device={self.device}>"

    def __dask_tokenize__(self) -> tuple[str, str]:
        """Dask task names follow the encoder's version (not its weights' bytes)."""
        return (type(self).__qualname__, self.version)


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` scaled to unit Euclidean length (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, eps)).astype(np.float32, copy=False)


def as_nhwc(images: np.ndarray) -> np.ndarray:
    """uint8 windows as N×H×W×3, accepting N×3×H×W too (a single window gets N=1)."""
    a = np.asarray(images)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise ValueError(f"expected N×H×W×3 or N×3×H×W windows, got shape {a.shape}")
    if a.shape[-1] != 3 and a.shape[1] == 3:
        a = np.moveaxis(a, 1, -1)
    if a.shape[-1] != 3:
        raise ValueError(f"expected 3 colour channels, got shape {a.shape}")
    if a.dtype != np.uint8:
        raise ValueError(f"expected uint8 windows, got {a.dtype}")
    return a


def select_device(device: str | None = None) -> str:
    """The torch device to use: ``device`` when given, else CUDA when present, else CPU."""
    if device not in (None, "", "auto"):
        return str(device)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def file_digest(path: str | os.PathLike[str], length: int = 16) -> str:
    """First ``length`` hex digits of the SHA-256 of a file (cached per path, size and mtime)."""
    p = Path(path)
    st = p.stat()
    return _digest(str(p.resolve()), st.st_size, st.st_mtime_ns)[:length]


@lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
