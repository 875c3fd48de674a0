"""Demo speech from installed text-to-speech engines: a labelled npz and a stream with its truth.

The voices and the speaking are in :mod:`kws.train.tts`. Every clip is spoken with its own rate
and pitch jitter, resampled to 8 kHz, trimmed to the word, placed at a random offset in one
second, scaled to a random peak and mixed with coloured noise at a random SNR. ``silence`` clips
are generated noise (and cut from an npz's ``silence`` clips when one is given).

Nothing here says anything about accuracy on human speech: synthetic voices are far more alike
than people. It is demo data, made by this generator, free of third-party recordings.

``kws-data demo`` (see :func:`add_arguments` and :func:`run`) writes the npz in the seed's
schema plus ``speaker`` and ``word``, and a stream wav with a truth JSON in the format of
``kws-data stream``. Where no engine is installed it says so and returns
:data:`kws.train.tts.EXIT_NO_ENGINE`, so that callers (the quickstart) can fall back to the
committed ``models/demo_stream.wav``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

from kws.runtime.audio_io import write_wav
from kws.runtime.errors import DataError
from kws.runtime.labels import KEYWORDS, SEED_LABELS, SILENCE, UNKNOWN
from kws.runtime.resample import resample_poly
from kws.runtime.scoring import TRUTH_FORMAT
from kws.runtime.fileio import check_distinct, check_output, check_seed, npz_writer, write_atomically
from kws.train.tts import (ENGINES, EXIT_NO_ENGINE, SAMPLE_RATE_HZ, NoEngineError, Voice, speak_many,
                           describe_voices, detect_voices, no_engine_message, trim_word)

logger = logging.getLogger(__name__)

CLIP_SAMPLES = 8000

#: Demo stream length limits in seconds (``--stream-seconds``).
MIN_STREAM_SECONDS = 3.0
MAX_STREAM_SECONDS = 36000.0

#: Words spoken as ``unknown``: the other words of Google Speech Commands. None of them sounds
#: like a keyword (no "know", "write", "of").
UNKNOWN_WORDS: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
    "learn", "follow", "forward", "backward", "visual",
)


# ------------------------------------------------------------------------------------------
# Signal helpers
# ------------------------------------------------------------------------------------------
def speed_perturb(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (pitch and tempo together, like Kaldi's speed perturbation)."""
    if abs(factor - 1.0) < 1e-3:
        return audio
    frac = Fraction(factor).limit_denominator(50)
    return resample_poly(audio, frac.denominator, frac.numerator).astype(np.float32)


def colored_noise(n: int, rng: np.random.Generator, *, kind: str | None = None) -> np.ndarray:
    """Unit-RMS noise: ``white``, ``pink``, ``brown`` or ``hum`` (50/60 Hz harmonics + pink)."""
    kind = kind or str(rng.choice(["white", "pink", "brown", "hum"]))
    if kind not in ("white", "pink", "brown", "hum"):
        raise DataError(f"unknown noise kind {kind!r}; expected white, pink, brown or hum")
    white = rng.normal(0.0, 1.0, n)
    if kind == "white":
        y = white
    else:
        spec = np.fft.rfft(white)
        f = np.arange(len(spec), dtype=np.float64)
        f[0] = 1.0
        spec /= np.sqrt(f) if kind in ("pink", "hum") else f
        y = np.fft.irfft(spec, n)
        if kind == "hum":
            t = np.arange(n) / SAMPLE_RATE_HZ
            mains = float(rng.choice([50.0, 60.0]))
            y = y / (np.std(y) + 1e-12)
            y += sum(rng.uniform(0.5, 2.0) / k * np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 2 * np.pi))
                     for k in range(1, 6))
    y = y - y.mean()
    return (y / (np.std(y) + 1e-12)).astype(np.float32)


def _noise_bank(noise_npz: str | Path | None, *, allow_pickle: bool = False) -> np.ndarray | None:
    """The ``silence`` clips of an npz as float32 (K, 8000), or None."""
    if noise_npz is None:
        return None
    from kws.train.data import load_npz

    ds = load_npz(noise_npz, allow_pickle=allow_pickle)
    idx = np.flatnonzero(ds.labels == ds.label_names.index(SILENCE))
    if idx.size == 0:
        raise DataError(f"{noise_npz}: has no 'silence' clips to take noise from")
    return ds.audio(idx)


