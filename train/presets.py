"""Front-end presets of ``kws-train --features``: a name to a :class:`FeatureConfig` and back.

Keras-free, so that ``kws-train``'s parser and argument checks run without importing TensorFlow.
"""

from __future__ import annotations

from kws.runtime.errors import KwsError
from kws.runtime.features import FeatureConfig

#: Front-end presets for ``kws-train --features``.
PRESETS = ("seed-stft", "waveform", "log-mel", "pcen-mel")
DEFAULT_MEL_BANDS = 40


def feature_config(preset: str, *, mel_bands: int | None = None, log: bool | None = None,
                   sample_rate_hz: int = 8000, window_samples: int = 8000) -> FeatureConfig:
    """The :class:`FeatureConfig` of a preset.

    Parameters
    ----------
    preset : {"seed-stft", "waveform", "log-mel", "pcen-mel"}
        ``seed-stft``: the seed's ``|librosa.stft(n_fft=258)|``, 130 bins x 126 frames, linear
        magnitude unless ``log``. ``waveform``: the raw window, (8000, 1). ``log-mel``: ``mel_bands``
        (default 40) Slaney mel bands x 126 frames, log unless ``log=False``. ``pcen-mel``: the
        same bands with per-channel energy normalisation instead of the log
        (:func:`kws.runtime.features.pcen`, librosa's default settings).
    mel_bands : int, optional
        Only for ``log-mel`` and ``pcen-mel``.
    log : bool, optional
        Override the preset's log compression (not for ``waveform`` or ``pcen-mel``).

    Raises
    ------
    KwsError
        Unknown preset, or an option that does not apply to it.
    """
    if preset not in PRESETS:
        raise KwsError(f"unknown --features {preset!r}; expected one of: {', '.join(PRESETS)}")
    common = {"sample_rate_hz": sample_rate_hz, "window_samples": window_samples}
    if preset == "waveform":
        if log:
            raise KwsError("--log does not apply to --features waveform")
        if mel_bands:
            raise KwsError("--mel-bands applies to --features log-mel and pcen-mel only, not waveform")
        return FeatureConfig(kind="waveform", **common)
    if preset == "seed-stft":
        if mel_bands:
            raise KwsError("--mel-bands applies to --features log-mel and pcen-mel only, not seed-stft")
        return FeatureConfig(kind="stft", log=bool(log), **common)
    bands = DEFAULT_MEL_BANDS if mel_bands is None else mel_bands
    if not isinstance(bands, int) or bands < 4 or bands > 129:
        raise KwsError(f"--mel-bands {bands!r}: expected an integer from 4 to 129 (n_fft=258 has 130 bins)")
    if preset == "pcen-mel":
        if log:
            raise KwsError("--log does not apply to --features pcen-mel (PCEN replaces the log)")
        return FeatureConfig(kind="stft", mel_bands=bands, pcen=True, **common)
    return FeatureConfig(kind="stft", mel_bands=bands, log=True if log is None else bool(log), **common)


def preset_of(cfg: FeatureConfig) -> str:
    """The preset name a :class:`FeatureConfig` corresponds to (for logs and JSON)."""
    if cfg.kind == "waveform":
        return "waveform"
    if cfg.pcen:
        return "pcen-mel" if cfg.mel_bands else "pcen-stft"
    return "log-mel" if cfg.mel_bands else "seed-stft"
