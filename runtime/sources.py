"""Audio sources for the streaming pipeline: a microphone, a WAV file, raw PCM on stdin.

Every source is an iterable of float32 mono blocks at the model's rate (``target_rate_hz``,
8 kHz for the seed models), of whatever size the source delivers. Sources resample with
:class:`~kws.runtime.resample.StreamingResampler`, so a 48 kHz microphone, a 44.1 kHz stereo
file and ``arecord -r 8000`` all reach the pipeline the same way.

Only :class:`MicSource` needs ``sounddevice`` (and through it PortAudio); it is imported inside
the class, so this module imports on a machine without PortAudio.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import numpy as np

from kws.runtime.audio_io import iter_wav, to_mono, wav_info
from kws.runtime.errors import AudioError, KwsError
from kws.runtime.resample import StreamingResampler

logger = logging.getLogger(__name__)

#: Sample format asked of PortAudio: 16-bit, what nearly every USB microphone delivers natively,
#: so no conversion happens below us (ALSA's float conversion path also misbehaves with some
#: plugins, e.g. the ``file`` plugin drops periods). Converted to float32 here (``x / 32768``).
CAPTURE_DTYPE = "int16"

#: Capture rates tried, in order, after the model's own rate and the device's default.
FALLBACK_CAPTURE_RATES_HZ = (48000, 44100, 16000, 32000, 22050, 96000)


class AudioSource:
    """Base: iterate to get float32 mono blocks at ``target_rate_hz``; ``close()`` when done."""

    target_rate_hz: int
    overflows: int = 0
    description: str = "audio"

    def blocks(self) -> Iterator[np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.blocks()

    def close(self) -> None:
        pass

    def __enter__(self) -> "AudioSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Pacer:
    """Sleeps so that audio is delivered no faster than real time."""

    def __init__(self, rate_hz: int, *, clock: Callable[[], float], sleep: Callable[[float], None]):
        self.rate_hz, self.clock, self.sleep = rate_hz, clock, sleep
        self.t0: float | None = None

    def wait_until(self, n_samples: int) -> None:
        if self.t0 is None:
            self.t0 = self.clock()
        delay = self.t0 + n_samples / self.rate_hz - self.clock()
        if delay > 0:
            self.sleep(delay)


# -----------------------------------------------------------------------------------------
# WAV file
# -----------------------------------------------------------------------------------------
class WavSource(AudioSource):
    """A WAV file (any rate, any channel count) streamed in blocks.

    Parameters
    ----------
    path : a WAV file (see :mod:`kws.runtime.audio_io` for the encodings), read block by block:
        only its header is read here, and only one block is held at a time.
    target_rate_hz : int
        Rate of the blocks produced (the model's).
    block_samples : int
        File samples (frames, at the file's own rate) per block read.
    realtime : bool
        Deliver the blocks at real time (as a microphone would) instead of as fast as possible.
    clock, sleep : injectable for tests (default ``time.monotonic`` and ``time.sleep``).
    """

    def __init__(self, path: str | Path, *, target_rate_hz: int = 8000, block_samples: int = 1024,
                 realtime: bool = False, clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        if block_samples < 1:
            raise KwsError(f"block of {block_samples} samples: expected a positive integer")
        self.path = Path(path)
        self.info = wav_info(self.path)   # the header only: the frames are read block by block
        self.file_rate_hz = self.info.sample_rate_hz
        self.channels = self.info.channels
        self.target_rate_hz = int(target_rate_hz)
        self.block_samples = int(block_samples)
        self.realtime = realtime
        self._clock, self._sleep = clock, sleep
        self.duration_s = self.info.duration_s
        self.description = (f"{self.path} ({self.file_rate_hz} Hz, {self.channels} ch, "
                            f"{self.duration_s:.2f} s)")

    def blocks(self) -> Iterator[np.ndarray]:
        resampler = StreamingResampler(self.file_rate_hz, self.target_rate_hz)
        pacer = _Pacer(self.file_rate_hz, clock=self._clock or time.monotonic,
                       sleep=self._sleep or time.sleep)
        end = 0
        for frames in iter_wav(self.info, block_frames=self.block_samples):
            end += len(frames)
            if self.realtime:
                pacer.wait_until(end)
            out = resampler.process(to_mono(frames))
            if len(out):
                yield out
        tail = resampler.flush()
        if len(tail):
            yield tail


# -----------------------------------------------------------------------------------------
# Raw 16-bit PCM on stdin
# -----------------------------------------------------------------------------------------
class StdinSource(AudioSource):
    """Raw signed 16-bit little-endian mono PCM from a byte stream (``arecord -f S16_LE``).

    Parameters
    ----------
    stream : binary file object (default ``sys.stdin.buffer``); read until EOF.
    input_rate_hz : int
        Rate of the PCM (``--stdin-rate``, default 8000).
    target_rate_hz : int
    block_samples : int
        Samples per read.
    """

    def __init__(self, stream: BinaryIO | None = None, *, input_rate_hz: int = 8000,
                 target_rate_hz: int = 8000, block_samples: int = 1024) -> None:
        if int(input_rate_hz) != input_rate_hz or input_rate_hz < 1:
            raise KwsError(f"--stdin-rate {input_rate_hz!r}: expected a positive integer (Hz)")
        if block_samples < 1:
            raise KwsError(f"block of {block_samples} samples: expected a positive integer")
        self.stream = stream if stream is not None else sys.stdin.buffer
        self.input_rate_hz = int(input_rate_hz)
        self.target_rate_hz = int(target_rate_hz)
        self.block_samples = int(block_samples)
        self.description = f"stdin (raw S16_LE mono, {self.input_rate_hz} Hz)"
        self.bytes_read = 0

    def _read(self, n: int) -> bytes:
        read1 = getattr(self.stream, "read1", None)
        try:
            return read1(n) if read1 is not None else self.stream.read(n)
        except OSError as exc:
            raise AudioError(f"cannot read raw PCM from stdin ({exc})") from None

    def blocks(self) -> Iterator[np.ndarray]:
        resampler = StreamingResampler(self.input_rate_hz, self.target_rate_hz)
        carry = b""
        while True:
            chunk = self._read(2 * self.block_samples)
            if not chunk:
                break
            self.bytes_read += len(chunk)
            data = carry + chunk
            usable = len(data) - (len(data) % 2)
            carry = data[usable:]
            if not usable:
                continue
            pcm = np.frombuffer(data[:usable], dtype="<i2")
            out = resampler.process(pcm.astype(np.float32) / 32768.0)
            if len(out):
                yield out
        if carry:
            logger.warning("stdin ended with half a sample (%d stray byte); ignored", len(carry))
        tail = resampler.flush()
        if len(tail):
            yield tail


# -----------------------------------------------------------------------------------------
# Microphone (sounddevice / PortAudio)
# -----------------------------------------------------------------------------------------
def _import_sounddevice():
    try:
        import sounddevice
    except OSError as exc:  # the module is there, the PortAudio library is not
        raise AudioError(f"sounddevice cannot load PortAudio ({exc}); install it "
                         "(Debian/Raspberry Pi OS: sudo apt install libportaudio2)") from None
    except ImportError:
        raise AudioError("the microphone needs the sounddevice package: pip install sounddevice") from None
    return sounddevice


def parse_device(device: str | int | None) -> str | int | None:
    """``--device`` value: an integer index (``"3"``) or a (sub)string of the device name."""
    if device is None or isinstance(device, int):
        return device
    text = str(device).strip()
    if not text:
        raise KwsError("--device is empty; give a device index or (part of) its name")
    return int(text) if text.lstrip("-").isdigit() else text


def list_input_devices(*, query_devices: Callable[..., Any] | None = None) -> str:
    """One line per input device: index, name, input channels, default rate; ``*`` = default."""
    if query_devices is None:
        query_devices = _import_sounddevice().query_devices
    try:
        devices = list(query_devices())
    except Exception as exc:  # PortAudioError and friends
        raise AudioError(f"cannot list audio devices ({exc})") from None
    try:
        default_in = query_devices(kind="input")["index"]
    except Exception:
        default_in = None
    lines = []
    for i, dev in enumerate(devices):
        if dev.get("max_input_channels", 0) < 1:
            continue
        index = dev.get("index", i)
        mark = "*" if index == default_in else " "
        lines.append(f"{mark}{index:3d}  {dev['name']}  ({dev['max_input_channels']} in, "
                     f"default {dev.get('default_samplerate', 0):.0f} Hz)")
    if not lines:
        return "no audio input devices found"
    return "\n".join(lines)


class MicSource(AudioSource):
    """A microphone through ``sounddevice.InputStream`` (blocking reads), resampled.

    Samples are captured as 16-bit integers (:data:`CAPTURE_DTYPE`). The capture rate is
    ``capture_rate_hz`` if given; else the first of the device's default rate, the model's rate
    and :data:`FALLBACK_CAPTURE_RATES_HZ` that the device opens with. Many USB microphones on a
    Pi do not offer 8 kHz, and ALSA's ``plug``/``default`` devices that accept 8 kHz anyway
    convert with a linear interpolator that aliases; capturing at the device's own rate and
    resampling here with the polyphase filter avoids both. The audio is mixed to mono and
    resampled to ``target_rate_hz``.

    Overflows (PortAudio dropped input because the reader fell behind) are counted in
    :attr:`overflows` and logged; they are not fatal. A read that fails (the device went away
    for a moment, an ALSA xrun that PortAudio reports as an error) closes the stream and opens
    it again after a back-off (``backoff_s``, doubling up to ``max_backoff_s``); only
    ``max_retries`` consecutive failures end the stream with :class:`AudioError`.

    Parameters
    ----------
    device : int, str or None
        PortAudio device index, or a substring of its name (None: the default input).
    target_rate_hz : int
    capture_rate_hz : int or None
    block_ms : float
        Milliseconds of audio per read.
    max_seconds : float or None
        Stop after this much captured audio (None: until closed or interrupted).
    stream_factory : callable or None
        Makes the stream: called like ``sounddevice.InputStream(device=, samplerate=,
        channels=, dtype='int16', blocksize=)``; returns an object with ``start()``,
        ``read(frames) -> (array (frames, channels), overflowed)``, ``stop()``, ``close()``.
        Tests pass a stand-in. Default: ``sounddevice.InputStream``.
    query_devices : callable or None
        Like ``sounddevice.query_devices`` (for the default rate and channel count).
    retry_errors : tuple of exception types
        Errors of ``read`` that are retried (default: ``sounddevice.PortAudioError`` and OSError).
    sleep : injectable ``time.sleep``.
    """

    def __init__(self, device: str | int | None = None, *, target_rate_hz: int = 8000,
                 capture_rate_hz: int | None = None, block_ms: float = 100.0,
                 max_seconds: float | None = None,
                 stream_factory: Callable[..., Any] | None = None,
                 query_devices: Callable[..., Any] | None = None,
                 retry_errors: tuple[type[BaseException], ...] | None = None,
                 max_retries: int = 5, backoff_s: float = 0.5, max_backoff_s: float = 8.0,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.device = parse_device(device)
        self.target_rate_hz = int(target_rate_hz)
        if capture_rate_hz is not None and (int(capture_rate_hz) != capture_rate_hz or capture_rate_hz < 1):
            raise KwsError(f"capture rate {capture_rate_hz!r} Hz: expected a positive integer")
        self.capture_rate_hz = capture_rate_hz
        if not block_ms > 0:
            raise KwsError(f"block of {block_ms} ms: expected a positive number")
        self.block_ms = float(block_ms)
        self.max_seconds = max_seconds
        if stream_factory is None or query_devices is None or retry_errors is None:
            sd = _import_sounddevice()
            stream_factory = stream_factory or sd.InputStream
            query_devices = query_devices or sd.query_devices
            retry_errors = retry_errors or (sd.PortAudioError, OSError)
        self._factory = stream_factory
        self._query = query_devices
        self._retry_errors = retry_errors
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self._sleep = sleep
        self.overflows = 0
        self.retries = 0           # reopenings after a transient error, in total
        self.samples_captured = 0  # at the capture rate
        self.channels = 1
        self.rate_hz: int | None = None
        self._stream = None
        self._frames = 0
        self._resampler: StreamingResampler | None = None
        self._closed = False
        self.description = f"microphone {self.device!r}" if self.device is not None else "default microphone"

    # -- opening -----------------------------------------------------------------------------
    def _device_info(self) -> dict:
        try:
            info = self._query(self.device, "input") if self.device is not None else self._query(kind="input")
            return dict(info)
        except Exception as exc:  # no such device, no devices at all, PortAudio broken
            raise AudioError(f"{self._name()}: no such audio input ({_one_line(exc)}); "
                             "see kws-listen --list-devices") from None

    def _name(self) -> str:
        return f"microphone {self.device!r}" if self.device is not None else "default microphone"

    def _candidates(self, info: dict) -> list[tuple[int, int]]:
        if self.capture_rate_hz is not None:
            rates = [int(self.capture_rate_hz)]
        else:
            default = info.get("default_samplerate")
            rates = [int(round(float(default)))] if default else []
            rates.append(self.target_rate_hz)
            rates.extend(FALLBACK_CAPTURE_RATES_HZ)
        rates = list(dict.fromkeys(rates))
        max_in = int(info.get("max_input_channels", 1) or 1)
        channel_options = [1] if max_in <= 1 else [1, min(max_in, 2)]
        return [(r, c) for r in rates for c in channel_options]

    def open(self) -> None:
        """Open and start the stream at the first rate/channel count the device accepts."""
        info = self._device_info()
        if int(info.get("max_input_channels", 1) or 0) < 1:
            raise AudioError(f"{self._name()} ({info.get('name', '?')}) has no input channels; "
                             "see kws-listen --list-devices")
        errors = []
        for rate, channels in self._candidates(info):
            frames = max(1, int(round(rate * self.block_ms / 1000.0)))
            try:
                stream = self._factory(device=self.device, samplerate=rate, channels=channels,
                                       dtype=CAPTURE_DTYPE, blocksize=frames)
                stream.start()
            except Exception as exc:  # PortAudioError, ValueError: this setting is refused
                errors.append(f"{rate} Hz x{channels}: {_one_line(exc)}")
                continue
            self._stream, self.rate_hz, self.channels, self._frames = stream, rate, channels, frames
            if self._resampler is None or self._resampler.from_hz != rate:
                self._resampler = StreamingResampler(rate, self.target_rate_hz)
            name = info.get("name", self.device)
            self.description = f"microphone {name!r} ({rate} Hz, {channels} ch)"
            logger.info("capturing from %s, resampled to %d Hz", self.description, self.target_rate_hz)
            return
        raise AudioError(f"{self._name()} ({info.get('name', '?')}): cannot open for input ("
                         f"{errors[0] if errors else 'no settings to try'}"
                         f"{f'; {len(errors) - 1} more settings refused' if len(errors) > 1 else ''})")

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        for method in ("stop", "close"):
            try:
                getattr(stream, method)()
            except Exception as exc:  # a broken stream may refuse to stop; it is gone anyway
                logger.debug("%s.%s failed: %s", type(stream).__name__, method, exc)

    def close(self) -> None:
        self._closed = True
        self._close_stream()

    # -- reading -----------------------------------------------------------------------------
    def _reopen_after(self, exc: BaseException, failures: int) -> None:
        if failures > self.max_retries:
            raise AudioError(f"{self.description}: audio input failed {failures} times in a row "
                             f"({_one_line(exc)}); giving up") from None
        delay = min(self.backoff_s * 2 ** (failures - 1), self.max_backoff_s)
        logger.warning("audio input error (%s); retrying in %.1f s (%d/%d)", _one_line(exc), delay,
                       failures, self.max_retries)
        self._close_stream()
        (self._sleep or time.sleep)(delay)
        self.retries += 1
        try:
            self.open()
        except AudioError as open_exc:
            logger.warning("reopening failed: %s", open_exc)

    def blocks(self) -> Iterator[np.ndarray]:
        if self._stream is None:
            self.open()
        failures = 0
        limit = None
        while not self._closed:
            if self._stream is None:  # a reopen failed: count it and try again
                failures += 1
                self._reopen_after(AudioError("device unavailable"), failures)
                continue
            if limit is None and self.max_seconds is not None:
                limit = int(round(self.max_seconds * self.rate_hz))
            frames = self._frames
            if limit is not None:
                frames = min(frames, limit - self.samples_captured)
                if frames <= 0:
                    break
            try:
                data, overflowed = self._stream.read(frames)
            except self._retry_errors as exc:
                failures += 1
                self._reopen_after(exc, failures)
                continue
            failures = 0
            if overflowed:
                self.overflows += 1
                logger.warning("input overflow: audio was dropped (%d so far)", self.overflows)
            data = np.asarray(data)
            if data.dtype.kind in "iu":
                data = data.astype(np.float32) / np.float32(-np.iinfo(data.dtype).min)
            else:
                data = data.astype(np.float32, copy=False)
            self.samples_captured += len(data)
            mono = data.mean(axis=1) if data.ndim == 2 and data.shape[1] > 1 else data.reshape(-1)
            out = self._resampler.process(mono)
            if len(out):
                yield out
        self._close_stream()
        if self._resampler is not None:
            tail = self._resampler.flush()
            if len(tail):
                yield tail


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_source(*, wav: str | Path | None = None, stdin: bool = False, device: str | int | None = None,
                target_rate_hz: int = 8000, realtime: bool = False, stdin_rate_hz: int = 8000,
                max_seconds: float | None = None, **mic_kwargs: Any) -> AudioSource:
    """The source kws-listen's flags name: ``--wav``, ``--stdin`` or the microphone."""
    if wav is not None and stdin:
        raise KwsError("--wav and --stdin both given; choose one source")
    if wav is not None:
        return WavSource(wav, target_rate_hz=target_rate_hz, realtime=realtime)
    if stdin:
        return StdinSource(input_rate_hz=stdin_rate_hz, target_rate_hz=target_rate_hz)
    return MicSource(device, target_rate_hz=target_rate_hz, max_seconds=max_seconds, **mic_kwargs)


__all__ = ["AudioSource", "WavSource", "StdinSource", "MicSource", "list_input_devices",
           "parse_device", "open_source", "FALLBACK_CAPTURE_RATES_HZ"]
