"""``kws-eval``: accuracy, per-class accuracy and confusion of a ``.tflite`` model on an npz.

Runtime only (numpy + the TFLite interpreter), so it runs on a Raspberry Pi as well as on the
desktop. The npz is read here with ``numpy.load(allow_pickle=False)``; it needs ``wav_vals``
(N, window_samples) int16 PCM or float32 in [-1, 1] and ``label_vals`` (N,) or (N, 1) str.
An optional ``sample_rate_hz`` scalar and an optional ``split`` array (N,) str are used when
present. Labels are mapped onto the model's labels by name.

Which clips: ``--split all`` (the default) evaluates every clip. kws-eval cannot re-derive the
speaker split that kws-train made (that needs ``kws.train``), so on the npz a model was trained
on, "all" includes its training clips; the held-out numbers are the ``parity.json`` that
kws-export writes. ``--split test`` selects the clips whose ``split`` array says ``test`` or
``testing`` and is refused for an npz without one.

The metric helpers (:func:`confusion_matrix`, :func:`per_class_accuracy`,
:func:`format_confusion`) are shared with ``kws.convert.parity``.
"""

from __future__ import annotations

import argparse
import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kws.runtime.cli import configure_logging, run_main
from kws.runtime.errors import DataError
from kws.runtime.features import float_peak_error, pcm16_to_float
from kws.runtime.model import KwsModel, default_model_path

logger = logging.getLogger(__name__)

TEST_SPLIT_NAMES = ("test", "testing")
#: Clips per interpreter batch (features of one batch are held in memory at once).
BATCH_CLIPS = 64


# ---------------------------------------------------------------------------------------
# Metrics (shared with kws.convert.parity)
# ---------------------------------------------------------------------------------------
def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, *, n_classes: int) -> np.ndarray:
    """Counts, int64 (n_classes, n_classes): rows are the true class, columns the prediction."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def per_class_accuracy(cm: np.ndarray, labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{label: {"n": clips, "correct": n, "accuracy": fraction or None}}`` from a confusion matrix.

    ``accuracy`` is None for a class with no clips (not 0: nothing was measured).
    """
    out: dict[str, dict[str, Any]] = {}
    for i, label in enumerate(labels):
        n = int(cm[i].sum())
        correct = int(cm[i, i])
        out[label] = {"n": n, "correct": correct, "accuracy": (correct / n) if n else None}
    return out


def format_confusion(cm: np.ndarray, labels: Sequence[str]) -> str:
    """A text table of the confusion matrix (rows true, columns predicted); empty rows skipped."""
    width = max(5, max(len(x) for x in labels) + 1, len(str(int(cm.max(initial=0)))) + 1)
    head = "true \\ pred".ljust(width + 2) + "".join(x[:width].rjust(width) for x in labels)
    lines = [head]
    for i, label in enumerate(labels):
        if cm[i].sum() == 0:
            continue
        lines.append(label.ljust(width + 2) + "".join(str(int(v)).rjust(width) for v in cm[i]))
    return "\n".join(lines)


