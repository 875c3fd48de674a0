"""Augmentation, the batch pipeline, tiny-model training steps and kws-train end to end.

Nothing here trains for accuracy: tiny models, a few steps, generated data (``synth_npz``).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kws.runtime.errors import DataError, KwsError  # noqa: E402
from kws.runtime.features import FeatureConfig, compute_features, stft_magnitude  # noqa: E402
from kws.runtime.meta import ModelMeta  # noqa: E402
from kws.train import augment as aug  # noqa: E402

keras = pytest.importorskip("keras")

from kws.train import callbacks, trainer  # noqa: E402
from kws.train.train_args import CHECKPOINT_TMP  # noqa: E402
from kws.train.data import load_npz, split_dataset  # noqa: E402
from kws.train.dataset import EvalBatches, TrainBatches  # noqa: E402
from kws.train.presets import feature_config, preset_of  # noqa: E402
from kws.train.nets import MODELS, build_model  # noqa: E402

from test_nets import TINY  # noqa: E402

ALL_OUTPUTS = ("model.keras", "model.json", "history.json", "curves.png", "eval.json", "confusion.png")


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------------------
def test_time_shift_moves_and_zero_fills():
    x = np.tile(np.arange(1, 101, dtype=np.float32), (50, 1))
    out = aug.time_shift(x, 10, _rng())
    assert out.shape == x.shape and out is not x
    shifts = []
    for row in out:
        nz = np.flatnonzero(row)
        # value 1 moved to index s (s >= 0), or the row starts at value 1 - s (s < 0)
        shift = int(nz[0]) if row[nz[0]] == 1 else int(1 - row[nz[0]])
        assert -10 <= shift <= 10
        expected = np.zeros(100, dtype=np.float32)
        if shift >= 0:
            expected[shift:] = x[0, :100 - shift]
        else:
            expected[:100 + shift] = x[0, -shift:]
        np.testing.assert_array_equal(row, expected)
        shifts.append(shift)
    assert len(set(shifts)) > 3 and min(shifts) < 0 < max(shifts)


def test_time_shift_keeping_speech_never_cuts_the_word():
    from kws.train.streams import speech_bounds

    sr = 8000
    rng = np.random.default_rng(3)
    rows = np.zeros((40, sr), dtype=np.float32)
    t = np.arange(1600) / sr
    for i, start in enumerate(rng.integers(200, sr - 1800, len(rows))):  # a 0.2 s "word" anywhere
        rows[i, start:start + 1600] = 0.5 * np.sin(2 * np.pi * 440 * t)
    rows[-1] = 0.0  # a silent row still shifts, freely
    free = aug.time_shift(rows, 4000, _rng())
    kept = aug.time_shift(rows, 4000, _rng(), keep_speech=True, sample_rate_hz=sr)
    full = [np.sum(r ** 2) for r in rows[:-1]]
    cut_free = sum(np.sum(f ** 2) < 0.99 * e for f, e in zip(free[:-1], full))
    assert cut_free > 5  # ±0.5 s blind shifts cut many of these words ...
    for k, e in zip(kept[:-1], full):  # ... keeping speech cuts none
        assert np.sum(k ** 2) == pytest.approx(e, rel=1e-5)
    moved = [speech_bounds(k)[0] - speech_bounds(r)[0] for k, r in zip(kept[:-1], rows[:-1])]
    assert np.ptp(moved) > 2000  # and still moves them far


def _word_clip(start: int, length: int, amplitude: float, sr: int = 8000) -> np.ndarray:
    """A one-second clip: a quiet floor and a 440 Hz "word" of ``length`` samples at ``start``."""
    clip = (1e-4 * np.random.default_rng(start).standard_normal(sr)).astype(np.float32)
    t = np.arange(length) / sr
    clip[start:start + length] += (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return clip


def test_stream_place_levels_positions_and_cuts():
    from kws.train.streams import SPEECH_LEVEL_DBFS, speech_bounds

    sr = 8000
    clip = _word_clip(3000, 2400, 0.02)  # a quiet 0.3 s word, about -37 dBFS
    bed = np.zeros(sr, dtype=np.float32)  # digital silence: replaced by white noise
    starts, levels = [], []
    for seed in range(60):
        out = aug.stream_place(clip, bed, snr_db=60.0, rng=_rng(seed))
        assert out.shape == (sr,) and out.dtype == np.float32
        s, e = speech_bounds(out)
        assert abs((e - s) - 2400) <= 320  # the whole word (to a frame at each end), never cut
        levels.append(10 * np.log10(np.mean(np.square(out[s:e], dtype=np.float64))))
        starts.append(s)
        floor = np.concatenate([out[:max(0, s - 800)], out[e + 800:]])
        if len(floor) > 800:  # the bed sits 60 dB under the speech level
            assert 10 * np.log10(np.mean(floor.astype(np.float64) ** 2)) == pytest.approx(
                SPEECH_LEVEL_DBFS - 60, abs=1.0)
    assert SPEECH_LEVEL_DBFS - 5.5 <= min(levels) and max(levels) <= SPEECH_LEVEL_DBFS + 5.5
    assert np.ptp(levels) > 6  # levels spread within +-5 dB
    assert min(starts) < 1000 and max(starts) > sr - 2400 - 1000  # anywhere in the window

    cut_lengths = []
    for seed in range(200):
        s, e = speech_bounds(aug.stream_place(clip, bed, snr_db=60.0, rng=_rng(seed), cut_fraction=0.5))
        cut_lengths.append(e - s)
    assert min(cut_lengths) >= 1200 - 320 and min(cut_lengths) < 2000  # cut, but at most half

    assert aug.stream_place(np.zeros(sr, dtype=np.float32), bed, snr_db=10.0, rng=_rng()) is None


def test_augmenter_places_words_but_not_silence():
    sr = 8000
    clips = np.stack([_word_clip(500 + 300 * i, 2000, 0.3) for i in range(8)])
    labels = np.array([0, 1, 10, 11, 0, 11, 2, 10])  # 11 = silence
    noise = aug.NoiseBank(recordings=[np.random.default_rng(1).standard_normal(3 * sr).astype(np.float32)])
    cfg = aug.AugmentConfig(stream_prob=1.0, noise_prob=0.0, gain_db=0.0, time_shift_ms=0.0)
    out = aug.Augmenter(cfg, sample_rate_hz=sr, noise=noise, silence_label=11).waveforms(clips, labels, _rng())
    for row, label in enumerate(labels):
        if label == 11:
            np.testing.assert_array_equal(out[row], clips[row])  # silence is never placed
        else:  # placed: the noise bed is far above the clip's own 1e-4 floor
            assert np.min(np.abs(out[row] - clips[row]).reshape(-1, 400).max(axis=1)) > 1e-3
    with pytest.raises(KwsError, match="expected a number in \\[0, 1\\]"):
        aug.AugmentConfig(stream_prob=-0.1)
    assert aug.AugmentConfig(stream_prob=0.5, time_shift_ms=0, noise_prob=0, gain_db=0).waveform_on


def _peak_hz(row, sr=8000):
    spectrum = np.abs(np.fft.rfft(row * np.hanning(len(row))))
    return np.argmax(spectrum) * sr / len(row), spectrum


def test_change_speed_moves_pitch_and_tempo():
    sr, n = 8000, 8000
    t = np.arange(n) / sr
    tones = np.stack([np.sin(2 * np.pi * f * t) for f in (500, 1000, 3900)]).astype(np.float32)
    out = aug.change_speed(tones, np.array([1.1, 0.9, 1.1]))
    assert out.dtype == np.float32 and out.shape == tones.shape
    assert _peak_hz(out[0])[0] == pytest.approx(550, abs=1.5)      # faster: higher
    assert _peak_hz(out[1])[0] == pytest.approx(900, abs=1.5)      # slower: lower
    # 3900 Hz x 1.1 would pass 4 kHz and fold back to 3710 Hz: low-passed away instead
    assert np.abs(out[2]).max() < 1e-3
    # tempo: a burst in the middle 2000 samples spans 1000 at twice the speed, 4000 at half
    burst = np.zeros((2, n), np.float32)
    burst[:, 3000:5000] = 1.0
    fast, slow = aug.change_speed(burst, np.array([2.0, 0.5]))
    on = np.flatnonzero(fast > 0.5)
    assert abs(on[0] - 3500) <= 2 and abs(on[-1] - 4499) <= 2
    on = np.flatnonzero(slow > 0.5)
    assert abs(on[0] - 2000) <= 2 and abs(on[-1] - 5999) <= 2
    # speeding up runs out of clip at both ends: zeros there, nothing invented
    flat = np.ones((1, n), np.float32)
    sped = aug.change_speed(flat, np.array([1.25]))[0]
    assert np.all(sped[:790] == 0) and np.all(sped[-790:] == 0)
    assert sped[810:-810] == pytest.approx(np.ones(n - 1620), abs=1e-4)
    np.testing.assert_array_equal(aug.change_speed(tones, np.ones(3)), tones)   # factor 1: untouched


def test_change_speed_matches_a_direct_reference():
    """Slowing down (no low-pass) against a sample-by-sample linear interpolation."""
    x = _rng(3).standard_normal((2, 501)).astype(np.float32)
    factors = np.array([0.93, 0.71])
    out = aug.change_speed(x, factors)
    n, c = x.shape[1], (x.shape[1] - 1) / 2
    for row, r in enumerate(factors):
        for i in range(n):
            pos = c + (i - c) * r
            k = int(np.floor(pos))
            want = x[row, k] + (pos - k) * (x[row, min(k + 1, n - 1)] - x[row, k])
            assert out[row, i] == pytest.approx(want, abs=1e-5)


def test_change_speed_bad_factors():
    x = np.zeros((2, 100), np.float32)
    with pytest.raises(KwsError, match="expected numbers > 0"):
        aug.change_speed(x, np.array([1.0, 0.0]))
    with pytest.raises(KwsError, match="3 speed factors for 2 rows"):
        aug.change_speed(x, np.ones(3))


def test_augmenter_speed_is_seeded_and_never_writes_its_input():
    sr = 8000
    clips = np.stack([_word_clip(1500 + 100 * i, 2000, 0.3) for i in range(16)])
    before = clips.copy()
    labels = np.zeros(16, int)
    cfg = aug.AugmentConfig(speed_prob=0.5, speed_range=(0.8, 1.2), time_shift_ms=0.0, noise_prob=0.0,
                            gain_db=0.0)
    assert cfg.waveform_on and cfg.to_dict()["speed_range"] == [0.8, 1.2]
    augmenter = aug.Augmenter(cfg, sample_rate_hz=sr)
    a = augmenter.waveforms(clips, labels, _rng(5))
    b = augmenter.waveforms(clips, labels, _rng(5))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(clips, before)
    changed = np.array([not np.array_equal(a[i], clips[i]) for i in range(16)])
    assert 3 <= changed.sum() <= 13          # about half the rows, never all or none
    # every stage on, input float32: still never written
    full = aug.Augmenter(aug.AugmentConfig(speed_prob=1.0), sample_rate_hz=sr,
                         noise=aug.NoiseBank(recordings=[_rng(1).standard_normal(3 * sr).astype(np.float32)]))
    full.waveforms(clips, labels, _rng(6))
    np.testing.assert_array_equal(clips, before)
    # stream-style placement only (it writes into the batch the augmenter copied): input untouched
    placed = aug.Augmenter(aug.AugmentConfig(stream_prob=1.0, time_shift_ms=0.0, noise_prob=0.0, gain_db=0.0),
                           sample_rate_hz=sr).waveforms(clips, labels, _rng(8))
    assert not np.shares_memory(placed, clips) and not np.array_equal(placed, clips)
    np.testing.assert_array_equal(clips, before)
    # only a shift, float32 input: a new array, the input untouched
    shifted = aug.Augmenter(aug.AugmentConfig(time_shift_ms=100, noise_prob=0.0, gain_db=0.0),
                            sample_rate_hz=sr).waveforms(clips, labels, _rng(7))
    assert not np.shares_memory(shifted, clips)
    np.testing.assert_array_equal(clips, before)


def test_vtlp_source_is_the_inverse_of_the_papers_warp():
    """Jaitly and Hinton's forward map, written out directly, against vtlp_source_hz."""
    nyq, boundary = 4000.0, aug.VTLP_BOUNDARY_FRACTION * 4000.0
    f = np.linspace(0, nyq, 401)
    for alpha in (0.8, 0.9, 1.0, 1.1, 1.25):
        f0 = boundary * min(alpha, 1) / alpha
        forward = np.where(f <= f0, alpha * f,
                           nyq - (nyq - boundary * min(alpha, 1)) / (nyq - f0) * (nyq - f))
        assert np.all(np.diff(forward) > 0)                                 # increasing
        np.testing.assert_allclose(aug.vtlp_source_hz(forward, alpha, nyquist_hz=nyq), f, atol=1e-9)
    # 0 and Nyquist stay; below the boundary a frequency comes from f / alpha
    assert aug.vtlp_source_hz(np.array([0.0, nyq]), 1.1, nyquist_hz=nyq) == pytest.approx([0.0, nyq])
    assert aug.vtlp_source_hz(np.array([1100.0]), 1.1, nyquist_hz=nyq)[0] == pytest.approx(1000.0)


