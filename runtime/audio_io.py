"""Reading and writing WAV files with numpy alone.

:func:`wav_info` parses the RIFF container itself (the stdlib :mod:`wave` reads neither IEEE
float nor every ``WAVE_FORMAT_EXTENSIBLE`` file), so that a Raspberry Pi needs nothing but
numpy. Supported encodings:

==========================  ============================================================
format tag                  sample formats
==========================  ============================================================
1 (PCM)                     8-bit unsigned, 16-, 24- and 32-bit signed little-endian
3 (IEEE float)              32- and 64-bit
0xFFFE (EXTENSIBLE)         either of the above, as named by its sub-format GUID
==========================  ============================================================

Any number of channels is read; :func:`to_mono` averages them. Everything else (A-law, mu-law,
ADPCM, big-endian RIFX, a truncated header, an empty data chunk) is refused with a one-line
:class:`~kws.runtime.errors.DataError` that names the file and what is wrong.

A data chunk whose declared size runs past the end of the file (what ``arecord`` leaves when
it is interrupted, or writes as 0xFFFFFFFF when streaming) is read up to the last whole frame.

:func:`iter_wav` reads the frames in blocks, holding one at a time, so an hours-long recording is
never in memory whole: :class:`~kws.runtime.sources.WavSource` (and through it ``kws-listen --wav``
and ``kws-eval-stream``) reads that way. :func:`read_wav` reads a whole file at once.
"""

from __future__ import annotations

import logging
import os
import struct
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from kws.runtime.errors import DataError

logger = logging.getLogger(__name__)

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_FORMAT_NAMES = {0x0002: "MS ADPCM", 0x0006: "A-law", 0x0007: "mu-law", 0x0011: "IMA ADPCM",
                 0x0055: "MPEG layer 3"}
_EXPECTED = "PCM 8/16/24/32-bit or IEEE float 32/64-bit"
#: The sample sizes read, per format tag (checked once, by wav_info, before any sample is decoded).
_SAMPLE_BITS = {WAVE_FORMAT_PCM: (8, 16, 24, 32), WAVE_FORMAT_IEEE_FLOAT: (32, 64)}


def _parse_fmt(path: Path, body: bytes) -> tuple[int, int, int, int, int]:
    """-> (format_tag, channels, sample_rate_hz, block_align, bits_per_sample)."""
    if len(body) < 16:
        raise DataError(f"{path}: corrupt WAV 'fmt ' chunk ({len(body)} bytes, expected >= 16)")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(body) < 40:
            raise DataError(f"{path}: corrupt WAVE_FORMAT_EXTENSIBLE header ({len(body)} bytes, "
                            "expected 40)")
        # cbSize(2) validBits(2) channelMask(4) SubFormat GUID(16): the format code is its first 2 bytes.
        tag = struct.unpack("<H", body[24:26])[0]
    return tag, channels, rate, block_align, bits


def _decode(path: Path, raw: bytes, tag: int, channels: int, bits: int) -> np.ndarray:
    """Raw little-endian frames -> float32 (n_frames, channels) in [-1, 1] (float: as stored)."""
    if tag == WAVE_FORMAT_PCM:
        if bits == 8:
            data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
        elif bits == 16:
            data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
        elif bits == 24:
            b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
            ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
            ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
            data = ints.astype(np.float32) / float(1 << 23)
        else:   # 32 (wav_info refuses every other size)
            data = (np.frombuffer(raw, dtype="<i4").astype(np.float64) / float(1 << 31)).astype(np.float32)
    elif tag == WAVE_FORMAT_IEEE_FLOAT:   # 32 or 64 bits (wav_info refuses every other size)
        data = np.frombuffer(raw, dtype="<f4" if bits == 32 else "<f8").astype(np.float32)
        if not np.all(np.isfinite(data)):
            raise DataError(f"{path}: float WAV contains NaN or infinite samples")
    else:  # pragma: no cover - wav_info checks the tag first
        raise DataError(f"{path}: unsupported WAV encoding (format tag 0x{tag:04X})")
    return data.reshape(-1, channels)


