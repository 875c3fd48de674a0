"""Stochastic weight averaging (``kws-train --swa-epochs``): the schedule, the weight average and
the batch-norm statistics against numpy, and a run end to end."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

keras = pytest.importorskip("keras")

from kws.runtime.meta import ModelMeta  # noqa: E402
from kws.train import trainer  # noqa: E402
from kws.train.swa import (EpochLrSchedule, apply_average, batch_norm_layers, make_weight_average,  # noqa: E402
                           recompute_batch_norm)


def test_schedule_without_averaging_is_the_plain_cosine():
    schedule = EpochLrSchedule("cosine", 3e-3, 40)
    for epoch in range(40):   # the formula kws-train used before --swa-epochs, bit for bit
        assert schedule(epoch) == float(3e-3 * 0.5 * (1.0 + math.cos(math.pi * epoch / 40)))
    assert EpochLrSchedule("constant", 1e-3, 5)(4) == 1e-3


def test_schedule_decays_to_the_averaging_rate_and_holds_it():
    schedule = EpochLrSchedule("cosine", 3e-3, 40, swa_epochs=10, swa_lr=3e-4)
    rates = [schedule(e) for e in range(40)]
    assert rates[0] == pytest.approx(3e-3)
    assert all(a > b for a, b in zip(rates[:30], rates[1:30]))          # decreasing over the first 30
    assert rates[29] > 3e-4 and rates[29] == pytest.approx(3e-4 + 2.7e-3 * 0.5 * (1 + math.cos(math.pi * 29 / 30)))
    assert rates[30:] == [3e-4] * 10
    constant = EpochLrSchedule("constant", 1e-3, 6, swa_epochs=2, swa_lr=5e-4)
    assert [constant(e) for e in range(6)] == [1e-3] * 4 + [5e-4] * 2


def _bn_model(seed=0):
    keras.utils.set_random_seed(seed)
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.BatchNormalization()])
    x = keras.Input((5,))
    h = keras.layers.Dense(3)(x)
    y = keras.layers.BatchNormalization(momentum=0.9)(inner(h))
    return keras.Model(x, y), inner


def test_batch_norm_layers_finds_nested_ones():
    model, inner = _bn_model()
    found = batch_norm_layers(model)
    assert len(found) == 2 and inner.layers[-1] in found
    assert batch_norm_layers(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])) == []


def test_recompute_batch_norm_is_the_mean_of_the_batch_statistics():
    model, inner = _bn_model()
    rng = np.random.default_rng(1)
    batches = [(rng.normal(i, 1 + i, size=(16, 5)).astype(np.float32), None) for i in range(4)]
    first_bn = inner.layers[-1]
    # Direct reference: the first batch-norm's input is a fixed function of x (no batch-norm before it).
    pre = keras.Model(model.input, inner.layers[0](model.layers[1](model.input)))
    acts = [keras.ops.convert_to_numpy(pre(x)).astype(np.float64) for x, _ in batches]
    n = recompute_batch_norm(model, batches, max_batches=3)
    assert n == 3
    want_mean = np.mean([a.mean(axis=0) for a in acts[:3]], axis=0)
    want_var = np.mean([a.var(axis=0) for a in acts[:3]], axis=0)
    np.testing.assert_allclose(first_bn.moving_mean.numpy(), want_mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first_bn.moving_variance.numpy(), want_var, rtol=1e-4, atol=1e-5)
    assert sorted(layer.momentum for layer in batch_norm_layers(model)) == [0.9, 0.99]   # restored
    assert recompute_batch_norm(keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)]), batches) == 0


def _logs(loss):
    return {"loss": loss}


def test_weight_average_is_the_mean_of_the_averaged_epochs():
    model, _ = _bn_model()
    averager = make_weight_average(start_epoch=2)
    averager.set_model(model)
    snapshots = []
    for epoch, loss in enumerate([1.0, 1.0, 0.5, float("nan"), 0.4]):
        for variable in model.trainable_weights:
            variable.assign(np.full(variable.shape, epoch + 1.0, dtype=np.float32))
        if epoch >= 2 and math.isfinite(loss):
            snapshots.append(epoch + 1.0)
        averager.on_epoch_end(epoch, _logs(loss))
    assert averager.count == 2 and snapshots == [3.0, 5.0]
    for mean in averager.average():
        np.testing.assert_array_equal(mean, 4.0)
    rng = np.random.default_rng(0)
    batches = [(rng.normal(size=(8, 5)).astype(np.float32), None)]
    info = apply_average(model, averager, batches)
    assert info == {"averaged_epochs": 2, "bn_batches": 1}
    for variable in model.trainable_weights:
        np.testing.assert_array_equal(variable.numpy(), 4.0)
    with pytest.raises(ValueError, match="no epoch was averaged"):
        make_weight_average(start_epoch=0).average()


def test_kws_train_with_weight_averaging(tmp_path, synth_npz, capsys):
    out_dir = tmp_path / "swa"
    code = trainer.main([str(a) for a in (
        "--data", synth_npz, "--model", "dscnn", "--width", 8, "--depth", 2, "--epochs", 4, "--steps-per-epoch", 2,
        "--lr", 1e-3, "--lr-schedule", "cosine", "--swa-epochs", 2, "--out", out_dir)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "weight averaging: the last 2 epoch(s) averaged at lr 1.00e-04; batch-norm statistics recomputed on " \
           "2 training batch(es)" in out
    assert "model.keras: the average of the last 2 epoch(s); test accuracy" in out
    history = json.loads((out_dir / "history.json").read_text())
    assert history["lr"][2:] == pytest.approx([1e-4, 1e-4]) and history["lr"][0] == pytest.approx(1e-3)
    training = ModelMeta.load(out_dir / "model.json").extra["training"]
    assert training["swa"] == {"epochs": 2, "lr": pytest.approx(1e-4), "averaged_epochs": 2, "bn_batches": 2}
    assert training["swa_epochs"] == 2 and training["best_val_loss"] is None and training["status"] == "finished"
    report = json.loads((out_dir / "eval.json").read_text())
    assert report["checkpoint"]["swa"]["averaged_epochs"] == 2 and report["checkpoint"]["val_loss"] is None
    assert keras.models.load_model(out_dir / "model.keras", compile=False).output_shape[-1] == 12


@pytest.mark.parametrize("argv, message", [
    (["--swa-epochs", "1"], "--swa-epochs 1: expected at least 2 and fewer than --epochs 5 (two averaged"),
    (["--swa-epochs", "5"], "--swa-epochs 5: expected at least 2 and fewer than --epochs 5"),
    (["--swa-lr", "1e-4"], "--swa-lr 0.0001: needs --swa-epochs K"),
    (["--swa-epochs", "2", "--swa-lr", "0"], "--swa-lr 0.0: expected a positive number"),
    (["--swa-epochs", "2", "--swa-lr", "nan"], "--swa-lr nan: expected a positive number"),
    (["--swa-epochs", "2", "--lr-schedule", "plateau"], "--swa-epochs with --lr-schedule plateau"),
    (["--swa-epochs", "2", "--early-stopping", "2"], "--swa-epochs with --early-stopping"),
])
def test_bad_weight_averaging_flags_one_line_exit_2(tmp_path, synth_npz, capsys, argv, message):
    out_dir = tmp_path / "out"
    code = trainer.main(["--data", str(synth_npz), "--model", "dscnn", "--epochs", "5", *argv, "--out", str(out_dir)])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("kws-train: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not out_dir.exists()
