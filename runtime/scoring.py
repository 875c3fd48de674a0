"""Scoring a keyword stream: detections against known keyword times (numpy only).

A *truth file* (written by ``kws-data stream``) says where each keyword was placed in a long
stream; a *detection* (from :class:`kws.runtime.detector.Detector`, anything with ``time_s``,
``label`` and ``score``) says when the listener fired. This module matches the two.

When a detection counts for an event
-----------------------------------
A detection's ``time_s`` is the END of the window that fired, in seconds from the stream start.
A window of ``window_s`` seconds ending at ``t`` covers ``[t - window_s, t]``, so it overlaps a
word spoken over ``[start_s, end_s]`` exactly when ``start_s < t < end_s + window_s``. Smoothing
over K windows at a hop of H seconds can delay the crossing of the threshold by up to
``(K - 1) * H`` more. The caller passes both as ``max_delay_s = window_s + (K - 1) * H``
(:func:`max_delay_s`), and a tolerance ``tolerance_s`` widens the interval on both sides for
imprecise word boundaries::

    start_s - tolerance_s  <=  time_s  <=  end_s + max_delay_s + tolerance_s

Typical detections come 0 to 1 s after the word's end. Matching, in this order:

1. **hit**: each event takes at most one detection of its own label inside its interval (the
   greedy earliest-first assignment, which is optimal for intervals in time order);
2. **wrong keyword**: an event without a hit takes at most one detection of another label
   inside its interval;
3. **false accept**: every detection left over, including a second detection for an event
   that already has one (the listener fired twice for one word).

An event with no detection at all is **missed**. The miss rate is ``1 - hit rate``: a wrong
keyword counts as a miss. False accepts per hour divide by the whole stream's duration.

Uncertainty
-----------
Each rate comes with a 95% interval: the Wilson score interval for the hit rate
(:func:`wilson_interval`) and the exact (Garwood) Poisson interval for false accepts per hour
(:func:`poisson_rate_interval`). Both treat keywords and false accepts as independent draws; a
stream that reuses clips, or holds several words of one speaker, varies more than that.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from kws.runtime.errors import DataError
from kws.runtime.labels import SILENCE, UNKNOWN

#: Format tag of the truth files written by ``kws-data stream``.
TRUTH_FORMAT = "kws-stream-truth/1"

DEFAULT_TOLERANCE_S = 0.75


# -------------------------------------------------------------------------------------------
# Truth files
# -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TruthEvent:
    """One word placed in a stream: ``label`` spoken over ``[start_s, end_s]`` seconds.

    ``clip_index`` is the row of the npz the word was cut from (``kws-data stream`` writes it), so
    that words placed several times can be told apart from distinct ones.
    """

    label: str
    start_s: float
    end_s: float
    speaker: str | None = None
    clip_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"label": self.label, "start_s": self.start_s, "end_s": self.end_s, "speaker": self.speaker}
        if self.clip_index is not None:
            out["clip_index"] = self.clip_index
        return out


@dataclass(frozen=True)
class Truth:
    """A parsed truth file.

    Attributes
    ----------
    sample_rate_hz : int  the stream's sample rate
    duration_s : float    the stream's length in seconds
    events : keyword events, sorted by ``start_s``
    unknown_events : the non-keyword words placed between them, sorted by ``start_s``
    settings : how the stream was built (kept as it is)
    """

    sample_rate_hz: int
    duration_s: float
    events: tuple[TruthEvent, ...]
    unknown_events: tuple[TruthEvent, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def negatives_only(self) -> bool:
        """True when the stream has no keyword events (only false accepts can be measured)."""
        return not self.events

    def to_dict(self) -> dict[str, Any]:
        return {"format": TRUTH_FORMAT, "sample_rate_hz": self.sample_rate_hz, "duration_s": self.duration_s,
                "events": [e.to_dict() for e in self.events],
                "unknown_events": [e.to_dict() for e in self.unknown_events],
                "settings": dict(self.settings)}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _events(data: Any, key: str, source: str, duration_s: float) -> tuple[TruthEvent, ...]:
    if key not in data:
        if key == "unknown_events":
            return ()
        raise DataError(f"{source}: missing '{key}' list (expected a truth file from kws-data stream)")
    items = data[key]
    if not isinstance(items, list):
        raise DataError(f"{source}: '{key}' must be a list, got {type(items).__name__}")
    events = []
    for i, item in enumerate(items):
        where = f"{source}: {key}[{i}]"
        if not isinstance(item, Mapping):
            raise DataError(f"{where} must be an object with label, start_s, end_s, got {item!r}")
        label = item.get("label")
        if not isinstance(label, str) or not label:
            raise DataError(f"{where}: 'label' must be a non-empty string, got {label!r}")
        if key == "events" and label in (UNKNOWN, SILENCE):
            raise DataError(f"{where}: label {label!r} is not a keyword (it never fires); unknown words "
                            "belong in 'unknown_events'")
        start_s = _number(item.get("start_s"), f"{where}: 'start_s'")
        end_s = _number(item.get("end_s"), f"{where}: 'end_s'")
        if not 0.0 <= start_s < end_s:
            raise DataError(f"{where}: expected 0 <= start_s < end_s, got start_s={start_s} end_s={end_s}")
        if end_s > duration_s + 1e-6:
            raise DataError(f"{where}: end_s={end_s} is past the stream's duration_s={duration_s}")
        speaker = item.get("speaker")
        clip = item.get("clip_index")
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, int) or clip < 0):
            raise DataError(f"{where}: 'clip_index' must be a non-negative integer, got {clip!r}")
        events.append(TruthEvent(label, start_s, end_s, None if speaker is None else str(speaker), clip))
    return tuple(sorted(events, key=lambda e: (e.start_s, e.end_s)))


def truth_from_dict(data: Any, *, source: str = "truth JSON") -> Truth:
    """Validate a truth mapping; a :class:`DataError` names the bad key and what was expected."""
    if not isinstance(data, Mapping):
        raise DataError(f"{source}: expected a JSON object, got {type(data).__name__}")
    fmt = data.get("format", TRUTH_FORMAT)   # files without one predate the field
    if fmt != TRUTH_FORMAT:
        raise DataError(f"{source}: format {fmt!r}; expected {TRUTH_FORMAT!r} (a truth file from kws-data stream)")
    rate = data.get("sample_rate_hz")
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise DataError(f"{source}: 'sample_rate_hz' must be a positive integer, got {rate!r}")
    duration_s = _number(data.get("duration_s"), f"{source}: 'duration_s'")
    if duration_s <= 0:
        raise DataError(f"{source}: 'duration_s' must be positive, got {duration_s}")
    events = _events(data, "events", source, duration_s)
    unknown = _events(data, "unknown_events", source, duration_s)
    settings = data.get("settings", {})
    if not isinstance(settings, Mapping):
        raise DataError(f"{source}: 'settings' must be an object, got {type(settings).__name__}")
    return Truth(rate, duration_s, events, unknown, dict(settings))


def load_truth(path: str | Path) -> Truth:
    """Read and validate a truth JSON written by ``kws-data stream``."""
    from kws.runtime.fileio import read_json

    data = read_json(path, what="truth file", missing_hint=" (write one with kws-data stream --truth)")
    return truth_from_dict(data, source=str(path))


# -------------------------------------------------------------------------------------------
# Matching
# -------------------------------------------------------------------------------------------
def max_delay_s(*, window_s: float, hop_s: float, smoothing_windows: int) -> float:
    """How long after a word's end a detection can still come from it (see the module docstring)."""
    return float(window_s + max(0, smoothing_windows - 1) * hop_s)