def check_wav_path(path: str | Path) -> Path:
    """Refuse a wav path that is a directory or does not exist (:class:`DataError`), before any
    work that reading it would waste (loading a model); returns it as a :class:`Path`."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory; expected a WAV file")
    if not path.is_file():
        raise DataError(f"{path}: WAV file not found")
    return path


@dataclass(frozen=True)
class WavInfo:
    """What a WAV file's header says, checked: enough to read its frames without holding them.

    ``n_frames`` counts whole frames actually in the file: a data chunk declared longer than the
    file (``arecord`` interrupted, or 0xFFFFFFFF while streaming) is clamped to it, and a
    trailing partial frame (``trailing_bytes``) is left out.
    """

    path: Path
    sample_rate_hz: int
    channels: int
    bits: int
    format_tag: int        # WAVE_FORMAT_PCM or WAVE_FORMAT_IEEE_FLOAT (an EXTENSIBLE file's sub-format)
    data_offset: int       # byte offset of the first frame
    n_frames: int
    trailing_bytes: int    # bytes of a partial last frame, ignored

    @property
    def frame_bytes(self) -> int:
        return self.channels * (self.bits // 8)

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.sample_rate_hz


def _open(path: Path):
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise DataError(f"{path}: WAV file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a WAV file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read WAV file ({exc.strerror})") from None


def wav_info(path: str | Path) -> WavInfo:
    """Parse and check a WAV file's header, reading only its chunk headers (not its samples).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    WavInfo

    Raises
    ------
    DataError
        Missing, unreadable, not a WAV, corrupt, an unsupported encoding, or no samples.
    """
    path = Path(path)
    with _open(path) as fh:
        try:
            file_bytes = os.fstat(fh.fileno()).st_size
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                what = "empty file" if not head else "no RIFF/WAVE header"
                raise DataError(f"{path}: not a WAV file ({what})")
            fmt = None
            data = None   # (offset, size clamped to the file)
            pos = 12
            while pos + 8 <= file_bytes:
                fh.seek(pos)
                header = fh.read(8)
                chunk_id, size = header[:4], struct.unpack("<I", header[4:8])[0]
                body_start = pos + 8
                if chunk_id == b"fmt ":
                    if body_start + size > file_bytes:
                        raise DataError(f"{path}: corrupt WAV (the 'fmt ' chunk runs past the end of the file)")
                    fmt = _parse_fmt(path, fh.read(size))
                elif chunk_id == b"data":
                    data = (body_start, max(0, min(size, file_bytes - body_start)))
                    if body_start + size >= file_bytes:
                        break
                pos = body_start + size + (size & 1)
        except OSError as exc:
            raise DataError(f"{path}: cannot read WAV file ({exc.strerror})") from None
    if fmt is None:
        raise DataError(f"{path}: corrupt WAV (no 'fmt ' chunk)")
    if data is None:
        raise DataError(f"{path}: corrupt WAV (no 'data' chunk)")
    tag, channels, rate, block_align, bits = fmt
    if tag not in (WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT):
        name = _FORMAT_NAMES.get(tag, "unknown")
        raise DataError(f"{path}: unsupported WAV encoding (format tag 0x{tag:04X}, {name}); "
                        f"expected {_EXPECTED}")
    if channels < 1 or rate < 1 or bits < 8 or bits % 8:
        raise DataError(f"{path}: corrupt WAV header (channels={channels}, sample rate={rate} Hz, "
                        f"bits={bits})")
    if bits not in _SAMPLE_BITS[tag]:
        kind = "PCM" if tag == WAVE_FORMAT_PCM else "float"
        raise DataError(f"{path}: unsupported {kind} sample size {bits} bits; expected {_EXPECTED}")
    frame_bytes = channels * (bits // 8)
    if block_align not in (0, frame_bytes):
        raise DataError(f"{path}: corrupt WAV header (block align {block_align}, expected "
                        f"{frame_bytes} for {channels} x {bits}-bit)")
    offset, size = data
    n_frames = size // frame_bytes
    if n_frames == 0:
        raise DataError(f"{path}: WAV file contains no audio samples")
    return WavInfo(path=path, sample_rate_hz=int(rate), channels=int(channels), bits=int(bits), format_tag=tag,
                   data_offset=offset, n_frames=n_frames, trailing_bytes=size - n_frames * frame_bytes)


def iter_wav(info: WavInfo | str | Path, *, block_frames: int = 8192) -> Iterator[np.ndarray]:
    """Read a WAV file's frames in blocks, holding one block at a time.

    Parameters
    ----------
    info : WavInfo (from :func:`wav_info`), or a path
    block_frames : int
        Frames per block (the last block may be shorter).

    Yields
    ------
    np.ndarray, float32, shape (n, channels)
        Integer PCM scaled to [-1, 1) (16-bit: ``x / 32768``); float files as stored.

    Raises
    ------
    DataError
        As :func:`wav_info`; also a float block with NaN or infinite samples, or a file that has
        shrunk since its header was read.
    """
    if not isinstance(info, WavInfo):
        info = wav_info(info)
    if block_frames < 1:
        raise DataError(f"block of {block_frames} frames: expected a positive integer")
    if info.trailing_bytes:
        logger.warning("%s: data chunk ends in a partial frame; ignoring its last %d bytes", info.path,
                       info.trailing_bytes)
    with _open(info.path) as fh:
        fh.seek(info.data_offset)
        left = info.n_frames
        while left > 0:
            n = min(block_frames, left)
            try:
                raw = fh.read(n * info.frame_bytes)
            except OSError as exc:
                raise DataError(f"{info.path}: cannot read WAV file ({exc.strerror})") from None
            if len(raw) < n * info.frame_bytes:
                raise DataError(f"{info.path}: the file ended {left - len(raw) // info.frame_bytes} frames early "
                                "(was it changed while being read?)")
            yield _decode(info.path, raw, info.format_tag, info.channels, info.bits)
            left -= n


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a whole WAV file (:func:`iter_wav` reads one in blocks).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    audio : np.ndarray, float32, shape (n_samples, n_channels)
        Integer PCM scaled to [-1, 1) (16-bit: ``x / 32768``); float files as stored.
    sample_rate_hz : int

    Raises
    ------
    DataError
        Missing, unreadable, not a WAV, corrupt, an unsupported encoding, or no samples.
    """
    info = wav_info(path)
    blocks = list(iter_wav(info, block_frames=info.n_frames))
    return blocks[0], info.sample_rate_hz