@dataclass(frozen=True)
class Jitter:
    """Per-utterance randomness."""

    rate: tuple[float, float] = (0.8, 1.25)          # engine speaking rate
    pitch: tuple[float, float] = (0.7, 1.3)          # espeak-ng pitch (x 50)
    speed: tuple[float, float] = (0.92, 1.08)        # speed perturbation, all engines
    peak: tuple[float, float] = (0.1, 0.9)           # word peak level
    snr_db: tuple[float, float] = (10.0, 40.0)       # word RMS over noise RMS
    silence_rms: tuple[float, float] = (3e-4, 5e-2)  # log-uniform level of silence clips


# ------------------------------------------------------------------------------------------
# The labelled set
# ------------------------------------------------------------------------------------------
def select_voices(voices: Sequence[Voice], *, n: int, n_stream: int, seed: int = 0) -> tuple[list[Voice], list[Voice]]:
    """Pick ``n`` voices for the labelled set and ``n_stream`` others for the stream.

    Every voice of flite, festival and MBROLA is taken (they are few); espeak-ng voice x variant
    combinations fill the rest, spread over its English voices. The stream's voices are held out
    from the set (round robin over engines) unless there is only one voice.
    """
    if not voices:
        raise NoEngineError(no_engine_message())
    rng = np.random.default_rng(seed)
    espeak = [v for v in voices if v.engine == "espeak-ng"]
    others = [v for v in voices if v.engine != "espeak-ng"]
    rng.shuffle(others)
    by_base: dict[str, list[Voice]] = {}
    for v in espeak:
        by_base.setdefault(v.voice, []).append(v)
    for vs in by_base.values():
        rng.shuffle(vs)
    rr: list[Voice] = []
    bases = sorted(by_base)
    rng.shuffle(bases)
    for i in range(max((len(vs) for vs in by_base.values()), default=0)):
        rr += [by_base[b][i] for b in bases if i < len(by_base[b])]
    pool = (others + rr)[: n + n_stream]
    if len(pool) == 1:
        return list(pool), list(pool)
    # Stream voices: round robin over engines, taking engines with most voices first.
    n_stream = min(n_stream, len(pool) - 1)
    stream: list[Voice] = []
    engines = sorted({v.engine for v in pool}, key=lambda e: -sum(v.engine == e for v in pool))
    while len(stream) < n_stream:
        for e in engines:
            cand = [v for v in pool if v.engine == e and v not in stream]
            if len(stream) < n_stream and len(cand) > 1:
                stream.append(cand[-1])
        if not any(sum(v.engine == e and v not in stream for v in pool) > 1 for e in engines):
            break
    train = [v for v in pool if v not in stream][:n]
    return train, stream


def place_word(word: np.ndarray, rng: np.random.Generator, jitter: Jitter, noise: np.ndarray) -> np.ndarray:
    """Word at a random offset in one second, scaled to a random peak, over noise at a random SNR."""
    limit = CLIP_SAMPLES - 400
    if len(word) > limit:
        word = speed_perturb(word, len(word) / limit)[:limit]
    word = word * np.float32(rng.uniform(*jitter.peak) / (np.abs(word).max() + 1e-9))
    clip = np.zeros(CLIP_SAMPLES, np.float32)
    start = int(rng.integers(0, CLIP_SAMPLES - len(word) + 1))
    clip[start:start + len(word)] = word
    rms = float(np.sqrt(np.mean(word ** 2)))
    snr = rng.uniform(*jitter.snr_db)
    clip += noise * np.float32(rms / 10 ** (snr / 20))
    return np.clip(clip, -1.0, 1.0)


def _silence_clip(rng: np.random.Generator, jitter: Jitter, bank: np.ndarray | None) -> tuple[np.ndarray, str]:
    """One second of noise and what it is (``noise:pink``, ``npz:17`` = silence clip 17 of the npz)."""
    level = math.exp(rng.uniform(math.log(jitter.silence_rms[0]), math.log(jitter.silence_rms[1])))
    kind = str(rng.choice(["white", "pink", "brown", "hum"]))
    clip = colored_noise(CLIP_SAMPLES, rng, kind=kind) * np.float32(level)
    what = f"noise:{kind}"
    if bank is not None and rng.random() < 0.5:
        k = int(rng.integers(len(bank)))
        clip = bank[k] * np.float32(rng.uniform(0.3, 1.5)) + 0.1 * clip
        what = f"npz:{k}"
    return np.clip(clip, -1.0, 1.0).astype(np.float32), what


