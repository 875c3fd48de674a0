"""kws.train.data: loading, validation messages, splits."""

from __future__ import annotations

import numpy as np
import pytest

from kws.runtime.errors import DataError
from kws.runtime.labels import SEED_LABELS
from kws.train import data as kdata
from kws.train.data import Dataset, Split, class_counts, load_npz, speaker_folds, split_dataset
from kws.train.synth import synthetic_dataset


@pytest.fixture(scope="module")
def small() -> dict[str, np.ndarray]:
    """12 labels x 3 clips, float32, with speakers."""
    return synthetic_dataset(clips_per_label=3, n_speakers=4, seed=1)


def _save(path, arrays, *, compressed=False):
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def _error(path, **kw) -> str:
    with pytest.raises(DataError) as info:
        load_npz(path, **kw)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg
    return msg


# ------------------------------------------------------------------ loading good files

def test_float32_loads_as_stored(tmp_path, small):
    ds = load_npz(_save(tmp_path / "f.npz", small))
    assert isinstance(ds, Dataset)
    assert len(ds) == 36 and ds.window_samples == 8000 and ds.sample_rate_hz == 8000
    assert ds.wav.dtype == np.float32
    assert isinstance(ds.wav, np.memmap)  # np.savez stores uncompressed: mapped, not read
    assert ds.label_names == SEED_LABELS
    assert ds.labels.dtype == np.int64 and ds.labels.shape == (36,)
    expected = np.array([SEED_LABELS.index(x) for x in small["label_vals"][:, 0]])
    np.testing.assert_array_equal(ds.labels, expected)
    np.testing.assert_array_equal(ds.label_strings(), small["label_vals"][:, 0])
    np.testing.assert_array_equal(ds.audio(slice(None)), small["wav_vals"])
    assert ds.audio(3).shape == (8000,) and ds.audio([1, 4]).shape == (2, 8000)
    np.testing.assert_array_equal(ds.speaker, small["speaker"])
    assert ds.split is None
    assert ds.duration_s == pytest.approx(36.0)


def test_int16_loads_without_conversion(tmp_path, small):
    pcm = np.round(small["wav_vals"] * 32767).astype(np.int16)
    arrays = dict(small, wav_vals=pcm, label_vals=small["label_vals"][:, 0])  # (N,) labels allowed too
    ds = load_npz(_save(tmp_path / "i.npz", arrays, compressed=True))
    assert ds.wav.dtype == np.int16 and not isinstance(ds.wav, np.memmap)
    np.testing.assert_array_equal(ds.wav, pcm)
    audio = ds.audio(np.array([0, 5, 7]))
    assert audio.dtype == np.float32
    np.testing.assert_array_equal(audio, pcm[[0, 5, 7]].astype(np.float32) / 32768.0)
    assert ds.audio(slice(None)).max() < 1.0


def test_mmap_off_reads_the_array(tmp_path, small):
    ds = load_npz(_save(tmp_path / "f.npz", small), mmap=False)
    assert not isinstance(ds.wav, np.memmap) and ds.wav.dtype == np.float32


def test_bytes_labels_and_split_array(tmp_path, small):
    split = np.array(["train", "validation", "testing"] * 12)
    arrays = dict(small, label_vals=small["label_vals"].astype("S"), split=split)
    ds = load_npz(_save(tmp_path / "b.npz", arrays))
    np.testing.assert_array_equal(ds.label_strings(), small["label_vals"][:, 0])
    np.testing.assert_array_equal(ds.split, split)


def test_object_labels_need_allow_pickle(tmp_path, small):
    path = _save(tmp_path / "o.npz", dict(small, label_vals=small["label_vals"].astype(object)))
    msg = _error(path)
    assert "label_vals" in msg and "object" in msg and "allow_pickle=True" in msg
    ds = load_npz(path, allow_pickle=True)
    np.testing.assert_array_equal(ds.label_strings(), small["label_vals"][:, 0])


# ------------------------------------------------------------------ bad input, one line each

def test_missing_file(tmp_path):
    assert "file not found" in _error(tmp_path / "nope.npz")


