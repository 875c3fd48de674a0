"""A keyword model as the runtime uses it: interpreter + sidecar JSON + front-end."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from kws.runtime.errors import ModelError
from kws.runtime.features import FeatureConfig, compute_features
from kws.runtime.interpreter import TfliteModel, softmax
from kws.runtime.meta import ModelMeta, load_sidecar

logger = logging.getLogger(__name__)

#: File name of the shipped default model inside ``models/``.
DEFAULT_MODEL_NAME = "model_int8.tflite"


def default_model_path() -> Path:
    """The shipped int8 model (``models/model_int8.tflite`` of the installed package)."""
    from kws.models import MODELS_DIR

    path = MODELS_DIR / DEFAULT_MODEL_NAME
    if not path.is_file():
        raise ModelError(f"no shipped default model at {path}; pass --model PATH.tflite")
    return path


class KwsModel:
    """Classifies one-second windows of float audio into the model's labels.

    Parameters
    ----------
    path : a ``.tflite`` file with its JSON beside it (``X.tflite`` -> ``X.json``).
    threads, backend : passed to :class:`~kws.runtime.interpreter.TfliteModel`.
    """

    def __init__(self, path: str | Path, *, threads: int | None = None, backend: str = "auto") -> None:
        self.path = Path(path)
        self.meta: ModelMeta = load_sidecar(self.path)
        self.tflite = TfliteModel(self.path, threads=threads, backend=backend)
        self._check_consistent()

    def _check_consistent(self) -> None:
        expected_in = self.features.input_shape
        got_in = self.tflite.input_shape[1:]
        if tuple(got_in) != tuple(expected_in):
            raise ModelError(f"{self.path.name}: its JSON's feature settings give input shape "
                             f"{expected_in}, but the model takes {tuple(got_in)}")
        n_out = self.tflite.output_shape[-1]
        if n_out != len(self.labels):
            raise ModelError(f"{self.path.name}: its JSON lists {len(self.labels)} labels, but the "
                             f"model outputs {n_out} classes")

    @property
    def labels(self) -> tuple[str, ...]:
        return self.meta.labels

    @property
    def features(self) -> FeatureConfig:
        return self.meta.features

    @property
    def quantization_type(self) -> str:
        """``"float32"``, ``"dynamic"`` or ``"int8"``: the JSON's ``quantization.type``, or, where the
        JSON has none, the dtype of the model's input tensor (``"int8"`` or ``"float32"``: a
        dynamic-range model has float input, so without its JSON it reads as float32)."""
        quant = self.meta.quantization
        given = quant.get("type") if isinstance(quant, dict) else None
        return str(given or self.tflite.input_quant.dtype)

    @property
    def backend(self) -> str:
        return self.tflite.backend

    def logits(self, audio: np.ndarray) -> np.ndarray:
        """Logits for float audio of shape (window_samples,) or (batch, window_samples)."""
        return self.tflite.predict(compute_features(audio, self.features))

    def probabilities(self, audio: np.ndarray) -> np.ndarray:
        """Softmax posteriors, float32, shape (n_labels,) or (batch, n_labels)."""
        return softmax(self.logits(audio))
