"""The one front-end: numpy STFT (librosa-compatible), optional mel filterbank, log or PCEN.

Training (``kws.train``) and the Raspberry Pi call the same :func:`compute_features`, so the
features a model was trained on are exactly the ones it sees on the device.

The STFT reproduces ``librosa.stft(y, n_fft=n_fft)`` with librosa's defaults: ``center=True``
with zero (``'constant'``) padding of ``n_fft // 2`` on each side, a periodic Hann window of
``n_fft`` samples, and ``hop_length = n_fft // 4`` unless set. Only the magnitude is kept.
For the seed's ``n_fft=258`` and a one-second clip at 8 kHz that is 130 bins x 126 frames.

Per-channel energy normalisation (PCEN; Wang et al. 2017, "Trainable frontend for robust and
far-field keyword spotting") is the alternative to the log: each band is divided by a smoothed
copy of itself (an automatic gain control) and then root-compressed. It follows
``librosa.pcen``, with one difference that matters for one-second windows: the smoother starts
in its steady state on the window's first frame (librosa starts it as if the input had been 1,
which is why its documentation scales the input by 2**31).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from kws.runtime.errors import KwsError

KINDS = ("waveform", "stft")


def _is_number(value: Any) -> bool:
    """A finite real number (not a bool, not a string)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and bool(np.isfinite(value))


