"""The npz data layer: load and validate a keyword-spotting set, split it reproducibly.

The npz schema is the seed tutorial's (``speech_wav_8000.npz``) plus optional arrays:

=============  ==================  =====================================================
key            shape, dtype        meaning
=============  ==================  =====================================================
``wav_vals``   (N, 8000) float32   one-second clips at 8 kHz; float32 in [-1, 1] (the
               or int16            seed) or int16 PCM (full scale 32768)
``label_vals`` (N, 1) or (N,) str  one of :data:`kws.runtime.labels.SEED_LABELS`
``speaker``    (N,) str, optional  speaker id; splits then keep every speaker in one split
``split``      (N,) str, optional  ``train`` / ``validation`` / ``testing`` (official lists)
=============  ==================  =====================================================

Other arrays (``source``, ``word``, ...) are allowed and ignored.

:func:`load_npz` never unpickles unless asked (``allow_pickle=True``), and never converts or
copies the clip array: an uncompressed member (``np.savez``) is memory-mapped, a compressed one
(``np.savez_compressed``) is read once as stored. :meth:`Dataset.audio` converts only the rows
asked for. Every problem is a one-line :class:`~kws.runtime.errors.DataError` that names the
file and what was expected.
"""

from __future__ import annotations

import logging
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from kws.runtime.errors import DataError
from kws.runtime.features import float_peak_error, to_pcm16
from kws.runtime.labels import SEED_LABELS

logger = logging.getLogger(__name__)

WAV_KEY = "wav_vals"
LABEL_KEY = "label_vals"
SPEAKER_KEY = "speaker"
SPLIT_KEY = "split"
REQUIRED_KEYS = (WAV_KEY, LABEL_KEY)
#: Values allowed in an npz ``split`` array (the names of Speech Commands' lists).
SPLIT_NAMES = ("train", "validation", "testing")
#: Split methods :func:`split_dataset` knows; ``auto`` = speaker, else split array, else stratified.
SPLIT_METHODS = ("auto", "speaker", "split", "stratified")
#: ``kws-train --train-on``: the parts of the split a model is fitted on.
TRAIN_ON = {"train": ("train",), "train+val": ("train", "val"), "all": ("train", "val", "test")}

_WAV_DTYPES = (np.dtype(np.int16), np.dtype(np.float32), np.dtype(np.float64))
_CHUNK_ROWS = 4096


@dataclass(frozen=True)
class Dataset:
    """A validated keyword-spotting set.

    Attributes
    ----------
    path : Path
        The npz it came from.
    wav : np.ndarray, shape (N, window_samples), int16 or float32/float64
        The clips exactly as stored (possibly a read-only memory map); use :meth:`audio` for
        float32 audio.
    labels : np.ndarray, shape (N,), int64
        Index into ``label_names``.
    label_names : tuple of str
        :data:`~kws.runtime.labels.SEED_LABELS`.
    speaker : np.ndarray of str, shape (N,), or None
    split : np.ndarray of str, shape (N,), or None
        ``train`` / ``validation`` / ``testing`` when the npz has a ``split`` array.
    sample_rate_hz : int
    """

    path: Path
    wav: np.ndarray
    labels: np.ndarray
    label_names: tuple[str, ...] = SEED_LABELS
    speaker: np.ndarray | None = None
    split: np.ndarray | None = None
    sample_rate_hz: int = 8000

    def __len__(self) -> int:
        return int(self.wav.shape[0])

    @property
    def window_samples(self) -> int:
        """Samples per clip (8000 for the seed)."""
        return int(self.wav.shape[1])

    @property
    def duration_s(self) -> float:
        """Total audio in seconds."""
        return len(self) * self.window_samples / self.sample_rate_hz

    def audio(self, idx) -> np.ndarray:
        """Float32 audio in [-1, 1] for ``idx`` (an int, a slice, or an index/bool array).

        int16 PCM is divided by 32768 on the fly; only the requested rows are converted.

        Returns
        -------
        np.ndarray, float32, shape (window_samples,) for an int index, else (k, window_samples)
        """
        rows = self.wav[idx]
        if rows.dtype == np.int16:
            return rows.astype(np.float32) * np.float32(1.0 / 32768.0)
        return np.asarray(rows, dtype=np.float32)

    def label_strings(self, idx=slice(None)) -> np.ndarray:
        """Label names (str array) for ``idx``."""
        return np.asarray(self.label_names)[self.labels[idx]]


