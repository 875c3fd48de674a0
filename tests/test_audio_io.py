"""read_wav/write_wav: every supported encoding, against scipy.io.wavfile and sox, and every refusal."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tracemalloc

import numpy as np
import pytest
import scipy.io.wavfile

from kws.runtime.audio_io import iter_wav, read_wav, to_mono, wav_info, write_wav
from kws.runtime.errors import DataError


def wav_bytes(frames: bytes, *, tag=1, channels=1, rate=8000, bits=16, extensible=False,
              extra_chunks=(), data_size=None, block_align=None) -> bytes:
    """A hand-made RIFF/WAVE file."""
    align = channels * bits // 8 if block_align is None else block_align
    fmt = struct.pack("<HHIIHH", 0xFFFE if extensible else tag, channels, rate, rate * align, align, bits)
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt += struct.pack("<HHI", 22, bits, (1 << channels) - 1) + struct.pack("<H", tag) + guid_tail
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    for cid, body in extra_chunks:
        chunks += cid + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")
    size = len(frames) if data_size is None else data_size
    chunks += b"data" + struct.pack("<I", size) + frames
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


@pytest.fixture
def ramp():
    rng = np.random.default_rng(0)
    return np.clip(rng.normal(0, 0.3, (1000, 2)), -0.99, 0.99)


def test_pcm16_mono_and_stereo_match_scipy(tmp_path, ramp):
    for channels in (1, 2):
        pcm = np.round(ramp[:, :channels] * 32767).astype(np.int16)
        path = tmp_path / f"x{channels}.wav"
        scipy.io.wavfile.write(path, 16000, pcm if channels == 2 else pcm[:, 0])
        audio, rate = read_wav(path)
        assert rate == 16000 and audio.dtype == np.float32 and audio.shape == (1000, channels)
        np.testing.assert_array_equal(audio, pcm.astype(np.float32) / 32768)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32, np.float64])
def test_other_scipy_encodings(tmp_path, ramp, dtype):
    x = ramp[:, :1]
    if dtype == np.uint8:
        data, expected = np.round(x * 127 + 128).astype(np.uint8), (np.round(x * 127 + 128) - 128) / 128
    elif dtype == np.int32:
        data = np.round(x * 2**31 * 0.999).astype(np.int32)
        expected = data / 2**31
    else:
        data, expected = x.astype(dtype), x
    scipy.io.wavfile.write(tmp_path / "x.wav", 8000, data)
    audio, rate = read_wav(tmp_path / "x.wav")
    assert rate == 8000 and audio.shape == (1000, 1)
    np.testing.assert_allclose(audio, expected, atol=1e-6)


def test_pcm24_and_extensible(tmp_path):
    ints = np.array([0, 1, -1, 2**23 - 1, -2**23, 123456, -654321], dtype=np.int64)
    raw = b"".join(int(v & 0xFFFFFF).to_bytes(3, "little") for v in ints)
    for extensible in (False, True):
        path = tmp_path / f"x24_{extensible}.wav"
        path.write_bytes(wav_bytes(raw, bits=24, extensible=extensible))
        audio, _ = read_wav(path)
        np.testing.assert_array_equal(audio[:, 0], (ints / 2**23).astype(np.float32))
    # extensible IEEE float, stereo
    x = np.array([[0.5, -0.25], [0.1, 0.2]], dtype="<f4")
    (tmp_path / "f.wav").write_bytes(wav_bytes(x.tobytes(), tag=3, bits=32, channels=2, extensible=True))
    audio, _ = read_wav(tmp_path / "f.wav")
    np.testing.assert_array_equal(audio, x)


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox not installed")
@pytest.mark.parametrize("args", [["-b", "24"], ["-b", "32"], ["-b", "8"], ["-e", "floating-point", "-b", "32"],
                                  ["-b", "16", "-c", "3"]])
def test_files_written_by_sox(tmp_path, args):
    path = tmp_path / "sox.wav"
    subprocess.run(["sox", "-n", "-r", "22050", *args, str(path), "synth", "0.1", "sine", "440",
                    "vol", "0.5"], check=True, capture_output=True)
    audio, rate = read_wav(path)
    assert rate == 22050 and audio.shape[0] == 2205
    t = np.arange(2205) / 22050
    np.testing.assert_allclose(to_mono(audio), 0.5 * np.sin(2 * np.pi * 440 * t), atol=0.02)


def test_skips_other_chunks_and_padding(tmp_path):
    pcm = np.arange(-5, 6, dtype="<i2") * 1000
    path = tmp_path / "x.wav"
    path.write_bytes(wav_bytes(pcm.tobytes(), extra_chunks=[(b"LIST", b"abc"), (b"fact", b"\x01\x00\x00\x00")]))
    audio, _ = read_wav(path)
    np.testing.assert_array_equal(audio[:, 0], pcm / 32768)


def test_streamed_data_size_is_clamped_to_the_file(tmp_path):
    """arecord writes 0xFFFFFFFF (or a too-large size) when streaming or interrupted."""
    pcm = np.arange(100, dtype="<i2")
    for size in (0xFFFFFFFF, 1000):
        path = tmp_path / f"s{size}.wav"
        path.write_bytes(wav_bytes(pcm.tobytes() + b"\x07", data_size=size))  # + half a sample
        audio, _ = read_wav(path)
        np.testing.assert_array_equal(audio[:, 0], pcm / 32768)


def test_write_wav_round_trip(tmp_path):
    x = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0], dtype=np.float32)
    write_wav(tmp_path / "w.wav", x, 8000)
    rate, data = scipy.io.wavfile.read(tmp_path / "w.wav")
    assert rate == 8000 and data.dtype == np.int16
    np.testing.assert_array_equal(data, [0, 16384, -16384, 32767, -32767, 32767])
    stereo = np.stack([x, -x], axis=1)
    write_wav(tmp_path / "s.wav", stereo, 44100)
    audio, rate = read_wav(tmp_path / "s.wav")
    assert rate == 44100 and audio.shape == (6, 2)
    np.testing.assert_allclose(audio, np.clip(stereo, -1, 1), atol=1 / 16384)


def test_to_mono():
    assert to_mono(np.ones(5)).shape == (5,)
    np.testing.assert_array_equal(to_mono(np.array([[1.0, 0.0], [0.5, 0.5]])), [0.5, 0.5])
    np.testing.assert_array_equal(to_mono(np.array([[0.25], [0.5]])), [0.25, 0.5])


@pytest.mark.parametrize("content,match", [
    (b"", "not a WAV file \\(empty file\\)"),
    (b"hello world, this is text", "not a WAV file \\(no RIFF/WAVE header\\)"),
    (b"RIFF\x10\x00\x00\x00AVI LIST", "not a WAV file"),
    (b"RIFF\x04\x00\x00\x00WAVE", "corrupt WAV \\(no 'fmt ' chunk\\)"),
    (wav_bytes(b"")[:36], "corrupt WAV \\(no 'data' chunk\\)"),
    (wav_bytes(b""), "contains no audio samples"),
    (wav_bytes(b"\x00" * 10, tag=2, bits=4), "unsupported WAV encoding \\(format tag 0x0002, MS ADPCM\\)"),
    (wav_bytes(b"\x00" * 10, tag=7, bits=8), "mu-law"),
    (wav_bytes(b"\x00" * 10, tag=3, bits=16), "unsupported float sample size 16 bits"),
    (wav_bytes(b"\x00" * 10, bits=12, block_align=2), "corrupt WAV header"),
    (wav_bytes(b"\x00" * 8, channels=0), "corrupt WAV header \\(channels=0"),
    (wav_bytes(b"\x00" * 10, block_align=7), "block align 7"),
    (wav_bytes(np.array([np.nan], "<f4").tobytes(), tag=3, bits=32), "NaN"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00", "'fmt ' chunk runs past the end"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt \x04\x00\x00\x00\x01\x00\x01\x00data\x02\x00\x00\x00\x00\x00",
     "corrupt WAV 'fmt ' chunk \\(4 bytes"),
])
def test_refused_files_name_the_problem(tmp_path, content, match):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match) as info:
        read_wav(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_and_directory(tmp_path):
    with pytest.raises(DataError, match="WAV file not found"):
        read_wav(tmp_path / "nope.wav")
    with pytest.raises(DataError, match="is a directory"):
        read_wav(tmp_path)


def test_write_wav_bad_input(tmp_path):
    with pytest.raises(DataError, match="shape \\(2, 2, 2\\)"):
        write_wav(tmp_path / "x.wav", np.zeros((2, 2, 2)), 8000)
    with pytest.raises(DataError, match="sample_rate_hz=0"):
        write_wav(tmp_path / "x.wav", np.zeros(4), 0)


# -----------------------------------------------------------------------------------------
# Block by block: wav_info reads the header, iter_wav one block at a time
# -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype,channels", [(np.int16, 1), (np.int16, 3), (np.uint8, 2), (np.int32, 1),
                                            (np.float32, 2), (np.float64, 1)])
@pytest.mark.parametrize("block_frames", [1, 7, 256, 5000])
def test_blocks_join_to_the_whole_file(tmp_path, ramp, dtype, channels, block_frames):
    x = np.clip(np.tile(ramp, (1, 2))[:, :channels], -0.99, 0.99)
    data = (np.round(x * 127 + 128).astype(np.uint8) if dtype == np.uint8 else
            np.round(x * 32767).astype(np.int16) if dtype == np.int16 else
            np.round(x * 2**30).astype(np.int32) if dtype == np.int32 else x.astype(dtype))
    path = tmp_path / "x.wav"
    scipy.io.wavfile.write(path, 22050, data if channels > 1 else data[:, 0])
    whole, rate = read_wav(path)
    blocks = list(iter_wav(path, block_frames=block_frames))
    assert all(b.dtype == np.float32 and b.shape[1] == channels for b in blocks)
    assert [len(b) for b in blocks[:-1]] == [block_frames] * (len(blocks) - 1)
    np.testing.assert_array_equal(np.concatenate(blocks), whole)
    info = wav_info(path)
    assert (info.sample_rate_hz, info.channels, info.n_frames) == (rate, channels, 1000)
    assert info.duration_s == pytest.approx(1000 / 22050)


def test_info_of_a_streamed_recording_counts_whole_frames(tmp_path, caplog):
    pcm = np.arange(100, dtype="<i2")
    path = tmp_path / "s.wav"
    path.write_bytes(wav_bytes(pcm.tobytes() + b"\x07", data_size=0xFFFFFFFF))
    info = wav_info(path)
    assert info.n_frames == 100 and info.trailing_bytes == 1 and info.duration_s == 100 / 8000
    np.testing.assert_array_equal(np.concatenate(list(iter_wav(info, block_frames=30)))[:, 0], pcm / 32768)
    assert "partial frame" in caplog.text


def test_header_only_reads_no_samples(tmp_path):
    """Two hours at 48 kHz stereo (a sparse file of 1.4 GB): the header says so at once, and reading
    its first blocks holds only those blocks."""
    n_frames = 2 * 3600 * 48000
    path = tmp_path / "long.wav"
    path.write_bytes(wav_bytes(b"", rate=48000, channels=2, data_size=n_frames * 4))
    with path.open("r+b") as fh:
        fh.truncate(path.stat().st_size + n_frames * 4)
    tracemalloc.start()
    try:
        info = wav_info(path)
        blocks = iter_wav(info, block_frames=4800)
        first = [next(blocks) for _ in range(3)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    blocks.close()
    assert info.n_frames == n_frames and info.duration_s == 7200.0
    assert all(b.shape == (4800, 2) and not b.any() for b in first)
    assert peak < 5 * 2**20   # a block is 38 kB; the file's samples would be 5.5 GB as float32


def test_a_file_that_shrinks_while_read_is_refused(tmp_path):
    path = tmp_path / "x.wav"
    write_wav(path, np.zeros(1000), 8000)
    info = wav_info(path)
    with path.open("r+b") as fh:
        fh.truncate(info.data_offset + 500 * 2)
    with pytest.raises(DataError, match="ended 500 frames early") as err:
        list(iter_wav(info, block_frames=300))
    assert str(path) in str(err.value)


def test_iter_wav_bad_block_size(tmp_path):
    write_wav(tmp_path / "x.wav", np.zeros(10), 8000)
    with pytest.raises(DataError, match="block of 0 frames"):
        list(iter_wav(tmp_path / "x.wav", block_frames=0))


@pytest.mark.parametrize("content,match", [
    (b"", "not a WAV file \\(empty file\\)"),
    (wav_bytes(b"\x00" * 10, tag=7, bits=8), "mu-law"),
    (wav_bytes(b"\x00" * 10, tag=3, bits=16), "unsupported float sample size 16 bits"),
    (wav_bytes(b"\x00" * 12, bits=48, block_align=6), "unsupported PCM sample size 48 bits"),
])
def test_header_refusals_come_before_any_sample_is_read(tmp_path, content, match):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match):
        wav_info(path)
