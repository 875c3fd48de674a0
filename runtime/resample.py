"""Polyphase sample-rate conversion in numpy (no scipy on the device).

Many USB microphones on a Raspberry Pi capture at 44.1 or 48 kHz only; the model wants 8 kHz.
The conversion by ``up / down`` (the rates' ratio reduced by their gcd) is the classic
polyphase FIR resampler, designed exactly as :func:`scipy.signal.resample_poly` does by default:

* a linear-phase low-pass FIR of ``2 * half_len + 1`` taps, ``half_len = 10 * max(up, down)``,
  cut-off ``1 / max(up, down)`` of Nyquist: a windowed sinc with a Kaiser window
  (beta = 5.0, ``np.kaiser``), normalised to unit DC gain and multiplied by ``up``;
* output sample ``m`` is centred on input time ``m * down / up``:
  ``y[m] = sum_k h[k] * x_up[m * down + half_len - k]``, where ``x_up`` is ``x`` with
  ``up - 1`` zeros stuffed between samples (and zeros before and after the signal);
* only the non-zero products are computed: output ``m`` uses polyphase branch
  ``(m * down + half_len) % up`` of the filter against ``ceil(taps / up)`` real input samples.

The output has ``ceil(n * up / down)`` samples and matches ``scipy.signal.resample_poly(x, up,
down)`` to float rounding (tests/test_resample.py).

:class:`StreamingResampler` computes the same output block by block: it keeps the last few
input samples as state, emits an output sample as soon as every input sample it depends on has
arrived (``half_len / up`` input samples of look-ahead: 1.25 ms for 48 kHz -> 8 kHz), and
:meth:`~StreamingResampler.flush` emits the tail. Concatenated blocks plus the flush equal the
one-shot result exactly, so block boundaries leave no clicks.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from kws.runtime.errors import KwsError

#: Kaiser window beta of the anti-aliasing filter (scipy's default ``('kaiser', 5.0)``).
KAISER_BETA = 5.0
#: Outputs computed per vectorised step (bounds the temporary gather matrix).
_CHUNK_OUTPUTS = 4096


@lru_cache(maxsize=32)
def design_filter(up: int, down: int) -> tuple[np.ndarray, int]:
    """The anti-aliasing/interpolation low-pass FIR for ``up / down``.

    Returns
    -------
    h : np.ndarray, float64, shape (2 * half_len + 1,), sum(h) == up
    half_len : int
    """
    max_rate = max(up, down)
    cutoff = 1.0 / max_rate  # relative to Nyquist
    half_len = 10 * max_rate
    n_taps = 2 * half_len + 1
    t = np.arange(n_taps, dtype=np.float64) - half_len
    h = cutoff * np.sinc(cutoff * t) * np.kaiser(n_taps, KAISER_BETA)
    h = h / h.sum() * up
    h.setflags(write=False)
    return h, half_len


@lru_cache(maxsize=32)
def _polyphase_bank(up: int, down: int) -> tuple[np.ndarray, int, int]:
    """Filter split into ``up`` branches: bank[p, j] = h[p + j * up] (zero padded).

    Returns (bank float64 (up, taps_per_phase), half_len, taps_per_phase).
    """
    h, half_len = design_filter(up, down)
    taps_per_phase = -(-len(h) // up)
    padded = np.zeros(up * taps_per_phase, dtype=np.float64)
    padded[:len(h)] = h
    bank = padded.reshape(taps_per_phase, up).T.copy()
    bank.setflags(write=False)
    return bank, half_len, taps_per_phase


def _reduce(up: int, down: int) -> tuple[int, int]:
    if int(up) != up or int(down) != down or up < 1 or down < 1:
        raise KwsError(f"resampling factors up={up}, down={down}: expected positive integers")
    g = math.gcd(int(up), int(down))
    return int(up) // g, int(down) // g


class _Polyphase:
    """Shared core: outputs ``m0 <= m < m1`` from input held in ``buf`` (absolute index ``start``)."""

    def __init__(self, up: int, down: int) -> None:
        self.up, self.down = up, down
        self.bank, self.half_len, self.taps = _polyphase_bank(up, down)
        self._lags = np.arange(self.taps)

    def last_input_needed(self, m: int) -> int:
        """Absolute index of the newest input sample that output ``m`` depends on."""
        return (m * self.down + self.half_len) // self.up

    def compute(self, buf: np.ndarray, start: int, m0: int, m1: int) -> np.ndarray:
        """``buf[i]`` is input sample ``start + i``; samples outside ``buf`` are zero."""
        out = np.empty(max(m1 - m0, 0), dtype=np.float64)
        for c0 in range(m0, m1, _CHUNK_OUTPUTS):
            c1 = min(c0 + _CHUNK_OUTPUTS, m1)
            pos = np.arange(c0, c1, dtype=np.int64) * self.down + self.half_len
            base = pos // self.up - start
            phase = pos % self.up
            idx = base[:, None] - self._lags[None, :]
            valid = (idx >= 0) & (idx < len(buf))
            x = np.where(valid, buf[np.clip(idx, 0, max(len(buf) - 1, 0))] if len(buf) else 0.0, 0.0)
            out[c0 - m0:c1 - m0] = np.einsum("ij,ij->i", x, self.bank[phase])
        return out


def output_length(n_in: int, up: int, down: int) -> int:
    """``ceil(n_in * up / down)`` (after reducing ``up / down``)."""
    up, down = _reduce(up, down)
    return -(-n_in * up // down)


def resample_poly(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """Resample by ``up / down`` with a polyphase Kaiser-windowed sinc FIR.

    Same design and alignment as ``scipy.signal.resample_poly(x, up, down)`` (window
    ``('kaiser', 5.0)``, zero padding).

    Parameters
    ----------
    x : np.ndarray, shape (n,) or (n, channels), real
        Resampled along axis 0.
    up, down : int
        Positive integers; reduced by their gcd.

    Returns
    -------
    np.ndarray, float32, shape (ceil(n * up / down),) or (that, channels)
    """
    up, down = _reduce(up, down)
    x = np.asarray(x)
    if x.ndim not in (1, 2):
        raise KwsError(f"resample_poly: audio of shape {x.shape}; expected (n,) or (n, channels)")
    if up == down == 1:
        return x.astype(np.float32, copy=True)
    if x.ndim == 2:
        return np.stack([resample_poly(x[:, c], up, down) for c in range(x.shape[1])], axis=1)
    core = _Polyphase(up, down)
    n_out = -(-len(x) * up // down)
    return core.compute(x.astype(np.float64), 0, 0, n_out).astype(np.float32)


def resample(x: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample audio from ``from_hz`` to ``to_hz`` (both integer rates in Hz).

    Parameters
    ----------
    x : np.ndarray, shape (n,) or (n, channels)
    from_hz, to_hz : int

    Returns
    -------
    np.ndarray, float32, shape (ceil(n * to_hz / from_hz),) or (that, channels)
    """
    from_hz, to_hz = _check_rates(from_hz, to_hz)
    return resample_poly(x, to_hz, from_hz)