@dataclass(frozen=True)
class Split:
    """Index arrays (int64, sorted) into a :class:`Dataset`; ``by`` says how they were made
    (``speaker``, ``split`` or ``stratified``)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    by: str = "stratified"

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


# --------------------------------------------------------------------------------------------
# Loading


def _fail(path: Path, problem: str) -> DataError:
    return DataError(f"{path}: {problem}")


def _check_container(path: Path) -> None:
    """Missing file, empty file, not a zip, a bare .npy: each one line."""
    if not path.exists():
        raise _fail(path, "file not found (expected an .npz with wav_vals and label_vals)")
    if path.is_dir():
        raise _fail(path, "is a directory, expected an .npz file")
    size = path.stat().st_size
    if size == 0:
        raise _fail(path, "file is empty (0 bytes), expected an .npz")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic.startswith(b"\x93NUMPY"):
        raise _fail(path, "is a single .npy array, expected an .npz archive (np.savez) with wav_vals and label_vals")
    if magic.startswith(b"PK\x05\x06"):
        raise _fail(path, "is an empty zip archive, expected an .npz with wav_vals and label_vals")
    if not magic.startswith(b"PK\x03\x04"):
        raise _fail(path, f"not an npz (zip) file: starts with {magic[:4]!r}, expected b'PK\\x03\\x04'")
    if not zipfile.is_zipfile(path):
        raise _fail(path, f"truncated or corrupt zip ({size} bytes, no end-of-archive record); "
                          "download or write it again")


def _memmap_member(path: Path, zf: zipfile.ZipFile, key: str) -> np.ndarray | None:
    """Memory-map an uncompressed (ZIP_STORED) ``key.npy`` member; None when that is not possible."""
    try:
        info = zf.getinfo(key + ".npy")
    except KeyError:
        return None
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        return None
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            return None
        name_len = int.from_bytes(local[26:28], "little")
        extra_len = int.from_bytes(local[28:30], "little")
        data_start = info.header_offset + 30 + name_len + extra_len
        fh.seek(data_start)
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            return None
        offset = fh.tell()
    if fortran or dtype.hasobject or len(shape) == 0:
        return None
    n_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if offset + n_bytes > path.stat().st_size or offset - data_start + n_bytes > info.file_size:
        raise _fail(path, f"truncated: {key} needs {n_bytes} bytes of data that the file does not hold")
    if n_bytes == 0:
        return None
    # The same integrity check np.load does, in chunks: the member's CRC-32.
    crc, remaining = 0, info.file_size
    with open(path, "rb") as fh:
        fh.seek(data_start)
        while remaining > 0:
            buf = fh.read(min(1 << 24, remaining))
            if not buf:
                break
            crc = zlib.crc32(buf, crc)
            remaining -= len(buf)
    if remaining or crc != info.CRC:
        raise _fail(path, f"truncated or corrupt zip: {key} fails its CRC-32 check; download or write it again")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=tuple(shape))


def _read_member(path: Path, npz, key: str, *, allow_pickle: bool) -> np.ndarray:
    try:
        return npz[key]
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "pickle" in str(exc).lower():
            raise _fail(path, f"{key} is an object-dtype (pickled) array; it loads only with "
                              "allow_pickle=True (--allow-pickle of kws-data inspect/stream/demo or kws-train), "
                              "use it only for a file you trust, "
                              "or re-save the labels as a str array") from None
        raise _fail(path, f"cannot read {key}: {exc}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise _fail(path, f"truncated or corrupt zip: cannot read {key} ({exc})") from None


def _as_str_array(path: Path, key: str, arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "S":
        try:
            return np.char.decode(arr, "utf-8")
        except UnicodeDecodeError:
            raise _fail(path, f"{key} holds bytes that are not UTF-8 text") from None
    if arr.dtype.kind == "U":
        return arr
    if arr.dtype.kind == "O":
        bad = [type(v).__name__ for v in arr.ravel()[:1000] if not isinstance(v, (str, bytes))]
        if bad:
            raise _fail(path, f"{key} must hold strings, found {sorted(set(bad))} objects")
        return np.array([v.decode("utf-8") if isinstance(v, bytes) else v for v in arr.ravel()],
                        dtype=str).reshape(arr.shape)
    raise _fail(path, f"{key} must be a str array, got dtype {arr.dtype}")


def _check_finite(path: Path, wav: np.ndarray) -> None:
    """Count NaN/inf chunk by chunk (never a full-size temporary), and refuse float audio far outside
    [-1, 1] (int16 PCM stored as float would be read 32768 times too loud)."""
    if wav.dtype.kind != "f":
        return
    bad_samples = 0
    bad_clips: list[int] = []
    peak = 0.0
    for start in range(0, wav.shape[0], _CHUNK_ROWS):
        chunk = wav[start:start + _CHUNK_ROWS]
        finite = np.isfinite(chunk)
        if finite.all():
            peak = max(peak, float(np.abs(chunk).max(initial=0.0)))
            continue
        per_clip = finite.shape[1] - finite.sum(axis=1)
        bad_samples += int(per_clip.sum())
        bad_clips.extend((np.flatnonzero(per_clip) + start).tolist())
    if bad_samples:
        nan = sum(int(np.isnan(wav[i]).sum()) for i in bad_clips[:10000])
        raise _fail(path, f"{WAV_KEY} has {bad_samples} non-finite samples (NaN: {nan}, inf: {bad_samples - nan}) "
                          f"in {len(bad_clips)} clips (first: clip {bad_clips[0]}); expected finite audio")
    problem = float_peak_error(WAV_KEY, wav.dtype, peak)
    if problem:
        raise _fail(path, problem)


def load_npz(path: str | os.PathLike, *, allow_pickle: bool = False, sample_rate_hz: int = 8000,
             window_samples: int = 8000, mmap: bool = True) -> Dataset:
    """Load and validate an npz in the seed schema (see the module docstring).

    Parameters
    ----------
    path : path to the .npz
    allow_pickle : bool
        Allow object-dtype (pickled) arrays. Off by default: unpickling runs code from the file.
    sample_rate_hz : int
        Sample rate the clips are at (the npz does not record it); 8000 for the seed.
    window_samples : int
        Required clip length in samples (8000 = 1 s at 8 kHz).
    mmap : bool
        Memory-map ``wav_vals`` when it is stored uncompressed (default), so a 1.6 GB file costs no RAM
        until rows are used.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        One line naming the file and the problem: missing file, empty file, not an npz, truncated or
        corrupt zip, missing keys, wrong shapes or dtypes, clips not ``window_samples`` long, NaN/inf
        samples, labels outside the vocabulary, object arrays without ``allow_pickle``, length mismatches.
    """
    path = Path(path)
    _check_container(path)
    try:
        npz = np.load(path, allow_pickle=allow_pickle)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise _fail(path, f"truncated or corrupt npz ({exc})") from None
    with npz:
        present = [k for k in npz.files]
        missing = [k for k in REQUIRED_KEYS if k not in present]
        if missing:
            raise _fail(path, f"missing key(s) {', '.join(missing)}; the file has "
                              f"[{', '.join(present) if present else 'no arrays'}], expected {WAV_KEY} and {LABEL_KEY}")
        wav = None
        if mmap:
            with zipfile.ZipFile(path) as zf:
                try:
                    wav = _memmap_member(path, zf, WAV_KEY)
                except (OSError, ValueError) as exc:
                    logger.debug("%s: not memory-mapping %s (%s)", path, WAV_KEY, exc)
                    wav = None
        if wav is None:
            wav = _read_member(path, npz, WAV_KEY, allow_pickle=allow_pickle)
        raw_labels = _read_member(path, npz, LABEL_KEY, allow_pickle=allow_pickle)
        speaker = _read_member(path, npz, SPEAKER_KEY, allow_pickle=allow_pickle) if SPEAKER_KEY in present else None
        split = _read_member(path, npz, SPLIT_KEY, allow_pickle=allow_pickle) if SPLIT_KEY in present else None

    # --- clips
    if wav.dtype not in _WAV_DTYPES:
        raise _fail(path, f"{WAV_KEY} has dtype {wav.dtype}, expected float32 in [-1, 1] or int16 PCM")
    if wav.ndim == 3 and wav.shape[2] == 1:
        wav = wav.reshape(wav.shape[:2])
    if wav.ndim != 2:
        raise _fail(path, f"{WAV_KEY} has shape {wav.shape}, expected (N, {window_samples})")
    n = wav.shape[0]
    if n == 0:
        raise _fail(path, f"{WAV_KEY} holds no clips (shape {wav.shape})")
    if wav.shape[1] != window_samples:
        raise _fail(path, f"clips are {wav.shape[1]} samples long, expected {window_samples} "
                          f"({window_samples / sample_rate_hz:g} s at {sample_rate_hz} Hz); shape {wav.shape}")

    # --- labels
    if not (raw_labels.ndim == 1 or (raw_labels.ndim == 2 and raw_labels.shape[1] == 1)):
        raise _fail(path, f"{LABEL_KEY} has shape {raw_labels.shape}, expected ({n}, 1) or ({n},)")
    if raw_labels.shape[0] != n:
        raise _fail(path, f"{LABEL_KEY} has {raw_labels.shape[0]} labels but {WAV_KEY} has {n} clips")
    names = _as_str_array(path, LABEL_KEY, raw_labels.reshape(-1))
    uniq, inverse, counts = np.unique(names, return_inverse=True, return_counts=True)
    lookup = {name: i for i, name in enumerate(SEED_LABELS)}
    unknown = [(str(u), int(c)) for u, c in zip(uniq, counts) if str(u) not in lookup]
    if unknown:
        unknown.sort(key=lambda uc: -uc[1])
        shown = ", ".join(f"{u!r} ({c})" for u, c in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise _fail(path, f"labels outside the vocabulary: {shown}{more}; expected one of {' '.join(SEED_LABELS)}")
    labels = np.array([lookup[str(u)] for u in uniq], dtype=np.int64)[inverse.reshape(-1)]

    # --- optional arrays
    def _optional(key: str, arr: np.ndarray | None) -> np.ndarray | None:
        if arr is None:
            return None
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr.reshape(-1)
        if arr.ndim != 1 or arr.shape[0] != n:
            raise _fail(path, f"{key} has shape {arr.shape}, expected ({n},) to match {n} clips")
        return _as_str_array(path, key, arr)

    speaker = _optional(SPEAKER_KEY, speaker)
    split = _optional(SPLIT_KEY, split)
    if split is not None:
        bad = sorted(set(np.unique(split).tolist()) - set(SPLIT_NAMES))
        if bad:
            raise _fail(path, f"{SPLIT_KEY} has values {bad[:5]}, expected only {', '.join(SPLIT_NAMES)}")

    _check_finite(path, wav)
    logger.debug("loaded %s: %d clips, %s, speakers=%s, split=%s", path, n, wav.dtype,
                 None if speaker is None else len(np.unique(speaker)), split is not None)
    return Dataset(path=path, wav=wav, labels=labels, label_names=SEED_LABELS, speaker=speaker,
                   split=split, sample_rate_hz=sample_rate_hz)


def class_counts(ds: Dataset, idx: np.ndarray | None = None) -> dict[str, int]:
    """Clips per label (in ``ds.label_names`` order, zeros included), for all clips or ``idx``."""
    labels = ds.labels if idx is None else ds.labels[np.asarray(idx)]
    counts = np.bincount(labels, minlength=len(ds.label_names))
    return {name: int(c) for name, c in zip(ds.label_names, counts)}


# --------------------------------------------------------------------------------------------
# Splitting


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise DataError(f"{name}={value} is out of range, expected 0 <= {name} < 1")
    if val_fraction + test_fraction >= 1.0:
        raise DataError(f"val_fraction + test_fraction = {val_fraction + test_fraction:g} leaves nothing to "
                        "train on, expected a sum below 1")


def _n_splits(val_fraction: float, test_fraction: float) -> int:
    return 1 + (val_fraction > 0) + (test_fraction > 0)


def _assign_speakers(counts: np.ndarray, fractions: np.ndarray, seed: int, *, first_takes_biggest: bool) -> np.ndarray:
    """Give each speaker one part, keeping every class present in each part and the class mix
    near the ``fractions``.

    1. Coverage: for each class, rarest (fewest speakers) first, give each part in order one
       speaker of the class unless it already has one and while free speakers of it remain. Part
       0 takes the biggest speaker of the class when ``first_takes_biggest`` (ties: seeded), every
       other part one of the smallest (at most twice the smallest, picked by the seed), so big
       speakers do not blow a small part's size budget.
    2. Fill: the other speakers, roughly biggest first (size times a seeded random factor in
       [0.5, 1.5]), go to the part whose per-class clip counts are furthest below their targets
       (``fraction * class total``), weighted by the speaker's own classes.

    Parameters
    ----------
    counts : int array (n_speakers, n_labels), clips of each class by each speaker
    fractions : float array (n_parts,), the target share of each part (a part at 0 gets nobody)
    seed : int

    Returns
    -------
    int64 array (n_speakers,): the part of each speaker.
    """
    n_spk = counts.shape[0]
    rng = np.random.default_rng(seed)
    rank = np.empty(n_spk, dtype=np.int64)
    rank[rng.permutation(n_spk)] = np.arange(n_spk)
    spk_size = counts.sum(axis=1)
    has = counts > 0
    active = [s for s in range(len(fractions)) if fractions[s] > 0]
    totals = counts.sum(axis=0).astype(np.float64)
    targets = fractions[:, None] * totals[None, :]
    filled = np.zeros(targets.shape, dtype=np.float64)
    assign = np.full(n_spk, -1, dtype=np.int64)

    def _put(spk: int, s: int) -> None:
        assign[spk] = s
        filled[s] += counts[spk]

    speakers_per_class = has.sum(axis=0)
    for c in np.argsort(speakers_per_class, kind="stable"):
        for s in active:
            if np.any(has[assign == s, c]):
                continue
            free = np.flatnonzero(has[:, c] & (assign == -1))
            if len(free) == 0:
                break
            size = spk_size[free]
            biggest = first_takes_biggest and s == 0
            pool = free[size == size.max()] if biggest else free[size <= 2 * size.min()]
            _put(int(pool[np.argmin(rank[pool])]), s)

    scale = 1.0 / np.maximum(totals, 1.0)
    jitter = rng.uniform(0.5, 1.5, n_spk)
    for spk in np.lexsort((rank, -spk_size * jitter)):
        if assign[spk] != -1:
            continue
        need = ((targets - filled) * scale[None, :]) @ counts[spk]  # (n_parts,) deficit seen by this speaker
        _put(int(spk), max(active, key=lambda s: need[s]))
    return assign


def _speaker_counts(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(spk_of_clip int64 (n_clips,), counts int64 (n_speakers, n_labels))`` of ``ds``."""
    speakers, spk_of_clip = np.unique(ds.speaker, return_inverse=True)
    spk_of_clip = spk_of_clip.reshape(-1)
    counts = np.zeros((len(speakers), len(ds.label_names)), dtype=np.int64)  # clips of class c by speaker s
    np.add.at(counts, (spk_of_clip, ds.labels), 1)
    return spk_of_clip, counts


