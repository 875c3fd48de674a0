"""Stochastic weight averaging for ``kws-train --swa-epochs K`` (Izmailov et al. 2018).

The last ``K`` epochs of a run are trained at one learning rate (``--swa-lr``); the weights at
the end of each of them are averaged, and the batch-normalisation statistics of the averaged
net, which no training step has seen, are recomputed on training batches. The average of
several points along the trajectory behaves like an ensemble of them, at the cost of one net.

Nothing here touches the model file: the trainer saves the result like any checkpoint.
"""
from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: ``--swa-lr`` when it is not given, as a fraction of ``--lr``.
DEFAULT_SWA_LR_FRACTION = 0.1


@dataclass(frozen=True)
class EpochLrSchedule:
    """Learning rate per epoch (``--lr-schedule`` constant or cosine), for a run of ``epochs`` epochs
    whose last ``swa_epochs`` (if any) are averaged.

    ``kind`` is the trainer's ``--lr-schedule`` (``constant`` or ``cosine``). Before the averaging
    epochs the rate is ``lr`` (constant) or decays from ``lr`` to ``swa_lr`` along half a cosine;
    during them it is ``swa_lr``. With ``swa_epochs`` 0, cosine is the plain decay to 0 over
    ``epochs``, exactly as without averaging.
    """

    kind: str
    lr: float
    epochs: int
    swa_epochs: int = 0
    swa_lr: float = 0.0

    def __call__(self, epoch: int) -> float:
        """The rate of 0-based ``epoch``."""
        decay_epochs = self.epochs - self.swa_epochs
        if self.swa_epochs and epoch >= decay_epochs:
            return float(self.swa_lr)
        if self.kind == "constant":
            return float(self.lr)
        floor = self.swa_lr if self.swa_epochs else 0.0
        return float(floor + (self.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * epoch / decay_epochs)))


def batch_norm_layers(model) -> list:
    """Every ``BatchNormalization`` layer of ``model``, those of nested models included."""
    import keras

    found, seen, stack = [], set(), list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop(0)
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        stack.extend(getattr(layer, "layers", None) or [])   # a nested model's own layers
    return found


@functools.cache
def weight_average_class():
    """The Keras callback class of :func:`make_weight_average` (made on first use, so that this module
    imports without Keras)."""
    import keras

    class WeightAverage(keras.callbacks.Callback):
        """Sums the trainable weights at the end of every 0-based epoch from ``start_epoch`` on whose
        training loss is finite; ``.average()`` gives their mean and ``.count`` how many were summed."""

        def __init__(self, start_epoch: int) -> None:
            super().__init__()
            self.start_epoch = start_epoch
            self.count = 0
            self._sum: list[np.ndarray] | None = None

        def on_epoch_end(self, epoch, logs=None):
            if epoch < self.start_epoch:
                return
            loss = (logs or {}).get("loss")
            if loss is None or not math.isfinite(float(loss)):
                logger.warning("weight averaging: epoch %d has no finite loss; not averaged", epoch + 1)
                return
            weights = [np.asarray(w.numpy(), dtype=np.float64)
                       for w in self.model.trainable_weights]
            self._sum = weights if self._sum is None else [s + w for s, w in zip(self._sum, weights)]
            self.count += 1

        def average(self) -> list[np.ndarray]:
            if not self.count:
                raise ValueError("no epoch was averaged")
            return [s / self.count for s in self._sum]

    return WeightAverage


def make_weight_average(*, start_epoch: int):
    """A Keras callback that sums the trainable weights at the end of every 0-based epoch from
    ``start_epoch`` on whose training loss is finite; ``.average()`` gives their mean (a list of
    float64 arrays in ``model.trainable_weights`` order) and ``.count`` how many were summed."""
    return weight_average_class()(start_epoch)


def find_weight_average(callbacks):
    """The :func:`make_weight_average` callback among ``callbacks``, or None."""
    cls = weight_average_class()
    return next((c for c in callbacks if isinstance(c, cls)), None)


def recompute_batch_norm(model, batches, *, max_batches: int | None = None) -> int:
    """Set every batch-norm layer's moving mean and variance to the average of its batch
    statistics over ``batches`` (a sequence of ``(x, ...)`` tuples, x float32 of the model's input
    shape), the net running in training mode. Returns the number of batches used (0 when the model
    has no batch-norm layer: nothing to do)."""
    import keras

    layers = batch_norm_layers(model)
    if not layers:
        return 0
    n = len(batches) if max_batches is None else min(len(batches), max_batches)
    momenta = [layer.momentum for layer in layers]
    try:
        for layer in layers:
            layer.moving_mean.assign(keras.ops.zeros_like(layer.moving_mean))
            layer.moving_variance.assign(keras.ops.ones_like(layer.moving_variance))
        for i in range(n):
            for layer in layers:       # moving = moving * i/(i+1) + batch/(i+1): the running mean
                layer.momentum = i / (i + 1.0)
            model(batches[i][0], training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return n


def apply_average(model, averager, batches, *, max_batches: int | None = None) -> dict[str, Any]:
    """Load ``averager``'s mean weights into ``model`` and recompute its batch-norm statistics on
    ``batches``. Returns what model.json records: ``{"averaged_epochs", "bn_batches"}``."""
    for variable, value in zip(model.trainable_weights, averager.average()):
        variable.assign(value.astype(variable.dtype))
    n = recompute_batch_norm(model, batches, max_batches=max_batches)
    return {"averaged_epochs": averager.count, "bn_batches": n}