@dataclass(frozen=True)
class FeatureConfig:
    """Feature settings. They travel with every trained and exported model (its JSON).

    Attributes
    ----------
    kind : {"waveform", "stft"}
        ``"waveform"``: the model takes the raw window, shape ``(window_samples, 1)``.
        ``"stft"``: STFT magnitudes, shape ``(n_bins, n_frames, 1)`` (frequency x time, as librosa).
    sample_rate_hz : int
        Audio sample rate the model expects (the seed: 8000).
    window_samples : int
        Samples per classified window (the seed: 8000, one second).
    n_fft : int
        FFT size, also the Hann window length (the seed: 258).
    hop_samples : int
        STFT hop in samples; 0 means librosa's default ``n_fft // 4``.
    mel_bands : int
        0 keeps the ``n_fft // 2 + 1`` linear bins; otherwise a Slaney mel filterbank of this
        many bands (as ``librosa.filters.mel(htk=False, norm='slaney')``) on the power spectrum
        is applied, and its output is the square root (a mel magnitude).
    fmin_hz, fmax_hz : float
        Mel band edges; ``fmax_hz`` 0 means ``sample_rate_hz / 2``.
    log : bool
        Apply ``log(x + log_floor)`` after the STFT/mel stage. It compresses the dynamic
        range, which is what lets an int8 input keep quiet and loud speech alike.
    log_floor : float
        Added before the log; sets the quietest level that is distinguishable.
    pcen : bool
        Per-channel energy normalisation instead of the log (:func:`pcen`): each band over a
        smoothed copy of itself, then ``(x + bias) ** power - bias ** power``. Level-invariant to
        within ``gain``, and it flattens steady background noise. Not together with ``log``.
    pcen_time_constant_s : float
        Time constant of PCEN's smoother, in seconds (librosa's default 0.4).
    pcen_gain, pcen_bias, pcen_power, pcen_eps : float
        PCEN's gain (alpha, 0 to 1), bias (delta), power (r, 0 to 1) and the floor added to the
        smoothed energy; librosa's defaults 0.98, 2, 0.5 and 1e-6.
    """

    kind: str = "stft"
    sample_rate_hz: int = 8000
    window_samples: int = 8000
    n_fft: int = 258
    hop_samples: int = 0
    mel_bands: int = 0
    fmin_hz: float = 20.0
    fmax_hz: float = 0.0
    log: bool = False
    log_floor: float = 1e-3
    pcen: bool = False
    pcen_time_constant_s: float = 0.4
    pcen_gain: float = 0.98
    pcen_bias: float = 2.0
    pcen_power: float = 0.5
    pcen_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise KwsError(f"feature kind {self.kind!r} is not one of {', '.join(KINDS)}")
        for name in ("sample_rate_hz", "window_samples", "n_fft"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise KwsError(f"feature setting {name}={value!r}: expected a positive integer")
        if self.hop_samples < 0 or self.mel_bands < 0:
            raise KwsError(f"hop_samples={self.hop_samples} and mel_bands={self.mel_bands} "
                           "must be >= 0")
        if self.kind == "stft" and self.n_fft > self.window_samples:
            raise KwsError(f"n_fft={self.n_fft} is longer than the window ({self.window_samples})")
        if self.log and not self.log_floor > 0:
            raise KwsError(f"log_floor={self.log_floor}: expected a positive number")
        if self.pcen:
            self._check_pcen()

    def _check_pcen(self) -> None:
        if self.kind != "stft":
            raise KwsError(f"pcen needs a spectrogram (kind 'stft'), not kind {self.kind!r}")
        if self.log:
            raise KwsError("pcen and log are two compressions of the same spectrum: set one of them")
        for name in ("pcen_gain", "pcen_power"):
            value = getattr(self, name)
            if not (_is_number(value) and 0.0 < value <= 1.0):
                raise KwsError(f"{name}={value!r}: expected a number in (0, 1]")
        for name in ("pcen_time_constant_s", "pcen_bias", "pcen_eps"):
            value = getattr(self, name)
            if not (_is_number(value) and value > 0):
                raise KwsError(f"{name}={value!r}: expected a positive number")

    # -- derived sizes -------------------------------------------------------------------
    @property
    def hop(self) -> int:
        """The STFT hop in samples (``n_fft // 4`` when ``hop_samples`` is 0)."""
        return self.hop_samples or self.n_fft // 4

    @property
    def n_bins(self) -> int:
        """Frequency rows of the output: ``mel_bands`` or ``n_fft // 2 + 1``."""
        return self.mel_bands or self.n_fft // 2 + 1

    @property
    def n_frames(self) -> int:
        """STFT frames per window (centered): ``1 + window_samples // hop``."""
        return 1 + self.window_samples // self.hop

    @property
    def frame_rate_hz(self) -> float:
        """STFT frames per second: ``sample_rate_hz / hop``."""
        return self.sample_rate_hz / self.hop

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one model input, without the batch axis."""
        if self.kind == "waveform":
            return (self.window_samples, 1)
        return (self.n_bins, self.n_frames, 1)

    @property
    def window_seconds(self) -> float:
        return self.window_samples / self.sample_rate_hz

    # -- JSON ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeatureConfig":
        """Build from a JSON mapping; unknown keys are an error that names them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise KwsError(f"unknown feature setting(s) {unknown}; expected some of {sorted(known)}")
        return cls(**dict(data))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


# ---------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------
@lru_cache(maxsize=16)
def hann_window(n: int) -> np.ndarray:
    """Periodic Hann window (``scipy.signal.get_window('hann', n, fftbins=True)``), float32 (n,)."""
    k = np.arange(n, dtype=np.float64)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * k / n)
    window.setflags(write=False)
    return window.astype(np.float32)


def stft_magnitude(audio: np.ndarray, *, n_fft: int, hop_samples: int = 0) -> np.ndarray:
    """Magnitude STFT equal to ``np.abs(librosa.stft(audio, n_fft=n_fft, hop_length=hop))``.

    Parameters
    ----------
    audio : np.ndarray, float, shape (..., n_samples)
        Audio in [-1, 1]; any leading batch axes.
    n_fft : int
        FFT size and Hann window length.
    hop_samples : int
        Hop in samples; 0 means ``n_fft // 4``.

    Returns
    -------
    np.ndarray, float32, shape (..., n_fft // 2 + 1, 1 + n_samples // hop)
    """
    hop = hop_samples or n_fft // 4
    x = np.asarray(audio, dtype=np.float32)
    pad = n_fft // 2
    widths = [(0, 0)] * (x.ndim - 1) + [(pad, pad)]
    padded = np.pad(x, widths, mode="constant")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[..., ::hop, :]
    spectrum = np.fft.rfft(frames * hann_window(n_fft), n=n_fft, axis=-1)
    # (..., frames, bins) -> (..., bins, frames), as librosa returns it.
    return np.abs(spectrum).astype(np.float32, copy=False).swapaxes(-1, -2)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa's default, ``htk=False``)."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    mel = hz / f_sp
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep, mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


