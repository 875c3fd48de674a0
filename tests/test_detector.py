"""The detector on scripted posterior sequences (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from kws.runtime.detector import Detection, Detector, DetectorConfig
from kws.runtime.errors import KwsError
from kws.runtime.features import FeatureConfig
from kws.runtime.labels import SEED_LABELS
from kws.runtime.meta import ModelMeta

HOP_S = 0.25


def probs(label: str | None = None, score: float = 0.0, rest: str = "silence") -> np.ndarray:
    """Posteriors with ``score`` on ``label`` and the remainder on ``rest``."""
    p = np.zeros(len(SEED_LABELS), np.float32)
    if label is not None:
        p[SEED_LABELS.index(label)] = score
    p[SEED_LABELS.index(rest)] += 1.0 - p.sum()
    return p


def run(script, config: DetectorConfig, labels=SEED_LABELS) -> list[Detection]:
    """script: list of posteriors, one per hop, window k ending at 1 s + k * hop."""
    det = Detector(labels, config)
    out = []
    for k, p in enumerate(script):
        d = det.update(1.0 + k * HOP_S, p)
        if d is not None:
            out.append(d)
    return out


def event(label, score, n):
    return [probs(label, score)] * n


QUIET = [probs()] * 8


def test_one_event_fires_once():
    script = QUIET + event("yes", 0.95, 6) + QUIET
    out = run(script, DetectorConfig(threshold=0.7, smoothing_windows=1, refractory_ms=0, min_count=1))
    assert [(d.label, d.time_s) for d in out] == [("yes", 1.0 + 8 * HOP_S)]
    assert out[0].score == pytest.approx(0.95)


def test_long_event_fires_once_even_without_refractory():
    script = QUIET + event("go", 0.9, 40) + QUIET
    out = run(script, DetectorConfig(threshold=0.5, smoothing_windows=3, refractory_ms=0))
    assert [d.label for d in out] == ["go"]


def test_separate_events_fire_separately():
    script = QUIET + event("yes", 0.9, 4) + QUIET + event("no", 0.9, 4) + QUIET + event("yes", 0.9, 4)
    out = run(script, DetectorConfig(threshold=0.7, smoothing_windows=1, refractory_ms=1000))
    assert [d.label for d in out] == ["yes", "no", "yes"]


def test_threshold():
    script = QUIET + event("yes", 0.69, 6) + QUIET
    assert run(script, DetectorConfig(threshold=0.7, smoothing_windows=1)) == []
    assert len(run(script, DetectorConfig(threshold=0.68, smoothing_windows=1))) == 1


def test_smoothing_averages_the_last_k_windows():
    # a one-window spike fires unsmoothed; over 3 windows silence (2/3) stays on top
    script = QUIET + [probs("yes", 1.0)] + QUIET
    assert len(run(script, DetectorConfig(threshold=0.9, smoothing_windows=1))) == 1
    assert run(script, DetectorConfig(threshold=0.1, smoothing_windows=3)) == []
    # two windows of 0.9 among quiet ones: the mean over 3 windows peaks at 0.6
    script = QUIET + event("yes", 0.9, 2) + QUIET
    assert run(script, DetectorConfig(threshold=0.61, smoothing_windows=3)) == []
    out = run(script, DetectorConfig(threshold=0.59, smoothing_windows=3))
    assert len(out) == 1 and out[0].score == pytest.approx(0.6, abs=1e-6)
    assert out[0].time_s == 1.0 + 9 * HOP_S  # on the second 0.9 window: mean of (0, 0.9, 0.9)
    # two windows of 0.8 then quiet: smoothed over 2 reaches 0.8 at the second window
    script = QUIET + event("up", 0.8, 2) + QUIET
    out = run(script, DetectorConfig(threshold=0.75, smoothing_windows=2))
    assert [(d.label, d.time_s) for d in out] == [("up", 1.0 + 9 * HOP_S)]


def test_smoothing_uses_what_has_arrived_at_the_start():
    out = run(event("yes", 0.9, 2), DetectorConfig(threshold=0.8, smoothing_windows=5))
    assert [d.time_s for d in out] == [1.0]


def test_refractory_period_suppresses_a_second_event():
    # yes at t0, a gap of one quiet window, yes again 0.5 s later
    script = QUIET + event("yes", 0.9, 2) + [probs()] + event("yes", 0.9, 2) + QUIET
    cfg = dict(threshold=0.7, smoothing_windows=1)
    assert len(run(script, DetectorConfig(refractory_ms=1000, **cfg))) == 1
    assert len(run(script, DetectorConfig(refractory_ms=500, **cfg))) == 2  # 0.75 s apart
    assert len(run(script, DetectorConfig(refractory_ms=0, **cfg))) == 2


def test_refractory_applies_across_keywords_and_consumes_the_run():
    script = QUIET + event("yes", 0.9, 1) + event("no", 0.9, 8) + QUIET
    out = run(script, DetectorConfig(threshold=0.7, smoothing_windows=1, refractory_ms=1000))
    assert [d.label for d in out] == ["yes"]  # "no" started within 1 s: same utterance
    script = QUIET + event("yes", 0.9, 1) + QUIET + event("no", 0.9, 2) + QUIET
    out = run(script, DetectorConfig(threshold=0.7, smoothing_windows=1, refractory_ms=1000))
    assert [d.label for d in out] == ["yes", "no"]
    assert out[1].time_s - out[0].time_s == pytest.approx(9 * HOP_S)


def test_refractory_uses_the_given_timestamps():
    det = Detector(SEED_LABELS, DetectorConfig(threshold=0.5, smoothing_windows=1, refractory_ms=2000))
    assert det.update(10.0, probs("yes", 0.9)) is not None
    assert det.update(10.5, probs()) is None
    assert det.update(11.9, probs("yes", 0.9)) is None      # 1.9 s later: suppressed
    assert det.update(12.0, probs()) is None
    assert det.update(12.0, probs("yes", 0.9)) is not None  # exactly 2 s later: allowed


def test_min_count_needs_consecutive_windows():
    cfg = dict(threshold=0.7, smoothing_windows=1, refractory_ms=0)
    flicker = QUIET + [probs("yes", 0.9), probs(), probs("yes", 0.9), probs(), probs("yes", 0.9)] + QUIET
    assert run(flicker, DetectorConfig(min_count=2, **cfg)) == []
    assert len(run(flicker, DetectorConfig(min_count=1, **cfg))) == 3
    steady = QUIET + event("yes", 0.9, 3) + QUIET
    out = run(steady, DetectorConfig(min_count=3, **cfg))
    assert [d.time_s for d in out] == [1.0 + 10 * HOP_S]  # on the window that completes the run
    assert run(QUIET + event("yes", 0.9, 2) + QUIET, DetectorConfig(min_count=3, **cfg)) == []


def test_label_change_restarts_the_count():
    script = QUIET + [probs("yes", 0.9), probs("no", 0.9), probs("yes", 0.9), probs("no", 0.9)] + QUIET
    assert run(script, DetectorConfig(threshold=0.7, smoothing_windows=1, min_count=2)) == []


@pytest.mark.parametrize("label", ["unknown", "silence"])
def test_unknown_and_silence_never_fire(label):
    script = QUIET + event(label, 1.0, 10) + QUIET
    assert run(script, DetectorConfig(threshold=0.1, smoothing_windows=1, refractory_ms=0)) == []


def test_a_keyword_in_second_place_does_not_fire():
    p = probs("yes", 0.45, rest="unknown")  # unknown 0.55 on top
    assert run(QUIET + [p] * 5, DetectorConfig(threshold=0.4, smoothing_windows=1)) == []


def test_keywords_restrict_the_set():
    script = QUIET + event("yes", 0.9, 3) + QUIET + event("no", 0.9, 3) + QUIET
    out = run(script, DetectorConfig(threshold=0.7, smoothing_windows=1, keywords=("no",)))
    assert [d.label for d in out] == ["no"]
    det = Detector(SEED_LABELS, DetectorConfig(keywords=("no", "go")))
    assert det.active_keywords == ("no", "go")


def test_bad_keywords():
    with pytest.raises(KwsError, match="keyword\\(s\\) maybe not among the model's labels"):
        Detector(SEED_LABELS, DetectorConfig(keywords=("yes", "maybe")))
    with pytest.raises(KwsError, match="unknown never fire"):
        Detector(SEED_LABELS, DetectorConfig(keywords=("unknown",)))
    with pytest.raises(KwsError, match="empty"):
        DetectorConfig(keywords=())


@pytest.mark.parametrize("kwargs,match", [
    ({"threshold": 1.5}, "threshold 1.5: expected a probability"),
    ({"threshold": -0.1}, "threshold -0.1"),
    ({"smoothing_windows": 0}, "smoothing of 0 windows"),
    ({"refractory_ms": -5}, "refractory period -5 ms"),
    ({"min_count": 0}, "minimum count 0"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(KwsError, match=match):
        DetectorConfig(**kwargs)


def test_wrong_posterior_shape_and_time_order():
    det = Detector(SEED_LABELS, DetectorConfig())
    with pytest.raises(KwsError, match="shape \\(3,\\)"):
        det.update(1.0, np.ones(3))
    det.update(2.0, probs())
    with pytest.raises(KwsError, match="earlier than the previous"):
        det.update(1.5, probs())


def test_reset_forgets_history():
    det = Detector(SEED_LABELS, DetectorConfig(threshold=0.7, smoothing_windows=1, refractory_ms=10000))
    assert det.update(1.0, probs("yes", 0.9)) is not None
    det.reset()
    assert det.update(0.5, probs("yes", 0.9)) is not None


def test_from_meta_defaults_and_overrides():
    meta = ModelMeta(SEED_LABELS, FeatureConfig(), {"detection": {
        "threshold": 0.85, "smoothing_windows": 4, "refractory_ms": 1500, "min_count": 2,
        "calibrated_on": "dev"}})
    cfg = DetectorConfig.from_meta(meta)
    assert (cfg.threshold, cfg.smoothing_windows, cfg.refractory_ms, cfg.min_count) == (0.85, 4, 1500.0, 2)
    cfg = DetectorConfig.from_meta(meta, threshold=0.5, min_count=None, keywords=["yes"])
    assert (cfg.threshold, cfg.min_count, cfg.keywords) == (0.5, 2, ("yes",))
    plain = DetectorConfig.from_meta(ModelMeta(SEED_LABELS, FeatureConfig(), {}))
    assert plain == DetectorConfig()  # kws.runtime.meta.DEFAULT_DETECTION
    assert DetectorConfig.from_meta({"detection": {"threshold": 0.9}}).threshold == 0.9
    with pytest.raises(KwsError, match="unknown detector setting"):
        DetectorConfig.from_meta(meta, treshold=0.5)
