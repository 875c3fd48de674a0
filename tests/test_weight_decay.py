"""Decoupled weight decay (``kws-train --weight-decay``): what is decayed and by how much, checked
against the closed form, the flag's refusals, and a run end to end."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

keras = pytest.importorskip("keras")

from kws.runtime.meta import ModelMeta  # noqa: E402
from kws.train import callbacks, trainer  # noqa: E402
from kws.train.nets import build_model  # noqa: E402


def _tiny_dscnn():
    return build_model("dscnn", input_shape=(16, 10, 1), n_classes=4, width=4, depth=1)


def test_plain_adam_without_weight_decay():
    assert type(callbacks.make_optimizer(lr=1e-3)).__name__ == "Adam"
    assert type(callbacks.make_optimizer(lr=1e-3, weight_decay=0.0)).__name__ == "Adam"


@pytest.mark.parametrize("lr, weight_decay", [(1e-2, 0.5), (3e-3, 0.05)])
def test_one_step_shrinks_kernels_only(lr, weight_decay):
    """With zero gradients Adam moves nothing (its moments stay 0), so one step is the decay alone:
    each kernel is multiplied by 1 - lr * wd; biases and batch-norm scales and offsets stay."""
    model = _tiny_dscnn()
    optimizer = callbacks.make_optimizer(lr=lr, weight_decay=weight_decay)
    variables = model.trainable_variables
    rng = np.random.default_rng(0)
    for v in variables:    # batch-norm's gamma starts at 1 and beta at 0: move them off those
        v.assign(rng.normal(size=v.shape).astype("float32"))
    before = [np.array(v.numpy()) for v in variables]
    optimizer.apply_gradients([(keras.ops.zeros_like(v), v) for v in variables])
    kinds = set()
    for v, old in zip(variables, before):
        kind = next((k for k in callbacks.NOT_DECAYED if k in v.path), "kernel")
        kinds.add(kind)
        expected = old * (1.0 - lr * weight_decay) if kind == "kernel" else old
        np.testing.assert_allclose(v.numpy(), expected, rtol=1e-6, atol=1e-7, err_msg=v.path)
    assert kinds == {"kernel", "bias", "gamma", "beta"}, kinds   # the test saw every kind


@pytest.mark.parametrize("value, message", [
    ("-0.01", "--weight-decay -0.01: expected a number in [0, 1) (0 = plain Adam)"),
    ("1", "--weight-decay 1.0: expected a number in [0, 1)"),
    ("nan", "--weight-decay nan: expected a number in [0, 1)"),
])
def test_bad_weight_decay_one_line_exit_2(tmp_path, synth_npz, capsys, value, message):
    out_dir = tmp_path / "out"
    code = trainer.main(["--data", str(synth_npz), "--model", "dscnn", "--weight-decay", value,
                         "--out", str(out_dir)])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("kws-train: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not out_dir.exists()


def test_kws_train_with_weight_decay(tmp_path, synth_npz, capsys):
    out_dir = tmp_path / "wd"
    code = trainer.main([str(a) for a in (
        "--data", synth_npz, "--model", "dscnn", "--width", 8, "--depth", 2, "--epochs", 2, "--steps-per-epoch", 2,
        "--lr", 1e-3, "--weight-decay", 0.05, "--out", out_dir)])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert ModelMeta.load(out_dir / "model.json").extra["training"]["weight_decay"] == 0.05
    model = keras.models.load_model(out_dir / "model.keras")
    assert type(model.optimizer).__name__ == "AdamW"
    assert model.optimizer.weight_decay == pytest.approx(0.05)
