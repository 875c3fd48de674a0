"""Distillation (``kws-train --teacher``): soft targets, teacher checks, and kws-train end to end.

Tiny models and generated data (``synth_npz``); nothing here trains for accuracy.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kws.runtime.errors import KwsError  # noqa: E402
from kws.runtime.features import FeatureConfig, compute_features  # noqa: E402
from kws.runtime.meta import ModelMeta  # noqa: E402

keras = pytest.importorskip("keras")

from kws.train import distill, trainer  # noqa: E402
from kws.train.data import load_npz, split_dataset  # noqa: E402
from kws.train.dataset import TrainBatches  # noqa: E402
from kws.train.presets import feature_config  # noqa: E402
from kws.train.nets import build_model  # noqa: E402

from test_train import _train  # noqa: E402

TEACHER_ARGS = ("--model", "dscnn", "--width", 8, "--depth", 2, "--epochs", 1, "--steps-per-epoch", 2,
                "--batch-size", 8, "--lr", 3e-3)


def _softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory, synth_npz):
    """A tiny kws-train run on the synthetic set (split seed 0), to distil from."""
    out = tmp_path_factory.mktemp("teacher") / "run"
    code = trainer.main([str(a) for a in ("--data", synth_npz, *TEACHER_ARGS, "--out", out, "-q")])
    assert code == 0
    return out


def test_mix_targets_is_the_weighted_mean_of_label_and_teacher():
    one_hot = np.eye(3, dtype=np.float32)[[0, 2]]
    soft = np.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]], dtype=np.float32)
    mixed = distill.mix_targets(one_hot, soft, 0.25)
    np.testing.assert_allclose(mixed, [[0.8, 0.125, 0.075], [0.025, 0.025, 0.95]], rtol=1e-6)
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, rtol=1e-6)
    assert mixed.dtype == np.float32
    np.testing.assert_array_equal(distill.mix_targets(one_hot, soft, 1.0), soft)
    with pytest.raises(ValueError, match=r"\(2, 3\) and teacher posteriors \(2, 4\)"):
        distill.mix_targets(one_hot, np.zeros((2, 4), np.float32), 0.5)


def test_teacher_is_the_mean_softmax_of_its_models():
    cfg = feature_config("log-mel")
    keras.utils.set_random_seed(0)
    models = [build_model("dscnn", input_shape=cfg.input_shape, n_classes=12, width=8, depth=2)
              for _ in range(2)]
    x = np.random.default_rng(0).normal(size=(5, *cfg.input_shape)).astype(np.float32)
    expected = np.mean([_softmax(m.predict_on_batch(x)) for m in models], axis=0)
    got = distill.Teacher(models)(x)
    assert got.shape == (5, 12) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError):
        distill.Teacher([])


def test_teacher_answers_worker_threads_at_once():
    """Batches are prepared in worker threads; concurrent calls give the sequential answers
    (Keras's JAX backend frees a model's buffers under a concurrent predict_on_batch)."""
    from concurrent.futures import ThreadPoolExecutor

    cfg = feature_config("log-mel")
    keras.utils.set_random_seed(1)
    teacher = distill.Teacher([build_model("dscnn", input_shape=cfg.input_shape, n_classes=12, width=8, depth=2)
                               for _ in range(2)])
    xs = [np.random.default_rng(i).normal(size=(4, *cfg.input_shape)).astype(np.float32) for i in range(8)]
    expected = [teacher(x) for x in xs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(teacher, xs))
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-7)


def test_train_batches_mix_the_teacher_on_the_features_the_student_sees(synth_npz):
    ds = load_npz(synth_npz)
    split = split_dataset(ds, seed=0)
    cfg = feature_config("log-mel")
    seen = []

    def teacher(x):  # a fixed, non-uniform posterior; records what it was shown
        seen.append(x.copy())
        p = np.arange(1, 13, dtype=np.float32)
        return np.tile(p / p.sum(), (len(x), 1))

    tb = TrainBatches(ds, split.train, features=cfg, batch_size=8, seed=3, teacher=teacher,
                      distill_weight=0.3, balance="weights")
    x, y, w = tb[0]
    idx = tb._order[:8]
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], x)
    np.testing.assert_array_equal(x, compute_features(ds.audio(idx), cfg))
    p = np.arange(1, 13) / 78.0
    expected = 0.3 * np.tile(p, (8, 1))
    expected[np.arange(8), ds.labels[idx]] += 0.7
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    assert w.shape == (8,)


def _meta(labels=("a", "b"), features=FeatureConfig(), split=None, n_clips=10):
    return ModelMeta(tuple(labels), features, {
        "split": split or {"seed": 0, "val_fraction": 0.1, "test_fraction": 0.1},
        "data": {"n_clips": n_clips}})


@pytest.mark.parametrize("meta, message", [
    (_meta(labels=("a", "c")), "its labels ['a', 'c'] differ from the data's ['a', 'b']"),
    (_meta(features=FeatureConfig(n_fft=256)), "front-end differs from the student's: n_fft 256 (student 258)"),
    (_meta(split={"seed": 4, "val_fraction": 0.1, "test_fraction": 0.1}),
     "trained with split seed 4, the student uses 0"),
    (_meta(split={"seed": 0, "val_fraction": 0.2, "test_fraction": 0.1}),
     "trained with split val_fraction 0.2, the student uses 0.1"),
    (_meta(n_clips=11), "trained on 11 clips, the student's data has 10"),
    (_meta(split={"seed": 0, "val_fraction": 0.1, "test_fraction": 0.1, "trained_on": ["train", "val"]}),
     "trained on the val speakers too (split.trained_on ['train', 'val']), which the student holds out"),
])
def test_check_teacher_names_the_difference(meta, message):
    with pytest.raises(KwsError) as info:
        distill.check_teacher(meta, source="T", labels=("a", "b"), features=FeatureConfig(),
                              split={"seed": 0, "val_fraction": 0.1, "test_fraction": 0.1}, n_clips=10)
    assert str(info.value).startswith("--teacher T: ") and message in str(info.value)
    distill.check_teacher(_meta(), source="T", labels=("a", "b"), features=FeatureConfig(),
                          split={"seed": 0, "val_fraction": 0.1, "test_fraction": 0.1}, n_clips=10)


def test_kws_train_distils_and_records_its_teachers(tmp_path, synth_npz, teacher_run, capsys):
    out_dir = tmp_path / "student"
    code, out, err = _train(capsys, "--data", synth_npz, "--model", "dscnn", "--width", 4, "--depth", 1,
                            "--epochs", 1, "--steps-per-epoch", 2, "--batch-size", 8,
                            "--teacher", teacher_run, "--teacher", teacher_run, "--distill-weight", 0.7,
                            "--out", out_dir)
    assert code == 0, err
    assert f"distilling from 2 teacher(s), weight 0.7: {teacher_run} (dscnn, " in out
    training = ModelMeta.load(out_dir / "model.json").extra["training"]
    assert training["status"] == "finished" and training["distill_weight"] == 0.7
    teacher_meta = json.loads((teacher_run / "model.json").read_text())
    assert training["teachers"] == 2 * [{
        "path": str(teacher_run), "model": "dscnn",
        "parameters": teacher_meta["architecture"]["parameters"],
        "test_accuracy": teacher_meta["evaluation"]["accuracy"]}]
    assert (out_dir / "model.keras").is_file() and (out_dir / "eval.json").is_file()


@pytest.mark.parametrize("extra, message", [
    (["--seed", "5"], "trained with split seed 0, the student uses 5; a teacher must share"),
    (["--mel-bands", "20"], "front-end differs from the student's: mel_bands 40 (student 20)"),
    (["--distill-weight", "0"], "--distill-weight 0.0: expected a weight in (0, 1]"),
])
def test_kws_train_refuses_a_bad_teacher_untouched(tmp_path, synth_npz, teacher_run, capsys, extra, message):
    out_dir = tmp_path / "student"
    code, _, err = _train(capsys, "--data", synth_npz, "--model", "dscnn", "--width", 4, "--depth", 1,
                          "--teacher", teacher_run, *extra, "--out", out_dir)
    assert code == 2
    assert err.startswith("kws-train: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1 and not out_dir.exists()


@pytest.mark.parametrize("argv, message", [
    (["--distill-weight", "0.5"], "--distill-weight 0.5: needs --teacher DIR"),
    (["--teacher", "{tmp}/nowhere"], "--teacher {tmp}/nowhere: expected a kws-train output directory"),
])
def test_kws_train_teacher_flags_refused(tmp_path, synth_npz, capsys, argv, message):
    out_dir = tmp_path / "student"
    argv = [a.format(tmp=tmp_path) for a in argv]
    code, _, err = _train(capsys, "--data", synth_npz, "--model", "dscnn", *argv, "--out", out_dir)
    assert code == 2
    assert message.format(tmp=tmp_path) in err, err
    assert len(err.strip().splitlines()) == 1 and not out_dir.exists()


def test_teacher_features_must_fit_its_input(tmp_path, teacher_run):
    """A model.json that lies about the front-end is caught by the model's input shape."""
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.keras").write_bytes((teacher_run / "model.keras").read_bytes())
    meta = ModelMeta.load(teacher_run / "model.json")
    meta = ModelMeta(meta.labels, dataclasses.replace(meta.features, mel_bands=20), meta.extra)
    meta.save(bad / "model.json")
    with pytest.raises(KwsError, match=r"takes input \(40, 126, 1\), but its feature JSON gives \(20, 126, 1\)"):
        distill.load_teachers([bad], labels=meta.labels, features=meta.features, n_clips=meta.extra["data"]["n_clips"],
                              split=meta.extra["split"])
