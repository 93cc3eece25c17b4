"""Torch helpers shared by the CLIP-family encoders.

One safe checkpoint loader (``weights_only=True``, wrapped state dicts unwrapped),
one key-mismatch report, one batched preprocessing transform (Pillow's exact
pixels), one batching loop under ``torch.inference_mode`` in the chosen
precision, and the encoder base class built on them. Imported only when a
torch encoder is built, so ``import selo.models`` stays light.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import pickle
import re
import threading
import warnings
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, MissingDependencyError, ParameterError
from .base import PRECISIONS, Encoder, as_nhwc, l2_normalize, select_device
from .resample import pil_resize, resize_like_pil

__all__ = [
    "CLIP_INPUT_SIZE",
    "OPENAI_MEAN",
    "OPENAI_STD",
    "ImageTransform",
    "TorchEncoder",
    "autocast",
    "check_finite",
    "check_keys",
    "embed_batches",
    "load_into",
    "load_state_dict",
    "numpy_scalar_globals",
    "require",
    "resolve_precision",
    "torch_device",
]

CLIP_INPUT_SIZE = 256
"""Window side handed to CLIP-family encoders: the published SeLo cut size."""

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

_CLIP_EXTRA = "pip install 'selo[clip]'"


def require(module: str, install: str = _CLIP_EXTRA) -> ModuleType:
    """Import an optional dependency, or raise an error that says what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f"this encoder needs the optional package {module!r}, which is not installed "
            f"({e}); install it with: {install}"
        ) from e


# --------------------------------------------------------------------------- checkpoints


def numpy_scalar_globals() -> list[Any]:
    """The globals a pickled NumPy number needs (``best_rsum`` of a training checkpoint).

    A NumPy scalar is pickled as ``numpy._core.multiarray.scalar`` (NumPy 2) or
    ``numpy.core.multiarray.scalar`` (NumPy 1), a ``numpy.dtype`` and its
    DType class; these only rebuild numbers and run no other code.
    """
    scalar = np._core.multiarray.scalar
    dtypes = [type(np.dtype(t)) for t in (np.float64, np.float32, np.float16, np.int64)]
    dtypes += [type(np.dtype(t)) for t in (np.int32, np.int16, np.int8, np.uint8, np.bool_)]
    return [np.dtype, *dtypes, scalar, (scalar, "numpy.core.multiarray.scalar")]


def load_state_dict(
    path: str | Path, *, safe_globals: Sequence[Any] = ()
) -> dict[str, torch.Tensor]:
    """The tensors of a local checkpoint file, read without running any pickled code.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(weights_only=True)``, which refuses pickles that carry code or
    arbitrary objects; ``safe_globals`` are the only extra globals it may use
    (``torch.serialization.safe_globals``), e.g. :func:`numpy_scalar_globals`.
    Training checkpoints that wrap the weights (under ``state_dict``, ``model``
    or ``module``, or with ``module.`` key prefixes from DataParallel) are
    unwrapped. Any failure of the reader (a damaged or foreign file) and weights
    that are not finite (NaN or infinite: every score would be NaN) are a
    :class:`CheckpointError` naming the file.
    """
    p = Path(path).expanduser()
    try:
        exists, is_file = p.exists(), p.is_file()
    except OSError as e:  # a name too long, a loop of links
        raise CheckpointError(f"checkpoint path cannot be used: {p} ({e.strerror})") from None
    if not exists:
        raise CheckpointError(f"checkpoint file not found: {p}")
    if not is_file:
        raise CheckpointError(f"checkpoint path is not a file: {p}")
    if p.suffix == ".safetensors":
        safetensors_torch = require("safetensors.torch", "pip install safetensors")
        try:
            obj: Any = safetensors_torch.load_file(str(p), device="cpu")
        except Exception as e:  # noqa: BLE001 - any reader failure means an unusable file
            raise CheckpointError(f"cannot read safetensors checkpoint {p}: {_last_line(e)}") from e
    else:
        obj = _torch_load(p, safe_globals)
    state = _unwrap(obj, p)
    check_finite(state, f"checkpoint {p}")
    return state


