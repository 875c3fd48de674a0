"""Multiply-accumulates (MACs) per inference, counted from a .tflite graph.

The count reads the interpreter's op list and tensor shapes of the model's plain builtin
graph (no XNNPACK: :func:`kws.runtime.interpreter.builtin_graph_details`), so it is the cost
of what the device actually runs, whatever Keras layers the model came from. A Keras
``Conv1D`` becomes ``EXPAND_DIMS`` + ``CONV_2D`` in TFLite and is counted as that ``CONV_2D``.

Counted ops, with ``prod(output)`` the number of output elements (batch included)::

    CONV_2D            prod(output) * kh * kw * cin_per_group   filter (cout, kh, kw, cin/g)
    DEPTHWISE_CONV_2D  prod(output) * kh * kw                   filter (1, kh, kw, cout)
    CONV_3D            prod(output) * kd * kh * kw * cin        filter (kd, kh, kw, cin, cout)
    FULLY_CONNECTED    prod(output) * in_features               weights (units, in_features)
    BATCH_MATMUL       prod(output) * K                         (..., M, K) x (..., K, N)
    TRANSPOSE_CONV     prod(input) * kh * kw * cout             each input pixel scatters a kernel

Everything else (pooling, activations, adds, reshapes, softmax) is not a MAC and is listed
by name in ``other_ops``. Biases are not counted. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from kws.runtime.interpreter import builtin_graph_details

Shape = tuple[int, ...]

#: Ops whose MACs are counted.
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "CONV_3D", "FULLY_CONNECTED", "BATCH_MATMUL",
           "TRANSPOSE_CONV")


@dataclass(frozen=True)
class GraphMacs:
    """MACs of one graph.

    Attributes
    ----------
    total : int
        MACs of one inference (one call of ``invoke``, at the model's input batch size).
    by_op : dict[str, int]
        MACs per op type, e.g. ``{"CONV_2D": ..., "FULLY_CONNECTED": ...}``.
    per_op : list[dict]
        One entry per counted op: ``{"index", "op", "macs", "output_shape"}``.
    other_ops : dict[str, int]
        How many ops of each uncounted type the graph holds.
    n_ops : int
        All ops in the graph.
    """

    total: int
    by_op: dict[str, int] = field(default_factory=dict)
    per_op: list[dict[str, Any]] = field(default_factory=list)
    other_ops: dict[str, int] = field(default_factory=dict)
    n_ops: int = 0

    def to_dict(self, *, with_per_op: bool = False) -> dict[str, Any]:
        out = {"total": self.total, "by_op": dict(self.by_op), "other_ops": dict(self.other_ops),
               "n_ops": self.n_ops}
        if with_per_op:
            out["per_op"] = list(self.per_op)
        return out


def _prod(shape: Sequence[int]) -> int:
    return int(math.prod(int(d) for d in shape))


def _batch_matmul_k(a: Shape, b: Shape, out: Shape) -> int:
    """The contracted size K of ``out = a @ b`` (either operand may be transposed)."""
    m, n = out[-2], out[-1]
    from_a = {a[-1]} if a[-2] == m else set()
    if a[-1] == m:
        from_a.add(a[-2])
    from_b = {b[-2]} if b[-1] == n else set()
    if b[-2] == n:
        from_b.add(b[-1])
    common = from_a & from_b
    if len(common) == 1:
        return int(common.pop())
    if common:  # ambiguous only when the candidates coincide with m or n; prefer a's last dim
        return int(a[-1]) if a[-1] in common else int(max(common))
    return int(a[-1])


def op_macs(op_name: str, inputs: Sequence[Shape | None], outputs: Sequence[Shape]) -> int | None:
    """MACs of one op from its tensor shapes; None for an op that :data:`MAC_OPS` does not hold.

    Parameters
    ----------
    op_name : the TFLite builtin name, e.g. ``"CONV_2D"``.
    inputs : shapes of the op's inputs in TFLite order (None for an omitted optional input).
    outputs : shapes of the op's outputs.
    """
    if op_name not in MAC_OPS:
        return None
    out = tuple(outputs[0])
    if op_name == "CONV_2D":          # input, filter (cout, kh, kw, cin/groups), bias
        _, kh, kw, cin = inputs[1]
        return _prod(out) * kh * kw * cin
    if op_name == "DEPTHWISE_CONV_2D":  # input, filter (1, kh, kw, cout), bias
        _, kh, kw, _ = inputs[1]
        return _prod(out) * kh * kw
    if op_name == "CONV_3D":          # input, filter (kd, kh, kw, cin, cout), bias
        kd, kh, kw, cin, _ = inputs[1]
        return _prod(out) * kd * kh * kw * cin
    if op_name == "FULLY_CONNECTED":  # input, weights (units, in_features), bias
        return _prod(out) * int(inputs[1][-1])
    if op_name == "BATCH_MATMUL":
        return _prod(out) * _batch_matmul_k(tuple(inputs[0]), tuple(inputs[1]), out)
    # TRANSPOSE_CONV: output_shape (1-D), weights (cout, kh, kw, cin), input (n, h, w, cin), bias
    cout, kh, kw, _ = inputs[1]
    return _prod(inputs[2]) * kh * kw * cout


def graph_macs(ops: Sequence[Mapping[str, Any]], tensors: Sequence[Mapping[str, Any]]) -> GraphMacs:
    """Count MACs from interpreter op details and tensor details (see :func:`count_macs`)."""
    shapes = {int(t["index"]): tuple(int(d) for d in t["shape"]) for t in tensors}
    by_op: dict[str, int] = {}
    per_op: list[dict[str, Any]] = []
    other: dict[str, int] = {}
    for op in ops:
        name = str(op["op_name"])
        ins = [shapes.get(int(i)) if int(i) >= 0 else None for i in op["inputs"]]
        outs = [shapes.get(int(i), ()) for i in op["outputs"]]
        macs = op_macs(name, ins, outs)
        if macs is None:
            other[name] = other.get(name, 0) + 1
            continue
        by_op[name] = by_op.get(name, 0) + macs
        per_op.append({"index": int(op["index"]), "op": name, "macs": macs,
                       "output_shape": list(outs[0])})
    return GraphMacs(sum(by_op.values()), by_op, per_op, other, len(ops))


def count_macs(path: str | Path, *, backend: str = "auto") -> GraphMacs:
    """MACs per inference of a ``.tflite`` file (its builtin graph, delegates not applied)."""
    ops, tensors = builtin_graph_details(path, backend=backend)
    return graph_macs(ops, tensors)
