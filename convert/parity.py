"""Float-vs-int8 parity: the Keras model and its .tflite exports on the test split.

The .tflite files are run through the runtime (:class:`kws.runtime.model.KwsModel`: the sidecar
JSON, the numpy front-end and the interpreter wrapper), so parity measures what the Raspberry Pi
will run. The Keras model gets the same features from
:func:`kws.runtime.features.compute_features`.

Reported (``parity.json``, ``parity.md``, and the ``parity`` key of every exported JSON):

- ``models.<name>.accuracy`` and ``models.<name>.per_class`` for keras, float32, dynamic, int8;
- ``agreement.<name>``: fraction of test clips where ``<name>`` and the float32 TFLite model
  predict the same class (top-1);
- ``max_abs_logit_diff.<name>``: the largest ``|logit - float32 logit|`` over all test clips and
  classes (for ``keras`` that is the float conversion error; for ``int8`` the quantization error);
- ``class_counts``: test clips per class.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from kws.runtime.evaluate import confusion_matrix
from kws.runtime.features import FeatureConfig, compute_features
from kws.runtime.model import KwsModel

logger = logging.getLogger(__name__)

#: The model every other one is compared with.
REFERENCE = "float32"
BATCH_CLIPS = 64
PARITY_JSON = "parity.json"
PARITY_MD = "parity.md"

AudioFn = Callable[[np.ndarray], np.ndarray]


def keras_logits(model, audio_fn: AudioFn, indices: np.ndarray, config: FeatureConfig,
                 *, batch_clips: int = BATCH_CLIPS) -> np.ndarray:
    """Logits (len(indices), n_classes) of a Keras model on the runtime front-end's features."""
    from keras import ops

    chunks = []
    for start in range(0, len(indices), batch_clips):
        feats = compute_features(audio_fn(indices[start:start + batch_clips]), config)
        chunks.append(ops.convert_to_numpy(model(feats, training=False)).astype(np.float32))
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)


def tflite_logits(model: KwsModel, audio_fn: AudioFn, indices: np.ndarray,
                  *, batch_clips: int = BATCH_CLIPS) -> np.ndarray:
    """Float logits (len(indices), n_labels) of an exported model through the runtime."""
    out = np.empty((len(indices), len(model.labels)), dtype=np.float32)
    for start in range(0, len(indices), batch_clips):
        idx = indices[start:start + batch_clips]
        out[start:start + len(idx)] = model.logits(audio_fn(idx))
    return out


def parity_report(y_true: np.ndarray, logits: Mapping[str, np.ndarray], labels: Sequence[str],
                  *, files: Mapping[str, str] | None = None,
                  info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The parity numbers for models' logits on the same clips.

    Parameters
    ----------
    y_true : (n,) int true class per clip
    logits : name -> (n, n_classes) float logits; should hold :data:`REFERENCE` ("float32")
    labels : class names
    files : name -> file name, recorded per model
    info : extra top-level keys (data, split, ...)
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    n = int(len(y_true))
    counts = np.bincount(y_true, minlength=len(labels))
    report: dict[str, Any] = {
        **dict(info or {}),
        "n": n,
        "labels": list(labels),
        "class_counts": {name: int(c) for name, c in zip(labels, counts)},
        "reference": REFERENCE,
        "models": {},
        "agreement": {},
        "max_abs_logit_diff": {},
    }
    preds = {name: np.asarray(lg).argmax(axis=1) for name, lg in logits.items()}
    for name, pred in preds.items():
        cm = confusion_matrix(y_true, pred, n_classes=len(labels))
        entry: dict[str, Any] = {
            "accuracy": float(np.trace(cm) / n) if n else None,
            "per_class": {label: (float(cm[i, i] / counts[i]) if counts[i] else None)
                          for i, label in enumerate(labels)},
        }
        if files and name in files:
            entry["file"] = files[name]
        report["models"][name] = entry
    if REFERENCE in logits:
        ref = np.asarray(logits[REFERENCE], dtype=np.float64)
        for name, lg in logits.items():
            if name == REFERENCE:
                continue
            report["agreement"][name] = float(np.mean(preds[name] == preds[REFERENCE])) if n else None
            diff = np.abs(np.asarray(lg, dtype=np.float64) - ref)
            report["max_abs_logit_diff"][name] = float(diff.max()) if diff.size else None
    return report


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def format_markdown(report: Mapping[str, Any]) -> str:
    """A short Markdown summary: one row per model, then per-class accuracy."""
    names = list(report["models"])
    head = (f"Parity on the {report.get('split', 'test')} split of {report.get('data', 'the npz')} "
            f"({report['n']} clips")
    if report.get("split_by"):
        head += f", split by {report['split_by']}"
    head += ")."
    if report.get("held_out") is False:
        head += (" The model was trained on these clips' speakers too (`kws-train --train-on all`): the "
                 "accuracies are not held-out; the agreement still measures quantization.")
    lines = [head, "",
             f"| model | accuracy | top-1 agreement with {REFERENCE} | max abs logit diff vs {REFERENCE} |",
             "| --- | ---: | ---: | ---: |"]
    for name in names:
        entry = report["models"][name]
        label = f"{name} (`{entry['file']}`)" if entry.get("file") else name
        agree = "-" if name == REFERENCE else _pct(report["agreement"].get(name))
        diff = report["max_abs_logit_diff"].get(name)
        diff_s = "-" if name == REFERENCE or diff is None else f"{diff:.3g}"
        lines.append(f"| {label} | {_pct(entry['accuracy'])} | {agree} | {diff_s} |")
    lines += ["", "| class | n | " + " | ".join(names) + " |",
              "| --- | ---: | " + " | ".join("---:" for _ in names) + " |"]
    for label in report["labels"]:
        cells = [_pct(report["models"][name]["per_class"].get(label)) for name in names]
        lines.append(f"| {label} | {report['class_counts'][label]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_parity(report: Mapping[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``parity.json`` and ``parity.md`` into ``out_dir``; returns both paths."""
    out_dir = Path(out_dir)
    json_path = out_dir / PARITY_JSON
    md_path = out_dir / PARITY_MD
    json_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    md_path.write_text(format_markdown(report))
    return json_path, md_path


def measure_parity(keras_model, tflite_paths: Mapping[str, Path], audio_fn: AudioFn,
                   y: np.ndarray, indices: np.ndarray, *, labels: Sequence[str],
                   config: FeatureConfig, threads: int | None = None,
                   info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run Keras and every exported .tflite (through :class:`KwsModel`) on ``indices``.

    Parameters
    ----------
    keras_model : the Keras model (logits out), or None to skip it
    tflite_paths : kind ("float32", "dynamic", "int8") -> .tflite path (JSON beside it)
    audio_fn : callable(indices) -> float32 audio (k, window_samples)
    y : (N,) int true class of every clip (model label order); ``indices`` select from it
    """
    indices = np.asarray(indices, dtype=np.int64)
    logits: dict[str, np.ndarray] = {}
    if keras_model is not None:
        logger.info("parity: Keras model on %d test clips", len(indices))
        logits["keras"] = keras_logits(keras_model, audio_fn, indices, config)
    files = {}
    for kind, path in tflite_paths.items():
        logger.info("parity: %s on %d test clips", Path(path).name, len(indices))
        model = KwsModel(path, threads=threads)
        logits[kind] = tflite_logits(model, audio_fn, indices)
        files[kind] = Path(path).name
    return parity_report(y[indices], logits, labels, files=files, info=info)