@lru_cache(maxsize=16)
def mel_filterbank(*, sample_rate_hz: int, n_fft: int, mel_bands: int, fmin_hz: float = 0.0,
                   fmax_hz: float = 0.0) -> np.ndarray:
    """Slaney-normalised mel filterbank, as ``librosa.filters.mel(htk=False, norm='slaney')``.

    Returns
    -------
    np.ndarray, float32, shape (mel_bands, n_fft // 2 + 1)
    """
    fmax = fmax_hz or sample_rate_hz / 2.0
    fft_hz = np.linspace(0.0, sample_rate_hz / 2.0, n_fft // 2 + 1)
    mel_hz = _mel_to_hz(np.linspace(_hz_to_mel(fmin_hz), _hz_to_mel(fmax), mel_bands + 2))
    fdiff = np.diff(mel_hz)
    ramps = mel_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_hz[2:mel_bands + 2] - mel_hz[:mel_bands]))[:, None]
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights


def pcen_smoothing(*, time_constant_s: float, frame_rate_hz: float) -> float:
    """The one-pole smoother's coefficient ``s`` of PCEN, as ``librosa.pcen`` derives it.

    With ``T = time_constant_s * frame_rate_hz`` frames, ``s = (sqrt(1 + 4 T**2) - 1) / (2 T**2)``.
    """
    t_frames = float(time_constant_s) * float(frame_rate_hz)
    return float((np.sqrt(1.0 + 4.0 * t_frames ** 2) - 1.0) / (2.0 * t_frames ** 2))


@lru_cache(maxsize=16)
def _smoother_matrix(n_frames: int, smoothing: float) -> np.ndarray:
    """(n_frames, n_frames) float32 ``K`` with ``M = E @ K`` the smoothed energy of :func:`pcen`.

    ``M[t] = (1 - s) M[t-1] + s E[t]`` with ``M[-1] = E[0]`` unrolls to
    ``M[t] = sum_j s (1 - s)**(t - j) E[j] + (1 - s)**(t + 1) E[0]``.
    """
    lag = np.arange(n_frames)[None, :] - np.arange(n_frames)[:, None]          # t - j
    kernel = np.where(lag >= 0, smoothing * (1.0 - smoothing) ** np.maximum(lag, 0), 0.0)
    kernel[0] += (1.0 - smoothing) ** (np.arange(n_frames) + 1.0)
    kernel = kernel.astype(np.float32)
    kernel.setflags(write=False)
    return kernel


def pcen(energy: np.ndarray, *, smoothing: float, gain: float = 0.98, bias: float = 2.0,
         power: float = 0.5, eps: float = 1e-6) -> np.ndarray:
    """Per-channel energy normalisation along the last (time) axis.

    ``M`` is ``energy`` smoothed in time by a one-pole filter started in its steady state on the
    first frame (``M[0] = energy[0]``); the output is
    ``(energy / (eps + M) ** gain + bias) ** power - bias ** power``. Equal to
    ``librosa.pcen(energy, b=smoothing, gain=gain, bias=bias, power=power, eps=eps,
    zi=(1 - smoothing) * energy[..., :1])``.

    Parameters
    ----------
    energy : np.ndarray, float, non-negative, shape (..., bands, frames)
        A magnitude (or mel magnitude) spectrogram.
    smoothing : float
        The smoother's coefficient in (0, 1] (:func:`pcen_smoothing`).
    gain, bias, power, eps : float
        See :class:`FeatureConfig`.

    Returns
    -------
    np.ndarray, float32, the shape of ``energy``
    """
    e = np.asarray(energy, dtype=np.float32)
    smooth = np.matmul(e, _smoother_matrix(e.shape[-1], float(smoothing)))
    # As librosa, in log space: (eps + M) ** -gain without overflow for tiny eps.
    agc = np.exp(-gain * (np.log(np.float32(eps)) + np.log1p(smooth / np.float32(eps))))
    out = np.float32(bias ** power) * np.expm1(np.float32(power) * np.log1p(e * agc / np.float32(bias)))
    return out.astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------
