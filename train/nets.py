"""The model registry: the seed tutorial's four networks and the edge families.

Every model maps one feature window to ``n_classes`` LOGITS (no softmax layer); training uses
categorical cross-entropy ``from_logits=True`` and the runtime applies the softmax.

Select a model by name with :func:`build_model`; :data:`MODELS` lists the names with a one-line
description, the default front-end preset (see :data:`kws.train.presets.PRESETS`) and the knobs each takes.

Seed networks (``conv1d``, ``conv1d_skip``, ``spec2d``, ``spec2d_skip``)
    Blocks of convolutions (kernel 9 for Conv1D, 3x3 for Conv2D, padding ``same``, ReLU) with
    32,32 / 64,64 / 128x3 / 256x3 filters, each block followed by a 2x max-pool; then Dropout 0.3,
    Flatten, Dense 256, BatchNorm, ReLU, Dense ``n_classes``. ``width`` multiplies every filter
    count and the 256-unit hidden layer (``width=1`` is the seed; tests build ``width=0.125``).

    The ``*_skip`` variants are how we read the seed's "skip connection" version: in every block
    the block's output is concatenated on the channel axis with the block's INPUT, and the
    concatenation is then max-pooled. So block ``b`` passes ``filters_b + channels_in_b`` channels
    on, and the next block's first convolution sees all of them.

Edge family ``dscnn`` (depthwise-separable CNN, after Zhang et al. 2017 "Hello Edge")
    For a (bands, frames, 1) log-mel input: a full Conv2D of ``width`` filters with a (4, 10)
    kernel (4 mel bands x 10 frames = 80 ms) and stride ``(2, stride)``, BatchNorm, ReLU; then
    ``depth`` blocks of [DepthwiseConv2D 3x3, BatchNorm, ReLU, Conv2D 1x1 ``width``, BatchNorm,
    ReLU]; blocks listed in ``downsample`` (1-based) use stride 2 in the depthwise conv and double
    the channels in the pointwise conv; global average pooling, Dropout, Dense ``n_classes``. Only Conv2D, DepthwiseConv2D,
    BatchNormalization (folded into the convolutions at export), ReLU, average pooling and Dense,
    so it converts to a full-int8 TFLite model.

Edge family ``bcresnet`` (broadcasted residual learning, after Kim et al. 2021)
    A (5, 5) stride (2, 2) stem of ``width`` channels, then ``depth`` BC-ResBlocks, each: a
    frequency-wise depthwise conv (3 x 1) + BatchNorm (the 2-D branch ``f2``), an average over
    the frequency axis, a temporal depthwise conv (1 x 3) + BatchNorm + ReLU + pointwise conv
    (the 1-D branch ``f1``) whose (1 x T) output is broadcast back over frequency and added to
    the input and to ``f2``, then ReLU. Global average pooling, Dropout, Dense. Int8-friendly
    (AVERAGE_POOL_2D, DEPTHWISE_CONV_2D, CONV_2D, ADD with broadcasting, RELU, MEAN/Dense).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from kws.runtime.errors import KwsError

#: The seed's filter counts per block.
SEED_BLOCKS: tuple[tuple[int, ...], ...] = ((32, 32), (64, 64), (128, 128, 128), (256, 256, 256))
SEED_DENSE_UNITS = 256
SEED_DROPOUT = 0.3


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry.

    Attributes
    ----------
    name : str
    description : str
        One line for ``kws-train --list-models`` and errors.
    features : str
        Default front-end preset (a name in :data:`kws.train.presets.PRESETS`).
    knobs : Mapping[str, Any]
        Knob name -> default value; :func:`build_model` accepts exactly these.
    rank : int
        1 for models on a (samples, 1) waveform, 2 for models on a (bins, frames, 1) spectrogram.
    """

    name: str
    description: str
    features: str
    knobs: Mapping[str, Any]
    rank: int
    builder: Callable[..., Any] = field(repr=False, compare=False)


def _keras():
    import keras  # deferred: importing kws.train.nets must stay cheap

    return keras


