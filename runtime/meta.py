"""The model sidecar JSON: everything a runtime needs to know besides the weights.

Every model travels with one: ``DIR/model.json`` beside a trained ``DIR/model.keras``, and
``X.json`` beside every exported ``X.tflite``. Schema (``format`` = ``kws-model/1``)::

    {
      "format": "kws-model/1",
      "labels": ["yes", ..., "silence"],          # index = output class
      "features": {...FeatureConfig...},          # sample rate, window, STFT/mel/log settings
      "architecture": {"name": "dscnn", "params": {...}, "macs": 5100000, "parameters": 24000},
      "quantization": {"type": "float32"|"dynamic"|"int8",
                       "input":  {"dtype": "int8", "scale": 0.1, "zero_point": -3},
                       "output": {"dtype": "int8", "scale": 0.2, "zero_point": 10}},
      "detection": {"threshold": 0.7, "smoothing_windows": 3, "refractory_ms": 1000,
                    "min_count": 1, ...},          # defaults for kws-listen (calibrated or not)
      "source_model": "runs/dscnn/model.keras",
      "sha256": "...",                            # of the .tflite file
      "exported_utc": "2026-11-26T22:00:00Z",
      "split": {...},                             # how the data were split for training
      "parity": {...}                             # float vs int8 numbers (export)
    }

Only ``format``, ``labels`` and ``features`` are required; other keys are kept as they are.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from kws.runtime.errors import ModelError
from kws.runtime.features import FeatureConfig

FORMAT = "kws-model/1"

#: Detection defaults used when a model's JSON has no ``detection`` section.
DEFAULT_DETECTION: dict[str, Any] = {
    "threshold": 0.7,
    "smoothing_windows": 3,
    "refractory_ms": 1000.0,
    "min_count": 1,
}


@dataclass(frozen=True)
class ModelMeta:
    """A parsed sidecar JSON. ``extra`` holds every other top-level key, unchanged."""

    labels: tuple[str, ...]
    features: FeatureConfig
    extra: Mapping[str, Any] = field(default_factory=dict)

    # -- accessors -----------------------------------------------------------------------
    @property
    def quantization(self) -> Mapping[str, Any]:
        return self.extra.get("quantization", {})

    @property
    def detection(self) -> dict[str, Any]:
        """Detection defaults: the JSON's ``detection`` over :data:`DEFAULT_DETECTION`."""
        return {**DEFAULT_DETECTION, **self.extra.get("detection", {})}

    def replace(self, **extra: Any) -> "ModelMeta":
        """A copy with top-level ``extra`` keys set (``labels``/``features`` stay)."""
        return ModelMeta(self.labels, self.features, {**self.extra, **extra})

    # -- JSON ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "labels": list(self.labels), "features": self.features.to_dict(),
                **{k: v for k, v in self.extra.items() if k not in ("format", "labels", "features")}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "model JSON") -> "ModelMeta":
        if not isinstance(data, Mapping):
            raise ModelError(f"{source}: expected a JSON object, got {type(data).__name__}")
        fmt = data.get("format")
        if fmt != FORMAT:
            raise ModelError(f"{source}: format {fmt!r} is not {FORMAT!r}")
        labels = data.get("labels")
        if (not isinstance(labels, list) or len(labels) < 2
                or not all(isinstance(x, str) and x for x in labels) or len(set(labels)) != len(labels)):
            raise ModelError(f"{source}: 'labels' must be a list of at least 2 distinct strings, "
                             f"got {labels!r}")
        if not isinstance(data.get("features"), Mapping):
            raise ModelError(f"{source}: missing 'features' object")
        try:
            features = FeatureConfig.from_dict(data["features"])
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{source}: bad 'features': {exc}") from None
        except ModelError:
            raise
        except Exception as exc:  # KwsError from FeatureConfig validation
            raise ModelError(f"{source}: bad 'features': {exc}") from None
        extra = {k: v for k, v in data.items() if k not in ("format", "labels", "features")}
        return cls(tuple(labels), features, extra)

    def to_json(self) -> str:
        """The JSON text every model JSON is written in (pretty, sorted keys, final newline)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_json` atomically; returns the path."""
        from kws.runtime.fileio import write_text_atomic

        return write_text_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "ModelMeta":
        from kws.runtime.fileio import read_json

        return cls.from_dict(read_json(path, what="model JSON", error=ModelError), source=str(path))


def sidecar_path(model_path: str | Path) -> Path:
    """``models/model_int8.tflite`` -> ``models/model_int8.json``."""
    return Path(model_path).with_suffix(".json")


def load_sidecar(model_path: str | Path) -> ModelMeta:
    """The JSON that travels with ``model_path``; a model without one is refused."""
    json_path = sidecar_path(model_path)
    if Path(model_path).is_dir():
        raise ModelError(f"{model_path}: is a directory; expected a .tflite model file")
    if not Path(model_path).exists():
        raise ModelError(f"{model_path}: model file not found (expected a .tflite file exported by "
                         "convert/export.py)")
    if not json_path.exists():
        raise ModelError(f"{model_path}: no feature/label JSON beside it (expected {json_path}); "
                         "export the model with convert/export.py, which writes it")
    return ModelMeta.load(json_path)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def split_seed_and_fractions(split_meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """``seed``, ``val_fraction``, ``test_fraction`` from a model JSON's ``split`` section (or a
    stream truth's ``split_settings``), with kws-train's defaults (0, 0.1, 0.1) for what it lacks;
    for a split into speaker folds (``kws-train --folds``) ``seed``, ``folds`` and ``fold`` instead
    (the fractions play no part there). Two records that give the same dict chose the same
    speakers; it is also what ``split_dataset`` takes."""
    raw = split_meta or {}
    folds = int(raw.get("folds") or 0)
    if folds:
        return {"seed": int(raw.get("seed", 0)), "folds": folds, "fold": int(raw.get("fold", 0))}
    return {"seed": int(raw.get("seed", 0)), "val_fraction": float(raw.get("val_fraction", 0.1)),
            "test_fraction": float(raw.get("test_fraction", 0.1))}


def trained_parts(split_meta: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The parts of the speaker split a model was fitted on, from its JSON's ``split`` section
    (``trained_on``, written by ``kws-train --train-on``; models without it were fitted on
    ``("train",)``)."""
    raw = (split_meta or {}).get("trained_on") or ["train"]
    return tuple(str(p) for p in raw)
