"""kws-export: files, sidecar JSON, representative set, overwrite refusal and bad input."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kws.convert.export import main  # noqa: E402
from kws.convert.quantize_check import check_full_integer, ops_in_converter_error  # noqa: E402
from kws.convert.representative import build_representative_set, stratified_indices  # noqa: E402
from kws.runtime.errors import KwsError, ModelError  # noqa: E402
from kws.runtime.features import FeatureConfig, compute_features  # noqa: E402
from kws.runtime.interpreter import TfliteModel  # noqa: E402
from kws.runtime.labels import SEED_LABELS  # noqa: E402
from kws.runtime.meta import ModelMeta, file_sha256  # noqa: E402
from kws.runtime.model import KwsModel  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FEATURES = FeatureConfig(kind="stft", n_fft=256, hop_samples=128, mel_bands=16, log=True)  # (16, 63, 1)
SPLIT = {"seed": 0, "val_fraction": 0.1, "test_fraction": 0.2}


def _generated(clips_per_label=16, labels=SEED_LABELS, seed=0) -> dict:
    from kws.train.synth import synthetic_dataset

    data = synthetic_dataset(clips_per_label=clips_per_label, n_speakers=6, seed=seed, labels=labels)
    del data["speaker"]
    return data


def _tiny_model(input_shape, n_classes=len(SEED_LABELS), *, extra_layer=None):
    import keras

    layers = keras.layers
    inputs = keras.Input(input_shape)
    x = inputs
    if extra_layer is not None:
        x = extra_layer(x)
    conv = layers.Conv1D if len(input_shape) == 2 else layers.Conv2D
    x = conv(8, 3, strides=2, activation="relu")(x)
    x = (layers.GlobalMaxPooling1D if len(input_shape) == 2 else layers.GlobalMaxPooling2D)()(x)
    return keras.Model(inputs, layers.Dense(n_classes)(x))


def _write_run(out: Path, model, features: FeatureConfig, *, extra=None, fit_npz=None) -> Path:
    """A kws-train style folder; optionally fit the model 2 epochs on ``fit_npz`` first."""
    if fit_npz is not None:
        import keras

        from kws.train.data import load_npz

        ds = load_npz(fit_npz)
        model.compile(optimizer=keras.optimizers.Adam(3e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(compute_features(ds.audio(np.arange(len(ds))), features), ds.labels, epochs=2,
                  batch_size=32, verbose=0)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    ModelMeta(SEED_LABELS, features, {"architecture": {"name": "tiny"}, "split": dict(SPLIT),
                                      "detection": {"threshold": 0.5}, **(extra or {})}).save(out / "model.json")
    return out


@pytest.fixture(scope="module")
def gen_npz(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "gen.npz"
    np.savez(path, **_generated())
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, gen_npz) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    return _write_run(tmp_path_factory.mktemp("run") / "run", _tiny_model(FEATURES.input_shape), FEATURES,
                      fit_npz=gen_npz)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, run_dir, gen_npz):
    out = tmp_path_factory.mktemp("export") / "models"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["--model", str(run_dir), "--data", str(gen_npz), "--int8", "--dynamic",
                   "--rep-samples", "60", "--out", str(out), "-q"])
    assert rc == 0
    return out, buf.getvalue()


# ---------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------
def test_writes_three_models_with_sidecars(exported, run_dir):
    out, stdout = exported
    for kind in ("float32", "dynamic", "int8"):
        path = out / f"model_{kind}.tflite"
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["format"] == "kws-model/1"
        assert meta["labels"] == list(SEED_LABELS)
        assert meta["features"] == FEATURES.to_dict()
        assert meta["features"]["sample_rate_hz"] == 8000 and meta["features"]["window_samples"] == 8000
        assert meta["architecture"] == {"name": "tiny"}
        assert meta["detection"] == {"threshold": 0.5}
        assert meta["sha256"] == file_sha256(path)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["exported_utc"])
        assert meta["source_model"] == str(run_dir / "model.keras")
        assert meta["split"]["seed"] == 0 and meta["split"]["test_fraction"] == 0.2
        assert meta["split"]["by"] == "stratified" and meta["split"]["sizes"]["test"] > 0
        assert meta["parity"]["n"] == meta["split"]["sizes"]["test"]
        quant = meta["quantization"]
        assert quant["type"] == kind
        interp = TfliteModel(path)
        assert quant["input"] == interp.input_quant.to_dict()
        assert quant["output"] == interp.output_quant.to_dict()
        KwsModel(path)  # JSON and model agree
    int8 = json.loads((out / "model_int8.json").read_text())["quantization"]
    assert int8["input"]["dtype"] == "int8" and int8["output"]["dtype"] == "int8"
    assert int8["input"]["scale"] > 0 and int8["output"]["scale"] > 0
    assert int8["representative"]["n"] == 60 and int8["representative"]["split"] == "train"
    assert all(v > 0 for v in int8["representative"]["per_class"].values())
    check_full_integer(out / "model_int8.tflite")
    f32 = json.loads((out / "model_float32.json").read_text())["quantization"]
    assert f32["input"]["dtype"] == "float32" and f32["input"]["scale"] == 0.0
    # What was used is printed, and the parity table.
    assert "representative set: 60 clips from the training split (yes " in stdout
    assert "| int8 (`model_int8.tflite`) |" in stdout
    assert (out / "parity.json").is_file() and (out / "parity.md").is_file()


def test_representative_set_comes_from_training_split(gen_npz):
    from kws.train.data import load_npz, split_dataset

    ds = load_npz(gen_npz)
    split = split_dataset(ds, **SPLIT)
    rep = build_representative_set(ds.audio, ds.labels, split.train, label_names=SEED_LABELS,
                                   config=FEATURES, n_samples=48, seed=3)
    assert len(rep) == 48 and set(rep.indices) <= set(split.train.tolist())
    assert not set(rep.indices) & set(split.test.tolist())
    assert rep.missing == () and min(rep.counts.values()) >= 2
    np.testing.assert_array_equal(rep.features, compute_features(ds.audio(rep.indices), FEATURES))
    batches = list(rep.generator())
    assert len(batches) == 48 and batches[0][0].shape == (1, *FEATURES.input_shape)


def test_stratified_indices_keeps_rare_classes():
    labels = np.array([0] * 1000 + [1] * 20 + [2] * 5)
    pool = np.arange(len(labels))
    idx = stratified_indices(labels, pool, n_samples=60, n_classes=4, seed=0)
    counts = np.bincount(labels[idx], minlength=4)
    assert len(idx) == 60 and counts[3] == 0
    assert counts[2] == 5 and counts[1] >= 10  # floor of 60 // (2 * 3) = 10 per present class
    assert counts[0] > counts[1]  # the rest in proportion
    np.testing.assert_array_equal(idx, stratified_indices(labels, pool, n_samples=60, n_classes=4, seed=0))
    assert len(stratified_indices(labels, pool[:30], n_samples=60, n_classes=4)) == 30
    with pytest.raises(KwsError, match="--rep-samples 0"):
        stratified_indices(labels, pool, n_samples=0, n_classes=4)


def test_refuses_to_overwrite_without_force(exported, run_dir, gen_npz, capsys):
    out, _ = exported
    before = file_sha256(out / "model_float32.tflite")
    rc = main(["--model", str(run_dir), "--data", str(gen_npz), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "kws-export: error:" in err and "model_float32.tflite exists" in err and "--force" in err
    assert file_sha256(out / "model_float32.tflite") == before


def test_force_overwrites(tmp_path, run_dir, gen_npz, capsys):
    out = tmp_path / "m"
    assert main(["--model", str(run_dir), "--data", str(gen_npz), "--out", str(out), "-q"]) == 0
    (out / "model_float32.json").write_text("{}")
    assert main(["--model", str(run_dir), "--data", str(gen_npz), "--out", str(out), "--force", "-q"]) == 0
    assert json.loads((out / "model_float32.json").read_text())["format"] == "kws-model/1"
    assert not (out / "model_int8.tflite").exists()  # only what was asked for


def test_keras_file_with_plain_feature_json(tmp_path, run_dir, gen_npz, capsys):
    features = tmp_path / "features.json"
    features.write_text(json.dumps(FEATURES.to_dict()))
    out = tmp_path / "m"
    rc = main(["--keras", str(run_dir / "model.keras"), "--features", str(features),
               "--data", str(gen_npz), "--out", str(out), "-q"])
    assert rc == 0, capsys.readouterr().err
    meta = ModelMeta.load(out / "model_float32.json")
    assert meta.labels == SEED_LABELS and meta.features == FEATURES
    assert meta.extra["split"]["test_fraction"] == 0.1  # kws-train's default without model.json


def test_runs_as_script_and_module():
    for cmd in ([sys.executable, str(REPO / "convert" / "export.py"), "--help"],
                [sys.executable, "-m", "kws.convert.export", "--help"]):
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "--int8" in result.stdout and "--rep-samples" in result.stdout


def test_waveform_int8_input_range_from_percentile(tmp_path, gen_npz):
    """--input-percentile sets the int8 input scale from the representative audio's percentiles."""
    import keras

    wave = FeatureConfig(kind="waveform")
    keras.utils.set_random_seed(0)
    run = _write_run(tmp_path / "wave", _tiny_model(wave.input_shape), wave)
    out = tmp_path / "m"
    assert main(["--model", str(run), "--data", str(gen_npz), "--int8", "--input-percentile", "99",
                 "--rep-samples", "24", "--out", str(out), "-q"]) == 0
    quant = json.loads((out / "model_int8.json").read_text())["quantization"]
    lo, hi = quant["representative"]["input_clip"]
    raw_lo, raw_hi = quant["representative"]["raw_range"]
    assert raw_lo < lo < 0 < hi < raw_hi
    # The input tensor spans the clipped range (int8: 255 steps), not the loudest sample.
    assert quant["input"]["scale"] == pytest.approx((hi - lo) / 255, rel=0.02)


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------
def _cumsum_layer():
    import keras

    @keras.saving.register_keras_serializable(package="kws_test")
    class CumSum(keras.layers.Layer):
        """Cumulative sum over time: TFLite's CUMSUM has no int8 kernel."""

        def call(self, x):
            return keras.ops.cumsum(x, axis=2)

    return CumSum()