def _check_rates(from_hz, to_hz) -> tuple[int, int]:
    for name, value in (("from_hz", from_hz), ("to_hz", to_hz)):
        if int(value) != value or value <= 0:
            raise KwsError(f"sample rate {name}={value!r}: expected a positive integer (Hz)")
    return int(from_hz), int(to_hz)


class StreamingResampler:
    """Stateful resampler for audio arriving in blocks of any size.

    ``concat(process(b) for b in blocks) + flush()`` equals ``resample(concat(blocks), from_hz,
    to_hz)`` exactly. Memory is fixed: the state is one filter branch of input
    (``ceil((20 * max(up, down) + 1) / up)`` samples) plus the not-yet-usable look-ahead.

    Parameters
    ----------
    from_hz, to_hz : int
        Input and output rates in Hz.
    """

    def __init__(self, from_hz: int, to_hz: int) -> None:
        self.from_hz, self.to_hz = _check_rates(from_hz, to_hz)
        self.up, self.down = _reduce(self.to_hz, self.from_hz)
        self.passthrough = self.up == self.down == 1
        self._core = None if self.passthrough else _Polyphase(self.up, self.down)
        self.reset()

    def reset(self) -> None:
        """Forget all input (start a new stream)."""
        self.n_in = 0       # input samples received
        self.n_out = 0      # output samples emitted
        self._buf = np.zeros(0, dtype=np.float64)
        self._buf_start = 0  # absolute index of _buf[0]

    @property
    def delay_samples_in(self) -> int:
        """Look-ahead: input samples an output waits for after its own time."""
        return 0 if self._core is None else -(-self._core.half_len // self.up)

    def process(self, block: np.ndarray) -> np.ndarray:
        """Feed input samples; return every output sample that is now complete.

        Parameters
        ----------
        block : np.ndarray, float, shape (n,)

        Returns
        -------
        np.ndarray, float32, shape (k,), k about ``n * to_hz / from_hz``
        """
        block = np.asarray(block, dtype=np.float64).reshape(-1)
        if self._core is None:
            self.n_in += len(block)
            self.n_out += len(block)
            return block.astype(np.float32)
        self._buf = np.concatenate([self._buf, block]) if len(self._buf) else block.copy()
        self.n_in += len(block)
        # outputs m whose newest input sample (m*down + half_len)//up has arrived
        m_end = (self.up * self.n_in - self._core.half_len - 1) // self.down + 1
        m_end = max(m_end, self.n_out)
        return self._emit(m_end)

    def flush(self) -> np.ndarray:
        """The remaining outputs, as if the input ended here (zeros after it).

        After a flush the total output is ``ceil(n_in * to_hz / from_hz)`` samples; the
        resampler is then reset for a new stream.
        """
        if self._core is None:
            self.reset()
            return np.zeros(0, dtype=np.float32)
        total = -(-self.n_in * self.up // self.down)
        out = self._emit(max(total, self.n_out))
        self.reset()
        return out

    def _emit(self, m_end: int) -> np.ndarray:
        core = self._core
        out = core.compute(self._buf, self._buf_start, self.n_out, m_end).astype(np.float32)
        self.n_out = m_end
        # keep only the input the next output still needs
        oldest_needed = core.last_input_needed(self.n_out) - core.taps + 1
        drop = min(max(oldest_needed - self._buf_start, 0), len(self._buf))
        if drop:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        return out