def check_finite(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise a CheckpointError naming the first floating-point tensor that holds NaN or
    infinite values (such weights give NaN scores and an empty map)."""
    for key, tensor in state.items():
        if not (tensor.is_floating_point() or tensor.is_complex()):
            continue
        try:
            finite = bool(torch.isfinite(tensor).all())
        except (RuntimeError, NotImplementedError):  # e.g. sparse layouts: nothing to check
            continue
        if not finite:
            raise CheckpointError(
                f"{source}: tensor {key!r} holds NaN or infinite values; the file is damaged "
                "or was saved from a training run that diverged"
            )


def _torch_load(p: Path, safe_globals: Sequence[Any] = ()) -> Any:
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(list(safe_globals)):
            warnings.filterwarnings("ignore", message=".*TorchScript archive")
            # (a pickle of another protocol is refused or read anyway: nothing to warn about)
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        blocked = re.search(r"GLOBAL (\S+)", str(e))
        if blocked:
            raise CheckpointError(
                f"refusing checkpoint {p}: it is not a plain state dict but a pickle that "
                f"references {blocked.group(1)} (code or Python objects), and selo only "
                "loads tensors (torch.load(weights_only=True)). If you trust the file, "
                "re-save its weights with torch.save(model.state_dict(), PATH)."
            ) from e
        raise CheckpointError(f"cannot read checkpoint {p}: {_last_line(e)}") from e
    except RuntimeError as e:
        if "TorchScript" in str(e):
            raise CheckpointError(
                f"refusing checkpoint {p}: it is a TorchScript archive (such as OpenAI's "
                "original CLIP .pt files), which contains code; use the plain state-dict "
                "release of the same weights (see `selo models`)."
            ) from e
        raise CheckpointError(f"cannot read checkpoint {p}: {_last_line(e)}") from e
    except Exception as e:  # noqa: BLE001 - any other reader failure: a damaged or foreign file
        raise CheckpointError(
            f"cannot read checkpoint {p} ({type(e).__name__}: {_last_line(e)}); "
            "the file is damaged or not a PyTorch checkpoint"
        ) from e


def _last_line(e: BaseException) -> str:
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


_WRAPPER_KEYS = ("state_dict", "model", "module")


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    while isinstance(obj, Mapping) and not _all_tensors(obj):
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not obj or not _all_tensors(obj):
        found = sorted(map(str, obj))[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"checkpoint {path} is not a state dict of tensors (found: {found}); "
            "expected a file saved with torch.save(model.state_dict(), PATH)"
        )
    state = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _all_tensors(m: Mapping) -> bool:
    return all(isinstance(v, torch.Tensor) for v in m.values())


def check_keys(
    source: str,
    *,
    missing: Sequence[str],
    unexpected: Sequence[str],
    mismatched: Sequence[str] = (),
) -> None:
    """Raise a :class:`CheckpointError` that counts and names the keys that do not fit."""
    if not (missing or unexpected or mismatched):
        return
    parts = [
        f"{len(keys)} {label} ({_examples(keys)})"
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("keys with the wrong shape", mismatched),
        )
        if keys
    ]
    raise CheckpointError(
        f"{source} does not fit the architecture: {', '.join(parts)}. "
        "Check that the spec names the architecture the checkpoint was trained with."
    )


def _examples(keys: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(sorted(keys)[:n])
    return shown + (", ..." if len(keys) > n else "")


def load_into(
    model: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str,
    *,
    optional: frozenset[str] = frozenset(),
    ignored: frozenset[str] = frozenset(),
) -> None:
    """Load ``state`` into ``model``, all or nothing, or explain what does not fit.

    ``optional`` model keys may be absent (they keep their initial values; e.g.
    ``logit_scale``, unused for embeddings); ``ignored`` checkpoint keys are
    dropped (bookkeeping entries some exporters add).
    """
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k not in ignored}
    missing = [k for k in own if k not in state and k not in optional]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    check_keys(source, missing=missing, unexpected=unexpected, mismatched=mismatched)
    try:
        model.load_state_dict(state, strict=False)
    except (RuntimeError, TypeError, ValueError) as e:  # e.g. values of an unusable dtype
        raise CheckpointError(f"{source} cannot be loaded: {_last_line(e)}") from e


# --------------------------------------------------------------------------- preprocessing


_PILLOW_DEVICES = ("cpu",)
"""Devices whose windows Pillow itself resizes (faster there); elsewhere the integer passes."""


@dataclass(frozen=True)
class ImageTransform:
    """A torchvision-on-PIL eval transform applied to a whole batch, pixel for pixel.

    ``Resize(resize) → CenterCrop(crop) → ToTensor → Normalize(mean, std)`` as
    torchvision applies it to a PIL image: the resize gives Pillow's own uint8
    pixels (:mod:`selo.models.resample`; Pillow in threads on CPU, its integer
    re-implementation on other devices), then the same float32 operations.
    ``resize_mode`` ``"shortest"`` resizes the shortest side to ``resize``
    (torchvision ``Resize(int)``); ``"squash"`` resizes to ``resize`` ×
    ``resize`` (``Resize((s, s))``). ``crop_offset`` ``"round"`` centres the
    crop as torchvision does, ``"floor"`` as Hugging Face image processors do.
    """

    resize: int
    crop: int
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    crop_offset: str = "round"

    def __post_init__(self) -> None:
        if self.interpolation not in ("bicubic", "bilinear"):
            raise CheckpointError(
                f"unsupported image interpolation {self.interpolation!r} "
                "(expected 'bicubic' or 'bilinear')"
            )
        if not 0 < self.crop <= self.resize:
            raise CheckpointError(f"bad image sizes: resize {self.resize}, crop {self.crop}")
        if self.resize_mode not in ("shortest", "squash"):
            raise CheckpointError(f"unsupported resize mode {self.resize_mode!r}")
        if self.crop_offset not in ("round", "floor"):
            raise CheckpointError(f"unsupported crop offset {self.crop_offset!r}")

    @property
    def tag(self) -> str:
        """Short text naming the preprocessing, part of an encoder's ``version``.

        ``-pil``: resized to Pillow's exact pixels (embeddings made before that
        used a float resize, so their cache entries are not reused).
        """
        size = f"{self.crop}" if self.resize == self.crop else f"{self.resize}c{self.crop}"
        tag = f"pre{size}-{self.interpolation}-pil"
        if self.resize_mode != "shortest":
            tag += f"-{self.resize_mode}"
        if self.crop_offset != "round" and self.resize != self.crop:
            tag += f"-crop{self.crop_offset}"
        if (self.mean, self.std) != (OPENAI_MEAN, OPENAI_STD):
            stats = repr((self.mean, self.std)).encode()
            tag += "-" + hashlib.sha256(stats).hexdigest()[:6]
        return tag

    def resized_size(self, h: int, w: int) -> tuple[int, int]:
        """(h, w) after the resize step, with torchvision's rounding of the long side."""
        if self.resize_mode == "squash":
            return self.resize, self.resize
        short, long = (h, w) if h <= w else (w, h)
        new_long = int(self.resize * long / short)
        return (self.resize, new_long) if h <= w else (new_long, self.resize)

    def __call__(self, images: np.ndarray, device: str) -> torch.Tensor:
        """uint8 N×H×W×3 RGB windows as a float32 N×3×crop×crop model input on ``device``."""
        a = np.ascontiguousarray(images)
        h, w = a.shape[1:3]
        size = self.resized_size(h, w)
        if size != (h, w) and torch.device(device).type in _PILLOW_DEVICES:
            a = pil_resize(a, size, self.interpolation)
        x = torch.from_numpy(a).to(device).permute(0, 3, 1, 2)
        if size != tuple(x.shape[-2:]):
            x = resize_like_pil(x, size, self.interpolation)
        if self.crop_offset == "round":
            top = int(round((size[0] - self.crop) / 2.0))
            left = int(round((size[1] - self.crop) / 2.0))
        else:
            top, left = (size[0] - self.crop) // 2, (size[1] - self.crop) // 2
        x = x[..., top : top + self.crop, left : left + self.crop]
        x = x.float().div(255)  # ToTensor
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        return x.sub(mean).div(std)  # Normalize


