"""Knowledge distillation for ``kws-train --teacher DIR``: soft targets from trained runs.

An average of several trained models is a better listener than any one of them (on the
streams of ``docs/experiments.md``, three of the shipped recipe's runs averaged find 7 to 10 points
more keywords at 3 and 10 false accepts per hour), but it costs their MACs added up, which the Pi's
budget does not allow. Distillation (Hinton, Vinyals & Dean 2015) trains one small student to
match the average instead. Following Beyer et al. (2022, "a good teacher is patient and
consistent"), the teachers see exactly the augmented batch the student sees.

The training target of each clip becomes::

    target = (1 - weight) * one_hot(label) + weight * mean_t softmax(teacher_t(x))

Cross-entropy against that target equals ``(1 - weight) * CE(label) + weight *
KL(teacher || student)`` up to a constant: distillation at temperature 1. Label smoothing and
loss weights apply on top, as without teachers. Validation keeps the hard labels, so the
checkpoint is still chosen by the plain validation loss.

A teacher must have been trained on the same split of the same data (seed and fractions, clip
count), with the student's labels and front-end: a teacher that learned from the student's
validation or test speakers would leak them into the student.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from kws.runtime.errors import KwsError
from kws.runtime.features import FeatureConfig
from kws.runtime.meta import ModelMeta

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeacherInfo:
    """Where a teacher came from, as recorded in the student's model.json."""

    path: str
    model: str
    parameters: int | None
    test_accuracy: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "model": self.model, "parameters": self.parameters,
                "test_accuracy": self.test_accuracy}


def check_teacher(meta: ModelMeta, *, source: str, labels: Sequence[str], features: FeatureConfig,
                  split: Mapping[str, Any], n_clips: int) -> None:
    """Refuse a teacher whose labels, front-end or split differ from the student's.

    ``split`` holds the student's ``seed`` and ``val_fraction`` and ``test_fraction`` (or ``folds``
    and ``fold``: :func:`kws.runtime.meta.split_seed_and_fractions`); ``n_clips``
    the student's data size. Raises :class:`KwsError` naming the first difference.
    """
    if tuple(meta.labels) != tuple(labels):
        raise KwsError(f"--teacher {source}: its labels {list(meta.labels)} differ from the data's "
                       f"{list(labels)}")
    if meta.features != features:
        mine, theirs = features.to_dict(), meta.features.to_dict()
        diff = ", ".join(f"{k} {theirs.get(k)!r} (student {mine.get(k)!r})"
                         for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k))
        raise KwsError(f"--teacher {source}: its front-end differs from the student's: {diff}")
    from kws.runtime.meta import split_seed_and_fractions, trained_parts

    t_split = meta.extra.get("split") or {}
    theirs, mine = split_seed_and_fractions(t_split), split_seed_and_fractions(split)
    for key in (*mine, *(k for k in theirs if k not in mine)):
        if theirs.get(key) != mine.get(key):
            raise KwsError(f"--teacher {source}: trained with split {key} {theirs.get(key)!r}, the "
                           f"student uses {mine.get(key)!r}; a teacher must share the student's split "
                           "(else it has learned from the student's validation or test speakers)")

    seen = sorted(set(trained_parts(t_split)) - set(trained_parts(split)))
    if seen:
        raise KwsError(f"--teacher {source}: trained on the {' and '.join(seen)} speakers too "
                       f"(split.trained_on {list(trained_parts(t_split))}), which the student holds out")
    t_clips = (meta.extra.get("data") or {}).get("n_clips")
    if t_clips != n_clips:
        raise KwsError(f"--teacher {source}: trained on {t_clips!r} clips, the student's data has "
                       f"{n_clips}; a teacher must be trained on the same npz")


def load_teachers(dirs: Sequence[str | Path], *, labels: Sequence[str], features: FeatureConfig,
                  split: Mapping[str, Any], n_clips: int):
    """Load ``DIR/model.keras`` + ``DIR/model.json`` of each kws-train run and check it
    (:func:`check_teacher`).

    Returns ``(teacher, infos)``: ``teacher`` maps features ``float32 (B, *input_shape)`` to the
    teachers' mean posteriors ``float32 (B, n_classes)``; ``infos`` a :class:`TeacherInfo` each.
    """
    from kws.convert.export import check_model_fits, load_keras

    models, infos = [], []
    for d in dirs:
        d = Path(d)
        if not (d / "model.keras").is_file() or not (d / "model.json").is_file():
            raise KwsError(f"--teacher {d}: expected a kws-train output directory with model.keras and "
                           "model.json")
        meta = ModelMeta.load(d / "model.json")
        check_teacher(meta, source=str(d), labels=labels, features=features, split=split, n_clips=n_clips)
        model = load_keras(d / "model.keras")
        check_model_fits(model, meta, name=f"--teacher {d / 'model.keras'}")
        arch = meta.extra.get("architecture") or {}
        models.append(model)
        infos.append(TeacherInfo(str(d), str(arch.get("name", "?")), arch.get("parameters"),
                                 (meta.extra.get("evaluation") or {}).get("accuracy")))
    return Teacher(models), infos


class Teacher:
    """The mean softmax of several Keras models that output logits.

    Called on features ``float32 (B, *input_shape)``, returns ``float32 (B, n_classes)``; safe to
    call from the batch-preparing worker threads (calls take turns).
    """

    def __init__(self, models: Sequence[Any]) -> None:
        if not models:
            raise ValueError("a Teacher needs at least one model")
        self.models = list(models)
        # Keras's JAX backend swaps a model's variable buffers on each predict_on_batch: two
        # worker threads predicting at once would use freed buffers. One at a time, on every backend.
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from kws.runtime.interpreter import softmax

        with self._lock:
            logits = [np.asarray(m.predict_on_batch(x)) for m in self.models]
        probs = [softmax(z, axis=-1) for z in logits]
        return np.mean(probs, axis=0).astype(np.float32)


def mix_targets(one_hot: np.ndarray, soft: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * one_hot + weight * soft``; both ``float32 (B, n_classes)``, rows summing to 1."""
    if one_hot.shape != soft.shape:
        raise ValueError(f"targets {one_hot.shape} and teacher posteriors {soft.shape} differ in shape")
    return ((1.0 - weight) * one_hot + weight * soft).astype(np.float32)
