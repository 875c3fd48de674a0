"""The model registry and the MAC counter (no training here; see test_train.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kws.runtime.errors import KwsError  # noqa: E402
from kws.train.macs import count_macs, format_macs, mac_table  # noqa: E402
from kws.train.nets import MODELS, build_model, count_params, describe_models, resolve_knobs  # noqa: E402

keras = pytest.importorskip("keras")

#: Tiny versions of every registry model (what the tests build and train).
TINY = {
    "conv1d": {"width": 0.125},
    "conv1d_skip": {"width": 0.125},
    "spec2d": {"width": 0.125},
    "spec2d_skip": {"width": 0.125},
    "dscnn": {"width": 8, "depth": 2},
    "bcresnet": {"width": 8, "depth": 2},
}
SHAPES = {1: (8000, 1), 2: (40, 126, 1)}
SEED_SPEC_SHAPE = (130, 126, 1)


def test_tiny_covers_the_registry():
    assert set(TINY) == set(MODELS)
    assert {"conv1d", "conv1d_skip", "spec2d", "spec2d_skip", "dscnn"} <= set(MODELS)
    for spec in MODELS.values():
        assert spec.description and spec.name in describe_models()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_tiny_models_output_logits(name):
    spec = MODELS[name]
    shape = SHAPES[spec.rank]
    model = build_model(name, input_shape=shape, n_classes=12, **TINY[name])
    assert model.input_shape == (None, *shape)
    assert model.output_shape == (None, 12)
    x = np.random.default_rng(0).normal(size=(3, *shape)).astype(np.float32)
    y = np.asarray(model(x, training=False))
    assert y.shape == (3, 12) and np.isfinite(y).all()
    # Logits, not probabilities: no softmax at the end.
    assert model.layers[-1].get_config().get("activation") in (None, "linear")
    assert not np.allclose(y.sum(axis=1), 1.0)


def test_conv1d_is_exactly_the_seed_network():
    model = build_model("conv1d", input_shape=(8000, 1), n_classes=12)
    assert count_params(model) == 34_681_708 == model.count_params()
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv1D"]
    assert [c.filters for c in convs] == [32, 32, 64, 64, 128, 128, 128, 256, 256, 256]
    assert all(c.kernel_size == (9,) and c.padding == "same" for c in convs)
    assert [type(layer).__name__ for layer in model.layers[-6:]] == [
        "Dropout", "Flatten", "Dense", "BatchNormalization", "ReLU", "Dense"]
    assert model.get_layer("dropout").rate == 0.3
    assert model.get_layer("dense").units == 256


def test_skip_variant_concatenates_block_input_before_pooling():
    model = build_model("conv1d_skip", input_shape=(8000, 1), n_classes=12, width=0.125)
    # block 1: 4 filters + 1 input channel; block 2: 8 filters + 5 channels coming in
    assert model.get_layer("skip1").output.shape[-1] == 4 + 1
    assert model.get_layer("pool1").output.shape[1:] == (4000, 5)
    assert model.get_layer("skip2").output.shape[-1] == 8 + 5
    model2 = build_model("spec2d_skip", input_shape=(32, 32, 1), n_classes=12, width=0.125)
    assert model2.get_layer("skip1").output.shape[-1] == 4 + 1
    assert model2.get_layer("pool4").output.shape[1:3] == (2, 2)


def _seed_spec2d_macs_by_hand() -> int:
    """spec2d on (130, 126, 1): 3x3 same convs at the pooled sizes, then Dense 256 and Dense 12."""
    sizes = [(130, 126), (65, 63), (32, 31), (16, 15)]
    blocks = [(32, 32), (64, 64), (128, 128, 128), (256, 256, 256)]
    macs, c_in = 0, 1
    for (h, w), filters in zip(sizes, blocks):
        for f in filters:
            macs += h * w * 9 * c_in * f
            c_in = f
    flat = 8 * 7 * 256
    return macs + flat * 256 + 256 * 12


def test_spec2d_macs_match_hand_count_and_edge_budget():
    spec2d = build_model("spec2d", input_shape=SEED_SPEC_SHAPE, n_classes=12)
    seed_macs = count_macs(spec2d)
    assert seed_macs == _seed_spec2d_macs_by_hand()
    assert 1.0e9 < seed_macs < 1.2e9  # "about 1.1 G per inference"
    dscnn = build_model("dscnn", input_shape=(40, 126, 1), n_classes=12)
    assert count_macs(dscnn) <= 0.02 * seed_macs  # the edge budget: <= 2% of spec2d
    bcres = build_model("bcresnet", input_shape=(40, 126, 1), n_classes=12)
    assert count_macs(bcres) <= 0.02 * seed_macs


def test_mac_count_of_a_hand_computed_model():
    layers = keras.layers
    inp = keras.Input((10, 8, 2))
    x = layers.Conv2D(4, 3, padding="same")(inp)                       # 10*8 * 9*2*4   = 5760
    x = layers.Conv2D(6, (3, 1), strides=(2, 2), padding="valid")(x)   # 4*4 * 3*4*6    = 1152
    x = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)  # 4*4 * 9*6*2 = 1728
    x = layers.BatchNormalization()(x)                                 # 0
    x = layers.SeparableConv2D(5, 3, padding="valid")(x)               # 2*2*(9*12 + 12*5) = 672
    x = layers.GlobalAveragePooling2D()(x)                             # 0
    out = layers.Dense(3)(x)                                           # 5*3 = 15
    model = keras.Model(inp, out)
    assert [row["macs"] for row in mac_table(model)] == [5760, 1152, 1728, 672, 15]
    assert count_macs(model) == 5760 + 1152 + 1728 + 672 + 15

    inp1 = keras.Input((20, 3))
    y = layers.Conv1D(4, 5, padding="same")(inp1)                      # 20 * 5*3*4 = 1200
    y = layers.MaxPooling1D()(y)
    y = layers.Dense(7)(y)                                             # 10 * 4*7 = 280 (Dense on 2-D input)
    assert count_macs(keras.Model(inp1, y)) == 1200 + 280


def test_format_macs():
    assert format_macs(1_105_371_008) == "1.11 G"
    assert format_macs(18_586_752) == "18.6 M"
    assert format_macs(999) == "999"


def test_edge_models_use_only_int8_friendly_layers():
    allowed = {"InputLayer", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU", "AveragePooling2D",
               "MaxPooling2D", "GlobalAveragePooling2D", "Dropout", "Dense", "Add"}
    for name in ("dscnn", "bcresnet"):
        model = build_model(name, input_shape=(40, 126, 1), n_classes=12)
        kinds = {type(layer).__name__ for layer in model.layers}
        assert kinds <= allowed, (name, kinds - allowed)
        for layer in model.layers:
            act = layer.get_config().get("activation")
            assert act in (None, "linear", "relu"), (name, layer.name, act)
            if type(layer).__name__ == "BatchNormalization":
                # 0.99 leaves the moving variance at its init for hundreds of steps (see nets.BN_MOMENTUM)
                assert layer.momentum == 0.9, layer.name


def test_edge_model_converts_to_full_int8_tflite(tmp_path):
    """The tiny dscnn and bcresnet convert with int8 input/output and only int8/int32 tensors inside."""
    pytest.importorskip("tensorflow")
    from kws.convert.export import convert
    from kws.convert.representative import RepresentativeSet
    from kws.runtime.interpreter import TfliteModel

    rng = np.random.default_rng(0)
    for name in ("dscnn", "bcresnet"):
        model = build_model(name, input_shape=(40, 126, 1), n_classes=12, **TINY[name])
        rep = RepresentativeSet.of_features(rng.normal(-3.0, 2.0, (8, 40, 126, 1)))
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(convert(model, "int8", rep))
        tflite = TfliteModel(path)
        assert tflite.input_quant.dtype == "int8" and tflite.output_quant.dtype == "int8"
        dtypes = {str(np.dtype(t["dtype"])) for t in tflite.tensor_details()}
        assert dtypes <= {"int8", "int32"}, (name, dtypes)


def test_dscnn_downsample_blocks_halve_the_grid_and_double_channels():
    plain = build_model("dscnn", input_shape=(40, 126, 1), n_classes=12, width=16, depth=3, stride=3,
                        freq_stride=2)
    down = build_model("dscnn", input_shape=(40, 126, 1), n_classes=12, width=16, depth=3, stride=3,
                       freq_stride=2, downsample=(2,))
    assert plain.get_layer("avg_pool").input.shape[1:] == (20, 42, 16)
    assert down.get_layer("ds1_pw_relu").output.shape[1:] == (20, 42, 16)
    assert down.get_layer("ds2_pw_relu").output.shape[1:] == (10, 21, 32)
    assert down.get_layer("avg_pool").input.shape[1:] == (10, 21, 32)
    # block 2 by hand: depthwise 10*21*9*16, pointwise 10*21*16*32
    block2 = sum(r["macs"] for r in mac_table(down) if r["layer"].startswith("ds2_"))
    assert block2 == 10 * 21 * 9 * 16 + 10 * 21 * 16 * 32
    with pytest.raises(KwsError, match="--downsample 4: expected block numbers between 1 and --depth 3"):
        resolve_knobs("dscnn", {"depth": 3, "downsample": (4,)})


def test_unknown_model_lists_valid_names():
    with pytest.raises(KwsError) as err:
        build_model("resnet9000", input_shape=(40, 126, 1), n_classes=12)
    msg = str(err.value)
    assert "resnet9000" in msg
    for name in MODELS:
        assert name in msg


def test_bad_knobs_and_shapes_are_refused():
    with pytest.raises(KwsError, match="has no knob.*depth.*its knobs are: width, dropout"):
        resolve_knobs("conv1d", {"depth": 3})
    with pytest.raises(KwsError, match="--width 2.5 for model dscnn: expected a positive integer"):
        resolve_knobs("dscnn", {"width": 2.5})
    with pytest.raises(KwsError, match="--depth 0"):
        resolve_knobs("dscnn", {"depth": 0})
    with pytest.raises(KwsError, match="--dropout"):
        resolve_knobs("spec2d", {"dropout": 1.5})
    assert resolve_knobs("dscnn", {"width": 32.0, "depth": None})["width"] == 32
    with pytest.raises(KwsError, match=r"conv1d takes a \(samples, 1\) waveform input.*--features waveform"):
        build_model("conv1d", input_shape=(130, 126, 1), n_classes=12)
    with pytest.raises(KwsError, match=r"dscnn takes a \(bins, frames, 1\) spectrogram.*--features log-mel"):
        build_model("dscnn", input_shape=(8000, 1), n_classes=12)