# --------------------------------------------------------------------------- inference


def torch_device(device: str | None) -> str:
    """The device to run on (``None``/``"auto"``: CUDA when present), checked to be usable."""
    chosen = select_device(device)
    try:
        kind = torch.device(chosen).type
    except RuntimeError as e:
        raise ParameterError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from e
    if kind == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device {device!r} asked for, but CUDA is not available here")
    return chosen


def resolve_precision(precision: str | None, device: str) -> str:
    """The precision the towers run in on ``device``: ``precision``, or automatically
    bf16 on CUDA where supported, else fp16, and fp32 elsewhere; int8 only on CPU."""
    kind = torch.device(device).type
    on_cuda = kind == "cuda"
    if precision is None:
        if not on_cuda:
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision not in PRECISIONS:
        raise ParameterError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and on_cuda and not torch.cuda.is_bf16_supported():
        raise ParameterError("this GPU does not support bf16; use --precision fp16 or fp32")
    if precision == "int8" and kind != "cpu":
        raise ParameterError(
            f"--precision int8 runs on CPU only (ONNX Runtime's CPU int8 kernels), not on "
            f"device {device!r}; use --device cpu, or --precision bf16/fp16/fp32 on {kind}"
        )
    return precision


_HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: str, precision: str | None = None) -> contextlib.AbstractContextManager:
    """The context the towers run in: autocast to bf16/fp16, or plain fp32 (int8: the
    torch parts of an int8 encoder, which are fp32).

    fp32 on CUDA also turns TensorFloat-32 off for convolutions and matrix
    products (cuDNN uses it for convolutions by default), so that fp32 means
    what the published tools computed.
    """
    chosen = resolve_precision(precision, device)
    kind = torch.device(device).type
    if chosen in ("fp32", "int8"):
        return _ieee_fp32() if kind == "cuda" else contextlib.nullcontext()
    return torch.autocast(kind, dtype=_HALF[chosen])


