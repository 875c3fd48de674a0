"""Multiply-accumulate (MAC) counts of a Keras model, for one inference on one input.

Counted: the multiplications of the layers that carry the arithmetic of these networks:

==========================  ==================================================================
layer                       MACs (output positions ``P`` = product of the output's spatial dims)
==========================  ==================================================================
Conv1D / Conv2D / Conv3D    ``P * prod(kernel) * (channels_in / groups) * filters``
DepthwiseConv1D/2D          ``P * prod(kernel) * channels_in * depth_multiplier``
SeparableConv1D/2D          depthwise part (as above, at the output positions) + ``P * (channels_in * depth_multiplier) * filters``
Conv1DTranspose/2D          ``prod(input spatial) * prod(kernel) * channels_in * filters``
Dense / EinsumDense-free    ``prod(leading non-batch dims) * inputs * units``
==========================  ==================================================================

Not counted (they are cheap or folded away at export): biases, activations, BatchNormalization
(folded into the convolutions), pooling, additions, concatenations and reshapes. Nested models
are counted layer by layer. A layer used more than once is counted once per call.
"""

from __future__ import annotations

import math
from typing import Any, Iterator


def _shapes(layer) -> Iterator[tuple[tuple, tuple]]:
    """(input shape, output shape) of every call of ``layer`` (without the batch axis)."""
    seen = False
    for node in getattr(layer, "_inbound_nodes", None) or []:  # Keras 3 graph nodes
        arguments = getattr(node, "arguments", None)
        ins = list(getattr(arguments, "keras_tensors", None) or [])
        outs = list(getattr(node, "outputs", None) or [])
        if ins and outs:
            seen = True
            yield tuple(ins[0].shape[1:]), tuple(outs[0].shape[1:])
    if not seen:
        ins, outs = layer.input, layer.output
        ins = ins[0] if isinstance(ins, (list, tuple)) else ins
        outs = outs[0] if isinstance(outs, (list, tuple)) else outs
        yield tuple(ins.shape[1:]), tuple(outs.shape[1:])


_COUNTED = frozenset({
    "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
    "SeparableConv2D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "Dense",
})


def _layer_macs(layer, in_shape: tuple, out_shape: tuple) -> int:
    kind = type(layer).__name__
    cfg = layer.get_config()
    if kind in ("Conv1D", "Conv2D", "Conv3D"):
        kernel = math.prod(cfg["kernel_size"])
        groups = int(cfg.get("groups", 1) or 1)
        positions = math.prod(out_shape[:-1])
        return positions * kernel * (int(in_shape[-1]) // groups) * int(cfg["filters"])
    if kind in ("DepthwiseConv1D", "DepthwiseConv2D"):
        kernel = math.prod(cfg["kernel_size"])
        positions = math.prod(out_shape[:-1])
        return positions * kernel * int(in_shape[-1]) * int(cfg.get("depth_multiplier", 1))
    if kind in ("SeparableConv1D", "SeparableConv2D"):
        kernel = math.prod(cfg["kernel_size"])
        positions = math.prod(out_shape[:-1])
        mid = int(in_shape[-1]) * int(cfg.get("depth_multiplier", 1))
        return positions * kernel * mid + positions * mid * int(cfg["filters"])
    if kind in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        kernel = math.prod(cfg["kernel_size"])
        return math.prod(in_shape[:-1]) * kernel * int(in_shape[-1]) * int(cfg["filters"])
    if kind == "Dense":
        return math.prod(in_shape[:-1]) * int(in_shape[-1]) * int(cfg["units"])
    return 0


def mac_table(model) -> list[dict[str, Any]]:
    """Per-layer MACs of ``model``: ``[{"layer": name, "type": class, "macs": int}, ...]``.

    Only layers with arithmetic (see the module docstring) are listed; nested models are
    expanded with ``outer/inner`` names.
    """
    rows: list[dict[str, Any]] = []
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers and hasattr(layer, "inputs"):
            for row in mac_table(layer):
                rows.append({**row, "layer": f"{layer.name}/{row['layer']}"})
            continue
        if type(layer).__name__ not in _COUNTED:
            continue
        total = sum(_layer_macs(layer, i, o) for i, o in _shapes(layer))
        if total:
            rows.append({"layer": layer.name, "type": type(layer).__name__, "macs": int(total)})
    return rows


def count_macs(model) -> int:
    """Total multiply-accumulates of one forward pass of one input (batch size 1)."""
    return int(sum(row["macs"] for row in mac_table(model)))


def format_macs(macs: int) -> str:
    """``1105002496`` -> ``'1.11 G'``; ``5123456`` -> ``'5.12 M'``."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if macs >= scale:
            return f"{macs / scale:.3g} {unit}"
    return str(int(macs))
