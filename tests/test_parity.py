"""Float-vs-int8 parity of exported models (kws.convert.parity through kws-export)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kws.convert.parity import format_markdown, parity_report  # noqa: E402
from kws.runtime.features import FeatureConfig, compute_features  # noqa: E402
from kws.runtime.labels import SEED_LABELS  # noqa: E402
from kws.runtime.meta import ModelMeta  # noqa: E402
from kws.runtime.model import KwsModel  # noqa: E402

#: Small log-mel front-end for the generated tones: (32, 63, 1).
TINY_FEATURES = FeatureConfig(kind="stft", n_fft=256, hop_samples=128, mel_bands=32, log=True)
#: The generated set is split at random (no speaker array), 30% test, so parity has ~100 clips.
TINY_SPLIT = {"seed": 0, "val_fraction": 0.1, "test_fraction": 0.3}
#: kws-train's default split settings (used when a model JSON records none).
TRAIN_SPLIT = {"seed": 0, "val_fraction": 0.1, "test_fraction": 0.1}


def write_generated_npz(path: Path, *, clips_per_label: int = 30, seed: int = 0) -> Path:
    """Generated tone "words" in the seed schema, without a speaker array (random split)."""
    from kws.train.synth import synthetic_dataset

    data = synthetic_dataset(clips_per_label=clips_per_label, n_speakers=10, seed=seed)
    del data["speaker"]
    np.savez(path, **data)
    return path


def train_tiny_model_dir(npz: Path, out: Path, *, features: FeatureConfig = TINY_FEATURES,
                         epochs: int = 20, split: dict | None = None, seed: int = 0) -> Path:
    """Train a small CNN a few steps and write a kws-train style folder (model.keras + model.json)."""
    import keras

    from kws.train.data import load_npz, split_dataset

    split = dict(split or TINY_SPLIT)
    ds = load_npz(npz)
    parts = split_dataset(ds, **split)
    x = compute_features(ds.audio(parts.train), features)
    y = ds.labels[parts.train]
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    model = keras.Sequential([
        keras.Input(features.input_shape),
        layers.Conv2D(16, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.GlobalMaxPooling2D(),
        layers.Dense(len(SEED_LABELS)),
    ], name="tiny")
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    ModelMeta(SEED_LABELS, features, {
        "architecture": {"name": "tiny", "params": {}, "parameters": int(model.count_params())},
        "split": {**split, "by": parts.by, "sizes": parts.sizes()},
        "detection": {"threshold": 0.55, "smoothing_windows": 2},
        "data": {"path": str(npz), "n_clips": len(ds)},
    }).save(out / "model.json")
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny model trained on generated audio, exported float32 + dynamic + int8."""
    from kws.convert.export import main

    root = tmp_path_factory.mktemp("parity")
    npz = write_generated_npz(root / "tones.npz")
    model_dir = train_tiny_model_dir(npz, root / "run")
    out = root / "models"
    rc = main(["--model", str(model_dir), "--data", str(npz), "--int8", "--dynamic", "--out", str(out), "-q"])
    assert rc == 0
    return {"npz": npz, "model_dir": model_dir, "out": out,
            "parity": json.loads((out / "parity.json").read_text())}


def test_int8_close_to_float_on_generated_audio(exported):
    parity = exported["parity"]
    assert parity["split"] == "test" and parity["n"] >= 90
    acc = {name: parity["models"][name]["accuracy"] for name in ("keras", "float32", "dynamic", "int8")}
    # The model learned something (chance is 1/12), so agreement is not trivially high.
    assert acc["float32"] > 0.4, acc
    assert abs(acc["int8"] - acc["float32"]) <= 0.02, acc
    assert parity["agreement"]["int8"] >= 0.95, parity["agreement"]
    assert parity["agreement"]["keras"] == 1.0


def test_float_tflite_matches_keras_logits(exported):
    """Recompute independently: Keras vs the float32 .tflite through the runtime, to 1e-4."""
    import keras

    from kws.train.data import load_npz, split_dataset

    ds = load_npz(exported["npz"])
    test_idx = split_dataset(ds, **TINY_SPLIT).test
    audio = ds.audio(test_idx)
    keras_model = keras.models.load_model(exported["model_dir"] / "model.keras", compile=False)
    ref = keras.ops.convert_to_numpy(keras_model(compute_features(audio, TINY_FEATURES), training=False))
    got = KwsModel(exported["out"] / "model_float32.tflite").logits(audio)
    assert got.shape == ref.shape == (len(test_idx), len(SEED_LABELS))
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    assert exported["parity"]["max_abs_logit_diff"]["keras"] < 1e-4
    # Int8 differs by quantization error, which the report measures against float32.
    int8 = KwsModel(exported["out"] / "model_int8.tflite").logits(audio)
    assert exported["parity"]["max_abs_logit_diff"]["int8"] == pytest.approx(
        float(np.abs(int8 - got).max()), rel=1e-5, abs=1e-6)


def test_parity_files_and_sidecars(exported):
    out = exported["out"]
    parity = exported["parity"]
    md = (out / "parity.md").read_text()
    assert "| int8 (`model_int8.tflite`) |" in md and "| class | n |" in md
    for name in ("keras", "float32", "dynamic", "int8"):
        assert set(parity["models"][name]["per_class"]) == set(SEED_LABELS)
    assert sum(parity["class_counts"].values()) == parity["n"]
    for kind in ("float32", "dynamic", "int8"):
        meta = json.loads((out / f"model_{kind}.json").read_text())
        assert meta["parity"] == parity
    # per-class accuracy is consistent with the overall accuracy
    counts = parity["class_counts"]
    for name, entry in parity["models"].items():
        correct = sum((entry["per_class"][c] or 0) * counts[c] for c in counts)
        assert correct / parity["n"] == pytest.approx(entry["accuracy"], abs=1e-9)


