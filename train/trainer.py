"""``kws-train``: train a registry model on an npz and write a self-describing output directory.

Example::

    kws-train --data ../shared/data/kws_real_dev_8k.npz --model dscnn --epochs 30 \\
              --lr 1e-3 --lr-schedule cosine --out runs/dscnn

Output directory (what ``kws-export`` reads)::

    DIR/model.keras     best checkpoint by validation loss (written atomically each time it improves);
                        with --train-on train+val or all, the last epoch; with --swa-epochs K, the
                        average of the last K epochs (see kws.train.swa)
    DIR/model.json      ModelMeta: labels, features, architecture, split, training, data, evaluation
    DIR/history.json    per-epoch loss, accuracy, val_loss, val_accuracy, lr, seconds
    DIR/curves.png      training and validation accuracy and loss (the seed's plot)
    DIR/eval.json       the best checkpoint on the test split: accuracy, per-class precision and
                        recall, confusion matrix
    DIR/confusion.png   the confusion matrix

Defaults follow the seed: Adam, learning rate 1e-4, batch 32, 10 epochs, logits with categorical
cross-entropy, best checkpoint by validation loss. Ctrl-C stops training, keeps the best
checkpoint, writes ``model.json``, ``history.json`` and ``INTERRUPTED.txt``, and exits 130.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kws.runtime.cli import configure_logging, run_main
from kws.runtime.errors import EXIT_INTERRUPTED, KwsError
from kws.runtime.fileio import check_seed
from kws.runtime.meta import ModelMeta
from kws.train.augment import BALANCE_MODES, AugmentConfig
from kws.train.data import TRAIN_ON
from kws.train.nets import MODELS, describe_models, get_spec, resolve_knobs
from kws.train.swa import DEFAULT_SWA_LR_FRACTION, SwaSchedule, apply_average, make_weight_average

logger = logging.getLogger(__name__)

PROG = "kws-train"
LR_SCHEDULES = ("constant", "cosine", "plateau")
#: Files kws-train writes; ``--force`` removes exactly these (and their temp files) first.
OUTPUT_FILES = ("model.keras", "model.json", "history.json", "curves.png", "eval.json", "confusion.png",
                "INTERRUPTED.txt")
CHECKPOINT_TMP = ".model.partial.keras"
#: How many extra draws per epoch each mined hard negative gets (``--hard-negatives``).
HARD_NEGATIVE_COPIES = 2
#: ``--distill-weight`` when ``--teacher`` is given without it.
DEFAULT_DISTILL_WEIGHT = 0.5
#: Knob flags and the registry knob each sets.
KNOB_FLAGS = {"width": "width", "depth": "depth", "stride": "stride", "freq_stride": "freq_stride",
              "downsample": "downsample", "dropout": "dropout"}


def _block_list(text: str) -> tuple[int, ...]:
    """``"2"`` or ``"2,4"`` -> (2,) / (2, 4); argparse reports a bad value with the flag's name."""
    import argparse

    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected block numbers like 2 or 2,4") from None


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    from kws.train.presets import PRESETS

    p = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a keyword-spotting model on an npz (seed schema) and write DIR/model.keras, "
                    "model.json, history.json, curves.png, eval.json and confusion.png.",
        epilog="models:\n" + "\n".join("  " + line for line in describe_models().splitlines()))
    g = p.add_argument_group("data and output")
    g.add_argument("--data", metavar="FILE.npz", help="training npz: wav_vals (N, 8000), label_vals (N, 1)")
    g.add_argument("--model", metavar="NAME", help=f"registry model: {', '.join(MODELS)}")
    g.add_argument("--out", metavar="DIR", help="output directory (default: runs/MODEL)")
    g.add_argument("--force", action="store_true", help="write into an existing output directory")
    g.add_argument("--list-models", action="store_true", help="list the models with their knobs and exit")
    g.add_argument("--allow-pickle", action="store_true", help="allow object arrays in the npz (trusted files only)")

    g = p.add_argument_group("model knobs (defaults per model: see --list-models)")
    g.add_argument("--width", type=float, help="seed nets: channel multiplier (1 = seed); dscnn/bcresnet: channels")
    g.add_argument("--depth", type=int, help="dscnn: depthwise-separable blocks; bcresnet: BC-ResBlocks")
    g.add_argument("--stride", type=int, help="dscnn: time stride of the first convolution")
    g.add_argument("--freq-stride", type=int, help="dscnn: frequency stride of the first convolution")
    g.add_argument("--downsample", type=_block_list, metavar="I[,J...]",
                   help="dscnn: 1-based blocks whose depthwise conv has stride 2 and whose pointwise conv "
                        "doubles the channels (e.g. 2); default none")
    g.add_argument("--dropout", type=float, help="dropout rate before the classifier")

    g = p.add_argument_group("front-end (kws.runtime.features)")
    g.add_argument("--features", choices=PRESETS,
                   help="seed-stft: |STFT| 130x126 (n_fft 258); waveform: (8000, 1); log-mel: log mel bands "
                        "x 126; pcen-mel: the mel bands with per-channel energy normalisation instead of the "
                        "log (default per model: conv1d* waveform, spec2d* seed-stft, dscnn/bcresnet log-mel)")
    g.add_argument("--mel-bands", type=int, help="mel bands for --features log-mel or pcen-mel (default 40)")
    g.add_argument("--log", action=argparse.BooleanOptionalAction, default=None,
                   help="log compression (default: on for log-mel, off for seed-stft)")

    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=10, help="epochs (default 10, the seed's)")
    g.add_argument("--batch-size", type=int, default=32, help="batch size (default 32, the seed's)")
    g.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 1e-4, the seed's)")
    g.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant",
                   help="constant; cosine decay over --epochs; plateau: halve when val loss stalls "
                        "for --plateau-patience epochs")
    g.add_argument("--plateau-patience", type=int, default=3, help="epochs without improvement before halving (plateau)")
    g.add_argument("--early-stopping", type=int, default=0, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without a lower val loss (0 = off)")
    g.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing (default 0)")
    g.add_argument("--weight-decay", type=float, default=0.0, metavar="WD",
                   help="decoupled weight decay (AdamW): every step shrinks each kernel by lr * WD; biases and "
                        "batch-norm scales and offsets are not decayed (default 0: plain Adam)")
    g.add_argument("--swa-epochs", type=int, default=0, metavar="K",
                   help="stochastic weight averaging: train the last K epochs at --swa-lr, average the weights "
                        "at the end of each, then recompute the batch-norm statistics on one epoch of training "
                        "batches; model.keras is the average (default 0 = off)")
    g.add_argument("--swa-lr", type=float, metavar="LR",
                   help="with --swa-epochs: learning rate of the averaged epochs (default --lr / 10); "
                        "--lr-schedule cosine decays from --lr to it over the epochs before")
    g.add_argument("--seed", type=int, default=0,
                   help="seed for the weights, augmentation and (unless --split-seed) the split")
    g.add_argument("--split-seed", type=int, metavar="SEED",
                   help="seed for the split only (default: --seed); keep it while changing --seed to retrain "
                        "on the same training, validation and test speakers")
    g.add_argument("--val-fraction", type=float, default=0.1, help="fraction of clips for validation")
    g.add_argument("--test-fraction", type=float, default=0.1, help="fraction of clips for the test")
    g.add_argument("--folds", type=int, default=0, metavar="N",
                   help="cross-validation by speaker: deal the speakers into N folds (N >= 3, seeded by "
                        "--split-seed); test is fold --fold, validation the next fold, training the rest; "
                        "--val-fraction and --test-fraction are then ignored (default 0: no folds)")
    g.add_argument("--fold", type=int, metavar="K", help="with --folds N: the fold to test on, 0 to N-1")
    g.add_argument("--train-on", choices=tuple(TRAIN_ON), default="train",
                   help="train (default): fit on the training split, keep the best checkpoint by validation "
                        "loss. train+val, all: the final fit of a recipe already chosen on held-out speakers; "
                        "the same split is made, then the validation (and test) speakers join training, "
                        "model.keras is the last epoch, and model.json's split.trained_on says so. Refused "
                        "with --early-stopping and --lr-schedule plateau (nothing to monitor)")
    g.add_argument("--steps-per-epoch", type=int, help="cap on batches per epoch (quick runs)")
    g.add_argument("--workers", type=int, default=1, help="threads preparing batches (default 1)")

    g = p.add_argument_group("augmentation (on by default)")
    g.add_argument("--no-augment", action="store_true", help="switch ALL augmentation and balancing off")
    g.add_argument("--no-time-shift", action="store_true", help="no time shift")
    g.add_argument("--time-shift-ms", type=float, default=100.0, help="largest time shift either way (ms)")
    g.add_argument("--shift-keeps-speech", action="store_true",
                   help="draw each shift among those that keep the clip's speech inside the window "
                        "(long shifts place words wherever a sliding window sees them, never cut)")
    g.add_argument("--stream-style", type=float, default=0.0, metavar="P",
                   help="probability that a keyword or unknown clip is cut to its word and placed the way "
                        "kws-data stream places words: even speech level, random position, noise bed at "
                        "--snr-db below the speech (default 0 = off)")
    g.add_argument("--stream-cut", type=float, default=0.0, metavar="F",
                   help="stream-style placements may leave up to this fraction of the word outside the "
                        "window (default 0)")
    g.add_argument("--speed-perturb", type=float, default=0.0, metavar="P",
                   help="probability that a clip is played faster or slower (tempo and pitch together) by a "
                        "random factor in --speed-range: more voices from few speakers (default 0 = off)")
    g.add_argument("--speed-range", type=float, nargs=2, default=(0.9, 1.1), metavar=("MIN", "MAX"),
                   help="range of the speed factor (default 0.9 1.1)")
    g.add_argument("--vtlp", type=float, default=0.0, metavar="P",
                   help="probability that a clip's spectrum is stretched along frequency by a random factor in "
                        "--vtlp-range (vocal-tract-length perturbation: formants move, timing stays; "
                        "spectrogram features only; default 0 = off)")
    g.add_argument("--vtlp-range", type=float, nargs=2, default=(0.9, 1.1), metavar=("MIN", "MAX"),
                   help="range of the warp factor, above 1 = formants higher (default 0.9 1.1)")
    g.add_argument("--reversed-keywords", type=float, default=0.0, metavar="P",
                   help="probability that a keyword clip is played backwards and labelled unknown: the same "
                        "sounds in the wrong order, so the net must hear their order (default 0 = off)")
    g.add_argument("--extra-train", action="append", default=[], metavar="NPZ",
                   help="add this npz's clips to the training split only (repeatable), e.g. kws-data demo's "
                        "synthetic speech; validation and test stay the --data speakers. Refused if it shares "
                        "a speaker with them")
    g.add_argument("--hard-negatives", type=float, default=0.0, metavar="F",
                   help="after each epoch, score the training unknown clips (clean) and draw the fraction F "
                        f"of them with the highest keyword posterior {HARD_NEGATIVE_COPIES} more times in the "
                        "next epoch (default 0 = off)")
    g.add_argument("--teacher", action="append", default=[], metavar="DIR",
                   help="distil from this kws-train run (repeat for several: their posteriors are "
                        "averaged); each must share the student's data, split, labels and front-end")
    g.add_argument("--distill-weight", type=float, default=None, metavar="W",
                   help="with --teacher: training targets are (1 - W) one-hot + W teacher posteriors "
                        f"(default {DEFAULT_DISTILL_WEIGHT})")
    g.add_argument("--no-noise", action="store_true", help="no background noise")
    g.add_argument("--noise-prob", type=float, default=0.8, help="probability of adding noise to a clip")
    g.add_argument("--snr-db", type=float, nargs=2, default=(5.0, 20.0), metavar=("MIN", "MAX"),
                   help="SNR range of the added noise in dB")
    g.add_argument("--noise-dir", metavar="DIR",
                   help="folder of noise .wav files (default: the training split's silence clips)")
    g.add_argument("--no-gain", action="store_true", help="no random gain")
    g.add_argument("--gain-db", type=float, default=6.0, help="largest gain change either way (dB)")
    g.add_argument("--no-spec-augment", action="store_true", help="no SpecAugment masks")
    g.add_argument("--time-masks", type=int, default=2, help="SpecAugment time masks per example")
    g.add_argument("--freq-masks", type=int, default=2, help="SpecAugment frequency masks per example")
    g.add_argument("--balance", choices=BALANCE_MODES, default="sample",
                   help="class balancing: sample (default), weights (loss weights), none")
    g.add_argument("--balance-power", type=float, default=0.5,
                   help="0 = natural class mix, 1 = equal classes (default 0.5: square root)")

    g = p.add_argument_group("output")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more output (-v: Keras progress bars)")
    g.add_argument("-q", "--quiet", action="store_true", help="warnings only")
    return p


#: The flags that --no-augment switches off (what augment_config reads, and --noise-dir).
NO_AUGMENT_OVERRIDES = ("no_time_shift", "time_shift_ms", "shift_keeps_speech", "stream_style", "stream_cut",
                        "speed_perturb", "speed_range", "vtlp", "vtlp_range", "reversed_keywords", "no_noise",
                        "noise_prob", "snr_db", "noise_dir", "no_gain", "gain_db", "no_spec_augment", "time_masks",
                        "freq_masks", "balance", "balance_power")


def augment_config(args: argparse.Namespace) -> AugmentConfig:
    """The :class:`AugmentConfig` the flags ask for.

    Raises
    ------
    KwsError
        ``--no-augment`` together with a flag that sets an augmentation it switches off (which would
        otherwise be dropped without a word).
    """
    if args.no_augment:
        defaults = _parser()
        given = [f"--{dest.replace('_', '-')}" for dest in NO_AUGMENT_OVERRIDES
                 if _as_list(getattr(args, dest)) != _as_list(defaults.get_default(dest))]
        if given:
            raise KwsError(f"--no-augment switches all augmentation and balancing off, but {' '.join(given)} "
                           f"{'asks' if len(given) == 1 else 'ask'} for some; drop one or the other")
        return AugmentConfig.off()
    return AugmentConfig(
        time_shift_ms=0.0 if args.no_time_shift else args.time_shift_ms,
        shift_keeps_speech=bool(args.shift_keeps_speech),
        noise_prob=0.0 if args.no_noise else args.noise_prob,
        snr_db=tuple(args.snr_db),
        gain_db=0.0 if args.no_gain else args.gain_db,
        time_masks=0 if args.no_spec_augment else args.time_masks,
        freq_masks=0 if args.no_spec_augment else args.freq_masks,
        balance=args.balance,
        balance_power=args.balance_power,
        stream_prob=args.stream_style,
        stream_cut_fraction=args.stream_cut,
        speed_prob=args.speed_perturb,
        speed_range=tuple(args.speed_range),
        vtlp_prob=args.vtlp,
        vtlp_range=tuple(args.vtlp_range),
        reverse_prob=args.reversed_keywords,
    )


def _as_list(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def _check_args(args: argparse.Namespace) -> None:
    if not args.data:
        raise KwsError("--data FILE.npz is required (the training set)")
    if not args.model:
        raise KwsError(f"--model NAME is required; expected one of: {', '.join(MODELS)}")
    for name in ("epochs", "batch_size"):
        value = getattr(args, name)
        if value < 1:
            raise KwsError(f"--{name.replace('_', '-')} {value}: expected a positive integer")
    for flag, value in (("--seed", args.seed), ("--split-seed", args.split_seed)):
        if value is not None:
            check_seed(value, flag=flag)
    _check_fold_args(args)
    if not (args.lr > 0 and math.isfinite(args.lr)):
        raise KwsError(f"--lr {args.lr}: expected a positive number")
    if not 0.0 <= args.label_smoothing < 1.0:
        raise KwsError(f"--label-smoothing {args.label_smoothing}: expected a number in [0, 1)")
    if not (0.0 <= args.weight_decay < 1.0):   # also refuses nan
        raise KwsError(f"--weight-decay {args.weight_decay}: expected a number in [0, 1) (0 = plain Adam)")
    if args.early_stopping < 0:
        raise KwsError(f"--early-stopping {args.early_stopping}: expected 0 (off) or a patience >= 1")
    if args.plateau_patience < 1:
        raise KwsError(f"--plateau-patience {args.plateau_patience}: expected a positive integer")
    if args.steps_per_epoch is not None and args.steps_per_epoch < 1:
        raise KwsError(f"--steps-per-epoch {args.steps_per_epoch}: expected a positive integer")
    if args.workers < 1:
        raise KwsError(f"--workers {args.workers}: expected a positive integer")
    if not 0.0 <= args.hard_negatives <= 1.0:
        raise KwsError(f"--hard-negatives {args.hard_negatives}: expected a fraction in [0, 1]")
    if args.distill_weight is not None and not args.teacher:
        raise KwsError(f"--distill-weight {args.distill_weight}: needs --teacher DIR (the run to distil from)")
    if args.distill_weight is None:
        args.distill_weight = DEFAULT_DISTILL_WEIGHT
    if not 0.0 < args.distill_weight <= 1.0:
        raise KwsError(f"--distill-weight {args.distill_weight}: expected a weight in (0, 1]")
    if args.val_fraction <= 0:
        raise KwsError(f"--val-fraction {args.val_fraction}: expected > 0 (the best checkpoint is chosen "
                       "by validation loss)")
    _check_swa_args(args)
    if args.train_on != "train":
        if args.early_stopping:
            raise KwsError(f"--early-stopping with --train-on {args.train_on}: the validation speakers are "
                           "trained on, so there is no validation loss to stop by; give a fixed --epochs")
        if args.lr_schedule == "plateau":
            raise KwsError(f"--lr-schedule plateau with --train-on {args.train_on}: the validation speakers are "
                           "trained on, so there is no validation loss to follow; use cosine or constant")


def _check_fold_args(args: argparse.Namespace) -> None:
    """``--folds`` and ``--fold``."""
    if args.fold is not None and not args.folds:
        raise KwsError(f"--fold {args.fold}: needs --folds N (the number of speaker folds)")
    if not args.folds:
        return
    if args.folds < 3:
        raise KwsError(f"--folds {args.folds}: expected at least 3 (a test, a validation and a training fold)")
    if args.fold is None:
        raise KwsError(f"--folds {args.folds}: give --fold K too (the fold to test on, 0 to {args.folds - 1})")
    if not 0 <= args.fold < args.folds:
        raise KwsError(f"--fold {args.fold}: expected 0 to {args.folds - 1} (--folds {args.folds})")
    if args.train_on == "all":
        raise KwsError(f"--folds with --train-on all: every speaker is trained on, so a fold holds nothing out; "
                       f"drop --folds, or use --train-on train+val to test on fold {args.fold}")


def split_identity(args: argparse.Namespace) -> dict[str, Any]:
    """What chooses the speakers of each part: ``split_dataset``'s keyword arguments, as model.json's
    ``split`` records them (see :func:`kws.runtime.meta.split_seed_and_fractions`)."""
    seed = args.seed if args.split_seed is None else args.split_seed
    if args.folds:
        return {"seed": seed, "folds": args.folds, "fold": args.fold}
    return {"seed": seed, "val_fraction": args.val_fraction, "test_fraction": args.test_fraction}


def _check_swa_args(args: argparse.Namespace) -> None:
    """``--swa-epochs`` and ``--swa-lr``; fills in the default ``--swa-lr``."""
    if args.swa_lr is not None and not args.swa_epochs:
        raise KwsError(f"--swa-lr {args.swa_lr}: needs --swa-epochs K (the epochs to average)")
    if not args.swa_epochs:
        return
    if not 2 <= args.swa_epochs < args.epochs:
        raise KwsError(f"--swa-epochs {args.swa_epochs}: expected at least 2 and fewer than --epochs {args.epochs} "
                       "(two averaged epochs or more, after at least one other)")
    if args.swa_lr is None:
        args.swa_lr = args.lr * DEFAULT_SWA_LR_FRACTION
    if not (args.swa_lr > 0 and math.isfinite(args.swa_lr)):
        raise KwsError(f"--swa-lr {args.swa_lr}: expected a positive number")
    if args.lr_schedule == "plateau":
        raise KwsError("--swa-epochs with --lr-schedule plateau: the averaged epochs need a fixed rate; "
                       "use cosine or constant")
    if args.early_stopping:
        raise KwsError("--swa-epochs with --early-stopping: stopping early would skip the averaged epochs; "
                       "give a fixed --epochs")


def _check_out_dir(out: Path, force: bool) -> None:
    """Refuse an existing, non-empty output directory without ``--force`` (touching nothing)."""
    if out.exists() and not out.is_dir():
        raise KwsError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise KwsError(f"--out {out}: directory exists and is not empty; pass --force to overwrite "
                       "its kws-train files, or choose another --out")


def _clear_outputs(out: Path) -> None:
    for name in OUTPUT_FILES + (CHECKPOINT_TMP,):
        path = out / name
        if path.is_file() or path.is_symlink():
            path.unlink()


# ---------------------------------------------------------------------------------------
# Callbacks
# ---------------------------------------------------------------------------------------
def _make_callbacks_module():
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

    BestCheckpoint, EpochLog = _make_callbacks_module()
    # With weight averaging the result is the average, not a chosen epoch: keep the last one (for Ctrl-C).
    keep = "best" if args.train_on == "train" and not args.swa_epochs else "last"
    checkpoint = BestCheckpoint(out / "model.keras", keep=keep)
    callbacks: list = [checkpoint, EpochLog(args.epochs, checkpoint)]
    if args.lr_schedule == "cosine" or args.swa_epochs:
        schedule = SwaSchedule(args.lr_schedule, args.lr, args.epochs, args.swa_epochs, args.swa_lr or 0.0)
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


def _kept_model(checkpoint, swa: dict[str, Any]) -> str:
    """What model.keras is, for the run's last lines."""
    if swa.get("averaged_epochs"):
        return f"model.keras: the average of the last {swa['averaged_epochs']} epoch(s)"
    return f"{checkpoint.keep} checkpoint: epoch {checkpoint.best_epoch} ({checkpoint.monitor} {checkpoint.best:.4f})"


def _finish_weight_average(model, averager, train_batches, checkpoint, args: argparse.Namespace) -> dict[str, Any]:
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


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------
def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _jsonable_args(args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    for key, value in sorted(vars(args).items()):
        if isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def evaluate_checkpoint(model, batches, labels: Sequence[str]) -> dict[str, Any]:
    """Run ``model`` over :class:`~kws.train.dataset.EvalBatches`; accuracy, loss, per-class, confusion."""
    from kws.train.report import classification_report

    logits = np.asarray(model.predict(batches, verbose=0), dtype=np.float64)
    y_true = batches.labels
    report = classification_report(y_true, logits.argmax(axis=1), labels)
    report["loss"] = float(-_log_softmax(logits)[np.arange(len(y_true)), y_true].mean()) if len(y_true) else None
    return report


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(-1 if args.quiet else max(0, args.verbose - 1))
    # TensorFlow's C++ start-up lines (CPU features, the generator's malloc note) say nothing a
    # user can act on; -vv shows them. Set before the first (lazy) TensorFlow import.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if args.verbose < 2 else "0")
    if args.list_models:
        print(describe_models())
        return 0
    _check_args(args)

    # -- everything that can be refused is checked before anything is written ----------
    spec = get_spec(args.model)
    knobs = resolve_knobs(args.model, {knob: getattr(args, flag) for flag, knob in KNOB_FLAGS.items()})
    aug = augment_config(args)
    out = Path(args.out or Path("runs") / args.model)
    _check_out_dir(out, args.force)

    from kws.train.data import add_training_clips, class_counts, fold_in, load_npz, split_dataset
    from kws.train.presets import feature_config, preset_of

    preset = args.features or spec.features
    ds = load_npz(args.data, allow_pickle=args.allow_pickle)
    features = feature_config(preset, mel_bands=args.mel_bands, log=args.log,
                              sample_rate_hz=ds.sample_rate_hz, window_samples=ds.window_samples)
    if len(features.input_shape) != spec.rank + 1:
        raise KwsError(f"model {args.model} needs {'a waveform' if spec.rank == 1 else 'a spectrogram'} input; "
                       f"--features {preset} gives shape {features.input_shape}; use --features {spec.features}")
    if aug.vtlp_prob > 0 and features.kind == "waveform":
        raise KwsError(f"--vtlp {args.vtlp} warps a spectrum; --features {preset} has none (use a spectrogram "
                       "model, or drop --vtlp)")
    split_id = split_identity(args)
    split = split_dataset(ds, **split_id)
    if len(split.train) == 0 or len(split.val) == 0:
        raise KwsError(f"{args.data}: split gives train={len(split.train)}, val={len(split.val)} clips; "
                       "need both non-empty (add clips or change --val-fraction/--test-fraction)")
    n_clips, sizes = len(ds), split.sizes()
    extra_sets = [load_npz(path, allow_pickle=args.allow_pickle, sample_rate_hz=ds.sample_rate_hz,
                           window_samples=ds.window_samples) for path in args.extra_train]
    trained_on = TRAIN_ON[args.train_on]
    split = fold_in(split, trained_on)   # first: extra clips may share speakers with the parts folded in
    ds, split = add_training_clips(ds, split, *extra_sets)
    extras = [{"path": str(Path(path).resolve()), "n_clips": len(extra),
               "speakers": None if extra.speaker is None else int(len(np.unique(extra.speaker))),
               "labels": class_counts(extra)} for path, extra in zip(args.extra_train, extra_sets)]
    noise_bank = None
    if aug.noise_prob > 0:
        from kws.train.augment import NoiseBank

        noise_bank = (NoiseBank.from_dir(args.noise_dir, sample_rate_hz=ds.sample_rate_hz) if args.noise_dir
                      else NoiseBank.from_dataset(ds, split.train))

    # -- build ----------------------------------------------------------------------------
    import keras

    from kws.train.augment import Augmenter
    from kws.train.dataset import EvalBatches, TrainBatches
    from kws.train.macs import count_macs, format_macs
    from kws.train.nets import build_model, count_params

    keras.utils.set_random_seed(args.seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    model = build_model(args.model, input_shape=features.input_shape, n_classes=len(ds.label_names), **knobs)
    n_params, macs = count_params(model), count_macs(model)
    teacher = None
    if args.teacher:  # loaded after the student, so that its layer names are the usual ones
        from kws.train.distill import load_teachers

        teacher, teacher_infos = load_teachers(
            args.teacher, labels=ds.label_names, features=features, n_clips=n_clips,
            split={**split_id, "trained_on": list(trained_on)})
    print(f"model {args.model} {knobs}: {n_params:,} parameters, {format_macs(macs)} MACs per inference "
          f"({macs:,}); input {features.input_shape} ({preset})")
    folds = f" (fold {args.fold} of {args.folds} tested)" if args.folds else ""
    print(f"data {args.data}: {n_clips} clips; split by {split.by}{folds}: train {sizes['train']}, "
          f"val {sizes['val']}, test {sizes['test']}")
    if args.train_on != "train":
        print(f"training on {' + '.join(trained_on)}: {len(split.train)} clips; no validation, model.keras is "
              f"the last epoch" + ("; nothing held out to evaluate" if args.train_on == "all" else ""))
    for extra in extras:
        print(f"extra training clips {extra['path']}: {extra['n_clips']} clips"
              + (f" from {extra['speakers']} speakers" if extra["speakers"] is not None else ""))
    if aug == AugmentConfig.off():
        print("augmentation: off")
    else:
        print(f"augmentation: {aug.to_dict()}; noise: {noise_bank.source if noise_bank else 'none'}")
    if teacher is not None:
        print(f"distilling from {len(teacher_infos)} teacher(s), weight {args.distill_weight}: "
              + "; ".join(f"{t.path} ({t.model}, {t.parameters:,} parameters)" if t.parameters
                          else f"{t.path} ({t.model})" for t in teacher_infos))

    out.mkdir(parents=True, exist_ok=True)
    if args.force:
        _clear_outputs(out)

    silence = ds.label_names.index("silence") if "silence" in ds.label_names else None
    unknown = ds.label_names.index("unknown") if "unknown" in ds.label_names else None
    augmenter = None if aug == AugmentConfig.off() else Augmenter(
        aug, sample_rate_hz=ds.sample_rate_hz, noise=noise_bank, silence_label=silence, unknown_label=unknown)
    train_batches = TrainBatches(ds, split.train, features=features, batch_size=args.batch_size,
                                 augmenter=augmenter, seed=args.seed, balance=aug.balance,
                                 balance_power=aug.balance_power, steps_per_epoch=args.steps_per_epoch,
                                 workers=args.workers, teacher=teacher,
                                 distill_weight=args.distill_weight if teacher is not None else 0.0)
    val_batches = (EvalBatches(ds, split.val, features=features, batch_size=max(args.batch_size, 64))
                   if len(split.val) else None)

    model.compile(optimizer=make_optimizer(lr=args.lr, weight_decay=args.weight_decay),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=args.label_smoothing),
                  metrics=["accuracy"])

    meta = ModelMeta(tuple(ds.label_names), features, {
        "architecture": {"name": args.model, "params": knobs, "macs": macs, "parameters": n_params,
                         "input_shape": list(features.input_shape), "description": spec.description},
        "split": {**split_id, "by": split.by, "sizes": sizes, "trained_on": list(trained_on)},
        "training": {**_jsonable_args(args), "features_preset": preset_of(features),
                     "augmentation": aug.to_dict(), "noise": noise_bank.source if noise_bank else None,
                     "status": "running", "started_utc": _utc_now(), "keras": keras.__version__,
                     "backend": keras.backend.backend(),
                     **({"teachers": [t.to_dict() for t in teacher_infos]} if teacher is not None else {})},
        "data": {"path": str(Path(args.data).resolve()), "n_clips": n_clips,
                 **({"extra_train": extras} if extras else {})},
    })
    meta.save(out / "model.json")

    callbacks = make_callbacks(args, out)
    checkpoint, epoch_log = callbacks[0], callbacks[1]
    averager = next((c for c in callbacks if hasattr(c, "average")), None)
    swa: dict[str, Any] = {}   # what --swa-epochs did, once it is done
    if args.hard_negatives > 0:
        miner = hard_negative_callback(train_batches, fraction=args.hard_negatives)
        if miner is None:
            logger.warning("--hard-negatives: the training split has no unknown clips to mine; off")
        else:
            callbacks.append(miner)
    from kws.train.report import plot_curves, write_json

    def _training_summary(status: str) -> dict[str, Any]:
        return {**meta.extra["training"], "status": status, "finished_utc": _utc_now(),
                "epochs_run": len(epoch_log.history.get("loss", [])), "best_epoch": checkpoint.best_epoch,
                "best_val_loss": checkpoint.best if checkpoint.best_epoch and checkpoint.keep == "best" else None,
                "best_val_accuracy": checkpoint.best_logs.get("val_accuracy") if checkpoint.keep == "best" else None,
                **({"swa": swa} if swa else {}),
                "stopped_early": bool(getattr(model, "stop_training", False))
                and len(epoch_log.history.get("loss", [])) < args.epochs}

    def _mark_failed() -> None:
        """An unexpected error: model.json must not be left saying "running" (and must not hide it)."""
        with contextlib.suppress(Exception):
            (out / CHECKPOINT_TMP).unlink(missing_ok=True)
            meta.replace(training=_training_summary("failed")).save(out / "model.json")

    def _write_history() -> None:
        write_json(epoch_log.history, out / "history.json")
        if epoch_log.history.get("loss"):
            plot_curves(epoch_log.history, out / "curves.png", title=f"{args.model} ({out})")

    try:
        model.fit(train_batches, validation_data=val_batches, epochs=args.epochs, callbacks=callbacks,
                  verbose=1 if args.verbose else 0, shuffle=False)
        if averager is not None:
            swa.update(_finish_weight_average(model, averager, train_batches, checkpoint, args))
    except KeyboardInterrupt:
        try:
            meta = meta.replace(training=_training_summary("interrupted"))
            meta.save(out / "model.json")
            _write_history()
            (out / CHECKPOINT_TMP).unlink(missing_ok=True)
            if checkpoint.best_epoch:
                note = (f"Training was interrupted (Ctrl-C) after {len(epoch_log.history.get('loss', []))} "
                        f"epoch(s). model.keras is the {checkpoint.keep} checkpoint so far: epoch "
                        f"{checkpoint.best_epoch}, {checkpoint.monitor} {checkpoint.best:.4f}. "
                        "It has not been evaluated (no eval.json).\n")
            else:
                note = ("Training was interrupted (Ctrl-C) before the first epoch ended: there is no "
                        "checkpoint (no model.keras).\n")
            (out / "INTERRUPTED.txt").write_text(note)
            print(f"{PROG}: interrupted; {note.strip()}", file=sys.stderr)
        except KeyboardInterrupt:
            pass
        return EXIT_INTERRUPTED
    except Exception:
        _mark_failed()
        raise

    try:
        _write_history()
        if not checkpoint.best_epoch:
            _mark_failed()
            raise KwsError(f"{'validation' if val_batches else 'training'} loss was never finite in {args.epochs} "
                           "epoch(s): no checkpoint written; try a lower --lr", exit_code=1)

        # -- evaluate the best checkpoint --------------------------------------------------------
        from kws.train.report import format_report, plot_confusion

        eval_split, eval_idx = ("test", split.test) if len(split.test) else ("validation", split.val)
        if not len(eval_idx):
            meta = meta.replace(training=_training_summary("finished"))
            meta.save(out / "model.json")
            print(f"{_kept_model(checkpoint, swa)}; trained on "
                  f"{' + '.join(trained_on)}, nothing held out: not evaluated (no eval.json)")
            print(f"wrote {out}/: {', '.join(n for n in OUTPUT_FILES if (out / n).exists())}")
            return 0
        if eval_split != "test":
            logger.warning("no test split (--test-fraction 0): evaluating on the validation split")
        best = keras.models.load_model(out / "model.keras", compile=False)
        report = evaluate_checkpoint(best, EvalBatches(ds, eval_idx, features=features, batch_size=64),
                                     ds.label_names)
        report = {"split": eval_split, "checkpoint": {"epoch": checkpoint.best_epoch,
                                                      "val_loss": checkpoint.best if checkpoint.keep == "best"
                                                      else None, **({"swa": swa} if swa else {})},
                  "model": args.model, "data": str(Path(args.data).resolve()), **report}
        write_json(report, out / "eval.json")
        plot_confusion(report["confusion"], ds.label_names, out / "confusion.png",
                       title=f"{args.model}: {eval_split} accuracy {100 * (report['accuracy'] or 0):.1f}%")
        meta = meta.replace(training=_training_summary("finished"),
                            evaluation={"split": eval_split, "n": report["n"], "accuracy": report["accuracy"],
                                        "balanced_accuracy": report["balanced_accuracy"], "loss": report["loss"]})
        meta.save(out / "model.json")
        print(format_report(report))
        print(f"{_kept_model(checkpoint, swa)}; "
              f"{eval_split} accuracy {100 * report['accuracy']:.2f}% on {report['n']} clips")
        print(f"wrote {out}/: {', '.join(n for n in OUTPUT_FILES if (out / n).exists())}")
        return 0

    except KwsError:
        raise
    except Exception:
        _mark_failed()
        raise


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
