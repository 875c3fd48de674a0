"""The numpy polyphase resampler against scipy.signal.resample_poly, and its streaming form."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from kws.runtime.errors import KwsError
from kws.runtime.resample import (StreamingResampler, design_filter, output_length, resample,
                                  resample_poly)

RATES = [(48000, 8000), (44100, 8000), (16000, 8000), (22050, 8000), (32000, 8000), (8000, 16000),
         (11025, 8000), (96000, 8000)]


@pytest.mark.parametrize("from_hz,to_hz", RATES)
def test_matches_scipy_resample_poly(from_hz, to_hz):
    rng = np.random.default_rng(from_hz)
    x = rng.normal(0, 0.3, from_hz // 3 + 17)
    ours = resample(x, from_hz, to_hz)
    g = np.gcd(from_hz, to_hz)
    ref = scipy.signal.resample_poly(x, to_hz // g, from_hz // g)
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape == (output_length(len(x), to_hz, from_hz),)
    np.testing.assert_allclose(ours, ref, atol=2e-6, rtol=0)


def test_filter_is_scipy_firwin_kaiser():
    for up, down in [(1, 6), (80, 441), (2, 1)]:
        h, half_len = design_filter(up, down)
        ref = scipy.signal.firwin(2 * half_len + 1, 1.0 / max(up, down), window=("kaiser", 5.0)) * up
        np.testing.assert_allclose(h, ref, atol=1e-12)


def test_up_down_reduced_by_gcd_and_multichannel():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3001, 2))
    ours = resample_poly(x, 2, 12)
    ref = scipy.signal.resample_poly(x, 1, 6, axis=0)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=2e-6)


def test_identity_is_a_copy():
    x = np.linspace(-1, 1, 100, dtype=np.float32)
    y = resample(x, 8000, 8000)
    np.testing.assert_array_equal(x, y)
    assert y is not x


@pytest.mark.parametrize("from_hz,to_hz", [(48000, 8000), (44100, 8000), (16000, 8000), (8000, 8000),
                                           (8000, 22050)])
def test_streaming_equals_one_shot_for_random_blocks(from_hz, to_hz):
    rng = np.random.default_rng(7)
    x = rng.normal(0, 0.3, from_hz // 2 + 123).astype(np.float32)
    one_shot = resample(x, from_hz, to_hz)
    for trial in range(3):
        stream = StreamingResampler(from_hz, to_hz)
        pieces, i = [], 0
        while i < len(x):
            n = int(rng.integers(0, 3 * from_hz // 100)) if trial else 1 + (i % 7)
            pieces.append(stream.process(x[i:i + n]))
            i += n
        pieces.append(stream.flush())
        streamed = np.concatenate(pieces)
        assert streamed.shape == one_shot.shape
        np.testing.assert_allclose(streamed, one_shot, atol=1e-6, rtol=0)


def test_streaming_has_no_clicks_at_block_boundaries():
    """A 48 kHz sine fed in 10 ms blocks comes out as a clean 8 kHz sine."""
    from_hz, to_hz, f = 48000, 8000, 440.0
    t = np.arange(from_hz * 2) / from_hz
    x = 0.5 * np.sin(2 * np.pi * f * t)
    stream = StreamingResampler(from_hz, to_hz)
    y = np.concatenate([stream.process(x[i:i + 480]) for i in range(0, len(x), 480)] + [stream.flush()])
    ideal = 0.5 * np.sin(2 * np.pi * f * np.arange(len(y)) / to_hz)
    inner = slice(100, len(y) - 100)  # away from the zero padding at both ends
    assert np.abs(y[inner] - ideal[inner]).max() < 2e-3
    # no step anywhere: sample-to-sample change stays that of the sine
    assert np.abs(np.diff(y[inner])).max() < 2 * np.pi * f / to_hz * 0.5 * 1.01


def test_alias_rejection():
    """A 6 kHz tone at 48 kHz is above the 4 kHz Nyquist of 8 kHz: it must be filtered out."""
    t = np.arange(48000) / 48000
    y = resample(np.sin(2 * np.pi * 6000 * t), 48000, 8000)
    assert np.sqrt(np.mean(y[200:-200] ** 2)) < 0.01 * np.sqrt(0.5)  # below -40 dB


def test_streaming_state_is_bounded():
    """Whatever the block sizes, the state never exceeds one filter branch of input."""
    stream = StreamingResampler(44100, 8000)
    rng = np.random.default_rng(0)
    sizes = []
    for _ in range(300):
        stream.process(rng.normal(size=int(rng.integers(1, 5000))))
        sizes.append(len(stream._buf))
    assert max(sizes) <= stream._core.taps


def test_flush_resets_for_a_new_stream():
    x = np.random.default_rng(3).normal(size=4800)
    stream = StreamingResampler(48000, 8000)
    first = np.concatenate([stream.process(x), stream.flush()])
    second = np.concatenate([stream.process(x), stream.flush()])
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("up,down", [(0, 1), (1, -2), (1.5, 2)])
def test_bad_factors(up, down):
    with pytest.raises(KwsError, match="positive integers"):
        resample_poly(np.zeros(10), up, down)


def test_bad_rates():
    with pytest.raises(KwsError, match="from_hz=0"):
        StreamingResampler(0, 8000)
    with pytest.raises(KwsError, match="to_hz=-8000"):
        resample(np.zeros(10), 8000, -8000)
