"""The demo speech data (kws.train.demo): the labelled npz, the stream, ``kws-data demo``."""

from __future__ import annotations

import argparse
import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from kws.runtime.errors import DataError
from kws.runtime.labels import KEYWORDS, SEED_LABELS, SILENCE, UNKNOWN
from kws.train import demo, tts

REPO = Path(__file__).resolve().parents[1]
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kws-data demo")
    demo.add_arguments(parser)
    return parser.parse_args(argv)


# -- no engine, flags and outputs -------------------------------------------------------------
def test_no_engine_on_empty_path():
    assert tts.detect_voices(path="") == []
    assert tts.describe_voices([]).startswith("no text-to-speech engine found")
    with pytest.raises(tts.NoEngineError, match="no text-to-speech engine found.*espeak-ng.*demo_stream.wav") as exc:
        demo.generate(stream="unused.wav", path="")
    assert exc.value.exit_code == tts.EXIT_NO_ENGINE


def test_run_without_engines_says_so_and_returns_distinct_code(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code = demo.run(_parse(["--out", str(tmp_path / "d.npz"), "--stream", str(tmp_path / "s.wav")]))
    assert code == tts.EXIT_NO_ENGINE == 3
    err = capsys.readouterr().err
    assert "no text-to-speech engine found" in err and "apt-get install espeak-ng" in err
    assert not (tmp_path / "d.npz").exists() and not (tmp_path / "s.wav").exists()
    # The same through the kws-data command.
    from kws.train.data_cli import main as kws_data

    assert kws_data(["demo", "--stream", str(tmp_path / "s.wav")]) == tts.EXIT_NO_ENGINE
    assert "no text-to-speech engine found" in capsys.readouterr().err


def test_bad_engine_name_and_nothing_to_write(tmp_path):
    with pytest.raises(DataError, match="--engines 'espeak,flite': expected a comma-separated subset of espeak-ng"):
        demo.run(_parse(["--engines", "espeak,flite", "--out", str(tmp_path / "d.npz")]))
    with pytest.raises(DataError, match="nothing to write"):
        demo.generate()
    with pytest.raises(DataError, match="--clips-per-label 0: expected at least 1"):
        demo.generate(out=tmp_path / "d.npz", clips_per_label=0)


@needs_espeak
def test_kws_data_demo_command(tmp_path, capsys):
    from kws.train.data_cli import main as kws_data

    assert kws_data(["demo", "--list-voices", "--engines", "espeak-ng"]) == 0
    out = capsys.readouterr().out
    assert "espeak-ng: " in out and "espeak-ng:en-us:default" in out.splitlines()
    stream = tmp_path / "s.wav"
    assert kws_data(["demo", "--stream", str(stream), "--stream-seconds", "6", "--engines", "espeak-ng"]) == 0
    assert stream.is_file() and (tmp_path / "s.truth.json").is_file()
    assert kws_data(["demo", "--stream", str(stream), "--engines", "espeak-ng"]) == 2  # exists, no --force
    assert "s.wav: exists; pass --force" in capsys.readouterr().err


def test_existing_output_needs_force(tmp_path):
    out = tmp_path / "d.npz"
    out.write_bytes(b"x")
    with pytest.raises(DataError, match=r"d\.npz: exists; pass --force"):
        demo.generate(out=out, path="")


@pytest.mark.parametrize("argv, message", [
    (["--stream", "s4.wav", "--truth", "s4.wav"], "--truth s4.wav: is the same file as --stream s4.wav"),
    (["--out", "same.wav", "--stream", "same.wav"], "--stream same.wav: is the same file as --out same.wav"),
    (["--out", "d.npz", "--stream", "s.wav", "--truth", "d.npz"], "--truth d.npz: is the same file as --out"),
    (["--stream", "x.npz"], "--stream x.npz: expected a .wav path"),
    (["--out", "d.wav"], "--out d.wav: expected a .npz path"),
    (["--stream", "s.wav", "--truth", "t.txt"], "--truth t.txt: expected a .json path"),
    (["--truth", "t.json", "--out", "d.npz"], "--truth t.json: is the truth of --stream; give --stream"),
    (["--stream", "adir.wav", "--force"], "--stream adir.wav: is a directory; expected a file name"),
    (["--stream", "file.txt/s.wav"], "--stream file.txt/s.wav: folder file.txt is not a directory"),
    (["--out", "noise.npz", "--noise", "noise.npz", "--force"], "--out noise.npz: is the --noise file it reads"),
    (["--out", "d.npz", "--noise", "none.npz"], "--noise none.npz: file not found"),
    (["--stream", "s.wav", "--stream-seconds", "nan"], "--stream-seconds nan: expected a number of seconds in [3, "),
    (["--stream", "s.wav", "--stream-seconds", "inf"], "--stream-seconds inf: expected a number of seconds in [3, "),
    (["--stream", "s.wav", "--stream-seconds", "2"], "--stream-seconds 2.0: expected a number of seconds in [3, "),
    (["--stream", "s.wav", "--seed", "-1"], "--seed -1: expected an integer in [0, 2**32)"),
])
def test_bad_paths_and_numbers_are_refused_before_generating(tmp_path, monkeypatch, capsys, argv, message):
    from kws.train.data_cli import main as kws_data

    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir.wav").mkdir()
    (tmp_path / "file.txt").write_text("mine")
    (tmp_path / "noise.npz").write_bytes(b"mine")
    monkeypatch.setattr(demo, "detect_voices", lambda **kw: pytest.fail("generated before checking the flags"))
    assert kws_data(["demo", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir.wav", "file.txt", "noise.npz"]
    assert (tmp_path / "noise.npz").read_bytes() == b"mine"


def _fake_engine(monkeypatch):
    """Stand-ins for the engines: one voice, a 2-clip npz, a silent 4 s stream."""
    monkeypatch.setattr(demo, "detect_voices", lambda **kw: [tts.Voice("espeak-ng", "en-us", "")])
    monkeypatch.setattr(demo, "demo_dataset", lambda voices, **kw: {
        "wav_vals": np.zeros((2, 8000), np.float32), "label_vals": np.array([["yes"], ["no"]])})
    truth = {"format": "kws-stream-truth/1", "sample_rate_hz": 8000, "duration_s": 4.0, "events": [],
             "unknown_events": []}
    monkeypatch.setattr(demo, "demo_stream", lambda voices, **kw: (np.zeros(32000, np.float32), truth))


def test_outputs_are_written_together_or_not_at_all(tmp_path, monkeypatch):
    _fake_engine(monkeypatch)

    def full_disk(path, audio, rate):
        Path(path).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(demo, "write_wav", full_disk)
    with pytest.raises(DataError, match=r"cannot write .*s\.wav: No space left on device"):
        demo.generate(out=tmp_path / "d.npz", stream=tmp_path / "s.wav")
    assert list(tmp_path.iterdir()) == []  # no npz, stream, truth or temporary file
    monkeypatch.undo()
    _fake_engine(monkeypatch)
    res = demo.generate(out=tmp_path / "d.npz", stream=tmp_path / "s.wav")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz", "s.truth.json", "s.wav"]
    assert res.npz == tmp_path / "d.npz" and res.truth == tmp_path / "s.truth.json" and res.n_clips == 2


def test_noise_npz_with_object_labels_needs_allow_pickle(tmp_path, monkeypatch, capsys):
    noise = tmp_path / "obj.npz"
    np.savez(noise, wav_vals=np.full((2, 8000), 0.01, np.float32),
             label_vals=np.array([["silence"], ["yes"]], dtype=object))
    with pytest.raises(DataError, match="allow_pickle=True"):
        demo._noise_bank(noise)
    assert demo._noise_bank(noise, allow_pickle=True).shape == (1, 8000)
    seen = {}
    monkeypatch.setattr(demo, "generate", lambda **kw: seen.update(kw) or demo.DemoResult([], [], []))
    from kws.train.data_cli import main as kws_data

    for argv in (["--allow-pickle", "demo", "--noise", str(noise)], ["demo", "--noise", str(noise), "--allow-pickle"]):
        seen.clear()
        assert kws_data([*argv, "--out", str(tmp_path / "d.npz")]) == 0
        assert seen["allow_pickle"] is True


# -- signal helpers ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["white", "pink", "brown", "hum"])
def test_colored_noise_unit_rms(kind):
    y = demo.colored_noise(8000, np.random.default_rng(1), kind=kind)
    assert y.shape == (8000,) and y.dtype == np.float32
    assert abs(float(np.std(y)) - 1.0) < 1e-3 and abs(float(y.mean())) < 1e-3
    with pytest.raises(DataError, match="unknown noise kind 'blue'"):
        demo.colored_noise(10, np.random.default_rng(1), kind="blue")


def test_select_voices_holds_out_stream_voices():
    voices = [tts.Voice("espeak-ng", f"en-{i}", var) for i in range(3) for var in ("", "m1", "f2")]
    voices += [tts.Voice("flite", n) for n in ("kal", "slt", "rms")]
    train, stream = demo.select_voices(voices, n=8, n_stream=3, seed=0)
    assert len(train) == 8 and len(stream) == 3
    assert not set(train) & set(stream)
    assert {v.engine for v in stream} == {"espeak-ng", "flite"}  # round robin over engines
    assert demo.select_voices(voices, n=8, n_stream=3, seed=0) == (train, stream)
    one = [tts.Voice("flite", "kal")]
    assert demo.select_voices(one, n=5, n_stream=2) == (one, one)
    with pytest.raises(tts.NoEngineError):
        demo.select_voices([], n=1, n_stream=1)


# -- the labelled set and the stream ----------------------------------------------------------
@needs_espeak
def test_demo_dataset_shapes_labels_speakers(espeak_voices, tmp_path):
    voices = espeak_voices[::60][:5]
    data = demo.demo_dataset(voices, clips_per_label=3, seed=0, progress=False)
    n = 3 * len(SEED_LABELS)
    assert data["wav_vals"].shape == (n, 8000) and data["wav_vals"].dtype == np.float32
    assert np.abs(data["wav_vals"]).max() <= 1.0 and np.isfinite(data["wav_vals"]).all()
    assert data["label_vals"].shape == (n, 1)
    labels = data["label_vals"][:, 0]
    assert {str(k): int(c) for k, c in zip(*np.unique(labels, return_counts=True))} == {lab: 3 for lab in SEED_LABELS}
    spoken = labels != SILENCE
    assert set(data["speaker"][spoken]) <= {v.speaker for v in voices}
    assert all(s.startswith("noise:") for s in data["speaker"][~spoken])
    for label, word in zip(labels, data["word"]):
        if label in KEYWORDS:
            assert word == label
        elif label == UNKNOWN:
            assert word in demo.UNKNOWN_WORDS
    # A spoken clip holds a word well above its noise; silence clips are quiet noise.
    peaks = np.abs(data["wav_vals"]).max(axis=1)
    assert peaks[spoken].min() >= 0.09
    # Reproducible for a seed.
    again = demo.demo_dataset(voices, clips_per_label=3, seed=0, progress=False)
    np.testing.assert_array_equal(again["wav_vals"], data["wav_vals"])
    # The data layer accepts it as it is.
    from kws.train.data import load_npz

    path = tmp_path / "demo.npz"
    np.savez(path, **data)
    ds = load_npz(path)
    assert len(ds) == n and ds.label_names == SEED_LABELS and ds.speaker is not None


@needs_espeak
def test_demo_stream_truth_matches_audio(espeak_voices):
    audio, truth = demo.demo_stream(espeak_voices[:3], seconds=12.0, seed=3, progress=False)
    assert audio.shape == (96000,) and audio.dtype == np.float32
    assert truth["sample_rate_hz"] == 8000 and truth["duration_s"] == 12.0
    events = sorted(truth["events"] + truth["unknown_events"], key=lambda e: e["start_s"])
    assert len(truth["events"]) >= 3
    assert all(e["label"] in KEYWORDS for e in truth["events"])
    assert all(e["label"] == UNKNOWN and e["word"] in demo.UNKNOWN_WORDS for e in truth["unknown_events"])
    for a, b in zip(events, events[1:]):
        assert b["start_s"] - a["end_s"] >= 1.0  # a 1 s refractory period never merges two events
    inside = np.zeros(len(audio), bool)
    for e in events:
        assert 0 <= e["start_s"] < e["end_s"] <= truth["duration_s"]
        seg = audio[int(e["start_s"] * 8000):int(e["end_s"] * 8000)]
        assert np.sqrt(np.mean(seg ** 2)) > 5 * truth["settings"]["noise_rms"]
        inside[int(e["start_s"] * 8000):int(e["end_s"] * 8000)] = True
    assert np.sqrt(np.mean(audio[~inside] ** 2)) < 2 * truth["settings"]["noise_rms"]


@needs_espeak
def test_run_writes_npz_stream_and_truth(tmp_path, capsys):
    argv = ["--out", str(tmp_path / "demo.npz"), "--stream", str(tmp_path / "s.wav"), "--clips-per-label", "2",
            "--voices", "6", "--stream-voices", "2", "--stream-seconds", "8", "--engines", "espeak-ng"]
    assert demo.run(_parse(argv)) == 0
    out = capsys.readouterr().out
    assert "espeak-ng:" in out and "24 clips, 6 speakers" in out
    with np.load(tmp_path / "demo.npz") as z:
        assert z["wav_vals"].shape == (24, 8000)
        train_speakers = set(z["speaker"])
    truth = json.loads((tmp_path / "s.truth.json").read_text())
    from kws.runtime.scoring import load_truth

    parsed = load_truth(tmp_path / "s.truth.json")  # the kws-data stream / kws-eval-stream format
    assert len(parsed.events) == len(truth["events"]) and parsed.duration_s == 8.0
    assert not set(truth["settings"]["voices"]) & train_speakers  # stream voices are held out
    with wave.open(str(tmp_path / "s.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) == (8000, 1, 2, 64000)


# -- the committed demo stream ----------------------------------------------------------------
def test_committed_demo_stream_matches_its_truth():
    wav, truth_path = REPO / "models" / "demo_stream.wav", REPO / "models" / "demo_stream.truth.json"
    if not wav.is_file():
        pytest.skip("models/demo_stream.wav not generated yet")
    truth = json.loads(truth_path.read_text())
    from kws.runtime.scoring import load_truth

    load_truth(truth_path)
    with wave.open(str(wav)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.getnframes() == round(truth["duration_s"] * 8000)
    assert wav.stat().st_size < 1_000_000
    assert {e["label"] for e in truth["events"]} == set(KEYWORDS)
    assert truth["settings"]["generator"].startswith("kws-data demo")
