"""The numpy front-end against librosa (the slow, direct reference)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from kws.runtime.errors import KwsError
from kws.runtime.features import (FeatureConfig, compute_features, magnitude_to_features, mel_filterbank,
                                  pcen, pcen_smoothing, stft_magnitude)

librosa = pytest.importorskip("librosa")


def _clips(n=4, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(8000) / 8000
    clips = [0.3 * np.sin(2 * np.pi * f * t) + rng.normal(0, 0.05, 8000) for f in (220, 700, 1800, 3500)]
    return np.asarray(clips[:n], dtype=np.float32)


def test_stft_matches_librosa_defaults():
    for clip in _clips():
        ref = np.abs(librosa.stft(clip, n_fft=258))
        got = stft_magnitude(clip, n_fft=258)
        assert got.shape == ref.shape == (130, 126)
        assert np.abs(got - ref).max() <= 1e-4


def test_stft_matches_librosa_on_real_clips(shared_npz):
    data = np.load(shared_npz)
    clips = data["wav_vals"][::300].astype(np.float32) / 32768.0
    got = compute_features(clips, FeatureConfig())[..., 0]
    ref = np.stack([np.abs(librosa.stft(c, n_fft=258)) for c in clips])
    assert np.abs(got - ref).max() <= 1e-4


@pytest.mark.parametrize("n_fft,hop", [(256, 0), (512, 128), (255, 80)])
def test_stft_other_sizes(n_fft, hop):
    clip = _clips(1)[0]
    ref = np.abs(librosa.stft(clip, n_fft=n_fft, hop_length=hop or None))
    got = stft_magnitude(clip, n_fft=n_fft, hop_samples=hop)
    assert np.abs(got - ref).max() <= 1e-4


def test_mel_filterbank_matches_librosa():
    for bands, fmin, fmax in [(40, 20.0, 0.0), (32, 0.0, 3800.0), (64, 60.0, 0.0)]:
        ref = librosa.filters.mel(sr=8000, n_fft=258, n_mels=bands, fmin=fmin, fmax=fmax or None)
        got = mel_filterbank(sample_rate_hz=8000, n_fft=258, mel_bands=bands, fmin_hz=fmin, fmax_hz=fmax)
        np.testing.assert_allclose(got, ref, atol=1e-6)


def test_log_mel_features_match_librosa_pipeline():
    cfg = FeatureConfig(mel_bands=40, log=True, log_floor=1e-3)
    clips = _clips()
    got = compute_features(clips, cfg)
    assert got.shape == (4, 40, 126, 1) and got.dtype == np.float32
    for clip, feat in zip(clips, got):
        power = np.abs(librosa.stft(clip, n_fft=258)) ** 2
        mel = librosa.feature.melspectrogram(S=power, sr=8000, n_mels=40, fmin=20.0)
        np.testing.assert_allclose(feat[..., 0], np.log(np.sqrt(mel) + 1e-3), atol=2e-4)


def test_waveform_features_and_shapes():
    cfg = FeatureConfig(kind="waveform")
    assert cfg.input_shape == (8000, 1)
    assert compute_features(_clips(2), cfg).shape == (2, 8000, 1)
    assert FeatureConfig().input_shape == (130, 126, 1)


@pytest.mark.parametrize("cfg", [FeatureConfig(), FeatureConfig(mel_bands=40, log=True, log_floor=1e-3),
                                 FeatureConfig(mel_bands=40, pcen=True)])
def test_features_are_the_magnitude_stft_then_magnitude_to_features(cfg):
    """compute_features is exactly its two halves (training warps the spectrum between them)."""
    clips = _clips()
    spec = stft_magnitude(clips, n_fft=cfg.n_fft, hop_samples=cfg.hop)
    np.testing.assert_array_equal(magnitude_to_features(spec, cfg), compute_features(clips, cfg))
    np.testing.assert_array_equal(magnitude_to_features(spec[1], cfg), compute_features(clips[1], cfg))


def test_magnitude_to_features_refuses_what_is_not_its_spectrum():
    with pytest.raises(KwsError, match=r"magnitude spectrogram of shape \(2, 129, 126\): expected \(..., 130, frames\)"):
        magnitude_to_features(np.zeros((2, 129, 126), np.float32), FeatureConfig())
    with pytest.raises(KwsError, match="a waveform feature config has no spectrum"):
        magnitude_to_features(np.zeros((130, 126), np.float32), FeatureConfig(kind="waveform"))


def test_bad_window_length_is_a_clear_error():
    with pytest.raises(KwsError, match="window_samples=8000"):
        compute_features(np.zeros(7999, np.float32), FeatureConfig())


def test_config_round_trip_and_unknown_keys():
    cfg = FeatureConfig(mel_bands=40, log=True)
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(KwsError, match="unknown feature setting"):
        FeatureConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(KwsError, match="kind"):
        FeatureConfig(kind="mfcc")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_fft = 512  # type: ignore[misc]


# ---------------------------------------------------------------------------------------
# PCEN
# ---------------------------------------------------------------------------------------
def _mel(clips):
    return magnitude_to_features(stft_magnitude(clips, n_fft=258), FeatureConfig(mel_bands=40))[..., 0]


def _pcen_direct(energy, *, smoothing, gain, bias, power, eps):
    """Frame by frame, as the paper writes it: M[t] = (1 - s) M[t-1] + s E[t], with M[-1] = E[0]."""
    energy = np.asarray(energy, np.float64)
    smooth = np.empty_like(energy)
    state = energy[..., 0]
    for t in range(energy.shape[-1]):
        state = (1 - smoothing) * state + smoothing * energy[..., t]
        smooth[..., t] = state
    return (energy / (eps + smooth) ** gain + bias) ** power - bias ** power


def test_pcen_smoothing_is_librosas():
    # librosa.pcen: T = time_constant * sr / hop frames, b = (sqrt(1 + 4 T^2) - 1) / (2 T^2)
    assert pcen_smoothing(time_constant_s=0.4, frame_rate_hz=8000 / 64) == pytest.approx(
        (np.sqrt(1 + 4 * 50.0 ** 2) - 1) / (2 * 50.0 ** 2), rel=1e-12)
    assert 0.0198 < pcen_smoothing(time_constant_s=0.4, frame_rate_hz=125.0) < 0.0199


@pytest.mark.parametrize("gain,bias,power,eps,tc", [(0.98, 2.0, 0.5, 1e-6, 0.4), (0.8, 10.0, 0.25, 1e-4, 0.06)])
def test_pcen_matches_librosa_and_the_direct_recursion(gain, bias, power, eps, tc):
    mel = _mel(_clips())
    s = pcen_smoothing(time_constant_s=tc, frame_rate_hz=125.0)
    got = pcen(mel, smoothing=s, gain=gain, bias=bias, power=power, eps=eps)
    assert got.shape == mel.shape == (4, 40, 126) and got.dtype == np.float32
    ref = librosa.pcen(mel.astype(np.float64), sr=8000, hop_length=64, time_constant=tc, gain=gain, bias=bias,
                       power=power, eps=eps, zi=(1 - s) * mel[..., :1].astype(np.float64), axis=-1)
    np.testing.assert_allclose(got, ref, atol=2e-5)
    np.testing.assert_allclose(got, _pcen_direct(mel, smoothing=s, gain=gain, bias=bias, power=power, eps=eps),
                               atol=2e-5)


def test_pcen_features_are_the_config_applied():
    cfg = FeatureConfig(mel_bands=40, pcen=True, pcen_time_constant_s=0.2, pcen_gain=0.9)
    clips = _clips()
    s = pcen_smoothing(time_constant_s=0.2, frame_rate_hz=cfg.frame_rate_hz)
    expect = _pcen_direct(_mel(clips), smoothing=s, gain=0.9, bias=2.0, power=0.5, eps=1e-6)
    got = compute_features(clips, cfg)
    assert got.shape == (4, 40, 126, 1) and cfg.input_shape == (40, 126, 1)
    np.testing.assert_allclose(got[..., 0], expect, atol=2e-5)


def test_pcen_starts_in_steady_state_and_adapts_to_a_step():
    """A constant band stays constant from the first frame; a step up jumps, then decays back."""
    s = pcen_smoothing(time_constant_s=0.4, frame_rate_hz=125.0)
    flat = pcen(np.full((2, 126), 0.01, np.float32), smoothing=s)
    np.testing.assert_allclose(flat, flat[:, :1].repeat(126, axis=1), rtol=1e-5)
    step = np.full((1, 126), 0.01, np.float32)
    step[:, 40:] = 0.1
    out = pcen(step, smoothing=s)[0]
    assert out[40] > 2 * out[39]
    assert np.all(np.diff(out[40:]) < 0)                 # the gain control catches up ...
    assert out[-1] < out[40] and out[-1] > out[39]       # ... within the 0.4 s time constant, not at once


def test_pcen_is_nearly_level_invariant_where_the_log_is_not():
    clips = _clips()
    pc = FeatureConfig(mel_bands=40, pcen=True)
    lg = FeatureConfig(mel_bands=40, log=True)
    pcen_shift = np.abs(compute_features(10 * clips, pc) - compute_features(clips, pc)).max()
    log_shift = np.median(compute_features(10 * clips, lg) - compute_features(clips, lg))
    assert log_shift == pytest.approx(np.log(10), abs=0.2)
    assert pcen_shift < 0.1 * log_shift          # gain 0.98: a factor 10 moves it by 10**0.02 inside the root


def test_pcen_of_silence_is_zero():
    got = compute_features(np.zeros((2, 8000), np.float32), FeatureConfig(mel_bands=40, pcen=True))
    assert np.all(np.isfinite(got)) and np.abs(got).max() == 0.0


@pytest.mark.parametrize("settings,message", [
    ({"mel_bands": 40, "pcen": True, "log": True}, "pcen and log are two compressions"),
    ({"kind": "waveform", "pcen": True}, "pcen needs a spectrogram"),
    ({"pcen": True, "pcen_gain": 1.5}, r"pcen_gain=1.5: expected a number in \(0, 1\]"),
    ({"pcen": True, "pcen_power": 0.0}, r"pcen_power=0.0: expected a number in \(0, 1\]"),
    ({"pcen": True, "pcen_gain": "0.9"}, r"pcen_gain='0.9': expected a number in \(0, 1\]"),
    ({"pcen": True, "pcen_time_constant_s": 0}, "pcen_time_constant_s=0: expected a positive number"),
    ({"pcen": True, "pcen_bias": -1.0}, "pcen_bias=-1.0: expected a positive number"),
    ({"pcen": True, "pcen_eps": float("nan")}, "pcen_eps=nan: expected a positive number"),
])
def test_pcen_settings_are_checked(settings, message):
    with pytest.raises(KwsError, match=message):
        FeatureConfig(**settings)


def test_a_json_from_before_pcen_reads_as_the_log():
    """Model JSONs written before the PCEN fields existed load unchanged."""
    old = {"fmax_hz": 0.0, "fmin_hz": 20.0, "hop_samples": 0, "kind": "stft", "log": True, "log_floor": 0.001,
           "mel_bands": 40, "n_fft": 258, "sample_rate_hz": 8000, "window_samples": 8000}
    cfg = FeatureConfig.from_dict(old)
    assert cfg.log and not cfg.pcen
    new = FeatureConfig(mel_bands=40, pcen=True)
    assert FeatureConfig.from_dict(json.loads(new.to_json())) == new
