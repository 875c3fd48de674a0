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
from typing import Any, Sequence

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


def stream_audio(path: str | Path, *, sample_rate_hz: int) -> np.ndarray:
    """The samples the pipeline saw: ``path`` through :class:`~kws.runtime.sources.WavSource` with
    :func:`~kws.runtime.pipeline.run_wav`'s block size (mixed down, resampled to ``sample_rate_hz``).

    Returns
    -------
    np.ndarray, float32, shape (n_samples,)
    """
    from kws.runtime.pipeline import DEFAULT_BLOCK_SAMPLES
    from kws.runtime.sources import WavSource

    source = WavSource(path, target_rate_hz=sample_rate_hz, block_samples=DEFAULT_BLOCK_SAMPLES)
    blocks = list(source)
    return np.concatenate(blocks).astype(np.float32) if blocks else np.zeros(0, np.float32)


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
    audio : np.ndarray, float32, shape (n_samples,)  the stream at the model rate (:func:`stream_audio`)
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
    rows, speakers, ends, detected, best_scores = [], [], [], [], []
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
        start_sample = end_sample - window_samples
        if start_sample < 0 or end_sample > audio.shape[0] or end_sample in seen:
            continue
        end_s = end_sample / sample_rate_hz
        if _overlaps(truth.events, end_s - window_s, end_s):
            skipped += 1
            continue
        seen.add(end_sample)
        words = _overlaps(truth.unknown_events, end_s - window_s, end_s)
        speaker = max(words, key=lambda ow: ow[0])[1].speaker if words else None
        rows.append(to_pcm16(audio[start_sample:end_sample]))
        speakers.append(str(speaker) if speaker is not None else SPEAKER_PREFIX + Path(wav_name).name)
        ends.append(end_s)
        detected.append(det.label)
        best_scores.append(float(scores[best][1][k]))
    return MinedClips(wav=np.array(rows, dtype=np.int16).reshape(len(rows), window_samples),
                      speaker=np.array(speakers, dtype=str), source=np.array([wav_name] * len(rows), dtype=str),
                      end_s=np.array(ends, dtype=np.float64), detected=np.array(detected, dtype=str),
                      score=np.array(best_scores, dtype=np.float32), skipped_on_keyword=skipped)


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
