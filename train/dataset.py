"""Feeding Keras: feature presets and batch sequences over a :class:`~kws.train.data.Dataset`.

The clip array is never copied as a whole: each batch gathers its rows with
``Dataset.audio(idx)`` (which converts only those rows), augments them
(:mod:`kws.train.augment`), and runs THE front-end,
:func:`kws.runtime.features.compute_features`, on them. Validation and test batches are
computed once and cached while they fit in ``cache_mb``.

Batches are ``keras.utils.PyDataset`` objects, so ``model.fit`` can prefetch them in worker
threads. Every batch draws its randomness from ``numpy.random.default_rng((seed, epoch, batch))``,
so a run is reproducible for a seed whatever the number of workers.
"""

from __future__ import annotations

import logging
import math

import keras
import numpy as np

from kws.runtime.errors import KwsError
from kws.runtime.features import FeatureConfig, compute_features
from kws.train.augment import Augmenter, class_weights, epoch_indices
from kws.train.distill import mix_targets

logger = logging.getLogger(__name__)

_SHUFFLE_STREAM = 0x5EED
_BATCH_STREAM = 0xBA7C


def _one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(labels), n_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


class TrainBatches(keras.utils.PyDataset):
    """Augmented, shuffled (optionally class-balanced) training batches.

    Yields ``(features float32 (B, *input_shape), targets float32 (B, n_classes))`` (one-hot, or
    mixed with a teacher's posteriors when distilling), plus
    per-example loss weights ``float32 (B,)`` when ``balance == "weights"``.

    Parameters
    ----------
    dataset : kws.train.data.Dataset
    indices : int array, the training clips
    features : FeatureConfig
    batch_size : int
    augmenter : Augmenter or None (None = no augmentation)
    seed : int
    balance : {"sample", "weights", "none"}
    balance_power : float
    steps_per_epoch : int or None
        Cap on batches per epoch (quick runs and tests).
    workers : int
        Threads that prepare batches ahead (Keras ``PyDataset`` workers).
    teacher : callable or None
        Distillation (:mod:`kws.train.distill`): maps the batch's (augmented) features to posteriors
        ``float32 (B, n_classes)``; the targets become ``(1 - distill_weight) * one_hot +
        distill_weight * teacher(x)``.
    distill_weight : float
        Weight of the teacher's posteriors in the targets, in [0, 1].
    """

    def __init__(self, dataset, indices, *, features: FeatureConfig, batch_size: int,
                 augmenter: Augmenter | None = None, seed: int = 0, balance: str = "none",
                 balance_power: float = 0.5, steps_per_epoch: int | None = None, workers: int = 1,
                 teacher=None, distill_weight: float = 0.0) -> None:
        super().__init__(workers=max(1, workers), use_multiprocessing=False,
                         max_queue_size=max(2, 2 * workers))
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        if len(self.indices) == 0:
            raise KwsError("the training split is empty; lower --val-fraction/--test-fraction or add clips")
        self.features = features
        self.batch_size = int(batch_size)
        self.augmenter = augmenter
        self.seed = int(seed)
        self.balance = balance
        self.balance_power = float(balance_power)
        self.n_classes = len(dataset.label_names)
        self.steps_cap = steps_per_epoch
        counts = np.bincount(dataset.labels[self.indices], minlength=self.n_classes)
        self.weights = class_weights(counts, self.balance_power) if balance == "weights" else None
        self.teacher = teacher
        self.distill_weight = float(distill_weight)
        #: Clip indices drawn once more in each epoch from the next one on (hard-negative mining
        #: sets them; see :func:`kws.train.callbacks.hard_negative_callback`).
        self.extra = np.zeros(0, dtype=np.int64)
        self.epoch = 0
        self._order = self._make_order(0)

    def _make_order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, _SHUFFLE_STREAM, epoch))
        if self.balance == "sample":
            order = epoch_indices(self.indices, self.dataset.labels, n_classes=self.n_classes,
                                  power=self.balance_power, rng=rng)
        else:
            order = rng.permutation(self.indices)
        if len(self.extra):
            order = rng.permutation(np.concatenate([order, self.extra]))
        return order

    def __len__(self) -> int:
        n = math.ceil(len(self._order) / self.batch_size)
        return min(n, self.steps_cap) if self.steps_cap else n

    def batch(self, index: int, epoch: int | None = None):
        """Batch ``index`` of ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        order = self._order if epoch == self.epoch else self._make_order(epoch)
        idx = order[index * self.batch_size:(index + 1) * self.batch_size]
        rng = np.random.default_rng((self.seed, _BATCH_STREAM, epoch, index))
        # Gather in file order (kind to a memory map), then restore the drawn order.
        sort = np.argsort(idx, kind="stable")
        audio = np.empty((len(idx), self.dataset.window_samples), dtype=np.float32)
        audio[sort] = self.dataset.audio(idx[sort])
        labels = self.dataset.labels[idx]
        if self.augmenter is not None:
            audio, labels = self.augmenter.relabel(audio, labels, rng)
            audio = self.augmenter.waveforms(audio, labels, rng)
            x = self.augmenter.features(self.augmenter.front_end(audio, self.features, rng), rng)
        else:
            x = compute_features(audio, self.features)
        y = _one_hot(labels, self.n_classes)
        if self.teacher is not None:
            y = mix_targets(y, self.teacher(x), self.distill_weight)
        if self.weights is not None:
            return x, y, self.weights[labels]
        return x, y

    def __getitem__(self, index: int):
        return self.batch(index)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._make_order(self.epoch)


class EvalBatches(keras.utils.PyDataset):
    """Plain (not augmented, not shuffled) batches for validation, test and prediction.

    Features are cached after their first computation while the total stays under ``cache_mb``.
    ``labels`` holds the true class of every row, in order.
    """

    def __init__(self, dataset, indices, *, features: FeatureConfig, batch_size: int,
                 cache_mb: float = 512.0) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.features = features
        self.batch_size = int(batch_size)
        self.n_classes = len(dataset.label_names)
        self.labels = dataset.labels[self.indices]
        item_bytes = 4 * math.prod(features.input_shape)
        self.cached = len(self.indices) * item_bytes <= cache_mb * 1e6
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    def __getitem__(self, index: int):
        sl = slice(index * self.batch_size, (index + 1) * self.batch_size)
        x = self._cache.get(index)
        if x is None:
            x = compute_features(self.dataset.audio(self.indices[sl]), self.features)
            if self.cached:
                self._cache[index] = x
        return x, _one_hot(self.labels[sl], self.n_classes)