def test_vtlp_warp_moves_formants_not_timing():
    sr = 8000
    t = np.arange(sr) / sr
    tones = np.stack([np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 1000 * t),
                      np.sin(2 * np.pi * 1000 * t) * (t < 0.5)]).astype(np.float32)
    spec = stft_magnitude(tones, n_fft=258)
    out = aug.vtlp_warp(spec, np.array([1.1, 0.9, 1.0]), sample_rate_hz=sr)
    assert out.dtype == np.float32 and out.shape == spec.shape and not np.shares_memory(out, spec)
    bin_hz = sr / 2 / (spec.shape[1] - 1)
    assert out[0, :, 60].argmax() * bin_hz == pytest.approx(1100, abs=bin_hz)   # up by alpha
    assert out[1, :, 60].argmax() * bin_hz == pytest.approx(900, abs=bin_hz)    # down
    np.testing.assert_array_equal(out[2], spec[2])                              # alpha 1: untouched
    # timing stays: a warped tone that stops at 0.5 s still stops there
    half = aug.vtlp_warp(spec[2:], np.array([1.1]), sample_rate_hz=sr)[0]
    energy = half.sum(axis=0)
    assert energy[:55].min() > 100 * energy[72:].max()


def test_vtlp_warp_matches_a_direct_reference():
    """Every frame against numpy's own linear interpolation at the source frequencies."""
    spec = np.abs(_rng(4).standard_normal((2, 130, 7))).astype(np.float32)
    alphas = np.array([0.93, 1.08])
    out = aug.vtlp_warp(spec, alphas, sample_rate_hz=8000)
    bin_hz = np.linspace(0, 4000, 130)
    for row, alpha in enumerate(alphas):
        source = aug.vtlp_source_hz(bin_hz, alpha, nyquist_hz=4000.0)
        for frame in range(7):
            want = np.interp(source, bin_hz, spec[row, :, frame])
            np.testing.assert_allclose(out[row, :, frame], want, rtol=1e-5, atol=1e-6)


