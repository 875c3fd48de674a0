"""Hard-negative mining: a listener's false accepts, cut out as one-second ``unknown`` clips.

The best negatives a model can train on are the sounds it mistook for a keyword: a television,
a radio, people talking in the room it listens in. ``kws-eval-stream --save-false-accepts
OUT.npz`` runs a recording through the ``kws-listen`` pipeline and keeps, for every false
accept, the window that scored highest for the keyword it fired on; the npz is in the seed's
schema (``wav_vals``, ``label_vals`` = ``unknown``, ``speaker``), so ``kws-train --extra-train
OUT.npz`` (or ``--init-from RUN --extra-train OUT.npz``, to fine-tune) trains on it.
This is Mycroft Precise's incremental training, with the stream scorer's truth files to tell
false accepts from keywords.

A false accept whose window overlaps a keyword of the truth is not kept: it holds part of a
keyword, and filing it under ``unknown`` would teach the model to miss that keyword.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from kws.runtime.errors import KwsError
from kws.runtime.features import to_pcm16

logger = logging.getLogger(__name__)

#: The label mined clips are filed under.
UNKNOWN_LABEL = "unknown"
#: ``speaker`` of a clip that overlaps no word of the truth: the recording stands in for the speaker.
SPEAKER_PREFIX = "mined:"


@dataclass(frozen=True)
class MinedClips:
    """False accepts cut out of one or more streams.

    Attributes
    ----------
    wav : np.ndarray, int16, shape (n_clips, window_samples)
    speaker : np.ndarray, str, shape (n_clips,)
        The truth's speaker of the unknown word the window overlaps most, else ``mined:WAV_NAME``.
    source : np.ndarray, str, shape (n_clips,)  the wav each clip was cut from
    end_s : np.ndarray, float64, shape (n_clips,)  end of the clip in its wav, seconds
    detected : np.ndarray, str, shape (n_clips,)  the keyword the listener fired on
    score : np.ndarray, float32, shape (n_clips,)  the clip's probability for that keyword
    skipped_on_keyword : int
        False accepts not kept because their window overlaps a keyword of the truth.
    """

    wav: np.ndarray
    speaker: np.ndarray
    source: np.ndarray
    end_s: np.ndarray
    detected: np.ndarray
    score: np.ndarray
    skipped_on_keyword: int = 0

    def __len__(self) -> int:
        return int(self.wav.shape[0])

    def arrays(self, *, model: str) -> dict[str, np.ndarray]:
        """The npz members: the seed schema plus ``mined_*`` provenance (ignored by loaders)."""
        n = len(self)
        return {"wav_vals": self.wav, "label_vals": np.full((n, 1), UNKNOWN_LABEL),
                "speaker": self.speaker, "mined_source": self.source, "mined_end_s": self.end_s,
                "mined_detected": self.detected, "mined_score": self.score,
                "mined_model": np.array(model)}


def check_can_mine(labels: Sequence[str]) -> None:
    """Refuse a model without an ``unknown`` label: mined clips would have no class to go to."""
    if UNKNOWN_LABEL not in labels:
        raise KwsError(f"--save-false-accepts: the model's labels {list(labels)} have no {UNKNOWN_LABEL!r}; "
                       "mined clips are filed under it")


def stream_blocks(path: str | Path, *, sample_rate_hz: int) -> Iterator[np.ndarray]:
    """The samples the pipeline saw, block by block: ``path`` through
    :class:`~kws.runtime.sources.WavSource` with :func:`~kws.runtime.pipeline.run_wav`'s block size
    (mixed down, resampled to ``sample_rate_hz``); one block is held at a time.

    Yields
    ------
    np.ndarray, float32, shape (n,)
    """
    from kws.runtime.pipeline import DEFAULT_BLOCK_SAMPLES
    from kws.runtime.sources import WavSource

    yield from WavSource(path, target_rate_hz=sample_rate_hz, block_samples=DEFAULT_BLOCK_SAMPLES)


def cut_windows(blocks: Iterable[np.ndarray] | np.ndarray, end_samples: Sequence[int], *,
                window_samples: int) -> dict[int, np.ndarray]:
    """Cut the windows ``[end - window_samples, end)`` out of a stream in one pass, holding no more
    than one block and one window of it.

    Parameters
    ----------
    blocks : np.ndarray, shape (n_samples,), or an iterable of such blocks, in order
    end_samples : ends of the windows, in samples from the stream's start
    window_samples : int

    Returns
    -------
    dict end_sample -> np.ndarray, float32, shape (window_samples,)
        Ends past the end of the stream, or before a whole window, are missing.
    """
    if isinstance(blocks, np.ndarray):
        blocks = [blocks]
    pending = sorted(set(int(e) for e in end_samples))
    out: dict[int, np.ndarray] = {}
    tail = np.zeros(0, np.float32)   # the last samples before the current block
    seen = 0                         # samples of the stream before the current block
    i = 0
    for block in blocks:
        if i == len(pending):
            break
        block = np.asarray(block, dtype=np.float32)
        joined = np.concatenate([tail, block])
        first = seen - len(tail)     # stream index of joined[0]
        seen += len(block)
        while i < len(pending) and pending[i] <= seen:
            end = pending[i]
            if end - window_samples >= first:
                out[end] = joined[end - window_samples - first:end - first].copy()
            i += 1
        tail = joined[-window_samples:]
    return out


def _overlaps(events, start_s: float, end_s: float) -> list[tuple[float, Any]]:
    """(overlap in seconds, event) for each event overlapping ``[start_s, end_s]``."""
    out = []
    for e in events:
        overlap = min(end_s, e.end_s) - max(start_s, e.start_s)
        if overlap > 0:
            out.append((overlap, e))
    return out


def mine_stream(audio: np.ndarray, *, wav_name: str, truth, detections: Sequence[Any], outcomes: Sequence[str],
                scores: Sequence[tuple[float, np.ndarray]], labels: Sequence[str], sample_rate_hz: int,
                window_samples: int, span_s: float) -> MinedClips:
    """Cut one stream's false accepts out of its audio.

    Parameters
    ----------
    audio : the stream at the model rate: np.ndarray, float32, shape (n_samples,), or its blocks in order
        (:func:`stream_blocks`; read once, after the false accepts are chosen, one block at a time)
    wav_name : str  the wav's path, recorded per clip
    truth : Truth  the stream's truth (its keyword events are avoided, its unknown words name speakers)
    detections, outcomes : the pipeline's detections and their outcomes (``"false_accept"`` is mined)
    scores : (time_s, probs (n_labels,)) of every window, as :class:`~kws.runtime.pipeline.Pipeline` records them
    labels : the model's labels, in output order
    sample_rate_hz, window_samples : the model's rate and window
    span_s : float
        The windows that fed a detection end within ``span_s`` before it (``(smoothing - 1) * hop``);
        of those, the one scoring highest for the detected keyword is cut (on a tie, the latest:
        the window that fired).

    Returns
    -------
    MinedClips
    """
    times = np.array([t for t, _ in scores], dtype=np.float64)
    window_s = window_samples / sample_rate_hz
    chosen = []   # (end_sample, speaker, detected, score), in stream order
    seen: set[int] = set()
    skipped = 0
    for det, outcome in zip(detections, outcomes):
        if outcome != "false_accept":
            continue
        k = labels.index(det.label)
        candidates = np.flatnonzero((times >= det.time_s - span_s - 1e-6) & (times <= det.time_s + 1e-6))
        if candidates.size == 0:   # cannot happen: the window that fired was recorded
            logger.warning("%s: no recorded window for the detection at %.2f s; not mined", wav_name, det.time_s)
            continue
        best = max(candidates[::-1], key=lambda i: float(scores[i][1][k]))   # ties: the window that fired
        end_sample = int(round(times[best] * sample_rate_hz))
        if end_sample < window_samples or end_sample in seen:
            continue
        end_s = end_sample / sample_rate_hz
        if _overlaps(truth.events, end_s - window_s, end_s):
            skipped += 1
            continue
        seen.add(end_sample)
        words = _overlaps(truth.unknown_events, end_s - window_s, end_s)
        speaker = max(words, key=lambda ow: ow[0])[1].speaker if words else None
        chosen.append((end_sample, str(speaker) if speaker is not None else SPEAKER_PREFIX + Path(wav_name).name,
                       det.label, float(scores[best][1][k])))
    windows = cut_windows(audio, [c[0] for c in chosen], window_samples=window_samples) if chosen else {}
    kept = [c for c in chosen if c[0] in windows]
    if len(kept) < len(chosen):   # cannot happen either: a window that was scored lies inside the stream
        logger.warning("%s: %d false accept(s) end past the audio; not mined", wav_name, len(chosen) - len(kept))
    return MinedClips(wav=np.array([to_pcm16(windows[c[0]]) for c in kept], dtype=np.int16).reshape(
                          len(kept), window_samples),
                      speaker=np.array([c[1] for c in kept], dtype=str),
                      source=np.array([wav_name] * len(kept), dtype=str),
                      end_s=np.array([c[0] / sample_rate_hz for c in kept], dtype=np.float64),
                      detected=np.array([c[2] for c in kept], dtype=str),
                      score=np.array([c[3] for c in kept], dtype=np.float32), skipped_on_keyword=skipped)


def concatenate(parts: Sequence[MinedClips], *, window_samples: int) -> MinedClips:
    """Join the clips of several streams (in order)."""
    if not parts:
        return MinedClips(wav=np.zeros((0, window_samples), np.int16), speaker=np.zeros(0, str),
                          source=np.zeros(0, str), end_s=np.zeros(0), detected=np.zeros(0, str),
                          score=np.zeros(0, np.float32))
    return MinedClips(
        wav=np.concatenate([p.wav for p in parts]), speaker=np.concatenate([p.speaker for p in parts]),
        source=np.concatenate([p.source for p in parts]), end_s=np.concatenate([p.end_s for p in parts]),
        detected=np.concatenate([p.detected for p in parts]), score=np.concatenate([p.score for p in parts]),
        skipped_on_keyword=sum(p.skipped_on_keyword for p in parts))
