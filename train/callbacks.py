"""The Keras side of a ``kws-train`` run: the optimizer and the callbacks.

:func:`make_callbacks` gives the atomic checkpoint, the per-epoch log, the learning-rate schedule,
early stopping and weight averaging a run's flags ask for; :func:`hard_negative_callback` mines
hard negatives (``--hard-negatives``); :func:`make_optimizer` is Adam or, with
``--weight-decay``, AdamW. Keras is imported inside the functions, never at import.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from kws.train.swa import EpochLrSchedule, apply_average, make_weight_average
from kws.train.train_args import CHECKPOINT_TMP, HARD_NEGATIVE_COPIES

logger = logging.getLogger(__name__)


def _callback_classes():
    import keras

    class BestCheckpoint(keras.callbacks.Callback):
        """Save the model when ``val_loss`` improves (``keep="best"``), or after every epoch whose
        training loss is finite (``keep="last"``: no validation split): to a temp file, then
        ``os.replace`` onto ``path``, so an interrupt can never leave a half-written ``model.keras``.
        ``best`` is the saved epoch's validation loss (training loss for ``"last"``)."""

        def __init__(self, path: Path, keep: str = "best") -> None:
            super().__init__()
            self.path = Path(path)
            self.tmp = self.path.with_name(CHECKPOINT_TMP)
            self.keep = keep
            self.monitor = "val_loss" if keep == "best" else "loss"   # what ``best`` holds
            self.best = math.inf
            self.best_epoch = 0
            self.best_logs: dict[str, float] = {}

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            value = logs.get(self.monitor)
            if value is None or not math.isfinite(float(value)):
                return
            if self.keep == "best" and float(value) >= self.best:
                return
            self.write(self.model)
            self.best, self.best_epoch = float(value), epoch + 1
            self.best_logs = {k: float(v) for k, v in logs.items()}

        def write(self, model) -> None:
            """Save ``model`` over ``path``: to the temp file, then renamed."""
            model.save(self.tmp)
            os.replace(self.tmp, self.path)

    class EpochLog(keras.callbacks.Callback):
        """One line per epoch, and the history kept here (``fit`` loses it on Ctrl-C)."""

        def __init__(self, epochs: int, checkpoint=None, out=None) -> None:
            super().__init__()
            self.epochs = epochs
            self.checkpoint = checkpoint
            self.out = out
            self.history: dict[str, list[float]] = {}
            self._t0 = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            seconds = time.perf_counter() - self._t0
            lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            saved = self.checkpoint is not None and self.checkpoint.best_epoch == epoch + 1
            for key, value in logs.items():
                self.history.setdefault(key, []).append(float(value))
            self.history.setdefault("lr", []).append(lr)
            self.history.setdefault("seconds", []).append(round(seconds, 3))
            val = (f"  val_loss {logs['val_loss']:.4f}  val_acc {logs.get('val_accuracy', math.nan):.3f}"
                   if "val_loss" in logs else "")
            print(f"epoch {epoch + 1:>3}/{self.epochs}  loss {logs.get('loss', math.nan):.4f}  "
                  f"acc {logs.get('accuracy', math.nan):.3f}{val}  lr {lr:.2e}  {seconds:.1f}s"
                  + ("  saved" if saved else ""), file=self.out or sys.stdout, flush=True)

    return BestCheckpoint, EpochLog