def _warn_missing_classes(ds: Dataset, split: Split, how: str) -> None:
    everywhere = class_counts(ds)
    for name, idx in (("val", split.val), ("test", split.test)):
        missing = [n for n, k in class_counts(ds, idx).items() if k == 0 and everywhere[n] > 0]
        if missing and len(idx):
            logger.warning("%s: %s has no clips of %s (too few speakers)", how, name, ", ".join(missing))


def _split_by_speaker(ds: Dataset, seed: int, val_fraction: float, test_fraction: float) -> Split:
    """Assign whole speakers to train, val and test (:func:`_assign_speakers`, train taking the
    biggest speaker of each class, so that big pseudo-speakers land in train and val/test stay
    stratified). A class with exactly three speakers thus gives test the middle one."""
    spk_of_clip, counts = _speaker_counts(ds)
    TRAIN, VAL, TEST = 0, 1, 2
    fractions = np.array([1.0 - val_fraction - test_fraction, val_fraction, test_fraction])
    clip_split = _assign_speakers(counts, fractions, seed, first_takes_biggest=True)[spk_of_clip]
    split = Split(train=np.flatnonzero(clip_split == TRAIN), val=np.flatnonzero(clip_split == VAL),
                  test=np.flatnonzero(clip_split == TEST), by="speaker")
    _warn_missing_classes(ds, split, "speaker split")
    return split


