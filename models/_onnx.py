"""``--precision int8``: an image tower run by ONNX Runtime with int8 Linear layers.

The tower is exported with torch's ONNX exporter (``torch.export`` based); its
matrix products with constant weights (the Linear layers) are quantized with
ONNX Runtime's dynamic quantization: int8 weights with one scale per tensor,
activations quantized to uint8 at run time with one scale per tensor. The
session runs one window per call (several side by side), so that a window's
embedding does not depend on the other windows of its batch. Everything else
(convolutions, attention products, normalisation) stays float32. Among the CPU
int8 paths measured (BENCHMARKS.md, "Encoders: int8 candidates") torchao's and
torch's own dynamic int8 were about half as fast, and OpenVINO with NNCF's int8
weights about as fast but two large packages more. The scheme is named ``int8``
in an encoder's version (the cache key): a change to it must change that tag.

Imported only when an int8 encoder is built.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..errors import ModelError
from ._torch import require

__all__ = [
    "INT8_INSTALL",
    "QUANTIZED_OPS",
    "export_onnx",
    "int8_session",
    "quantize_onnx",
    "weights_digest",
]

INT8_INSTALL = "pip install 'selo[int8]'  (onnxruntime, onnx, onnxscript)"
QUANTIZED_OPS = ("MatMul", "Gemm")  # Linear layers; convolutions stay float32
_KEEP = 4  # sessions kept per process (an encoder built twice exports once)

_SESSIONS: OrderedDict[tuple, Callable[[torch.Tensor], torch.Tensor]] = OrderedDict()
_SESSIONS_LOCK = threading.Lock()


class _Tower(torch.nn.Module):
    """``features`` as a module owning ``model``'s parameters, for the exporter."""

    def __init__(self, model: torch.nn.Module, features: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.model = model
        self.features = features

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.features(pixels)


@contextlib.contextmanager
def _root_logger_kept():
    """The root logger left as the host set it: ``onnxruntime.quantization`` logs through
    ``logging.info``/``logging.warning``, which would configure an unconfigured root logger
    (``logging.basicConfig``); a null handler meanwhile keeps it from doing so (and drops
    the quantizer's advice to pre-process the model, which gained nothing here)."""
    root = logging.getLogger()
    if root.handlers:
        yield
        return
    null = logging.NullHandler()
    root.addHandler(null)
    try:
        yield
    finally:
        root.removeHandler(null)


def weights_digest(model: torch.nn.Module) -> str:
    """A digest of every parameter and buffer of ``model`` (names, shapes, dtypes, bytes)."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def int8_session(
    model: torch.nn.Module,
    features: Callable[[torch.Tensor], torch.Tensor],
    side: int,
    *,
    what: str,
    version: str,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``features`` (a function of ``model`` taking float32 N×3×side×side pixels) with its
    Linear layers in int8, as a function of CPU tensors run by ONNX Runtime.

    ``what`` names the encoder in errors. Windows run side by side on as many threads as
    torch uses (``torch.get_num_threads()``), each window on one. Exporting
    takes seconds (about 12 CPU seconds for ViT-B-32), so a process keeps its last few
    sessions, keyed by ``version`` (the encoder's, which names the code path and the
    preprocessing) and the weights themselves: an encoder built twice (by the session
    and by its tasks) exports once.
    """
    key = (version, side, weights_digest(model), torch.get_num_threads())
    with _SESSIONS_LOCK:
        if key in _SESSIONS:
            _SESSIONS.move_to_end(key)
            return _SESSIONS[key]
        run = _build(model, features, side, what)
        _SESSIONS[key] = run
        while len(_SESSIONS) > _KEEP:
            _SESSIONS.popitem(last=False)
        return run


def export_onnx(tower: torch.nn.Module, side: int, path: Path) -> Path:
    """``tower`` (N×3×side×side float32 pixels → features, any N) exported to ONNX at
    ``path`` by torch's dynamo exporter, its weights beside it as external data."""
    program = torch.onnx.export(
        tower,
        (torch.zeros(2, 3, side, side),),
        dynamo=True,
        input_names=["pixels"],
        output_names=["features"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        verbose=False,
    )
    program.save(str(path), external_data=True)
    return path


def quantize_onnx(exported: Path, quantized: Path) -> Path:
    """ONNX Runtime's dynamic int8 quantization of the ``QUANTIZED_OPS`` of an exported model
    (int8 weights, activations quantized per call), written to ``quantized``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _root_logger_kept():
        quantize_dynamic(
            exported,
            quantized,
            op_types_to_quantize=list(QUANTIZED_OPS),
            weight_type=QuantType.QInt8,
            use_external_data_format=True,
        )
    return quantized


def _build(
    model: torch.nn.Module,
    features: Callable[[torch.Tensor], torch.Tensor],
    side: int,
    what: str,
) -> Callable[[torch.Tensor], torch.Tensor]:
    ort = require("onnxruntime", INT8_INSTALL)
    require("onnx", INT8_INSTALL)
    require("onnxscript", INT8_INSTALL)

    tower = _Tower(model, features).eval()
    with tempfile.TemporaryDirectory(prefix="selo-int8-") as tmp:
        exported, quantized = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        try:
            export_onnx(tower, side, exported)
        except Exception as e:  # noqa: BLE001 - any exporter failure means: not for int8
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise ModelError(
                f"--precision int8: the image tower of {what} cannot be exported to ONNX "
                f"({type(e).__name__}: {first}); use --precision fp32"
            ) from e
        quantize_onnx(exported, quantized)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(quantized), options, providers=["CPUExecutionProvider"])
    threads = torch.get_num_threads()
    pool = ThreadPoolExecutor(threads, thread_name_prefix="selo-int8") if threads > 1 else None

    def one(x: np.ndarray) -> np.ndarray:
        return session.run(None, {"pixels": x})[0]

    def run(pixels: torch.Tensor) -> torch.Tensor:
        # One window per call: activations are quantized with one scale per call, so a
        # batch would make each embedding depend on its batch-mates. The windows run side
        # by side on torch's number of threads, one thread each: a single window's matrix
        # products are too small to split well across threads
        x = np.ascontiguousarray(pixels.detach().cpu().numpy(), dtype=np.float32)
        windows = [x[i : i + 1] for i in range(len(x))]
        rows = list(pool.map(one, windows)) if pool else [one(w) for w in windows]
        return torch.from_numpy(np.concatenate(rows)) if rows else torch.zeros(0)

    return run