def fa_per_hour(false_accepts: int, duration_s: float) -> float:
    """False accepts per hour of audio: ``false_accepts * 3600 / duration_s``."""
    if duration_s <= 0:
        raise ValueError(f"duration_s={duration_s}: expected a positive number")
    return false_accepts * 3600.0 / duration_s


#: Two-sided 95% quantile of the standard normal distribution.
Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, *, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion ``successes / trials`` (95% for the default ``z``).

    Returns
    -------
    (low, high) within [0, 1], or None when ``trials`` is 0.
    """
    if trials <= 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError(f"successes={successes}: expected 0..{trials}")
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def _poisson_cdf(k: int, mean: float) -> float:
    """P(X <= k) for X ~ Poisson(mean), summed in log space (k up to a few thousand)."""
    if mean <= 0:
        return 1.0
    log_terms = [-mean + i * math.log(mean) - math.lgamma(i + 1) for i in range(k + 1)]
    top = max(log_terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in log_terms))


def poisson_interval(count: int, *, level: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval of a Poisson mean from one observed ``count``.

    The low end solves ``P(X >= count) = (1 - level) / 2`` (0 when ``count`` is 0), the high end
    ``P(X <= count) = (1 - level) / 2``, by bisection on the Poisson distribution function.
    """
    if count < 0:
        raise ValueError(f"count={count}: expected >= 0")
    tail = (1.0 - level) / 2.0

    def solve(f, lo: float, hi: float) -> float:  # f decreasing in the mean, root in [lo, hi]
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
        return 0.5 * (lo + hi)

    high_bound = count + 10.0 * math.sqrt(count + 1.0) + 10.0
    upper = solve(lambda m: _poisson_cdf(count, m) - tail, 0.0, high_bound)
    lower = 0.0 if count == 0 else solve(lambda m: _poisson_cdf(count - 1, m) - (1.0 - tail), 0.0, count)
    return lower, upper


