"""Shared fixtures. Tests never need a network, a microphone or a GPU."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The developers' real set; tests that need it are marked slow and skip without it.
SHARED_NPZ = Path(os.environ.get("KWS_SHARED_NPZ", REPO.parent / "shared" / "data" / "kws_real_dev_8k.npz"))


@pytest.fixture(scope="session")
def synth_npz(tmp_path_factory) -> Path:
    """A small generated npz (12 labels x 24 clips, 10 speakers), float32 clips."""
    from kws.train.synth import write_synthetic_npz

    return write_synthetic_npz(tmp_path_factory.mktemp("synth") / "synth.npz", clips_per_label=24,
                               n_speakers=10, seed=0)


@pytest.fixture(scope="session")
def shared_npz() -> Path:
    if not SHARED_NPZ.is_file():
        pytest.skip(f"real data not found at {SHARED_NPZ}")
    return SHARED_NPZ


@pytest.fixture(scope="session")
def espeak_voices() -> list:
    """The espeak-ng voices found (``kws.train.tts.Voice``); skips where espeak-ng is not installed."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    from kws.train.tts import detect_voices

    voices = detect_voices(engines=["espeak-ng"])
    assert voices, "espeak-ng is on PATH but no English voice was found"
    return voices