def hard_negative_callback(train_batches, *, fraction: float, copies: int = HARD_NEGATIVE_COPIES,
                           batch_size: int = 256):
    """A Keras callback for ``--hard-negatives``: after each epoch, the training split's
    ``unknown`` clips (clean, no augmentation) go through the model; the ``fraction`` of them with
    the highest keyword posterior (the largest softmax among the keyword classes) are set as
    ``train_batches.extra``, ``copies`` times each, so that the next epoch draws them more often.

    Those are the unknown words the listener would fire on ("cat" heard as "yes"): false accepts
    per hour are made of them. Returns None when the training split has no unknown clips.
    """
    import keras

    from kws.runtime.interpreter import softmax
    from kws.runtime.labels import KEYWORDS, UNKNOWN
    from kws.train.dataset import EvalBatches

    ds = train_batches.dataset
    names = list(ds.label_names)
    if UNKNOWN not in names:
        return None
    unknown = np.sort(train_batches.indices[ds.labels[train_batches.indices] == names.index(UNKNOWN)])
    keyword_cols = [names.index(k) for k in KEYWORDS if k in names]
    n_hard = int(round(fraction * len(unknown)))
    if not len(unknown) or not keyword_cols or n_hard == 0:
        return None

    batches = EvalBatches(ds, unknown, features=train_batches.features, batch_size=batch_size)  # caches features

    class HardNegatives(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.last_min_score = math.nan

        def on_epoch_end(self, epoch, logs=None):
            logits = np.concatenate([  # called directly: predict() builds a tf.data pipeline each time
                keras.ops.convert_to_numpy(self.model(batches[i][0], training=False))
                for i in range(len(batches))])
            score = softmax(logits, axis=1)[:, keyword_cols].max(axis=1)
            hard = np.argsort(-score, kind="stable")[:n_hard]
            train_batches.extra = np.repeat(unknown[hard], copies)
            self.last_min_score = float(score[hard].min())
            logger.info("hard negatives: the %d of %d unknown clips with keyword posterior >= %.3f drawn %d more "
                        "times", n_hard, len(unknown), self.last_min_score, copies)

    return HardNegatives()


#: Variables that ``--weight-decay`` leaves alone: a name containing one of these is excluded.
NOT_DECAYED = ("bias", "gamma", "beta")


def make_optimizer(*, lr: float, weight_decay: float = 0.0):
    """Adam at ``lr``, or AdamW when ``weight_decay`` > 0: each step multiplies every kernel by
    ``1 - lr * weight_decay`` (decoupled from the gradient, Loshchilov & Hutter 2019), except the
    variables named in :data:`NOT_DECAYED` (biases, batch-norm scales and offsets), whose size
    sets no capacity. The learning-rate schedule scales the decay with the rate."""
    import keras

    if not weight_decay:
        return keras.optimizers.Adam(learning_rate=lr)
    optimizer = keras.optimizers.AdamW(learning_rate=lr, weight_decay=weight_decay)
    optimizer.exclude_from_weight_decay(var_names=list(NOT_DECAYED))
    return optimizer


def make_callbacks(args: argparse.Namespace, out: Path) -> list:
    """The callbacks of a run, checkpoint first. (Tests add to this list to simulate Ctrl-C.)"""
    import keras

    BestCheckpoint, EpochLog = _callback_classes()
    # With weight averaging the result is the average, not a chosen epoch: keep the last one (for Ctrl-C).
    keep = "best" if args.train_on == "train" and not args.swa_epochs else "last"
    checkpoint = BestCheckpoint(out / "model.keras", keep=keep)
    callbacks: list = [checkpoint, EpochLog(args.epochs, checkpoint)]
    if args.lr_schedule == "cosine" or args.swa_epochs:
        schedule = EpochLrSchedule(args.lr_schedule, args.lr, args.epochs, args.swa_epochs, args.swa_lr or 0.0)
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda epoch, lr=None: schedule(epoch)))
    elif args.lr_schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                           patience=args.plateau_patience,
                                                           min_lr=args.lr / 100.0, verbose=0))
    if args.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.early_stopping,
                                                       restore_best_weights=False))
    if args.swa_epochs:
        callbacks.append(make_weight_average(start_epoch=args.epochs - args.swa_epochs))
    return callbacks


def kept_model_line(checkpoint, swa: dict[str, Any]) -> str:
    """What model.keras is, for the run's last lines."""
    if swa.get("averaged_epochs"):
        return f"model.keras: the average of the last {swa['averaged_epochs']} epoch(s)"
    return f"{checkpoint.keep} checkpoint: epoch {checkpoint.best_epoch} ({checkpoint.monitor} {checkpoint.best:.4f})"


def finish_weight_average(model, averager, train_batches, checkpoint, args: argparse.Namespace) -> dict[str, Any]:
    """After the last epoch of ``--swa-epochs``: put the averaged weights into ``model``, recompute
    its batch-norm statistics on one epoch of training batches, and save it over the last
    checkpoint (through the checkpoint's own atomic write). Returns what model.json records."""
    info: dict[str, Any] = {"epochs": args.swa_epochs, "lr": args.swa_lr}
    if not averager.count:
        logger.warning("--swa-epochs %d: no averaged epoch had a finite loss; model.keras is the last checkpoint",
                       args.swa_epochs)
        return {**info, "averaged_epochs": 0}
    info.update(apply_average(model, averager, train_batches))
    checkpoint.write(model)
    print(f"weight averaging: the last {info['averaged_epochs']} epoch(s) averaged at lr {args.swa_lr:.2e}; "
          f"batch-norm statistics recomputed on {info['bn_batches']} training batch(es)")
    return info