def speaker_folds(ds: Dataset, *, folds: int, seed: int = 0) -> np.ndarray:
    """Deal the speakers of ``ds`` into ``folds`` folds of about equal size and class mix.

    Every fold takes one of the small speakers of each class first (while there are enough
    speakers of it), then the rest go biggest first to the fold furthest below its share
    (:func:`_assign_speakers` with equal fractions). A big speaker lands whole in one fold, so a
    set with pseudo-speakers (a corpus of hundreds of clips under one id) gives that fold a
    lopsided test set: it is still held out.

    Returns
    -------
    int64 array (n_clips,): the fold of each clip, in ``range(folds)``.
    """
    if ds.speaker is None:
        raise DataError(f"{ds.path}: has no speaker array, cannot make folds of speakers")
    if not isinstance(folds, (int, np.integer)) or folds < 3:
        raise DataError(f"folds={folds!r}: expected a whole number >= 3 (test, validation and training folds)")
    spk_of_clip, counts = _speaker_counts(ds)
    if counts.shape[0] < folds:
        raise DataError(f"{ds.path}: {counts.shape[0]} speaker(s), need at least {folds} for {folds} folds")
    return _assign_speakers(counts, np.full(folds, 1.0 / folds), seed, first_takes_biggest=False)[spk_of_clip]


