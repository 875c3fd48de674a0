"""Audio sources: WAV file, raw stdin PCM, and the microphone with a stand-in InputStream."""

from __future__ import annotations

import importlib.abc
import io
import sys

import numpy as np
import pytest

from kws.runtime.audio_io import to_mono, write_wav
from kws.runtime.errors import AudioError, KwsError
from kws.runtime.resample import resample
from kws.runtime.sources import (MicSource, StdinSource, WavSource, list_input_devices, open_source,
                                 parse_device)


# -----------------------------------------------------------------------------------------
# WAV
# -----------------------------------------------------------------------------------------
def test_wav_source_resamples_and_mixes_down(tmp_path):
    rng = np.random.default_rng(0)
    stereo = rng.uniform(-0.5, 0.5, (44100, 2)).astype(np.float32)
    write_wav(tmp_path / "a.wav", stereo, 44100)
    source = WavSource(tmp_path / "a.wav", target_rate_hz=8000, block_samples=1000)
    blocks = list(source)
    assert all(b.dtype == np.float32 for b in blocks)
    expected = resample(to_mono(np.round(stereo * 32767) / 32768), 44100, 8000)
    np.testing.assert_allclose(np.concatenate(blocks), expected, atol=1e-5)
    assert "44100 Hz, 2 ch" in source.description


