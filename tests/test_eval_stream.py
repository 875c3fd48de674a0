"""kws-eval-stream end to end: a tiny tone model (tests/fixtures_models.py) on short generated streams."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import stat
import struct
from pathlib import Path

import numpy as np
import pytest
from fixtures_models import tiny_models  # noqa: F401  (session fixture)

from kws.runtime.audio_io import read_wav, write_wav
from kws.runtime.detector import Detection, DetectorConfig
from kws.runtime.eval_stream import main
from kws.runtime.meta import ModelMeta
from kws.runtime.scoring import SweepPoint, choose_threshold, load_truth, match_detections, max_delay_s


@pytest.fixture(scope="module")
def streams_dir(synth_npz, tmp_path_factory) -> Path:
    """A 1-minute keyword stream and its negatives-only pair (all synth clips, 20 dB SNR)."""
    from kws.train.data_cli import main as kws_data

    out = tmp_path_factory.mktemp("streams")
    assert kws_data(["stream", "--data", str(synth_npz), "--minutes", "1", "--out", str(out / "kw.wav"),
                     "--split", "all", "--snr-db", "20", "--pair", "--seed", "2", "--gap-s", "1.0", "3.0"]) == 0
    return out


def run_json(*argv) -> tuple[int, dict | None, str]:
    """Run kws-eval-stream --json; returns (exit code, report or None, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv] + ["--json"])
    text = out.getvalue().strip()
    return code, json.loads(text) if text.startswith("{") else None, err.getvalue()


@pytest.fixture(scope="module")
def pooled(tiny_models, streams_dir, tmp_path_factory):  # noqa: F811
    """One run over both streams pooled, with a DET plot, shared by several tests: (report, png)."""
    png = tmp_path_factory.mktemp("det") / "det.png"
    code, report, err = run_json("--model", tiny_models["float"], "--wav", streams_dir / "kw.wav",
                                 "--wav", streams_dir / "kw_negatives.wav", "--det-png", png)
    assert code == 0, err
    return report, png