def _split_by_fold(ds: Dataset, seed: int, folds: int, fold: int) -> Split:
    """Test is fold ``fold`` of :func:`speaker_folds`, validation the next one (cyclically), train
    the others: over ``fold`` = 0 .. folds-1 every speaker is tested exactly once."""
    if not isinstance(fold, (int, np.integer)) or not 0 <= fold < folds:
        raise DataError(f"fold={fold!r}: expected a whole number in [0, {folds - 1}] (folds={folds})")
    of_clip = speaker_folds(ds, folds=folds, seed=seed)
    val_fold = (fold + 1) % folds
    split = Split(train=np.flatnonzero((of_clip != fold) & (of_clip != val_fold)),
                  val=np.flatnonzero(of_clip == val_fold), test=np.flatnonzero(of_clip == fold), by="speaker")
    _warn_missing_classes(ds, split, f"fold {fold} of {folds}")
    return split


def _split_stratified(ds: Dataset, seed: int, val_fraction: float, test_fraction: float) -> Split:
    """Like the seed: sklearn ``train_test_split(..., test_size, stratify=labels, random_state=seed)``,
    then the same again on the rest for validation. Falls back to an unstratified split (with a warning)
    where a class has too few clips to stratify."""
    from sklearn.model_selection import train_test_split

    def _cut(idx: np.ndarray, fraction: float, seed_: int) -> tuple[np.ndarray, np.ndarray]:
        if fraction <= 0:
            return idx, idx[:0]
        try:
            return tuple(train_test_split(idx, test_size=fraction, random_state=seed_, shuffle=True,
                                          stratify=ds.labels[idx]))
        except ValueError as exc:
            logger.warning("stratified split not possible (%s); splitting at random", exc)
            try:
                return tuple(train_test_split(idx, test_size=fraction, random_state=seed_, shuffle=True))
            except ValueError as exc2:
                raise DataError(f"{ds.path}: cannot split {len(idx)} clips ({exc2})") from None

    all_idx = np.arange(len(ds))
    rest, test = _cut(all_idx, test_fraction, seed)
    val_of_rest = val_fraction / (1.0 - test_fraction) if val_fraction > 0 else 0.0
    train, val = _cut(np.asarray(rest), val_of_rest, seed + 1)
    return Split(train=np.sort(train), val=np.sort(val), test=np.sort(test), by="stratified")