def test_vtlp_warp_bad_factors():
    spec = np.ones((2, 130, 5), np.float32)
    with pytest.raises(KwsError, match="expected numbers > 0"):
        aug.vtlp_warp(spec, np.array([1.0, -1.0]), sample_rate_hz=8000)
    with pytest.raises(KwsError, match="3 warp factors for 2 rows"):
        aug.vtlp_warp(spec, np.ones(3), sample_rate_hz=8000)
    with pytest.raises(KwsError, match=r"shape \(130, 5\): expected \(batch, bins, frames\)"):
        aug.vtlp_warp(spec[0], np.ones(1), sample_rate_hz=8000)


def test_augmenter_front_end_is_the_runtime_front_end_until_vtlp():
    clips = np.stack([_word_clip(1500 + 300 * i, 2000, 0.3) for i in range(6)])
    before = clips.copy()
    logmel = FeatureConfig(mel_bands=40, log=True, log_floor=1e-3)
    plain = aug.Augmenter(aug.AugmentConfig(), sample_rate_hz=8000)
    rng = _rng(2)
    np.testing.assert_array_equal(plain.front_end(clips, logmel, rng), compute_features(clips, logmel))
    assert rng.random() == _rng(2).random()          # and drew nothing: other runs' batches stay as they were
    warped = aug.Augmenter(aug.AugmentConfig(vtlp_prob=0.5, vtlp_range=(0.8, 1.2)), sample_rate_hz=8000)
    a = warped.front_end(clips, logmel, _rng(3))
    np.testing.assert_array_equal(a, warped.front_end(clips, logmel, _rng(3)))   # seeded
    np.testing.assert_array_equal(clips, before)
    same = [np.array_equal(a[i], compute_features(clips[i], logmel)) for i in range(6)]
    assert 0 < sum(same) < 6        # about half the rows warped, never all or none
    stft = FeatureConfig()                  # the seed's STFT magnitude, no mel bands: warped too
    plain_stft = compute_features(clips, stft)
    warped_stft = warped.front_end(clips, stft, _rng(3))
    assert warped_stft.shape == plain_stft.shape and 0 < sum(
        np.array_equal(warped_stft[i], plain_stft[i]) for i in range(6)) < 6
    wave = FeatureConfig(kind="waveform")   # nothing to warp: the waveform itself
    np.testing.assert_array_equal(warped.front_end(clips, wave, _rng(3)), clips[..., None])


def test_relabel_reverses_keywords_into_unknown():
    clips = np.stack([_word_clip(1000 + 500 * i, 2000, 0.3) for i in range(6)])
    clips[:, :100] = 0.7                                      # a marker at the start, to see the reversal
    labels = np.array([0, 3, 10, 11, 5, 10])                  # yes, down, unknown, silence, right, unknown
    before, labels_before = clips.copy(), labels.copy()
    every = aug.Augmenter(aug.AugmentConfig(reverse_prob=1.0), sample_rate_hz=8000, silence_label=11,
                          unknown_label=10)
    out, new = every.relabel(clips, labels, _rng(0))
    np.testing.assert_array_equal(new, [10, 10, 10, 11, 10, 10])   # every keyword is now unknown
    for row in (0, 1, 4):
        np.testing.assert_array_equal(out[row], clips[row, ::-1])
        assert np.all(out[row, -100:] == np.float32(0.7))
    for row in (2, 3, 5):                                          # unknown and silence: untouched
        np.testing.assert_array_equal(out[row], clips[row])
    np.testing.assert_array_equal(clips, before)
    np.testing.assert_array_equal(labels, labels_before)
    # off: the same arrays back, nothing drawn
    plain = aug.Augmenter(aug.AugmentConfig(), sample_rate_hz=8000, silence_label=11, unknown_label=10)
    rng = _rng(4)
    out, new = plain.relabel(clips, labels, rng)
    assert out is clips and new is labels and rng.random() == _rng(4).random()
    # some: seeded, about the share asked, of keywords only
    many = np.repeat(labels, 50)
    some = aug.Augmenter(aug.AugmentConfig(reverse_prob=0.3), sample_rate_hz=8000, silence_label=11,
                         unknown_label=10)
    _, a = some.relabel(np.repeat(clips, 50, axis=0), many, _rng(5))
    _, b = some.relabel(np.repeat(clips, 50, axis=0), many, _rng(5))
    np.testing.assert_array_equal(a, b)
    flipped = (a == 10) & (many != 10)
    assert 25 <= flipped.sum() <= 65 and not np.any(a[many == 11] != 11)     # 30% of 150 keywords


def test_relabel_needs_an_unknown_class():
    with pytest.raises(KwsError, match="reversed-keyword probability 0.2: reversed keywords are labelled 'unknown'"):
        aug.Augmenter(aug.AugmentConfig(reverse_prob=0.2), sample_rate_hz=8000, silence_label=11)


def test_train_batches_label_reversed_keywords_unknown(synth_npz):
    ds = load_npz(synth_npz)
    split = split_dataset(ds, seed=0)
    augmenter = aug.Augmenter(aug.AugmentConfig(reverse_prob=1.0, time_shift_ms=0.0, noise_prob=0.0,
                                                                gain_db=0.0, time_masks=0, freq_masks=0),
                              sample_rate_hz=8000, silence_label=11, unknown_label=10)
    batches = TrainBatches(ds, split.train, features=feature_config("log-mel"), batch_size=32, seed=1,
                           augmenter=augmenter, steps_per_epoch=1)
    x, y = batches[0]
    idx = batches._order[:32]
    was_keyword = ds.labels[idx] < 10
    assert was_keyword.any()
    np.testing.assert_array_equal(y.argmax(1), np.where(was_keyword, 10, ds.labels[idx]))
    np.testing.assert_array_equal(x, compute_features(np.where(was_keyword[:, None], ds.audio(idx)[:, ::-1],
                                                               ds.audio(idx)), feature_config("log-mel")))


@pytest.mark.parametrize("kwargs, message", [
    ({"speed_prob": 1.5}, "speed perturbation probability 1.5 (--speed-perturb): expected a number in [0, 1]"),
    ({"speed_range": (1.2, 0.9)}, "speed range 1.2 0.9 (--speed-range): expected 0.5 <= MIN <= MAX <= 2"),
    ({"speed_range": (0.1, 1.0)}, "speed range 0.1 1.0 (--speed-range)"),
    ({"vtlp_prob": -0.5}, "vocal-tract-length perturbation probability -0.5 (--vtlp): expected a number in [0, 1]"),
    ({"vtlp_range": (1.1, 0.9)}, "warp factor range 1.1 0.9 (--vtlp-range): expected 0.5 <= MIN <= MAX <= 2"),
    ({"vtlp_range": (0.9, 3.0)}, "warp factor range 0.9 3.0 (--vtlp-range)"),
    ({"reverse_prob": 1.2}, "reversed-keyword probability 1.2 (--reversed-keywords): expected a number in [0, 1]"),
])
def test_speed_config_errors(kwargs, message):
    with pytest.raises(KwsError) as info:
        aug.AugmentConfig(**kwargs)
    assert message in str(info.value)


def test_mix_noise_hits_the_requested_snr():
    rng = _rng(1)
    sig = (0.3 * np.sin(np.arange(8000) * 0.05)).astype(np.float32)[None].repeat(4, 0)
    noise = rng.normal(0, 0.1, (4, 8000)).astype(np.float32)
    snr = np.array([0.0, 5.0, 10.0, 20.0])
    mixed = aug.mix_noise(sig, noise, snr, rng=rng)
    added = mixed - sig
    measured = 20 * np.log10(np.sqrt((sig ** 2).mean(1)) / np.sqrt((added ** 2).mean(1)))
    np.testing.assert_allclose(measured, snr, atol=1e-3)