# ---------------------------------------------------------------------------------------
# Seed networks
# ---------------------------------------------------------------------------------------
def _scaled(n: int, width: float) -> int:
    return max(1, int(round(n * width)))


def _seed_net(name: str, *, input_shape, n_classes: int, rank: int, skip: bool, width: float,
              dropout: float):
    keras = _keras()
    layers = keras.layers
    conv = layers.Conv1D if rank == 1 else layers.Conv2D
    pool = layers.MaxPooling1D if rank == 1 else layers.MaxPooling2D
    kernel = 9 if rank == 1 else (3, 3)
    inputs = keras.Input(shape=tuple(input_shape), name="features")
    x = inputs
    for b, filters in enumerate(SEED_BLOCKS, start=1):
        block_in = x
        for i, n in enumerate(filters, start=1):
            x = conv(_scaled(n, width), kernel, padding="same", activation="relu", name=f"conv{b}_{i}")(x)
        if skip:
            x = layers.Concatenate(axis=-1, name=f"skip{b}")([x, block_in])
        x = pool(name=f"pool{b}")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(_scaled(SEED_DENSE_UNITS, width), name="dense")(x)
    x = layers.BatchNormalization(name="dense_bn")(x)
    x = layers.ReLU(name="dense_relu")(x)
    outputs = layers.Dense(n_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def _conv1d(**kw):
    return _seed_net("conv1d", rank=1, skip=False, **kw)


def _conv1d_skip(**kw):
    return _seed_net("conv1d_skip", rank=1, skip=True, **kw)


def _spec2d(**kw):
    return _seed_net("spec2d", rank=2, skip=False, **kw)


def _spec2d_skip(**kw):
    return _seed_net("spec2d_skip", rank=2, skip=True, **kw)


# ---------------------------------------------------------------------------------------
# Edge families
# ---------------------------------------------------------------------------------------
#: BatchNorm momentum of the edge models. Keras' default 0.99 leaves the moving variance
#: dominated by its initial 1.0 for the first ~500 steps (0.99**230 = 0.1 after one epoch of the
#: 7k-clip shared set), while a depthwise layer's true variance can be 1e-3: the inference-mode
#: model then predicts one class and the best-by-val-loss checkpoint is garbage. 0.9 settles in ~50 steps.
BN_MOMENTUM = 0.9


def _bn(name):
    return _keras().layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)


def _conv_bn_relu(x, filters, kernel, strides, name):
    layers = _keras().layers
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = _bn(f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def dscnn_stem_kernel(freq_stride: int, stride: int) -> tuple[int, int]:
    """The stem kernel: twice the stride over frequency (at least 4 bands), 10 frames (80 ms at
    the 8 ms hop) or twice the time stride if that is longer."""
    return max(4, 2 * freq_stride), max(10, 2 * stride)


def _dscnn(*, input_shape, n_classes: int, width: int, depth: int, stride: int, freq_stride: int,
           dropout: float, downsample: tuple[int, ...] = ()):
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=tuple(input_shape), name="features")
    x = _conv_bn_relu(inputs, width, dscnn_stem_kernel(freq_stride, stride), (freq_stride, stride), "stem")
    channels = width
    for i in range(1, depth + 1):
        # A downsampling block halves both axes in its depthwise conv and doubles the channels in
        # its pointwise conv: the MACs per block stay about the same, the features get richer.
        step = 2 if i in downsample else 1
        channels = channels * step
        x = layers.DepthwiseConv2D(3, strides=step, padding="same", use_bias=False, name=f"ds{i}_dw")(x)
        x = _bn(f"ds{i}_dw_bn")(x)
        x = layers.ReLU(name=f"ds{i}_dw_relu")(x)
        x = _conv_bn_relu(x, channels, 1, 1, f"ds{i}_pw")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(n_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="dscnn")


