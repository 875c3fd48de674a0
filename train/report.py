"""Evaluation numbers and the PNGs a person looks at after training.

- :func:`classification_report`: accuracy, per-class precision/recall/F1/support and the
  confusion matrix from true and predicted class indices (numpy only).
- :func:`plot_curves`: the seed's figure, training and validation accuracy and loss per epoch.
- :func:`plot_confusion`: the confusion matrix as a labelled heat map with counts.

matplotlib is imported inside the plotting functions, with the non-interactive Agg backend.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from kws.runtime.fileio import write_atomically, write_text_atomic

logger = logging.getLogger(__name__)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """int64 (n_classes, n_classes): rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix.

    Precision of a class nothing was predicted as, and recall of a class absent from ``y_true``,
    are reported as ``None`` (undefined), not 0.

    Returns
    -------
    dict with ``accuracy``, ``n``, ``balanced_accuracy`` (mean recall over present classes),
    ``per_class`` {label: {precision, recall, f1, support}}, ``labels``, ``confusion`` (list of rows).
    """
    n = len(labels)
    cm = confusion_matrix(y_true, y_pred, n)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    per_class = {}
    recalls = []
    for i, label in enumerate(labels):
        precision = tp[i] / predicted[i] if predicted[i] else None
        recall = tp[i] / support[i] if support[i] else None
        if recall is not None:
            recalls.append(recall)
        f1 = (2 * precision * recall / (precision + recall)
              if precision is not None and recall is not None and precision + recall > 0 else
              (0.0 if precision is not None and recall is not None else None))
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": int(support[i])}
    total = int(cm.sum())
    return {
        "n": total,
        "accuracy": float(tp.sum() / total) if total else None,
        "balanced_accuracy": float(np.mean(recalls)) if recalls else None,
        "labels": list(labels),
        "per_class": per_class,
        "confusion": cm.tolist(),
    }


def format_report(report: Mapping[str, Any]) -> str:
    """A small text table of a :func:`classification_report`."""

    def _pct(x):
        return "   -  " if x is None else f"{100 * x:5.1f}%"

    lines = [f"{'class':<10} {'precision':>9} {'recall':>7} {'support':>8}"]
    for label, row in report["per_class"].items():
        lines.append(f"{label:<10} {_pct(row['precision']):>9} {_pct(row['recall']):>7} {row['support']:>8}")
    acc = report.get("accuracy")
    lines.append(f"accuracy {_pct(acc)} on {report['n']} clips; balanced accuracy "
                 f"{_pct(report.get('balanced_accuracy'))}")
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path = Path(path)
    write_atomically([(path, lambda tmp: fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png"))])
    return path


def plot_curves(history: Mapping[str, Sequence[float]], path: str | Path, *, title: str = "") -> Path:
    """The seed's plot: accuracy (train, val) and loss (train, val) against the epoch, side by side."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, name in ((axes[0], "accuracy", "accuracy"), (axes[1], "loss", "loss")):
        for series, label in ((key, "train"), (f"val_{key}", "validation")):
            values = history.get(series) or []
            if values:
                ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.set_title(f"model {name}")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def plot_confusion(confusion: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path, *,
                   title: str = "") -> Path:
    """Confusion matrix heat map (rows true, columns predicted, colour = row-normalised, text = counts)."""
    plt = _pyplot()
    path = Path(path)
    cm = np.asarray(confusion, dtype=np.int64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, np.maximum(rows, 1), dtype=np.float64)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.55 * n))
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def write_json(data: Any, path: str | Path) -> Path:
    """Pretty JSON, written atomically (temp file + rename)."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