# The front-end
# ---------------------------------------------------------------------------------------
def compute_features(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Model input features for one window or a batch of windows.

    Parameters
    ----------
    audio : np.ndarray, float32 in [-1, 1], shape (window_samples,) or (batch, window_samples)
    config : FeatureConfig

    Returns
    -------
    np.ndarray, float32, shape ``config.input_shape`` or ``(batch, *config.input_shape)``

    Raises
    ------
    KwsError
        If the last axis is not ``config.window_samples`` long.
    """
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim not in (1, 2) or x.shape[-1] != config.window_samples:
        raise KwsError(f"audio of shape {x.shape}: expected (window_samples,) or "
                       f"(batch, window_samples) with window_samples={config.window_samples}")
    if config.kind == "waveform":
        return x[..., None].copy()
    return magnitude_to_features(stft_magnitude(x, n_fft=config.n_fft, hop_samples=config.hop), config)


def magnitude_to_features(spec: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The second half of :func:`compute_features`: mel bands, then log or PCEN, on a magnitude STFT.

    Training uses it to change the spectrum between the two halves (vocal-tract-length
    perturbation, :mod:`kws.train.augment`) and still share every other step with the runtime.

    Parameters
    ----------
    spec : np.ndarray, float32, shape (..., n_fft // 2 + 1, frames)
        What :func:`stft_magnitude` returns for ``config``.
    config : FeatureConfig
        A spectrogram config (``kind`` ``"stft"``).

    Returns
    -------
    np.ndarray, float32, shape (..., *config.input_shape)

    Raises
    ------
    KwsError
        If ``config`` is a waveform config or ``spec`` has the wrong number of bins.
    """
    if config.kind == "waveform":
        raise KwsError("a waveform feature config has no spectrum: expected kind 'stft'")
    spec = np.asarray(spec, dtype=np.float32)
    n_bins = config.n_fft // 2 + 1
    if spec.ndim < 2 or spec.shape[-2] != n_bins:
        raise KwsError(f"magnitude spectrogram of shape {spec.shape}: expected (..., {n_bins}, frames) "
                       f"for n_fft={config.n_fft}")
    if config.mel_bands:
        fb = mel_filterbank(sample_rate_hz=config.sample_rate_hz, n_fft=config.n_fft,
                            mel_bands=config.mel_bands, fmin_hz=config.fmin_hz,
                            fmax_hz=config.fmax_hz)
        spec = np.sqrt(np.matmul(fb, spec * spec))
    if config.pcen:
        spec = pcen(spec, smoothing=pcen_smoothing(time_constant_s=config.pcen_time_constant_s,
                                                   frame_rate_hz=config.frame_rate_hz),
                    gain=config.pcen_gain, bias=config.pcen_bias, power=config.pcen_power,
                    eps=config.pcen_eps)
    elif config.log:
        spec = np.log(spec + np.float32(config.log_floor))
    return spec[..., None].astype(np.float32, copy=False)


#: Float audio lies in [-1, 1]; clips may overshoot a little (resampling, gain), but a peak beyond
#: this is not float audio (int16 PCM stored as float, say) and is refused where clips are loaded.
FLOAT_PEAK_LIMIT = 2.0


def float_peak_error(key: str, dtype: Any, peak: float) -> str | None:
    """The message for float audio whose ``peak`` is beyond :data:`FLOAT_PEAK_LIMIT`, else None.

    Every loader of float clips (kws-eval's and kws-train's npz readers) says it in these words.
    """
    if peak <= FLOAT_PEAK_LIMIT:
        return None
    return (f"{key} is {np.dtype(dtype)} with samples up to {peak:g}; expected float audio in [-1, 1] "
            "(int16 PCM stored as float? divide it by 32768, or store it as int16)")


def pcm16_to_float(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM -> float32 in [-1, 1) (divide by 32768)."""
    return np.asarray(pcm, dtype=np.float32) / np.float32(32768.0)


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """float audio in [-1, 1] -> int16 PCM (``round(x * 32768)``, clipped to [-32768, 32767]): the
    inverse of :func:`pcm16_to_float`."""
    return np.clip(np.round(np.asarray(audio) * 32768.0), -32768, 32767).astype(np.int16)
