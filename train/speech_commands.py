"""Build a seed-schema npz from a Google Speech Commands folder tree (``kws-data from-folder``).

Expected tree (v0.01 or v0.02, as unpacked from the tarball)::

    DIR/yes/0a7c2a8d_nohash_0.wav        one folder per word, 16 kHz 16-bit mono, <= 1 s
    DIR/bed/...                          non-keywords -> "unknown"
    DIR/_background_noise_/*.wav         long noise recordings -> "silence" clips are cut from them
    DIR/validation_list.txt              "word/file.wav" per line (optional)
    DIR/testing_list.txt                 (optional)

The official test-set tarball's ``_silence_`` and ``_unknown_`` folders are taken as ``silence``
and ``unknown`` clips too. Other folders starting with ``_`` are skipped.

Every clip is resampled to 8 kHz with a polyphase filter (:func:`scipy.signal.resample_poly`),
then padded with zeros at the end or, when longer, cut to its loudest second. The npz holds
``wav_vals`` (N, 8000) int16 (or float32), ``label_vals`` (N, 1), ``speaker`` (N,) = the file name
part before ``_nohash_`` (``noise:<file>`` for background-noise crops), ``word`` (N,) = the folder,
and ``split`` (N,) = train / validation / testing from the two lists (when they exist).

Silence clips come from disjoint regions of each noise file: its first 80 % feeds ``train``, the
next 10 % ``validation`` and the last 10 % ``testing``, so no noise audio is in two splits of the
``split`` array. Their gains are log-uniform between -40 dB and 0 dB.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws.runtime.audio_io import read_wav, to_mono
from kws.runtime.errors import DataError
from kws.runtime.fileio import check_output, check_seed, save_npz
from kws.runtime.labels import KEYWORDS, SILENCE, UNKNOWN
from kws.runtime.features import to_pcm16

logger = logging.getLogger(__name__)

NOISE_DIR = "_background_noise_"
#: Folders of the official test-set tarball that hold ready-made clips.
SPECIAL_DIRS = {"_silence_": SILENCE, "_unknown_": UNKNOWN}
LIST_FILES = {"validation": "validation_list.txt", "testing": "testing_list.txt"}
#: Shares of each noise file's timeline that feed train / validation / testing silence clips.
NOISE_REGIONS = (("train", 0.8), ("validation", 0.1), ("testing", 0.1))
SILENCE_GAIN_DB = (-40.0, 0.0)


@dataclass
class FolderSummary:
    """What :func:`build_from_folder` wrote."""

    out: Path
    n_clips: int
    counts: dict[str, int]
    n_speakers: int
    n_words: int  # word folders read (noise files not counted)
    split_counts: dict[str, int] | None
    resampled_from_hz: dict[int, int] = field(default_factory=dict)  # source rate -> files
    skipped: list[str] = field(default_factory=list)


def speaker_of(path: Path) -> str:
    """Speaker id from a Speech Commands file name: the part before ``_nohash_`` (else the stem)."""
    stem = path.stem
    return stem.split("_nohash_")[0] if "_nohash_" in stem else stem


def fit_length(clip: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad at the end to ``n`` samples, or keep the loudest ``n``-sample window of a longer clip."""
    if len(clip) == n:
        return clip
    if len(clip) < n:
        return np.pad(clip, (0, n - len(clip)))
    energy = np.concatenate([[0.0], np.cumsum(clip.astype(np.float64) ** 2)])
    start = int(np.argmax(energy[n:] - energy[:-n]))
    return clip[start:start + n]