def speak_words(voices: Sequence[Voice], words: Sequence[str], rng: np.random.Generator, jitter: Jitter,
                jobs: int, progress: bool, desc: str) -> list[np.ndarray]:
    """Speak ``words[i]`` with ``voices[i]`` (jittered), trimmed; in chunks with a progress bar."""
    items = [(v, w, float(rng.uniform(*jitter.rate)), float(rng.uniform(*jitter.pitch)))
             for v, w in zip(voices, words)]
    speeds = rng.uniform(*jitter.speed, len(items))
    out: list[np.ndarray] = []
    from tqdm.auto import tqdm

    chunk = 64
    with tempfile.TemporaryDirectory(prefix="kws-tts-") as tmp, \
            tqdm(total=len(items), desc=desc, unit="word", disable=not progress, leave=False) as bar:
        for i in range(0, len(items), chunk):
            audio = speak_many(items[i:i + chunk], Path(tmp), jobs)
            out += [trim_word(speed_perturb(a, float(s))) for a, s in zip(audio, speeds[i:i + chunk])]
            bar.update(len(audio))
    return out


def demo_dataset(voices: Sequence[Voice], *, clips_per_label: int = 40, seed: int = 0,
                 noise_npz: str | Path | None = None, jitter: Jitter = Jitter(), jobs: int = 2,
                 progress: bool = True, allow_pickle: bool = False) -> dict[str, np.ndarray]:
    """A labelled demo set in the seed npz schema, spoken by ``voices``.

    Each keyword and ``unknown`` gets ``clips_per_label`` clips, the voices taking turns (so
    every voice says every keyword when there are enough clips); ``unknown`` clips say words
    from :data:`UNKNOWN_WORDS`; ``silence`` clips are noise.

    Returns
    -------
    dict with ``wav_vals`` float32 (N, 8000) in [-1, 1], ``label_vals`` str (N, 1),
    ``speaker`` str (N,) (``engine:voice:variant``; ``noise:NNN`` pseudo-speakers for silence) and
    ``word`` str (N,) (the word spoken; for silence the noise: ``noise:pink``, ``npz:K``).
    """
    if not voices:
        raise NoEngineError(no_engine_message())
    if clips_per_label < 1:
        raise DataError(f"clips_per_label={clips_per_label}; expected at least 1")
    rng = np.random.default_rng(check_seed(seed))
    bank = _noise_bank(noise_npz, allow_pickle=allow_pickle)
    labels, words, speakers = [], [], []
    for label in SEED_LABELS:
        if label == SILENCE:
            continue
        offset = int(rng.integers(len(voices)))
        for i in range(clips_per_label):
            labels.append(label)
            words.append(str(rng.choice(UNKNOWN_WORDS)) if label == UNKNOWN else label)
            speakers.append(voices[(offset + i) % len(voices)])
    audio = speak_words(speakers, words, rng, jitter, jobs, progress, "speaking")
    clips = [place_word(a, rng, jitter, colored_noise(CLIP_SAMPLES, rng)) for a in audio]
    silence = [_silence_clip(rng, jitter, bank) for _ in range(clips_per_label)]
    clips += [c for c, _ in silence]
    labels += [SILENCE] * clips_per_label
    words += [w for _, w in silence]
    # Noise has no speaker; pseudo-speakers (one per voice slot) let a speaker split spread it.
    names = [v.speaker for v in speakers] + [f"noise:{i % len(voices):03d}" for i in range(clips_per_label)]
    order = rng.permutation(len(clips))
    return {
        "wav_vals": np.stack(clips)[order].astype(np.float32),
        "label_vals": np.array(labels)[order][:, None],
        "speaker": np.array(names)[order],
        "word": np.array(words)[order],
    }


# ------------------------------------------------------------------------------------------
# The demo stream
# ------------------------------------------------------------------------------------------
def check_stream_seconds(seconds: float) -> float:
    """``seconds`` when it is a finite stream length in [MIN_STREAM_SECONDS, MAX_STREAM_SECONDS]."""
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds)
            and MIN_STREAM_SECONDS <= seconds <= MAX_STREAM_SECONDS):
        raise DataError(f"--stream-seconds {seconds}: expected a number of seconds in "
                        f"[{MIN_STREAM_SECONDS:g}, {MAX_STREAM_SECONDS:g}]")
    return float(seconds)


