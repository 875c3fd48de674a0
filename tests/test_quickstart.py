"""kws-quickstart: data choice (npz / seed npz / TTS / tones), bad input, and a quick end-to-end run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from kws.runtime.labels import SEED_LABELS
from kws.train import quickstart as qs
from kws.train.synth import write_synthetic_npz

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
QUICK = qs.PRESETS["quick"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_seed_npz(tmp_path, monkeypatch):
    """Never pick up a real seed npz from the developer's home."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@needs_espeak
def test_prepare_data_speaks_with_tts(tmp_path):
    choice = qs.prepare_data(tmp_path, QUICK, use_seed=False)
    assert choice.source == "tts"
    assert "synthetic voices" in choice.description and "espeak-ng" in choice.description
    with np.load(choice.npz) as z:
        assert z["wav_vals"].shape == (QUICK.tts_clips_per_label * len(SEED_LABELS), 8000)
        train_voices = set(z["speaker"])
    truth = json.loads(choice.truth.read_text())
    assert choice.stream.is_file() and truth["duration_s"] == QUICK.stream_seconds
    assert not set(truth["settings"]["voices"]) & train_voices  # the stream's voices are held out


def test_prepare_data_without_engines_falls_back_to_tones(tmp_path, capsys):
    choice = qs.prepare_data(tmp_path, QUICK, use_seed=False, tts_path="")
    out = capsys.readouterr().out
    assert "no text-to-speech engine found" in out and "using generated tones" in out
    assert choice.source == "synthetic tones" and choice.stream is None  # -> the committed demo stream
    assert any("no text-to-speech engine found" in n for n in choice.notes)
    with np.load(choice.npz) as z:
        assert z["wav_vals"].shape == (QUICK.synth_clips_per_label * len(SEED_LABELS), 8000)
    wav, truth = qs.committed_stream()
    assert wav.is_file() and truth.is_file()


def test_prepare_data_uses_the_seed_path(tmp_path):
    seed = qs.seed_npz_path()
    assert str(seed).startswith(str(tmp_path / "home")) and seed.name == "speech_wav_8000.npz"
    seed.parent.mkdir(parents=True)
    write_synthetic_npz(seed, clips_per_label=12, seed=1)
    choice = qs.prepare_data(tmp_path / "out", QUICK, use_tts=False)
    assert choice.source == "seed npz" and str(seed) in choice.description
    with np.load(choice.npz) as z:
        labels, counts = np.unique(z["label_vals"][:, 0], return_counts=True)
        assert set(labels) == set(SEED_LABELS) and set(counts) == {QUICK.npz_clips_per_label}
        assert "speaker" in z.files
    # --data wins over the seed path; 0 clips per label = all of it
    other = write_synthetic_npz(tmp_path / "mine.npz", clips_per_label=3, seed=2)
    from dataclasses import replace

    choice = qs.prepare_data(tmp_path / "out2", replace(QUICK, npz_clips_per_label=0), data=other, use_tts=False)
    assert choice.source == "given npz" and choice.n_clips == 3 * len(SEED_LABELS)


def test_bad_input_messages(tmp_path, capsys):
    assert qs.main(["--data", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "o")]) == 2
    assert "--data " + str(tmp_path / "nope.npz") + ": file not found" in capsys.readouterr().err
    out = tmp_path / "used"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    assert qs.main(["--out", str(out)]) == 2
    assert "holds results of an earlier run (summary.json); pass --force" in capsys.readouterr().err
    assert qs.main(["--epochs", "0", "--out", str(tmp_path / "e")]) == 2
    assert "--epochs 0: expected at least 1" in capsys.readouterr().err


@pytest.fixture()
def no_data_step(monkeypatch):
    """A run that gets past its checks stops at step 1 (never trains)."""
    from kws.runtime.errors import KwsError

    def stop(*args, **kwargs):
        raise KwsError("reached step 1")

    monkeypatch.setattr(qs, "prepare_data", stop)