def to_rate(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Polyphase resampling (scipy.signal.resample_poly, Kaiser window) -> float32."""
    if from_hz == to_hz:
        return audio.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = math.gcd(int(from_hz), int(to_hz))
    return resample_poly(audio, to_hz // g, from_hz // g).astype(np.float32)


def _read_list(root: Path, name: str) -> set[str] | None:
    path = root / name
    if not path.is_file():
        return None
    return {line.strip().replace("\\", "/") for line in path.read_text().splitlines() if line.strip()}


def _scan(root: Path, keywords: tuple[str, ...]) -> tuple[list[tuple[Path, str, str]], list[Path], list[str]]:
    """-> ([(wav, label, word)], noise wavs, skipped folder names)."""
    items: list[tuple[Path, str, str]] = []
    skipped: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        word = folder.name
        if word == NOISE_DIR:
            continue
        if word.startswith("_") and word not in SPECIAL_DIRS or word.startswith("."):
            skipped.append(word)
            continue
        label = SPECIAL_DIRS.get(word) or (word if word in keywords else UNKNOWN)
        for wav in sorted(folder.glob("*.wav")):
            items.append((wav, label, word))
    noise_dir = root / NOISE_DIR
    noise = sorted(noise_dir.glob("*.wav")) if noise_dir.is_dir() else []
    return items, noise, skipped


def _cut_silence(noise_files: list[Path], n_clips: int, *, sample_rate_hz: int, window_samples: int,
                 rng: np.random.Generator, with_split: bool) -> list[tuple[np.ndarray, str, str, str | None]]:
    """``n_clips`` random one-window crops at random gains, spread over the files and their regions."""
    if n_clips <= 0:
        return []
    sources = []
    for path in noise_files:
        audio, rate = read_wav(path)
        audio = to_rate(to_mono(audio), rate, sample_rate_hz)
        if len(audio) < window_samples:
            logger.warning("%s: %.2f s of noise is shorter than one clip; skipped", path, len(audio) / sample_rate_hz)
            continue
        sources.append((path, audio))
    if not sources:
        raise DataError(f"no usable {NOISE_DIR} recordings (each must hold at least "
                        f"{window_samples / sample_rate_hz:g} s) to cut {n_clips} silence clips from; "
                        "pass --silence-clips 0 to build without silence")
    out = []
    for i in range(n_clips):
        path, audio = sources[i % len(sources)]
        split = None
        lo, hi = 0, len(audio)
        if with_split:
            region = rng.choice(len(NOISE_REGIONS), p=[share for _, share in NOISE_REGIONS])
            edges = np.cumsum([0.0] + [share for _, share in NOISE_REGIONS]) * len(audio)
            lo, hi = int(edges[region]), int(edges[region + 1])
            if hi - lo < window_samples:  # a short file: its region is too small, use the whole file
                lo, hi = 0, len(audio)
            split = NOISE_REGIONS[region][0]
        start = int(rng.integers(lo, hi - window_samples + 1))
        gain = 10.0 ** (rng.uniform(*SILENCE_GAIN_DB) / 20.0)
        clip = np.clip(audio[start:start + window_samples] * gain, -1.0, 1.0).astype(np.float32)
        out.append((clip, f"noise:{path.stem}", path.stem, split))
    return out


def build_from_folder(root: str | Path, out: str | Path, *, keywords: tuple[str, ...] = KEYWORDS,
                      silence_clips: int | None = None, max_unknown: int | None = None, seed: int = 0,
                      sample_rate_hz: int = 8000, window_samples: int = 8000, dtype: str = "int16",
                      compress: bool = False, force: bool = False, progress: bool = True) -> FolderSummary:
    """Convert a Speech Commands tree into an npz in the seed schema (see the module docstring).

    Parameters
    ----------
    root : the unpacked Speech Commands folder
    out : the .npz to write
    keywords : words that keep their own label (a subset of the seed keywords); other words -> unknown
    silence_clips : number of silence clips cut from ``_background_noise_`` (default: the mean number of
        clips per keyword present)
    max_unknown : keep at most this many ``unknown`` clips (>= 0, a seeded random choice); default all
    seed : seeds the unknown subsample, the silence crops and their gains (an integer >= 0)
    dtype : ``int16`` (PCM, half the size) or ``float32`` (like the seed's file)
    compress : write with ``np.savez_compressed`` (smaller; loads slower and cannot be memory-mapped)
    force : replace an existing ``out`` (otherwise a DataError); ``out`` is written to a temporary
        file beside it and renamed, so a failed run leaves nothing half-written

    Returns
    -------
    FolderSummary
    """
    from tqdm import tqdm

    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory; expected an unpacked Speech Commands tree (one folder per word)")
    bad = [k for k in keywords if k not in KEYWORDS]
    if bad:
        raise DataError(f"keywords {bad} are not in the vocabulary, expected some of {' '.join(KEYWORDS)}")
    if dtype not in ("int16", "float32"):
        raise DataError(f"dtype {dtype!r} is not supported, expected int16 or float32")
    if silence_clips is not None and silence_clips < 0:
        raise DataError(f"--silence-clips {silence_clips} is negative, expected 0 or more")
    if max_unknown is not None and max_unknown < 0:
        raise DataError(f"--max-unknown {max_unknown} is negative, expected 0 or more")
    check_seed(seed)
    check_output(out, flag="", suffix=".npz", force=force, make_folder=True)

    items, noise_files, skipped = _scan(root, tuple(keywords))
    if not items:
        raise DataError(f"{root}: no word folders with .wav files (expected e.g. {root}/yes/0a7c2a8d_nohash_0.wav)")
    rng = np.random.default_rng(seed)
    if max_unknown is not None:
        unknown_idx = [i for i, it in enumerate(items) if it[1] == UNKNOWN]
        if len(unknown_idx) > max_unknown:
            drop = set(rng.choice(unknown_idx, size=len(unknown_idx) - max_unknown, replace=False).tolist())
            items = [it for i, it in enumerate(items) if i not in drop]

    lists = {split: _read_list(root, name) for split, name in LIST_FILES.items()}
    with_split = any(v is not None for v in lists.values())
    if not with_split:
        logger.info("%s: no validation_list.txt / testing_list.txt; the npz gets no split array", root)

    n_kw = [n for n in (sum(1 for it in items if it[1] == k) for k in keywords) if n]
    if silence_clips is None:  # like one more keyword: the mean over the keywords present
        silence_clips = int(round(np.mean(n_kw))) if n_kw else 0
        if not noise_files:
            silence_clips = 0
    if silence_clips and not noise_files:
        raise DataError(f"{root}: no {NOISE_DIR}/*.wav to cut {silence_clips} silence clips from; "
                        "pass --silence-clips 0")

    n_total = len(items) + silence_clips
    wav = np.zeros((n_total, window_samples), dtype=np.int16 if dtype == "int16" else np.float32)
    labels = np.empty(n_total, dtype=object)
    speakers = np.empty(n_total, dtype=object)
    words = np.empty(n_total, dtype=object)
    splits = np.full(n_total, "train", dtype=object)
    rates: dict[int, int] = {}

    def _store(i: int, clip: np.ndarray) -> None:
        clip = fit_length(clip, window_samples)
        if dtype == "int16":
            wav[i] = to_pcm16(clip)
        else:
            wav[i] = clip

    for i, (path, label, word) in enumerate(tqdm(items, desc="from-folder", unit="clip", disable=not progress)):
        audio, rate = read_wav(path)
        rates[rate] = rates.get(rate, 0) + 1
        _store(i, to_rate(to_mono(audio), rate, sample_rate_hz))
        labels[i], speakers[i], words[i] = label, speaker_of(path), word
        rel = f"{word}/{path.name}"
        for split, names in lists.items():
            if names is not None and rel in names:
                splits[i] = split

    crops = _cut_silence(noise_files, silence_clips, sample_rate_hz=sample_rate_hz,
                         window_samples=window_samples, rng=rng, with_split=with_split)
    for j, (clip, spk, word, split) in enumerate(crops):
        i = len(items) + j
        _store(i, clip)
        labels[i], speakers[i], words[i] = SILENCE, spk, word
        if split is not None:
            splits[i] = split

    arrays = {
        "wav_vals": wav,
        "label_vals": labels.astype(str)[:, None],
        "speaker": speakers.astype(str),
        "word": words.astype(str),
    }
    if with_split:
        arrays["split"] = splits.astype(str)
    save_npz(out, arrays, compress=compress)   # makes a missing folder; removes it again on failure

    uniq, cnt = np.unique(arrays["label_vals"], return_counts=True)
    split_counts = None
    if with_split:
        su, sc = np.unique(arrays["split"], return_counts=True)
        split_counts = {str(s): int(c) for s, c in zip(su, sc)}
    summary = FolderSummary(out=out, n_clips=n_total, counts={str(u): int(c) for u, c in zip(uniq, cnt)},
                            n_speakers=len(np.unique(arrays["speaker"])), n_words=len({it[2] for it in items}),
                            split_counts=split_counts, resampled_from_hz=rates, skipped=skipped)
    logger.info("wrote %s: %d clips", out, n_total)
    return summary
