"""Check that an "int8" model really is full-integer, and name the ops that are not.

The TFLite converter does not always fail on an op without an int8 kernel: with
``TFLITE_BUILTINS_INT8`` it may keep the op in float32 between a DEQUANTIZE and a QUANTIZE
(seen with TF 2.21 for SIN, CUMSUM, RFFT2D/COMPLEX_ABS), and the result only fails later, on a
microcontroller or an int8-only delegate, or runs slower than the float model. Other ops make the
converter fail with a long MLIR log. Both cases become one :class:`~kws.runtime.errors.ModelError`
line that names the ops.
"""

from __future__ import annotations

import re
from pathlib import Path

from kws.runtime.errors import ModelError
from kws.runtime.interpreter import builtin_graph_details

#: Tensor types that mean "computed in floating point".
FLOAT_TYPES = frozenset({"float16", "float32", "float64", "complex64", "complex128"})
#: Ops that only convert at the boundaries; they are reported only as the neighbours of float ops.
BOUNDARY_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})

_OP_PATTERNS = (
    re.compile(r"'(?:tf|tfl)\.(\w+)' op is neither a custom op nor a flex op"),
    re.compile(r"TF Select ops: ([\w, ]+)"),
    re.compile(r"[Qq]uantization (?:is )?not (?:yet )?supported for op:? '?(?:tfl?\.)?(\w+)"),
    re.compile(r"'(?:tf|tfl)\.(\w+)' op (?:is not supported|failed|requires|quantization)"),
)


def _type_name(t) -> str:
    return getattr(t, "__name__", str(t))


def float_ops(tflite_path: str | Path) -> list[str]:
    """Names of the ops (other than QUANTIZE/DEQUANTIZE) that compute in floating point.

    Reads the plain builtin graph (no delegate), e.g. ``["CUMSUM"]`` or ``["RFFT2D",
    "COMPLEX_ABS"]``; empty for a full-integer model.
    """
    ops, tensors = builtin_graph_details(tflite_path)
    dtypes = {int(t["index"]): getattr(t["dtype"], "__name__", str(t["dtype"])) for t in tensors}
    found: list[str] = []
    for op in ops:
        name = str(op.get("op_name", "?"))
        if name in BOUNDARY_OPS or name == "DELEGATE":
            continue
        types = [_type_name(t) for t in op.get("operand_types", []) + op.get("result_types", [])]
        if not types:  # older interpreters: read the tensors' dtypes
            idx = [int(i) for i in list(op.get("inputs", [])) + list(op.get("outputs", [])) if int(i) >= 0]
            types = [dtypes.get(i, "") for i in idx]
        if any(t in FLOAT_TYPES for t in types) and name not in found:
            found.append(name)
    return found


def check_full_integer(tflite_path: str | Path) -> None:
    """Raise :class:`ModelError` naming the float ops of a model that should be full-integer."""
    found = float_ops(tflite_path)
    if found:
        raise ModelError(
            f"int8 export: op(s) {', '.join(found)} have no int8 kernel; the converter left them in "
            "float32 between DEQUANTIZE/QUANTIZE, so the model is not full-integer. Replace them in "
            "the network, or export without --int8 (float32/--dynamic)")


def ops_in_converter_error(text: str) -> list[str]:
    """Op names mentioned in a TFLite converter error log (``tf.Erf`` -> ``Erf``), in order."""
    names: list[str] = []
    for pattern in _OP_PATTERNS:
        for match in pattern.finditer(text):
            for name in re.split(r"[,\s]+", match.group(1)):
                if name and name not in names:
                    names.append(name)
    return names


def converter_error(kind: str, exc: BaseException, log: str = "") -> ModelError:
    """A one-line :class:`ModelError` for a failed conversion, naming the ops when it can."""
    text = f"{exc}\n{log}"
    names = ops_in_converter_error(text)
    if names:
        return ModelError(f"{kind} export: the converter cannot handle op(s) {', '.join(names)} "
                          f"({'no int8 kernel' if kind == 'int8' else 'no TFLite builtin kernel'}); "
                          "replace them in the network")
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    return ModelError(f"{kind} export: the TFLite converter failed ({first[:300]})")