_TF32_LOCK = threading.Lock()
_TF32_USERS = 0
_TF32_SAVED: tuple[bool, bool] = (False, False)


@contextlib.contextmanager
def _ieee_fp32():
    """TF32 off while any thread embeds in fp32 (the flags are process-wide)."""
    global _TF32_USERS, _TF32_SAVED
    with _TF32_LOCK:
        if _TF32_USERS == 0:
            _TF32_SAVED = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        _TF32_USERS += 1
    try:
        yield
    finally:
        with _TF32_LOCK:
            _TF32_USERS -= 1
            if _TF32_USERS == 0:
                torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = _TF32_SAVED


def embed_batches(
    fn: Callable[[Any], torch.Tensor],
    items: Sequence[Any] | np.ndarray,
    *,
    batch_size: int,
    device: str,
    dim: int,
    precision: str | None = None,
) -> np.ndarray:
    """``fn`` over consecutive batches of ``items``, as one float32 L2-normalised N×dim array."""
    if len(items) == 0:
        return np.zeros((0, dim), dtype=np.float32)
    with torch.inference_mode(), autocast(device, precision):
        parts = [
            fn(items[i : i + batch_size]).float().cpu() for i in range(0, len(items), batch_size)
        ]
    return l2_normalize(torch.cat(parts).numpy())


class TorchEncoder(Encoder):
    """A CLIP-family model: batched, on its device, with its own preprocessing.

    Subclasses say how to tokenize and how to run each tower; windows arrive as
    uint8 ``input_size`` squares and go through ``transform`` on the device. The
    towers run in ``precision`` (:func:`resolve_precision`); a precision other
    than fp32 is part of ``version``. With ``int8`` the image tower is exported
    once, at construction, and run by ONNX Runtime (:mod:`._onnx`); the text tower
    stays fp32 torch (queries are few).
    """

    input_size = CLIP_INPUT_SIZE

    def __init__(
        self,
        *,
        name: str,
        version: str,
        model: torch.nn.Module,
        transform: ImageTransform,
        embed_dim: int,
        context_length: int,
        device: str,
        batch_size: int = 64,
        precision: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ParameterError(f"batch_size must be at least 1, got {batch_size}")
        self.name = name
        self._version = version
        self.model = model.to(device).eval()
        self.transform = transform
        self.embed_dim = embed_dim
        self.context_length = context_length
        self.device = device
        self.batch_size = batch_size
        self.precision = resolve_precision(precision, device)
        self._images = self._image_features
        if self.precision == "int8":
            from ._onnx import int8_session

            self._images = int8_session(
                self.model, self._image_features, transform.crop, what=name, version=version
            )

    @property
    def version(self) -> str:
        return self._version + ("" if self.precision == "fp32" else f"+{self.precision}")

    @abstractmethod
    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unnormalised image embeddings of a preprocessed N×3×S×S batch."""

    @abstractmethod
    def _text_features(self, texts: list[str]) -> torch.Tensor:
        """Unnormalised text embeddings of a batch of sentences."""

    @abstractmethod
    def _token_count(self, text: str) -> int:
        """Number of tokens ``text`` needs, start and end tokens included."""

    def encode_images(self, images: np.ndarray) -> np.ndarray:
        windows = as_nhwc(images)
        return embed_batches(
            lambda b: self._images(self.transform(b, self.device)),
            windows,
            batch_size=self.batch_size,
            device=self.device,
            dim=self.embed_dim,
            precision=self.precision,
        )

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return embed_batches(
            lambda b: self._text_features(list(b)),
            list(texts),
            batch_size=self.batch_size,
            device=self.device,
            dim=self.embed_dim,
            precision=self.precision,
        )

    def check_query(self, text: str) -> str | None:
        return self.too_long(text)

    def too_long(self, text: str) -> str | None:
        n = self._token_count(text)
        if n > self.context_length:
            return (
                f"the query has {n} tokens but {self.name} reads at most "
                f"{self.context_length}; the end of the sentence is ignored"
            )
        return None