def test_silence_clips_get_level_relative_noise():
    rng = _rng(2)
    silence = np.zeros((3, 8000), dtype=np.float32)
    noise = rng.normal(0, 0.5, (3, 8000)).astype(np.float32)
    out = aug.mix_noise(silence, noise, np.zeros(3), is_silence=np.ones(3, bool), rng=rng)
    rms = np.sqrt((out ** 2).mean(1))
    assert np.all(rms > 10 ** (-61 / 20)) and np.all(rms < 10 ** (-19 / 20))


def test_gain_range_and_clipping():
    x = np.full((200, 10), 0.5, dtype=np.float32)
    out = aug.apply_gain(x, 6.0, _rng())
    gains_db = 20 * np.log10(out[:, 0] / 0.5)
    assert gains_db.min() >= -6.0 - 1e-4 and np.max(out) <= 1.0
    assert gains_db.max() > 3 and gains_db.min() < -3
    assert np.all(aug.apply_gain(np.full((5, 4), 0.9, np.float32), 20.0, _rng()) <= 1.0)


def test_spec_mask_widths_and_fill():
    feats = _rng().normal(size=(20, 40, 126, 1)).astype(np.float32)
    out = aug.spec_mask(feats, time_masks=1, freq_masks=0, time_mask_fraction=0.1, freq_mask_fraction=0.1,
                        rng=_rng())
    for before, after in zip(feats, out):
        changed_frames = np.flatnonzero((before != after).any(axis=(0, 2)))
        assert len(changed_frames) <= round(0.1 * 126)
        if len(changed_frames):
            assert np.all(np.diff(changed_frames) == 1)  # one contiguous block
            np.testing.assert_allclose(after[:, changed_frames], before.mean(), rtol=1e-5)
    out_f = aug.spec_mask(feats, time_masks=0, freq_masks=2, time_mask_fraction=0.1, freq_mask_fraction=0.1,
                          rng=_rng())
    rows = [(b != a).any(axis=(1, 2)).sum() for b, a in zip(feats, out_f)]
    assert max(rows) <= 2 * 4 and sum(rows) > 0
    assert not np.shares_memory(out, feats)


def test_balanced_sampling_and_weights():
    labels = np.array([0] * 600 + [1] * 100 + [2] * 25)
    idx = np.arange(len(labels))
    counts = np.bincount(labels)
    np.testing.assert_allclose(aug.class_probabilities(counts, 1.0), [1 / 3] * 3)
    np.testing.assert_allclose(aug.class_probabilities(counts, 0.0), counts / counts.sum())
    sqrt = aug.class_probabilities(counts, 0.5)
    np.testing.assert_allclose(sqrt, np.sqrt(counts) / np.sqrt(counts).sum())
    epoch = aug.epoch_indices(idx, labels, n_classes=3, power=1.0, rng=_rng())
    got = np.bincount(labels[epoch], minlength=3)
    assert abs(got[0] - got[2]) <= 2 and got.sum() == pytest.approx(len(idx), abs=2)
    assert len(np.unique(epoch[labels[epoch] == 1])) == 100  # every clip used before any repeat
    w = aug.class_weights(counts, 1.0)
    assert np.isclose((w[labels]).mean(), 1.0) and w[2] > w[1] > w[0]
    np.testing.assert_allclose(w[0] * 600, w[2] * 25, rtol=1e-5)


def test_augment_config_switches():
    off = aug.AugmentConfig.off()
    assert not off.waveform_on and not off.masks_on and off.balance == "none"
    assert aug.AugmentConfig().waveform_on and aug.AugmentConfig().masks_on
    with pytest.raises(KwsError, match="SNR range 20.0 5.0 dB: expected MIN <= MAX"):
        aug.AugmentConfig(snr_db=(20.0, 5.0))
    with pytest.raises(KwsError, match="balance 'oversample'"):
        aug.AugmentConfig(balance="oversample")


def test_noise_bank_from_dir_and_dataset(tmp_path, synth_npz):
    from kws.runtime.audio_io import write_wav

    folder = tmp_path / "noise"
    (folder / "sub").mkdir(parents=True)
    write_wav(folder / "a.wav", _rng().normal(0, 0.1, 3000).astype(np.float32), 8000)
    write_wav(folder / "sub" / "b.wav", _rng(1).normal(0, 0.1, (16000, 2)).astype(np.float32), 16000)
    bank = aug.NoiseBank.from_dir(folder, sample_rate_hz=8000)
    assert len(bank) == 2
    crops = bank.draw(5, 8000, _rng())
    assert crops.shape == (5, 8000) and crops.dtype == np.float32 and np.all(np.abs(crops).max(1) > 0)
    with pytest.raises(DataError, match="--noise-dir .*no .wav files"):
        aug.NoiseBank.from_dir(_empty_dir(tmp_path), sample_rate_hz=8000)
    with pytest.raises(DataError, match="not a directory"):
        aug.NoiseBank.from_dir(tmp_path / "missing", sample_rate_hz=8000)

    ds = load_npz(synth_npz)
    split = split_dataset(ds, seed=0)
    from_ds = aug.NoiseBank.from_dataset(ds, split.train)
    silence = ds.label_names.index("silence")
    assert len(from_ds) == int((ds.labels[split.train] == silence).sum()) > 0
    assert aug.NoiseBank.from_dataset(ds, split.train[ds.labels[split.train] != silence]) is None