def poisson_rate_interval(count: int, duration_s: float, *, level: float = 0.95) -> tuple[float, float]:
    """:func:`poisson_interval` of ``count`` events in ``duration_s`` seconds, per hour."""
    lower, upper = poisson_interval(count, level=level)
    per_hour = fa_per_hour(1, duration_s)
    return per_hour * lower, per_hour * upper


@dataclass(frozen=True)
class KeywordStats:
    events: int
    hits: int
    wrong_keyword: int
    missed: int

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.events if self.events else None

    def to_dict(self) -> dict[str, Any]:
        return {"events": self.events, "hits": self.hits, "wrong_keyword": self.wrong_keyword,
                "missed": self.missed, "hit_rate": self.hit_rate}


@dataclass(frozen=True)
class StreamScore:
    """The outcome of matching detections to a truth file.

    ``outcomes[i]`` is ``"hit"``, ``"wrong_keyword"`` or ``"missed"`` for ``truth.events[i]``;
    ``detection_outcomes[j]`` is ``"hit"``, ``"wrong_keyword"`` or ``"false_accept"`` for the
    j-th detection (in the order given). Rates are None on a negatives-only stream.

    A false accept whose window overlaps an unknown word is put down to that word (the latest
    one starting before it); ``detection_clips[j]`` is that word's ``clip_index`` (None for the
    other detections, or when the truth has no clip indices), and ``false_accept_clips`` counts the
    distinct clips behind the false accepts (None when no unknown word has a clip index). A stream
    that places each unknown clip several times can hold many false accepts from few clips: then
    the false accepts are not independent, and their interval is too narrow.
    ``false_accept_speakers`` counts those false accepts by the word's ``speaker`` (most first;
    words without one are left out): a source-named speaker stands for a whole corpus, and one
    speaker or corpus behind most false accepts says what the model has not learnt.
    """

    duration_s: float
    n_events: int
    hits: int
    wrong_keyword: int
    missed: int
    false_accepts: int
    false_accepts_on_unknown: int
    n_detections: int
    per_keyword: Mapping[str, KeywordStats]
    confusions: Mapping[str, int]
    outcomes: tuple[str, ...]
    detection_outcomes: tuple[str, ...]
    detection_clips: tuple[int | None, ...] = ()
    false_accept_clips: int | None = None
    false_accept_speakers: Mapping[str, int] = field(default_factory=dict)

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.n_events if self.n_events else None

    @property
    def miss_rate(self) -> float | None:
        return 1.0 - self.hits / self.n_events if self.n_events else None

    @property
    def fa_per_hour(self) -> float:
        return fa_per_hour(self.false_accepts, self.duration_s)

    @property
    def hit_rate_ci95(self) -> tuple[float, float] | None:
        """95% Wilson interval of the hit rate (None without keywords)."""
        return wilson_interval(self.hits, self.n_events)

    @property
    def fa_per_hour_ci95(self) -> tuple[float, float]:
        """95% exact Poisson interval of false accepts per hour."""
        return poisson_rate_interval(self.false_accepts, self.duration_s)

    def to_dict(self) -> dict[str, Any]:
        ci = self.hit_rate_ci95
        return {
            "duration_s": self.duration_s, "hours": self.duration_s / 3600.0,
            "n_events": self.n_events, "n_detections": self.n_detections,
            "hits": self.hits, "wrong_keyword": self.wrong_keyword, "missed": self.missed,
            "hit_rate": self.hit_rate, "hit_rate_ci95": None if ci is None else list(ci),
            "miss_rate": self.miss_rate,
            "false_accepts": self.false_accepts, "fa_per_hour": self.fa_per_hour,
            "fa_per_hour_ci95": list(self.fa_per_hour_ci95),
            "false_accepts_on_unknown": self.false_accepts_on_unknown,
            "false_accept_clips": self.false_accept_clips,
            "false_accept_speakers": dict(self.false_accept_speakers),
            "per_keyword": {k: v.to_dict() for k, v in self.per_keyword.items()},
            "confusions": dict(self.confusions),
        }