def test_directory(tmp_path):
    assert "is a directory" in _error(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    assert "file is empty (0 bytes)" in _error(path)


def test_not_an_npz(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("yes,no,up\n")
    assert "not an npz (zip) file" in _error(path)


def test_bare_npy(tmp_path, small):
    path = tmp_path / "wav.npy"
    np.save(path, small["wav_vals"])
    assert "single .npy array, expected an .npz" in _error(path)


def test_empty_zip(tmp_path):
    import zipfile

    path = tmp_path / "empty_zip.npz"
    zipfile.ZipFile(path, "w").close()
    assert "empty zip archive" in _error(path)


@pytest.mark.parametrize("compressed", [False, True])
def test_truncated_zip(tmp_path, small, compressed):
    good = _save(tmp_path / "good.npz", small, compressed=compressed)
    data = good.read_bytes()
    path = tmp_path / "trunc.npz"
    path.write_bytes(data[: len(data) // 2])
    msg = _error(path)
    assert "truncated or corrupt zip" in msg and "no end-of-archive record" in msg


@pytest.mark.parametrize("compressed,mmap", [(False, True), (False, False), (True, True)])
def test_corrupt_member(tmp_path, small, compressed, mmap):
    data = bytearray(_save(tmp_path / "good.npz", small, compressed=compressed).read_bytes())
    data[4000:4016] = b"\x00\xff" * 8  # inside wav_vals, the first member
    path = tmp_path / "corrupt.npz"
    path.write_bytes(bytes(data))
    msg = _error(path, mmap=mmap)
    assert "truncated or corrupt zip" in msg and "wav_vals" in msg


def test_missing_keys_lists_present(tmp_path, small):
    path = _save(tmp_path / "k.npz", {"wav": small["wav_vals"], "label_vals": small["label_vals"]})
    msg = _error(path)
    assert "missing key(s) wav_vals" in msg and "[wav, label_vals]" in msg


def test_missing_both_keys(tmp_path):
    path = _save(tmp_path / "k.npz", {"x": np.zeros(3)})
    assert "missing key(s) wav_vals, label_vals" in _error(path)


def test_wav_wrong_ndim(tmp_path, small):
    path = _save(tmp_path / "s.npz", dict(small, wav_vals=small["wav_vals"].reshape(-1)))
    assert "wav_vals has shape (288000,), expected (N, 8000)" in _error(path)


def test_wav_trailing_channel_accepted_other_3d_rejected(tmp_path, small):
    ds = load_npz(_save(tmp_path / "c1.npz", dict(small, wav_vals=small["wav_vals"][:, :, None])))
    assert ds.wav.shape == (36, 8000)
    stereo = np.repeat(small["wav_vals"][:, :, None], 2, axis=2)
    assert "shape (36, 8000, 2), expected (N, 8000)" in _error(_save(tmp_path / "c2.npz", dict(small, wav_vals=stereo)))


def test_clips_not_8000_samples(tmp_path, small):
    path = _save(tmp_path / "len.npz", dict(small, wav_vals=np.zeros((36, 16000), np.float32)))
    msg = _error(path)
    assert "clips are 16000 samples long, expected 8000 (1 s at 8000 Hz)" in msg


def test_window_samples_parameter(tmp_path, small):
    path = _save(tmp_path / "len.npz", dict(small, wav_vals=np.zeros((36, 16000), np.float32)))
    assert load_npz(path, window_samples=16000, sample_rate_hz=16000).window_samples == 16000


def test_no_clips(tmp_path):
    path = _save(tmp_path / "zero.npz", {"wav_vals": np.zeros((0, 8000), np.float32),
                                         "label_vals": np.zeros((0, 1), "U7")})
    assert "holds no clips" in _error(path)


def test_bad_wav_dtype(tmp_path, small):
    path = _save(tmp_path / "d.npz", dict(small, wav_vals=small["wav_vals"].astype(np.int32)))
    assert "wav_vals has dtype int32, expected float32 in [-1, 1] or int16 PCM" in _error(path)


def test_label_shape_and_count(tmp_path, small):
    two = np.concatenate([small["label_vals"], small["label_vals"]], axis=1)
    assert "label_vals has shape (36, 2), expected (36, 1) or (36,)" in _error(
        _save(tmp_path / "l1.npz", dict(small, label_vals=two)))
    assert "label_vals has 35 labels but wav_vals has 36 clips" in _error(
        _save(tmp_path / "l2.npz", dict(small, label_vals=small["label_vals"][:35])))


def test_numeric_labels(tmp_path, small):
    path = _save(tmp_path / "n.npz", dict(small, label_vals=np.zeros((36, 1), np.int64)))
    assert "label_vals must be a str array, got dtype int64" in _error(path)


def test_labels_outside_vocabulary(tmp_path, small):
    labels = small["label_vals"].copy().astype("U7")
    labels[:5] = "bed"
    labels[5:7] = "cat"
    msg = _error(_save(tmp_path / "v.npz", dict(small, label_vals=labels)))
    assert "labels outside the vocabulary: 'bed' (5), 'cat' (2)" in msg
    assert "expected one of yes no up down left right on off stop go unknown silence" in msg


@pytest.mark.parametrize("chunk_rows", [4096, 2])
def test_nan_and_inf_counted(tmp_path, small, monkeypatch, chunk_rows):
    monkeypatch.setattr(kdata, "_CHUNK_ROWS", chunk_rows)  # 2: the count runs across chunks
    wav = small["wav_vals"].copy()
    wav[3, :4] = np.nan
    wav[20, 100] = np.inf
    wav[21, 7] = -np.inf
    msg = _error(_save(tmp_path / "nan.npz", dict(small, wav_vals=wav)))
    assert "wav_vals has 6 non-finite samples (NaN: 4, inf: 2) in 3 clips (first: clip 3)" in msg


@pytest.mark.parametrize("chunk_rows", [4096, 2])
def test_float_audio_far_outside_unit_range_is_refused(tmp_path, small, monkeypatch, chunk_rows):
    monkeypatch.setattr(kdata, "_CHUNK_ROWS", chunk_rows)
    wav = small["wav_vals"].astype(np.float32)
    wav[:] = 0.5
    kdata.load_npz(_save(tmp_path / "ok.npz", dict(small, wav_vals=wav)))   # in range: fine
    wav[7, 3] = 1.5                                                         # a little over: fine
    kdata.load_npz(_save(tmp_path / "over.npz", dict(small, wav_vals=wav)))
    wav[9, 3] = -12000.0                                                    # int16 stored as float
    msg = _error(_save(tmp_path / "pcm.npz", dict(small, wav_vals=wav)))
    assert "wav_vals is float32 with samples up to 12000; expected float audio in [-1, 1]" in msg


def test_speaker_and_split_checked(tmp_path, small):
    assert "speaker has shape (35,), expected (36,) to match 36 clips" in _error(
        _save(tmp_path / "s1.npz", dict(small, speaker=small["speaker"][:35])))
    bad_split = np.array(["train"] * 30 + ["dev"] * 6)
    assert "split has values ['dev'], expected only train, validation, testing" in _error(
        _save(tmp_path / "s2.npz", dict(small, split=bad_split)))


# ------------------------------------------------------------------ splits

@pytest.fixture(scope="module")
def speaker_ds(tmp_path_factory) -> Dataset:
    """12 labels x 40 clips over 40 speakers (every speaker has several classes)."""
    path = tmp_path_factory.mktemp("spk") / "spk.npz"
    np.savez(path, **synthetic_dataset(clips_per_label=40, n_speakers=40, seed=3))
    return load_npz(path)


def _disjoint(split: Split, n: int) -> None:
    parts = [split.train, split.val, split.test]
    assert sum(len(p) for p in parts) == n
    assert len(np.unique(np.concatenate(parts))) == n
    for p in parts:
        assert p.dtype.kind == "i" and np.all(np.diff(p) > 0)


def _same(a: Split, b: Split) -> bool:
    return all(np.array_equal(x, y) for x, y in ((a.train, b.train), (a.val, b.val), (a.test, b.test)))


def test_speaker_split_disjoint_reproducible_all_classes(speaker_ds):
    split = split_dataset(speaker_ds, seed=0)
    assert split.by == "speaker"
    _disjoint(split, len(speaker_ds))
    spk = speaker_ds.speaker
    assert not set(spk[split.train]) & set(spk[split.val])
    assert not set(spk[split.train]) & set(spk[split.test])
    assert not set(spk[split.val]) & set(spk[split.test])
    for idx in (split.train, split.val, split.test):
        assert all(c > 0 for c in class_counts(speaker_ds, idx).values())
    n = len(speaker_ds)
    assert 0.04 * n < len(split.val) < 0.2 * n and 0.04 * n < len(split.test) < 0.2 * n
    assert _same(split, split_dataset(speaker_ds, seed=0))
    assert not _same(split, split_dataset(speaker_ds, seed=1))


def test_speaker_split_keeps_rare_class_in_every_split(tmp_path):
    # "silence" comes from only three pseudo-speakers of very different sizes.
    arrays = synthetic_dataset(clips_per_label=30, n_speakers=30, seed=4)
    sil = arrays["label_vals"][:, 0] == "silence"
    spk = arrays["speaker"].astype("U20")
    spk[np.flatnonzero(sil)] = ["noiseA"] * 20 + ["noiseB"] * 8 + ["noiseC"] * 2
    ds = load_npz(_save(tmp_path / "rare.npz", dict(arrays, speaker=spk)))
    for seed in range(3):
        split = split_dataset(ds, seed=seed)
        _disjoint(split, len(ds))
        sil_train = set(spk[split.train]) & {"noiseA", "noiseB", "noiseC"}
        assert sil_train == {"noiseA"}  # the biggest noise source trains
        for idx in (split.val, split.test):
            assert class_counts(ds, idx)["silence"] > 0


def test_speaker_split_too_few_speakers(tmp_path, small):
    one = dict(small, speaker=np.array(["same"] * 36))
    ds = load_npz(_save(tmp_path / "one.npz", one))
    with pytest.raises(DataError, match="1 speaker\\(s\\), need at least 3 to split by speaker"):
        split_dataset(ds, by="speaker")
    split = split_dataset(ds, seed=0)  # auto falls through to stratified
    assert split.by == "stratified"
    assert split_dataset(ds, by="speaker", val_fraction=0.0, test_fraction=0.0).by == "speaker"


def test_split_array_used_without_speaker(tmp_path, small):
    split_arr = np.array(["train"] * 24 + ["validation"] * 6 + ["testing"] * 6)
    arrays = {"wav_vals": small["wav_vals"], "label_vals": small["label_vals"], "split": split_arr}
    ds = load_npz(_save(tmp_path / "sa.npz", arrays))
    split = split_dataset(ds, seed=5)
    assert split.by == "split"
    np.testing.assert_array_equal(split.train, np.arange(24))
    np.testing.assert_array_equal(split.val, np.arange(24, 30))
    np.testing.assert_array_equal(split.test, np.arange(30, 36))
    assert split_dataset(ds, by="stratified").by == "stratified"


def test_stratified_split_like_the_seed(tmp_path, speaker_ds):
    arrays = {"wav_vals": np.asarray(speaker_ds.wav), "label_vals": speaker_ds.label_strings()[:, None]}
    ds = load_npz(_save(tmp_path / "strat.npz", arrays))
    split = split_dataset(ds, seed=0)
    assert split.by == "stratified"
    _disjoint(split, len(ds))
    assert len(split.test) == 48 and len(split.val) == 48  # 10 % of 480 each
    for idx in (split.val, split.test):
        assert set(class_counts(ds, idx).values()) == {4}  # 40 per class -> exactly 4 each
    assert _same(split, split_dataset(ds, seed=0))
    assert not _same(split, split_dataset(ds, seed=1))
    # the seed's own recipe, for the test part
    from sklearn.model_selection import train_test_split

    _, seed_test = train_test_split(np.arange(len(ds)), test_size=0.1, random_state=0, shuffle=True,
                                    stratify=ds.labels)
    np.testing.assert_array_equal(split.test, np.sort(seed_test))


def test_stratified_falls_back_when_a_class_is_tiny(tmp_path, small):
    labels = small["label_vals"].copy()
    labels[0] = "yes"
    labels[labels[:, 0] == "no"] = "up"
    labels[0] = "no"  # "no" has a single clip: cannot stratify
    ds = load_npz(_save(tmp_path / "tiny.npz", {"wav_vals": small["wav_vals"], "label_vals": labels}))
    split = split_dataset(ds, seed=0)
    _disjoint(split, len(ds))
    assert _same(split, split_dataset(ds, seed=0))


def test_split_argument_errors(speaker_ds, small, tmp_path):
    with pytest.raises(DataError, match="test_fraction=1.5 is out of range"):
        split_dataset(speaker_ds, test_fraction=1.5)
    with pytest.raises(DataError, match="leaves nothing to train on"):
        split_dataset(speaker_ds, val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(DataError, match="split method 'random' is unknown"):
        split_dataset(speaker_ds, by="random")
    ds = load_npz(_save(tmp_path / "ns.npz", {"wav_vals": small["wav_vals"], "label_vals": small["label_vals"]}))
    with pytest.raises(DataError, match="has no speaker array"):
        split_dataset(ds, by="speaker")
    with pytest.raises(DataError, match="has no split array"):
        split_dataset(ds, by="split")


def test_zero_val_fraction(speaker_ds):
    split = split_dataset(speaker_ds, val_fraction=0.0, test_fraction=0.2)
    assert len(split.val) == 0 and len(split.test) > 0
    _disjoint(split, len(speaker_ds))


def test_speaker_folds_partition_the_speakers(speaker_ds):
    of_clip = speaker_folds(speaker_ds, folds=5, seed=0)
    assert of_clip.shape == (len(speaker_ds),) and set(of_clip.tolist()) == set(range(5))
    spk = speaker_ds.speaker
    for k in range(5):      # a speaker is in one fold only; every fold has every class
        assert not set(spk[of_clip == k]) & set(spk[of_clip != k])
        assert all(c > 0 for c in class_counts(speaker_ds, np.flatnonzero(of_clip == k)).values())
    sizes = np.bincount(of_clip)
    assert sizes.min() > 0.6 * len(speaker_ds) / 5 and sizes.max() < 1.4 * len(speaker_ds) / 5, sizes
    np.testing.assert_array_equal(of_clip, speaker_folds(speaker_ds, folds=5, seed=0))
    assert not np.array_equal(of_clip, speaker_folds(speaker_ds, folds=5, seed=1))


def test_fold_splits_test_every_speaker_once(speaker_ds):
    of_clip = speaker_folds(speaker_ds, folds=4, seed=2)
    tested = []
    for k in range(4):
        split = split_dataset(speaker_ds, seed=2, folds=4, fold=k, val_fraction=0.3)   # fractions: ignored
        assert split.by == "speaker"
        _disjoint(split, len(speaker_ds))
        np.testing.assert_array_equal(split.test, np.flatnonzero(of_clip == k))
        np.testing.assert_array_equal(split.val, np.flatnonzero(of_clip == (k + 1) % 4))
        assert _same(split, split_dataset(speaker_ds, seed=2, folds=4, fold=k))
        tested.append(split.test)
    np.testing.assert_array_equal(np.sort(np.concatenate(tested)), np.arange(len(speaker_ds)))


def test_fold_split_errors(speaker_ds, small, tmp_path):
    with pytest.raises(DataError, match=r"folds=2: expected a whole number >= 3"):
        split_dataset(speaker_ds, folds=2)
    with pytest.raises(DataError, match=r"fold=5: expected a whole number in \[0, 4\] \(folds=5\)"):
        split_dataset(speaker_ds, folds=5, fold=5)
    with pytest.raises(DataError, match="folds=5 splits by speaker; split method 'stratified' cannot make folds"):
        split_dataset(speaker_ds, folds=5, by="stratified")
    with pytest.raises(DataError, match=r"4 speaker\(s\), need at least 5 for 5 folds"):
        split_dataset(load_npz(_save(tmp_path / "few.npz", small)), folds=5)
    ds = load_npz(_save(tmp_path / "ns.npz", {"wav_vals": small["wav_vals"], "label_vals": small["label_vals"]}))
    with pytest.raises(DataError, match="has no speaker array, cannot make folds of speakers"):
        split_dataset(ds, folds=3)


def test_class_counts(speaker_ds):
    counts = class_counts(speaker_ds)
    assert list(counts) == list(SEED_LABELS) and set(counts.values()) == {40}
    assert sum(class_counts(speaker_ds, np.arange(10)).values()) == 10


@pytest.mark.slow
def test_real_npz_speaker_split(shared_npz):
    ds = load_npz(shared_npz)
    assert len(ds) == 9198 and ds.wav.dtype == np.int16
    assert class_counts(ds)["unknown"] == 5671 and class_counts(ds)["silence"] == 604
    split = split_dataset(ds, seed=0)
    assert split.by == "speaker"
    _disjoint(split, len(ds))
    spk = ds.speaker
    assert not set(spk[split.train]) & (set(spk[split.val]) | set(spk[split.test]))
    assert not set(spk[split.val]) & set(spk[split.test])
    for idx in (split.train, split.val, split.test):
        assert all(c > 0 for c in class_counts(ds, idx).values())
    assert _same(split, split_dataset(ds, seed=0))
    # Models record only the split's seed and fractions; export and kws-data stream re-derive their
    # held-out speakers from them, so the speakers chosen for a seed must never move.
    import hashlib
    digest = hashlib.sha1(np.concatenate([split.train, [-1], split.val, [-1], split.test]).tobytes()).hexdigest()
    assert digest == "6a7297c920bac00c38ddaa63351977d59230f63d"
    audio = ds.audio(split.test[:4])
    assert audio.dtype == np.float32 and np.abs(audio).max() <= 1.0


# ------------------------------------------------------------------ extra training clips

def _extra(tmp_path, small, *, speaker_prefix="tts", int16=False, name="extra.npz", **changes):
    arrays = dict(small, speaker=np.array([f"{speaker_prefix}{s}" for s in small["speaker"]]))
    if int16:
        arrays["wav_vals"] = np.round(arrays["wav_vals"] * 32767).astype(np.int16)
    arrays.update(changes)
    return load_npz(_save(tmp_path / name, arrays))


def test_add_training_clips_only_to_train(tmp_path, speaker_ds, small):
    split = split_dataset(speaker_ds, seed=0)
    extra = _extra(tmp_path, small)
    joined, new = kdata.add_training_clips(speaker_ds, split, extra)
    n, m = len(speaker_ds), len(extra)
    assert len(joined) == n + m and new.by == split.by
    np.testing.assert_array_equal(new.val, split.val)
    np.testing.assert_array_equal(new.test, split.test)
    np.testing.assert_array_equal(new.train, np.concatenate([split.train, np.arange(n, n + m)]))
    # the original rows are untouched, the new ones are the extra's, in the original's dtype
    np.testing.assert_array_equal(joined.audio(slice(0, n)), speaker_ds.audio(slice(None)))
    assert joined.wav.dtype == speaker_ds.wav.dtype
    np.testing.assert_allclose(joined.audio(slice(n, None)), extra.audio(slice(None)), atol=1e-7)
    np.testing.assert_array_equal(joined.labels[n:], extra.labels)
    np.testing.assert_array_equal(joined.speaker[n:], extra.speaker)
    assert class_counts(joined, new.train)["yes"] == class_counts(speaker_ds, split.train)["yes"] + \
        class_counts(extra)["yes"]


def test_add_training_clips_float_into_int16(tmp_path, small):
    pcm = dict(small, wav_vals=np.round(small["wav_vals"] * 32767).astype(np.int16))
    ds = load_npz(_save(tmp_path / "pcm.npz", pcm))
    split = split_dataset(ds, seed=0)
    loud = dict(small, wav_vals=np.clip(small["wav_vals"] * 40, -1, 1))   # full-scale rows: clipped, no wrap
    extra = _extra(tmp_path, loud)
    joined, _ = kdata.add_training_clips(ds, split, extra)
    assert joined.wav.dtype == np.int16
    np.testing.assert_allclose(joined.audio(slice(len(ds), None)), extra.audio(slice(None)), atol=1 / 32768)
    assert joined.wav[len(ds):].max() == 32767 and joined.wav[len(ds):].min() == -32768


def test_add_training_clips_refuses_held_out_speakers_and_other_lengths(tmp_path, speaker_ds, small):
    split = split_dataset(speaker_ds, seed=0)
    held = str(speaker_ds.speaker[split.val[0]])
    leaky = _extra(tmp_path, small, speaker_prefix="", name="leak.npz",
                   speaker=np.array([held] * len(small["speaker"])))
    with pytest.raises(DataError) as info:
        kdata.add_training_clips(speaker_ds, split, leaky)
    msg = str(info.value)
    assert f"{tmp_path / 'leak.npz'}: speaker(s) {held!r} are validation or test speakers" in msg
    assert "\n" not in msg
    # a training speaker may come back: that leaks nothing
    trained = str(speaker_ds.speaker[split.train[0]])
    ok = _extra(tmp_path, small, speaker_prefix="", name="ok.npz", speaker=np.array([trained] * len(small["speaker"])))
    assert len(kdata.add_training_clips(speaker_ds, split, ok)[0]) == len(speaker_ds) + len(ok)
    short = Dataset(path=tmp_path / "short.npz", wav=np.zeros((2, 4000), np.float32), labels=np.zeros(2, np.int64),
                    sample_rate_hz=4000)
    with pytest.raises(DataError, match="short.npz: clips of 4000 samples at 4000 Hz; expected 8000 at 8000 Hz"):
        kdata.add_training_clips(speaker_ds, split, short)


def test_add_training_clips_without_speakers_warns(tmp_path, speaker_ds, small, caplog):
    split = split_dataset(speaker_ds, seed=0)
    arrays = {k: v for k, v in small.items() if k != "speaker"}
    extra = load_npz(_save(tmp_path / "anon.npz", arrays))
    with caplog.at_level("WARNING"):
        joined, _ = kdata.add_training_clips(speaker_ds, split, extra)
    assert "anon.npz has no speaker array" in caplog.text
    assert set(joined.speaker[len(speaker_ds):]) == {"file:anon.npz"}


def test_add_training_clips_several_at_once(tmp_path, speaker_ds, small):
    split = split_dataset(speaker_ds, seed=0)
    a = _extra(tmp_path, small, speaker_prefix="a-", name="a.npz")
    b = _extra(tmp_path, small, speaker_prefix="b-", int16=True, name="b.npz")
    joined, new = kdata.add_training_clips(speaker_ds, split, a, b)
    n, m = len(speaker_ds), len(a)
    np.testing.assert_array_equal(new.train, np.concatenate([split.train, np.arange(n, n + 2 * m)]))
    np.testing.assert_array_equal(joined.speaker[n:], np.concatenate([a.speaker, b.speaker]))
    np.testing.assert_allclose(joined.audio(slice(n + m, None)), b.audio(slice(None)), atol=1 / 32768)
    same_ds, same_split = kdata.add_training_clips(speaker_ds, split)   # nothing to add
    assert same_ds is speaker_ds and same_split is split


def test_fold_in_moves_parts_into_train(speaker_ds):
    split = split_dataset(speaker_ds, seed=2)
    both = kdata.fold_in(split, kdata.TRAIN_ON["train+val"])
    np.testing.assert_array_equal(both.train, np.sort(np.concatenate([split.train, split.val])))
    assert both.val.size == 0 and both.val.dtype == np.int64
    np.testing.assert_array_equal(both.test, split.test)
    assert both.by == split.by
    every = kdata.fold_in(split, kdata.TRAIN_ON["all"])
    np.testing.assert_array_equal(every.train, np.arange(len(speaker_ds)))
    assert every.val.size == every.test.size == 0
    same = kdata.fold_in(split, ("train",))
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(same, part), getattr(split, part))
    for bad in (("val",), ("train", "holdout")):
        with pytest.raises(DataError, match="expected 'train' and any of 'val', 'test'"):
            kdata.fold_in(split, bad)


def test_trained_parts_defaults_to_train():
    from kws.runtime.meta import trained_parts

    assert trained_parts(None) == ("train",)
    assert trained_parts({"seed": 0}) == ("train",)
    assert trained_parts({"trained_on": ["train", "val"]}) == ("train", "val")