def _empty_dir(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d


# ---------------------------------------------------------------------------------------
# Feature presets and batches
# ---------------------------------------------------------------------------------------
def test_feature_presets():
    assert feature_config("seed-stft") == FeatureConfig()
    assert feature_config("seed-stft").input_shape == (130, 126, 1)
    assert feature_config("seed-stft", log=True).log
    assert feature_config("waveform").input_shape == (8000, 1)
    mel = feature_config("log-mel")
    assert mel.input_shape == (40, 126, 1) and mel.log and mel.mel_bands == 40
    assert feature_config("log-mel", mel_bands=32).input_shape == (32, 126, 1)
    with pytest.raises(KwsError, match="unknown --features 'mfcc'; expected one of: seed-stft, waveform, log-mel"):
        feature_config("mfcc")
    with pytest.raises(KwsError, match="--mel-bands applies to --features log-mel and pcen-mel only, not seed-stft"):
        feature_config("seed-stft", mel_bands=40)
    with pytest.raises(KwsError, match="--mel-bands 500"):
        feature_config("log-mel", mel_bands=500)
    pc = feature_config("pcen-mel", mel_bands=32)
    assert pc.pcen and not pc.log and pc.input_shape == (32, 126, 1)
    assert preset_of(pc) == "pcen-mel" and preset_of(mel) == "log-mel" and preset_of(FeatureConfig()) == "seed-stft"
    with pytest.raises(KwsError, match="--log does not apply to --features pcen-mel"):
        feature_config("pcen-mel", log=True)
    assert feature_config("pcen-mel", log=False).pcen


def test_train_batches_are_the_front_end_and_reproducible(synth_npz):
    ds = load_npz(synth_npz)
    split = split_dataset(ds, seed=0)
    cfg = feature_config("log-mel")
    plain = TrainBatches(ds, split.train, features=cfg, batch_size=8, seed=3)
    x, y = plain[0]
    idx = plain._order[:8]
    np.testing.assert_array_equal(x, compute_features(ds.audio(idx), cfg))  # no augmentation: THE front-end
    np.testing.assert_array_equal(y.argmax(1), ds.labels[idx])
    assert len(plain) == int(np.ceil(len(split.train) / 8))

    augmenter = aug.Augmenter(aug.AugmentConfig(), sample_rate_hz=8000,
                              noise=aug.NoiseBank.from_dataset(ds, split.train), silence_label=11)
    a = TrainBatches(ds, split.train, features=cfg, batch_size=8, seed=3, augmenter=augmenter,
                     balance="weights", steps_per_epoch=2)
    b = TrainBatches(ds, split.train, features=cfg, batch_size=8, seed=3, augmenter=augmenter,
                     balance="weights", steps_per_epoch=2)
    xa, ya, wa = a[1]
    xb, yb, wb = b[1]
    assert len(a) == 2 and xa.shape == (8, 40, 126, 1) and wa.shape == (8,)
    np.testing.assert_array_equal(xa, xb)
    assert not np.allclose(xa, compute_features(ds.audio(a._order[8:16]), cfg))  # augmented
    a.on_epoch_end()
    assert a.epoch == 1 and not np.array_equal(a[1][0], xb)  # a new epoch draws anew
    np.testing.assert_array_equal(a.batch(1, epoch=0)[0], xb)

    balanced = TrainBatches(ds, split.train, features=cfg, batch_size=8, seed=0, balance="sample",
                            balance_power=1.0)
    counts = np.bincount(ds.labels[balanced._order], minlength=12)
    assert counts.max() - counts.min() <= 2


def test_hard_negatives_are_the_unknown_clips_scored_most_like_keywords(synth_npz):
    ds = load_npz(synth_npz)
    split = split_dataset(ds, seed=0)
    tb = TrainBatches(ds, split.train, features=feature_config("log-mel"), batch_size=16, balance="weights")
    plain = len(tb._make_order(1))
    unknown = np.sort(split.train[ds.labels[split.train] == ds.label_names.index("unknown")])
    yes = ds.label_names.index("yes")

    class Stub:  # logits: "yes" grows with the mean feature value against a flat "unknown"
        def __call__(self, x, training=False):
            logits = np.full((len(x), len(ds.label_names)), -50.0, dtype=np.float32)
            logits[:, ds.label_names.index("unknown")] = 0.0
            logits[:, yes] = 10.0 * np.asarray(x).mean(axis=(1, 2, 3))
            return logits

    cb = callbacks.hard_negative_callback(tb, fraction=0.25, copies=3, batch_size=5)
    cb.set_model(Stub())
    cb.on_epoch_end(0)
    n_hard = int(round(0.25 * len(unknown)))
    assert len(tb.extra) == 3 * n_hard and set(tb.extra) <= set(unknown)
    means = compute_features(ds.audio(unknown), tb.features).mean(axis=(1, 2, 3))
    expected = set(unknown[np.argsort(-means)[:n_hard]])
    assert set(tb.extra) == expected
    assert np.all(np.bincount(tb.extra)[list(expected)] == 3)
    order = tb._make_order(1)  # the next epochs draw them on top of the usual clips
    assert len(order) == plain + 3 * n_hard
    assert np.all(np.bincount(order, minlength=len(ds))[list(expected)] >= 4)
    assert callbacks.hard_negative_callback(tb, fraction=0.0) is None


def test_eval_batches_cache(synth_npz):
    ds = load_npz(synth_npz)
    idx = np.arange(10)
    ev = EvalBatches(ds, idx, features=feature_config("waveform"), batch_size=4)
    assert len(ev) == 3 and ev.cached
    x0, y0 = ev[0]
    assert ev[0][0] is x0 and x0.shape == (4, 8000, 1)
    assert ev[2][0].shape == (2, 8000, 1)
    np.testing.assert_array_equal(ev.labels, ds.labels[idx])
    assert not EvalBatches(ds, idx, features=feature_config("waveform"), batch_size=4, cache_mb=0.1).cached


# ---------------------------------------------------------------------------------------
# Every tiny model learns on generated data
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_tiny_model_loss_falls(name, synth_npz):
    ds = load_npz(synth_npz)
    spec = MODELS[name]
    cfg = feature_config(spec.features)
    keras.utils.set_random_seed(0)
    model = build_model(name, input_shape=cfg.input_shape, n_classes=12, **TINY[name])
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True), jit_compile=False)
    batches = TrainBatches(ds, np.arange(len(ds)), features=cfg, batch_size=24, seed=0)
    x, y = batches[0]
    losses = [float(model.train_on_batch(x, y)) for _ in range(6)]
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0], losses