def format_per_class(per_class: dict[str, dict[str, Any]]) -> str:
    width = max(5, max(len(x) for x in per_class) + 1)
    lines = ["class".ljust(width) + "     n  correct  accuracy"]
    for label, row in per_class.items():
        acc = "-" if row["accuracy"] is None else f"{100 * row['accuracy']:.1f}%"
        lines.append(f"{label.ljust(width)}{row['n']:6d}  {row['correct']:7d}  {acc:>8}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# The npz
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalData:
    """Labelled clips read from an npz for evaluation."""

    path: Path
    wav: np.ndarray              # (N, window_samples) int16 or float32, as stored
    label_names: np.ndarray      # (N,) str
    sample_rate_hz: int | None   # from the npz's ``sample_rate_hz`` scalar, if any
    split: np.ndarray | None     # (N,) str, if the npz has a ``split`` array

    def __len__(self) -> int:
        return len(self.wav)

    def audio(self, idx: np.ndarray) -> np.ndarray:
        """float32 audio in [-1, 1] for the given indices, shape (len(idx), window_samples)."""
        chunk = self.wav[idx]
        if chunk.dtype == np.int16:
            return pcm16_to_float(chunk)
        return chunk.astype(np.float32, copy=False)


def load_eval_npz(path: str | Path) -> EvalData:
    """Read and validate an npz for kws-eval (no pickles). Raises :class:`DataError`."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory; expected an .npz file")
    if not path.is_file():
        raise DataError(f"{path}: npz file not found")
    if not zipfile.is_zipfile(path):  # np.load would try a pickle and talk about allow_pickle
        raise DataError(f"{path}: not an .npz file (expected a zip archive written by numpy.savez)")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    with npz:
        if not hasattr(npz, "files"):
            raise DataError(f"{path}: a single array, not an .npz archive with wav_vals and label_vals")
        missing = [k for k in ("wav_vals", "label_vals") if k not in npz.files]
        if missing:
            raise DataError(f"{path}: missing array(s) {missing}; expected wav_vals and label_vals "
                            f"(found {sorted(npz.files)})")
        try:
            wav = npz["wav_vals"]
            labels = npz["label_vals"]
            sr = npz["sample_rate_hz"] if "sample_rate_hz" in npz.files else None
            split = npz["split"] if "split" in npz.files else None
        except ValueError as exc:  # object arrays need pickles
            raise DataError(f"{path}: cannot read without pickles ({exc}); store labels as a "
                            "str array, not object") from None
    if wav.ndim == 3 and wav.shape[2] == 1:   # the seed tutorial's Conv1D input shape, as kws-train takes it
        wav = wav.reshape(wav.shape[:2])
    if wav.ndim != 2 or wav.shape[0] == 0:
        raise DataError(f"{path}: wav_vals has shape {wav.shape}; expected (N, window_samples) "
                        "or (N, window_samples, 1)")
    if wav.dtype != np.int16 and wav.dtype not in (np.float32, np.float64):
        raise DataError(f"{path}: wav_vals dtype {wav.dtype}; expected int16 PCM or float32")
    if wav.dtype != np.int16:
        bad = ~np.isfinite(wav).all(axis=1)
        if bad.any():
            raise DataError(f"{path}: {int(bad.sum())} clip(s) of wav_vals hold NaN or infinite samples "
                            f"(first: clip {int(np.flatnonzero(bad)[0])}); expected finite audio in [-1, 1]")
        problem = float_peak_error("wav_vals", wav.dtype, float(np.abs(wav).max()))
        if problem:
            raise DataError(f"{path}: {problem}")
    stored_shape = labels.shape
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != len(wav):
        raise DataError(f"{path}: label_vals has shape {stored_shape}; expected ({len(wav)},) or "
                        f"({len(wav)}, 1) to match wav_vals")
    if labels.dtype.kind not in "US":
        raise DataError(f"{path}: label_vals dtype {labels.dtype}; expected strings")
    labels = labels.astype(str)
    rate = None
    if sr is not None:
        if sr.size != 1:
            raise DataError(f"{path}: sample_rate_hz has shape {sr.shape}; expected a scalar")
        rate = int(sr.reshape(()))
    if split is not None:
        split = np.asarray(split).astype(str).reshape(-1)
        if len(split) != len(wav):
            raise DataError(f"{path}: split has {len(split)} entries for {len(wav)} clips")
    return EvalData(path, wav, labels, rate, split)


def check_data_fits(data: EvalData, model: KwsModel) -> np.ndarray:
    """Check rate, window and labels against the model; returns (N,) int64 model label indices."""
    cfg = model.features
    if data.sample_rate_hz is not None and data.sample_rate_hz != cfg.sample_rate_hz:
        raise DataError(f"{data.path}: sample_rate_hz={data.sample_rate_hz}, but {model.path.name} "
                        f"expects {cfg.sample_rate_hz} Hz audio")
    if data.wav.shape[1] != cfg.window_samples:
        raise DataError(f"{data.path}: clips of {data.wav.shape[1]} samples, but {model.path.name} "
                        f"expects windows of {cfg.window_samples} samples")
    index = {name: i for i, name in enumerate(model.labels)}
    unknown = sorted(set(data.label_names.tolist()) - set(index))
    if unknown:
        raise DataError(f"{data.path}: label(s) {unknown} are not among {model.path.name}'s labels "
                        f"{list(model.labels)}")
    return np.array([index[x] for x in data.label_names], dtype=np.int64)


# ---------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------
def predict_logits(model: KwsModel, data: EvalData, indices: np.ndarray,
                   *, batch_clips: int = BATCH_CLIPS) -> np.ndarray:
    """Float logits (len(indices), n_labels) through the runtime front-end and interpreter."""
    out = np.empty((len(indices), len(model.labels)), dtype=np.float32)
    for start in range(0, len(indices), batch_clips):
        idx = indices[start:start + batch_clips]
        out[start:start + len(idx)] = model.logits(data.audio(idx))
    return out


def summarize(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """``accuracy``, ``n``, ``per_class``, ``confusion`` for integer true/predicted classes."""
    cm = confusion_matrix(y_true, y_pred, n_classes=len(labels))
    n = int(len(y_true))
    return {
        "accuracy": float(np.trace(cm) / n) if n else None,
        "n": n,
        "per_class": per_class_accuracy(cm, labels),
        "confusion": cm.tolist(),
        "labels": list(labels),
    }


def select_indices(data: EvalData, split: str) -> np.ndarray:
    if split == "all":
        return np.arange(len(data))
    if data.split is None:
        raise DataError(f"{data.path}: --split test needs a 'split' array in the npz, and it has none; "
                        "kws-eval cannot re-derive kws-train's speaker split without kws.train "
                        "(use --split all, or the held-out numbers in kws-export's parity.json)")
    idx = np.flatnonzero(np.isin(data.split, TEST_SPLIT_NAMES))
    if len(idx) == 0:
        raise DataError(f"{data.path}: its split array has no 'test'/'testing' clips "
                        f"(values {sorted(set(data.split.tolist()))})")
    return idx


def evaluate(model: KwsModel, data: EvalData, *, split: str = "all") -> dict[str, Any]:
    """Evaluate ``model`` on ``data``; returns the :func:`summarize` dict plus model/backend."""
    y_all = check_data_fits(data, model)
    idx = select_indices(data, split)
    logger.info("evaluating %s on %d clips of %s", model.path.name, len(idx), data.path.name)
    logits = predict_logits(model, data, idx)
    result = summarize(y_all[idx], logits.argmax(axis=1), model.labels)
    result.update({
        "model": str(model.path),
        "backend": model.backend,
        "quantization": model.quantization_type,
        "data": str(data.path),
        "split": split,
    })
    return result


def format_report(result: dict[str, Any]) -> str:
    labels = result["labels"]
    cm = np.asarray(result["confusion"], dtype=np.int64)
    correct = int(np.trace(cm))
    which = ("all clips (kws-eval cannot know the training split; on the training npz this "
             "includes training clips)" if result["split"] == "all" else "the npz's test split")
    lines = [
        f"model: {result['model']} ({result['quantization']}, {result['backend']})",
        f"data:  {result['data']}: {result['n']} clips, {which}",
        f"accuracy: {100 * result['accuracy']:.2f}% ({correct}/{result['n']})",
        "",
        format_per_class(result["per_class"]),
        "",
        "confusion (rows: true class, columns: predicted)",
        format_confusion(cm, labels),
    ]
    return "\n".join(lines)


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="kws-eval",
        description="Accuracy, per-class accuracy and confusion of a .tflite keyword model on an npz "
                    "(runtime only: no TensorFlow).")
    parser.add_argument("--model", type=Path, default=None,
                        help="the .tflite model (its .json beside it); default: the shipped "
                             "models/model_int8.tflite")
    parser.add_argument("--data", type=Path, required=True,
                        help="npz with wav_vals (N, window) int16/float32 and label_vals (N, 1) str")
    parser.add_argument("--split", choices=("all", "test"), default="all",
                        help="all clips (default), or those the npz's own 'split' array marks test")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (accuracy, n, per_class, confusion, labels, ...)")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    configure_logging(-1 if (args.quiet or args.json) else args.verbose)

    model_path = args.model if args.model is not None else default_model_path()
    model = KwsModel(model_path, threads=args.threads)
    data = load_eval_npz(args.data)
    result = evaluate(model, data, split=args.split)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(format_report(result))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("kws-eval", _main, argv)


if __name__ == "__main__":
    import sys

    sys.exit(main())
