"""kws.runtime.scoring: matching scripted detections to scripted truth, FA/hour, sweeps."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from kws.runtime.errors import DataError
from kws.runtime.scoring import (Truth, TruthEvent, choose_threshold, fa_per_hour, load_truth,
                                 match_detections, max_delay_s, poisson_interval, poisson_rate_interval,
                                 sweep_thresholds, truth_from_dict, wilson_interval)


@dataclass(frozen=True)
class Det:
    time_s: float
    label: str
    score: float = 0.9


def truth(events, duration_s=3600.0, unknown=()):
    return Truth(8000, duration_s, tuple(TruthEvent(*e) for e in events),
                 tuple(TruthEvent("unknown", s, e) for s, e in unknown))


# ---------------------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------------------
def test_hit_wrong_keyword_false_accept_and_miss():
    t = truth([("yes", 10.0, 10.5), ("no", 20.0, 20.4), ("up", 30.0, 30.6), ("go", 40.0, 40.3)])
    dets = [Det(10.9, "yes"), Det(20.8, "up"), Det(50.0, "stop")]  # "up" and "go" get nothing right
    s = match_detections(dets, t, tolerance_s=0.5, max_delay_s=1.0)
    assert s.outcomes == ("hit", "wrong_keyword", "missed", "missed")
    assert s.detection_outcomes == ("hit", "wrong_keyword", "false_accept")
    assert (s.hits, s.wrong_keyword, s.missed, s.false_accepts) == (1, 1, 2, 1)
    assert s.hit_rate == pytest.approx(0.25)
    assert s.miss_rate == pytest.approx(0.75)  # a wrong keyword counts as a miss
    assert s.confusions == {"no->up": 1}
    assert s.per_keyword["yes"].hit_rate == 1.0
    assert s.per_keyword["no"].to_dict() == {"events": 1, "hits": 0, "wrong_keyword": 1, "missed": 0,
                                             "hit_rate": 0.0}
    assert s.fa_per_hour == pytest.approx(1.0)


@pytest.mark.parametrize("time_s, hit", [
    (9.0 - 0.25, True),           # exactly start - tolerance
    (9.0 - 0.25 - 1e-6, False),   # just before
    (9.5 + 1.0 + 0.25, True),     # exactly end + max_delay + tolerance
    (9.5 + 1.0 + 0.25 + 1e-6, False),
])
def test_tolerance_edges(time_s, hit):
    t = truth([("left", 9.0, 9.5)])
    s = match_detections([Det(time_s, "left")], t, tolerance_s=0.25, max_delay_s=1.0)
    assert (s.hits, s.false_accepts, s.missed) == ((1, 0, 0) if hit else (0, 1, 1))


def test_second_detection_for_one_event_is_a_false_accept():
    t = truth([("on", 5.0, 5.4)])
    s = match_detections([Det(5.6, "on"), Det(6.1, "on"), Det(5.9, "off")], t)
    assert s.hits == 1 and s.false_accepts == 2 and s.wrong_keyword == 0
    assert s.detection_outcomes == ("hit", "false_accept", "false_accept")


def test_right_label_wins_over_earlier_wrong_one_and_neighbouring_events():
    # Overlapping intervals: the "no" detection belongs to the second event, the "yes" to the first.
    t = truth([("yes", 1.0, 1.5), ("no", 2.2, 2.6)])
    s = match_detections([Det(2.3, "no"), Det(2.4, "yes")], t, tolerance_s=0.75, max_delay_s=1.0)
    assert s.outcomes == ("hit", "hit") and s.false_accepts == 0
    # Only a wrong label near the first: it is a wrong keyword, the second event is missed.
    s = match_detections([Det(1.8, "stop")], t, tolerance_s=0.75, max_delay_s=1.0)
    assert s.outcomes == ("wrong_keyword", "missed")


def test_detections_order_does_not_matter():
    rng = np.random.default_rng(1)
    events = [("yes", 3.0 * i + 1.0, 3.0 * i + 1.5) for i in range(30)]
    dets = [Det(float(t), str(lbl)) for t, lbl in zip(rng.uniform(0, 95, 40), rng.choice(["yes", "no"], 40))]
    t = truth(events, duration_s=100.0)
    a = match_detections(dets, t)
    b = match_detections(dets[::-1], t)
    assert (a.hits, a.wrong_keyword, a.false_accepts) == (b.hits, b.wrong_keyword, b.false_accepts)
    assert a.hits + a.wrong_keyword + a.false_accepts == len(dets)
    assert a.hits + a.wrong_keyword + a.missed == len(events)


def test_false_accepts_on_unknown_words_are_counted_apart():
    t = truth([], duration_s=1800.0, unknown=[(10.0, 10.5)])
    s = match_detections([Det(11.0, "yes"), Det(100.0, "no")], t)
    assert s.false_accepts == 2 and s.false_accepts_on_unknown == 1
    assert s.hit_rate is None and s.miss_rate is None  # negatives-only: no keyword events
    assert s.fa_per_hour == pytest.approx(4.0)  # 2 in half an hour
    assert s.false_accept_clips is None and s.detection_clips == (None, None)  # no clip indices


def test_false_accepts_are_put_down_to_their_clips():
    # clip 7 placed twice, clip 9 once, clip 3 never fires; two words close together
    unknown = (TruthEvent("unknown", 10.0, 10.5, clip_index=7), TruthEvent("unknown", 50.0, 50.5, clip_index=7),
               TruthEvent("unknown", 90.0, 90.4, clip_index=3), TruthEvent("unknown", 91.0, 91.5, clip_index=9),
               TruthEvent("unknown", 200.0, 200.5, clip_index=3))
    t = Truth(8000, 3600.0, (TruthEvent("yes", 300.0, 300.5, clip_index=1),), unknown)
    dets = [Det(11.0, "yes"), Det(51.2, "no"), Det(92.0, "up"), Det(150.0, "go"), Det(301.0, "yes")]
    s = match_detections(dets, t, tolerance_s=0.5, max_delay_s=1.5)
    assert s.detection_outcomes == ("false_accept",) * 4 + ("hit",)
    # 92.0 overlaps the words at 90.0 and 91.0: the latest one (clip 9) takes it; 150.0 is noise
    assert s.detection_clips == (7, 7, 9, None, None)
    assert s.false_accepts == 4 and s.false_accepts_on_unknown == 3 and s.false_accept_clips == 2
    assert s.to_dict()["false_accept_clips"] == 2


def test_false_accepts_are_counted_by_the_speaker_of_their_word():
    unknown = (TruthEvent("unknown", 10.0, 10.5, speaker="corpus"), TruthEvent("unknown", 50.0, 50.5, speaker="corpus"),
               TruthEvent("unknown", 90.0, 90.4, speaker="b"), TruthEvent("unknown", 120.0, 120.4),
               TruthEvent("unknown", 200.0, 200.5, speaker="corpus"), TruthEvent("unknown", 300.0, 300.5, speaker="a"))
    t = Truth(8000, 3600.0, (), unknown)
    dets = [Det(11.0, "yes"), Det(51.0, "no"), Det(91.0, "up"), Det(121.0, "go"), Det(201.0, "on"), Det(250.0, "on"),
            Det(301.0, "off")]
    s = match_detections(dets, t, tolerance_s=0.5, max_delay_s=1.5)
    assert s.false_accepts == 7 and s.false_accepts_on_unknown == 6   # 250.0 is noise
    # most first, then by name; the word without a speaker (120.0) is left out
    assert list(s.false_accept_speakers.items()) == [("corpus", 3), ("a", 1), ("b", 1)]
    assert s.to_dict()["false_accept_speakers"] == {"corpus": 3, "a": 1, "b": 1}
    assert match_detections([], t).false_accept_speakers == {}


def test_fa_per_hour_arithmetic():
    assert fa_per_hour(3, 3600.0) == pytest.approx(3.0)
    assert fa_per_hour(1, 1800.0) == pytest.approx(2.0)
    assert fa_per_hour(0, 60.0) == 0.0
    assert fa_per_hour(5, 36000.0) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        fa_per_hour(1, 0.0)
    assert max_delay_s(window_s=1.0, hop_s=0.25, smoothing_windows=3) == pytest.approx(1.5)
    assert max_delay_s(window_s=1.0, hop_s=0.25, smoothing_windows=1) == pytest.approx(1.0)


@pytest.mark.parametrize("count", [0, 1, 2, 4, 10, 70, 500])
def test_poisson_interval_is_the_exact_chi_square_one(count):
    chi2 = pytest.importorskip("scipy.stats").chi2
    lower, upper = poisson_interval(count)
    assert lower == pytest.approx(chi2.ppf(0.025, 2 * count) / 2 if count else 0.0, rel=1e-9, abs=1e-12)
    assert upper == pytest.approx(chi2.ppf(0.975, 2 * count + 2) / 2, rel=1e-9)
    lo90, hi90 = poisson_interval(count, level=0.90)
    assert lower <= lo90 <= count <= hi90 <= upper
    # per hour: 4 false accepts in 2 hours
    assert poisson_rate_interval(4, 7200.0) == pytest.approx(tuple(x / 2 for x in poisson_interval(4)))
    with pytest.raises(ValueError):
        poisson_interval(-1)


def test_wilson_interval():
    assert wilson_interval(0, 0) is None
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1.959963984540054 ** 2 / (10 + 1.959963984540054 ** 2))
    lo, hi = wilson_interval(297, 565)
    assert lo < 297 / 565 < hi and hi - lo == pytest.approx(0.082, abs=0.001)
    lo2, hi2 = wilson_interval(268, 565)  # mirror image: successes <-> failures
    assert (lo2, hi2) == pytest.approx((1 - hi, 1 - lo))
    wide, narrow = wilson_interval(30, 60), wilson_interval(300, 600)
    assert wide[0] < narrow[0] < 0.5 < narrow[1] < wide[1]  # more keywords, a tighter interval
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_score_reports_its_intervals():
    score = match_detections([Det(11.0, "yes"), Det(500.0, "up")],
                             truth([("yes", 10.0, 10.5), ("no", 20.0, 20.4)], duration_s=7200.0),
                             tolerance_s=0.75, max_delay_s=1.5)
    d = score.to_dict()
    assert d["hit_rate_ci95"] == pytest.approx(list(wilson_interval(1, 2)))
    assert d["fa_per_hour_ci95"] == pytest.approx(list(poisson_rate_interval(1, 7200.0)))
    negatives = match_detections([], truth([]), tolerance_s=0.75, max_delay_s=1.5)
    assert negatives.to_dict()["hit_rate_ci95"] is None
    assert negatives.to_dict()["fa_per_hour_ci95"] == pytest.approx([0.0, 3.688879454113935])


# ---------------------------------------------------------------------------------------
# Sweep and threshold choice
# ---------------------------------------------------------------------------------------
def _peaks_detector(peaks):
    """A scripted detector: each (time, label, score) peak fires when score >= threshold."""
    return lambda threshold: [Det(t, lbl, s) for t, lbl, s in peaks if s >= threshold]


def test_sweep_is_monotone_and_chooses_lowest_threshold_meeting_target():
    rng = np.random.default_rng(0)
    events = [("yes" if i % 2 else "no", 4.0 * i + 2.0, 4.0 * i + 2.5) for i in range(50)]
    peaks = [(e[2] + 0.4, e[0], float(rng.uniform(0.5, 1.0))) for e in events]
    peaks += [(float(t), "yes", float(rng.uniform(0.0, 0.9))) for t in 4.0 * np.arange(50) + 0.2]
    t = truth(events, duration_s=7200.0)  # two hours
    points = sweep_thresholds(_peaks_detector(peaks), t, [0.9, 0.1, 0.5, 0.3, 0.7], tolerance_s=0.5)
    assert [p.threshold for p in points] == [0.1, 0.3, 0.5, 0.7, 0.9]
    fa = [p.fa_per_hour for p in points]
    hits = [p.hits for p in points]
    assert fa == sorted(fa, reverse=True) and hits == sorted(hits, reverse=True)
    assert fa[0] > fa[-1] and hits[0] > hits[-1]
    for p in points:
        expected_fa = sum(1 for *_, s in peaks[50:] if s >= p.threshold) / 2.0
        assert p.fa_per_hour == pytest.approx(expected_fa)
        assert p.miss_rate == pytest.approx(1 - p.hits / 50)
    target = fa[2]
    chosen = choose_threshold(points, target)
    assert chosen.threshold == 0.5
    assert choose_threshold(points, -1.0) is None


def test_choose_threshold_skips_a_lucky_dip():
    from kws.runtime.scoring import SweepPoint

    points = [SweepPoint(0.3, 9, 10, 0, 0.0),  # a dip: under target, but 0.5 is over it
              SweepPoint(0.5, 8, 10, 4, 4.0),
              SweepPoint(0.7, 7, 10, 1, 1.0),
              SweepPoint(0.9, 5, 10, 0, 0.0)]
    assert choose_threshold(points, 1.0).threshold == 0.7
    assert choose_threshold(points, 0.5).threshold == 0.9


# ---------------------------------------------------------------------------------------
# Truth files
# ---------------------------------------------------------------------------------------
def test_truth_round_trip(tmp_path):
    t = truth([("yes", 1.0, 1.5), ("no", 3.0, 3.25)], duration_s=10.0, unknown=[(5.0, 5.5)])
    loaded = load_truth(t.save(tmp_path / "t.json"))
    assert loaded.events == t.events and loaded.unknown_events == t.unknown_events
    assert loaded.duration_s == 10.0 and not loaded.negatives_only
    with_clips = Truth(8000, 10.0, (TruthEvent("yes", 1.0, 1.5, "spk", 12),),
                       (TruthEvent("unknown", 5.0, 5.5, None, 0),))
    loaded = load_truth(with_clips.save(tmp_path / "c.json"))
    assert loaded.events[0].clip_index == 12 and loaded.unknown_events[0].clip_index == 0
    assert loaded == with_clips


GOOD = {"sample_rate_hz": 8000, "duration_s": 10.0, "events": [{"label": "yes", "start_s": 1.0, "end_s": 1.5}]}


@pytest.mark.parametrize("change, message", [
    ({"events": None}, "'events' must be a list"),
    ({"duration_s": -1}, "'duration_s' must be positive"),
    ({"duration_s": "ten"}, "'duration_s' must be a finite number, got 'ten'"),
    ({"sample_rate_hz": 0}, "'sample_rate_hz' must be a positive integer"),
    ({"events": [{"label": "yes", "start_s": 2.0, "end_s": 1.0}]}, "events[0]: expected 0 <= start_s < end_s"),
    ({"events": [{"label": "", "start_s": 1.0, "end_s": 2.0}]}, "events[0]: 'label' must be a non-empty string"),
    ({"events": [{"label": "yes", "start_s": 1.0, "end_s": 12.0}]}, "past the stream's duration_s=10.0"),
    ({"events": ["yes"]}, "events[0] must be an object"),
    ({"unknown_events": [{"label": "unknown", "start_s": "x", "end_s": 1}]}, "unknown_events[0]: 'start_s'"),
    ({"unknown_events": [{"label": "unknown", "start_s": 1, "end_s": 2, "clip_index": -3}]},
     "unknown_events[0]: 'clip_index' must be a non-negative integer, got -3"),
    ({"events": [{"label": "yes", "start_s": 1, "end_s": 2, "clip_index": "12"}]},
     "events[0]: 'clip_index' must be a non-negative integer, got '12'"),
    ({"format": "other/9"}, "format 'other/9'; expected 'kws-stream-truth/1'"),
    ({"events": [{"label": "silence", "start_s": 1, "end_s": 2}]}, "label 'silence' is not a keyword"),
])
def test_bad_truth_is_named(change, message):
    with pytest.raises(DataError, match=None) as info:
        truth_from_dict({**GOOD, **change}, source="t.json")
    assert message in str(info.value) and str(info.value).startswith("t.json")


def test_truth_file_errors(tmp_path):
    with pytest.raises(DataError, match="truth file not found"):
        load_truth(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_truth(bad)
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(DataError, match="expected a JSON object, got list"):
        load_truth(bad)
    bad.write_text(json.dumps({"sample_rate_hz": 8000, "duration_s": 5.0}))
    with pytest.raises(DataError, match="missing 'events' list"):
        load_truth(bad)
