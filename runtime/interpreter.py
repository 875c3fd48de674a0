"""The one module that wraps a TFLite interpreter.

Backends, tried in this order unless one is named:

1. ``ai-edge-litert`` (LiteRT): the maintained successor of tflite-runtime; works with numpy 2,
   has XNNPACK for float and int8, and wheels for x86-64 and aarch64 (no armv7l).
2. ``tflite-runtime``: a fallback only. Its last release (2.14, 2023) needs ``numpy<2``, has no
   XNNPACK for int8 models, and cannot load some newer op versions that TF 2.21 writes. It is
   the only interpreter with a wheel for 32-bit Raspberry Pi OS (armv7l).
3. ``tensorflow.lite`` from a full TensorFlow install (desktop only).

The wrapper quantizes int8/uint8 inputs and dequantizes outputs with the model's own scale and
zero point, read from the interpreter (not from the JSON).
"""

from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kws.runtime.errors import ModelError

logger = logging.getLogger(__name__)

BACKENDS = ("ai-edge-litert", "tflite-runtime", "tensorflow")
#: More interpreter threads than this is a typo (a few hundred thousand crash the interpreter).
MAX_THREADS = 256
_MODULES = {
    "ai-edge-litert": "ai_edge_litert.interpreter",
    "tflite-runtime": "tflite_runtime.interpreter",
    # ``tensorflow.lite`` itself does not define Interpreter (the tf.lite API is generated
    # elsewhere); the class lives here.
    "tensorflow": "tensorflow.lite.python.interpreter",
}


@dataclass(frozen=True)
class TensorQuant:
    """Quantization of one tensor: ``real = scale * (q - zero_point)``; scale 0 means float."""

    dtype: str
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0 and self.dtype in ("int8", "uint8", "int16")

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "scale": self.scale, "zero_point": self.zero_point}


def _import_backend(name: str):
    """Return the backend's Interpreter class, or None if not installed."""
    try:
        module = importlib.import_module(_MODULES[name])
    except ImportError:
        return None
    return getattr(module, "Interpreter", None)


#: How to export a model without an op that an old interpreter lacks.
_OP_HINTS = {"LOG": ", or merge the ensemble with kws-ensemble --combine geometric (its int8 graph has no LOG)"}


