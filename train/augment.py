"""Training-time augmentation: on waveforms before the front-end, and SpecAugment on features.

All of it is numpy and driven by a ``numpy.random.Generator`` the caller passes in, so a batch
is reproducible from ``(seed, epoch, batch)`` (see :mod:`kws.train.dataset`).

Relabelling stage, first (probability ``reverse_prob``, keyword clips only, off by default):
the clip is played backwards and labelled ``unknown`` (:meth:`Augmenter.relabel`). It keeps the
keyword's sounds, level and length and loses their order, so the net must hear the order to call
a keyword; unknown words that share a keyword's sounds ("cat" and "yes") are the listener's false
accepts.

Waveform stages, in order (each can be switched off in :class:`AugmentConfig`):

- **speed perturbation** (probability ``speed_prob``): play the clip faster or slower by a
  uniform random factor in ``speed_range``, about its centre, as a tape would: tempo and pitch
  move together, so a factor of 1.1 makes a speaker sound like a shorter one (Ko et al. 2015,
  "Audio augmentation for speech recognition"). A way to get more voices from few speakers.
0. **stream-style placement** (probability ``stream_prob``, keywords and unknown words only): the
   clip is cut to its speech span plus 80 ms (faded), brought to the stream speech level
   (-26 dBFS over the speech span, uniform within +-5 dB), placed at a random position of the
   window, and laid over a noise bed whose level sits ``snr_db`` below -26 dBFS: the way
   ``kws-data stream`` builds a stream, so that a window of a long recording is no stranger to
   the net than a clip. Placed rows skip the time shift and noise stages below.
1. **time shift**: move the clip by a uniform random offset in ``+-time_shift_ms``, zero-filled.
2. **background noise** (probability ``noise_prob``): a random one-second crop of a noise clip,
   scaled to a uniform random SNR in ``snr_db`` (dB, against the clip's RMS) and added. For
   ``silence`` clips the noise is added at a random level relative to the clip instead (an SNR
   against silence means nothing). Noise comes from the training split's ``silence`` clips
   (never validation/test) or from a folder of wavs (:meth:`NoiseBank.from_dir`).
3. **random channel** (probability ``channel_prob``, off by default): the clip, noise included,
   through a random smooth microphone frequency response (tilt, resonances, band limits) at its
   own RMS level (:mod:`kws.train.channel`).
4. **gain**: multiply by a uniform random gain in ``+-gain_db`` dB; the result is clipped to [-1, 1].

Spectrum stage (spectrogram inputs only; probability ``vtlp_prob``, off by default):
vocal-tract-length perturbation (Jaitly and Hinton 2013, "Vocal Tract Length Perturbation (VTLP)
improves speech recognition"): the clip's magnitude STFT is stretched along frequency by a uniform
random factor in ``vtlp_range`` (above 1 = formants higher, as from a shorter vocal tract), linearly
up to :data:`VTLP_BOUNDARY_FRACTION` of the Nyquist frequency and then squeezed so that Nyquist
stays Nyquist (:func:`vtlp_warp`); timing is untouched. It runs between the two halves of the
runtime's front-end (:func:`kws.runtime.features.stft_magnitude`, then
:func:`kws.runtime.features.magnitude_to_features`), so no step of the front-end is copied.

Feature stage (spectrogram inputs only): ``time_masks`` masks of up to ``time_mask_fraction`` of
the frames and ``freq_masks`` masks of up to ``freq_mask_fraction`` of the bins, set to the
example's mean feature value (SpecAugment, Park et al. 2019, without time warping).

Class balancing (:func:`class_probabilities`, :func:`epoch_indices`, :func:`class_weights`):
``sample`` draws each epoch's clips with class probabilities between the natural frequencies
(``balance_power`` 0) and equal classes (``balance_power`` 1); ``weights`` keeps the natural
draw and weights the loss per class instead.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kws.runtime.errors import DataError, KwsError
from kws.runtime.features import FeatureConfig, compute_features, magnitude_to_features, stft_magnitude
from kws.train.channel import random_channel

logger = logging.getLogger(__name__)

BALANCE_MODES = ("sample", "weights", "none")

#: Vocal-tract-length perturbation warps frequencies linearly up to this fraction of the Nyquist
#: frequency and squeezes the rest into what is left. Jaitly and Hinton (2013) put the boundary at
#: 4.8 kHz of 16 kHz audio, above the whole band of 8 kHz audio; 80% of 4 kHz (3.2 kHz) keeps the
#: first three formants of most voices in the linear part.
VTLP_BOUNDARY_FRACTION = 0.8


def _check_probability(value: float, what: str, flag: str) -> None:
    if not 0.0 <= value <= 1.0:   # NaN fails too
        raise KwsError(f"{what} {value} ({flag}): expected a number in [0, 1]")


def _check_factor_range(bounds: tuple[float, float], what: str, flag: str) -> None:
    lo, hi = bounds
    if not (0.5 <= lo <= hi <= 2.0):
        raise KwsError(f"{what} {lo} {hi} ({flag}): expected 0.5 <= MIN <= MAX <= 2")


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings (all on by default; :meth:`off` turns everything off).

    Attributes
    ----------
    time_shift_ms : float
        Largest shift either way, in milliseconds (0 = off).
    shift_keeps_speech : bool
        Draw each clip's shift only among those that keep its speech span (found as
        ``kws-data stream`` finds it) inside the window, so that a long shift moves the word to
        wherever a sliding window may see it without cutting it (a cut keyword would still be
        labelled as the keyword). Clips with no speech span shift freely.
    noise_prob : float
        Probability that a clip gets background noise (0 = off).
    snr_db : (float, float)
        Range of the signal-to-noise ratio in dB for non-silence clips.
    gain_db : float
        Largest gain change either way, in dB (0 = off).
    time_masks, freq_masks : int
        Number of SpecAugment masks per example over time / frequency (0 = off).
    time_mask_fraction, freq_mask_fraction : float
        Largest mask width as a fraction of the frames / bins.
    balance : {"sample", "weights", "none"}
        How the large ``unknown`` class is balanced against the keywords.
    balance_power : float
        0 = natural class frequencies, 1 = equal classes; 0.5 = probabilities proportional to the
        square root of the class counts.
    stream_prob : float
        Probability that a keyword or unknown clip is placed stream-style (0 = off; see the module
        docstring). Its noise bed level is drawn from ``snr_db`` against the speech level.
    stream_cut_fraction : float
        Largest fraction of the speech span that a stream-style placement may leave outside the
        window (0 = the whole word always inside), as a sliding window sees a word it is leaving.
    speed_prob : float
        Probability that a clip is speed-perturbed (0 = off).
    speed_range : (float, float)
        Range of the speed factor (> 0; above 1 = faster and higher).
    vtlp_prob : float
        Probability that a clip's spectrum is warped (vocal-tract-length perturbation; 0 = off;
        spectrogram inputs only).
    vtlp_range : (float, float)
        Range of the warp factor (above 1 = formants higher).
    reverse_prob : float
        Probability that a keyword clip is played backwards and labelled ``unknown`` (0 = off).
    channel_prob : float
        Probability that a clip (with its noise) goes through a random microphone channel: a
        smooth random frequency response, :mod:`kws.train.channel` (0 = off).
    channel_db : float
        Largest resonance gain of those channels either way, in dB.
    """

    time_shift_ms: float = 100.0
    shift_keeps_speech: bool = False
    noise_prob: float = 0.8
    snr_db: tuple[float, float] = (5.0, 20.0)
    gain_db: float = 6.0
    time_masks: int = 2
    freq_masks: int = 2
    time_mask_fraction: float = 0.1
    freq_mask_fraction: float = 0.1
    balance: str = "sample"
    balance_power: float = 0.5
    stream_prob: float = 0.0
    stream_cut_fraction: float = 0.0
    speed_prob: float = 0.0
    speed_range: tuple[float, float] = (0.9, 1.1)
    vtlp_prob: float = 0.0
    vtlp_range: tuple[float, float] = (0.9, 1.1)
    reverse_prob: float = 0.0
    channel_prob: float = 0.0
    channel_db: float = 12.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.time_shift_ms) and self.time_shift_ms >= 0):
            raise KwsError(f"time shift {self.time_shift_ms} ms (--time-shift-ms): expected a number >= 0")
        if not (math.isfinite(self.gain_db) and self.gain_db >= 0):
            raise KwsError(f"gain {self.gain_db} dB (--gain-db): expected a number >= 0")
        if not 0.0 <= self.noise_prob <= 1.0:
            raise KwsError(f"noise probability {self.noise_prob}: expected a number in [0, 1]")
        lo, hi = self.snr_db
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise KwsError(f"SNR range {lo} {hi} dB (--snr-db): expected two finite numbers")
        if lo > hi:
            raise KwsError(f"SNR range {lo} {hi} dB: expected MIN <= MAX")
        if self.time_masks < 0 or self.freq_masks < 0:
            raise KwsError(f"time_masks={self.time_masks}, freq_masks={self.freq_masks}: expected >= 0")
        for name in ("time_mask_fraction", "freq_mask_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise KwsError(f"{name}={getattr(self, name)}: expected a number in [0, 1]")
        if self.balance not in BALANCE_MODES:
            raise KwsError(f"balance {self.balance!r}: expected one of {', '.join(BALANCE_MODES)}")
        if not 0.0 <= self.balance_power <= 1.0:
            raise KwsError(f"balance power {self.balance_power}: expected a number in [0, 1]")
        _check_probability(self.stream_prob, "stream-style probability", "--stream-style")
        if not 0.0 <= self.stream_cut_fraction < 1.0:
            raise KwsError(f"stream cut fraction {self.stream_cut_fraction} (--stream-cut): expected a number in [0, 1)")
        _check_probability(self.speed_prob, "speed perturbation probability", "--speed-perturb")
        _check_factor_range(self.speed_range, "speed range", "--speed-range")
        _check_probability(self.vtlp_prob, "vocal-tract-length perturbation probability", "--vtlp")
        _check_factor_range(self.vtlp_range, "warp factor range", "--vtlp-range")
        _check_probability(self.reverse_prob, "reversed-keyword probability", "--reversed-keywords")
        _check_probability(self.channel_prob, "random channel probability", "--channel-eq")
        if not (math.isfinite(self.channel_db) and 0 < self.channel_db <= 40):
            raise KwsError(f"channel gain {self.channel_db} dB (--channel-eq-db): expected a number in (0, 40]")

    @classmethod
    def off(cls) -> "AugmentConfig":
        """Everything off (the seed's recipe)."""
        return cls(time_shift_ms=0.0, noise_prob=0.0, gain_db=0.0, time_masks=0, freq_masks=0,
                   balance="none")

    @property
    def waveform_on(self) -> bool:
        return (self.time_shift_ms > 0 or self.noise_prob > 0 or self.gain_db > 0 or self.stream_prob > 0
                or self.speed_prob > 0 or self.channel_prob > 0)

    @property
    def masks_on(self) -> bool:
        return (self.time_masks > 0 and self.time_mask_fraction > 0) or \
               (self.freq_masks > 0 and self.freq_mask_fraction > 0)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["snr_db"] = list(self.snr_db)
        out["speed_range"] = list(self.speed_range)
        out["vtlp_range"] = list(self.vtlp_range)
        return out


# ---------------------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------------------
class NoiseBank:
    """Background noise to mix into training clips.

    Either rows of a :class:`~kws.train.data.Dataset` (read with ``Dataset.audio`` when needed,
    never copied as a whole) or a list of float32 recordings of any length.
    """

    def __init__(self, *, dataset=None, indices: np.ndarray | None = None,
                 recordings: Sequence[np.ndarray] | None = None, source: str = "") -> None:
        self._dataset = dataset
        self._indices = None if indices is None else np.asarray(indices, dtype=np.int64)
        self._recordings = [np.asarray(r, dtype=np.float32) for r in (recordings or [])]
        self.source = source
        if len(self) == 0:
            raise DataError(f"no background noise in {source or 'the noise source'}")

    def __len__(self) -> int:
        if self._indices is not None:
            return len(self._indices)
        return len(self._recordings)

    @classmethod
    def from_dataset(cls, dataset, indices: np.ndarray, *, label: str = "silence") -> "NoiseBank | None":
        """The clips of ``label`` among ``indices`` (pass the TRAINING split); None if there are none."""
        if label not in dataset.label_names:
            return None
        wanted = np.asarray(indices, dtype=np.int64)
        wanted = wanted[dataset.labels[wanted] == dataset.label_names.index(label)]
        if len(wanted) == 0:
            return None
        return cls(dataset=dataset, indices=wanted, source=f"{len(wanted)} {label} clips of {dataset.path}")

    @classmethod
    def from_dir(cls, folder: str | Path, *, sample_rate_hz: int) -> "NoiseBank":
        """Every ``*.wav`` under ``folder`` (see :func:`read_noise_wavs`).

        Raises
        ------
        DataError
            The folder does not exist, holds no wavs, or a wav cannot be read.
        """
        recordings = read_noise_wavs(folder, sample_rate_hz=sample_rate_hz)
        logger.info("noise: %d recordings, %.1f s from %s", len(recordings),
                    sum(len(r) for r in recordings) / sample_rate_hz, folder)
        return cls(recordings=recordings, source=str(folder))

    def draw(self, n: int, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` random crops of ``n_samples``, float32 (n, n_samples); short sources are tiled."""
        pick = rng.integers(0, len(self), n)
        if self._indices is not None:
            clips = self._dataset.audio(np.sort(self._indices[pick]))
            clips = clips[rng.permutation(n)]
            sources = list(clips)
        else:
            sources = [self._recordings[i] for i in pick]
        out = np.empty((n, n_samples), dtype=np.float32)
        for row, src in enumerate(sources):
            if len(src) < n_samples:
                src = np.tile(src, -(-n_samples // len(src)))
            start = int(rng.integers(0, len(src) - n_samples + 1))
            crop = src[start:start + n_samples]
            # A random circular roll so the same short clip does not always start the same way.
            out[row] = np.roll(crop, int(rng.integers(0, n_samples)))
        return out


# ---------------------------------------------------------------------------------------
# Waveform and feature augmentation
# ---------------------------------------------------------------------------------------
def _rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=-1))


def change_speed(audio: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Play each row ``factors[row]`` times as fast, about the row's centre, keeping its length.

    Output sample ``i`` is the input at ``c + (i - c) * factor`` (``c`` the centre), linearly
    interpolated; what falls outside the input is zero. A factor above 1 speeds up and raises the
    pitch, so the input is first low-passed (in the frequency domain) below ``nyquist / factor``
    to keep what would pass the Nyquist frequency from folding back. A factor of exactly 1 returns
    the row unchanged.

    Parameters
    ----------
    audio : float32 (batch, n_samples)
    factors : float (batch,)
        Speed factors, > 0.

    Returns
    -------
    float32 (batch, n_samples), a new array
    """
    audio = np.asarray(audio, dtype=np.float32)
    factors = np.asarray(factors, dtype=np.float64)
    if factors.shape != audio.shape[:1]:
        raise KwsError(f"{factors.shape[0] if factors.ndim else 'scalar'} speed factors for "
                       f"{audio.shape[0]} rows: expected one per row")
    if not np.all(factors > 0):
        raise KwsError(f"speed factors {factors[~(factors > 0)][:3].tolist()}: expected numbers > 0")
    out = audio.copy()
    n = audio.shape[-1]
    if n == 0:
        return out
    rows = np.flatnonzero(factors != 1.0)
    if not len(rows):
        return out
    src = audio[rows].astype(np.float64)
    fast = factors[rows] > 1.0
    if fast.any():
        spectrum = np.fft.rfft(src[fast], axis=-1)
        bins = np.arange(spectrum.shape[-1])
        cutoff = (spectrum.shape[-1] - 1) / factors[rows][fast]      # in bins: nyquist / factor
        spectrum[bins[None, :] > cutoff[:, None]] = 0.0
        src[fast] = np.fft.irfft(spectrum, n=n, axis=-1)
    centre = (n - 1) / 2.0
    pos = centre + (np.arange(n)[None, :] - centre) * factors[rows][:, None]   # (rows, n)
    inside = (pos >= 0) & (pos <= n - 1)
    flat = np.clip(pos, 0, n - 1) + (np.arange(len(rows)) * n)[:, None]
    values = np.interp(flat.ravel(), np.arange(len(rows) * n), src.ravel()).reshape(len(rows), n)
    out[rows] = np.where(inside, values, 0.0).astype(np.float32)
    return out


def time_shift(audio: np.ndarray, max_shift_samples: int, rng: np.random.Generator, *,
               keep_speech: bool = False, sample_rate_hz: int = 8000) -> np.ndarray:
    """Shift every row by a uniform random offset in ``[-max, max]`` samples, zero-filled.

    Parameters
    ----------
    audio : float32 (batch, n_samples)
    keep_speech : bool
        Narrow each row's range to the shifts that keep its speech span
        (:func:`kws.train.streams.speech_bounds`) inside the row; rows without one use the full range.

    Returns
    -------
    float32 (batch, n_samples), a new array
    """
    out = np.zeros_like(audio)
    n = audio.shape[-1]
    lo = np.full(audio.shape[0], -max_shift_samples)
    hi = np.full(audio.shape[0], max_shift_samples)
    if keep_speech:
        from kws.train.streams import speech_bounds

        for row in range(audio.shape[0]):
            bounds = speech_bounds(audio[row], sample_rate_hz=sample_rate_hz)
            if bounds is not None:
                lo[row] = max(lo[row], -bounds[0])
                hi[row] = min(hi[row], n - bounds[1])
    shifts = rng.integers(lo, hi + 1)
    for row, s in enumerate(shifts):
        s = int(np.clip(s, -n, n))
        if s >= 0:
            out[row, s:] = audio[row, :n - s]
        else:
            out[row, :n + s] = audio[row, -s:]
    return out


def mix_noise(audio: np.ndarray, noise: np.ndarray, snr_db: np.ndarray, *,
              is_silence: np.ndarray | None = None, rng: np.random.Generator) -> np.ndarray:
    """Add ``noise`` rows to ``audio`` rows at the given SNRs (dB).

    ``is_silence`` rows get the noise at a uniform random level between 0 and 1 times the clip's
    own RMS (or, for digital silence, an RMS between -60 and -20 dBFS) instead.

    Returns
    -------
    float32 (batch, n_samples), a new array (not clipped)
    """
    sig = _rms(audio)
    nrms = _rms(noise)
    gain = np.zeros(len(audio))
    ok = nrms > 1e-7
    speech = ok & (sig > 1e-7)
    gain[speech] = sig[speech] / (nrms[speech] * 10.0 ** (np.asarray(snr_db)[speech] / 20.0))
    if is_silence is not None:
        quiet = ok & np.asarray(is_silence, dtype=bool)
        level = rng.uniform(0.0, 1.0, len(audio))
        floor = 10.0 ** (rng.uniform(-60.0, -20.0, len(audio)) / 20.0)
        target = np.where(sig > 1e-5, sig * level, floor)
        gain[quiet] = target[quiet] / nrms[quiet]
    return (audio + noise * gain[:, None].astype(np.float32)).astype(np.float32, copy=False)


def apply_gain(audio: np.ndarray, gain_db: float, rng: np.random.Generator) -> np.ndarray:
    """Multiply rows by uniform random gains in ``+-gain_db`` dB and clip to [-1, 1]."""
    gains = 10.0 ** (rng.uniform(-gain_db, gain_db, audio.shape[0]) / 20.0)
    return np.clip(audio * gains[:, None].astype(np.float32), -1.0, 1.0)


def stream_place(clip: np.ndarray, bed: np.ndarray, *, snr_db: float, rng: np.random.Generator,
                 cut_fraction: float = 0.0, level_spread_db: float = 10.0,
                 sample_rate_hz: int = 8000) -> np.ndarray | None:
    """Place one clip's word in a window the way ``kws-data stream`` places it in a stream.

    The word is cut as the stream cuts it (:func:`kws.train.streams.cut_word`: speech span plus
    ``PAD_S``, faded), brought to ``SPEECH_LEVEL_DBFS`` plus a uniform random gain within
    ``+-level_spread_db / 2`` dB (:func:`kws.train.streams.level_gain`), and added
    at a uniform random position to ``bed`` scaled to ``snr_db`` below ``SPEECH_LEVEL_DBFS``.

    Parameters
    ----------
    clip : float32 (n_samples,), the recorded clip
    bed : float32 (n_samples,), background noise (any level: it is scaled to unit RMS first;
        digital silence is replaced by white noise)
    snr_db : float, speech level over noise level in dB
    cut_fraction : float in [0, 1), the largest part of the speech span that may fall outside
        the window (at either edge)

    Returns
    -------
    float32 (n_samples,), a new array (not clipped), or None when the clip has no speech span.
    """
    from kws.train.streams import SPEECH_LEVEL_DBFS, cut_word, level_gain

    n = len(clip)
    word = cut_word(clip, sample_rate_hz=sample_rate_hz)
    if word is None:
        return None
    segment, offset, length, power = word
    segment *= np.float32(level_gain(power, level_spread_db, rng))
    bed = np.asarray(bed, dtype=np.float32)
    bed_rms = float(np.sqrt(np.mean(np.square(bed, dtype=np.float64))))
    if bed_rms < 1e-4:
        bed, bed_rms = rng.standard_normal(n).astype(np.float32), 1.0
    out = bed * np.float32(10 ** ((SPEECH_LEVEL_DBFS - snr_db) / 20) / bed_rms)
    cut = int(cut_fraction * length)
    speech_at = int(rng.integers(-cut, n - length + cut + 1))  # where the speech span starts
    start = speech_at - offset                                  # where the segment starts
    lo, hi = max(0, start), min(n, start + len(segment))
    out[lo:hi] += segment[lo - start:hi - start]
    return out


def vtlp_source_hz(freqs_hz: np.ndarray, alpha: float, *, nyquist_hz: float,
                   boundary_fraction: float = VTLP_BOUNDARY_FRACTION) -> np.ndarray:
    """Where the VTLP warp with factor ``alpha`` takes each output frequency from (Hz).

    The warp (Jaitly and Hinton 2013) maps an input frequency ``f`` to ``alpha * f`` up to
    ``f0 = boundary * min(alpha, 1) / alpha`` (``boundary = boundary_fraction * nyquist_hz``) and
    from there linearly onto the rest of the band, so that 0 and Nyquist stay where they are and
    the map is continuous and increasing. This is its inverse, evaluated at ``freqs_hz``.

    Parameters
    ----------
    freqs_hz : float array, any shape, in [0, nyquist_hz]
    alpha : float > 0

    Returns
    -------
    float64 array, the shape of ``freqs_hz``
    """
    f = np.asarray(freqs_hz, dtype=np.float64)
    scale = boundary_fraction * nyquist_hz * min(alpha, 1.0)   # where f0 lands
    f0 = scale / alpha
    upper = nyquist_hz - (nyquist_hz - f) * (nyquist_hz - f0) / (nyquist_hz - scale)
    return np.where(f <= scale, f / alpha, upper)


def vtlp_warp(spec: np.ndarray, alphas: np.ndarray, *, sample_rate_hz: int,
              boundary_fraction: float = VTLP_BOUNDARY_FRACTION) -> np.ndarray:
    """Vocal-tract-length perturbation of a batch of magnitude spectrograms.

    Output bin ``k`` of row ``b`` is the row's spectrum at :func:`vtlp_source_hz` of bin ``k``'s
    frequency, linearly interpolated between the two nearest bins, in every frame. A factor above 1
    moves spectral peaks up (a tone at 1 kHz comes out at ``alpha`` kHz below the boundary); a
    factor of exactly 1 returns the row unchanged.

    Parameters
    ----------
    spec : float32 (batch, bins, frames)
        Magnitude STFT rows (:func:`kws.runtime.features.stft_magnitude`), bins from 0 Hz to
        Nyquist.
    alphas : float (batch,), each in (0, inf)
    sample_rate_hz : int

    Returns
    -------
    float32 (batch, bins, frames), a new array

    Raises
    ------
    KwsError
        If ``alphas`` does not hold one finite factor > 0 per row.
    """
    spec = np.asarray(spec, dtype=np.float32)
    alphas = np.asarray(alphas, dtype=np.float64)
    if spec.ndim != 3:
        raise KwsError(f"spectrogram batch of shape {spec.shape}: expected (batch, bins, frames)")
    if alphas.shape != (spec.shape[0],):
        raise KwsError(f"{alphas.size} warp factors for {spec.shape[0]} rows: expected one per row")
    if not np.all(np.isfinite(alphas) & (alphas > 0)):
        raise KwsError(f"warp factors {alphas[~(np.isfinite(alphas) & (alphas > 0))][:3]}: expected numbers > 0")
    n_bins = spec.shape[1]
    nyquist = sample_rate_hz / 2.0
    bin_hz = np.linspace(0.0, nyquist, n_bins)
    out = spec.copy()
    for row in np.flatnonzero(alphas != 1.0):
        pos = vtlp_source_hz(bin_hz, float(alphas[row]), nyquist_hz=nyquist,
                             boundary_fraction=boundary_fraction) * ((n_bins - 1) / nyquist)
        pos = np.clip(pos, 0.0, n_bins - 1)
        lo = np.minimum(np.floor(pos).astype(np.int64), n_bins - 2)
        frac = (pos - lo).astype(np.float32)[:, None]
        out[row] = spec[row, lo] * (1.0 - frac) + spec[row, lo + 1] * frac
    return out


def spec_mask(features: np.ndarray, *, time_masks: int, freq_masks: int, time_mask_fraction: float,
              freq_mask_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """SpecAugment time and frequency masks on a batch of spectrograms.

    Parameters
    ----------
    features : float32 (batch, bins, frames, 1)

    Returns
    -------
    float32, same shape, a new array; masked cells hold the example's mean value.
    """
    out = np.array(features, dtype=np.float32, copy=True)
    _, n_bins, n_frames = out.shape[:3]
    means = out.mean(axis=(1, 2, 3))
    max_t = int(round(time_mask_fraction * n_frames))
    max_f = int(round(freq_mask_fraction * n_bins))
    for row in range(out.shape[0]):
        for _ in range(time_masks if max_t > 0 else 0):
            width = int(rng.integers(0, max_t + 1))
            start = int(rng.integers(0, n_frames - width + 1))
            out[row, :, start:start + width] = means[row]
        for _ in range(freq_masks if max_f > 0 else 0):
            width = int(rng.integers(0, max_f + 1))
            start = int(rng.integers(0, n_bins - width + 1))
            out[row, start:start + width, :] = means[row]
    return out


class Augmenter:
    """Applies an :class:`AugmentConfig` to batches.

    Parameters
    ----------
    config : AugmentConfig
    sample_rate_hz : int
    noise : NoiseBank or None
        Without one, the noise stage is skipped (logged once).
    silence_label : int or None
        Class index of ``silence`` (those clips get level-relative noise).
    unknown_label : int or None
        Class index of ``unknown`` (where reversed keywords go); needed for ``reverse_prob`` > 0.

    Raises
    ------
    KwsError
        ``reverse_prob`` > 0 without an ``unknown`` class.
    """

    def __init__(self, config: AugmentConfig, *, sample_rate_hz: int, noise: NoiseBank | None = None,
                 silence_label: int | None = None, unknown_label: int | None = None) -> None:
        self.config = config
        self.sample_rate_hz = sample_rate_hz
        self.noise = noise
        self.silence_label = silence_label
        self.unknown_label = unknown_label
        if config.reverse_prob > 0 and unknown_label is None:
            raise KwsError(f"reversed-keyword probability {config.reverse_prob}: reversed keywords are "
                           "labelled 'unknown', and no unknown_label was given")
        if config.noise_prob > 0 and noise is None:
            logger.warning("background noise is on but there is no noise (no silence clips in the training "
                           "split and no --noise-dir); skipping it")

    def relabel(self, audio: np.ndarray, labels: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Keywords played backwards as ``unknown`` (``reverse_prob`` of the keyword rows).

        Keywords are the rows whose label is neither ``unknown`` nor ``silence``. Without
        ``reverse_prob`` the inputs come back as they are and ``rng`` is not drawn from.

        Parameters
        ----------
        audio : float32 (batch, n_samples)
        labels : int (batch,)

        Returns
        -------
        (audio, labels): new arrays where a row was reversed; ``audio`` and ``labels`` are never
        written.
        """
        if self.config.reverse_prob <= 0:
            return audio, labels
        labels = np.asarray(labels)
        keyword = ~np.isin(labels, [c for c in (self.unknown_label, self.silence_label) if c is not None])
        rows = np.flatnonzero(keyword & (rng.random(len(labels)) < self.config.reverse_prob))
        if not len(rows):
            return audio, labels
        audio, labels = np.array(audio, dtype=np.float32), labels.copy()
        audio[rows] = audio[rows, ::-1]
        labels[rows] = self.unknown_label
        return audio, labels

    def waveforms(self, audio: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Speed, placement, time shift, noise, channel and gain on float32 (batch, n_samples) audio.

        Returns the augmented batch, float32 (batch, n_samples); ``audio`` itself is never written.
        """
        cfg = self.config
        out = np.array(audio, dtype=np.float32)   # one copy: the stages below write into it
        placed = np.zeros(len(out), dtype=bool)
        if cfg.speed_prob > 0:
            chosen = rng.random(len(out)) < cfg.speed_prob
            factors = np.where(chosen, rng.uniform(cfg.speed_range[0], cfg.speed_range[1], len(out)), 1.0)
            if chosen.any():
                out = change_speed(out, factors)
        if cfg.stream_prob > 0:
            out, placed = self._place(out, labels, rng)
        if cfg.time_shift_ms > 0:
            free = ~placed
            if free.any():
                out[free] = time_shift(out[free], int(round(cfg.time_shift_ms * self.sample_rate_hz / 1000.0)),
                                       rng, keep_speech=cfg.shift_keeps_speech, sample_rate_hz=self.sample_rate_hz)
        if cfg.noise_prob > 0 and self.noise is not None:
            chosen = np.flatnonzero((rng.random(len(out)) < cfg.noise_prob) & ~placed)
            if len(chosen):
                noise = self.noise.draw(len(chosen), out.shape[-1], rng)
                snr = rng.uniform(cfg.snr_db[0], cfg.snr_db[1], len(chosen))
                silent = None if self.silence_label is None else labels[chosen] == self.silence_label
                out[chosen] = mix_noise(out[chosen], noise, snr, is_silence=silent, rng=rng)
        if cfg.channel_prob > 0:   # after the noise: a microphone colours the room as well as the word
            chosen = np.flatnonzero(rng.random(len(out)) < cfg.channel_prob)
            if len(chosen):
                out[chosen] = random_channel(out[chosen], sample_rate_hz=self.sample_rate_hz, max_db=cfg.channel_db,
                                             rng=rng)
        if cfg.gain_db > 0:
            out = apply_gain(out, cfg.gain_db, rng)
        elif cfg.noise_prob > 0:
            out = np.clip(out, -1.0, 1.0)
        return out

    def _place(self, audio: np.ndarray, labels: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Stream-style placement (:func:`stream_place`) of a random ``stream_prob`` of the
        non-silence rows, written into ``audio`` (the batch :meth:`waveforms` owns); returns it and
        which rows were placed."""
        cfg = self.config
        chosen = rng.random(len(audio)) < cfg.stream_prob
        if self.silence_label is not None:
            chosen &= np.asarray(labels) != self.silence_label
        placed = np.zeros(len(audio), dtype=bool)
        rows = np.flatnonzero(chosen)
        if not len(rows):
            return audio, placed
        n = audio.shape[-1]
        if self.noise is not None:
            beds = self.noise.draw(len(rows), n, rng)
        else:
            beds = rng.standard_normal((len(rows), n)).astype(np.float32)
        snr = rng.uniform(cfg.snr_db[0], cfg.snr_db[1], len(rows))
        for k, row in enumerate(rows):
            new = stream_place(audio[row], beds[k], snr_db=float(snr[k]), rng=rng,
                               cut_fraction=cfg.stream_cut_fraction, sample_rate_hz=self.sample_rate_hz)
            if new is not None:
                audio[row] = new
                placed[row] = True
        return audio, placed

    def front_end(self, audio: np.ndarray, config: FeatureConfig, rng: np.random.Generator) -> np.ndarray:
        """The runtime's features of an (augmented) batch, with the spectrum stage in the middle.

        Without vocal-tract-length perturbation (or for waveform inputs) this is exactly
        :func:`kws.runtime.features.compute_features`, and ``rng`` is not drawn from.

        Parameters
        ----------
        audio : float32 (batch, window_samples)
        config : FeatureConfig

        Returns
        -------
        float32 (batch, *config.input_shape)
        """
        cfg = self.config
        if cfg.vtlp_prob <= 0 or config.kind == "waveform":
            return compute_features(audio, config)
        chosen = rng.random(len(audio)) < cfg.vtlp_prob
        alphas = np.where(chosen, rng.uniform(cfg.vtlp_range[0], cfg.vtlp_range[1], len(audio)), 1.0)
        spec = stft_magnitude(np.asarray(audio, dtype=np.float32), n_fft=config.n_fft, hop_samples=config.hop)
        spec = vtlp_warp(spec, alphas, sample_rate_hz=config.sample_rate_hz)
        return magnitude_to_features(spec, config)

    def features(self, features: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """SpecAugment masks for spectrogram batches (batch, bins, frames, 1); others unchanged."""
        cfg = self.config
        if features.ndim != 4 or not cfg.masks_on:
            return features
        return spec_mask(features, time_masks=cfg.time_masks, freq_masks=cfg.freq_masks,
                         time_mask_fraction=cfg.time_mask_fraction,
                         freq_mask_fraction=cfg.freq_mask_fraction, rng=rng)


# ---------------------------------------------------------------------------------------
# Class balancing
# ---------------------------------------------------------------------------------------
def class_probabilities(counts: np.ndarray, power: float) -> np.ndarray:
    """Sampling probability per class: ``counts ** (1 - power)``, normalised; absent classes get 0."""
    counts = np.asarray(counts, dtype=np.float64)
    p = np.where(counts > 0, np.power(np.maximum(counts, 1.0), 1.0 - power), 0.0)
    return p / p.sum()


def epoch_indices(indices: np.ndarray, labels: np.ndarray, *, n_classes: int, power: float,
                  rng: np.random.Generator, size: int | None = None) -> np.ndarray:
    """One epoch of training indices with class-balanced sampling, shuffled.

    Each class ``c`` gets ``round(size * p_c)`` draws (:func:`class_probabilities`): without
    replacement while the class has clips left, then with replacement.

    Parameters
    ----------
    indices : int array, the training clips
    labels : int array, the label of every clip of the dataset (indexed by ``indices``)
    size : clips per epoch (default ``len(indices)``)
    """
    indices = np.asarray(indices, dtype=np.int64)
    size = len(indices) if size is None else size
    by_class = [indices[labels[indices] == c] for c in range(n_classes)]
    probs = class_probabilities(np.array([len(x) for x in by_class]), power)
    out = []
    for members, p in zip(by_class, probs):
        k = int(round(size * p))
        if k == 0 or len(members) == 0:
            continue
        reps, rest = divmod(k, len(members))
        parts = [rng.permutation(members) for _ in range(reps)]
        parts.append(rng.choice(members, rest, replace=False))
        out.append(np.concatenate(parts))
    return rng.permutation(np.concatenate(out)) if out else indices[:0]


def class_weights(counts: np.ndarray, power: float) -> np.ndarray:
    """Loss weight per class, ``counts ** -power``, scaled so the mean weight over the clips is 1."""
    counts = np.asarray(counts, dtype=np.float64)
    w = np.where(counts > 0, np.power(np.maximum(counts, 1.0), -power), 0.0)
    total = (w * counts).sum()
    return (w * counts.sum() / total).astype(np.float32) if total > 0 else np.ones_like(w, dtype=np.float32)


def read_noise_wavs(folder: str | Path, *, sample_rate_hz: int) -> list[np.ndarray]:
    """Every ``*.wav`` under ``folder`` (recursively, any case of the suffix) as mono float32 at
    ``sample_rate_hz`` (resampled where needed); empty files are skipped.

    Used for ``--noise-dir`` by kws-train (:meth:`NoiseBank.from_dir`) and ``kws-data stream``.

    Returns
    -------
    list of np.ndarray, float32, shape (n_samples,) each

    Raises
    ------
    DataError
        The folder does not exist, holds no wavs, or a wav cannot be read.
    """
    from kws.runtime.audio_io import read_wav, to_mono
    from kws.runtime.resample import resample

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"--noise-dir {folder}: not a directory of noise .wav files")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())
    if not paths:
        raise DataError(f"--noise-dir {folder}: no .wav files in it")
    recordings = []
    for path in paths:
        audio, rate = read_wav(path)
        mono = to_mono(audio)
        if rate != sample_rate_hz:
            mono = resample(mono, rate, sample_rate_hz)
        if len(mono):
            recordings.append(np.asarray(mono, dtype=np.float32))
    return recordings