def test_wav_source_realtime_paces_with_the_clock(tmp_path):
    write_wav(tmp_path / "a.wav", np.zeros(16000), 16000)
    now = [100.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    source = WavSource(tmp_path / "a.wav", block_samples=1600, realtime=True, clock=lambda: now[0],
                       sleep=sleep)
    out = np.concatenate(list(source))
    assert len(out) == 8000
    assert len(slept) == 10 and sum(slept) == pytest.approx(1.0)
    fast = WavSource(tmp_path / "a.wav", block_samples=1600, clock=lambda: now[0], sleep=sleep)
    list(fast)
    assert len(slept) == 10  # not paced


def test_wav_source_holds_one_block_not_the_file(tmp_path, monkeypatch):
    """A long recording is read block by block: its length comes from the header, and the frames
    come from reads of one block each."""
    import kws.runtime.audio_io as audio_io

    rng = np.random.default_rng(1)
    x = rng.uniform(-0.5, 0.5, 16000 * 30).astype(np.float32)
    write_wav(tmp_path / "a.wav", x, 16000)
    decoded = []
    real_decode = audio_io._decode
    monkeypatch.setattr(audio_io, "_decode", lambda path, raw, *a: decoded.append(len(raw)) or real_decode(path, raw, *a))
    source = WavSource(tmp_path / "a.wav", target_rate_hz=8000, block_samples=1600)
    assert source.duration_s == 30.0 and decoded == []      # the header only
    out = np.concatenate(list(source))
    assert max(decoded) == 1600 * 2 and sum(decoded) == len(x) * 2
    np.testing.assert_allclose(out, resample(np.round(x * 32767) / 32768, 16000, 8000), atol=1e-4)


def test_wav_source_bad_block_size(tmp_path):
    write_wav(tmp_path / "a.wav", np.zeros(10), 8000)
    with pytest.raises(KwsError, match="block of 0 samples"):
        WavSource(tmp_path / "a.wav", block_samples=0)


# -----------------------------------------------------------------------------------------
# stdin
# -----------------------------------------------------------------------------------------
class Trickle(io.RawIOBase):
    """A pipe that hands out a few bytes per read (odd sizes split samples)."""

    def __init__(self, data: bytes, sizes=(1, 3, 7, 1000, 2)):
        self.data, self.pos, self.sizes, self.i = data, 0, sizes, 0

    def readable(self):
        return True

    def read1(self, n):
        size = min(n, self.sizes[self.i % len(self.sizes)])
        self.i += 1
        chunk = self.data[self.pos:self.pos + size]
        self.pos += len(chunk)
        return chunk


def test_stdin_source_reads_s16le_in_odd_chunks():
    pcm = (np.random.default_rng(1).uniform(-0.5, 0.5, 5000) * 32767).astype("<i2")
    source = StdinSource(Trickle(pcm.tobytes()), input_rate_hz=8000, block_samples=500)
    out = np.concatenate(list(source))
    np.testing.assert_array_equal(out, pcm.astype(np.float32) / 32768)
    assert source.bytes_read == 10000


def test_stdin_source_resamples_and_ignores_a_stray_byte(caplog):
    pcm = (np.sin(np.arange(16000) / 10) * 10000).astype("<i2")
    source = StdinSource(io.BytesIO(pcm.tobytes() + b"\x01"), input_rate_hz=16000, target_rate_hz=8000)
    out = np.concatenate(list(source))
    np.testing.assert_allclose(out, resample(pcm / 32768, 16000, 8000), atol=1e-6)
    assert "half a sample" in caplog.text


def test_stdin_source_bad_rate():
    with pytest.raises(KwsError, match="--stdin-rate 0"):
        StdinSource(io.BytesIO(b""), input_rate_hz=0)


# -----------------------------------------------------------------------------------------
# Microphone with a stand-in for sounddevice.InputStream
# -----------------------------------------------------------------------------------------
class FakePortAudioError(Exception):
    pass


class FakeDevice:
    """A capture device: a signal at its rate, the settings it accepts, scripted faults.

    ``overflow_at`` / ``error_at``: read numbers (0-based, across reopenings) that report an
    overflow / raise FakePortAudioError. Samples keep flowing across reopenings.
    """

    def __init__(self, *, rates=(8000,), channels=(1,), default_rate=48000, max_input_channels=1,
                 overflow_at=(), error_at=(), always_fail=False, signal_rate=None):
        self.rates, self.channels = set(rates), set(channels)
        self.default_rate = default_rate
        self.max_input_channels = max_input_channels
        self.overflow_at, self.error_at, self.always_fail = set(overflow_at), set(error_at), always_fail
        self.opened: list[dict] = []
        self.reads = 0
        self.pos = 0
        self.closed = 0
        self.rate = signal_rate

    def pcm(self, start, n, rate):
        """What the device delivers: 16-bit samples."""
        t = (start + np.arange(n)) / rate
        return np.round(0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)

    def signal(self, start, n, rate):
        """The same, as the float32 the source turns it into."""
        return self.pcm(start, n, rate).astype(np.float32) / 32768

    def query(self, device=None, kind=None):
        if device not in (None, "fake mic", 1):
            raise ValueError(f"No input device matching {device!r}")
        return {"name": "fake mic", "index": 1, "max_input_channels": self.max_input_channels,
                "default_samplerate": float(self.default_rate)}

    def factory(self, *, device, samplerate, channels, dtype, blocksize):
        if samplerate not in self.rates or channels not in self.channels:
            raise FakePortAudioError(f"Invalid sample rate or channels [{samplerate}, {channels}]")
        assert dtype == "int16"
        self.opened.append({"device": device, "samplerate": samplerate, "channels": channels,
                            "blocksize": blocksize})
        return FakeStream(self, samplerate, channels)


class FakeStream:
    def __init__(self, dev: FakeDevice, rate, channels):
        self.dev, self.rate, self.channels = dev, rate, channels

    def start(self):
        pass

    def read(self, frames):
        dev = self.dev
        i = dev.reads
        dev.reads += 1
        if dev.always_fail or i in dev.error_at:
            raise FakePortAudioError("Unanticipated host error")
        x = dev.pcm(dev.pos, frames, self.rate)
        dev.pos += frames
        data = np.repeat(x[:, None], self.channels, axis=1)
        if self.channels == 2:
            data[:, 1] = 0  # the mono mix is then x / 2
        return data, i in dev.overflow_at

    def stop(self):
        pass

    def close(self):
        self.dev.closed += 1


def mic(dev: FakeDevice, slept=None, **kw):
    return MicSource(kw.pop("device", None), stream_factory=dev.factory, query_devices=dev.query,
                     retry_errors=(FakePortAudioError,),
                     sleep=(slept.append if slept is not None else lambda s: None), **kw)


def test_mic_at_8k_passes_samples_through():
    dev = FakeDevice(rates=(8000,))
    source = mic(dev, max_seconds=1.0, block_ms=100)
    out = np.concatenate(list(source))
    np.testing.assert_array_equal(out, dev.signal(0, 8000, 8000))
    assert dev.opened[0]["samplerate"] == 8000 and dev.opened[0]["blocksize"] == 800
    assert source.overflows == 0 and dev.closed == 1


def test_mic_falls_back_to_a_supported_rate_and_resamples():
    dev = FakeDevice(rates=(48000,), default_rate=44100)
    source = mic(dev, max_seconds=0.5)
    out = np.concatenate(list(source))
    assert source.rate_hz == 48000 and dev.opened[0]["samplerate"] == 48000
    np.testing.assert_allclose(out, resample(dev.signal(0, 24000, 48000), 48000, 8000), atol=1e-6)
    assert "48000 Hz" in source.description


def test_mic_tries_the_device_default_rate_before_the_fallbacks():
    dev = FakeDevice(rates=(44100, 48000), default_rate=44100)
    source = mic(dev, max_seconds=0.1)
    list(source)
    assert source.rate_hz == 44100


def test_mic_capture_rate_can_be_forced():
    dev = FakeDevice(rates=(8000, 16000))
    source = mic(dev, capture_rate_hz=16000, max_seconds=0.1)
    assert len(np.concatenate(list(source))) == 800
    assert source.rate_hz == 16000


def test_stereo_only_device_is_mixed_to_mono():
    dev = FakeDevice(rates=(8000,), channels=(2,), max_input_channels=2)
    out = np.concatenate(list(mic(dev, max_seconds=0.2)))
    np.testing.assert_allclose(out, dev.signal(0, 1600, 8000) / 2, atol=1e-7)


def test_overflows_are_counted_not_fatal(caplog):
    dev = FakeDevice(overflow_at={2, 5})
    source = mic(dev, max_seconds=1.0)
    out = np.concatenate(list(source))
    assert len(out) == 8000 and source.overflows == 2
    assert "input overflow" in caplog.text


def test_transient_error_is_retried_with_backoff():
    dev = FakeDevice(error_at={3, 6, 7})
    slept = []
    source = mic(dev, slept, max_seconds=1.0)
    out = np.concatenate(list(source))
    assert len(out) == 8000  # stream time counts the samples that arrived
    assert source.retries == 3
    assert slept == [0.5, 0.5, 1.0]  # the count of consecutive failures sets the delay
    assert len(dev.opened) == 4


def test_persistent_error_gives_up_with_one_line():
    dev = FakeDevice(always_fail=True)
    slept = []
    source = mic(dev, slept, max_retries=4, backoff_s=0.5, max_backoff_s=2.0)
    with pytest.raises(AudioError, match="failed 5 times in a row \\(Unanticipated host error\\); giving up"):
        list(source)
    assert slept == [0.5, 1.0, 2.0, 2.0]


def test_missing_device():
    dev = FakeDevice()
    with pytest.raises(AudioError) as info:
        mic(dev, device="USB Mic").open()
    assert str(info.value) == ("microphone 'USB Mic': no such audio input (No input device matching "
                               "'USB Mic'); see kws-listen --list-devices")
    assert info.value.exit_code == 1


def test_device_that_refuses_every_setting():
    dev = FakeDevice(rates=())
    with pytest.raises(AudioError, match="fake mic\\): cannot open for input \\(48000 Hz x1: Invalid "
                                         "sample rate.*more settings refused"):
        mic(dev).open()


def test_device_without_inputs():
    dev = FakeDevice(max_input_channels=0)
    with pytest.raises(AudioError, match="has no input channels"):
        mic(dev).open()


def test_list_devices():
    devices = [{"name": "HDMI out", "index": 0, "max_input_channels": 0, "default_samplerate": 48000.0},
               {"name": "USB PnP Sound Device", "index": 1, "max_input_channels": 1,
                "default_samplerate": 44100.0},
               {"name": "array mic", "index": 2, "max_input_channels": 4, "default_samplerate": 16000.0}]

    def query(device=None, kind=None):
        return devices[1] if kind == "input" else devices

    text = list_input_devices(query_devices=query)
    assert text.splitlines() == ["*  1  USB PnP Sound Device  (1 in, default 44100 Hz)",
                                 "   2  array mic  (4 in, default 16000 Hz)"]
    assert list_input_devices(query_devices=lambda device=None, kind=None: devices[:1]) == \
        "no audio input devices found"


def test_parse_device():
    assert parse_device("3") == 3
    assert parse_device(" USB ") == "USB"
    assert parse_device(None) is None
    with pytest.raises(KwsError, match="--device is empty"):
        parse_device("  ")


class _BlockSounddevice(importlib.abc.MetaPathFinder):
    def __init__(self, exc):
        self.exc = exc

    def find_spec(self, name, path=None, target=None):
        if name == "sounddevice":
            raise self.exc
        return None


@pytest.mark.parametrize("exc,match", [(OSError("PortAudio library not found"),
                                        "cannot load PortAudio .*apt install libportaudio2"),
                                       (ImportError("No module named 'sounddevice'"),
                                        "needs the sounddevice package")])
def test_missing_portaudio_or_sounddevice(monkeypatch, exc, match):
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_BlockSounddevice(exc), *sys.meta_path])
    with pytest.raises(AudioError, match=match):
        MicSource()


def test_open_source_picks_one(tmp_path):
    write_wav(tmp_path / "a.wav", np.zeros(100), 8000)
    assert isinstance(open_source(wav=tmp_path / "a.wav"), WavSource)
    assert isinstance(open_source(stdin=True), StdinSource)
    with pytest.raises(KwsError, match="--wav and --stdin both given"):
        open_source(wav=tmp_path / "a.wav", stdin=True)
