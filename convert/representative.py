"""The representative dataset for full-integer quantization.

The TFLite converter runs the float model on these inputs to choose the int8 scale and zero
point of every activation, the model's input included. So they must be what the model sees on
the device: clips from the TRAINING split only (never the test clips parity is measured on),
every class present, and features computed by the runtime's numpy front-end
(:func:`kws.runtime.features.compute_features`), exactly as on the Raspberry Pi.

Sampling (:func:`stratified_indices`): each class present in the training split first gets a
floor of ``n_samples // (2 * n_classes)`` clips (or all it has), and the rest of the budget is
shared in proportion to the class sizes (largest remainder). A class that is rare in the npz
(a keyword among thousands of ``unknown`` clips) is still calibrated on.

Input range (:func:`input_clip_range`): by default the input tensor's int8 range comes from
the min/max of the representative features. With ``input_percentile`` p < 100 the features are
clipped to their (100 - p)th and p-th percentiles before calibration, so the int8 input step is set by
the bulk of the values rather than the loudest sample; the runtime's
:meth:`~kws.runtime.interpreter.TfliteModel.quantize_input` clips the rare larger values the
same way. ``docs/export.md`` has the numbers that chose the defaults.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from kws.runtime.errors import DataError
from kws.runtime.features import FeatureConfig, compute_features

logger = logging.getLogger(__name__)

DEFAULT_REP_SAMPLES = 300
FEATURE_BATCH = 64


def stratified_indices(labels: np.ndarray, pool: np.ndarray, *, n_samples: int, n_classes: int,
                       seed: int = 0) -> np.ndarray:
    """Pick ``n_samples`` indices from ``pool``, stratified by class, every present class included.

    Parameters
    ----------
    labels : (N,) int class index of every clip in the data set
    pool : (M,) int indices to draw from (the training split)
    n_samples : clips wanted; all of ``pool`` when it has no more
    n_classes : number of classes
    seed : random seed (the pick is reproducible)

    Returns
    -------
    np.ndarray, int64, sorted, at most ``n_samples`` indices into ``labels``
    """
    if n_samples < 1:
        raise DataError(f"--rep-samples {n_samples}: expected a positive number of clips")
    pool = np.asarray(pool, dtype=np.int64)
    if len(pool) <= n_samples:
        return np.sort(pool)
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(pool[labels[pool] == c]) for c in range(n_classes)]
    sizes = np.array([len(x) for x in by_class], dtype=np.int64)
    present = sizes > 0
    floor = max(1, n_samples // (2 * max(1, int(present.sum()))))
    take = np.minimum(sizes, floor)
    budget = n_samples - int(take.sum())
    if budget > 0:
        room = sizes - take
        share = budget * room / max(1, room.sum())
        extra = np.floor(share).astype(np.int64)
        leftover = budget - int(extra.sum())
        order = np.argsort(-(share - extra), kind="stable")
        for c in order:
            if leftover <= 0:
                break
            if extra[c] < room[c]:
                extra[c] += 1
                leftover -= 1
        take = take + np.minimum(extra, room)
    chosen = np.concatenate([x[:k] for x, k in zip(by_class, take)])
    return np.sort(chosen)


def input_clip_range(features: np.ndarray, percentile: float) -> tuple[float, float] | None:
    """``(lo, hi)`` = the ``100 - percentile`` and ``percentile`` percentiles of the features.

    Two-sided, so it suits audio (symmetric), magnitudes (>= 0) and log magnitudes (mostly
    negative) alike. None for ``percentile`` 100 (no clipping: plain min/max calibration).
    """
    if not 50 < percentile <= 100:
        raise DataError(f"--input-percentile {percentile}: expected a number in (50, 100]")
    if percentile >= 100:
        return None
    lo, hi = np.percentile(features, [100.0 - percentile, percentile])
    if not hi > lo:
        return None
    return float(lo), float(hi)


@dataclass
class RepresentativeSet:
    """Features for calibration and what they were drawn from."""

    indices: np.ndarray                 # (n,) into the data set
    features: np.ndarray                # float32 (n, *input_shape), after clipping
    counts: dict[str, int]              # clips per label (model label order)
    missing: tuple[str, ...]            # model labels with no clip
    input_percentile: float = 100.0
    input_clip: tuple[float, float] | None = None  # (lo, hi) clip applied, None when not clipped
    raw_range: tuple[float, float] = (0.0, 0.0)  # min/max of the features before clipping
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of_features(cls, features: np.ndarray) -> "RepresentativeSet":
        """A set of ready features, float32 (n, *input_shape), with no data set behind it (for
        scripts and tests that calibrate a model on what they have at hand)."""
        features = np.asarray(features, dtype=np.float32)
        raw_range = (float(features.min()), float(features.max())) if features.size else (0.0, 0.0)
        return cls(np.arange(len(features)), features, {}, (), raw_range=raw_range)

    def __len__(self) -> int:
        return len(self.indices)

    def generator(self) -> Iterator[list[np.ndarray]]:
        """The ``converter.representative_dataset`` callable's iterator: one (1, ...) input each."""
        for item in self.features:
            yield [item[None]]

    def describe(self) -> str:
        per_class = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        text = f"representative set: {len(self)} clips from the training split ({per_class})"
        lo, hi = self.raw_range
        text += f"; features range [{lo:.4g}, {hi:.4g}]"
        if self.input_clip is not None:
            lo, hi = self.input_clip
            text += (f", clipped to [{lo:.4g}, {hi:.4g}] (percentiles {100 - self.input_percentile:g} "
                     f"and {self.input_percentile:g}) for the int8 input range")
        return text

    def to_dict(self) -> dict:
        return {
            "n": int(len(self)),
            "split": "train",
            "per_class": dict(self.counts),
            "missing": list(self.missing),
            "input_percentile": float(self.input_percentile),
            "input_clip": None if self.input_clip is None else [float(x) for x in self.input_clip],
            "raw_range": [float(x) for x in self.raw_range],
        }


