"""WindowBuffer: fixed memory, exact window count, window contents equal slicing the stream."""

from __future__ import annotations

import numpy as np
import pytest

from kws.runtime.errors import KwsError
from kws.runtime.stream import WindowBuffer, expected_windows


def _push_random_blocks(buf, x, rng, max_block):
    out = []
    i = 0
    while i < len(x):
        n = int(rng.integers(0, max_block + 1))
        out.extend(buf.push(x[i:i + n]))
        i += n
    return out


@pytest.mark.parametrize("window,hop", [(8000, 2000), (8000, 800), (8000, 8000), (8000, 3333),
                                        (8000, 12000), (100, 1), (8000, 1)])
@pytest.mark.parametrize("max_block", [1, 37, 2000, 20000])
def test_count_and_contents_for_random_block_sizes(window, hop, max_block):
    rng = np.random.default_rng(window + hop + max_block)
    n_total = 30000 if hop > 10 else window + 3000  # hop 1: a window per sample
    x = rng.normal(size=n_total).astype(np.float32)
    buf = WindowBuffer(window, hop)
    windows = _push_random_blocks(buf, x, rng, max_block)
    assert len(windows) == expected_windows(n_total, window, hop) == buf.windows_emitted
    assert len(windows) == (max(n_total - window, -1) // hop + 1 if n_total >= window else 0)
    for k, (end, w) in enumerate(windows):
        assert end == window + k * hop
        assert w.dtype == np.float32 and w.shape == (window,)
        np.testing.assert_array_equal(w, x[end - window:end])
    assert buf.samples_seen == n_total


def test_count_formula_at_every_length():
    buf = WindowBuffer(8000, 2000)
    total = 0
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(0, 700))
        buf.push(np.zeros(n, np.float32))
        total += n
        expected = 0 if total < 8000 else (total - 8000) // 2000 + 1
        assert buf.windows_emitted == expected


def test_no_window_before_a_full_window():
    buf = WindowBuffer(8000, 2000)
    assert buf.push(np.ones(7999, np.float32)) == []
    out = buf.push(np.ones(1, np.float32))
    assert [end for end, _ in out] == [8000]


def test_memory_is_fixed_and_windows_are_copies():
    buf = WindowBuffer(8000, 2000)
    ring = buf._ring
    first = snapshot = None
    for i in range(100):
        out = buf.push(np.full(4000, i, np.float32))
        if first is None and out:
            first, snapshot = out[0][1], out[0][1].copy()
    assert buf._ring is ring and ring.shape == (8000,)
    np.testing.assert_array_equal(first, snapshot)  # later pushes did not change an emitted window


def test_reset_starts_a_new_stream():
    buf = WindowBuffer(10, 5)
    buf.push(np.arange(23, dtype=np.float32))
    buf.reset()
    out = buf.push(np.arange(10, dtype=np.float32))
    assert len(out) == 1 and out[0][0] == 10
    np.testing.assert_array_equal(out[0][1], np.arange(10))


@pytest.mark.parametrize("window,hop,match", [(0, 10, "window_samples=0"), (10, 0, "hop of 0"),
                                              (10, 2.5, "hop of 2.5")])
def test_bad_sizes(window, hop, match):
    with pytest.raises(KwsError, match=match):
        WindowBuffer(window, hop)