def _bc_block(x, channels: int, freq_bins: int, index: int, *, transition: bool):
    """One BC-ResBlock; ``transition`` changes the channel count first (no identity add then)."""
    layers = _keras().layers
    name = f"bc{index}"
    if transition:
        x = _conv_bn_relu(x, channels, 1, 1, f"{name}_in")
    identity = x
    # f2: frequency-wise depthwise conv on the 2-D map.
    f2 = layers.DepthwiseConv2D((3, 1), padding="same", use_bias=False, name=f"{name}_f2_dw")(x)
    f2 = _bn(f"{name}_f2_bn")(f2)
    # f1: average over frequency -> (1, T, C), temporal depthwise conv, pointwise conv.
    f1 = layers.AveragePooling2D((freq_bins, 1), name=f"{name}_freq_avg")(f2)
    f1 = layers.DepthwiseConv2D((1, 3), padding="same", use_bias=False, name=f"{name}_f1_dw")(f1)
    f1 = _bn(f"{name}_f1_bn")(f1)
    f1 = layers.ReLU(name=f"{name}_f1_relu")(f1)
    f1 = layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_f1_pw")(f1)
    # Broadcast the (1, T, C) branch back over frequency.
    parts = [f2, f1] if transition else [identity, f2, f1]
    x = layers.Add(name=f"{name}_add")(parts)
    return layers.ReLU(name=f"{name}_relu")(x)


def _bcresnet(*, input_shape, n_classes: int, width: int, depth: int, dropout: float):
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=tuple(input_shape), name="features")
    x = _conv_bn_relu(inputs, width, (5, 5), (2, 2), "stem")
    stages = max(1, min(depth, 4))
    index = 0
    for stage in range(stages):
        channels = width + (width // 2) * stage
        blocks = depth // stages + (1 if stage < depth % stages else 0)
        for j in range(blocks):
            index += 1
            freq_bins = int(x.shape[1])
            x = _bc_block(x, channels, freq_bins, index, transition=(j == 0 and stage > 0))
        if stage < stages - 1:
            pool = (2 if int(x.shape[1]) >= 4 else 1, 2 if int(x.shape[2]) >= 8 else 1)
            if pool != (1, 1):
                x = layers.MaxPooling2D(pool, name=f"stage{stage + 1}_pool")(x)
    x = _conv_bn_relu(x, int(x.shape[-1]), 1, 1, "head")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(n_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="bcresnet")


# ---------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------
_SEED_KNOBS = {"width": 1.0, "dropout": SEED_DROPOUT}

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("conv1d", "the seed's Conv1D net on the raw waveform (34.7 M params at width 1)",
                  "waveform", _SEED_KNOBS, 1, _conv1d),
        ModelSpec("conv1d_skip", "conv1d with each block's input concatenated to its output before pooling",
                  "waveform", _SEED_KNOBS, 1, _conv1d_skip),
        ModelSpec("spec2d", "the seed's Conv2D net on the 130x126 STFT magnitude (about 1.1 G MACs)",
                  "seed-stft", _SEED_KNOBS, 2, _spec2d),
        ModelSpec("spec2d_skip", "spec2d with each block's input concatenated to its output before pooling",
                  "seed-stft", _SEED_KNOBS, 2, _spec2d_skip),
        ModelSpec("dscnn", "edge: depthwise-separable CNN on 40 log-mel bands; --width channels, --depth blocks",
                  "log-mel", {"width": 96, "depth": 5, "stride": 4, "freq_stride": 4, "downsample": (),
                             "dropout": 0.2}, 2, _dscnn),
        ModelSpec("bcresnet", "edge: broadcasted-residual net on 40 log-mel bands; --width channels, --depth blocks",
                  "log-mel", {"width": 32, "depth": 6, "dropout": 0.2}, 2, _bcresnet),
    )
}

#: Knobs that must be integers for a given model (``width`` is a multiplier for the seed nets).
_INT_KNOBS = {"dscnn": ("width", "depth", "stride", "freq_stride"), "bcresnet": ("width", "depth")}


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; an unknown name is a KwsError listing the valid ones."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise KwsError(f"unknown model {name!r}; expected one of: {', '.join(MODELS)}") from None


