"""The ``kws-train`` command line: its flags, their checks, and the output folder.

:func:`build_parser` declares every flag; :func:`check_args` refuses a bad value with a message
that names the flag, before anything is read or written; :func:`augment_config` and
:func:`split_identity` turn the flags into the augmentation and the split they ask for;
:func:`check_out_dir` and :func:`clear_outputs` guard the output folder. Nothing here imports
Keras: the run itself is :mod:`kws.train.trainer`, its callbacks :mod:`kws.train.callbacks`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from kws.runtime.errors import KwsError
from kws.runtime.fileio import check_seed
from kws.train.augment import BALANCE_MODES, AugmentConfig
from kws.train.data import TRAIN_ON
from kws.train.nets import MODELS, describe_models
from kws.train.swa import DEFAULT_SWA_LR_FRACTION

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


def build_parser() -> argparse.ArgumentParser:
    from kws.train.presets import PRESETS

    p = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a keyword-spotting model on an npz (seed schema) and write DIR/model.keras, "
                    "model.json, history.json, curves.png, eval.json and confusion.png.",
        epilog="models:\n" + "\n".join("  " + line for line in describe_models().splitlines()))
    g = p.add_argument_group("data and output")
    g.add_argument("--data", metavar="FILE.npz", help="training npz: wav_vals (N, 8000), label_vals (N, 1)")
    g.add_argument("--model", metavar="NAME", help=f"registry model: {', '.join(MODELS)} (with --init-from: "
                                                   "the source run's, may be omitted)")
    g.add_argument("--init-from", metavar="RUN",
                   help="fine-tune: start from the weights of an earlier kws-train run (its folder, or its "
                        "model.keras with model.json beside it), with its network, front-end and labels")
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
    g.add_argument("--channel-eq", type=float, default=0.0, metavar="P",
                   help="probability that a clip (noise included) goes through a random microphone channel: "
                        "a smooth random frequency response (tilt, resonances, band limits) at the clip's own "
                        "level, so that the net cannot lean on one corpus's recording equipment (default 0 = off)")
    g.add_argument("--channel-eq-db", type=float, default=12.0, metavar="DB",
                   help="largest resonance gain of --channel-eq either way, in dB (default 12)")
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
                        "speed_perturb", "speed_range", "vtlp", "vtlp_range", "reversed_keywords", "channel_eq",
                        "channel_eq_db", "no_noise",
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
        defaults = build_parser()
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
        channel_prob=args.channel_eq,
        channel_db=args.channel_eq_db,
    )


def _as_list(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def check_args(args: argparse.Namespace) -> None:
    if not args.data:
        raise KwsError("--data FILE.npz is required (the training set)")
    if not args.model and not args.init_from:
        raise KwsError(f"--model NAME is required (or --init-from RUN); expected one of: {', '.join(MODELS)}")
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


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse an existing, non-empty output directory without ``--force`` (touching nothing)."""
    if out.exists() and not out.is_dir():
        raise KwsError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise KwsError(f"--out {out}: directory exists and is not empty; pass --force to overwrite "
                       "its kws-train files, or choose another --out")


def clear_outputs(out: Path) -> None:
    for name in OUTPUT_FILES + (CHECKPOINT_TMP,):
        path = out / name
        if path.is_file() or path.is_symlink():
            path.unlink()
