"""``kws-train --init-from RUN``: fine-tune from an earlier run's weights.

The source is a kws-train output folder (``model.keras`` and ``model.json``) or a ``model.keras``
file with its ``model.json`` beside it. The new run takes its network (``architecture`` name and
knobs) and front-end (``features``) from the source's ``model.json``, so ``--model`` may be
omitted; a model, knob or front-end flag that is given and differs is refused, naming the flag,
its value and the source's. The data must have the source's labels in the same order, and its
sample rate and window must be the source's. Training then starts from the source's weights
(batch-norm statistics included) with a fresh optimizer: the use is Mycroft Precise's incremental
training, e.g. false accepts mined from one's own room (``kws-eval-stream --save-false-accepts``)
given to ``--extra-train``.

:func:`read_source` and :func:`adopt_source` read and check the source without Keras, before
any data is loaded; :func:`check_source_fits` checks it against the data; :func:`copy_weights`
puts the source's weights into the freshly built registry model.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from kws.runtime.errors import KwsError
from kws.runtime.features import FeatureConfig
from kws.runtime.fileio import read_json
from kws.runtime.meta import ModelMeta, split_seed_and_fractions, trained_parts
from kws.train.nets import MODELS, resolve_knobs

logger = logging.getLogger(__name__)

FLAG = "--init-from"


@dataclass(frozen=True)
class InitSource:
    """A checked source run.

    Attributes
    ----------
    path : the resolved ``model.keras`` file
    meta : its ``model.json``
    model : registry name of its network
    knobs : the network's knobs, as :func:`kws.train.nets.resolve_knobs` gives them
    """

    path: Path
    meta: ModelMeta
    model: str
    knobs: Mapping[str, Any]

    @property
    def folder(self) -> Path:
        return self.path.parent

    def to_dict(self) -> dict[str, Any]:
        """The new run's ``model.json`` ``training.init_from``."""
        best = (self.meta.extra.get("training") or {}).get("best_val_loss")
        return {"path": str(self.path), "model": self.model, "best_val_loss": best}


def read_source(path: str | Path) -> InitSource:
    """Find and read the source run at ``path`` (a folder, or a ``.keras`` file); no Keras.

    Raises
    ------
    KwsError
        ``path`` missing, a folder without ``model.keras``, a model without ``model.json`` beside
        it, a ``model.json`` that is unreadable or malformed, or a network not in the registry.
    """
    given = Path(path)
    if not given.exists():
        raise KwsError(f"{FLAG} {given}: not found; expected a kws-train output folder or its model.keras")
    keras_path = given / "model.keras" if given.is_dir() else given
    if not keras_path.is_file():
        raise KwsError(f"{FLAG} {given}: no model.keras in this folder; expected a kws-train output folder")
    if keras_path.suffix != ".keras":
        raise KwsError(f"{FLAG} {given}: expected a .keras model file or a kws-train output folder")
    json_path = keras_path.with_name("model.json")
    if not json_path.is_file():
        raise KwsError(f"{FLAG} {given}: no model.json beside {keras_path.name} (expected {json_path}, "
                       "which kws-train writes with it)")
    data = read_json(json_path, what=f"model JSON of {FLAG}", error=KwsError)
    meta = ModelMeta.from_dict(data, source=f"{FLAG} {json_path}")
    arch = meta.extra.get("architecture")
    name = arch.get("name") if isinstance(arch, Mapping) else None
    params = arch.get("params", {}) if isinstance(arch, Mapping) else None
    if name == "ensemble":
        raise KwsError(f"{FLAG} {given}: is a kws-ensemble model, which cannot be fine-tuned as one network; "
                       "give one of its member runs")
    if name not in MODELS or not isinstance(params, Mapping):
        got = f"name {name!r}, params {type(params).__name__}" if isinstance(arch, Mapping) else repr(arch)[:80]
        raise KwsError(f"{FLAG} {json_path}: 'architecture' must name a registry model ({', '.join(MODELS)}) "
                       f"with its 'params' object; got {got}")
    try:
        knobs = resolve_knobs(name, params)
    except KwsError as exc:
        raise KwsError(f"{FLAG} {json_path}: bad architecture params: {exc}") from None
    return InitSource(keras_path.resolve(), meta, name, knobs)