def test_op_without_int8_kernel_is_named(tmp_path, gen_npz, capsys):
    run = _write_run(tmp_path / "cumsum", _tiny_model(FEATURES.input_shape, extra_layer=_cumsum_layer()),
                     FEATURES)
    out = tmp_path / "m"
    rc = main(["--keras", str(run / "model.keras"), "--features", str(run / "model.json"),
               "--data", str(gen_npz), "--int8", "--rep-samples", "12", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    line = [x for x in err.splitlines() if x.startswith("kws-export: error:")]
    assert len(line) == 1 and "CUMSUM" in line[0] and "int8" in line[0], err
    assert not out.exists() or not any(out.glob("*.tflite"))  # nothing half-written


def test_converter_failure_names_the_op(gen_npz):
    """An op the converter rejects outright (tf.Erf is not a TFLite builtin)."""
    import keras
    import tensorflow as tf

    from kws.convert.export import Source, export

    layer = keras.layers.Lambda(lambda t: tf.math.erf(t))
    source = Source(_tiny_model(FEATURES.input_shape, extra_layer=layer),
                    ModelMeta(SEED_LABELS, FEATURES, {"split": dict(SPLIT)}), None)
    with pytest.raises(ModelError, match=r"float32 export: the converter cannot handle op\(s\) Erf"):
        export(source, data_path=gen_npz, out_dir=Path("/nonexistent/never-written"), kinds=["float32"])


def test_ops_in_converter_error_text():
    text = ("error: 'tf.Erf' op is neither a custom op nor a flex op\n"
            "TF Select ops: Erf, RFFT\nDetails: ...")
    assert ops_in_converter_error(text) == ["Erf", "RFFT"]
    assert ops_in_converter_error("Quantization not yet supported for op: 'tfl.custom_thing'") == ["custom_thing"]
    assert ops_in_converter_error("something else") == []


def test_missing_classes_in_representative_set_warn(tmp_path, run_dir, capsys):
    no_silence = [x for x in SEED_LABELS if x != "silence"]
    npz = tmp_path / "nosilence.npz"
    np.savez(npz, **_generated(clips_per_label=10, labels=tuple(no_silence)))
    out = tmp_path / "m"
    rc = main(["--model", str(run_dir), "--data", str(npz), "--int8", "--rep-samples", "30",
               "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert re.search(r"WARNING .*representative set has no clips of silence", captured.err)
    rep = json.loads((out / "model_int8.json").read_text())["quantization"]["representative"]
    assert rep["missing"] == ["silence"] and rep["per_class"]["silence"] == 0


def test_missing_classes_warning_api(gen_npz, caplog):
    from kws.train.data import load_npz

    ds = load_npz(gen_npz)
    keep = np.flatnonzero(~np.isin(ds.labels, [0, 11]))  # no "yes", no "silence"
    with caplog.at_level(logging.WARNING, logger="kws.convert.representative"):
        rep = build_representative_set(ds.audio, ds.labels, keep, label_names=SEED_LABELS,
                                       config=FEATURES, n_samples=20)
    assert rep.missing == ("yes", "silence")
    assert "representative set has no clips of yes, silence" in caplog.text


def test_sample_rate_mismatch_is_refused(tmp_path, run_dir, capsys):
    npz = tmp_path / "rate.npz"
    np.savez(npz, **_generated(clips_per_label=2), sample_rate_hz=np.int64(16000))
    rc = main(["--model", str(run_dir), "--data", str(npz), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "sample_rate_hz=16000" in err and "expects 8000 Hz" in err
    assert not (tmp_path / "m").exists()


def test_window_mismatch_is_refused(tmp_path, run_dir, capsys):
    data = _generated(clips_per_label=2)
    data["wav_vals"] = np.concatenate([data["wav_vals"], data["wav_vals"]], axis=1)  # 2 s clips
    npz = tmp_path / "long.npz"
    np.savez(npz, **data)
    rc = main(["--model", str(run_dir), "--data", str(npz), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "clips of 16000 samples" in err and "expects windows of 8000 samples" in err


def test_bad_source_arguments(tmp_path, run_dir, gen_npz, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/ here
    out = ["--out", str(tmp_path / "m")]
    assert main(["--data", str(gen_npz), *out]) == 2
    assert "give --model DIR" in capsys.readouterr().err
    assert main(["--model", str(run_dir), "--keras", str(run_dir / "model.keras"), *out]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["--model", str(tmp_path / "nope"), "--data", str(gen_npz), *out]) == 2
    assert "not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["--model", str(tmp_path / "empty"), "--data", str(gen_npz), *out]) == 2
    assert "model JSON not found" in capsys.readouterr().err
    assert main(["--model", str(run_dir), "--rep-samples", "0", *out]) == 2
    assert "--rep-samples 0: expected a positive number" in capsys.readouterr().err
    assert main(["--model", str(run_dir), "--input-percentile", "40", *out]) == 2
    assert "--input-percentile 40.0: expected a number in (50, 100]" in capsys.readouterr().err
    assert main(["--model", str(run_dir), "--input-percentile", "99", *out]) == 2
    assert "needs --int8" in capsys.readouterr().err
    assert main(["--model", str(run_dir), "--seed", "-1", *out]) == 2
    assert "--seed -1: expected an integer in [0, 2**32)" in capsys.readouterr().err
    assert main(["--model", str(run_dir), "--threads", "0", *out]) == 2
    assert "--threads 0: expected a positive integer" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main(["--model", str(run_dir), "--out", str(tmp_path / "afile")]) == 2
    assert "is a file; expected a directory" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_failure_after_conversion_leaves_the_old_export(exported, tmp_path, run_dir, gen_npz, monkeypatch,
                                                         capsys):
    """Parity failing (here: forced) must not leave half an export, nor touch the one already there."""
    import shutil

    import kws.convert.export as export_mod

    old, _ = exported
    out = tmp_path / "m"
    shutil.copytree(old, out)
    before = {p.name: file_sha256(p) for p in out.iterdir()}

    def boom(*args, **kwargs):
        raise ModelError("parity failed on purpose")

    monkeypatch.setattr(export_mod, "measure_parity", boom)
    rc = main(["--model", str(run_dir), "--data", str(gen_npz), "--out", str(out), "--int8", "--force", "-q"])
    assert rc == 2 and "parity failed on purpose" in capsys.readouterr().err
    assert {p.name: file_sha256(p) for p in out.iterdir()} == before   # no staging folder left either
    fresh = tmp_path / "fresh"
    assert main(["--model", str(run_dir), "--data", str(gen_npz), "--out", str(fresh), "--int8", "-q"]) == 2
    assert not fresh.exists()


def test_model_json_mismatch_is_refused(tmp_path, run_dir, gen_npz, capsys):
    bad = tmp_path / "features.json"
    bad.write_text(json.dumps(FeatureConfig(kind="stft", mel_bands=20, log=True).to_dict()))
    rc = main(["--keras", str(run_dir / "model.keras"), "--features", str(bad), "--data", str(gen_npz),
               "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert rc == 2 and "takes input (16, 63, 1), but its feature JSON gives (20, 126, 1)" in err


# ---------------------------------------------------------------------------------------
# kws-train output
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("features", ["log-mel", "pcen-mel"])
def test_exports_kws_train_output(tmp_path, gen_npz, capsys, features):
    """A real kws-train folder: export re-derives the same test split the trainer evaluated on."""
    from kws.train.trainer import main as train_main

    run = tmp_path / "run"
    rc = train_main(["--data", str(gen_npz), "--model", "dscnn", "--width", "8", "--depth", "1", "--features", features,
                     "--epochs", "1", "--steps-per-epoch", "3", "--no-augment", "--out", str(run), "-q"])
    assert rc == 0, capsys.readouterr().err
    out = tmp_path / "m"
    rc = main(["--model", str(run), "--int8", "--rep-samples", "24", "--out", str(out), "-q"])  # data from model.json
    assert rc == 0, capsys.readouterr().err
    evaluation = json.loads((run / "eval.json").read_text())
    parity = json.loads((out / "parity.json").read_text())
    assert parity["n"] == evaluation["n"]
    assert parity["models"]["keras"]["accuracy"] == pytest.approx(evaluation["accuracy"], abs=1e-9)
    meta = json.loads((out / "model_int8.json").read_text())
    train_meta = json.loads((run / "model.json").read_text())
    assert meta["architecture"] == train_meta["architecture"]
    assert meta["features"] == train_meta["features"]
    assert meta["features"]["pcen"] is (features == "pcen-mel")
    assert train_meta["training"]["features_preset"] == features
    rep = meta["quantization"]["representative"]
    assert rep["input_percentile"] == 100.0          # log and PCEN both compress: plain min/max


def test_linear_spectrogram_int8_warns_and_clips_input(tmp_path, gen_npz, capsys):
    """Linear magnitudes: a warning recommending log, and the 99th-percentile input range."""
    import keras

    linear = FeatureConfig(kind="stft", n_fft=256, hop_samples=128, mel_bands=16, log=False)
    keras.utils.set_random_seed(0)
    run = _write_run(tmp_path / "lin", _tiny_model(linear.input_shape), linear)
    out = tmp_path / "m"
    assert main(["--model", str(run), "--data", str(gen_npz), "--int8", "--rep-samples", "24",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert re.search(r"WARNING .*int8 with linear \(not log\) mel magnitudes.*kws-train --log", err)
    rep = json.loads((out / "model_int8.json").read_text())["quantization"]["representative"]
    assert rep["input_percentile"] == 99.0
    assert rep["input_clip"][1] < rep["raw_range"][1]


def test_defaults_to_newest_kws_train_run(tmp_path, run_dir, gen_npz, monkeypatch, capsys):
    """`python convert/export.py --int8` alone: newest runs/*/ and the npz its model.json names."""
    import shutil
    import time

    monkeypatch.chdir(tmp_path)
    assert main(["--out", "m"]) == 2
    assert "no kws-train output with model.keras and model.json under runs/" in capsys.readouterr().err
    for name in ("old", "new"):
        shutil.copytree(run_dir, tmp_path / "runs" / name)
        meta = ModelMeta.load(tmp_path / "runs" / name / "model.json")
        meta.replace(data={"path": str(gen_npz)}, architecture={"name": name}).save(
            tmp_path / "runs" / name / "model.json")
        time.sleep(0.05)
        os.utime(tmp_path / "runs" / name / "model.keras")
    assert main(["--out", "m", "-q"]) == 0
    assert "exporting the newest kws-train output: runs/new" in capsys.readouterr().out
    assert json.loads((tmp_path / "m" / "model_float32.json").read_text())["architecture"] == {"name": "new"}


def test_a_file_that_is_not_a_keras_model_is_named(tmp_path):
    from kws.convert.export import load_keras

    bad = tmp_path / "model.keras"
    bad.write_text("not a zip")
    with pytest.raises(ModelError, match=r"model.keras: not a .keras model \(expected the zip archive"):
        load_keras(bad)
    with pytest.raises(ModelError, match="Keras model file not found"):
        load_keras(tmp_path / "none.keras")


def test_recorded_data_that_is_not_here_is_named(tmp_path, run_dir, capsys):
    """A model.json from another machine (the shipped models': the developers' npz path) without --data."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    meta = json.loads((run / "model.json").read_text())
    meta["data"] = {"path": "/elsewhere/kws_real_dev_8k.npz", "n_clips": 9198}
    (run / "model.json").write_text(json.dumps(meta))
    assert main(["--model", str(run), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "the npz its model.json records (/elsewhere/kws_real_dev_8k.npz) is not on this machine" in err
    assert "give --data FILE.npz" in err and "Traceback" not in err and not (tmp_path / "m").exists()