def write_wav(path: str | Path, audio: np.ndarray, sample_rate_hz: int) -> Path:
    """Write float audio as a 16-bit PCM WAV.

    Parameters
    ----------
    path : str or Path
    audio : np.ndarray, float, shape (n,) or (n, channels), nominally in [-1, 1]
        Clipped to [-1, 1] and stored as ``round(x * 32767)``.
    sample_rate_hz : int

    Returns
    -------
    Path
    """
    path = Path(path)
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or audio.shape[1] < 1:
        raise DataError(f"write_wav: audio of shape {audio.shape}; expected (n,) or (n, channels)")
    if int(sample_rate_hz) <= 0:
        raise DataError(f"write_wav: sample_rate_hz={sample_rate_hz}; expected a positive integer")
    pcm = np.round(np.clip(audio.astype(np.float64), -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(pcm.shape[1])
        fh.setsampwidth(2)
        fh.setframerate(int(sample_rate_hz))
        fh.writeframes(pcm.tobytes())
    return path


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average the channels.

    Parameters
    ----------
    audio : np.ndarray, shape (n,) or (n, channels)

    Returns
    -------
    np.ndarray, float32, shape (n,)
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        return audio
    if audio.ndim != 2:
        raise DataError(f"audio of shape {audio.shape}; expected (n,) or (n, channels)")
    if audio.shape[1] == 1:
        return audio[:, 0].copy()
    return audio.mean(axis=1, dtype=np.float32)
