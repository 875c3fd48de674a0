"""``kws-data stream``: long test streams with keywords at known times, for kws-eval-stream.

A stream is built from one split of an npz (the TEST split by default, so that a model never
hears its own training speakers):

* keyword clips, each trimmed to its speech (energy-based), at known times;
* unknown words between them (``unknown_rate`` per keyword on average, Poisson);
* random gaps of ``gap_s = (min, max)`` seconds (uniform) between any two words;
* each word brought to a common speech level, then given a random gain uniform in
  ``±level_spread_db / 2`` (talkers at different loudness in front of one microphone);
* background noise under everything at a chosen SNR: the split's ``silence`` clips (or the
  wavs of a noise folder) stitched with short cross-fades.

SNR: ``10 log10(P_speech / P_noise)``, where ``P_speech`` is the mean over the placed words
(keyword and unknown) of each word's power over its speech span, and ``P_noise`` the power of
the added noise. ``--snr-db inf`` adds no noise (the clips keep their own background).

Why levels are evened out: the recording levels of crowd-sourced clips (Speech Commands) span
about 25 dB between the 5th and 95th percentile, because every volunteer's device had its own
gain. Left as they are (``--keep-levels``), a "10 dB" stream puts its median keyword at about
2 dB SNR and a quarter of them below -3 dB: a far harsher test than its name says. A deployed
microphone has one gain; what varies is the talker, which ``level_spread_db`` models.

The truth JSON (``format`` = ``kws-stream-truth/1``, read by :func:`kws.runtime.scoring.load_truth`)::

    {"format": "kws-stream-truth/1", "sample_rate_hz": 8000, "duration_s": 1800.0,
     "events": [{"label": "yes", "start_s": 3.21, "end_s": 3.74, "speaker": "0a7c2a8d",
                 "clip_index": 812}, ...],
     "unknown_events": [{"label": "unknown", ...}, ...],
     "settings": {...how it was built...}}

``start_s``/``end_s`` are the speech span found by the trimmer, in seconds from the stream start.
Words never overlap: each is placed after the previous one's padded segment plus a gap.
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from kws.runtime.errors import DataError, KwsError
from kws.runtime.fileio import check_distinct, check_output, check_seed, write_atomically
from kws.runtime.labels import KEYWORDS, SILENCE, UNKNOWN
from kws.runtime.scoring import TRUTH_FORMAT

logger = logging.getLogger(__name__)

#: Trimmer (:func:`speech_bounds`): frame length and hop, and the loudness criteria in dB.
FRAME_MS = 20.0
HOP_MS = 10.0
TRIM_DB_BELOW_PEAK = 30.0
TRIM_DB_ABOVE_FLOOR = 10.0
#: Pauses up to this long inside a word are bridged (the closure of "stop", two syllables).
BRIDGE_MS = 200.0
#: Kept around the speech span of each word (s), faded in/out over FADE_MS.
PAD_S = 0.08
FADE_MS = 10.0
#: Speech level every word is brought to (speech-span RMS, dB full scale) before its random
#: gain; leaves headroom for the peaks of the loudest words.
SPEECH_LEVEL_DBFS = -26.0
#: Noise pieces quieter than this RMS (digital silence) are not used as noise.
MIN_NOISE_RMS = 1e-4
SPLITS = ("test", "val", "train", "all")
MAX_MINUTES = 600.0
#: Five seconds: a stream shorter than a few one-second windows measures nothing.
MIN_MINUTES = 5 / 60
#: Beyond this the noise is below 16-bit resolution anyway (and 10**(snr/20) overflows far later).
MAX_SNR_DB = 120.0


@dataclass(frozen=True)
class StreamSettings:
    """How to build one stream.

    Attributes
    ----------
    minutes : float        stream length in minutes (> 0)
    snr_db : float         speech-to-noise ratio of the added noise in dB; ``inf``: no noise
    negatives_only : bool  no keywords: unknown words and noise only
    seed : int             all random choices (clip order, gaps, noise) follow from it (>= 0)
    gap_s : (min, max)     silence between words, seconds, uniform
    unknown_rate : float   mean number of unknown words between two keywords (Poisson)
    level_spread_db : float or None
                           each word's speech level is SPEECH_LEVEL_DBFS plus a uniform random
                           gain in ``±level_spread_db / 2`` dB; None keeps the clips' own levels
    """

    minutes: float
    snr_db: float = 10.0
    negatives_only: bool = False
    seed: int = 0
    gap_s: tuple[float, float] = (1.5, 4.0)
    unknown_rate: float = 1.0
    level_spread_db: float | None = 10.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.minutes) and MIN_MINUTES <= self.minutes <= MAX_MINUTES):
            raise DataError(f"--minutes {self.minutes}: expected a number in [{MIN_MINUTES:g}, {MAX_MINUTES:g}] "
                            "(at least a few windows of audio)")
        check_seed(self.seed)
        if math.isnan(self.snr_db) or not (-MAX_SNR_DB <= self.snr_db <= MAX_SNR_DB or self.snr_db == math.inf):
            raise DataError(f"--snr-db {self.snr_db}: expected a number of dB in [-{MAX_SNR_DB:g}, {MAX_SNR_DB:g}] "
                            "(or inf for no noise)")
        lo, hi = self.gap_s
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi):
            raise DataError(f"--gap-s {lo} {hi}: expected 0 <= MIN <= MAX seconds")
        if not (math.isfinite(self.unknown_rate) and self.unknown_rate >= 0):
            raise DataError(f"--unknown-rate {self.unknown_rate}: expected a number >= 0")
        spread = self.level_spread_db
        if spread is not None and not (math.isfinite(spread) and 0 <= spread <= 40):
            raise DataError(f"--level-spread-db {spread}: expected a number of dB in [0, 40]")


@dataclass(frozen=True)
class Stream:
    """A built stream: ``audio`` float32 (n,) at ``sample_rate_hz`` and its ``truth`` dict."""

    audio: np.ndarray
    sample_rate_hz: int
    truth: dict[str, Any]

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate_hz


# -------------------------------------------------------------------------------------------
# Building blocks
# -------------------------------------------------------------------------------------------
def speech_bounds(clip: np.ndarray, *, sample_rate_hz: int = 8000) -> tuple[int, int] | None:
    """The speech span of a clip by frame energy.

    20 ms frames every 10 ms; a frame is loud when its RMS is within :data:`TRIM_DB_BELOW_PEAK`
    dB of the loudest frame and :data:`TRIM_DB_ABOVE_FLOOR` dB above the quietest tenth of the
    clip. Pauses up to :data:`BRIDGE_MS` are bridged, and the span is the loud run with the
    most energy.

    Parameters
    ----------
    clip : np.ndarray, float, shape (n,)
    sample_rate_hz : int

    Returns
    -------
    (start, end) sample indices (end exclusive), or None when the clip is silent.
    """
    clip = np.asarray(clip, dtype=np.float32)
    frame = max(1, int(sample_rate_hz * FRAME_MS / 1000))
    hop = max(1, int(sample_rate_hz * HOP_MS / 1000))
    if len(clip) < frame:
        return None
    frames = np.lib.stride_tricks.sliding_window_view(clip, frame)[::hop]
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    peak = float(rms.max())
    if peak < MIN_NOISE_RMS:
        return None
    floor = float(np.percentile(rms, 10))
    threshold = max(peak * 10 ** (-TRIM_DB_BELOW_PEAK / 20), floor * 10 ** (TRIM_DB_ABOVE_FLOOR / 20))
    threshold = min(threshold, peak * 10 ** (-6 / 20))  # a clip with no quiet part: keep its loud core
    active = rms >= threshold
    # Bridge short pauses (the closure in "stop"), then keep the loud run with the most energy,
    # so that a click or a breath elsewhere in the clip does not widen the span.
    max_pause = int(round(BRIDGE_MS / HOP_MS))
    on = np.flatnonzero(active)
    for a, b in zip(on[:-1], on[1:]):
        if 1 < b - a <= max_pause + 1:
            active[a:b] = True
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    runs = edges.reshape(-1, 2)  # [first, last + 1) frame index pairs
    energy = [float(np.sum(rms[a:b] ** 2)) for a, b in runs]
    first, stop = runs[int(np.argmax(energy))]
    return int(first * hop), int(min(len(clip), (stop - 1) * hop + frame))


def fade_edges(segment: np.ndarray, n_fade: int) -> np.ndarray:
    """A copy of ``segment`` with linear fades of ``n_fade`` samples (at most half its length) at both ends."""
    segment = segment.copy()
    n = min(n_fade, len(segment) // 2)
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float32)
        segment[:n] *= ramp
        segment[-n:] *= ramp[::-1]
    return segment


def cut_word(clip: np.ndarray, *, sample_rate_hz: int = 8000) -> tuple[np.ndarray, int, int, float] | None:
    """A clip's word as a stream places it: its speech span (:func:`speech_bounds`) plus
    :data:`PAD_S` either side (within the clip), faded over :data:`FADE_MS`.

    Returns
    -------
    (segment float32 (m,), offset of the speech span in the segment (samples), length of the
    speech span (samples), mean power of the speech span), or None when the clip is silent.
    """
    clip = np.asarray(clip, dtype=np.float32)
    bounds = speech_bounds(clip, sample_rate_hz=sample_rate_hz)
    if bounds is None:
        return None
    s, e = bounds
    pad = int(PAD_S * sample_rate_hz)
    seg_start, seg_end = max(0, s - pad), min(len(clip), e + pad)
    segment = fade_edges(clip[seg_start:seg_end], int(FADE_MS / 1000 * sample_rate_hz))
    power = float(np.mean(np.square(clip[s:e], dtype=np.float64)))
    return segment, s - seg_start, e - s, power


def level_gain(power: float, spread_db: float, rng: np.random.Generator) -> float:
    """The gain that brings a word of speech power ``power`` to :data:`SPEECH_LEVEL_DBFS` plus a
    uniform random offset within ``±spread_db / 2`` dB (one draw from ``rng``)."""
    half = spread_db / 2
    target_db = SPEECH_LEVEL_DBFS + float(rng.uniform(-half, half))
    return math.sqrt(10 ** (target_db / 10) / max(power, 1e-12))


def noise_bed(n_samples: int, sources: Sequence[np.ndarray], rng: np.random.Generator, *,
              sample_rate_hz: int = 8000) -> np.ndarray:
    """Continuous noise of unit RMS from random pieces of ``sources``, cross-faded.

    Parameters
    ----------
    n_samples : int
    sources : float arrays (any lengths >= 50 ms) at ``sample_rate_hz``; pieces quieter than
        :data:`MIN_NOISE_RMS` are skipped. None usable: white Gaussian noise.

    Returns
    -------
    np.ndarray, float32, shape (n_samples,), RMS 1 (before the caller scales it).
    """
    xfade = int(sample_rate_hz * 0.02)
    usable = [np.asarray(s, dtype=np.float32) for s in sources
              if len(s) > 2 * xfade and float(np.sqrt(np.mean(np.square(s, dtype=np.float64)))) >= MIN_NOISE_RMS]
    if not usable:
        logger.warning("no usable noise clips (silence clips or --noise-dir); using white noise")
        return rng.standard_normal(n_samples).astype(np.float32)
    out = np.zeros(n_samples, dtype=np.float32)
    ramp = np.linspace(0.0, 1.0, xfade, endpoint=False, dtype=np.float32)
    pos = 0
    max_piece = 4 * sample_rate_hz
    quiet_tries = 0
    while pos < n_samples:
        src = usable[int(rng.integers(len(usable)))]
        length = min(len(src), max_piece)
        offset = int(rng.integers(0, len(src) - length + 1))
        piece = src[offset:offset + length].astype(np.float32)
        piece = piece - piece.mean()
        rms = float(np.sqrt(np.mean(np.square(piece, dtype=np.float64))))
        if rms < MIN_NOISE_RMS and quiet_tries < 100:
            quiet_tries += 1
            continue
        quiet_tries = 0
        rms = max(rms, MIN_NOISE_RMS)
        piece /= rms
        if pos > 0:
            piece[:xfade] *= ramp
        piece[-xfade:] *= ramp[::-1]
        end = min(n_samples, pos + length)
        out[pos:end] += piece[:end - pos]
        pos = end - xfade if end < n_samples else end
    # Cross-fades dip a little in power; restore unit RMS.
    return out / np.float32(np.sqrt(np.mean(np.square(out, dtype=np.float64))))


class _Pool:
    """Clip indices in shuffled order; reshuffled (and counted) when used up."""

    def __init__(self, indices: np.ndarray, rng: np.random.Generator) -> None:
        self.indices = np.asarray(indices)
        self.rng = rng
        self.order: list[int] = []
        self.passes = 0

    def __bool__(self) -> bool:
        return len(self.indices) > 0

    def next(self) -> int:
        if not self.order:
            self.order = list(self.rng.permutation(self.indices))
            self.passes += 1
        return int(self.order.pop())


def build_stream(ds, indices: np.ndarray, settings: StreamSettings, *, noise: Sequence[np.ndarray] | None = None,
                 progress: bool = True, describe: dict[str, Any] | None = None) -> Stream:
    """Build one stream from the clips ``indices`` of ``ds`` (a :class:`kws.train.data.Dataset`).

    Parameters
    ----------
    ds : Dataset
    indices : int array of clips to draw from (e.g. the test split)
    settings : StreamSettings
    noise : noise sources (float arrays at the dataset's rate); None: the ``silence`` clips among
        ``indices`` (or, when there are none, of the whole dataset)
    progress : show a tqdm bar (stderr; off when not a terminal)
    describe : extra keys for the truth's ``settings`` (data path, split, ...)

    Returns
    -------
    Stream (audio float32 in [-1, 1], truth dict)
    """
    from tqdm import tqdm

    sr = int(ds.sample_rate_hz)
    rng = np.random.default_rng(settings.seed)
    indices = np.asarray(indices, dtype=np.int64)
    names = np.asarray(ds.label_names)[ds.labels[indices]]
    keyword_idx = indices[np.isin(names, KEYWORDS)]
    unknown_idx = indices[names == UNKNOWN]
    if not settings.negatives_only and not len(keyword_idx):
        raise DataError(f"{ds.path}: no keyword clips among the {len(indices)} clips chosen "
                        "(use --split all, or --negatives-only)")
    if settings.unknown_rate > 0 and not len(unknown_idx):
        logger.warning("%s: no unknown clips among the clips chosen; the stream has no unknown words", ds.path)
    if settings.negatives_only and not len(unknown_idx):
        logger.warning("negatives-only stream without unknown clips: noise only")

    n_total = int(round(settings.minutes * 60 * sr))
    speech = np.zeros(n_total, dtype=np.float32)
    keywords = _Pool(keyword_idx, rng)
    unknowns = _Pool(unknown_idx, rng)
    events: list[dict[str, Any]] = []
    unknown_events: list[dict[str, Any]] = []
    word_powers: list[float] = []
    skipped_silent = 0

    def gap() -> int:
        return int(round(rng.uniform(*settings.gap_s) * sr))

    def place(idx: int, cursor: int) -> tuple[int, dict[str, Any] | None]:
        """Put clip idx at cursor; returns (new cursor, event) or (cursor, None) when it is silent."""
        nonlocal skipped_silent
        word = cut_word(ds.audio(idx), sample_rate_hz=sr)
        if word is None:
            skipped_silent += 1
            return cursor, None
        segment, offset, length, power = word
        if cursor + len(segment) > n_total:
            return n_total, None
        gain = 1.0
        if settings.level_spread_db is not None:
            gain = level_gain(power, settings.level_spread_db, rng)
            power *= gain ** 2
        speech[cursor:cursor + len(segment)] += np.float32(gain) * segment
        word_powers.append(power)
        start = cursor + offset
        event = {"label": str(ds.label_names[ds.labels[idx]]),
                 "start_s": round(start / sr, 4), "end_s": round((start + length) / sr, 4),
                 "speaker": None if ds.speaker is None else str(ds.speaker[idx]),
                 "clip_index": int(idx), "level_gain": round(gain, 6)}
        return cursor + len(segment), event

    cursor = gap()
    bar = tqdm(total=int(round(n_total / sr)), unit="s", desc="stream", disable=None if progress else True,
               leave=False)
    shown = 0
    while cursor < n_total:
        if settings.negatives_only:
            plan = [UNKNOWN] if unknowns else []
        else:
            n_unknown = int(rng.poisson(settings.unknown_rate)) if unknowns else 0
            plan = [UNKNOWN] * n_unknown + ["keyword"]
        if not plan:
            break
        for kind in plan:
            idx = unknowns.next() if kind == UNKNOWN else keywords.next()
            cursor, event = place(idx, cursor)
            if cursor >= n_total:
                break
            if event is None:
                continue
            (unknown_events if kind == UNKNOWN else events).append(event)
            cursor += gap()
        now = min(n_total, cursor) // sr
        bar.update(now - shown)
        shown = now
    bar.close()
    if skipped_silent:
        logger.warning("skipped %d silent clip(s) with no speech to place", skipped_silent)

    # Noise at the chosen SNR relative to the placed speech.
    audio = speech
    noise_rms = 0.0
    if math.isfinite(settings.snr_db):
        if noise is None:
            silence_idx = indices[names == SILENCE]
            if not len(silence_idx):
                silence_idx = np.flatnonzero(np.asarray(ds.label_names)[ds.labels] == SILENCE)
                if len(silence_idx):
                    logger.warning("the chosen clips hold no %s clip: the noise comes from the npz's %d %s clips, "
                                   "which a model may have trained on (give --noise-dir for unseen noise)",
                                   SILENCE, len(silence_idx), SILENCE)
            noise = [ds.audio(int(i)) for i in silence_idx]
        if word_powers:
            speech_power = float(np.mean(word_powers))
        else:  # nothing placed (an empty negatives stream): the level of typical speech
            speech_power = 0.1 ** 2
        noise_rms = math.sqrt(speech_power / 10 ** (settings.snr_db / 10))
        audio = speech + np.float32(noise_rms) * noise_bed(n_total, noise, rng, sample_rate_hz=sr)
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    gain = 1.0
    if peak > 0.99:
        gain = 0.99 / peak
        audio *= np.float32(gain)
        logger.info("scaled the stream by %.3f to avoid clipping (the SNR is unchanged)", gain)

    truth = {
        "format": TRUTH_FORMAT,
        "sample_rate_hz": sr,
        "duration_s": n_total / sr,
        "events": events,
        "unknown_events": unknown_events,
        "settings": {
            **asdict(settings), "gap_s": list(settings.gap_s),
            "snr_db": settings.snr_db if math.isfinite(settings.snr_db) else None,
            "noise_rms": noise_rms * gain, "gain": gain,
            "keyword_clips_available": int(len(keyword_idx)), "unknown_clips_available": int(len(unknown_idx)),
            "keyword_passes": keywords.passes, "unknown_passes": unknowns.passes,
            "trim": {"frame_ms": FRAME_MS, "hop_ms": HOP_MS, "db_below_peak": TRIM_DB_BELOW_PEAK,
                     "db_above_floor": TRIM_DB_ABOVE_FLOOR, "bridge_ms": BRIDGE_MS, "pad_s": PAD_S},
            **(describe or {}),
        },
    }
    if keywords.passes > 1:
        logger.warning("the %d keyword clips were used up to %d times each; a longer stream repeats clips",
                       len(keyword_idx), keywords.passes)
    return Stream(audio.astype(np.float32, copy=False), sr, truth)


# -------------------------------------------------------------------------------------------
# Command line (registered as ``kws-data stream`` by kws.train.data_cli)
# -------------------------------------------------------------------------------------------
HELP = "build a long test stream (wav + truth JSON) with keywords at known times"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``kws-data stream`` options to ``parser``."""
    parser.add_argument("--data", required=True, metavar="FILE.npz", help="the npz to draw clips from")
    parser.add_argument("--minutes", required=True, type=float, metavar="M", help="stream length in minutes")
    parser.add_argument("--out", required=True, metavar="STREAM.wav", help="the stream (8 kHz 16-bit wav)")
    parser.add_argument("--truth", metavar="TRUTH.json",
                        help="where to write the keyword times, a .json path (default: STREAM.json beside --out)")
    parser.add_argument("--snr-db", type=float, default=10.0,
                        help="speech-to-noise ratio of the added background noise in dB "
                             "(default 10; 'inf' adds none)")
    parser.add_argument("--level-spread-db", type=float, default=10.0, metavar="DB",
                        help="bring every word to one speech level, then vary it uniformly by "
                             "±DB/2 (default 10: talkers of different loudness)")
    parser.add_argument("--keep-levels", action="store_true",
                        help="keep each clip's own recording level instead (crowd-sourced clips "
                             "span ~25 dB: a much harsher, less realistic test)")
    parser.add_argument("--noise-dir", metavar="DIR",
                        help="folder of .wav noise recordings (default: the split's silence clips)")
    parser.add_argument("--negatives-only", action="store_true",
                        help="no keywords: unknown words and noise only (measures false accepts)")
    parser.add_argument("--pair", action="store_true",
                        help="also write a negatives-only stream of the same length beside it "
                             "(STREAM_negatives.wav + TRUTH_negatives.json, seed + 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed, an integer >= 0 (default 0)")
    parser.add_argument("--split", choices=SPLITS, default="test",
                        help="which split's clips to use (default: test, the held-out speakers)")
    parser.add_argument("--model-json", metavar="MODEL.json",
                        help="take the split settings (seed, fractions) from this model's JSON, so the "
                             "stream holds exactly that model's test speakers")
    parser.add_argument("--gap-s", type=float, nargs=2, default=(1.5, 4.0), metavar=("MIN", "MAX"),
                        help="silence between words in seconds, uniform (default 1.5 4.0)")
    parser.add_argument("--unknown-rate", type=float, default=1.0,
                        help="mean number of unknown words between two keywords (default 1.0)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite existing output files (the wavs and truth JSONs, --pair's too)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="allow object-dtype (pickled) arrays in --data; only for a file you trust")


def _split_indices(ds, split: str, model_json: str | None) -> tuple[np.ndarray, dict[str, Any]]:
    from kws.runtime.meta import split_seed_and_fractions, trained_parts
    from kws.train.data import SPLIT_METHODS, split_dataset

    if split == "all":
        return np.arange(len(ds)), {"split": "all"}
    kwargs: dict[str, Any] = {}
    if model_json:
        from kws.runtime.meta import ModelMeta

        saved = ModelMeta.load(model_json).extra.get("split")
        if not isinstance(saved, dict):
            raise DataError(f"--model-json {model_json}: has no 'split' section (expected the JSON of a "
                            "model trained by kws-train)")
        kwargs = split_seed_and_fractions(saved)
        if saved.get("by") in SPLIT_METHODS:
            kwargs["by"] = saved["by"]
        trained_on = trained_parts(saved)
        if split != "train" and split in trained_on:
            raise DataError(f"--split {split}: the model of --model-json {model_json} was trained on its {split} "
                            f"speakers too (split.trained_on {list(trained_on)}); a stream of them holds no "
                            "held-out speaker. Pass the JSON of a model of the same recipe trained on the "
                            "training split only (kws-train --train-on train)")
    parts = split_dataset(ds, **kwargs)
    chosen = {"test": parts.test, "val": parts.val, "train": parts.train}[split]
    return np.asarray(chosen), {"split": split, "split_settings": kwargs or "defaults", "split_by": parts.by}


def _negatives_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}_negatives{path.suffix}")


def _output_paths(args: argparse.Namespace) -> dict[str, Path]:
    """The files ``kws-data stream`` writes, keyed by the option that names them (for messages)."""
    out = Path(args.out)
    truth = Path(args.truth) if args.truth is not None else out.with_suffix(".json")
    paths = {"--out": out, "--truth": truth}
    if args.pair:
        paths["--pair (stream)"] = _negatives_path(out)
        paths["--pair (truth)"] = _negatives_path(truth)
    return paths


def _check_outputs(args: argparse.Namespace) -> dict[str, Path]:
    """Refuse outputs that clash with each other or an input, have the wrong suffix, are folders,
    lie in a missing folder, or exist without --force; before anything is read or built."""
    paths = _output_paths(args)
    check_distinct(paths, {"--data": Path(args.data),
                           "--model-json": Path(args.model_json) if getattr(args, "model_json", None) else None})
    for flag, path in paths.items():
        check_output(path, flag=flag, suffix=".json" if "truth" in flag else ".wav",
                     force=getattr(args, "force", False), make_folder=True)
    return paths


def _writers(stream: Stream, out: Path, truth_path: Path) -> list[tuple[Path, Callable[[Path], Any]]]:
    """(path, write) pairs for :func:`write_atomically`: the stream wav and its truth JSON."""
    import json

    from kws.runtime.audio_io import write_wav

    text = json.dumps(stream.truth, indent=1) + "\n"
    return [(out, lambda tmp: write_wav(tmp, stream.audio, stream.sample_rate_hz)),
            (truth_path, lambda tmp: tmp.write_text(text))]


def _report(stream: Stream, out: Path, truth_path: Path) -> None:
    truth = stream.truth
    counts: dict[str, int] = {}
    for event in truth["events"]:
        counts[event["label"]] = counts.get(event["label"], 0) + 1
    snr = truth["settings"]["snr_db"]
    print(f"wrote {out}: {stream.duration_s / 60:.1f} min, {len(truth['events'])} keywords"
          + (f" ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})" if counts else "")
          + f", {len(truth['unknown_events'])} unknown words, "
          + ("no added noise" if snr is None else f"noise at {snr:g} dB SNR"))
    print(f"wrote {truth_path}")


def run(args: argparse.Namespace) -> int:
    """Run ``kws-data stream`` with parsed ``args``; raises :class:`KwsError` on bad input.

    Every output is checked before the npz is read, and all of them (with --pair, four) are
    written together by :func:`write_atomically` once both streams are built.
    """
    from kws.train.augment import read_noise_wavs
    from kws.train.data import load_npz

    paths = _check_outputs(args)
    out, truth_path = paths["--out"], paths["--truth"]
    settings = StreamSettings(minutes=args.minutes, snr_db=args.snr_db, negatives_only=args.negatives_only,
                              seed=args.seed, gap_s=tuple(args.gap_s), unknown_rate=args.unknown_rate,
                              level_spread_db=None if args.keep_levels else args.level_spread_db)
    if args.pair and args.negatives_only:
        raise KwsError("--pair and --negatives-only: pick one (--pair writes a keyword stream and a "
                       "negatives-only stream)")
    ds = load_npz(args.data, allow_pickle=getattr(args, "allow_pickle", False))
    indices, split_info = _split_indices(ds, args.split, getattr(args, "model_json", None))
    noise = None
    if args.noise_dir:
        noise = read_noise_wavs(args.noise_dir, sample_rate_hz=ds.sample_rate_hz)
    describe = {"data": str(args.data), **split_info, "clips_in_split": int(len(indices)),
                "noise": str(args.noise_dir) if args.noise_dir else "silence clips",
                "model_json": getattr(args, "model_json", None)}
    logger.info("%s: %d clips in the %s split", args.data, len(indices), args.split)
    built = [(build_stream(ds, indices, settings, noise=noise, describe=describe), out, truth_path)]
    if not settings.negatives_only and not built[0][0].truth["events"]:
        logger.warning("%s: the stream holds no keyword (%g minutes, gaps %s s): it scores like a negatives-only "
                       "stream; give more --minutes or shorter --gap-s", out, settings.minutes, settings.gap_s)
    if args.pair:
        neg_settings = StreamSettings(**{**asdict(settings), "negatives_only": True, "seed": settings.seed + 1})
        negatives = build_stream(ds, indices, neg_settings, noise=noise, describe=describe)
        built.append((negatives, paths["--pair (stream)"], paths["--pair (truth)"]))
    write_atomically([w for stream, o, t in built for w in _writers(stream, o, t)])
    for stream, o, t in built:
        _report(stream, o, t)
    return 0