def _assign(det_times: np.ndarray, det_ids: Iterable[int], lo: np.ndarray, hi: np.ndarray,
            ev_ids: Sequence[int], taken_det: np.ndarray, taken_ev: np.ndarray,
            pairs: list[tuple[int, int]]) -> None:
    """Greedy earliest-first matching of detections (time order) to event intervals (time order)."""
    ev_ids = list(ev_ids)
    first = 0
    for d in sorted(det_ids, key=lambda j: det_times[j]):
        if taken_det[d]:
            continue
        t = det_times[d]
        while first < len(ev_ids) and (hi[ev_ids[first]] < t or taken_ev[ev_ids[first]]):
            first += 1
        for e in ev_ids[first:]:
            if lo[e] > t:
                break
            if not taken_ev[e] and hi[e] >= t:
                taken_det[d] = taken_ev[e] = True
                pairs.append((d, e))
                break


def match_detections(detections: Sequence[Any], truth: Truth, *, tolerance_s: float = DEFAULT_TOLERANCE_S,
                     max_delay_s: float = 1.0) -> StreamScore:
    """Match detections to the truth's keyword events (see the module docstring).

    Parameters
    ----------
    detections : objects with ``time_s`` (float, end of the firing window, s) and ``label``.
    truth : the stream's :class:`Truth`.
    tolerance_s : seconds added on both sides of each event's interval (>= 0).
    max_delay_s : seconds after a word's end that a detection may still come from it,
        normally :func:`max_delay_s` (the window length plus the smoothing lag).
    """
    if tolerance_s < 0 or max_delay_s < 0:
        raise ValueError(f"tolerance_s={tolerance_s}, max_delay_s={max_delay_s}: expected >= 0")
    events = truth.events
    n_ev, n_det = len(events), len(detections)
    det_times = np.array([float(d.time_s) for d in detections], dtype=np.float64)
    det_labels = [str(d.label) for d in detections]
    lo = np.array([e.start_s - tolerance_s for e in events], dtype=np.float64)
    hi = np.array([e.end_s + max_delay_s + tolerance_s for e in events], dtype=np.float64)
    taken_det = np.zeros(n_det, dtype=bool)
    taken_ev = np.zeros(n_ev, dtype=bool)

    # 1. hits, label by label
    hit_pairs: list[tuple[int, int]] = []
    for label in sorted({e.label for e in events}):
        ev_ids = [i for i, e in enumerate(events) if e.label == label]
        det_ids = [j for j in range(n_det) if det_labels[j] == label]
        _assign(det_times, det_ids, lo, hi, ev_ids, taken_det, taken_ev, hit_pairs)
    # 2. wrong keyword: remaining detections onto remaining events
    wrong_pairs: list[tuple[int, int]] = []
    _assign(det_times, range(n_det), lo, hi, [i for i in range(n_ev) if not taken_ev[i]],
            taken_det, taken_ev, wrong_pairs)

    outcomes = ["missed"] * n_ev
    det_outcomes = ["false_accept"] * n_det
    confusions: dict[str, int] = {}
    for d, e in hit_pairs:
        outcomes[e] = det_outcomes[d] = "hit"
    for d, e in wrong_pairs:
        outcomes[e] = det_outcomes[d] = "wrong_keyword"
        key = f"{events[e].label}->{det_labels[d]}"
        confusions[key] = confusions.get(key, 0) + 1

    per_keyword = {}
    for label in sorted({e.label for e in events}):
        ids = [i for i, e in enumerate(events) if e.label == label]
        per_keyword[label] = KeywordStats(
            events=len(ids), hits=sum(outcomes[i] == "hit" for i in ids),
            wrong_keyword=sum(outcomes[i] == "wrong_keyword" for i in ids),
            missed=sum(outcomes[i] == "missed" for i in ids))

    # False accepts that fall on an unknown word (window overlaps it) rather than on noise, each put
    # down to the latest such word starting before it.
    fa_ids = [j for j in range(n_det) if det_outcomes[j] == "false_accept"]
    on_unknown = 0
    det_clips: list[int | None] = [None] * n_det
    by_speaker: dict[str, int] = {}
    unknown = truth.unknown_events
    has_clips = any(u.clip_index is not None for u in unknown)
    if fa_ids and unknown:
        u_lo = np.array([u.start_s - tolerance_s for u in unknown])
        u_hi = np.array([u.end_s + max_delay_s + tolerance_s for u in unknown])
        for j in fa_ids:
            overlap = np.flatnonzero((det_times[j] >= u_lo) & (det_times[j] <= u_hi))
            if len(overlap):
                on_unknown += 1
                word = unknown[int(overlap[-1])]   # sorted by start: the latest
                det_clips[j] = word.clip_index
                if word.speaker is not None:
                    by_speaker[word.speaker] = by_speaker.get(word.speaker, 0) + 1
    fa_clips = len({c for c in det_clips if c is not None}) if has_clips else None

    return StreamScore(
        duration_s=float(truth.duration_s), n_events=n_ev,
        hits=outcomes.count("hit"), wrong_keyword=outcomes.count("wrong_keyword"),
        missed=outcomes.count("missed"), false_accepts=len(fa_ids), false_accepts_on_unknown=on_unknown,
        n_detections=n_det, per_keyword=per_keyword, confusions=dict(sorted(confusions.items())),
        outcomes=tuple(outcomes), detection_outcomes=tuple(det_outcomes),
        detection_clips=tuple(det_clips), false_accept_clips=fa_clips,
        false_accept_speakers=most_first(by_speaker))