def _earlier_run(out: Path) -> list[Path]:
    for name in ("data", "train"):
        (out / name).mkdir(parents=True)
    (out / "data" / "synth.npz").write_bytes(b"earlier")
    (out / "summary.json").write_text("{}")
    return sorted(out.rglob("*"))


@pytest.mark.parametrize("argv, message", [
    (["--data", "{tmp}/nonexist.npz"], "--data {tmp}/nonexist.npz: file not found"),
    (["--data", "{tmp}"], "--data {tmp}: is a directory; expected an .npz file"),
    (["--data", "{out}/data/synth.npz"], "--data {out}/data/synth.npz: lies in {out}/data, which an earlier run "
                                         "wrote and --force removes"),
    (["--seed", "-1"], "--seed -1: expected an integer in [0, 2**32)"),
    (["--seed", "4294967296"], "--seed 4294967296: expected an integer in [0, 2**32)"),
    (["--data", "{tmp}/corrupt.npz"], "corrupt.npz: "),
])
def test_bad_input_removes_nothing_of_an_earlier_run(tmp_path, capsys, no_data_step, argv, message):
    out = tmp_path / "q3"
    before = _earlier_run(out)
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{out}", str(out)) for a in argv]
    assert qs.main(["--no-seed-data", "--no-tts", "--quick", "--out", str(out), "--force", *argv]) == 2
    err = capsys.readouterr().err
    assert message.replace("{tmp}", str(tmp_path)).replace("{out}", str(out)) in err and err.count("\n") == 1
    assert sorted(out.rglob("*")) == before and (out / "data" / "synth.npz").read_bytes() == b"earlier"


def test_seed_npz_in_the_outputs_is_not_removed(tmp_path, capsys, no_data_step):
    seed = qs.seed_npz_path()  # ~/aiffel/speech_recognition/data/speech_wav_8000.npz
    seed.parent.mkdir(parents=True)
    seed.write_bytes(b"the download")
    assert qs.main(["--quick", "--no-tts", "--out", str(seed.parent.parent), "--force"]) == 2
    assert "the seed's npz " + str(seed) + ": lies in" in capsys.readouterr().err
    assert seed.read_bytes() == b"the download"


def test_out_that_is_a_file_is_one_line(tmp_path, capsys, no_data_step):
    ok = tmp_path / "ok.wav"
    ok.write_bytes(b"mine")
    assert qs.main(["--out", str(ok), "--no-seed-data", "--no-tts"]) == 2
    err = capsys.readouterr().err
    assert f"--out {ok}: is a file, not a directory" in err and err.count("\n") == 1 and ok.read_bytes() == b"mine"


def test_a_failed_data_step_leaves_no_empty_folders(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"")
    out = tmp_path / "new" / "q"
    assert qs.main(["--data", str(bad), "--out", str(out), "--no-tts", "--quick"]) == 2
    assert "bad.npz: file is empty" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    out.mkdir(parents=True)  # a folder the user made stays, without an empty data/ in it
    assert qs.main(["--data", str(bad), "--out", str(out), "--no-tts", "--quick"]) == 2
    assert out.is_dir() and list(out.iterdir()) == []


def test_sample_npz_is_never_half_written(tmp_path, monkeypatch):
    from kws.runtime.errors import DataError

    src = write_synthetic_npz(tmp_path / "src.npz", clips_per_label=2, seed=0)
    dst = tmp_path / "out" / "sample.npz"
    dst.parent.mkdir()
    dst.write_bytes(b"old")

    def full_disk(fh, **arrays):
        fh.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(DataError, match="cannot write .*sample.npz: No space left on device"):
        qs.sample_npz(src, dst, clips_per_label=1)
    assert dst.read_bytes() == b"old" and [p.name for p in dst.parent.iterdir()] == ["sample.npz"]