def build_representative_set(audio_fn, labels: np.ndarray, train_idx: np.ndarray, *,
                             label_names: Sequence[str], config: FeatureConfig,
                             n_samples: int = DEFAULT_REP_SAMPLES, seed: int = 0,
                             input_percentile: float = 100.0) -> RepresentativeSet:
    """Draw the representative set from the training split and compute its features.

    Parameters
    ----------
    audio_fn : callable(indices) -> float32 (k, window_samples) audio in [-1, 1]
        (:meth:`kws.train.data.Dataset.audio`).
    labels : (N,) int, index into ``label_names`` (the model's labels) for every clip
    train_idx : indices of the training split
    label_names : the model's labels
    config : the model's feature settings
    n_samples : clips wanted (``--rep-samples``)
    seed : sampling seed
    input_percentile : clip features to this two-sided percentile range (100: no clipping)

    Returns
    -------
    RepresentativeSet (a warning is logged for every label with no clip)
    """
    if len(train_idx) == 0:
        raise DataError("the training split is empty: nothing to draw the representative set from")
    idx = stratified_indices(labels, train_idx, n_samples=n_samples, n_classes=len(label_names),
                             seed=seed)
    counts_arr = np.bincount(labels[idx], minlength=len(label_names))
    counts = {name: int(c) for name, c in zip(label_names, counts_arr)}
    missing = tuple(name for name, c in counts.items() if c == 0)
    notes = []
    if missing:
        msg = (f"representative set has no clips of {', '.join(missing)} (none in the training "
               "split); int8 ranges are calibrated without them, so check their parity")
        logger.warning(msg)
        notes.append(msg)
    feats = np.empty((len(idx), *config.input_shape), dtype=np.float32)
    for start in range(0, len(idx), FEATURE_BATCH):
        chunk = idx[start:start + FEATURE_BATCH]
        feats[start:start + len(chunk)] = compute_features(audio_fn(chunk), config)
    raw_range = (float(feats.min()), float(feats.max()))
    clip = input_clip_range(feats, input_percentile)
    if clip is not None:
        np.clip(feats, clip[0], clip[1], out=feats)
    rep = RepresentativeSet(idx, feats, counts, missing, float(input_percentile), clip, raw_range,
                            notes)
    logger.debug(rep.describe())
    return rep
