"""A fixed-size ring buffer that cuts a stream into overlapping analysis windows.

Audio arrives in blocks of any size (a microphone callback, a file read, a pipe). The buffer
keeps only the newest ``window_samples`` samples, so memory does not grow however long the
stream runs. Window ``k`` (k = 0, 1, ...) ends at sample ``window_samples + k * hop_samples``;
it is emitted as soon as that sample has been pushed. After ``N`` samples exactly
``floor((N - window_samples) / hop_samples) + 1`` windows have been emitted (0 while
``N < window_samples``), whatever the block sizes were: the window count never drifts.
"""

from __future__ import annotations

import numpy as np

from kws.runtime.errors import KwsError


def expected_windows(n_samples: int, window_samples: int, hop_samples: int) -> int:
    """``floor((n - window) / hop) + 1``, or 0 when ``n < window``."""
    if n_samples < window_samples:
        return 0
    return (n_samples - window_samples) // hop_samples + 1


class WindowBuffer:
    """Ring buffer of the last ``window_samples`` samples; emits the newest window every hop.

    Parameters
    ----------
    window_samples : int
        Window length in samples (8000: one second at 8 kHz).
    hop_samples : int
        Samples between the ends of consecutive windows (2000: 250 ms at 8 kHz). It may be
        larger than the window (then samples between windows are skipped).
    """

    def __init__(self, window_samples: int, hop_samples: int) -> None:
        if int(window_samples) != window_samples or window_samples < 1:
            raise KwsError(f"window_samples={window_samples!r}: expected a positive integer")
        if int(hop_samples) != hop_samples or hop_samples < 1:
            raise KwsError(f"hop of {hop_samples!r} samples: expected a positive integer")
        self.window_samples = int(window_samples)
        self.hop_samples = int(hop_samples)
        self._ring = np.zeros(self.window_samples, dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        """Start a new stream (sample 0)."""
        self._ring[:] = 0.0
        self.samples_seen = 0          # samples pushed since the start of the stream
        self.windows_emitted = 0
        self._next_end = self.window_samples  # absolute end sample of the next window

    def _write(self, samples: np.ndarray) -> None:
        """Append samples to the ring (only the last ``window_samples`` of them matter)."""
        n = len(samples)
        w = self.window_samples
        if n >= w:
            samples = samples[-w:]
            start = (self.samples_seen + n - w) % w
            n = w
        else:
            start = self.samples_seen % w
        first = min(n, w - start)
        self._ring[start:start + first] = samples[:first]
        if first < n:
            self._ring[:n - first] = samples[first:]

    def _window(self) -> np.ndarray:
        """The newest ``window_samples`` samples in time order (a copy)."""
        pos = self.samples_seen % self.window_samples  # oldest sample sits at pos
        return np.concatenate([self._ring[pos:], self._ring[:pos]])

    def push(self, block: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Append a block; return the windows completed by it.

        Parameters
        ----------
        block : np.ndarray, float, shape (n,) (n may be 0)

        Returns
        -------
        list of (end_sample, window)
            ``end_sample``: absolute index one past the window's last sample (time ``end /
            sample_rate`` from the stream start); ``window``: float32 (window_samples,), a copy.
        """
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        out: list[tuple[int, np.ndarray]] = []
        pos = 0
        n = len(block)
        while pos < n:
            take = min(n - pos, self._next_end - self.samples_seen)
            self._write(block[pos:pos + take])
            self.samples_seen += take
            pos += take
            if self.samples_seen == self._next_end:
                out.append((self.samples_seen, self._window()))
                self.windows_emitted += 1
                self._next_end += self.hop_samples
        return out