def adopt_source(args: argparse.Namespace, source: InitSource, *, knob_flags: Mapping[str, str]) -> None:
    """Take the network and front-end flags from ``source``, refusing any given flag that differs.

    ``knob_flags`` maps an argparse dest to its registry knob (``train_args.KNOB_FLAGS``). Sets
    ``args.model``, the knob flags, ``args.features``, ``args.mel_bands`` and ``args.log`` to the
    source's values, so that the usual code resolves the same network and front-end.
    """
    def refuse(given: str, theirs: Any) -> None:
        raise KwsError(f"{given}: differs from the {FLAG} run's {theirs} ({source.folder}); fine-tuning keeps "
                       f"the source's network and front-end, so drop {given.split()[0]}")

    def shown(value: Any) -> str:
        return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)

    if args.model is not None and args.model != source.model:
        refuse(f"--model {args.model}", f"model {source.model}")
    args.model = source.model
    for dest, knob in knob_flags.items():
        value = getattr(args, dest)
        if value is None:
            continue
        # validated as the source's network would take it (--width 8.0 is dscnn's 8)
        mine = resolve_knobs(source.model, {**source.knobs, knob: value})[knob]
        if mine != source.knobs.get(knob):
            flag = f"--{dest.replace('_', '-')}"
            refuse(f"{flag} {shown(mine)}", f"{flag} {shown(source.knobs.get(knob)) or 'none'}")
    for dest, knob in knob_flags.items():
        if knob in source.knobs:
            setattr(args, dest, source.knobs[knob])

    from kws.train.presets import PRESETS, preset_of

    src = source.meta.features
    preset = preset_of(src)
    if preset not in PRESETS:
        raise KwsError(f"{FLAG} {source.folder}: front-end {preset} has no --features preset; cannot fine-tune it")
    if args.features is not None and args.features != preset:
        refuse(f"--features {args.features}", f"--features {preset}")
    if args.mel_bands is not None and args.mel_bands != src.mel_bands:
        refuse(f"--mel-bands {args.mel_bands}", f"--mel-bands {src.mel_bands}" if src.mel_bands
               else f"--features {preset} (no mel bands)")
    if args.log is not None and args.log != src.log:
        refuse("--log" if args.log else "--no-log", "--log" if src.log else "--no-log")
    args.features = preset
    args.mel_bands = src.mel_bands or None
    args.log = src.log if preset in ("seed-stft", "log-mel") else None


def check_out_dir_is_not_source(out: Path, source: InitSource) -> None:
    """Refuse ``--out`` at the source's folder: ``--force`` would replace the weights being read."""
    if Path(out).resolve() == source.folder:
        raise KwsError(f"--out {out}: is the {FLAG} run's folder; expected another folder (writing there would "
                       "replace the source's model.keras)")


def check_source_fits(source: InitSource, *, labels: Sequence[str], features: FeatureConfig,
                      split: Mapping[str, Any], n_clips: int) -> None:
    """The data's labels (in order) and front-end (sample rate and window too) must be the source's.

    ``split`` (this run's ``split_identity`` plus ``trained_on``) and ``n_clips`` only warn: a
    source fitted on other speakers of the same data may have seen this run's held-out ones.
    """
    if tuple(labels) != tuple(source.meta.labels):
        raise KwsError(f"{FLAG} {source.folder}: its labels {list(source.meta.labels)} differ from the "
                       f"data's {list(labels)}; fine-tuning needs the same labels in the same order")
    if features != source.meta.features:
        mine, theirs = features.to_dict(), source.meta.features.to_dict()
        diff = ", ".join(f"{k} {theirs.get(k)!r} (this data: {mine.get(k)!r})"
                         for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k))
        raise KwsError(f"{FLAG} {source.folder}: its front-end differs from this run's: {diff}")
    src_split = source.meta.extra.get("split") or {}
    src_clips = (source.meta.extra.get("data") or {}).get("n_clips")
    same_split = (src_clips == n_clips and split_seed_and_fractions(src_split) == split_seed_and_fractions(split)
                  and set(trained_parts(src_split)) <= set(trained_parts(split)))
    if not same_split:
        logger.warning("%s %s: the source was not fitted on this run's training split of this data (%s clips, "
                       "split %s, trained on %s), so it may have seen this run's validation and test speakers: "
                       "its held-out numbers may be optimistic", FLAG, source.folder, src_clips,
                       split_seed_and_fractions(src_split), "+".join(trained_parts(src_split)))


def copy_weights(model, source: InitSource) -> None:
    """Load ``source``'s ``model.keras`` and copy its weights into ``model``, layer by layer by name.

    ``model`` is the registry network built with the source's knobs, input shape and class count;
    every weight (kernels, biases, batch-norm scales, offsets and moving statistics) must exist in
    the source with the same shape, or a :class:`KwsError` names the first that does not.
    """
    from kws.convert.export import check_model_fits, load_keras

    src = load_keras(source.path)
    check_model_fits(src, source.meta, name=f"{FLAG} {source.path}")
    src_layers = {layer.name: layer for layer in src.layers if layer.weights}
    dst_layers = [layer for layer in model.layers if layer.weights]
    if sorted(src_layers) != sorted(layer.name for layer in dst_layers):
        raise KwsError(f"{FLAG} {source.path}: its layers {sorted(src_layers)} are not those of registry model "
                       f"{source.model} {dict(source.knobs)}")
    for layer in dst_layers:
        theirs = src_layers[layer.name].get_weights()
        mine = layer.get_weights()
        shapes = [tuple(w.shape) for w in theirs], [tuple(w.shape) for w in mine]
        if shapes[0] != shapes[1]:
            raise KwsError(f"{FLAG} {source.path}: layer {layer.name} has weights of shapes {shapes[0]}, registry "
                           f"model {source.model} {dict(source.knobs)} expects {shapes[1]}")
        layer.set_weights(theirs)
    logger.debug("%s: copied %d layers' weights from %s", FLAG, len(dst_layers), source.path)
