"""The text-to-speech engines (kws.train.tts): voice detection, speaking a word, trimming it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from kws.train import tts

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


# -- detection --------------------------------------------------------------------------------
@needs_espeak
def test_detect_espeak_voices_and_variants(espeak_voices):
    speakers = [v.speaker for v in espeak_voices]
    assert all(s.startswith("espeak-ng:en") and s.count(":") == 2 for s in speakers)
    assert len(set(speakers)) == len(speakers)
    assert "espeak-ng:en-us:default" in speakers
    assert any(v.variant == "m3" for v in espeak_voices)  # variants are combined with voices
    assert len({v.voice for v in espeak_voices}) >= 2
    text = tts.describe_voices(espeak_voices)
    assert "espeak-ng:" in text and "English voices" in text


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed")
def test_detect_flite_skips_clock_voice():
    voices = tts.detect_voices(engines=["flite"])
    names = {v.voice for v in voices}
    assert names and "awb_time" not in names and "kal16" not in names
    assert all(v.engine == "flite" for v in voices)


# -- signal helpers ---------------------------------------------------------------------------
def test_trim_word_cuts_silence():
    rng = np.random.default_rng(0)
    word = np.sin(2 * np.pi * 440 * np.arange(2000) / 8000).astype(np.float32)
    audio = np.concatenate([1e-4 * rng.normal(size=3000), word, 1e-4 * rng.normal(size=3000)]).astype(np.float32)
    trimmed = tts.trim_word(audio)
    assert 2000 <= len(trimmed) <= 2000 + 2 * 160 + 2 * 80


# -- speech -----------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["espeak-ng", "flite", "festival"])
def test_each_installed_engine_speaks_at_8k(engine):
    voices = tts.detect_voices(engines=[engine], probe=False)
    if not voices:
        pytest.skip(f"{engine} not installed")
    audio = tts.trim_word(tts.speak(voices[0], "seven"))
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 0.15 * 8000 < len(audio) < 1.5 * 8000, len(audio)  # a word at 8 kHz, not 16 or 22 kHz
    assert np.abs(audio).max() > 0.05