# -------------------------------------------------------------------------------------------
# Threshold sweep (DET curve) and calibration
# -------------------------------------------------------------------------------------------
#: The default sweep: fine steps where calibrated thresholds usually land.
DEFAULT_SWEEP: tuple[float, ...] = tuple(
    float(x) for x in np.round(np.concatenate([np.arange(0.05, 0.90, 0.05), np.arange(0.90, 0.995, 0.01)]), 3))


@dataclass(frozen=True)
class SweepPoint:
    threshold: float
    hits: int
    n_events: int
    false_accepts: int
    fa_per_hour: float
    #: Distinct unknown clips behind the false accepts (:attr:`StreamScore.false_accept_clips`).
    false_accept_clips: int | None = None

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.n_events if self.n_events else None

    @property
    def miss_rate(self) -> float | None:
        return 1.0 - self.hits / self.n_events if self.n_events else None

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "n_events": self.n_events, "hits": self.hits, "hit_rate": self.hit_rate,
                "miss_rate": self.miss_rate, "false_accepts": self.false_accepts,
                "fa_per_hour": self.fa_per_hour, "false_accept_clips": self.false_accept_clips}


def sweep_thresholds(detect: Callable[[float], Sequence[Any]], truth: Truth, thresholds: Iterable[float], *,
                     tolerance_s: float = DEFAULT_TOLERANCE_S, max_delay_s: float = 1.0) -> list[SweepPoint]:
    """Score ``detect(threshold)`` for each threshold; points sorted by threshold.

    ``detect`` re-runs the detector at one threshold and returns its detections; normally it
    replays the recorded window posteriors through a fresh :class:`~kws.runtime.detector.Detector`.
    """
    points = []
    for threshold in sorted(set(float(t) for t in thresholds)):
        score = match_detections(detect(threshold), truth, tolerance_s=tolerance_s, max_delay_s=max_delay_s)
        points.append(SweepPoint(threshold, score.hits, score.n_events, score.false_accepts, score.fa_per_hour,
                                 score.false_accept_clips))
    return points