def demo_stream(voices: Sequence[Voice], *, seconds: float = 36.0, seed: int = 0, unknown_fraction: float = 0.3,
                gap_s: tuple[float, float] = (1.0, 2.2), noise_rms: float = 0.004,
                noise_npz: str | Path | None = None, jitter: Jitter = Jitter(snr_db=(20.0, 40.0)),
                jobs: int = 2, progress: bool = True, allow_pickle: bool = False) -> tuple[np.ndarray, dict]:
    """A stream of keywords and other words at known times over background noise.

    Keywords come in shuffled rounds (each of the ten once per round); a fraction
    ``unknown_fraction`` of the utterances are other words. Gaps between words are uniform in
    ``gap_s`` seconds, so a 1 s refractory period never merges two events.

    Returns
    -------
    audio : float32 (round(seconds * 8000),) in [-1, 1] at 8 kHz
    truth : dict in the ``kws-data stream`` format (``kws-stream-truth/1``, read by
        :func:`kws.runtime.scoring.load_truth`): ``format``, ``sample_rate_hz``, ``duration_s``,
        ``events`` [{label, start_s, end_s, speaker}], ``unknown_events`` [{label, word,
        start_s, end_s, speaker}], ``settings``.
    """
    if not voices:
        raise NoEngineError(no_engine_message())
    check_stream_seconds(seconds)
    rng = np.random.default_rng(check_seed(seed))
    n_total = int(round(seconds * SAMPLE_RATE_HZ))
    # Plan more words than fit, speak them, then lay them out until the stream is full.
    n_plan = int(seconds / (gap_s[0] + 0.3)) + 2
    plan: list[tuple[str, str]] = []
    round_kw: list[str] = []
    for _ in range(n_plan):
        if rng.random() < unknown_fraction:
            plan.append((UNKNOWN, str(rng.choice(UNKNOWN_WORDS))))
        else:
            if not round_kw:
                round_kw = list(rng.permutation(KEYWORDS))
            kw = round_kw.pop()
            plan.append((kw, kw))
    who = [voices[int(rng.integers(len(voices)))] for _ in plan]
    audio_words = speak_words(who, [w for _, w in plan], rng, jitter, jobs, progress, "stream")
    bank = _noise_bank(noise_npz, allow_pickle=allow_pickle)
    background = colored_noise(n_total, rng, kind="pink") * np.float32(noise_rms)
    if bank is not None:
        reps = np.concatenate([bank[int(rng.integers(len(bank)))] for _ in range(n_total // CLIP_SAMPLES + 1)])
        background += reps[:n_total] * np.float32(0.5)
    stream = background.copy()
    events, unknown_events = [], []
    t = int(rng.uniform(0.5, 1.5) * SAMPLE_RATE_HZ)
    for (label, word), voice, a in zip(plan, who, audio_words):
        a = a * np.float32(rng.uniform(*jitter.peak) / (np.abs(a).max() + 1e-9))
        if t + len(a) > n_total - int(0.3 * SAMPLE_RATE_HZ):
            break
        stream[t:t + len(a)] += a
        ev = {"label": label, "start_s": round(t / SAMPLE_RATE_HZ, 4),
              "end_s": round((t + len(a)) / SAMPLE_RATE_HZ, 4), "speaker": voice.speaker}
        if label == UNKNOWN:
            unknown_events.append({**ev, "word": word})
        else:
            events.append(ev)
        t += len(a) + int(rng.uniform(*gap_s) * SAMPLE_RATE_HZ)
    truth = {
        "format": TRUTH_FORMAT,
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "duration_s": n_total / SAMPLE_RATE_HZ,
        "events": events,
        "unknown_events": unknown_events,
        "settings": {
            "generator": "kws-data demo (kws.train.demo)",
            "seed": seed,
            "voices": sorted({v.speaker for v in voices}),
            "engines": sorted({v.engine for v in voices}),
            "unknown_fraction": unknown_fraction,
            "gap_s": list(gap_s),
            "background": "pink noise" + (f" + silence clips of {noise_npz}" if noise_npz else ""),
            "noise_rms": noise_rms,
            "peak": list(jitter.peak),
        },
    }
    return np.clip(stream, -1.0, 1.0).astype(np.float32), truth


# ------------------------------------------------------------------------------------------
# kws-data demo
# ------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``kws-data demo``."""
    parser.add_argument("--out", type=Path, default=None, metavar="DEMO.npz",
                        help="write the labelled demo set here (seed schema + speaker, word)")
    parser.add_argument("--stream", type=Path, default=None, metavar="STREAM.wav",
                        help="write a demo stream (8 kHz 16-bit mono) here")
    parser.add_argument("--truth", type=Path, default=None, metavar="TRUTH.json",
                        help="the stream's truth JSON, a .json path (default: STREAM.truth.json)")
    parser.add_argument("--clips-per-label", type=int, default=40,
                        help="clips per label in the npz (default 40)")
    parser.add_argument("--voices", type=int, default=30, dest="n_voices",
                        help="how many synthetic speakers speak the npz (default 30)")
    parser.add_argument("--stream-voices", type=int, default=4,
                        help="speakers of the stream, held out from the npz (default 4)")
    parser.add_argument("--stream-seconds", type=float, default=36.0,
                        help=f"stream length in seconds, {MIN_STREAM_SECONDS:g} to {MAX_STREAM_SECONDS:g} (default 36)")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help=f"comma-separated engines to use (default {','.join(ENGINES)})")
    parser.add_argument("--noise", type=Path, default=None, metavar="FILE.npz",
                        help="also cut silence clips and the stream's background from this npz's silence clips")
    parser.add_argument("--seed", type=int, default=0, help="random seed, an integer >= 0 (default 0)")
    parser.add_argument("--jobs", type=int, default=2, help="engine processes at once (default 2)")
    parser.add_argument("--list-voices", action="store_true", help="print the voices found and exit")
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="allow object-dtype (pickled) arrays in --noise; only for a file you trust")


@dataclass
class DemoResult:
    """What :func:`generate` wrote."""

    voices: list[Voice]
    train_voices: list[Voice]
    stream_voices: list[Voice]
    npz: Path | None = None
    n_clips: int = 0
    stream: Path | None = None
    truth: Path | None = None
    n_events: int = 0
    n_unknown_events: int = 0
    description: str = ""


def parse_engines(spec: str | Sequence[str]) -> list[str]:
    """Engine names of a comma-separated ``--engines`` value (or a sequence); refuses unknown ones."""
    names = [e.strip() for e in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [e for e in names if e]
    bad = [e for e in names if e not in ENGINES]
    if bad or not names:
        raise DataError(f"--engines {spec!r}: expected a comma-separated subset of {','.join(ENGINES)}")
    return names


_SUFFIXES = {"--out": ".npz", "--stream": ".wav", "--truth": ".json"}


def _output_paths(out: str | Path | None, stream: str | Path | None, truth: str | Path | None, *,
                  noise_npz: str | Path | None, force: bool) -> dict[str, Path]:
    """The files :func:`generate` writes, by option (``--truth`` defaults to STREAM.truth.json).

    Refuses, before anything is generated: two outputs at one path or one at the ``--noise``
    input, a wrong suffix (.npz, .wav, .json), a folder, and an existing file without ``force``.
    """
    if out is None and stream is None:
        raise DataError("nothing to write: give --out DEMO.npz and/or --stream STREAM.wav")
    if truth is not None and stream is None:
        raise DataError(f"--truth {truth}: is the truth of --stream; give --stream STREAM.wav too")
    if stream is not None and truth is None and Path(stream).suffix.lower() == ".wav":
        truth = Path(stream).with_suffix(".truth.json")
    paths = {flag: Path(p) for flag, p in (("--out", out), ("--stream", stream), ("--truth", truth))
             if p is not None}
    if noise_npz is not None and not Path(noise_npz).is_file():
        raise DataError(f"--noise {noise_npz}: file not found (expected an npz with silence clips)")
    check_distinct(paths, {"--noise": Path(noise_npz) if noise_npz is not None else None})
    for flag, path in paths.items():
        check_output(path, flag=flag, suffix=_SUFFIXES[flag], force=force, make_folder=True)
    return paths


def generate(*, out: str | Path | None = None, stream: str | Path | None = None, truth: str | Path | None = None,
             clips_per_label: int = 40, n_voices: int = 30, stream_voices: int = 4, stream_seconds: float = 36.0,
             engines: str | Sequence[str] = ENGINES, noise_npz: str | Path | None = None, seed: int = 0,
             jobs: int = 2, force: bool = False, progress: bool = True,
             path: str | None = None, allow_pickle: bool = False) -> DemoResult:
    """Detect engines, then write the demo npz and/or stream. Raises :class:`NoEngineError`.

    Every flag and output path is checked before the engines are asked for anything; the npz,
    stream and truth are written together (temporary files renamed into place) once all of them
    have been generated, so a failed run leaves no file half-written.
    """
    for name, value, lo in (("--clips-per-label", clips_per_label, 1), ("--voices", n_voices, 1),
                            ("--stream-voices", stream_voices, 1), ("--jobs", jobs, 1)):
        if value < lo:
            raise DataError(f"{name} {value}: expected at least {lo}")
    check_seed(seed)
    check_stream_seconds(stream_seconds)
    paths = _output_paths(out, stream, truth, noise_npz=noise_npz, force=force)
    engine_list = parse_engines(engines)
    voices = detect_voices(engines=engine_list, path=path)
    if not voices:
        raise NoEngineError(no_engine_message(engine_list))
    desc = describe_voices(voices)
    logger.info("text-to-speech voices found:\n%s", desc)
    train_v, stream_v = select_voices(voices, n=n_voices, n_stream=stream_voices, seed=seed)
    result = DemoResult(voices, train_v, stream_v, description=desc)
    writers = []
    if "--out" in paths:
        data = demo_dataset(train_v, clips_per_label=clips_per_label, seed=seed, noise_npz=noise_npz, jobs=jobs,
                            progress=progress, allow_pickle=allow_pickle)
        writers.append((paths["--out"], npz_writer(data)))
        result.npz, result.n_clips = paths["--out"], len(data["wav_vals"])
    if "--stream" in paths:
        audio, tr = demo_stream(stream_v, seconds=stream_seconds, seed=seed + 1, noise_npz=noise_npz, jobs=jobs,
                                progress=progress, allow_pickle=allow_pickle)
        text = json.dumps(tr, indent=2) + "\n"
        writers += [(paths["--stream"], lambda tmp: write_wav(tmp, audio, SAMPLE_RATE_HZ)),
                    (paths["--truth"], lambda tmp: tmp.write_text(text))]
        result.stream, result.truth = paths["--stream"], paths["--truth"]
        result.n_events, result.n_unknown_events = len(tr["events"]), len(tr["unknown_events"])
    write_atomically(writers)
    if result.npz is not None:
        logger.info("wrote %s: %d clips, %d speakers (%s)", result.npz, result.n_clips, len(train_v),
                    ", ".join(sorted({v.engine for v in train_v})))
    if result.stream is not None:
        logger.info("wrote %s (%.1f s, %d keywords, %d other words; voices %s) and %s", result.stream,
                    stream_seconds, result.n_events, result.n_unknown_events,
                    ", ".join(v.speaker for v in stream_v), result.truth)
    return result


def run(args: argparse.Namespace) -> int:
    """``kws-data demo``: returns 0, or :data:`EXIT_NO_ENGINE` (3) when no engine is installed.

    Other problems raise :class:`KwsError` (caught by the command's ``run_main``).
    """
    engines = parse_engines(args.engines)
    if args.list_voices:
        voices = detect_voices(engines=engines)
        print(describe_voices(voices))
        for v in voices:
            print(v.speaker)
        return 0 if voices else EXIT_NO_ENGINE
    try:
        res = generate(out=args.out, stream=args.stream, truth=args.truth, clips_per_label=args.clips_per_label,
                       n_voices=args.n_voices, stream_voices=args.stream_voices, stream_seconds=args.stream_seconds,
                       engines=engines, noise_npz=args.noise, seed=args.seed, jobs=args.jobs, force=args.force,
                       progress=os.isatty(2), allow_pickle=getattr(args, "allow_pickle", False))
    except NoEngineError as exc:
        print(f"kws-data demo: {exc}", file=sys.stderr, flush=True)
        return EXIT_NO_ENGINE
    print("voices found:")
    print("  " + res.description.replace("\n", "\n  "))
    if res.npz:
        print(f"{res.npz}: {res.n_clips} clips, {len(res.train_voices)} speakers "
              f"({', '.join(sorted({v.engine for v in res.train_voices}))})")
    if res.stream:
        print(f"{res.stream}: {args.stream_seconds:.1f} s, {res.n_events} keywords, {res.n_unknown_events} other "
              f"words, voices {', '.join(v.speaker for v in res.stream_voices)}; truth {res.truth}")
    return 0