def test_parity_report_numbers():
    y = np.array([0, 0, 1, 1, 2])
    ref = np.eye(3)[[0, 1, 1, 1, 2]] * 5.0  # one error (clip 1)
    other = ref.copy()
    other[4] = [0.0, 9.0, 0.0]  # disagrees on clip 4, logit diff 9
    report = parity_report(y, {"float32": ref, "int8": other}, ["a", "b", "c"], info={"split": "test"})
    assert report["models"]["float32"]["accuracy"] == pytest.approx(0.8)
    assert report["models"]["int8"]["accuracy"] == pytest.approx(0.6)
    assert report["agreement"]["int8"] == pytest.approx(0.8)
    assert report["max_abs_logit_diff"]["int8"] == pytest.approx(9.0)
    assert report["models"]["float32"]["per_class"] == {"a": 0.5, "b": 1.0, "c": 1.0}
    assert report["models"]["int8"]["per_class"]["c"] == 0.0
    md = format_markdown(report)
    assert "| int8 | 60.00% | 80.00% | 9 |" in md
    assert "| a | 2 | 50.00% | 50.00% |" in md
    assert "not held-out" not in md
    assert "the accuracies are not held-out" in format_markdown({**report, "held_out": False})


# ---------------------------------------------------------------------------------------
# Real data (slow)
# ---------------------------------------------------------------------------------------
def _shipped_pair() -> tuple[Path, Path] | None:
    from kws.models import MODELS_DIR

    f32, i8 = MODELS_DIR / "model_float32.tflite", MODELS_DIR / "model_int8.tflite"
    if f32.is_file() and i8.is_file() and f32.with_suffix(".json").is_file() and i8.with_suffix(".json").is_file():
        return f32, i8
    return None


@pytest.mark.slow
def test_int8_within_one_point_of_float_on_real_data(shared_npz, tmp_path):
    """On real speech: int8 accuracy within 1 point of float on the speaker-disjoint test split.

    Uses the shipped models/model_float32.tflite + model_int8.tflite when both exist (their
    JSON's split settings re-derive the test split); otherwise trains a small log-mel DS-CNN
    for a few short epochs here and exports it with kws-export.
    """
    from kws.convert.parity import measure_parity
    from kws.train.data import load_npz, split_dataset

    pair = _shipped_pair()
    if pair is None:
        from kws.convert.export import main

        run = tmp_path / "run"
        _train_small_dscnn(shared_npz, run)
        out = tmp_path / "models"
        assert main(["--model", str(run), "--data", str(shared_npz), "--int8", "--out", str(out), "-q"]) == 0
        pair = (out / "model_float32.tflite", out / "model_int8.tflite")
    f32, i8 = pair
    meta = ModelMeta.load(f32.with_suffix(".json"))
    split = {k: meta.extra.get("split", {}).get(k, d) for k, d in TRAIN_SPLIT.items()}
    ds = load_npz(shared_npz, sample_rate_hz=meta.features.sample_rate_hz,
                  window_samples=meta.features.window_samples)
    test_idx = split_dataset(ds, **split).test
    index = {name: i for i, name in enumerate(meta.labels)}
    y = np.array([index[ds.label_names[k]] for k in ds.labels])
    report = measure_parity(None, {"float32": f32, "int8": i8}, ds.audio, y, test_idx,
                            labels=meta.labels, config=meta.features)
    acc_f, acc_q = report["models"]["float32"]["accuracy"], report["models"]["int8"]["accuracy"]
    assert report["n"] > 500
    # The model must have learned (balanced accuracy well above the 1/12 of chance), or the
    # comparison says nothing: one that calls everything "unknown" gets 56% here.
    per_class = [v for v in report["models"]["float32"]["per_class"].values() if v is not None]
    assert np.mean(per_class) > 0.2, report["models"]["float32"]
    assert abs(acc_q - acc_f) <= 0.01, (acc_f, acc_q, report["agreement"])


def _train_small_dscnn(npz: Path, out: Path) -> None:
    """A small log-mel DS-CNN (kws.train.nets), 5 short epochs on the training split.

    Square-root class weights and a cosine learning rate, so that it learns the keywords and not
    only "unknown" (about 77% on the test split, 2 minutes on 2 cores); a model that called
    everything "unknown" would make the comparison meaningless.
    """
    import keras

    from kws.train.data import load_npz, split_dataset
    from kws.train.nets import build_model

    features = FeatureConfig(kind="stft", mel_bands=40, log=True)
    ds = load_npz(npz)
    split = split_dataset(ds, **TRAIN_SPLIT)
    x = compute_features(ds.audio(split.train), features)
    y = ds.labels[split.train]
    counts = np.bincount(y, minlength=len(ds.label_names))
    weights = {c: float(np.sqrt(len(y) / (len(counts) * n))) for c, n in enumerate(counts) if n}
    keras.utils.set_random_seed(0)
    model = build_model("dscnn", input_shape=features.input_shape, n_classes=len(ds.label_names),
                        width=32, depth=3)
    epochs = 5
    schedule = keras.callbacks.LearningRateScheduler(
        lambda epoch, lr: 2e-3 * 0.5 * (1 + np.cos(np.pi * epoch / epochs)))
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0, shuffle=True, class_weight=weights,
              callbacks=[schedule])
    out.mkdir(parents=True)
    model.save(out / "model.keras")
    ModelMeta(tuple(ds.label_names), features, {
        "architecture": {"name": "dscnn", "params": {"width": 32, "depth": 3}},
        "split": {**TRAIN_SPLIT, "by": split.by},
    }).save(out / "model.json")