def _check_summary(out: Path, stdout: str, *, source: str) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    s = summary["steps"]
    assert s["data"]["source"] == source
    assert 0.0 <= s["train"]["test_accuracy"] <= 1.0 and s["train"]["macs"] > 0
    acc = s["export"]["accuracy"]
    assert {"float32", "int8"} <= set(acc) and all(0.0 <= v <= 1.0 for v in acc.values())
    assert 0.0 <= s["export"]["int8_agreement"] <= 1.0 and s["export"]["int8_bytes"] > 0
    assert (out / "export" / "model_int8.tflite").is_file() and (out / "export" / "parity.json").is_file()
    bench = s["bench"]["models"]
    assert bench and all(r["total_ms_median_1_thread"] > 0 for r in bench.values())
    q = s["listen"]["quickstart"]
    assert q["n_events"] > 0 and q["hits"] + q["wrong_keyword"] + q["missed"] == q["n_events"]
    assert len(q["detections"]) == q["n_detections"]
    for line in ("=== summary", "1 data", "2 train", "3 export", "4 bench", "5 listen", "test accuracy"):
        assert line in stdout
    return summary


@needs_espeak
def test_quickstart_end_to_end_quick(tmp_path, capsys, monkeypatch):
    out = tmp_path / "qs"
    assert qs.main(["--quick", "--out", str(out), "--no-seed-data"]) == 0
    stdout = capsys.readouterr().out
    summary = _check_summary(out, stdout, source="tts")
    assert summary["steps"]["data"]["stream"].startswith(str(out))  # a fresh stream with held-out voices
    assert "detections of the quickstart's int8 model" in stdout
    shipped = REPO / "models" / "model_int8.tflite"
    assert ("shipped" in summary["steps"]["listen"]) == shipped.is_file()
    # A second run into the same folder needs --force, then replaces it. Here the first run's int8
    # model stands in for the shipped default model, which then runs on the demo stream too.
    assert qs.main(["--quick", "--out", str(out), "--no-seed-data"]) == 2
    stand_in = tmp_path / "shipped"
    stand_in.mkdir()
    for name in ("model_int8.tflite", "model_int8.json"):
        shutil.copy(out / "export" / name, stand_in / name)
    monkeypatch.setattr("kws.runtime.model.default_model_path", lambda: stand_in / "model_int8.tflite")
    assert qs.main(["--quick", "--out", str(out), "--no-seed-data", "--force", "--seed", "1"]) == 0
    stdout = capsys.readouterr().out
    again = json.loads((out / "summary.json").read_text())
    assert again["seed"] == 1 and again["steps"]["listen"]["shipped"]["model"] == str(stand_in / "model_int8.tflite")
    assert "detections of the shipped default model" in stdout and "shipped model:" in stdout


@pytest.mark.slow
def test_quickstart_without_tts_uses_the_committed_stream(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                                if not any(Path(p, e).exists() for e in ("espeak-ng", "flite",
                                                                                         "festival"))))
    out = tmp_path / "qs"
    assert qs.main(["--quick", "--out", str(out), "--no-seed-data"]) == 0
    stdout = capsys.readouterr().out
    summary = _check_summary(out, stdout, source="synthetic tones")
    assert summary["steps"]["data"]["stream"] == str(qs.committed_stream()[0])
    assert "no text-to-speech engine found" in stdout


@pytest.mark.slow
@needs_espeak
def test_quickstart_default_sizes_few_epochs(tmp_path, capsys):
    """The default data and model sizes (1,440 TTS clips, dscnn 32x2, 200 bench windows), 4 epochs."""
    out = tmp_path / "qs"
    assert qs.main(["--out", str(out), "--no-seed-data", "--epochs", "4"]) == 0
    summary = _check_summary(out, capsys.readouterr().out, source="tts")
    d = qs.PRESETS["default"]
    assert summary["steps"]["data"]["n_clips"] == d.tts_clips_per_label * len(SEED_LABELS)
    assert summary["steps"]["train"]["parameters"] == 6220
    assert summary["steps"]["train"]["test_accuracy"] > 2 / len(SEED_LABELS)  # learning, well above chance