def _split_from_array(ds: Dataset) -> Split:
    return Split(train=np.flatnonzero(ds.split == "train"), val=np.flatnonzero(ds.split == "validation"),
                 test=np.flatnonzero(ds.split == "testing"), by="split")


def split_dataset(ds: Dataset, *, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.1,
                  by: str = "auto", folds: int = 0, fold: int = 0) -> Split:
    """Split ``ds`` into train/val/test index arrays, reproducibly for a ``seed``.

    Parameters
    ----------
    by : {"auto", "speaker", "split", "stratified"}
        ``auto`` (default): by speaker when ``ds.speaker`` exists (no speaker in two splits; every class
        kept in each split where the class has enough speakers), else the npz's ``split`` array if present
        (the fractions are then ignored), else a stratified random split like the seed's
        (``train_test_split(test_size=test_fraction, stratify=labels)``). ``auto`` falls through when a
        set has fewer speakers than splits.
    val_fraction, test_fraction : float
        Target fraction of clips (not speakers) in validation and test.
    folds, fold : int
        ``folds`` >= 3 splits by speaker folds instead (cross-validation, :func:`speaker_folds`):
        test is fold ``fold``, validation fold ``fold + 1`` (cyclically), train the rest; the
        fractions are then ignored. 0 (default): no folds.

    Returns
    -------
    Split, with sorted int64 index arrays and ``by`` = the method used.
    """
    if by not in SPLIT_METHODS:
        raise DataError(f"split method {by!r} is unknown, expected one of {', '.join(SPLIT_METHODS)}")
    if folds:
        if by not in ("auto", "speaker"):
            raise DataError(f"folds={folds} splits by speaker; split method {by!r} cannot make folds")
        return _split_by_fold(ds, seed, folds, fold)
    _check_fractions(val_fraction, test_fraction)
    if by in ("auto", "speaker"):
        if ds.speaker is None:
            if by == "speaker":
                raise DataError(f"{ds.path}: has no speaker array, cannot split by speaker")
        else:
            n_spk = len(np.unique(ds.speaker))
            needed = _n_splits(val_fraction, test_fraction)
            if n_spk >= needed:
                return _split_by_speaker(ds, seed, val_fraction, test_fraction)
            if by == "speaker":
                raise DataError(f"{ds.path}: {n_spk} speaker(s), need at least {needed} to split by speaker")
            logger.warning("%s: only %d speaker(s); not splitting by speaker", ds.path, n_spk)
    if by in ("auto", "split") and ds.split is not None:
        return _split_from_array(ds)
    if by == "split":
        raise DataError(f"{ds.path}: has no split array (train/validation/testing)")
    return _split_stratified(ds, seed, val_fraction, test_fraction)