# ---------------------------------------------------------------------------------------
# kws-train
# ---------------------------------------------------------------------------------------
def _train(capsys, *args):
    code = trainer.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_kws_train_end_to_end(tmp_path, synth_npz, capsys):
    out_dir = tmp_path / "run"
    code, out, err = _train(capsys, "--data", synth_npz, "--model", "dscnn", "--width", 8, "--depth", 2,
                            "--epochs", 2, "--steps-per-epoch", 3, "--lr", 3e-3, "--lr-schedule", "cosine",
                            "--early-stopping", 5, "--label-smoothing", 0.1, "--seed", 1, "--out", out_dir)
    assert code == 0, err
    for name in ALL_OUTPUTS:
        assert (out_dir / name).is_file() and (out_dir / name).stat().st_size > 0, name
    assert not (out_dir / CHECKPOINT_TMP).exists()
    # progress: the model line with params and MACs, one line per epoch
    assert "parameters" in out and "MACs per inference" in out
    assert out.count("epoch   1/2") == 1 and out.count("epoch   2/2") == 1

    meta = ModelMeta.load(out_dir / "model.json")
    assert meta.features == FeatureConfig(mel_bands=40, log=True)
    assert list(meta.labels) == ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
                                 "unknown", "silence"]
    arch = meta.extra["architecture"]
    model = keras.models.load_model(out_dir / "model.keras", compile=False)
    from kws.train.macs import count_macs

    assert arch["name"] == "dscnn" and arch["params"]["width"] == 8 and arch["params"]["depth"] == 2
    assert arch["macs"] == count_macs(model) > 0 and arch["parameters"] == model.count_params()
    assert meta.extra["split"]["by"] == "speaker" and meta.extra["split"]["seed"] == 1
    training = meta.extra["training"]
    assert training["status"] == "finished" and training["epochs"] == 2 and training["lr"] == 3e-3
    assert training["lr_schedule"] == "cosine" and training["label_smoothing"] == 0.1
    assert 1 <= training["best_epoch"] <= 2
    assert meta.extra["data"]["n_clips"] == 288

    history = json.loads((out_dir / "history.json").read_text())
    assert len(history["loss"]) == len(history["val_loss"]) == len(history["val_accuracy"]) == 2
    assert history["lr"][0] == pytest.approx(3e-3) and history["lr"][1] < history["lr"][0]  # cosine

    report = json.loads((out_dir / "eval.json").read_text())
    split = split_dataset(load_npz(synth_npz), seed=1)
    assert report["split"] == "test" and report["n"] == len(split.test)
    assert set(report["per_class"]) == set(meta.labels)
    assert {"precision", "recall", "f1", "support"} <= set(report["per_class"]["yes"])
    cm = np.array(report["confusion"])
    assert cm.shape == (12, 12) and cm.sum() == len(split.test)
    assert report["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    # eval.json is the best checkpoint's: recompute from model.keras
    feats = compute_features(load_npz(synth_npz).audio(split.test), meta.features)
    pred = np.asarray(model.predict(feats, verbose=0)).argmax(1)
    assert report["accuracy"] == pytest.approx(float((pred == load_npz(synth_npz).labels[split.test]).mean()))
    assert meta.extra["evaluation"]["accuracy"] == report["accuracy"]


def test_kws_train_seed_is_reproducible_and_force_overwrites(tmp_path, synth_npz, capsys):
    args = ["--data", synth_npz, "--model", "spec2d", "--width", 0.0625, "--epochs", 1, "--steps-per-epoch", 2,
            "--batch-size", 8, "--seed", 7, "--test-fraction", 0.05, "--out", tmp_path / "a"]
    code_a, _, err = _train(capsys, *args)
    assert code_a == 0, err
    first = json.loads((tmp_path / "a" / "history.json").read_text())
    meta = ModelMeta.load(tmp_path / "a" / "model.json")
    assert meta.features == FeatureConfig()  # spec2d defaults to the seed STFT
    code_b, _, err = _train(capsys, *args, "--force")
    assert code_b == 0, err
    second = json.loads((tmp_path / "a" / "history.json").read_text())
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        assert first[key] == second[key], key


def test_kws_train_vtlp_and_reversed_keywords_are_recorded_and_reproducible(tmp_path, synth_npz, capsys):
    args = ["--data", synth_npz, "--model", "dscnn", "--width", 8, "--depth", 2, "--epochs", 1,
            "--steps-per-epoch", 2, "--batch-size", 8, "--seed", 3, "--vtlp", 1, "--vtlp-range", 0.85, 1.15,
            "--reversed-keywords", 0.2]
    histories = []
    for name in ("a", "b"):
        code, _, err = _train(capsys, *args, "--out", tmp_path / name)
        assert code == 0, err
        histories.append(json.loads((tmp_path / name / "history.json").read_text()))
    assert histories[0]["loss"] == histories[1]["loss"]
    augmentation = ModelMeta.load(tmp_path / "a" / "model.json").extra["training"]["augmentation"]
    assert augmentation["vtlp_prob"] == 1.0 and augmentation["vtlp_range"] == [0.85, 1.15]
    assert augmentation["reverse_prob"] == 0.2


def test_unknown_model_lists_valid_ones(tmp_path, synth_npz, capsys):
    out_dir = tmp_path / "never"
    code, out, err = _train(capsys, "--data", synth_npz, "--model", "transformer", "--out", out_dir)
    assert code == 2
    assert err.startswith("kws-train: error: unknown model 'transformer'; expected one of: ")
    for name in MODELS:
        assert name in err
    assert len(err.strip().splitlines()) == 1 and not out_dir.exists()


def test_existing_dir_is_refused_untouched(tmp_path, synth_npz, capsys):
    out_dir = tmp_path / "exists"
    out_dir.mkdir()
    (out_dir / "model.keras").write_text("precious")
    code, _, err = _train(capsys, "--data", synth_npz, "--model", "dscnn", "--out", out_dir)
    assert code == 2
    assert f"--out {out_dir}: directory exists and is not empty; pass --force" in err
    assert (out_dir / "model.keras").read_text() == "precious"
    assert sorted(p.name for p in out_dir.iterdir()) == ["model.keras"]


def _extra_npz(path, *, speaker_prefix):
    from kws.train.synth import synthetic_dataset

    arrays = synthetic_dataset(clips_per_label=4, n_speakers=3, seed=9)
    arrays["speaker"] = np.array([f"{speaker_prefix}{s}" for s in arrays["speaker"]])
    np.savez(path, **arrays)
    return path


def test_kws_train_extra_train_clips(tmp_path, synth_npz, capsys):
    extra = _extra_npz(tmp_path / "tts.npz", speaker_prefix="tts-")
    out_dir = tmp_path / "run"
    code, out, err = _train(capsys, "--data", synth_npz, "--model", "dscnn", "--width", 8, "--depth", 2,
                            "--epochs", 1, "--steps-per-epoch", 2, "--extra-train", extra, "--out", out_dir)
    assert code == 0, err
    assert f"extra training clips {extra}: 48 clips from 3 speakers" in out
    meta = ModelMeta.load(out_dir / "model.json")
    data = meta.extra["data"]
    assert data["n_clips"] == 288                       # the --data clips only
    assert data["extra_train"] == [{"path": str(extra), "n_clips": 48, "speakers": 3,
                                    "labels": {name: 4 for name in meta.labels}}]
    sizes = meta.extra["split"]["sizes"]
    assert sizes["train"] + sizes["val"] + sizes["test"] == 288   # extra clips are not in the split sizes
    assert json.loads((out_dir / "eval.json").read_text())["n"] == sizes["test"]


def test_kws_train_split_seed_keeps_the_split(tmp_path, synth_npz, capsys):
    out_dir = tmp_path / "run"
    code, _, err = _train(capsys, "--data", synth_npz, "--model", "dscnn", "--width", 8, "--depth", 2,
                          "--epochs", 1, "--steps-per-epoch", 1, "--seed", 3, "--split-seed", 0, "--out", out_dir)
    assert code == 0, err
    meta = ModelMeta.load(out_dir / "model.json")
    ds = load_npz(synth_npz)
    want, other = split_dataset(ds, seed=0), split_dataset(ds, seed=3)
    assert want.sizes() != other.sizes() or not np.array_equal(want.test, other.test)   # seed 3 would differ
    assert meta.extra["split"]["seed"] == 0 and meta.extra["split"]["sizes"] == want.sizes()
    assert meta.extra["training"]["seed"] == 3 and meta.extra["training"]["split_seed"] == 0


def test_kws_train_on_train_and_val_keeps_the_last_epoch(tmp_path, synth_npz, capsys):
    out_dir = tmp_path / "final"
    code, out, err = _train(capsys, "--data", synth_npz, "--model", "dscnn", "--width", 8, "--depth", 2,
                            "--epochs", 2, "--steps-per-epoch", 2, "--lr-schedule", "cosine",
                            "--train-on", "train+val", "--out", out_dir)
    assert code == 0, err
    split = split_dataset(load_npz(synth_npz), seed=0)
    n_train = len(split.train) + len(split.val)
    assert f"training on train + val: {n_train} clips; no validation, model.keras is the last epoch" in out
    assert "val_loss" not in out.split("training on")[1].split("last checkpoint")[0]
    meta = ModelMeta.load(out_dir / "model.json")
    assert meta.extra["split"]["trained_on"] == ["train", "val"]
    assert meta.extra["split"]["sizes"] == split.sizes()          # the split as made, before folding in
    training = meta.extra["training"]
    assert training["best_epoch"] == 2 and training["best_val_loss"] is None and training["train_on"] == "train+val"
    history = json.loads((out_dir / "history.json").read_text())
    assert len(history["loss"]) == 2 and "val_loss" not in history
    report = json.loads((out_dir / "eval.json").read_text())
    assert report["split"] == "test" and report["n"] == len(split.test)   # the test speakers stay held out
    assert report["checkpoint"] == {"epoch": 2, "val_loss": None}
    assert "last checkpoint: epoch 2 (loss " in out


def test_kws_train_on_a_fold_is_tested_and_exported_on_that_fold(tmp_path, synth_npz, capsys):
    """--folds/--fold: the run, its export's parity report and kws-data stream all take the fold's
    test speakers from model.json."""
    out_dir = tmp_path / "fold1"
    code, out, err = _train(capsys, "--data", synth_npz, "--model", "dscnn", "--width", 8, "--depth", 2,
                            "--epochs", 1, "--steps-per-epoch", 2, "--folds", 5, "--fold", 1, "--split-seed", 4,
                            "--train-on", "train+val", "--out", out_dir)
    assert code == 0, err
    ds = load_npz(synth_npz)
    split = split_dataset(ds, seed=4, folds=5, fold=1)
    assert f"split by speaker (fold 1 of 5 tested): train {len(split.train)}, val {len(split.val)}, " \
           f"test {len(split.test)}" in out
    saved = ModelMeta.load(out_dir / "model.json").extra["split"]
    assert saved == {"seed": 4, "folds": 5, "fold": 1, "by": "speaker", "sizes": split.sizes(),
                     "trained_on": ["train", "val"]}
    report = json.loads((out_dir / "eval.json").read_text())
    assert report["split"] == "test" and report["n"] == len(split.test)

    from kws.convert.export import main as export_main

    assert export_main(["--model", str(out_dir), "--out", str(out_dir / "export"), "-q"]) == 0
    parity = json.loads((out_dir / "export" / "parity.json").read_text())
    assert parity["held_out"] is True and parity["n"] == len(split.test)
    exported = ModelMeta.load(out_dir / "export" / "model_float32.json").extra["split"]
    assert {k: exported[k] for k in ("seed", "folds", "fold")} == {"seed": 4, "folds": 5, "fold": 1}

    from kws.train.data_cli import main as data_main

    stream = tmp_path / "fold1.wav"
    assert data_main(["-q", "stream", "--data", str(synth_npz), "--minutes", "0.5", "--out", str(stream),
                      "--model-json", str(out_dir / "model.json")]) == 0
    truth = json.loads(stream.with_suffix(".json").read_text())
    used = {e["clip_index"] for e in truth["events"] + truth["unknown_events"]}
    assert used and used <= set(split.test.tolist())
    assert truth["settings"]["split_settings"] == {"seed": 4, "folds": 5, "fold": 1, "by": "speaker"}


def test_kws_train_on_all_writes_no_evaluation(tmp_path, synth_npz, capsys):
    out_dir = tmp_path / "all"
    code, out, err = _train(capsys, "--data", synth_npz, "--model", "dscnn", "--width", 8, "--depth", 2,
                            "--epochs", 1, "--steps-per-epoch", 2, "--train-on", "all", "--out", out_dir)
    assert code == 0, err
    assert "training on train + val + test: 288 clips" in out and "nothing held out" in out
    assert (out_dir / "model.keras").is_file() and not (out_dir / "eval.json").exists()
    meta = ModelMeta.load(out_dir / "model.json")
    assert meta.extra["split"]["trained_on"] == ["train", "val", "test"]
    assert meta.extra["training"]["status"] == "finished" and "evaluation" not in meta.extra


def test_kws_train_extra_train_refuses_held_out_speakers(tmp_path, synth_npz, capsys):
    leaky = _extra_npz(tmp_path / "leaky.npz", speaker_prefix="")   # synth000.. are the --data speakers
    out_dir = tmp_path / "run"
    code, _, err = _train(capsys, "--data", synth_npz, "--model", "dscnn", "--extra-train", leaky, "--out", out_dir)
    assert code == 2
    assert err.startswith("kws-train: error: ") and "are validation or test speakers of" in err, err
    assert len(err.strip().splitlines()) == 1 and not out_dir.exists()
    # fitted on every speaker, nothing is held out for them to leak into
    code, _, err = _train(capsys, "--data", synth_npz, "--model", "dscnn", "--width", 4, "--depth", 1, "--epochs", 1,
                          "--steps-per-epoch", 1, "--extra-train", leaky, "--train-on", "all", "--out", out_dir)
    assert code == 0, err


@pytest.mark.parametrize("argv, message", [
    (["--model", "dscnn"], "--data FILE.npz is required"),
    (["--data", "{tmp}/nope.npz", "--model", "dscnn"], "nope.npz: file not found"),
    (["--data", "{synth}", "--model", "dscnn", "--depth", "0"], "--depth 0 for model dscnn: expected a positive integer"),
    (["--data", "{synth}", "--model", "conv1d", "--depth", "3"], "model 'conv1d' has no knob(s) depth"),
    (["--data", "{synth}", "--model", "conv1d", "--features", "log-mel"], "model conv1d needs a waveform input"),
    (["--data", "{synth}", "--model", "dscnn", "--epochs", "0"], "--epochs 0: expected a positive integer"),
    (["--data", "{synth}", "--model", "dscnn", "--val-fraction", "0"], "--val-fraction 0.0: expected > 0"),
    (["--data", "{synth}", "--model", "dscnn", "--train-on", "all", "--early-stopping", "3"],
     "--early-stopping with --train-on all: the validation speakers are trained on"),
    (["--data", "{synth}", "--model", "dscnn", "--train-on", "train+val", "--lr-schedule", "plateau"],
     "--lr-schedule plateau with --train-on train+val"),
    (["--data", "{synth}", "--model", "dscnn", "--noise-dir", "{tmp}/none"], "--noise-dir"),
    (["--data", "{synth}", "--model", "dscnn", "--stream-style", "1.5"], "1.5 (--stream-style): expected a number in [0, 1]"),
    (["--data", "{synth}", "--model", "dscnn", "--stream-cut", "1"], "1.0 (--stream-cut): expected a number in [0, 1)"),
    (["--data", "{synth}", "--model", "dscnn", "--hard-negatives", "2"], "--hard-negatives 2.0: expected a fraction in [0, 1]"),
    (["--data", "{synth}", "--model", "dscnn", "--extra-train", "{tmp}/nope.npz"], "nope.npz: file not found"),
    (["--data", "{synth}", "--model", "dscnn", "--speed-perturb", "-1"], "-1.0 (--speed-perturb): expected a number in [0, 1]"),
    (["--data", "{synth}", "--model", "dscnn", "--speed-perturb", "1", "--speed-range", "1.1", "0.9"],
     "speed range 1.1 0.9 (--speed-range): expected 0.5 <= MIN <= MAX <= 2"),
    (["--data", "{synth}", "--model", "dscnn", "--vtlp", "2"], "2.0 (--vtlp): expected a number in [0, 1]"),
    (["--data", "{synth}", "--model", "dscnn", "--reversed-keywords", "nan"],
     "nan (--reversed-keywords): expected a number in [0, 1]"),
    (["--data", "{synth}", "--model", "dscnn", "--no-augment", "--reversed-keywords", "0.1"],
     "but --reversed-keywords asks for some"),
    (["--data", "{synth}", "--model", "dscnn", "--no-augment", "--vtlp", "1"],
     "--no-augment switches all augmentation and balancing off, but --vtlp asks for some; drop one or the other"),
    (["--data", "{synth}", "--model", "dscnn", "--no-augment", "--snr-db", "0", "20", "--balance", "weights"],
     "but --snr-db --balance ask for some"),
    (["--data", "{synth}", "--model", "conv1d", "--vtlp", "0.5"],
     "--vtlp 0.5 warps a spectrum; --features waveform has none"),
    (["--data", "{synth}", "--model", "dscnn", "--seed", "-1"], "--seed -1: expected an integer in [0, 2**32)"),
    (["--data", "{synth}", "--model", "dscnn", "--split-seed", "-3"], "--split-seed -3: expected an integer"),
    (["--data", "{synth}", "--model", "dscnn", "--snr-db", "nan", "1"], "(--snr-db): expected two finite numbers"),
    (["--data", "{synth}", "--model", "dscnn", "--snr-db", "0", "inf"], "(--snr-db): expected two finite numbers"),
    (["--data", "{synth}", "--model", "dscnn", "--gain-db", "nan"], "(--gain-db): expected a number >= 0"),
    (["--data", "{synth}", "--model", "dscnn", "--time-shift-ms", "nan"], "(--time-shift-ms): expected a number >= 0"),
    (["--data", "{synth}", "--model", "dscnn", "--fold", "1"], "--fold 1: needs --folds N"),
    (["--data", "{synth}", "--model", "dscnn", "--folds", "2", "--fold", "0"], "--folds 2: expected at least 3"),
    (["--data", "{synth}", "--model", "dscnn", "--folds", "5"], "--folds 5: give --fold K too (the fold to test on, 0 to 4)"),
    (["--data", "{synth}", "--model", "dscnn", "--folds", "5", "--fold", "5"], "--fold 5: expected 0 to 4 (--folds 5)"),
    (["--data", "{synth}", "--model", "dscnn", "--folds", "5", "--fold", "1", "--train-on", "all"],
     "--folds with --train-on all: every speaker is trained on, so a fold holds nothing out; drop --folds, or use "
     "--train-on train+val to test on fold 1"),
    (["--data", "{synth}", "--model", "dscnn", "--folds", "20", "--fold", "0"], "10 speaker(s), need at least 20 for 20 folds"),
])
def test_bad_inputs_one_line_exit_2(tmp_path, synth_npz, capsys, argv, message):
    out_dir = tmp_path / "out"
    argv = [a.format(tmp=tmp_path, synth=synth_npz) for a in argv] + ["--out", str(out_dir)]
    code, _, err = _train(capsys, *argv)
    assert code == 2
    assert err.startswith("kws-train: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not out_dir.exists()


def test_list_models(capsys):
    code, out, _ = _train(capsys, "--list-models")
    assert code == 0
    for name, spec in MODELS.items():
        assert name in out and spec.description in out


def test_a_loss_that_is_never_finite_fails_clearly(tmp_path, synth_npz, capsys, monkeypatch):
    """No finite loss in any epoch: no checkpoint, a message naming the cause, model.json says failed."""
    real = trainer.make_callbacks

    def diverging(args, out):   # the checkpoint (first callback) and the log see a diverged run's losses
        callbacks = real(args, out)
        for callback in callbacks[:2]:
            def on_epoch_end(epoch, logs=None, _real=callback.on_epoch_end):
                logs.update(loss=math.nan, val_loss=math.nan)
                _real(epoch, logs)
            callback.on_epoch_end = on_epoch_end
        return callbacks

    monkeypatch.setattr(trainer, "make_callbacks", diverging)
    out_dir = tmp_path / "run"
    code, out, err = _train(capsys, "--data", synth_npz, "--model", "dscnn", "--width", 8, "--depth", 1,
                            "--epochs", 2, "--steps-per-epoch", 2, "--out", out_dir)
    assert code == 1
    assert "validation loss was never finite in 2 epoch(s): no checkpoint written; try a lower --lr" in err
    assert "Traceback" not in err
    assert not (out_dir / "model.keras").exists() and not (out_dir / CHECKPOINT_TMP).exists()
    meta = ModelMeta.load(out_dir / "model.json")
    assert meta.extra["training"]["status"] == "failed" and meta.extra["training"]["epochs_run"] == 2


def test_ctrl_c_keeps_the_best_checkpoint(tmp_path, synth_npz, capsys, monkeypatch):
    real = trainer.make_callbacks

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "make_callbacks", lambda args, out: real(args, out) + [Interrupt()])
    out_dir = tmp_path / "run"
    code, out, err = _train(capsys, "--data", synth_npz, "--model", "dscnn", "--width", 8, "--depth", 1,
                            "--epochs", 5, "--steps-per-epoch", 2, "--lr", 3e-3, "--out", out_dir)
    assert code == 130
    assert "interrupted" in err and "best checkpoint" in err
    model = keras.models.load_model(out_dir / "model.keras", compile=False)
    assert model.output_shape == (None, 12)
    meta = ModelMeta.load(out_dir / "model.json")
    assert meta.extra["training"]["status"] == "interrupted"
    assert meta.extra["training"]["epochs_run"] == 2
    assert (out_dir / "INTERRUPTED.txt").read_text().startswith("Training was interrupted")
    assert len(json.loads((out_dir / "history.json").read_text())["loss"]) == 2
    assert not (out_dir / "eval.json").exists() and not (out_dir / CHECKPOINT_TMP).exists()


@pytest.mark.slow
def test_kws_train_runs_on_the_real_set(tmp_path, shared_npz, capsys):
    code, out, err = _train(capsys, "--data", shared_npz, "--model", "dscnn", "--width", 16, "--depth", 2,
                            "--epochs", 1, "--steps-per-epoch", 5, "--val-fraction", 0.05,
                            "--test-fraction", 0.05, "--out", tmp_path / "real")
    assert code == 0, err
    assert "split by speaker" in out
    report = json.loads((tmp_path / "real" / "eval.json").read_text())
    assert report["n"] > 200 and report["per_class"]["unknown"]["support"] > 50


def test_kws_train_failure_during_fit_marks_the_run_failed(tmp_path, synth_npz, capsys, monkeypatch):
    """An error inside model.fit must not leave model.json saying "running"."""
    import keras

    def broken_fit(self, *args, **kwargs):
        raise RuntimeError("fit broke on purpose")

    monkeypatch.setattr(keras.Model, "fit", broken_fit)
    out_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="on purpose"):
        trainer.main(["--data", str(synth_npz), "--model", "dscnn", "--width", "4", "--depth", "1",
                      "--epochs", "1", "--out", str(out_dir)])
    assert ModelMeta.load(out_dir / "model.json").extra["training"]["status"] == "failed"


