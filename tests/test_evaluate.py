"""kws-eval: accuracy, per-class accuracy and confusion of a .tflite model, runtime only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kws.runtime.evaluate import (confusion_matrix, format_confusion, load_eval_npz,  # noqa: E402
                                  main, per_class_accuracy)
from kws.runtime.features import FeatureConfig  # noqa: E402
from kws.runtime.labels import SEED_LABELS  # noqa: E402
from kws.runtime.meta import ModelMeta  # noqa: E402
from kws.runtime.model import KwsModel  # noqa: E402

FEATURES = FeatureConfig(kind="stft", n_fft=256, hop_samples=128, mel_bands=16, log=True)


def _generated(clips_per_label=6, labels=SEED_LABELS, seed=1) -> dict:
    from kws.train.synth import synthetic_dataset

    return synthetic_dataset(clips_per_label=clips_per_label, n_speakers=4, seed=seed, labels=labels)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """model_float32 + model_int8 .tflite with sidecars, from a small Keras model trained briefly."""
    import keras

    from kws.convert.export import Source, export
    from kws.runtime.features import compute_features

    root = tmp_path_factory.mktemp("eval")
    data = _generated(clips_per_label=12, seed=5)
    del data["speaker"]
    npz = root / "train.npz"
    np.savez(npz, **data)
    keras.utils.set_random_seed(0)
    layers = keras.layers
    model = keras.Sequential([keras.Input(FEATURES.input_shape), layers.Conv2D(8, 3, activation="relu"),
                              layers.GlobalMaxPooling2D(), layers.Dense(len(SEED_LABELS))])
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    labels = np.array([SEED_LABELS.index(x) for x in data["label_vals"][:, 0]])
    model.fit(compute_features(data["wav_vals"], FEATURES), labels, epochs=3, verbose=0)
    meta = ModelMeta(SEED_LABELS, FEATURES, {"split": {"seed": 0, "val_fraction": 0.1, "test_fraction": 0.2}})
    out = root / "models"
    export(Source(model, meta, None), data_path=npz, out_dir=out, kinds=["float32", "int8"], rep_samples=24)
    return out


@pytest.fixture(scope="module")
def eval_npz(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("evaldata") / "eval.npz"
    data = _generated()
    data["wav_vals"] = np.round(data["wav_vals"] * 32767).astype(np.int16)  # int16 PCM, like the real set
    np.savez(path, **data)
    return path


def _expected(model_path: Path, npz: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(npz) as f:
        wav, names = f["wav_vals"], f["label_vals"][:, 0]
    model = KwsModel(model_path)
    audio = wav.astype(np.float32) / 32768 if wav.dtype == np.int16 else wav
    pred = model.logits(audio).argmax(axis=1)
    true = np.array([model.labels.index(x) for x in names])
    return true, pred


@pytest.mark.parametrize("kind", ["float32", "int8"])
def test_json_output(models_dir, eval_npz, capsys, kind):
    model = models_dir / f"model_{kind}.tflite"
    assert main(["--model", str(model), "--data", str(eval_npz), "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one JSON object on one line
    result = json.loads(out)
    assert {"accuracy", "n", "per_class", "confusion", "labels", "model", "backend"} <= set(result)
    true, pred = _expected(model, eval_npz)
    assert result["n"] == len(true) == 72
    assert result["accuracy"] == pytest.approx(float(np.mean(true == pred)))
    cm = np.array(result["confusion"])
    np.testing.assert_array_equal(cm, confusion_matrix(true, pred, n_classes=len(SEED_LABELS)))
    assert sum(v["n"] for v in result["per_class"].values()) == 72
    for i, label in enumerate(SEED_LABELS):
        entry = result["per_class"][label]
        assert entry["correct"] == int(np.sum((true == i) & (pred == i)))
        assert entry["accuracy"] == pytest.approx(entry["correct"] / entry["n"])
    assert result["model"] == str(model) and result["quantization"] == kind


def test_text_output(models_dir, eval_npz, capsys):
    assert main(["--model", str(models_dir / "model_int8.tflite"), "--data", str(eval_npz)]) == 0
    out = capsys.readouterr().out
    true, pred = _expected(models_dir / "model_int8.tflite", eval_npz)
    correct = int(np.sum(true == pred))
    assert f"accuracy: {100 * correct / 72:.2f}% ({correct}/72)" in out
    assert "all clips (kws-eval cannot know the training split" in out
    assert "     n  correct  accuracy" in out
    assert "confusion (rows: true class, columns: predicted)" in out
    rows = [ln for ln in out.splitlines() if ln.startswith("yes ")]
    assert len(rows) == 2  # per-class row and confusion row


def test_int16_and_float32_npz_agree(models_dir, eval_npz, tmp_path, capsys):
    with np.load(eval_npz) as f:
        data = {k: f[k] for k in f.files}
    data["wav_vals"] = data["wav_vals"].astype(np.float32) / 32768
    as_float = tmp_path / "float.npz"
    np.savez(as_float, **data)
    model = str(models_dir / "model_float32.tflite")
    main(["--model", model, "--data", str(eval_npz), "--json"])
    a = json.loads(capsys.readouterr().out)
    main(["--model", model, "--data", str(as_float), "--json"])
    b = json.loads(capsys.readouterr().out)
    assert a["confusion"] == b["confusion"]
    # (N, 8000, 1), the seed tutorial's Conv1D input shape, reads as kws-train reads it
    data["wav_vals"] = data["wav_vals"][..., None]
    np.savez(tmp_path / "channel.npz", **data)
    main(["--model", model, "--data", str(tmp_path / "channel.npz"), "--json"])
    assert json.loads(capsys.readouterr().out)["confusion"] == a["confusion"]


def test_default_model_is_the_shipped_one(models_dir, eval_npz, monkeypatch, capsys, tmp_path):
    import kws.models

    monkeypatch.setattr(kws.models, "MODELS_DIR", models_dir)
    assert main(["--data", str(eval_npz), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == str(models_dir / "model_int8.tflite")
    monkeypatch.setattr(kws.models, "MODELS_DIR", tmp_path)
    assert main(["--data", str(eval_npz)]) == 2
    assert "no shipped default model" in capsys.readouterr().err


def test_split_test_uses_the_npz_split_array(models_dir, eval_npz, tmp_path, capsys):
    model = str(models_dir / "model_float32.tflite")
    assert main(["--model", model, "--data", str(eval_npz), "--split", "test"]) == 2
    assert "--split test needs a 'split' array" in capsys.readouterr().err
    with np.load(eval_npz) as f:
        data = {k: f[k] for k in f.files}
    data["split"] = np.where(np.arange(72) % 4 == 0, "testing", "train")
    npz = tmp_path / "split.npz"
    np.savez(npz, **data)
    assert main(["--model", model, "--data", str(npz), "--split", "test", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 18


def test_labels_are_mapped_by_name(models_dir, tmp_path, capsys):
    """An npz with a subset of the labels, in another order, maps onto the model's indices."""
    data = _generated(clips_per_label=2, labels=("silence", "go", "yes"))
    npz = tmp_path / "subset.npz"
    np.savez(npz, **data)
    model = models_dir / "model_float32.tflite"
    assert main(["--model", str(model), "--data", str(npz), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    true, pred = _expected(model, npz)
    assert result["accuracy"] == pytest.approx(float(np.mean(true == pred)))
    assert result["per_class"]["go"]["n"] == 2 and result["per_class"]["no"]["n"] == 0
    assert result["per_class"]["no"]["accuracy"] is None


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------
def _run_err(args, capsys) -> tuple[int, str]:
    rc = main(args)
    err = capsys.readouterr().err
    return rc, err


def test_unknown_label_names_are_named(models_dir, tmp_path, capsys):
    data = _generated(clips_per_label=1)
    data["label_vals"][:3, 0] = ["banana", "banana", "cherry"]
    npz = tmp_path / "bad.npz"
    np.savez(npz, **data)
    rc, err = _run_err(["--model", str(models_dir / "model_float32.tflite"), "--data", str(npz)], capsys)
    assert rc == 2 and "label(s) ['banana', 'cherry'] are not among model_float32.tflite's labels" in err


def test_window_and_rate_mismatch_are_refused(models_dir, tmp_path, capsys):
    model = str(models_dir / "model_float32.tflite")
    data = _generated(clips_per_label=1)
    short = dict(data, wav_vals=data["wav_vals"][:, :4000])
    np.savez(tmp_path / "short.npz", **short)
    rc, err = _run_err(["--model", model, "--data", str(tmp_path / "short.npz")], capsys)
    assert rc == 2 and "clips of 4000 samples, but model_float32.tflite expects windows of 8000" in err
    np.savez(tmp_path / "rate.npz", **data, sample_rate_hz=np.int32(16000))
    rc, err = _run_err(["--model", model, "--data", str(tmp_path / "rate.npz")], capsys)
    assert rc == 2 and "sample_rate_hz=16000, but model_float32.tflite expects 8000 Hz" in err


def test_bad_npz_files(models_dir, tmp_path, capsys):
    model = str(models_dir / "model_float32.tflite")
    rc, err = _run_err(["--model", model, "--data", str(tmp_path / "none.npz")], capsys)
    assert rc == 2 and "npz file not found" in err
    np.savez(tmp_path / "nolabels.npz", wav_vals=np.zeros((2, 8000), np.float32))
    rc, err = _run_err(["--model", model, "--data", str(tmp_path / "nolabels.npz")], capsys)
    assert rc == 2 and "missing array(s) ['label_vals']" in err
    np.savez(tmp_path / "pickled.npz", wav_vals=np.zeros((2, 8000), np.float32),
             label_vals=np.array([["yes"], ["no"]], dtype=object))
    rc, err = _run_err(["--model", model, "--data", str(tmp_path / "pickled.npz")], capsys)
    assert rc == 2 and "cannot read without pickles" in err
    np.savez(tmp_path / "mismatch.npz", wav_vals=np.zeros((3, 8000), np.float32),
             label_vals=np.array([["yes"], ["no"]]))
    rc, err = _run_err(["--model", model, "--data", str(tmp_path / "mismatch.npz")], capsys)
    assert rc == 2 and "label_vals has shape (2, 1); expected (3,) or (3, 1)" in err
    (tmp_path / "text.npz").write_text("hello")
    rc, err = _run_err(["--model", model, "--data", str(tmp_path / "text.npz")], capsys)
    assert rc == 2 and "not an .npz file (expected a zip archive" in err and "pickle" not in err
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04" + b"\0" * 40)  # looks like a zip, is not one
    rc, err = _run_err(["--model", model, "--data", str(tmp_path / "broken.npz")], capsys)
    assert rc == 2 and ("not a readable .npz file" in err or "not an .npz file" in err)
    rc, err = _run_err(["--model", str(tmp_path / "missing.tflite"), "--data", str(tmp_path / "x.npz")], capsys)
    assert rc == 2 and "missing.tflite: model file not found" in err and "JSON" not in err
    (tmp_path / "dir.tflite").mkdir()
    rc, err = _run_err(["--model", str(tmp_path / "dir.tflite"), "--data", str(tmp_path / "x.npz")], capsys)
    assert rc == 2 and "dir.tflite: is a directory; expected a .tflite model file" in err
    (tmp_path / "dir.npz").mkdir()
    rc, err = _run_err(["--model", model, "--data", str(tmp_path / "dir.npz")], capsys)
    assert rc == 2 and "dir.npz: is a directory; expected an .npz file" in err
    nan = np.zeros((3, 8000), np.float32)
    nan[1, 5] = np.nan
    np.savez(tmp_path / "nan.npz", wav_vals=nan, label_vals=np.array([["yes"], ["no"], ["up"]]))
    rc, err = _run_err(["--model", model, "--data", str(tmp_path / "nan.npz")], capsys)
    assert rc == 2 and "1 clip(s) of wav_vals hold NaN or infinite samples (first: clip 1)" in err
    np.savez(tmp_path / "stereo.npz", wav_vals=np.zeros((2, 8000, 2), np.float32), label_vals=np.array([["yes"], ["no"]]))
    rc, err = _run_err(["--model", model, "--data", str(tmp_path / "stereo.npz")], capsys)
    assert rc == 2 and "wav_vals has shape (2, 8000, 2); expected (N, window_samples) or (N, window_samples, 1)" in err
    loud = np.full((2, 8000), 3000.0, np.float32)
    np.savez(tmp_path / "loud.npz", wav_vals=loud, label_vals=np.array([["yes"], ["no"]]))
    rc, err = _run_err(["--model", model, "--data", str(tmp_path / "loud.npz")], capsys)
    assert rc == 2 and "wav_vals is float32 with samples up to 3000; expected float audio in [-1, 1]" in err


def test_metric_helpers():
    cm = confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), n_classes=4)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    per = per_class_accuracy(cm, ["a", "b", "c", "d"])
    assert per["a"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert per["d"]["accuracy"] is None
    table = format_confusion(cm, ["a", "b", "c", "d"])
    assert len(table.splitlines()) == 4  # header + 3 non-empty rows


def test_load_eval_npz(eval_npz):
    data = load_eval_npz(eval_npz)
    assert data.wav.dtype == np.int16 and data.label_names.shape == (72,)
    assert data.sample_rate_hz is None and data.split is None
    audio = data.audio(np.array([0, 1]))
    assert audio.dtype == np.float32 and audio.shape == (2, 8000) and np.abs(audio).max() <= 1.0


def test_runs_without_tensorflow(models_dir, eval_npz):
    """kws-eval needs only numpy and the interpreter: block TF/Keras/sklearn/scipy/librosa."""
    code = f"""
import importlib.abc, sys, json
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras', 'tf_keras', 'sklearn', 'scipy', 'librosa', 'matplotlib'):
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Blocker())
from kws.runtime.evaluate import main
sys.exit(main(['--model', {str(models_dir / 'model_int8.tflite')!r}, '--data', {str(eval_npz)!r}, '--json']))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["n"] == 72
