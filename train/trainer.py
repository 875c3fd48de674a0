"""``kws-train``: train a registry model on an npz and write a self-describing output directory.

Example::

    kws-train --data ../shared/data/kws_real_dev_8k.npz --model dscnn --epochs 30 \\
              --lr 1e-3 --lr-schedule cosine --out runs/dscnn

Fine-tuning from that run's weights, keeping its network, front-end and labels (kws.train.init_from)::

    kws-train --data ../shared/data/kws_real_dev_8k.npz --init-from runs/dscnn \\
              --extra-train mined.npz --epochs 5 --lr 3e-4 --out runs/dscnn_ft

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
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kws.runtime.cli import configure_logging, run_main
from kws.runtime.errors import EXIT_INTERRUPTED, KwsError
from kws.runtime.meta import ModelMeta
from kws.train.augment import AugmentConfig
from kws.train.callbacks import (finish_weight_average, hard_negative_callback, kept_model_line, make_callbacks,
                                 make_optimizer)
from kws.train.data import TRAIN_ON
from kws.train.init_from import (adopt_source, check_out_dir_is_not_source, check_source_fits, copy_weights,
                                 read_source)
from kws.train.nets import describe_models, get_spec, resolve_knobs
from kws.train.swa import find_weight_average
from kws.train.train_args import (CHECKPOINT_TMP, KNOB_FLAGS, OUTPUT_FILES, PROG, augment_config, build_parser,
                                  check_args, check_out_dir, clear_outputs, split_identity)

logger = logging.getLogger(__name__)


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
    args = build_parser().parse_args(argv)
    configure_logging(-1 if args.quiet else max(0, args.verbose - 1))
    # TensorFlow's C++ start-up lines (CPU features, the generator's malloc note) say nothing a
    # user can act on; -vv shows them. Set before the first (lazy) TensorFlow import.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if args.verbose < 2 else "0")
    if args.list_models:
        print(describe_models())
        return 0
    check_args(args)

    # -- everything that can be refused is checked before anything is written ----------
    source = None
    if args.init_from:   # the network and front-end are the source run's (its model.json only, no Keras)
        source = read_source(args.init_from)
        adopt_source(args, source, knob_flags=KNOB_FLAGS)
    spec = get_spec(args.model)
    knobs = resolve_knobs(args.model, {knob: getattr(args, flag) for flag, knob in KNOB_FLAGS.items()})
    aug = augment_config(args)
    out = Path(args.out or Path("runs") / args.model)
    if source is not None:
        check_out_dir_is_not_source(out, source)
    check_out_dir(out, args.force)

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
    if source is not None:
        check_source_fits(source, labels=ds.label_names, features=features, n_clips=len(ds),
                          split={**split_id, "trained_on": list(TRAIN_ON[args.train_on])})
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
    if source is not None:
        copy_weights(model, source)
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
    if source is not None:
        src_best = source.to_dict()["best_val_loss"]
        print(f"starting from the weights of {source.path} ({source.model}"
              + (f", best val loss {src_best:.4f})" if isinstance(src_best, (int, float)) else ")"))
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
        clear_outputs(out)

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
                     **({"teachers": [t.to_dict() for t in teacher_infos]} if teacher is not None else {}),
                     **({"init_from": source.to_dict()} if source is not None else {})},
        "data": {"path": str(Path(args.data).resolve()), "n_clips": n_clips,
                 **({"extra_train": extras} if extras else {})},
    })
    meta.save(out / "model.json")

    callbacks = make_callbacks(args, out)
    checkpoint, epoch_log = callbacks[0], callbacks[1]
    averager = find_weight_average(callbacks)
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
            swa.update(finish_weight_average(model, averager, train_batches, checkpoint, args))
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
            print(f"{kept_model_line(checkpoint, swa)}; trained on "
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
        print(f"{kept_model_line(checkpoint, swa)}; "
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
