"""Generated, learnable stand-in audio for tests and the offline quickstart.

No speech: each keyword is a short burst of a two-tone "chord" at its own frequencies, with
per-speaker pitch, random timing, gain and noise. ``unknown`` clips are bursts at other
frequencies, ``silence`` clips are noise alone. A tiny model separates them after a few steps,
which is what tests need; nothing measured on it says anything about speech.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kws.runtime.labels import KEYWORDS, SEED_LABELS, SILENCE, UNKNOWN

SAMPLE_RATE_HZ = 8000
CLIP_SAMPLES = 8000


def _keyword_tones_hz(label: str) -> tuple[float, float]:
    k = KEYWORDS.index(label)
    return 300.0 + 180.0 * k, 2200.0 + 150.0 * ((k * 3) % 10)


def synth_word(label: str, rng: np.random.Generator, *, pitch: float = 1.0,
               burst_ms: float | None = None) -> np.ndarray:
    """One burst for ``label`` (a keyword or ``unknown``), float32, without padding.

    Returns
    -------
    np.ndarray, float32, shape (burst_samples,), peak about 0.5
    """
    burst_ms = burst_ms if burst_ms is not None else float(rng.uniform(300, 550))
    n = int(SAMPLE_RATE_HZ * burst_ms / 1000)
    t = np.arange(n) / SAMPLE_RATE_HZ
    if label == UNKNOWN:
        # A chirp between keyword tones: the model must learn to reject it.
        f0 = rng.uniform(250, 2000)
        f1 = f0 * rng.uniform(0.5, 2.0)
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * t[-1]))
        y = np.sin(phase)
    else:
        f_low, f_high = _keyword_tones_hz(label)
        y = np.sin(2 * np.pi * f_low * pitch * t) + 0.6 * np.sin(2 * np.pi * f_high * pitch * t)
    envelope = np.hanning(n)
    return (0.5 * y * envelope / np.abs(y * envelope).max()).astype(np.float32)


def synth_clip(label: str, rng: np.random.Generator, *, pitch: float = 1.0,
               noise_rms: float = 0.01) -> np.ndarray:
    """One second (8000 samples, float32 in [-1, 1]) of ``label``."""
    noise = rng.normal(0.0, noise_rms * rng.uniform(0.3, 2.0), CLIP_SAMPLES)
    clip = noise.astype(np.float32)
    if label != SILENCE:
        word = synth_word(label, rng, pitch=pitch) * np.float32(rng.uniform(0.3, 1.0))
        start = int(rng.integers(0, CLIP_SAMPLES - len(word)))
        clip[start:start + len(word)] += word
    return np.clip(clip, -1.0, 1.0)


def synthetic_dataset(*, clips_per_label: int = 20, n_speakers: int = 10, seed: int = 0,
                      labels: tuple[str, ...] = SEED_LABELS) -> dict[str, np.ndarray]:
    """A labelled set in the seed npz schema plus ``speaker``.

    Returns
    -------
    dict with ``wav_vals`` float32 (N, 8000), ``label_vals`` str (N, 1), ``speaker`` str (N,)
    """
    rng = np.random.default_rng(seed)
    pitches = rng.uniform(0.94, 1.06, n_speakers)
    wavs, names, speakers = [], [], []
    for label in labels:
        for i in range(clips_per_label):
            spk = int(rng.integers(0, n_speakers))
            wavs.append(synth_clip(label, rng, pitch=float(pitches[spk])))
            names.append(label)
            speakers.append(f"synth{spk:03d}")
    order = rng.permutation(len(wavs))
    return {
        "wav_vals": np.stack(wavs)[order],
        "label_vals": np.array(names)[order][:, None],
        "speaker": np.array(speakers)[order],
    }


def write_synthetic_npz(path: str | Path, **kwargs) -> Path:
    """Write :func:`synthetic_dataset` to ``path`` (npz, no pickles); returns the path."""
    from kws.runtime.fileio import save_npz

    return save_npz(path, synthetic_dataset(**kwargs))