def resolve_knobs(name: str, knobs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults of model ``name`` overridden by ``knobs`` (``None`` values are ignored), validated.

    Raises
    ------
    KwsError
        For a knob the model does not take, or a value out of range.
    """
    spec = get_spec(name)
    given = {k: v for k, v in (knobs or {}).items() if v is not None}
    unknown = sorted(set(given) - set(spec.knobs))
    if unknown:
        raise KwsError(f"model {name!r} has no knob(s) {', '.join(unknown)}; "
                       f"its knobs are: {', '.join(spec.knobs) or 'none'}")
    out = {**spec.knobs, **given}
    for key in _INT_KNOBS.get(name, ()):
        value = out[key]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise KwsError(f"--{key} {out[key]!r} for model {name}: expected a positive integer")
        out[key] = value
    if "width" in out and not (isinstance(out["width"], (int, float)) and out["width"] > 0):
        raise KwsError(f"--width {out['width']!r}: expected a positive number")
    if "downsample" in out:
        blocks = out["downsample"]
        blocks = (blocks,) if isinstance(blocks, int) else tuple(blocks)
        depth = out.get("depth", 0)
        if not all(isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= depth for b in blocks):
            raise KwsError(f"--downsample {','.join(map(str, blocks))}: expected block numbers "
                           f"between 1 and --depth {depth}")
        out["downsample"] = tuple(sorted(set(blocks)))
    if "dropout" in out and not (0.0 <= float(out["dropout"]) < 1.0):
        raise KwsError(f"--dropout {out['dropout']!r}: expected a number in [0, 1)")
    if "width" in out and name in ("conv1d", "conv1d_skip", "spec2d", "spec2d_skip"):
        out["width"] = float(out["width"])
    return out


def build_model(name: str, *, input_shape, n_classes: int, **knobs):
    """Build registry model ``name`` (uncompiled).

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.
    input_shape : tuple of int
        One input without the batch axis: ``(samples, 1)`` for waveform models,
        ``(bins, frames, 1)`` for spectrogram models (``FeatureConfig.input_shape``).
    n_classes : int
        Number of output logits.
    **knobs
        The model's knobs (see ``MODELS[name].knobs``); ``None`` means the default.

    Returns
    -------
    keras.Model whose output is ``(batch, n_classes)`` logits.

    Raises
    ------
    KwsError
        Unknown name or knob, a bad knob value, or an input shape of the wrong rank.
    """
    spec = get_spec(name)
    values = resolve_knobs(name, knobs)
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != spec.rank + 1 or shape[-1] != 1 or min(shape) < 1:
        expected = "(samples, 1) waveform" if spec.rank == 1 else "(bins, frames, 1) spectrogram"
        raise KwsError(f"model {name} takes a {expected} input, got shape {shape}; "
                       f"use --features {spec.features}")
    if not isinstance(n_classes, int) or n_classes < 2:
        raise KwsError(f"n_classes={n_classes!r}: expected an integer >= 2")
    if name == "dscnn" and shape[0] < 4:
        raise KwsError(f"dscnn needs at least 4 frequency bins, got input shape {shape}")
    if spec.rank == 2 and name.startswith("spec2d") and min(shape[:2]) < 16:
        raise KwsError(f"{name} pools 4 times by 2; input shape {shape} is too small (need >= 16x16)")
    if spec.rank == 1 and shape[0] < 16:
        raise KwsError(f"{name} pools 4 times by 2; input shape {shape} is too small (need >= 16 samples)")
    return spec.builder(input_shape=shape, n_classes=n_classes, **values)


def describe_models() -> str:
    """One line per registered model: name, default features, knobs and description."""
    lines = []
    for spec in MODELS.values():
        knobs = ", ".join(f"{k}={v}" for k, v in spec.knobs.items())
        lines.append(f"{spec.name:<12} [{spec.features}; {knobs}] {spec.description}")
    return "\n".join(lines)


def count_params(model) -> int:
    """Total parameters (trainable + non-trainable, as ``model.summary()`` counts them)."""
    return int(sum(math.prod(w.shape) for w in model.weights))