def choose_threshold(points: Sequence[SweepPoint], target_fa_per_hour: float) -> SweepPoint | None:
    """The lowest threshold from which every higher swept threshold stays at or under the target.

    On a monotone sweep this is simply the lowest threshold with ``fa_per_hour <= target``,
    the one that keeps the most hits. Requiring all higher points to meet the target too
    keeps a lucky dip in a non-monotone sweep (the refractory period can make one) from
    being chosen. None when even the highest threshold exceeds the target.
    """
    ordered = sorted(points, key=lambda p: p.threshold)
    chosen = None
    for point in reversed(ordered):
        if point.fa_per_hour <= target_fa_per_hour + 1e-12:
            chosen = point
        else:
            break
    return chosen


def best_at_or_under(points: Sequence[SweepPoint], target_fa_per_hour: float) -> SweepPoint | None:
    """The swept point with the most hits among those at or under ``target_fa_per_hour``.

    This reads the DET curve ("hits at <= 1 FA/hour"): the best operating point the sweep found
    within the budget, which on a non-monotone sweep may sit below a threshold that exceeds it
    (:func:`choose_threshold`, used to calibrate, refuses such a lucky dip). Ties go to the
    point with fewer false accepts, then the higher threshold. None when no point qualifies.
    """
    ok = [p for p in points if p.fa_per_hour <= target_fa_per_hour + 1e-12]
    if not ok:
        return None
    return max(ok, key=lambda p: (p.hits, -p.false_accepts, p.threshold))


def most_first(counts: Mapping[str, int]) -> dict[str, int]:
    """``counts`` ordered by count, largest first, then by name (how reports list speakers)."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


#: Speakers named in a report's line of false accepts by speaker (all of them are in --json).
SPEAKERS_SHOWN = 5


def format_speaker_counts(counts: Mapping[str, int], *, shown: int = SPEAKERS_SHOWN) -> str:
    """``"a 5, b 2, 3 more"``: the first ``shown`` speakers of ``counts`` (most first) and how many more."""
    items = list(counts.items())[:shown]
    more = len(counts) - len(items)
    return ", ".join(f"{k} {v}" for k, v in items) + (f", {more} more" if more > 0 else "")
