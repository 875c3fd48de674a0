"""The numpy front-end against librosa (the slow, direct reference)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kws.runtime.errors import KwsError
from kws.runtime.features import (FeatureConfig, compute_features, magnitude_to_features, mel_filterbank,
                                  stft_magnitude)

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


@pytest.mark.parametrize("cfg", [FeatureConfig(), FeatureConfig(mel_bands=40, log=True, log_floor=1e-3)])
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