# --------------------------------------------------------------------------------------------
# Extra training clips


def add_training_clips(ds: Dataset, split: Split, *extras: Dataset) -> tuple[Dataset, Split]:
    """Append the ``extras``' clips to ``ds`` and to ``split.train`` only.

    Validation and test stay exactly the clips :func:`split_dataset` chose from ``ds`` (their
    indices do not move: ``ds``'s rows come first), so a run with extra clips is scored on the
    same speakers as one without.

    Parameters
    ----------
    ds, split : the dataset and its split
    *extras : Dataset
        Same clip length and sample rate. Their ``speaker`` ids must not be those of any validation
        or test speaker of ``ds`` (they would leak into training); without a ``speaker`` array
        this cannot be checked, and a warning says so.

    Returns
    -------
    (Dataset, Split)
        The joined dataset (its ``wav`` in ``ds.wav``'s dtype, in memory; int16 rows from float
        audio are rounded and clipped, :func:`to_pcm16`) and the split with the new rows in ``train``.

    Raises
    ------
    DataError
        Clip length or sample rate differ, or a speaker is shared with validation or test.
    """
    held_out = None
    if ds.speaker is not None:
        held_out = set(np.unique(ds.speaker[np.concatenate([split.val, split.test])]).tolist())
    for extra in extras:
        if extra.window_samples != ds.window_samples or extra.sample_rate_hz != ds.sample_rate_hz:
            raise DataError(f"{extra.path}: clips of {extra.window_samples} samples at {extra.sample_rate_hz} Hz; "
                            f"expected {ds.window_samples} at {ds.sample_rate_hz} Hz like {ds.path}")
        if extra.speaker is None:
            logger.warning("%s has no speaker array: cannot check that none of its speakers is a validation "
                           "or test speaker", extra.path)
        elif held_out is not None:
            shared = sorted(set(np.unique(extra.speaker).tolist()) & held_out)
            if shared:
                raise DataError(f"{extra.path}: speaker(s) {', '.join(map(repr, shared[:5]))}"
                                f"{f' and {len(shared) - 5} more' if len(shared) > 5 else ''} are validation or "
                                f"test speakers of {ds.path}; extra training clips must come from other speakers")
    if not extras:
        return ds, split

    def _rows(d: Dataset) -> np.ndarray:
        audio = d.audio(slice(None))
        return to_pcm16(audio) if ds.wav.dtype == np.int16 else audio.astype(ds.wav.dtype)

    def _speakers(d: Dataset) -> np.ndarray:
        return d.speaker if d.speaker is not None else np.full(len(d), f"file:{d.path.name}")

    parts = (ds, *extras)
    speaker = None
    if any(d.speaker is not None for d in parts):
        speaker = np.concatenate([_speakers(d) for d in parts])
    n_extra = sum(len(d) for d in extras)
    split_array = None if ds.split is None else np.concatenate([ds.split, np.full(n_extra, "train")])
    joined = Dataset(path=ds.path, wav=np.concatenate([np.asarray(ds.wav), *(_rows(d) for d in extras)]),
                     labels=np.concatenate([d.labels for d in parts]), label_names=ds.label_names,
                     speaker=speaker, split=split_array, sample_rate_hz=ds.sample_rate_hz)
    new = np.arange(len(ds), len(ds) + n_extra, dtype=np.int64)
    return joined, Split(train=np.concatenate([split.train, new]), val=split.val, test=split.test, by=split.by)


def fold_in(split: Split, parts: Sequence[str]) -> Split:
    """The split with every part named in ``parts`` moved into ``train`` (and emptied).

    This is the final fit of a recipe chosen on held-out speakers (``kws-train --train-on``): the
    same speakers are split the same way, and the validation (and test) speakers join training.

    Parameters
    ----------
    split : the split :func:`split_dataset` made
    parts : a value of :data:`TRAIN_ON`, e.g. ``("train", "val")``; must include ``"train"``

    Returns
    -------
    Split with sorted int64 ``train``; the parts folded in are empty arrays.
    """
    known = ("train", "val", "test")
    bad = [p for p in parts if p not in known]
    if bad or "train" not in parts:
        raise DataError(f"parts {list(parts)}: expected 'train' and any of 'val', 'test'")
    empty = np.zeros(0, dtype=np.int64)
    train = np.sort(np.concatenate([getattr(split, p) for p in known if p in parts])).astype(np.int64)
    return Split(train=train, val=empty if "val" in parts else split.val,
                 test=empty if "test" in parts else split.test, by=split.by)