@pytest.fixture()
def model_copy(tiny_models, tmp_path) -> Path:  # noqa: F811
    """The float tiny model in a private folder (calibration rewrites its JSON)."""
    src = tiny_models["float"]
    dst = tmp_path / src.name
    shutil.copy(src, dst)
    shutil.copy(src.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


def test_end_to_end_report(pooled, streams_dir):
    report, png = pooled
    s = report["score"]
    kw, neg = load_truth(streams_dir / "kw.json"), load_truth(streams_dir / "kw_negatives.json")
    assert s["n_events"] == len(kw.events) >= 8 and not neg.events
    assert s["duration_s"] == pytest.approx(kw.duration_s + neg.duration_s)  # pooled hours add up
    assert [x["n_events"] for x in report["streams"]] == [len(kw.events), 0]
    assert s["hits"] + s["wrong_keyword"] + s["missed"] == s["n_events"]
    assert s["hits"] + s["wrong_keyword"] + s["false_accepts"] == s["n_detections"]
    assert s["false_accepts"] == sum(x["false_accepts"] for x in report["streams"])
    assert s["hit_rate"] == pytest.approx(s["hits"] / s["n_events"])
    assert s["fa_per_hour"] == pytest.approx(s["false_accepts"] * 3600 / s["duration_s"])
    assert s["hit_rate_ci95"][0] <= s["hit_rate"] <= s["hit_rate_ci95"][1]
    assert s["fa_per_hour_ci95"][0] <= s["fa_per_hour"] <= s["fa_per_hour_ci95"][1]
    assert sum(k["events"] for k in s["per_keyword"].values()) == s["n_events"]
    # false accepts on unknown words are put down to the npz clips they were cut from (pooled too)
    fa_clips = [d["clip_index"] for d in report["detections"] if "clip_index" in d]
    assert all(d["outcome"] == "false_accept" for d in report["detections"] if "clip_index" in d)
    assert len(fa_clips) == s["false_accepts_on_unknown"] > 0
    assert s["false_accept_clips"] == len(set(fa_clips))
    assert set(fa_clips) <= {u.clip_index for u in kw.unknown_events + neg.unknown_events}
    op_point = next(p for p in report["sweep"] if p["threshold"] == report["detector"]["threshold"])
    assert op_point["false_accept_clips"] == s["false_accept_clips"]
    assert all(p["false_accept_clips"] <= p["false_accepts"] for p in report["sweep"])
    assert s["hit_rate"] >= 0.3  # the tone model finds tones; the numbers mean nothing for speech
    # The sweep replays the same detector: at the operating threshold it reproduces the pipeline.
    assert report["replay_matches_pipeline"] is True
    op = next(p for p in report["sweep"] if p["threshold"] == report["detector"]["threshold"])
    assert (op["hits"], op["false_accepts"]) == (s["hits"], s["false_accepts"])
    thresholds = [p["threshold"] for p in report["sweep"]]
    assert thresholds == sorted(thresholds) and len(thresholds) >= 20
    assert report["sweep"][0]["hits"] >= report["sweep"][-1]["hits"]
    assert report["sweep"][0]["fa_per_hour"] >= report["sweep"][-1]["fa_per_hour"]
    chosen = report["chosen"]
    if chosen is not None:
        above = [p for p in report["sweep"] if p["threshold"] >= chosen["threshold"]]
        assert all(p["fa_per_hour"] <= report["target_fa_per_hour"] for p in above)
    assert report["det_png"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_human_report(pooled):
    from kws.runtime.eval_stream import format_report

    text = format_report(pooled[0])
    assert "keywords:" in text and "hit rate" in text and "false accepts:" in text and "per keyword:" in text
    score = pooled[0]["score"]
    assert f"{score['false_accepts_on_unknown']} on unknown words from {score['false_accept_clips']} distinct clip(s)" in text
    assert "FA/hour  FA clips" in text
    speakers = score["false_accept_speakers"]
    assert sum(speakers.values()) == score["false_accepts_on_unknown"] and list(speakers.values()) == sorted(
        speakers.values(), reverse=True)
    assert "false accepts by speaker of the word: " + ", ".join(f"{k} {v}" for k, v in list(speakers.items())[:5]) in text


def test_one_speaker_behind_most_false_accepts_is_noted(pooled):
    from kws.runtime.eval_stream import format_report

    report = json.loads(json.dumps(pooled[0]))
    report["score"].update(false_accepts=14, false_accepts_on_unknown=13, false_accept_clips=None,
                           false_accept_speakers={"wake-word-benchmark": 7, "s1": 1, "s2": 1, "s3": 1, "s4": 1,
                                                  "s5": 1, "s6": 1})
    text = format_report(report)
    assert "false accepts by speaker of the word: wake-word-benchmark 7, s1 1, s2 1, s3 1, s4 1, 2 more" in text
    assert "note: 7 of 13 false accepts on unknown words are wake-word-benchmark's words" in text
    report["score"]["false_accept_speakers"] = {"a": 2, "b": 2}
    report["score"]["false_accepts_on_unknown"] = 4
    assert "note: 2 of 4" not in format_report(report)
    assert "kw_negatives.wav: 1.0 min" in text and "0.03 h" in text
    assert "sweep:" in text and "DET curve:" in text


def test_same_detections_as_kws_listen(tiny_models, streams_dir, capsys):  # noqa: F811
    """kws-eval-stream and kws-listen --wav are one code path: identical detections."""
    from kws.runtime.listen import main as listen

    model, wav = tiny_models["float"], streams_dir / "kw.wav"
    assert listen(["--model", str(model), "--wav", str(wav), "--json", "-q"]) == 0
    heard = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    code, report, _ = run_json("--model", model, "--wav", wav, "--sweep", "0.5")
    assert code == 0 and heard
    assert [(d["time_s"], d["label"]) for d in report["detections"]] == [(d["time_s"], d["label"]) for d in heard]
    # ... and scoring those detections by hand gives the report's numbers.
    truth = load_truth(streams_dir / "kw.json")
    delay = max_delay_s(window_s=1.0, hop_s=0.25, smoothing_windows=report["detector"]["smoothing_windows"])
    manual = match_detections([Detection(d["time_s"], d["label"], d["score"]) for d in heard], truth,
                              tolerance_s=0.75, max_delay_s=delay)
    assert manual.to_dict() == {k: report["score"][k] for k in manual.to_dict()}
    assert [d["outcome"] for d in report["detections"]] == list(manual.detection_outcomes)


def test_calibrate_writes_the_threshold(model_copy, streams_dir, pooled):
    # A target that the pooled sweep meets part of the way up: the chosen threshold is known.
    sweep = [SweepPoint(p["threshold"], p["hits"], p["n_events"], p["false_accepts"], p["fa_per_hour"])
             for p in pooled[0]["sweep"]]
    target = sorted(p.fa_per_hour for p in sweep)[len(sweep) // 2]
    expected = choose_threshold(sweep, target)
    json_path = model_copy.with_suffix(".json")
    before = ModelMeta.load(json_path)
    code, report, err = run_json("--model", model_copy, "--wav", streams_dir / "kw.wav", "--wav",
                                 streams_dir / "kw_negatives.wav", "--target-fa-per-hour", target, "--calibrate")
    assert code == 0, err
    chosen = report["chosen"]
    assert chosen["threshold"] == expected.threshold
    assert report["calibrated"] == str(json_path)
    after = ModelMeta.load(json_path)
    det = after.extra["detection"]
    assert det["threshold"] == chosen["threshold"]
    cal = det["calibrated"]
    assert cal["target_fa_per_hour"] == target and cal["hit_rate"] == chosen["hit_rate"]
    assert cal["fa_per_hour"] == chosen["fa_per_hour"] <= target
    assert cal["stream"] == [str(streams_dir / "kw.wav"), str(streams_dir / "kw_negatives.wav")]
    # Everything else is kept.
    assert after.labels == before.labels and after.features == before.features
    for key in ("architecture", "quantization", "sha256", "training", "source_model"):
        assert after.extra[key] == before.extra[key]
    assert det["refractory_ms"] == before.extra["detection"]["refractory_ms"]
    # kws-listen and the next evaluation take the calibrated threshold by default.
    assert DetectorConfig.from_meta(after).threshold == chosen["threshold"]


def test_calibrate_json_writes_into_another_models_json(model_copy, streams_dir, tiny_models, tmp_path):  # noqa: F811
    # The threshold found with one model goes into the JSON of another of the same recipe (a final fit
    # on every speaker); the evaluated model's own JSON is not touched.
    target_json = tmp_path / "final" / "model_int8.json"
    target_json.parent.mkdir()
    shutil.copy(tiny_models["int8"].with_suffix(".json"), target_json)
    own = model_copy.with_suffix(".json").read_bytes()
    code, report, err = run_json("--model", model_copy, "--wav", streams_dir / "kw.wav", "--wav",
                                 streams_dir / "kw_negatives.wav", "--target-fa-per-hour", 1000, "--calibrate",
                                 "--calibrate-json", target_json)
    assert code == 0, err
    assert report["calibrated"] == str(target_json)
    det = ModelMeta.load(target_json).extra["detection"]
    assert det["threshold"] == report["chosen"]["threshold"]
    assert det["calibrated"]["model"] == str(model_copy)
    assert ModelMeta.load(target_json).extra["quantization"]["type"] == "int8"   # the rest kept
    assert model_copy.with_suffix(".json").read_bytes() == own


def test_calibrate_json_refused_before_any_work(model_copy, streams_dir, tmp_path):
    other = ModelMeta.load(model_copy.with_suffix(".json"))
    ModelMeta(tuple(reversed(other.labels)), other.features, other.extra).save(tmp_path / "labels.json")
    cases = [(["--calibrate", "--calibrate-json", tmp_path / "none.json"], "none.json: file not found"),
             (["--calibrate", "--calibrate-json", tmp_path / "labels.json"], "differ from the evaluated model's"),
             (["--calibrate-json", tmp_path / "labels.json"], "labels.json: needs --calibrate")]
    for extra, message in cases:
        code, report, err = run_json("--model", model_copy, "--wav", streams_dir / "kw.wav", *extra)
        assert code == 2 and report is None, err
        assert err.startswith("kws-eval-stream: error: --calibrate-json ") and message in err, err
        assert len(err.strip().splitlines()) == 1


def test_streams_of_the_models_training_speakers_are_flagged(model_copy, streams_dir, tmp_path):
    json_path = model_copy.with_suffix(".json")
    meta = ModelMeta.load(json_path)

    def with_split(split):
        meta.replace(split=split).save(json_path)

    def truth_with(settings):
        truth = json.loads((streams_dir / "kw.json").read_text())
        truth["settings"].update(settings)
        path = tmp_path / f"truth{len(list(tmp_path.glob('truth*')))}.json"
        path.write_text(json.dumps(truth))
        return path

    args = ["--model", model_copy, "--wav", streams_dir / "kw.wav", "--sweep", "0.5"]
    with_split({"seed": 0, "trained_on": ["train"]})      # the fixture's stream is --split all
    code, report, err = run_json(*args)
    assert code == 0 and report["warnings"] == [
        f"{streams_dir / 'kw.wav'}: built from the 'all' split, and the model was trained on train: these "
        "speakers are not held out"]
    assert "these speakers are not held out" in err                       # logged too with --json
    test_split = truth_with({"split": "test", "split_settings": "defaults"})
    code, report, _ = run_json(*args, "--truth", test_split)
    assert code == 0 and report["warnings"] == []                          # held-out speakers: quiet
    with_split({"seed": 0, "trained_on": ["train", "val", "test"]})
    code, report, _ = run_json(*args, "--truth", test_split)
    assert "built from the 'test' split, and the model was trained on train + val + test" in report["warnings"][0]
    with_split({"seed": 5, "val_fraction": 0.1, "test_fraction": 0.1})
    code, report, _ = run_json(*args, "--truth", test_split)
    assert len(report["warnings"]) == 1 and "some of its speakers may be the model's training speakers" in \
        report["warnings"][0]
    text = io.StringIO()
    with contextlib.redirect_stdout(text), contextlib.redirect_stderr(io.StringIO()):
        assert main([str(a) for a in args] + ["--truth", str(test_split)]) == 0
    assert "\nwarning: " in text.getvalue()
    # speaker folds (kws-train --folds): the stream of fold 2 is held out for the fold-2 model only
    fold2 = truth_with({"split": "test", "split_settings": {"seed": 0, "folds": 5, "fold": 2, "by": "speaker"}})
    with_split({"seed": 0, "folds": 5, "fold": 2, "trained_on": ["train", "val"]})
    code, report, _ = run_json(*args, "--truth", fold2)
    assert code == 0 and report["warnings"] == []
    with_split({"seed": 0, "folds": 5, "fold": 3, "trained_on": ["train", "val"]})
    code, report, _ = run_json(*args, "--truth", fold2)
    assert "built with split {'seed': 0, 'folds': 5, 'fold': 2}, the model was trained with {'seed': 0, " \
           "'folds': 5, 'fold': 3}" in report["warnings"][0]


def test_negatives_only_and_calibration_that_cannot_meet_the_target(model_copy, streams_dir, tmp_path):
    # Take the keywords out of the truth: the stream is negatives-only and every detection a false accept.
    truth = json.loads((streams_dir / "kw.json").read_text())
    truth["events"] = []
    (tmp_path / "none.json").write_text(json.dumps(truth))
    before = model_copy.with_suffix(".json").read_bytes()
    code, report, err = run_json("--model", model_copy, "--wav", streams_dir / "kw.wav", "--truth",
                                 tmp_path / "none.json", "--sweep", "0.1,0.2", "--target-fa-per-hour", "0",
                                 "--calibrate")
    assert code == 1
    assert "--calibrate: no swept threshold (up to 0.60" in err  # the sweep includes the JSON's 0.6
    assert "keeps false accepts at or under 0 per hour" in err and "left unchanged" in err
    assert "Traceback" not in err
    assert report["negatives_only"] is True and report["score"]["hit_rate"] is None  # still printed
    assert report["score"]["false_accepts"] == report["score"]["n_detections"] > 0
    assert all(p["hit_rate"] is None for p in report["sweep"]) and report["chosen"] is None
    assert model_copy.with_suffix(".json").read_bytes() == before


def test_int8_model_and_resampled_wav(tiny_models, streams_dir, tmp_path, pooled):  # noqa: F811
    """A 16 kHz copy of the stream is resampled to the model rate and scores about the same."""
    from kws.runtime.resample import resample

    audio, rate = read_wav(streams_dir / "kw.wav")
    write_wav(tmp_path / "kw16k.wav", resample(audio[:, 0], rate, 16000), 16000)
    code, at16k, err = run_json("--model", tiny_models["float"], "--wav", tmp_path / "kw16k.wav", "--truth",
                                streams_dir / "kw.json", "--sweep", "0.6")
    assert code == 0 and "16000 Hz (truth: 8000 Hz); resampled" in err
    at8k = pooled[0]["streams"][0]
    # Times stay right (a wrong time scale would lose every hit); the round trip through the
    # anti-aliasing filters dulls the tone model's highest tones (up to 3.8 kHz) a little.
    assert at16k["score"]["n_events"] == at8k["n_events"]
    assert at16k["score"]["hits"] >= at8k["hits"] // 2 > 0

    code, report, err = run_json("--model", tiny_models["int8"], "--wav", streams_dir / "kw.wav", "--sweep", "0.6")
    assert code == 0, err
    assert report["replay_matches_pipeline"] and report["score"]["n_events"] == at8k["n_events"]
    assert report["score"]["hits"] >= at8k["hits"] - 3


# ---------------------------------------------------------------------------------------
# Bad input: one line, exit 2
# ---------------------------------------------------------------------------------------
def _bad(capsys, *argv) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("kws-eval-stream: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_missing_and_malformed_truth(tiny_models, streams_dir, tmp_path, capsys):  # noqa: F811
    model = tiny_models["float"]
    wav = streams_dir / "kw.wav"
    assert "truth file not found" in _bad(capsys, "--model", model, "--wav", wav, "--truth", tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text('{"sample_rate_hz": 8000, "duration_s": 120.0, "events": [')
    assert "truth file is not valid JSON" in _bad(capsys, "--model", model, "--wav", wav, "--truth",
                                                  tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text('{"sample_rate_hz": 8000, "duration_s": 120.0, '
                                       '"events": [{"label": "yes", "start_s": 5}]}')
    assert "events[0]: 'end_s' must be a finite number, got None" in _bad(
        capsys, "--model", model, "--wav", wav, "--truth", tmp_path / "bad.json")


def test_truth_of_another_stream_is_refused(tiny_models, streams_dir, tmp_path, capsys):  # noqa: F811
    audio, rate = read_wav(streams_dir / "kw.wav")
    write_wav(tmp_path / "short.wav", audio[: rate * 30, 0], rate)
    err = _bad(capsys, "--model", tiny_models["float"], "--wav", tmp_path / "short.wav", "--truth",
               streams_dir / "kw.json")
    assert "short.wav lasts 30.00 s but" in err and "not the truth file of this stream" in err


def test_other_bad_inputs(tiny_models, streams_dir, tmp_path, capsys):  # noqa: F811
    model, wav = tiny_models["float"], streams_dir / "kw.wav"
    assert "WAV file not found" in _bad(capsys, "--model", model, "--wav", tmp_path / "gone.wav", "--truth",
                                        streams_dir / "kw.json")
    assert "2 --wav but 1 --truth" in _bad(capsys, "--model", model, "--wav", wav, "--wav",
                                           streams_dir / "kw_negatives.wav", "--truth",
                                           streams_dir / "kw.json")
    assert "--sweep 'a,b': expected comma-separated" in _bad(capsys, "--model", model, "--wav", wav, "--sweep", "a,b")
    assert "--sweep '0.5,,0.6': an empty entry" in _bad(capsys, "--model", model, "--wav", wav, "--sweep", "0.5,,0.6")
    assert "given more than once" in _bad(capsys, "--model", model, "--wav", wav, "--wav", wav)
    assert "--calibrate-json .: is a directory" in _bad(capsys, "--model", model, "--wav", wav, "--calibrate",
                                                        "--calibrate-json", ".")
    assert "--sweep '0.5,1.5': expected thresholds in [0, 1]" in _bad(capsys, "--model", model, "--wav", wav,
                                                                      "--sweep", "0.5,1.5")
    assert "--tolerance-s -1.0" in _bad(capsys, "--model", model, "--wav", wav, "--tolerance-s", "-1")
    assert "--hop-ms 0.1 is not a whole number of samples" in _bad(capsys, "--model", model, "--wav", wav,
                                                                   "--hop-ms", "0.1")
    lone = tmp_path / "lone.tflite"
    shutil.copy(model, lone)
    assert "no feature/label JSON beside it" in _bad(capsys, "--model", lone, "--wav", wav)
    not_wav = tmp_path / "kw.wav"
    not_wav.write_bytes(b"RIFF" + struct.pack("<I", 4) + b"JUNK")
    shutil.copy(streams_dir / "kw.json", tmp_path / "kw.json")
    assert "not a WAV file" in _bad(capsys, "--model", model, "--wav", not_wav)


def test_plot_and_wav_paths_checked_before_any_audio(tiny_models, streams_dir, tmp_path, capsys):  # noqa: F811
    model, wav = tiny_models["float"], streams_dir / "kw.wav"
    err = _bad(capsys, "--model", model, "--wav", wav, "--det-png", tmp_path / "no" / "such" / "det.png")
    assert "--det-png" in err and "does not exist (make it first)" in err
    (tmp_path / "d.png").mkdir()
    assert "is a directory; expected a .png file name" in _bad(capsys, "--model", model, "--wav", wav,
                                                               "--det-png", tmp_path / "d.png")
    (tmp_path / "old.png").write_bytes(b"mine")
    assert "old.png: exists; pass --force to overwrite it" in _bad(capsys, "--model", model, "--wav", wav,
                                                                   "--det-png", tmp_path / "old.png")
    assert (tmp_path / "old.png").read_bytes() == b"mine"
    assert "--det-png .: expected a .png path" in _bad(capsys, "--model", model, "--wav", wav, "--det-png", "")
    (tmp_path / "dir.wav").mkdir()   # and no dir.json: the wav is named first
    assert "dir.wav: is a directory; expected a WAV file" in _bad(capsys, "--model", model, "--wav",
                                                                  tmp_path / "dir.wav")


def test_truth_defaults_to_the_demo_name_where_only_that_exists(tmp_path, streams_dir):
    from kws.runtime.eval_stream import default_truth_path

    wav = tmp_path / "demo.wav"
    assert default_truth_path(wav) == tmp_path / "demo.json"            # neither: the usual name
    (tmp_path / "demo.truth.json").write_text("{}")
    assert default_truth_path(wav) == tmp_path / "demo.truth.json"      # kws-data demo's name
    (tmp_path / "demo.json").write_text("{}")
    assert default_truth_path(wav) == tmp_path / "demo.json"            # both: kws-data stream's wins


def test_calibrate_refuses_a_read_only_json_and_writes_through_a_link(model_copy, streams_dir, tmp_path,
                                                                       capsys):
    js = model_copy.with_suffix(".json")
    before = js.read_bytes()
    js.chmod(0o444)
    err = _bad(capsys, "--model", model_copy, "--wav", streams_dir / "kw.wav", "--calibrate")
    assert "is read-only; --calibrate writes the threshold into it" in err and js.read_bytes() == before
    js.chmod(0o640)
    link_dir = tmp_path / "linked"
    link_dir.mkdir()
    shutil.copy(model_copy, link_dir / model_copy.name)
    (link_dir / js.name).symlink_to(js)
    code, report, err = run_json("--model", link_dir / model_copy.name, "--wav", streams_dir / "kw.wav",
                                 "--target-fa-per-hour", "1000", "--calibrate")
    assert code == 0, err
    assert (link_dir / js.name).is_symlink()                                    # still a link ...
    assert json.loads(js.read_text())["detection"]["threshold"] == report["chosen"]["threshold"]  # ... to it
    assert stat.S_IMODE(js.stat().st_mode) == 0o640                            # mode kept
    assert "a false-accept rate per hour is barely measured" in err            # minutes, not hours


def test_calibrate_needs_scored_audio_and_truth_keywords_are_keywords(model_copy, tmp_path, capsys):
    write_wav(tmp_path / "blip.wav", np.zeros(4000, np.float32), 8000)
    truth = {"format": "kws-stream-truth/1", "sample_rate_hz": 8000, "duration_s": 0.5, "events": []}
    (tmp_path / "blip.json").write_text(json.dumps(truth))
    before = model_copy.with_suffix(".json").read_bytes()
    code, _, err = run_json("--model", model_copy, "--wav", tmp_path / "blip.wav", "--calibrate")
    assert code == 1 and "--calibrate: no window was scored" in err and "left unchanged" in err
    assert "nothing was scored" in err and model_copy.with_suffix(".json").read_bytes() == before
    truth["events"] = [{"label": "unknown", "start_s": 0.1, "end_s": 0.4}]
    (tmp_path / "blip.json").write_text(json.dumps(truth))
    assert "label 'unknown' is not a keyword" in _bad(capsys, "--model", model_copy, "--wav", tmp_path / "blip.wav")


def test_a_json_that_is_not_text_is_named(model_copy, streams_dir, capsys):
    model_copy.with_suffix(".json").write_bytes(b"\xca\xfe\xba\xbe" * 8)
    assert "not a model JSON (not UTF-8 text)" in _bad(capsys, "--model", model_copy, "--wav", streams_dir / "kw.wav")


def test_calibrate_refuses_a_threshold_that_detects_nothing(model_copy, streams_dir):
    before = model_copy.with_suffix(".json").read_bytes()
    code, report, err = run_json("--model", model_copy, "--wav", streams_dir / "kw.wav", "--threshold", "1",
                                 "--sweep", "1", "--target-fa-per-hour", "1000", "--calibrate")
    assert code == 1 and "the model detects no keyword at all" in err and "left unchanged" in err
    assert report["chosen"]["threshold"] == 1.0 and report["chosen"]["hits"] == 0
    assert model_copy.with_suffix(".json").read_bytes() == before
