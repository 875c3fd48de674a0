"""Hard-negative mining: kws-eval-stream --negatives and --save-false-accepts (kws.runtime.mining)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from fixtures_models import tiny_models  # noqa: F401  (session fixture)
from test_eval_stream import _bad, model_copy, run_json, streams_dir  # noqa: F401  (fixtures)

from kws.runtime.audio_io import read_wav, write_wav
from kws.runtime.detector import Detection
from kws.runtime.errors import KwsError
from kws.runtime.features import to_pcm16
from kws.runtime.mining import UNKNOWN_LABEL, check_can_mine, cut_windows, mine_stream
from kws.runtime.model import KwsModel
from kws.runtime.scoring import Truth, TruthEvent

RATE = 8000


@pytest.fixture(scope="module")
def mined(tiny_models, streams_dir, tmp_path_factory):  # noqa: F811
    """The tone model's false accepts on the keyword stream, saved: (report, npz path)."""
    out = tmp_path_factory.mktemp("mined") / "fa.npz"
    code, report, err = run_json("--model", tiny_models["float"], "--wav", streams_dir / "kw.wav",
                                 "--negatives", streams_dir / "kw_negatives.wav", "--threshold", "0.3",
                                 "--sweep", "0.3", "--save-false-accepts", out)
    assert code == 0, err
    return report, out


def test_negatives_need_no_truth_and_count_like_an_empty_truth(tiny_models, streams_dir, tmp_path):  # noqa: F811
    model, neg = tiny_models["float"], streams_dir / "kw_negatives.wav"
    code, declared, err = run_json("--model", model, "--negatives", neg, "--sweep", "0.5,0.9")
    assert code == 0, err
    code, with_truth, err = run_json("--model", model, "--wav", neg, "--sweep", "0.5,0.9")
    assert code == 0, err
    assert declared["negatives_only"] and declared["streams"][0]["truth"] is None
    assert declared["hours"] == pytest.approx(with_truth["hours"])
    assert [d["time_s"] for d in declared["detections"]] == [d["time_s"] for d in with_truth["detections"]]
    assert [p["false_accepts"] for p in declared["sweep"]] == [p["false_accepts"] for p in with_truth["sweep"]]
    # pooled with a keyword stream: keywords from the stream, hours and false accepts from both
    code, pooled, err = run_json("--model", model, "--wav", streams_dir / "kw.wav", "--negatives", neg,
                                 "--sweep", "0.5")
    assert code == 0, err
    assert pooled["score"]["n_events"] > 0 and len(pooled["streams"]) == 2
    assert pooled["score"]["false_accepts"] == sum(s["false_accepts"] for s in pooled["streams"])


def test_saved_clips_are_the_windows_that_fired(mined, tiny_models, streams_dir):  # noqa: F811
    report, path = mined
    saved = report["false_accepts_saved"]
    fa = report["score"]["false_accepts"]
    assert saved["path"] == str(path) and saved["threshold"] == 0.3
    assert saved["clips"] + saved["skipped_on_keyword"] <= fa and saved["clips"] > 0
    z = np.load(path)
    n = saved["clips"]
    assert z["wav_vals"].shape == (n, 8000) and z["wav_vals"].dtype == np.int16
    assert z["label_vals"].shape == (n, 1) and set(z["label_vals"][:, 0]) == {UNKNOWN_LABEL}
    assert set(z["mined_source"]) <= {str(streams_dir / "kw.wav"), str(streams_dir / "kw_negatives.wav")}
    model = KwsModel(tiny_models["float"])
    audio = {s: read_wav(s)[0][:, 0] for s in set(z["mined_source"])}
    for clip, src, end_s, label, score in zip(z["wav_vals"], z["mined_source"], z["mined_end_s"],
                                              z["mined_detected"], z["mined_score"]):
        end = int(round(end_s * RATE))
        np.testing.assert_array_equal(clip, to_pcm16(audio[src][end - 8000:end]))  # cut where it fired
        probs = model.probabilities(clip.astype(np.float32) / 32768.0)
        assert probs[list(model.labels).index(label)] == pytest.approx(score, abs=1e-5)  # and scores as recorded
    # no kept clip overlaps a keyword of the truth
    kw = json.loads((streams_dir / "kw.json").read_text())["events"]
    for src, end_s in zip(z["mined_source"], z["mined_end_s"]):
        if src.endswith("kw.wav"):
            assert all(not (e["start_s"] < end_s and e["end_s"] > end_s - 1.0) for e in kw)


def test_saved_npz_trains(mined, synth_npz):
    """kws-train --extra-train loads it, and refuses it where its speakers are held-out speakers."""
    from kws.runtime.errors import DataError
    from kws.train.data import Split, add_training_clips, load_npz

    extra = load_npz(mined[1])
    assert len(extra.wav) == mined[0]["false_accepts_saved"]["clips"]
    ds = load_npz(synth_npz)
    words = [s for s in extra.speaker.tolist() if not s.startswith("mined:")]
    assert set(words) <= set(ds.speaker.tolist())      # the speakers of the unknown words they overlap
    everyone = np.arange(len(ds.wav))
    joined, split = add_training_clips(ds, Split(everyone, everyone[:0], everyone[:0]), extra)
    assert len(joined.wav) == len(ds.wav) + len(extra.wav) and len(split.train) == len(joined.wav)
    if words:   # a stream of held-out speakers cannot be mined into training
        test = np.flatnonzero(ds.speaker == words[0])
        with pytest.raises(DataError, match="validation or"):
            add_training_clips(ds, Split(np.setdiff1d(everyone, test), everyone[:0], test), extra)


