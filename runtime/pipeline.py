"""The streaming keyword-spotting pipeline: ring buffer -> front-end + model -> detector.

``kws-listen`` (microphone, ``--wav``, ``--stdin``) and ``kws-eval-stream`` both go through
:class:`Pipeline`, so what is measured offline is what runs on the device::

    blocks (float32 mono, model rate, any size)
      -> WindowBuffer: the newest window (1 s) every hop (250 ms)
      -> KwsModel.probabilities: numpy STFT front-end + TFLite interpreter + softmax
      -> Detector: smoothing, threshold, minimum count, refractory period
      -> Detection(time_s = end of the window, label, score)
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from kws.runtime.detector import Detection, Detector, DetectorConfig
from kws.runtime.errors import KwsError
from kws.runtime.sources import WavSource
from kws.runtime.stream import WindowBuffer

logger = logging.getLogger(__name__)

#: File samples per block that :func:`run_wav` reads (at the file's own rate).
DEFAULT_BLOCK_SAMPLES = 1024

#: ``on_window(time_s, probs, detection_or_None)``, called after every scored window.
WindowCallback = Callable[[float, np.ndarray, "Detection | None"], None]


def hop_samples_for(hop_ms: float, sample_rate_hz: int, *, window_samples: int | None = None) -> int:
    """``hop_ms`` in samples; it must be a whole, positive number of samples, and no longer than
    ``window_samples`` (a longer hop would leave audio between windows that is never scored)."""
    if not (isinstance(hop_ms, (int, float)) and math.isfinite(hop_ms) and hop_ms > 0):
        raise KwsError(f"--hop-ms {hop_ms!r}: expected a positive number of milliseconds")
    if window_samples is not None and hop_ms * sample_rate_hz / 1000.0 > window_samples + 1e-6:
        raise KwsError(f"--hop-ms {hop_ms:g}: expected at most the window, {1000.0 * window_samples / sample_rate_hz:g} "
                       "ms (a longer hop never scores the audio between windows)")
    exact = hop_ms * sample_rate_hz / 1000.0
    samples = int(round(exact))
    if samples < 1 or abs(samples - exact) > 1e-6:
        raise KwsError(f"--hop-ms {hop_ms:g} is not a whole number of samples at {sample_rate_hz} Hz "
                       f"(1 sample = {1000.0 / sample_rate_hz:g} ms)")
    return samples


class Pipeline:
    """Scores the newest window every hop and runs the detector.

    Parameters
    ----------
    model : KwsModel
        Gives the labels, the feature settings (rate, window length) and the classifier.
    hop_ms : float
        Time between scored windows (default 250 ms); a whole number of samples.
    detector : DetectorConfig or None
        None: the defaults from the model's JSON (``DetectorConfig.from_meta(model.meta)``).
    record_scores : bool
        Keep ``(time_s, probs)`` of every window in :attr:`scores` (memory grows with time:
        for evaluation, not for an always-on listener).
    on_window : callable or None
        ``on_window(time_s, probs, detection_or_None)`` after each scored window.

    Attributes
    ----------
    windows_scored : int
    samples_seen : int
        Samples fed so far (at the model rate).
    detections : int
        Count of detections so far (the detections themselves are returned by :meth:`feed`).
    mean_latency_ms, max_latency_ms : float
        Per window: front-end + interpreter invoke + softmax, wall clock (``time.perf_counter``).
    """

    def __init__(self, model, *, hop_ms: float = 250.0, detector: DetectorConfig | None = None,
                 record_scores: bool = False, on_window: WindowCallback | None = None) -> None:
        self.model = model
        features = model.features
        self.sample_rate_hz = int(features.sample_rate_hz)
        self.window_samples = int(features.window_samples)
        self.hop_samples = hop_samples_for(hop_ms, self.sample_rate_hz, window_samples=self.window_samples)
        self.hop_ms = float(hop_ms)
        self.detector_config = detector if detector is not None else DetectorConfig.from_meta(model.meta)
        self.detector = Detector(model.labels, self.detector_config)
        self.record_scores = record_scores
        self.on_window = on_window
        self.buffer = WindowBuffer(self.window_samples, self.hop_samples)
        self.reset()

    def reset(self) -> None:
        """Start a new stream: empty buffer, detector history, counters and scores."""
        self.buffer.reset()
        self.detector.reset()
        self.windows_scored = 0
        self.detections = 0
        self.scores: list[tuple[float, np.ndarray]] = []
        self._latency_sum_s = 0.0
        self._latency_max_s = 0.0
        self.last_probs: np.ndarray | None = None
        self.last_time_s: float | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.model.labels)

    @property
    def samples_seen(self) -> int:
        return self.buffer.samples_seen

    @property
    def duration_s(self) -> float:
        return self.samples_seen / self.sample_rate_hz

    @property
    def mean_latency_ms(self) -> float:
        return 1000.0 * self._latency_sum_s / self.windows_scored if self.windows_scored else float("nan")

    @property
    def max_latency_ms(self) -> float:
        return 1000.0 * self._latency_max_s if self.windows_scored else float("nan")

    def feed(self, block: np.ndarray) -> list[Detection]:
        """Push audio; score every window it completes.

        Parameters
        ----------
        block : np.ndarray, float32, shape (n,), mono at the model rate (any n, also 0)

        Returns
        -------
        list of Detection (usually empty)
        """
        found: list[Detection] = []
        for end_sample, window in self.buffer.push(block):
            t0 = time.perf_counter()
            probs = np.asarray(self.model.probabilities(window), dtype=np.float32).reshape(-1)
            elapsed = time.perf_counter() - t0
            self._latency_sum_s += elapsed
            self._latency_max_s = max(self._latency_max_s, elapsed)
            self.windows_scored += 1
            time_s = end_sample / self.sample_rate_hz
            detection = self.detector.update(time_s, probs)
            self.last_probs, self.last_time_s = probs, time_s
            if self.record_scores:
                self.scores.append((time_s, probs))
            if detection is not None:
                self.detections += 1
                found.append(detection)
            if self.on_window is not None:
                self.on_window(time_s, probs, detection)
        return found


@dataclass(frozen=True)
class PipelineResult:
    """What :func:`run_wav` returns.

    Attributes
    ----------
    detections : list of Detection, in time order
    scores : list of (time_s, probs float32 (n_labels,)); empty unless ``record_scores``
    windows_scored : int
    duration_s : float
        Stream length at the model rate, in seconds.
    mean_latency_ms : float
        Mean per-window front-end + invoke time (NaN if no window was scored).
    """

    detections: list[Detection]
    scores: list[tuple[float, np.ndarray]]
    windows_scored: int
    duration_s: float
    mean_latency_ms: float = float("nan")
    labels: tuple[str, ...] = field(default=())


def run_wav(model, path: str | Path, *, hop_ms: float = 250.0, detector: DetectorConfig | None = None,
            realtime: bool = False, record_scores: bool = False,
            block_samples: int = DEFAULT_BLOCK_SAMPLES,
            on_window: WindowCallback | None = None) -> PipelineResult:
    """Stream a WAV file through a :class:`Pipeline` (what ``kws-listen --wav`` does).

    Parameters
    ----------
    model : KwsModel
    path : WAV file, any rate, mono or stereo (mixed down, resampled to the model rate with
        :class:`~kws.runtime.resample.StreamingResampler`).
    hop_ms, detector, record_scores, on_window : as for :class:`Pipeline`.
    realtime : bool
        Pace the file at real time instead of as fast as possible.
    block_samples : int
        File samples (at the file's rate) per block fed.

    Returns
    -------
    PipelineResult

    Raises
    ------
    DataError
        The file cannot be read as a WAV.
    """
    source = WavSource(path, target_rate_hz=model.features.sample_rate_hz,
                       block_samples=block_samples, realtime=realtime)
    pipeline = Pipeline(model, hop_ms=hop_ms, detector=detector, record_scores=record_scores,
                        on_window=on_window)
    detections: list[Detection] = []
    for block in source:
        detections.extend(pipeline.feed(block))
    return PipelineResult(detections=detections, scores=pipeline.scores,
                          windows_scored=pipeline.windows_scored, duration_s=pipeline.duration_s,
                          mean_latency_ms=pipeline.mean_latency_ms, labels=pipeline.labels)
