"""Turning a stream of per-window posteriors into keyword detections.

A keyword is heard in several overlapping windows (a 1 s window every 250 ms sees a 0.5 s word
in about three of them), and single windows flicker. The detector is the post-processing that
known streaming keyword spotters put after the classifier; it combines two of them:

* tflite-micro's ``RecognizeCommands``
  (tensorflow/tflite-micro, ``tensorflow/lite/micro/examples/micro_speech/recognize_commands.cc``):
  average the scores of the results inside a time window, take the top label, report it when
  its averaged score passes ``detection_threshold`` and the same label has not fired within
  ``suppression_ms``; too few results in the averaging window are not trusted
  (``minimum_count``).
* Mycroft Precise's ``TriggerDetector``
  (MycroftAI/mycroft-precise, ``runner/precise_runner/runner.py``): count consecutive chunks
  whose probability is above the threshold, fire once the count exceeds ``trigger_level``,
  then hold off (a negative activation counter) so that one utterance fires once.

Here, for every scored window at time ``time_s`` (the end of the window):

1. **Smoothing**: the posteriors of the last ``smoothing_windows`` windows are averaged (the
   mean over as many as have arrived, at the start). As in RecognizeCommands the average is
   over all labels and the top label of the average is taken; a keyword that only comes
   second never fires.
2. **Threshold**: the top label must be a keyword allowed to fire (never ``unknown`` or
   ``silence``; with ``keywords`` only those) with a smoothed score ``>= threshold``.
3. **Minimum count** (Precise's ``trigger_level``): that label must have been on top and above
   the threshold for ``min_count`` consecutive windows; the detection is reported on the
   window that completes the run.
4. **Refractory period**: after a detection nothing fires (any keyword, unlike
   RecognizeCommands' per-label suppression: one utterance scored as two keywords must not fire
   twice) for ``refractory_ms``, measured on the ``time_s`` timestamps given (stream time, not
   the wall clock, so files and microphones behave the same). A run that reaches its minimum
   count inside the refractory period is consumed by it: it does not fire later either (like
   Precise, whose hold-off restarts while activations continue).
5. **Once per run**: a run of above-threshold windows fires at most once, however long it
   lasts; the run must break (another top label or a score under the threshold) before that
   label can fire again.

The reported score is the smoothed score of the window that fired.
"""

from __future__ import annotations

import collections
import logging
import math
from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np

