"""Random microphone channels (kws.train.channel, ``kws-train --channel-eq``): against a direct
convolution, their ranges, the Augmenter stage and the command line."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kws.runtime.errors import KwsError  # noqa: E402
from kws.train import augment as aug  # noqa: E402
from kws.train.channel import apply_responses, random_channel, random_responses  # noqa: E402


def direct_filter(x: np.ndarray, response: np.ndarray) -> np.ndarray:
    """The slow reference: the zero-phase impulse response of ``response`` (on the rfft grid of
    2 n points), convolved sample by sample with ``x`` zero-padded to 2 n, the first n kept."""
    n = len(x)
    h = np.fft.irfft(response, n=2 * n)           # circular, centred on sample 0
    padded = np.concatenate([x, np.zeros(n)])
    return np.array([sum(padded[k] * h[(t - k) % (2 * n)] for k in range(2 * n)) for t in range(n)])


def test_filtering_matches_a_direct_convolution():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 120))
    responses = random_responses(2, n_fft=240, sample_rate_hz=8000, max_db=12.0, rng=rng)
    got = apply_responses(x, responses)
    for row in range(2):
        want = direct_filter(x[row], responses[row])
        want *= np.sqrt(np.mean(x[row] ** 2) / np.mean(want ** 2))     # the clip's own RMS level
        np.testing.assert_allclose(got[row], want, rtol=1e-4, atol=1e-5)
    assert got.dtype == np.float32


def test_a_tone_comes_out_scaled_by_the_response_at_its_frequency():
    """Two tones of equal amplitude: their ratio after filtering is the ratio of the response at
    their frequencies (measured in the middle of the clip, away from the edges)."""
    sr, n = 8000, 8000
    t = np.arange(n) / sr
    rng = np.random.default_rng(1)
    responses = random_responses(4, n_fft=2 * n, sample_rate_hz=sr, max_db=12.0, rng=rng)
    for response in responses:
        tones = [np.sin(2 * np.pi * f * t) for f in (500.0, 2000.0)]
        out = [apply_responses(tone[None], response[None])[0] for tone in tones]
        middle = slice(2000, 6000)
        measured = np.sqrt(np.mean(out[0][middle] ** 2)) / np.sqrt(np.mean(out[1][middle] ** 2))
        bins = [int(f * 2 * n / sr) for f in (500.0, 2000.0)]
        expected = 1.0  # each tone alone is brought back to its own level ...
        assert measured == pytest.approx(expected, rel=0.02)
        both = apply_responses((tones[0] + tones[1])[None], response[None])[0]   # ... but together, not
        spectrum = np.abs(np.fft.rfft(both[middle] * np.hanning(4000)))
        ratio = spectrum[int(500 * 4000 / sr)] / spectrum[int(2000 * 4000 / sr)]
        assert ratio == pytest.approx(response[bins[0]] / response[bins[1]], rel=0.05)


def test_responses_stay_in_their_ranges():
    rng = np.random.default_rng(2)
    responses = random_responses(500, n_fft=16000, sample_rate_hz=8000, max_db=12.0, rng=rng)
    freqs = np.fft.rfftfreq(16000, 1 / 8000)
    assert responses.shape == (500, 8001) and np.all(responses > 0)
    band = (freqs >= 600) & (freqs <= 1600)        # no filter corner there: tilt and resonances only
    db = 20 * np.log10(responses[:, band])
    assert db.max() <= 3 * 12 + 3 * 1.5 and db.min() >= -(3 * 12 + 3 * 1.5)
    assert db.std() > 3                            # they do differ
    top = 20 * np.log10(responses[:, freqs >= 3950]).mean(axis=1)
    assert top.mean() < db.mean() - 2               # tilts and resonances average 0 dB; low-passes do not
    bottom = 20 * np.log10(responses[:, (freqs > 0) & (freqs <= 60)]).mean(axis=1)
    assert bottom.mean() < db.mean() - 2            # nor do high-passes
    scaled = random_responses(3, n_fft=32000, sample_rate_hz=16000, max_db=6.0, rng=rng)
    assert scaled.shape == (3, 16001)


def test_random_channel_keeps_each_clip_level_and_a_silent_clip_silent():
    rng = np.random.default_rng(3)
    x = rng.normal(scale=[[0.01], [0.3], [0.0]], size=(3, 8000)).astype(np.float32)
    y = random_channel(x, sample_rate_hz=8000, max_db=12.0, rng=rng)
    np.testing.assert_allclose(np.sqrt(np.mean(y ** 2, axis=1)), np.sqrt(np.mean(x ** 2, axis=1)), rtol=1e-5)
    assert not y[2].any() and not np.allclose(y[0] / 0.01, x[0] / 0.01, atol=1e-2)
    with pytest.raises(ValueError, match="responses of shape"):
        apply_responses(x, np.ones((3, 8000)))


def test_augmenter_channel_stage():
    x = np.random.default_rng(4).normal(scale=0.1, size=(64, 8000)).astype(np.float32)
    labels = np.zeros(64, dtype=int)
    quiet = dict(time_shift_ms=0.0, noise_prob=0.0, gain_db=0.0)
    every = aug.Augmenter(aug.AugmentConfig(channel_prob=1.0, **quiet), sample_rate_hz=8000)
    y = every.waveforms(x, labels, np.random.default_rng(5))
    np.testing.assert_allclose(np.sqrt(np.mean(y ** 2, axis=1)), np.sqrt(np.mean(x ** 2, axis=1)), rtol=1e-4)
    assert not np.any(np.all(np.isclose(y, x, atol=1e-3), axis=1))      # every row was filtered
    half = aug.Augmenter(aug.AugmentConfig(channel_prob=0.5, **quiet), sample_rate_hz=8000)
    z = half.waveforms(x, labels, np.random.default_rng(5))
    unchanged = np.all(z == x, axis=1)
    assert 15 < unchanged.sum() < 49
    again = half.waveforms(x, labels, np.random.default_rng(5))
    np.testing.assert_array_equal(z, again)                               # reproducible from the rng
    off = aug.Augmenter(aug.AugmentConfig(**quiet), sample_rate_hz=8000)
    rng = np.random.default_rng(6)
    np.testing.assert_array_equal(off.waveforms(x, labels, rng), x)
    assert rng.random() == np.random.default_rng(6).random()             # off draws nothing
    assert aug.AugmentConfig(channel_prob=0.3, **quiet).waveform_on


@pytest.mark.parametrize("kwargs, message", [
    ({"channel_prob": 1.5}, "random channel probability 1.5 (--channel-eq): expected a number in [0, 1]"),
    ({"channel_db": 0.0}, "channel gain 0.0 dB (--channel-eq-db): expected a number in (0, 40]"),
    ({"channel_db": float("nan")}, "channel gain nan dB (--channel-eq-db)"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(KwsError) as info:
        aug.AugmentConfig(**kwargs)
    assert message in str(info.value)


keras = pytest.importorskip("keras")

from test_train import _train  # noqa: E402


def test_kws_train_records_the_channel_stage(tmp_path, synth_npz, capsys):
    code, _, err = _train(capsys, "--data", synth_npz, "--model", "dscnn", "--width", 4, "--depth", 2,
                          "--epochs", 1, "--steps-per-epoch", 2, "--batch-size", 8, "--channel-eq", 0.5,
                          "--channel-eq-db", 9, "--out", tmp_path / "run")
    assert code == 0, err
    augmentation = json.loads((tmp_path / "run" / "model.json").read_text())["training"]["augmentation"]
    assert augmentation["channel_prob"] == 0.5 and augmentation["channel_db"] == 9.0


@pytest.mark.parametrize("args, message", [
    (["--channel-eq", "2"], "2.0 (--channel-eq): expected a number in [0, 1]"),
    (["--channel-eq", "0.5", "--channel-eq-db", "-3"], "channel gain -3.0 dB (--channel-eq-db)"),
    (["--no-augment", "--channel-eq", "0.5"], "but --channel-eq asks for some"),
])
def test_kws_train_refuses_bad_channel_flags(tmp_path, synth_npz, capsys, args, message):
    code, _, err = _train(capsys, "--data", synth_npz, "--model", "dscnn", *args, "--out", tmp_path / "never")
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "never").exists()
