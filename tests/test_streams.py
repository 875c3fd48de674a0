"""kws-data stream (kws.train.streams): layout, truth times, noise level, reproducibility, bad input."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from kws.runtime.audio_io import read_wav
from kws.runtime.errors import DataError, KwsError
from kws.runtime.labels import KEYWORDS, UNKNOWN
from kws.runtime.scoring import load_truth
from kws.train import streams
from kws.train.data import load_npz, split_dataset
from kws.train.streams import PAD_S, SPEECH_LEVEL_DBFS, StreamSettings, build_stream, speech_bounds

SR = 8000


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    streams.add_arguments(parser)
    return streams.run(parser.parse_args([str(a) for a in argv]))


@pytest.fixture(scope="module")
def ds(synth_npz):
    return load_npz(synth_npz)


def _words(truth):
    return sorted(truth["events"] + truth["unknown_events"], key=lambda e: e["start_s"])


# ---------------------------------------------------------------------------------------
# The trimmer
# ---------------------------------------------------------------------------------------
def test_speech_bounds_finds_the_burst_and_ignores_a_click():
    rng = np.random.default_rng(0)
    clip = rng.normal(0, 0.002, SR).astype(np.float32)
    t = np.arange(2400) / SR
    clip[3000:5400] += 0.3 * np.sin(2 * np.pi * 440 * t) * np.hanning(2400)
    start, end = speech_bounds(clip, sample_rate_hz=SR)
    assert 3000 - 160 <= start <= 3000 + 400 and 5400 - 400 <= end <= 5400 + 160
    clicked = clip.copy()
    clicked[7600:7640] = 0.9  # a short loud click far from the word
    c_start, c_end = speech_bounds(clicked, sample_rate_hz=SR)  # (the click raises the peak a little)
    assert 3000 - 160 <= c_start <= 3000 + 400 and 5400 - 400 <= c_end <= 5400 + 160
    assert speech_bounds(np.zeros(SR, np.float32), sample_rate_hz=SR) is None


# ---------------------------------------------------------------------------------------
# The stream
# ---------------------------------------------------------------------------------------
def test_stream_layout_and_truth_match_the_audio(ds, tmp_path):
    idx = np.arange(len(ds))
    stream = build_stream(ds, idx, StreamSettings(minutes=1.5, snr_db=float("inf"), seed=3), progress=False)
    truth = stream.truth
    assert truth["sample_rate_hz"] == SR and truth["duration_s"] == pytest.approx(90.0)
    assert len(stream.audio) == 90 * SR
    events = truth["events"]
    assert len(events) >= 8 and {e["label"] for e in events} <= set(KEYWORDS)
    assert truth["unknown_events"] and {e["label"] for e in truth["unknown_events"]} == {UNKNOWN}
    words = _words(truth)
    for prev, nxt in zip(words, words[1:]):  # never overlapping: at least the minimum gap apart
        assert nxt["start_s"] - prev["end_s"] >= 1.5 - 1e-3
    # Each truth span holds exactly its clip's speech times its level gain (no noise added;
    # the stream gain is 1 unless clipping).
    gain = truth["settings"]["gain"]
    covered = np.zeros(len(stream.audio), bool)
    for e in words:
        clip = ds.audio(e["clip_index"])
        assert ds.label_names[ds.labels[e["clip_index"]]] == e["label"]
        s, end = speech_bounds(clip)
        a = int(round(e["start_s"] * SR))
        assert int(round(e["end_s"] * SR)) - a == end - s
        np.testing.assert_allclose(stream.audio[a + 80:a + (end - s) - 80],
                                   gain * e["level_gain"] * clip[s + 80:end - 80], atol=1e-5)
        pad = int(PAD_S * SR)
        covered[max(0, a - pad):a + (end - s) + pad] = True
    assert np.all(stream.audio[~covered] == 0.0)  # nothing outside the placed words


def _word_levels_db(ds, stream):
    """Speech-span level (dBFS) of every placed word, as it sits in the stream."""
    gain = stream.truth["settings"]["gain"]
    levels = []
    for e in _words(stream.truth):
        a, b = int(round(e["start_s"] * SR)), int(round(e["end_s"] * SR))
        levels.append(10 * np.log10(np.mean(np.square(stream.audio[a:b] / gain, dtype=np.float64))))
    return np.array(levels)


def test_word_levels_are_evened_out_within_the_spread(ds):
    idx = np.arange(len(ds))
    flat = build_stream(ds, idx, StreamSettings(minutes=1.0, snr_db=float("inf"), seed=2, level_spread_db=0.0),
                        progress=False)
    np.testing.assert_allclose(_word_levels_db(ds, flat), SPEECH_LEVEL_DBFS, atol=0.3)
    spread = build_stream(ds, idx, StreamSettings(minutes=1.0, snr_db=float("inf"), seed=2, level_spread_db=12.0),
                          progress=False)
    levels = _word_levels_db(ds, spread)
    assert np.all(np.abs(levels - SPEECH_LEVEL_DBFS) <= 6.0 + 0.3)
    assert levels.std() > 2.0  # really spread, not all at one level


def test_keep_levels_places_clips_as_recorded(ds):
    stream = build_stream(ds, np.arange(len(ds)),
                          StreamSettings(minutes=1.0, snr_db=float("inf"), seed=2, level_spread_db=None),
                          progress=False)
    assert {e["level_gain"] for e in _words(stream.truth)} == {1.0}


def test_negatives_only_has_no_keywords(ds):
    stream = build_stream(ds, np.arange(len(ds)), StreamSettings(minutes=1.0, negatives_only=True),
                          progress=False)
    assert stream.truth["events"] == []
    assert len(stream.truth["unknown_events"]) >= 10
    assert stream.truth["settings"]["negatives_only"] is True


def test_snr_is_the_requested_one(ds):
    idx = np.arange(len(ds))
    clean = build_stream(ds, idx, StreamSettings(minutes=1.0, snr_db=float("inf"), seed=1), progress=False)
    noisy = build_stream(ds, idx, StreamSettings(minutes=1.0, snr_db=5.0, seed=1), progress=False)
    assert noisy.truth["events"] == clean.truth["events"]  # the noise does not change the layout
    g = noisy.truth["settings"]["gain"]
    noise = noisy.audio / g - clean.audio / clean.truth["settings"]["gain"]
    powers = []
    for e in _words(clean.truth):
        a, b = int(round(e["start_s"] * SR)), int(round(e["end_s"] * SR))
        powers.append(np.mean(clean.audio[a:b].astype(np.float64) ** 2))
    snr = 10 * np.log10(np.mean(powers) / np.mean(noise.astype(np.float64) ** 2))
    assert snr == pytest.approx(5.0, abs=0.2)
    # The noise is everywhere, also between words.
    gaps = np.ones(len(noisy.audio), bool)
    for e in _words(noisy.truth):
        gaps[int(e["start_s"] * SR) - 800:int(e["end_s"] * SR) + 800] = False
    assert np.sqrt(np.mean(noisy.audio[gaps] ** 2)) == pytest.approx(noisy.truth["settings"]["noise_rms"], rel=0.2)


def test_cli_writes_wav_and_truth_reproducibly(synth_npz, tmp_path, capsys):
    out_a, out_b, out_c = tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "c.wav"
    assert run_cli("--data", synth_npz, "--minutes", 1, "--out", out_a, "--split", "all", "--seed", 7) == 0
    assert run_cli("--data", synth_npz, "--minutes", 1, "--out", out_b, "--split", "all", "--seed", 7) == 0
    assert run_cli("--data", synth_npz, "--minutes", 1, "--out", out_c, "--split", "all", "--seed", 8) == 0
    assert out_a.read_bytes() == out_b.read_bytes()
    assert out_a.read_bytes() != out_c.read_bytes()
    ta = json.loads((tmp_path / "a.json").read_text())
    tb = json.loads((tmp_path / "b.json").read_text())
    assert ta["events"] == tb["events"] and ta["format"] == "kws-stream-truth/1"
    audio, rate = read_wav(out_a)
    assert rate == SR and audio.shape == (60 * SR, 1)
    truth = load_truth(tmp_path / "a.json")  # the scorer reads it
    assert len(truth.events) == len(ta["events"]) > 0
    assert "wrote" in capsys.readouterr().out


def test_test_split_and_model_json_split(synth_npz, ds, tmp_path):
    run_cli("--data", synth_npz, "--minutes", 1, "--out", tmp_path / "t.wav")
    truth = json.loads((tmp_path / "t.json").read_text())
    test_idx = set(split_dataset(ds).test.tolist())
    used = {e["clip_index"] for e in truth["events"] + truth["unknown_events"]}
    assert used and used <= test_idx
    assert truth["settings"]["split"] == "test"

    from kws.runtime.features import FeatureConfig
    from kws.runtime.labels import SEED_LABELS
    from kws.runtime.meta import ModelMeta

    meta = ModelMeta(SEED_LABELS, FeatureConfig(),
                     {"split": {"seed": 5, "val_fraction": 0.2, "test_fraction": 0.3, "by": "speaker"}})
    meta.save(tmp_path / "model.json")
    run_cli("--data", synth_npz, "--minutes", 1, "--out", tmp_path / "m.wav", "--model-json", tmp_path / "model.json")
    truth = json.loads((tmp_path / "m.json").read_text())
    test_idx = set(split_dataset(ds, seed=5, val_fraction=0.2, test_fraction=0.3, by="speaker").test.tolist())
    used = {e["clip_index"] for e in truth["events"] + truth["unknown_events"]}
    assert used and used <= test_idx
    assert truth["settings"]["split_settings"]["seed"] == 5


def test_model_json_trained_on_the_split_is_refused(synth_npz, tmp_path):
    from kws.runtime.features import FeatureConfig
    from kws.runtime.labels import SEED_LABELS
    from kws.runtime.meta import ModelMeta

    ModelMeta(SEED_LABELS, FeatureConfig(), {"split": {"seed": 0, "trained_on": ["train", "val", "test"]}}).save(
        tmp_path / "all.json")
    with pytest.raises(DataError, match=r"--split test: the model of --model-json .*all.json was trained on its "
                                        r"test speakers too"):
        run_cli("--data", synth_npz, "--minutes", 0.25, "--out", tmp_path / "x.wav", "--model-json",
                tmp_path / "all.json")
    assert not (tmp_path / "x.wav").exists()
    ModelMeta(SEED_LABELS, FeatureConfig(), {"split": {"seed": 0, "trained_on": ["train", "val"]}}).save(
        tmp_path / "tv.json")
    assert run_cli("--data", synth_npz, "--minutes", 0.25, "--out", tmp_path / "t.wav", "--model-json",
                   tmp_path / "tv.json") == 0
    with pytest.raises(DataError, match="--split val: .* trained on its val speakers too"):
        run_cli("--data", synth_npz, "--minutes", 0.25, "--out", tmp_path / "v.wav", "--split", "val",
                "--model-json", tmp_path / "tv.json")


def test_pair_writes_a_negatives_stream(synth_npz, tmp_path):
    assert run_cli("--data", synth_npz, "--minutes", 0.5, "--out", tmp_path / "s.wav", "--truth",
                   tmp_path / "s_truth.json", "--split", "all", "--pair") == 0
    kw = json.loads((tmp_path / "s_truth.json").read_text())
    neg = json.loads((tmp_path / "s_truth_negatives.json").read_text())
    assert kw["events"] and not neg["events"] and neg["unknown_events"]
    assert (tmp_path / "s_negatives.wav").is_file()
    assert neg["settings"]["seed"] == kw["settings"]["seed"] + 1


def test_registered_in_kws_data(synth_npz, tmp_path):
    from kws.train.data_cli import main

    assert main(["stream", "--data", str(synth_npz), "--minutes", "0.25", "--out", str(tmp_path / "x.wav"),
                 "--split", "all", "--negatives-only"]) == 0
    assert json.loads((tmp_path / "x.json").read_text())["events"] == []


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--minutes", "0"], "--minutes 0.0: expected a number in [0.0833333, 600]"),
    (["--minutes", "0.01"], "--minutes 0.01: expected a number in [0.0833333, 600]"),
    (["--snr-db", "1e6"], "--snr-db 1000000.0: expected a number of dB in [-120, 120] (or inf for no noise)"),
    (["--gap-s", "3", "1"], "--gap-s 3.0 1.0: expected 0 <= MIN <= MAX seconds"),
    (["--unknown-rate", "-1"], "--unknown-rate -1.0: expected a number >= 0"),
    (["--snr-db", "nan"], "--snr-db nan: expected a number of dB"),
    (["--level-spread-db", "-3"], "--level-spread-db -3.0: expected a number of dB in [0, 40]"),
    (["--out", "stream.mp3"], "--out stream.mp3: expected a .wav path"),
    (["--pair", "--negatives-only"], "--pair and --negatives-only: pick one"),
    (["--noise-dir", "/nonexistent/noise"], "--noise-dir /nonexistent/noise: not a directory"),
    (["--seed", "-1"], "--seed -1: expected an integer in [0, 2**32)"),
    (["--truth", "t.txt"], "--truth t.txt: expected a .json path"),
    (["--truth", ""], "--truth .: expected a .json path"),
    (["--out", "afile/s.wav"], "--out afile/s.wav: folder afile is not a directory"),
])
def test_bad_arguments(synth_npz, tmp_path, argv, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("mine")
    base = {"--data": str(synth_npz), "--minutes": "1", "--out": "s.wav"}
    for i, a in enumerate(argv):
        if a in base and i + 1 < len(argv):
            base.pop(a)
    args = [x for kv in base.items() for x in kv] + argv
    with pytest.raises(KwsError) as info:
        run_cli(*args)
    assert message in str(info.value)


def test_no_keywords_in_the_split_is_refused(tmp_path):
    from kws.train.synth import write_synthetic_npz

    path = write_synthetic_npz(tmp_path / "nokw.npz", clips_per_label=5, labels=("unknown", "silence"))
    with pytest.raises(DataError, match="no keyword clips among the 10 clips chosen"):
        run_cli("--data", path, "--minutes", 1, "--out", tmp_path / "s.wav", "--split", "all")
    # ... but a negatives-only stream can be built from it.
    assert run_cli("--data", path, "--minutes", 0.5, "--out", tmp_path / "n.wav", "--split", "all",
                   "--negatives-only") == 0


def test_missing_npz_is_one_line(tmp_path, capsys):
    from kws.train.data_cli import main

    code = main(["stream", "--data", str(tmp_path / "none.npz"), "--minutes", "1", "--out", str(tmp_path / "s.wav")])
    err = capsys.readouterr().err
    assert code == 2 and "none.npz" in err and err.count("\n") == 1 and "Traceback" not in err


def test_noise_dir(synth_npz, tmp_path):
    from kws.runtime.audio_io import write_wav

    noise_dir = tmp_path / "noise"
    noise_dir.mkdir()
    rng = np.random.default_rng(0)
    write_wav(noise_dir / "hum.wav", 0.1 * np.sin(2 * np.pi * 50 * np.arange(16000 * 3) / 16000) +
              0.01 * rng.standard_normal(16000 * 3), 16000)  # resampled to 8 kHz
    assert run_cli("--data", synth_npz, "--minutes", 0.5, "--out", tmp_path / "s.wav", "--split", "all",
                   "--noise-dir", noise_dir) == 0
    truth = json.loads((tmp_path / "s.json").read_text())
    assert truth["settings"]["noise"] == str(noise_dir)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no .wav files in it"):
        run_cli("--data", synth_npz, "--minutes", 0.5, "--out", tmp_path / "s.wav", "--noise-dir", empty, "--force")


def test_noise_from_outside_the_chosen_clips_is_said(ds, caplog):
    """Chosen clips without silence (a speaker fold, say): the noise is the npz's silence clips,
    which a model may have trained on, and a warning says so; with silence among them, nothing."""
    names = np.asarray(ds.label_names)[ds.labels]
    settings = StreamSettings(minutes=0.5, snr_db=10.0, seed=1)
    with caplog.at_level("WARNING", logger="kws.train.streams"):
        build_stream(ds, np.flatnonzero(names != "silence"), settings, progress=False)
    assert f"the chosen clips hold no silence clip: the noise comes from the npz's {int((names == 'silence').sum())} " \
           "silence clips, which a model may have trained on" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="kws.train.streams"):
        build_stream(ds, np.arange(len(ds)), settings, progress=False)
    assert "hold no silence clip" not in caplog.text


def _one_line_error(capsys, argv) -> str:
    from kws.train.data_cli import main

    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_truth_or_out_at_an_input_is_refused(synth_npz, tmp_path, capsys):
    import shutil

    data = tmp_path / "data.npz"
    shutil.copy(synth_npz, data)
    before = data.read_bytes()
    err = _one_line_error(capsys, ["stream", "--data", data, "--minutes", "0.1", "--out", tmp_path / "s.wav",
                                   "--truth", data, "--split", "all"])
    assert f"--truth {data}: is the --data file it reads" in err
    err = _one_line_error(capsys, ["stream", "--data", data, "--minutes", "0.1", "--out", tmp_path / "s.wav",
                                   "--truth", data, "--split", "all", "--force"])  # --force does not allow it
    assert "is the --data file it reads" in err
    assert data.read_bytes() == before and not (tmp_path / "s.wav").exists()


def test_existing_outputs_need_force(synth_npz, tmp_path, capsys):
    base = ["stream", "--data", synth_npz, "--minutes", "0.1", "--split", "all"]
    out, truth = tmp_path / "s1.wav", tmp_path / "s1.json"
    out.write_bytes(b"mine")
    err = _one_line_error(capsys, [*base, "--out", out])
    assert f"--out {out}: exists; pass --force to overwrite it" in err and out.read_bytes() == b"mine"
    out.unlink()
    truth.write_text("mine")
    err = _one_line_error(capsys, [*base, "--out", out])
    assert f"--truth {truth}: exists; pass --force" in err and truth.read_text() == "mine" and not out.exists()
    truth.unlink()
    (tmp_path / "s1_negatives.wav").write_bytes(b"mine")  # --pair's files are outputs too
    err = _one_line_error(capsys, [*base, "--out", out, "--pair"])
    assert "s1_negatives.wav: exists; pass --force" in err and not out.exists() and not truth.exists()
    from kws.train.data_cli import main

    assert main([str(a) for a in [*base, "--out", out, "--pair", "--force"]]) == 0
    assert (tmp_path / "s1_negatives.wav").read_bytes() != b"mine" and truth.is_file()


def test_out_that_is_a_folder_is_one_line(synth_npz, tmp_path, capsys):
    (tmp_path / "adir.wav").mkdir()
    err = _one_line_error(capsys, ["stream", "--data", synth_npz, "--minutes", "0.1", "--split", "all",
                                   "--out", tmp_path / "adir.wav", "--force"])
    assert "adir.wav: is a directory; expected a file name" in err


def test_a_failed_write_leaves_nothing_behind(synth_npz, tmp_path, monkeypatch):
    from kws.runtime import audio_io

    real = audio_io.write_wav
    calls = []

    def flaky(path, audio, rate):  # the second wav (--pair's negatives) fails: disk full
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(path, audio, rate)

    monkeypatch.setattr(audio_io, "write_wav", flaky)
    with pytest.raises(DataError, match=r"cannot write .*s_negatives.wav: No space left on device"):
        run_cli("--data", synth_npz, "--minutes", 0.1, "--out", tmp_path / "s.wav", "--split", "all", "--pair")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no stream, no truth, no temporary file


def test_write_atomically_keeps_the_old_file_on_failure(tmp_path):
    old = tmp_path / "a.json"
    old.write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise DataError("boom")

    with pytest.raises(DataError, match="boom"):
        streams.write_atomically([(old, lambda tmp: tmp.write_text("new")), (tmp_path / "b.json", fail)])
    assert old.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    streams.write_atomically([(old, lambda tmp: tmp.write_text("new"))])
    assert old.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_object_labels_load_with_allow_pickle(synth_npz, tmp_path, capsys):
    from kws.train.data_cli import main

    with np.load(synth_npz) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["label_vals"] = arrays["label_vals"].astype(object)
    obj = tmp_path / "obj.npz"
    np.savez(obj, **arrays)
    base = ["--data", str(obj), "--minutes", "0.1", "--split", "all"]
    err = _one_line_error(capsys, ["stream", *base, "--out", tmp_path / "a.wav"])
    assert "allow_pickle=True (--allow-pickle of kws-data inspect/stream/demo or kws-train)" in err
    assert main(["--allow-pickle", "stream", *base, "--out", str(tmp_path / "b.wav")]) == 0  # as the message says
    assert main(["stream", *base, "--out", str(tmp_path / "c.wav"), "--allow-pickle"]) == 0


def test_a_missing_output_folder_is_made(synth_npz, tmp_path):
    from kws.train.data_cli import main

    out = tmp_path / "streams" / "new" / "x.wav"
    assert main(["stream", "--data", str(synth_npz), "--minutes", "0.25", "--out", str(out), "--split", "all",
                 "--negatives-only"]) == 0
    assert out.is_file() and out.with_suffix(".json").is_file()