def test_mine_stream_picks_the_best_window_and_avoids_keywords():
    labels = ["yes", "no", "unknown"]
    audio = (np.arange(10 * RATE) % 1000 / 2000.0).astype(np.float32)
    truth = Truth(RATE, 10.0, (TruthEvent("yes", 2.2, 2.6),),
                  (TruthEvent("unknown", 6.1, 6.5, speaker="spk1"), TruthEvent("unknown", 6.9, 7.0, speaker="spk2")))
    times = np.arange(1.0, 10.01, 0.25)
    scores = [(float(t), np.array([0.1, 0.1, 0.8], np.float32)) for t in times]
    scores[int((6.75 - 1.0) / 0.25)] = (6.75, np.array([0.05, 0.9, 0.05], np.float32))   # best "no" window
    dets = [Detection(7.0, "no", 0.7), Detection(3.0, "yes", 0.9), Detection(9.5, "no", 0.6)]
    outcomes = ["false_accept", "false_accept", "false_accept"]
    clips = mine_stream(audio, wav_name="x.wav", truth=truth, detections=dets, outcomes=outcomes, scores=scores,
                        labels=labels, sample_rate_hz=RATE, window_samples=RATE, span_s=0.5)
    assert clips.skipped_on_keyword == 1                     # the "yes" at 3.0 s overlaps the keyword
    assert list(clips.end_s) == [6.75, 9.5]                  # the best window of the smoothing span
    assert list(clips.speaker) == ["spk1", "mined:x.wav"]    # the word it overlaps most, else the recording
    np.testing.assert_array_equal(clips.wav[0], to_pcm16(audio[int(5.75 * RATE):int(6.75 * RATE)]))
    assert list(clips.detected) == ["no", "no"] and clips.score[0] == pytest.approx(0.9)
    # hits are never mined
    none = mine_stream(audio, wav_name="x.wav", truth=truth, detections=dets[:1], outcomes=["hit"], scores=scores,
                       labels=labels, sample_rate_hz=RATE, window_samples=RATE, span_s=0.5)
    assert len(none) == 0 and none.wav.shape == (0, RATE)


def test_cut_windows_from_blocks_match_slices_of_the_whole():
    rng = np.random.default_rng(3)
    audio = rng.normal(size=20_000).astype(np.float32)
    cuts = rng.integers(0, 20_000, 40)
    blocks = np.split(audio, np.sort(cuts))              # blocks of every size, some empty
    ends = [8000, 8001, 12_345, 19_999, 20_000, 20_001, 8000, 30_000]
    out = cut_windows(iter(blocks), ends, window_samples=8000)
    assert sorted(out) == [8000, 8001, 12_345, 19_999, 20_000]   # past the end: missing
    for end, window in out.items():
        np.testing.assert_array_equal(window, audio[end - 8000:end])
    assert cut_windows(audio, [500], window_samples=8000) == {}   # before a whole window: missing
    tiny = cut_windows((b for b in np.split(audio, 20_000)), [9000], window_samples=8000)   # one sample a block
    np.testing.assert_array_equal(tiny[9000], audio[1000:9000])


def test_mine_stream_reads_blocks_as_it_reads_an_array():
    labels = ["yes", "no", "unknown"]
    audio = np.random.default_rng(4).uniform(-0.5, 0.5, 10 * RATE).astype(np.float32)
    truth = Truth(RATE, 10.0, (), ())
    scores = [(float(t), np.array([0.1, 0.8, 0.1], np.float32)) for t in np.arange(1.0, 10.01, 0.25)]
    dets = [Detection(4.0, "no", 0.8), Detection(8.25, "no", 0.8)]
    kw = dict(wav_name="x.wav", truth=truth, detections=dets, outcomes=["false_accept"] * 2, scores=scores,
              labels=labels, sample_rate_hz=RATE, window_samples=RATE, span_s=0.5)
    whole = mine_stream(audio, **kw)
    streamed = mine_stream(iter(np.array_split(audio, 37)), **kw)
    assert list(whole.end_s) == list(streamed.end_s) == [4.0, 8.25]
    np.testing.assert_array_equal(whole.wav, streamed.wav)


def test_nothing_to_save_writes_nothing(tiny_models, streams_dir, tmp_path):  # noqa: F811
    out = tmp_path / "none.npz"
    code, report, err = run_json("--model", tiny_models["float"], "--negatives", streams_dir / "kw_negatives.wav",
                                 "--threshold", "1.0", "--sweep", "1.0", "--save-false-accepts", out)
    assert code == 0, err
    assert report["false_accepts_saved"]["clips"] == 0 and report["false_accepts_saved"]["path"] is None
    assert not out.exists() and "no false accept to save" in err