def load_error(path: Path, backend: str, exc: Exception) -> ModelError:
    """The error for a model the ``backend`` interpreter could not load. A model whose op (or op
    version) is newer than the interpreter is named as such: tflite-runtime 2.14, the last release,
    predates ops that TensorFlow's converter now writes (an ensemble's int8 LOG, for one)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    missing = re.search(r"Didn't find op for builtin opcode '(\w+)' version '(\d+)'", first)
    if missing:
        op, version = missing[1], missing[2]
        return ModelError(f"{path}: the {backend} interpreter has no {op} op of version {version}, which this "
                          "model needs (the interpreter is older than the converter that wrote the model); "
                          "run it with ai-edge-litert" + _OP_HINTS.get(op, ""))
    return ModelError(f"{path}: not a loadable .tflite model ({first})")


class TfliteModel:
    """A loaded .tflite model with one input and one output.

    Parameters
    ----------
    path : path to a ``.tflite`` file.
    threads : number of CPU threads for the interpreter (None: the backend's default).
    backend : one of :data:`BACKENDS`, or ``"auto"`` for the first installed.
    """

    def __init__(self, path: str | Path, *, threads: int | None = None, backend: str = "auto") -> None:
        self.path = Path(path)
        if threads is not None and not 1 <= threads <= MAX_THREADS:
            raise ModelError(f"--threads {threads}: expected a positive integer, at most {MAX_THREADS}")
        if not self.path.is_file():
            raise ModelError(f"{self.path}: model file not found")
        names = BACKENDS if backend == "auto" else (backend,)
        if backend != "auto" and backend not in BACKENDS:
            raise ModelError(f"interpreter backend {backend!r} is not one of {', '.join(BACKENDS)}")
        interpreter_cls = None
        for name in names:
            interpreter_cls = _import_backend(name)
            if interpreter_cls is not None:
                self.backend = name
                break
        if interpreter_cls is None and backend != "auto":
            raise ModelError(f"interpreter backend {backend!r} is not installed (pip install {backend}); "
                             "--backend auto takes the first installed one")
        if interpreter_cls is None:
            raise ModelError("no TFLite interpreter is installed: pip install ai-edge-litert "
                             "(or tflite-runtime on 32-bit Raspberry Pi OS)")
        try:
            self._interp = interpreter_cls(model_path=str(self.path), num_threads=threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise load_error(self.path, self.backend, exc) from None
        self.threads = threads
        inputs = self._interp.get_input_details()
        outputs = self._interp.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{self.path}: expected 1 input and 1 output, got {len(inputs)} and "
                             f"{len(outputs)}")
        self._in = inputs[0]
        self._out = outputs[0]
        self.input_shape: tuple[int, ...] = tuple(int(d) for d in self._in["shape"])
        self.output_shape: tuple[int, ...] = tuple(int(d) for d in self._out["shape"])
        self.input_quant = self._quant(self._in)
        self.output_quant = self._quant(self._out)
        logger.debug("loaded %s with %s (input %s %s, output %s %s)", self.path, self.backend,
                     self.input_shape, self.input_quant.dtype, self.output_shape,
                     self.output_quant.dtype)

    @staticmethod
    def _quant(detail: dict) -> TensorQuant:
        scale, zero_point = detail.get("quantization", (0.0, 0))
        return TensorQuant(np.dtype(detail["dtype"]).name, float(scale), int(zero_point))

    @property
    def xnnpack(self) -> bool | None:
        """Whether the XNNPACK delegate is applied, where the backend tells (else None)."""
        try:
            ops = self._interp._get_ops_details()  # noqa: SLF001 - only way to see delegates
        except Exception:  # pragma: no cover - depends on the backend
            return None
        return any("DELEGATE" in str(op.get("op_name", "")).upper() for op in ops)

    def ops_details(self) -> list[dict]:
        """The interpreter's op list (name, input and output tensor indices)."""
        return list(self._interp._get_ops_details())  # noqa: SLF001

    def tensor_details(self) -> list[dict]:
        return list(self._interp.get_tensor_details())

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """float features -> the input tensor's dtype, with the model's scale and zero point."""
        q = self.input_quant
        if not q.quantized:
            return np.asarray(x, dtype=np.dtype(q.dtype))
        info = np.iinfo(np.dtype(q.dtype))
        scaled = np.round(np.asarray(x, dtype=np.float32) / q.scale) + q.zero_point
        return np.clip(scaled, info.min, info.max).astype(q.dtype)

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        q = self.output_quant
        if not q.quantized:
            return np.asarray(y, dtype=np.float32)
        return (np.asarray(y, dtype=np.float32) - q.zero_point) * np.float32(q.scale)

    def invoke_raw(self, x: np.ndarray) -> np.ndarray:
        """Run one already-quantized input of shape :attr:`input_shape`; returns the raw output."""
        self._interp.set_tensor(self._in["index"], x)
        self._interp.invoke()
        return self._interp.get_tensor(self._out["index"])

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Float outputs (logits) for float features.

        Parameters
        ----------
        features : np.ndarray, float32, shape ``input_shape[1:]`` or ``(batch, *input_shape[1:])``

        Returns
        -------
        np.ndarray, float32, shape (n_outputs,) or (batch, n_outputs)
        """
        x = np.asarray(features, dtype=np.float32)
        item_shape = self.input_shape[1:]
        single = x.shape == item_shape
        if single:
            x = x[None]
        if x.shape[1:] != item_shape:
            raise ModelError(f"features of shape {x.shape[1:]} do not fit {self.path.name}'s input "
                             f"{item_shape}")
        out = np.empty((len(x), *self.output_shape[1:]), dtype=np.float32)
        for i, item in enumerate(x):
            out[i] = self.dequantize_output(self.invoke_raw(self.quantize_input(item[None])))[0]
        return out[0] if single else out


def builtin_graph_details(path: str | Path, *, backend: str = "auto") -> tuple[list[dict], list[dict]]:
    """(ops, tensors) of a model as its plain builtin ops, with no delegate applied.

    With XNNPACK on, a loaded model's op list also holds DELEGATE nodes that stand in for the
    ops they took over; graph analysis (MAC counting in :mod:`kws.runtime.tflite_graph`) wants
    the plain graph, so this builds a separate interpreter with the backend's
    ``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES`` (where the backend has it).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    for name in BACKENDS if backend == "auto" else (backend,):
        interpreter_cls = _import_backend(name) if name in BACKENDS else None
        if interpreter_cls is not None:
            break
    else:
        raise ModelError(f"no TFLite interpreter for backend {backend!r} is installed")
    module = importlib.import_module(interpreter_cls.__module__)
    resolver = getattr(module, "OpResolverType", None) or getattr(
        getattr(module, "experimental", None), "OpResolverType", None)
    kwargs = {}
    if resolver is not None and hasattr(resolver, "BUILTIN_WITHOUT_DEFAULT_DELEGATES"):
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interp = interpreter_cls(model_path=str(path), **kwargs)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise load_error(path, name, exc) from None
    return list(interp._get_ops_details()), list(interp.get_tensor_details())  # noqa: SLF001


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax, float32."""
    z = np.asarray(logits, dtype=np.float32)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)
