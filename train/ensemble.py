"""``kws-ensemble``: several ``kws-train`` runs merged into one model that averages their posteriors.

Example::

    kws-ensemble --run runs/w36s0 --run runs/w36s1 --run runs/w36s2 --out runs/w36ens
    python convert/export.py --int8 --model runs/w36ens --out runs/w36ens/export

The output directory looks like a ``kws-train`` run (``DIR/model.keras`` + ``DIR/model.json``), so
``convert/export.py``, its parity report, the runtime and ``kws-eval-stream`` treat the ensemble as
one model with one input: the front-end runs once per window, each member scores it, and the
graph combines their outputs. The model outputs logits like every other model here:

- ``--combine mean`` (default): ``log(max(mean_m softmax(z_m), 1e-6))``, whose softmax is the mean
  of the members' posteriors (the ensemble of ``docs/experiments.md``);
- ``--combine geometric``: ``mean_m z_m``, whose softmax is the normalised geometric mean of
  their posteriors (no softmax or log in the graph).

Members must be interchangeable: the same labels, front-end, input shape, data (clip count) and
speaker split, fitted on the same parts of it (``--train-on``), so the ensemble holds out exactly
the speakers each member held out. The MACs of the ensemble are the members' added up.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from kws.runtime.cli import configure_logging, run_main
from kws.runtime.errors import KwsError
from kws.runtime.meta import ModelMeta, split_seed_and_fractions, trained_parts

logger = logging.getLogger(__name__)

PROG = "kws-ensemble"
COMBINE_MODES = ("mean", "geometric")
#: Smallest mean posterior before the log (``--combine mean``): keeps the int8 output range finite.
POSTERIOR_FLOOR = 1e-6
#: Files kws-ensemble writes; ``--force`` replaces exactly these.
OUTPUT_FILES = ("model.keras", "model.json")


@dataclass(frozen=True)
class Member:
    """One ``kws-train`` run of the ensemble: where it came from, its JSON and its Keras model."""

    path: Path
    meta: ModelMeta
    model: Any    # keras.Model, logits out

    @property
    def architecture(self) -> dict[str, Any]:
        arch = self.meta.extra.get("architecture")
        return dict(arch) if isinstance(arch, dict) else {}

    def summary(self) -> dict[str, Any]:
        """What the ensemble's model.json records of this member."""
        arch = self.architecture
        return {"path": str(self.path), "model": arch.get("name"), "params": arch.get("params"),
                "macs": arch.get("macs"), "parameters": arch.get("parameters"),
                "test_accuracy": (self.meta.extra.get("evaluation") or {}).get("accuracy")}


def _setup(meta: ModelMeta) -> dict[str, Any]:
    """The settings members must share, by name (the values compared, and shown when they differ)."""
    split = meta.extra.get("split") or {}
    return {"labels": list(meta.labels), **{f"features.{k}": v for k, v in meta.features.to_dict().items()},
            **{f"split.{k}": v for k, v in split_seed_and_fractions(split).items()},
            "split.trained_on": list(trained_parts(split)),
            "data.n_clips": (meta.extra.get("data") or {}).get("n_clips")}


def check_members(metas: Sequence[ModelMeta], sources: Sequence[str]) -> None:
    """Refuse members that are not interchangeable (see the module docstring).

    Raises :class:`KwsError` naming the member and every setting in which it differs from the first.
    """
    if len(metas) != len(sources):
        raise ValueError("one source per member JSON")
    reference = _setup(metas[0])
    for meta, source in zip(metas[1:], sources[1:]):
        theirs = _setup(meta)
        diff = [f"{key} {theirs.get(key)!r} (against {reference.get(key)!r})"
                for key in sorted(set(reference) | set(theirs)) if theirs.get(key) != reference.get(key)]
        if diff:
            raise KwsError(f"--run {source}: differs from --run {sources[0]} in {'; '.join(diff)}; the members "
                           "of an ensemble must share labels, front-end, data and speaker split")


def load_members(dirs: Sequence[str | Path]) -> list[Member]:
    """Load and check each run (``DIR/model.keras`` + ``DIR/model.json``)."""
    from kws.convert.export import check_model_fits, load_keras

    paths = [Path(d) for d in dirs]
    seen: dict[Path, Path] = {}
    for p in paths:
        if not (p / "model.keras").is_file() or not (p / "model.json").is_file():
            raise KwsError(f"--run {p}: expected a kws-train output directory with model.keras and model.json")
        key = p.resolve()
        if key in seen:
            raise KwsError(f"--run {p}: given twice (also as {seen[key]}); each member must be another run")
        seen[key] = p
    metas = [ModelMeta.load(p / "model.json") for p in paths]
    check_members(metas, [str(p) for p in paths])
    members = []
    for p, meta in zip(paths, metas):
        model = load_keras(p / "model.keras")
        check_model_fits(model, meta, name=f"--run {p / 'model.keras'}")
        members.append(Member(p, meta, model))
    return members