from kws.runtime.errors import KwsError
from kws.runtime.labels import NON_KEYWORDS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectorConfig:
    """Detection settings (the model JSON's ``detection`` section gives the defaults).

    Attributes
    ----------
    threshold : float
        Smoothed posterior a keyword needs, in [0, 1].
    smoothing_windows : int
        K: the posteriors of the last K windows are averaged (1 = no smoothing).
    refractory_ms : float
        After a detection nothing fires for this long (stream time, milliseconds).
    min_count : int
        Consecutive windows the same keyword must be on top and above the threshold.
    keywords : tuple of str or None
        Only these keywords may fire (None: every label except unknown and silence).
    """

    threshold: float = 0.7
    smoothing_windows: int = 3
    refractory_ms: float = 1000.0
    min_count: int = 1
    keywords: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.threshold, (int, float)) and 0.0 <= self.threshold <= 1.0):
            raise KwsError(f"threshold {self.threshold!r}: expected a probability in [0, 1]")
        if int(self.smoothing_windows) != self.smoothing_windows or self.smoothing_windows < 1:
            raise KwsError(f"smoothing of {self.smoothing_windows!r} windows: expected an integer >= 1")
        if not (isinstance(self.refractory_ms, (int, float)) and math.isfinite(self.refractory_ms)
                and self.refractory_ms >= 0):
            raise KwsError(f"refractory period {self.refractory_ms!r} ms: expected a number >= 0")
        if int(self.min_count) != self.min_count or self.min_count < 1:
            raise KwsError(f"minimum count {self.min_count!r}: expected an integer >= 1")
        if self.keywords is not None:
            if isinstance(self.keywords, str) or not all(isinstance(k, str) and k for k in self.keywords):
                raise KwsError(f"keywords {self.keywords!r}: expected a list of label names")
            if not self.keywords:
                raise KwsError("keywords: the list is empty; name at least one keyword")
            object.__setattr__(self, "keywords", tuple(self.keywords))
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "smoothing_windows", int(self.smoothing_windows))
        object.__setattr__(self, "refractory_ms", float(self.refractory_ms))
        object.__setattr__(self, "min_count", int(self.min_count))

    @classmethod
    def from_meta(cls, meta: Any, **overrides: Any) -> "DetectorConfig":
        """Defaults from a model's JSON ``detection`` section, then ``overrides``.

        Parameters
        ----------
        meta : ModelMeta, or a mapping (the ``detection`` section itself or a whole JSON dict)
        overrides : field=value; a value of None keeps the JSON's (so CLI flags that were not
            given can be passed through as None).
        """
        if hasattr(meta, "detection"):
            section = meta.detection
        elif isinstance(meta, Mapping):
            section = meta.get("detection", meta)
        else:
            raise KwsError(f"cannot read detection settings from {type(meta).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise KwsError(f"unknown detector setting(s) {unknown}; expected some of {sorted(names)}")
        values = {k: section[k] for k in names if k in section and section[k] is not None}
        values.update({k: v for k, v in overrides.items() if v is not None})
        if values.get("keywords") is not None:
            values["keywords"] = tuple(values["keywords"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "smoothing_windows": self.smoothing_windows,
                "refractory_ms": self.refractory_ms, "min_count": self.min_count,
                "keywords": list(self.keywords) if self.keywords is not None else None}


@dataclass(frozen=True)
class Detection:
    """One detected keyword.

    Attributes
    ----------
    time_s : float
        End of the window that fired, in seconds from the start of the stream.
    label : str
    score : float
        Smoothed posterior of ``label`` in that window.
    """

    time_s: float
    label: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"time_s": round(float(self.time_s), 4), "label": self.label,
                "score": round(float(self.score), 4)}


class Detector:
    """Smoothing + threshold + minimum count + refractory period (see the module docstring).

    Parameters
    ----------
    labels : sequence of str
        The model's output labels, in output order.
    config : DetectorConfig
    """

    def __init__(self, labels: Sequence[str], config: DetectorConfig | None = None) -> None:
        self.labels = tuple(labels)
        self.config = config if config is not None else DetectorConfig()
        if self.config.keywords is not None:
            missing = [k for k in self.config.keywords if k not in self.labels]
            if missing:
                raise KwsError(f"keyword(s) {', '.join(missing)} not among the model's labels "
                               f"({', '.join(self.labels)})")
            never = [k for k in self.config.keywords if k in NON_KEYWORDS]
            if never:
                raise KwsError(f"{', '.join(never)} never fire; --keywords takes keywords only "
                               f"({', '.join(x for x in self.labels if x not in NON_KEYWORDS)})")
            allowed = set(self.config.keywords)
        else:
            allowed = {x for x in self.labels if x not in NON_KEYWORDS}
        self._can_fire = np.array([x in allowed for x in self.labels], dtype=bool)
        if not self._can_fire.any():
            raise KwsError(f"none of the model's labels ({', '.join(self.labels)}) can fire")
        self.reset()

    @property
    def active_keywords(self) -> tuple[str, ...]:
        return tuple(x for x, ok in zip(self.labels, self._can_fire) if ok)

    def reset(self) -> None:
        """Forget the history (a new stream)."""
        self._history: collections.deque[np.ndarray] = collections.deque(
            maxlen=self.config.smoothing_windows)
        self._sum = np.zeros(len(self.labels), dtype=np.float64)
        self._run_label = -1      # label index of the current above-threshold run
        self._run_count = 0
        self._run_fired = False
        self._last_fire_s: float | None = None
        self._last_time_s: float | None = None
        self._updates = 0
        self.smoothed = np.zeros(len(self.labels), dtype=np.float32)

    def update(self, time_s: float, probs: np.ndarray) -> Detection | None:
        """Add one window's posteriors; return a detection if this window fires.

        Parameters
        ----------
        time_s : float
            End of the window in seconds from the stream start (non-decreasing).
        probs : np.ndarray, float, shape (n_labels,)
            Posteriors (softmax) of the window.

        Returns
        -------
        Detection or None
        """
        probs = np.asarray(probs, dtype=np.float64).reshape(-1)
        if probs.shape != (len(self.labels),):
            raise KwsError(f"posteriors of shape {probs.shape}; expected ({len(self.labels)},) "
                           "for the model's labels")
        if self._last_time_s is not None and time_s < self._last_time_s:
            raise KwsError(f"window time {time_s} s is earlier than the previous {self._last_time_s} s")
        self._last_time_s = float(time_s)

        history = self._history
        if len(history) == history.maxlen:
            self._sum -= history[0]
        history.append(probs)
        self._sum += probs
        self._updates += 1
        if self._updates % 4096 == 0:  # keep float drift out of a sum that runs for days
            self._sum = np.sum(np.stack(list(history)), axis=0)
        smoothed = self._sum / len(history)
        self.smoothed = smoothed.astype(np.float32)

        top = int(np.argmax(smoothed))
        score = float(smoothed[top])
        above = bool(self._can_fire[top]) and score >= self.config.threshold
        if not above:
            self._run_label, self._run_count, self._run_fired = -1, 0, False
            return None
        if top != self._run_label:
            self._run_label, self._run_count, self._run_fired = top, 0, False
        self._run_count += 1
        if self._run_fired or self._run_count < self.config.min_count:
            return None
        if (self._last_fire_s is not None
                and (time_s - self._last_fire_s) * 1000.0 < self.config.refractory_ms):
            self._run_fired = True  # a run that starts in the refractory period never fires
            return None
        self._run_fired = True
        self._last_fire_s = float(time_s)
        detection = Detection(float(time_s), self.labels[top], score)
        logger.debug("detection %s", detection)
        return detection
