"""A tiny real .tflite keyword model (float and int8) with its JSON, trained on synthetic tones.

Used by the runtime tests (tests/test_listen.py, tests/test_alsa_capture.py) to run the real
interpreter, front-end and pipeline end to end. Training takes a few seconds: the synthetic
"words" (kws.train.synth) are two-tone bursts that a 2-layer CNN separates almost at once.

Import the fixture into a test module with ``from fixtures_models import tiny_models``. The
models are built once per pytest session (cached under the session's base temp dir), however
many modules use them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from kws.runtime.features import FeatureConfig, compute_features
from kws.runtime.labels import SEED_LABELS
from kws.runtime.meta import ModelMeta, file_sha256, sidecar_path

#: Log-STFT front-end: input (130, 126, 1) (linear bins resolve the tone pairs).
TINY_FEATURES = FeatureConfig(kind="stft", log=True)
#: Detection defaults written into the tiny models' JSON.
TINY_DETECTION = {"threshold": 0.6, "smoothing_windows": 2, "refractory_ms": 1000.0, "min_count": 1}


def _train(seed: int = 0):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from kws.train.synth import synthetic_dataset

    tf.keras.utils.set_random_seed(seed)
    data = synthetic_dataset(clips_per_label=40, n_speakers=10, seed=seed)
    x = compute_features(data["wav_vals"], TINY_FEATURES)
    y = np.array([SEED_LABELS.index(v) for v in data["label_vals"][:, 0]], dtype=np.int64)
    mean, std = float(x.mean()), float(x.std())
    # Frequency matters (each "word" is a pair of tones): pool over time only, keep the bins.
    model = tf.keras.Sequential([
        tf.keras.layers.Input(TINY_FEATURES.input_shape),
        tf.keras.layers.Normalization(mean=mean, variance=std ** 2),
        tf.keras.layers.Conv2D(8, 3, strides=(2, 2), activation="relu"),
        tf.keras.layers.MaxPooling2D(pool_size=(1, (TINY_FEATURES.input_shape[1] - 3) // 2 + 1)),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dropout(0.2),
        tf.keras.layers.Dense(len(SEED_LABELS)),
    ])
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-2),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=30, verbose=0, shuffle=True)
    return model, x, float(history.history["accuracy"][-1])


def build_tiny_models(out_dir: Path) -> dict[str, Path]:
    """Train and export ``tiny_float.tflite`` and ``tiny_int8.tflite`` (+ JSON) into ``out_dir``."""
    from kws.convert.export import convert
    from kws.convert.representative import RepresentativeSet

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, x, accuracy = _train()
    rep = RepresentativeSet.of_features(x[:: max(1, len(x) // 100)])
    paths = {"float": out_dir / "tiny_float.tflite", "int8": out_dir / "tiny_int8.tflite"}
    paths["float"].write_bytes(convert(model, "float32"))
    paths["int8"].write_bytes(convert(model, "int8", rep))

    for kind, path in paths.items():
        quant = {"type": "float32"} if kind == "float" else {"type": "int8"}
        meta = ModelMeta(SEED_LABELS, TINY_FEATURES, {
            "architecture": {"name": "tiny-test-cnn"},
            "quantization": quant,
            "detection": dict(TINY_DETECTION),
            "source_model": "tests/fixtures_models.py",
            "sha256": file_sha256(path),
            "training": {"train_accuracy": accuracy, "data": "kws.train.synth"},
        })
        meta.save(sidecar_path(path))
    (out_dir / "done.json").write_text(json.dumps({"train_accuracy": accuracy}))
    return paths


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """{"float": Path, "int8": Path} of the tiny synthetic-tone models (JSON beside each)."""
    out_dir = tmp_path_factory.getbasetemp() / "kws_tiny_models"
    if not (out_dir / "done.json").is_file():
        build_tiny_models(out_dir)
    return {"float": out_dir / "tiny_float.tflite", "int8": out_dir / "tiny_int8.tflite"}