def test_kws_train_failure_after_fit_marks_the_run_failed(tmp_path, synth_npz, capsys, monkeypatch):
    """An error while evaluating the checkpoint must not leave model.json saying "running"."""
    def broken(*args, **kwargs):
        raise RuntimeError("evaluation broke on purpose")

    monkeypatch.setattr(trainer, "evaluate_checkpoint", broken)
    out_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="on purpose"):
        trainer.main(["--data", str(synth_npz), "--model", "dscnn", "--width", "4", "--depth", "1",
                      "--epochs", "1", "--steps-per-epoch", "1", "--out", str(out_dir)])
    assert ModelMeta.load(out_dir / "model.json").extra["training"]["status"] == "failed"


_NO_KERAS = r"""
import importlib.abc, sys
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras'):
            raise ImportError(f'blocked import of {name}')
        return None
sys.meta_path.insert(0, Blocker())
from kws.train import trainer
sys.exit(trainer.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("argv, code, message", [
    (["--model", "dscnn", "--data", "x.npz", "--epochs", "0"], 2, "kws-train: error: --epochs 0: expected a positive"),
    (["--model", "dscnn", "--data", "x.npz", "--swa-epochs", "1"], 2, "kws-train: error: --swa-epochs 1"),
    (["--help"], 0, "--swa-epochs K"),
])
def test_kws_train_refuses_bad_flags_without_importing_tensorflow(argv, code, message):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", _NO_KERAS, *argv], capture_output=True, text=True)
    assert result.returncode == code, result.stderr
    assert message in result.stdout + result.stderr
    assert "blocked import" not in result.stderr and "Traceback" not in result.stderr


_TF_LOG_LEVEL = r"""
import os, sys
from kws.train import trainer
rc = trainer.main(sys.argv[1:])
print("TF_CPP_MIN_LOG_LEVEL=" + os.environ.get("TF_CPP_MIN_LOG_LEVEL", "unset"))
sys.exit(rc)
"""


@pytest.mark.parametrize("preset, argv, expected", [
    (None, ["--list-models"], "2"),            # TensorFlow's C++ start-up lines hidden by default
    (None, ["--list-models", "-vv"], "0"),     # -vv shows them
    ("1", ["--list-models"], "1"),             # a level the user set is kept
])
def test_kws_train_quiets_tensorflow_start_up_lines_unless_asked(preset, argv, expected):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    if preset is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = preset
    result = subprocess.run([sys.executable, "-c", _TF_LOG_LEVEL, *argv], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert f"TF_CPP_MIN_LOG_LEVEL={expected}" in result.stdout