def test_bad_mining_input(tiny_models, streams_dir, tmp_path, capsys):  # noqa: F811
    model, neg = tiny_models["float"], streams_dir / "kw_negatives.wav"
    assert "no audio: give at least one --wav" in _bad(capsys, "--model", model)
    assert "--negatives" in _bad(capsys, "--model", model, "--negatives", neg, "--negatives", neg)
    assert "given more than once" in _bad(capsys, "--model", model, "--wav", neg, "--negatives", neg)
    assert "WAV file not found" in _bad(capsys, "--model", model, "--negatives", tmp_path / "gone.wav")
    assert "expected a .npz path" in _bad(capsys, "--model", model, "--negatives", neg,
                                          "--save-false-accepts", tmp_path / "fa.txt")
    assert "does not exist (make it first)" in _bad(capsys, "--model", model, "--negatives", neg,
                                                    "--save-false-accepts", tmp_path / "no" / "fa.npz")
    (tmp_path / "old.npz").write_bytes(b"keep me")
    assert "exists; pass --force" in _bad(capsys, "--model", model, "--negatives", neg,
                                          "--save-false-accepts", tmp_path / "old.npz")
    assert (tmp_path / "old.npz").read_bytes() == b"keep me"
    twin = tmp_path / "same.npz"
    shutil.copy(neg, twin)
    assert "is the --negatives file it reads" in _bad(capsys, "--model", model, "--negatives", twin,
                                                      "--save-false-accepts", twin, "--force")


def test_a_model_without_unknown_cannot_mine():
    check_can_mine(["yes", "no", "unknown"])
    with pytest.raises(KwsError, match="have no 'unknown'"):
        check_can_mine(["yes", "no"])


def test_calibrate_on_negatives_alone(model_copy, streams_dir):  # noqa: F811
    code, report, err = run_json("--model", model_copy, "--negatives", streams_dir / "kw_negatives.wav",
                                 "--sweep", "0.3,0.5,0.7,0.9,0.99", "--target-fa-per-hour", "60", "--calibrate")
    assert code == 0, err
    chosen = report["chosen"]
    assert chosen is not None and chosen["fa_per_hour"] <= 60 and chosen["n_events"] == 0
    written = json.loads(model_copy.with_suffix(".json").read_text())["detection"]
    assert written["threshold"] == chosen["threshold"]
    assert written["calibrated"]["stream"] == str(streams_dir / "kw_negatives.wav")   # one stream: a string


def test_the_mining_loop_end_to_end(tiny_models, streams_dir, synth_npz, tmp_path, capsys):  # noqa: F811
    """Mine a keyword-free recording, then fine-tune a kws-train run on the clips (--init-from)."""
    pytest.importorskip("keras")
    from test_init_from import QUICK

    from kws.runtime.meta import ModelMeta
    from kws.train import trainer

    mined_npz = tmp_path / "room.npz"
    code, report, err = run_json("--model", tiny_models["float"], "--negatives", streams_dir / "kw_negatives.wav",
                                 "--threshold", "0.2", "--sweep", "0.2", "--save-false-accepts", mined_npz)
    assert code == 0 and report["false_accepts_saved"]["clips"] > 0, err
    source = tmp_path / "source"
    assert trainer.main(["--data", str(synth_npz), "--model", "dscnn", "--width", "4", "--depth", "2",
                         *QUICK, "--out", str(source)]) == 0
    capsys.readouterr()
    assert trainer.main(["--data", str(synth_npz), "--init-from", str(source), "--extra-train", str(mined_npz),
                         *QUICK, "--lr", "3e-4", "--out", str(tmp_path / "tuned")]) == 0
    meta = ModelMeta.load(tmp_path / "tuned" / "model.json")
    extra = meta.extra["data"]["extra_train"][0]
    assert extra["n_clips"] == report["false_accepts_saved"]["clips"] and extra["speakers"] == 1
    assert meta.extra["training"]["init_from"]["path"] == str((source / "model.keras").resolve())


def test_negatives_folder_is_its_wav_files(tiny_models, streams_dir, tmp_path, capsys):  # noqa: F811
    room = tmp_path / "room"
    room.mkdir()
    audio, rate = read_wav(streams_dir / "kw_negatives.wav")
    write_wav(room / "b.wav", audio[: rate * 20, 0], rate)
    write_wav(room / "a.WAV", audio[rate * 20: rate * 40, 0], rate)
    (room / "notes.txt").write_text("not audio")
    code, report, err = run_json("--model", tiny_models["float"], "--negatives", room, "--sweep", "0.5")
    assert code == 0, err
    assert [s["wav"] for s in report["streams"]] == [str(room / "a.WAV"), str(room / "b.wav")]
    assert report["hours"] == pytest.approx(40 / 3600, abs=1e-3)
    (tmp_path / "empty").mkdir()
    assert "a folder with no .wav file in it" in _bad(capsys, "--model", tiny_models["float"], "--negatives",
                                                      tmp_path / "empty")
