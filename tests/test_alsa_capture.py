"""The real capture path without a sound card: PortAudio -> ALSA's ``file`` plugin.

An ``.asoundrc`` in a temporary HOME defines a capture PCM whose samples come from a raw
S16_LE file (``type file`` with ``infile``, over the ``null`` PCM, which paces it at real
time), behind a ``plug`` that fixes the file's format (S16_LE mono at the file's rate). A real ``sounddevice.InputStream`` then reads it, through
:class:`kws.runtime.sources.MicSource` and through ``kws-listen --device``.

PortAudio reads the ALSA configuration when it initialises, so every check runs in a child
process with that HOME. Skipped where libportaudio2 or ALSA's configuration is missing.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from fixtures_models import tiny_models  # noqa: F401 - fixture

SR = 8000
ASOUNDRC = """\
pcm.kwsfile {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{raw}"
    format "raw"
}}
pcm.kwsmic {{
    type plug
    slave {{
        pcm "kwsfile"
        format S16_LE
        rate {rate}
        channels 1
    }}
}}
"""


def _portaudio_available() -> str | None:
    if not Path("/usr/share/alsa/alsa.conf").is_file():
        return "ALSA configuration (/usr/share/alsa/alsa.conf) not installed"
    if ctypes.util.find_library("portaudio") is None:
        return "libportaudio2 not installed"
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"sounddevice unusable: {exc}"
    return None


pytestmark = pytest.mark.skipif(_portaudio_available() is not None,
                                reason=str(_portaudio_available()))


@pytest.fixture
def alsa_home(tmp_path):
    """make(audio, rate) -> env whose HOME/.asoundrc plays ``audio`` (float, at ``rate``) as kwsmic."""

    def make(audio: np.ndarray, rate: int = SR) -> dict:
        raw = tmp_path / "capture.raw"
        np.round(np.clip(audio, -1, 1) * 32767).astype("<i2").tofile(raw)
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        (home / ".asoundrc").write_text(ASOUNDRC.format(raw=raw, rate=rate))
        env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("ALSA_CONFIG_PATH", None)
        probe = subprocess.run([sys.executable, "-c", "import sounddevice as sd; "
                                "print([d['name'] for d in sd.query_devices()])"],
                               env=env, capture_output=True, text=True, timeout=60)
        if probe.returncode != 0 or "kwsmic" not in probe.stdout:
            pytest.skip(f"PortAudio does not see the ALSA file PCM: {probe.stdout} {probe.stderr[-300:]}")
        return env

    return make


def test_micsource_reads_the_file_through_a_real_input_stream(alsa_home):
    """Bit-exact: the S16 samples of the file arrive as x / 32768."""
    rng = np.random.default_rng(0)
    audio = (0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * SR) / SR)
             + rng.normal(0, 0.01, 3 * SR)).astype(np.float32)
    env = alsa_home(audio)
    code = textwrap.dedent("""
        import numpy as np, sys
        from kws.runtime.sources import MicSource
        src = MicSource("kwsmic", max_seconds=2.0, block_ms=100)
        out = np.concatenate(list(src))
        np.save(sys.argv[1], out)
        print(src.rate_hz, src.channels, src.overflows, src.description)
    """)
    out_path = Path(env["HOME"]) / "out.npy"
    proc = subprocess.run([sys.executable, "-c", code, str(out_path)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rate, channels, overflows, *_ = proc.stdout.split()
    assert (int(rate), int(channels)) == (8000, 1)
    got = np.load(out_path)
    expected = np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16) / 32768
    assert len(got) == 2 * SR
    np.testing.assert_allclose(got, expected[:len(got)], atol=1e-6)  # bit-exact S16 -> float


def _keyword_stream() -> np.ndarray:
    from kws.train.synth import synth_word

    rng = np.random.default_rng(5)
    x = rng.normal(0, 0.01, 6 * SR).astype(np.float32)
    for start_s, label in ((0.5, "yes"), (2.5, "go")):
        word = synth_word(label, rng, burst_ms=450.0) * np.float32(0.8)
        x[int(start_s * SR):int(start_s * SR) + len(word)] += word
    return x


@pytest.mark.parametrize("device_rate", [8000, 48000])
def test_kws_listen_on_a_real_capture_stream(tiny_models, alsa_home, device_rate):
    """A device at 8 kHz, and one at 48 kHz that our polyphase filter brings down to 8 kHz.

    (The plug PCM fixes the file's rate; ``--capture-rate`` asks for exactly that rate, so ALSA
    converts nothing: its file plugin drops periods when plug has to convert.)
    """
    from kws.runtime.resample import resample

    audio = _keyword_stream()
    env = alsa_home(resample(audio, SR, device_rate), device_rate)
    argv = [sys.executable, "-m", "kws.runtime.listen", "--model", str(tiny_models["int8"]),
            "--device", "kwsmic", "--max-seconds", "4.5", "--json", "--capture-rate", str(device_rate)]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    detections = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [d["label"] for d in detections] == ["yes", "go"], proc.stderr
    assert 0.9 <= detections[0]["time_s"] <= 2.25 and 2.9 <= detections[1]["time_s"] <= 4.25
    assert f"microphone 'kwsmic' ({device_rate} Hz, 1 ch)" in proc.stderr
    assert "windows scored, 2 detections" in proc.stderr
