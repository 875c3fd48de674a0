"""Random microphone channels: ``kws-train --channel-eq P``.

A keyword spotter trained on a few corpora meets, on a Raspberry Pi, a microphone it has never
heard: another frequency response (a small MEMS capsule's rising treble, a USB headset's band
limits, a laptop's resonances). Over five speaker folds of the shared set, most false accepts of
each fold come from the one corpus that fold holds out (docs/experiments.md),
words recorded on equipment the model never heard. This stage gives every chosen training clip a
random smooth frequency response, so that the net cannot lean on one corpus's coloration:

- a spectral tilt, uniform in +-``max_db / 4`` dB per octave about 1 kHz;
- one to three resonances or notches: Gaussian bumps in log frequency, centred between 150 Hz
  and 3.8 kHz, 0.2 to 1 octave wide (standard deviation), of +-``max_db`` dB;
- with probability 1/2 a high-pass (2nd order, corner 80-400 Hz), and with probability 1/2 a
  low-pass (4th order, corner 2.5-3.8 kHz at 8 kHz, scaled with the rate).

The response is zero-phase, applied in the frequency domain on the clip zero-padded to twice its
length (no wrap-around), and each filtered clip is scaled back to its own RMS level, so that the
level stays the gain stage's business.
"""

from __future__ import annotations

import numpy as np

#: Resonance centres and filter corners, in Hz, for an 8 kHz model (scaled with ``sample_rate_hz / 8000``).
_PEAK_HZ = (150.0, 3800.0)
_HIGH_PASS_HZ = (80.0, 400.0)
_LOW_PASS_HZ = (2500.0, 3800.0)
_REFERENCE_HZ = 1000.0


def random_responses(n: int, *, n_fft: int, sample_rate_hz: int, max_db: float,
                     rng: np.random.Generator) -> np.ndarray:
    """``n`` random channel magnitude responses on the ``rfft`` grid of ``n_fft`` points.

    Parameters
    ----------
    n : int  how many responses
    n_fft : int  FFT length (the responses have ``n_fft // 2 + 1`` bins, 0 Hz to Nyquist)
    sample_rate_hz : int
    max_db : float  largest resonance gain either way, in dB (the tilt is at most a quarter of it per octave)
    rng : np.random.Generator

    Returns
    -------
    np.ndarray, float64, shape (n, n_fft // 2 + 1)
        Linear magnitudes (> 0).
    """
    scale = sample_rate_hz / 8000.0
    freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate_hz)
    octaves = np.log2(np.maximum(freqs, 20.0) / _REFERENCE_HZ)[None, :]   # (1, bins), octaves from 1 kHz
    tilt = rng.uniform(-max_db / 4.0, max_db / 4.0, (n, 1))
    db = tilt * octaves
    n_peaks = rng.integers(1, 4, n)
    lo, hi = (np.log2(f * scale / _REFERENCE_HZ) for f in _PEAK_HZ)
    for k in range(3):
        active = (n_peaks > k)[:, None]
        centre = rng.uniform(lo, hi, (n, 1))
        width = rng.uniform(0.2, 1.0, (n, 1))
        gain = rng.uniform(-max_db, max_db, (n, 1))
        db = db + np.where(active, gain * np.exp(-0.5 * ((octaves - centre) / width) ** 2), 0.0)
    power = 10.0 ** (db / 10.0)
    f = np.maximum(freqs, 1e-3)[None, :]
    high = rng.random((n, 1)) < 0.5
    corner = rng.uniform(*_HIGH_PASS_HZ, (n, 1)) * scale
    power = power * np.where(high, 1.0 / (1.0 + (corner / f) ** 4), 1.0)
    low = rng.random((n, 1)) < 0.5
    corner = rng.uniform(*_LOW_PASS_HZ, (n, 1)) * scale
    power = power * np.where(low, 1.0 / (1.0 + (f / corner) ** 8), 1.0)
    return np.sqrt(power)


def apply_responses(audio: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """Filter each row of ``audio`` with its zero-phase magnitude response, keeping its RMS level.

    Parameters
    ----------
    audio : np.ndarray, float, shape (batch, n_samples)
    responses : np.ndarray, shape (batch, n_samples + 1): magnitudes on the ``rfft`` grid of
        ``2 * n_samples`` points (:func:`random_responses` with ``n_fft = 2 * n_samples``)

    Returns
    -------
    np.ndarray, float32, shape (batch, n_samples)
    """
    audio = np.asarray(audio, dtype=np.float64)
    n = audio.shape[-1]
    if responses.shape != (audio.shape[0], n + 1):
        raise ValueError(f"responses of shape {responses.shape}; expected {(audio.shape[0], n + 1)}")
    out = np.fft.irfft(np.fft.rfft(audio, n=2 * n) * responses, n=2 * n)[:, :n]
    before = np.sqrt(np.mean(audio ** 2, axis=-1, keepdims=True))
    after = np.sqrt(np.mean(out ** 2, axis=-1, keepdims=True))
    out *= np.where(after > 1e-12, before / np.maximum(after, 1e-12), 0.0)
    return out.astype(np.float32)


def random_channel(audio: np.ndarray, *, sample_rate_hz: int, max_db: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Every row of ``audio`` (float, (batch, n_samples)) through its own random channel
    (:func:`random_responses`, :func:`apply_responses`); float32 (batch, n_samples)."""
    audio = np.asarray(audio)
    responses = random_responses(len(audio), n_fft=2 * audio.shape[-1], sample_rate_hz=sample_rate_hz,
                                 max_db=max_db, rng=rng)
    return apply_responses(audio, responses)