def build_ensemble(models: Sequence[Any], *, combine: str = "mean"):
    """One Keras model over the members' shared input; logits out (see the module docstring).

    ``models``: Keras models taking the same input ``float32 (B, *input_shape)`` and giving logits
    ``(B, n_classes)``. They are renamed ``member0``, ``member1``, ... inside the ensemble.
    """
    import keras

    if combine not in COMBINE_MODES:
        raise KwsError(f"--combine {combine!r}: expected one of {', '.join(COMBINE_MODES)}")
    if len(models) < 2:
        raise KwsError(f"an ensemble needs at least 2 members, got {len(models)}")
    inputs = keras.Input(shape=tuple(models[0].inputs[0].shape[1:]), name="features")
    outputs = []
    for i, model in enumerate(models):
        model.name = f"member{i}"
        outputs.append(model(inputs))
    if combine == "geometric":
        logits = keras.layers.Average(name="mean_logits")(outputs)
    else:
        probs = [keras.layers.Softmax(name=f"member{i}_posterior")(z) for i, z in enumerate(outputs)]
        mean = keras.layers.Average(name="mean_posterior")(probs)
        logits = keras.ops.log(keras.ops.maximum(mean, POSTERIOR_FLOOR))
    return keras.Model(inputs, logits, name=f"ensemble_{combine}")


def ensemble_meta(members: Sequence[Member], *, combine: str) -> ModelMeta:
    """The ensemble's model.json: the first member's labels, front-end, split and data, and an
    ``architecture`` of ``name`` "ensemble" whose MACs and parameters are the members' sums
    (``None`` where a member's JSON lacks them)."""
    first = members[0].meta
    summaries = [m.summary() for m in members]

    def total(key: str) -> int | None:
        values = [s[key] for s in summaries]
        return int(sum(values)) if all(isinstance(v, int) for v in values) else None

    names = sorted({str(s["model"]) for s in summaries})
    keep = {k: v for k, v in first.extra.items() if k in ("split", "data")}
    return ModelMeta(first.labels, first.features, {
        **keep,
        "architecture": {"name": "ensemble", "description": f"mean of {len(members)} {'/'.join(names)} nets "
                                                            f"({combine})",
                         "input_shape": list(first.features.input_shape), "macs": total("macs"),
                         "parameters": total("parameters"),
                         "params": {"combine": combine, "members": len(members)}},
        "ensemble": {"combine": combine, "members": summaries},
        "training": {"tool": PROG, "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
    })


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Merge kws-train runs into one model that averages their "
                                                       "posteriors; export it with convert/export.py.")
    p.add_argument("--run", action="append", default=[], metavar="DIR",
                   help="a kws-train output directory (repeat, at least twice)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (model.keras + model.json)")
    p.add_argument("--combine", choices=COMBINE_MODES, default="mean",
                   help="mean of the posteriors (default) or their geometric mean (mean of the logits)")
    p.add_argument("--force", action="store_true", help="replace an existing ensemble in --out")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings only")
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(-1 if args.quiet else 0)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up lines, before its lazy import
    if len(args.run) < 2:
        raise KwsError(f"--run: an ensemble needs at least 2 kws-train runs, got {len(args.run)}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise KwsError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any((out / n).exists() for n in OUTPUT_FILES) and not args.force:
        raise KwsError(f"--out {out}: already holds a model; pass --force to replace it, or choose another --out")
    if out.resolve() in {Path(r).resolve() for r in args.run}:
        raise KwsError(f"--out {out}: is one of the members; choose another directory")

    members = load_members(args.run)
    model = build_ensemble([m.model for m in members], combine=args.combine)
    meta = ensemble_meta(members, combine=args.combine)

    from kws.runtime.fileio import write_atomically

    def save_keras(tmp: Path) -> None:   # Keras insists on the .keras suffix
        staged = tmp.with_name(tmp.name + ".keras")
        try:
            model.save(staged)
            os.replace(staged, tmp)
        finally:
            staged.unlink(missing_ok=True)

    write_atomically([(out / "model.keras", save_keras),
                      (out / "model.json", lambda tmp: tmp.write_text(meta.to_json()))])
    arch = meta.extra["architecture"]
    macs = f"{arch['macs']:,} MACs" if arch["macs"] is not None else "MACs unknown"
    params = f"{arch['parameters']:,} parameters" if arch["parameters"] is not None else "parameters unknown"
    how = "mean of posteriors" if args.combine == "mean" else "geometric mean of posteriors (mean of logits)"
    print(f"{len(members)} members ({how}): {macs}, {params}; wrote {out}/: {', '.join(OUTPUT_FILES)}")
    print(f"next: python convert/export.py --int8 --model {out} --out {out}/export")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
