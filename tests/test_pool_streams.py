"""kws-pool-streams: pooling kws-eval-stream reports, against hand counts and against kws-eval-stream's own pooling."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import stat
from pathlib import Path

import pytest
from fixtures_models import tiny_models  # noqa: F401  (session fixture)

from kws.runtime.eval_stream import main as eval_stream
from kws.runtime.meta import ModelMeta
from kws.runtime.pool_streams import load_report, main, pool
from kws.runtime.scoring import SweepPoint, best_at_or_under, choose_threshold


def run(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def write_report(path: Path, rows, *, duration_s: float = 3600.0, hop_ms: float = 250.0,
                 smoothing: int = 3, wav: str | None = None) -> Path:
    """A minimal kws-eval-stream --json report: rows are (threshold, hits, n_events, false_accepts)."""
    hours = duration_s / 3600
    sweep = [{"threshold": t, "n_events": n, "hits": h, "hit_rate": h / n if n else None,
              "miss_rate": 1 - h / n if n else None, "false_accepts": fa, "fa_per_hour": fa / hours,
              "false_accept_clips": fa} for t, h, n, fa in rows]
    report = {"model": "m.tflite", "hop_ms": hop_ms, "tolerance_s": 0.75,
              "detector": {"threshold": 0.7, "smoothing_windows": smoothing, "refractory_ms": 1000.0, "min_count": 1},
              "hours": hours, "streams": [{"wav": wav or f"{path.stem}.wav"}],
              "score": {"duration_s": duration_s, "n_events": rows[0][2]}, "sweep": sweep}
    path.write_text(json.dumps(report))
    return path


def test_best_at_or_under_reads_the_det_curve_where_calibration_is_stricter():
    points = [SweepPoint(0.5, 90, 100, 5, 5.0), SweepPoint(0.6, 80, 100, 1, 1.0),   # a lucky dip at 0.6
              SweepPoint(0.7, 70, 100, 2, 2.0), SweepPoint(0.8, 60, 100, 0, 0.0)]
    assert best_at_or_under(points, 1.0).threshold == 0.6
    assert choose_threshold(points, 1.0).threshold == 0.8
    assert best_at_or_under(points, 0.0).threshold == 0.8
    assert best_at_or_under(points[:3], 0.5) is None
    tie = [SweepPoint(0.5, 80, 100, 2, 2.0), SweepPoint(0.6, 80, 100, 1, 1.0), SweepPoint(0.7, 80, 100, 1, 1.0)]
    assert best_at_or_under(tie, 3.0).threshold == 0.7                      # fewest FAs, then the higher one


def test_pooled_counts_by_hand(tmp_path):
    a = write_report(tmp_path / "a.json", [(0.5, 90, 100, 4), (0.7, 80, 100, 1), (0.9, 50, 100, 0)])
    b = write_report(tmp_path / "b.json", [(0.5, 40, 50, 2), (0.7, 30, 50, 2), (0.9, 20, 50, 1)],
                     duration_s=7200.0)
    result, _ = pool([load_report(a), load_report(b)], [0.5, 1.0, 2.0])
    pooled = result["pooled"]
    assert pooled["hours"] == pytest.approx(3.0) and pooled["n_events"] == 150
    sweep = {p["threshold"]: p for p in pooled["sweep"]}
    assert sweep[0.5]["hits"] == 130 and sweep[0.5]["false_accepts"] == 6
    assert sweep[0.5]["fa_per_hour"] == pytest.approx(2.0)
    assert sweep[0.7]["fa_per_hour"] == pytest.approx(1.0) and sweep[0.9]["fa_per_hour"] == pytest.approx(1 / 3)
    cols = [c["point"] for c in pooled["columns"]]
    assert [c["threshold"] for c in cols] == [0.9, 0.7, 0.5]                # at <= 0.5, 1 and 2 FA/hour
    assert [c["hits"] for c in cols] == [70, 110, 130]
    assert pooled["mean_hit_rate"] == pytest.approx((70 + 110 + 130) / 150 / 3)
    # each report read on its own: a at <= 0.5 FA/h only 0.9 (50%); b fires 2 times in 2 h at 0.5, 1 at 0.9
    assert [c["point"]["hits"] for c in result["reports"][0]["columns"]] == [50, 80, 80]
    assert [c["point"]["hits"] for c in result["reports"][1]["columns"]] == [20, 40, 40]


def test_a_target_no_threshold_meets_counts_zero(tmp_path):
    a = write_report(tmp_path / "a.json", [(0.5, 90, 100, 4), (0.9, 50, 100, 2)])
    code, out, err = run(a, "--targets", "1", "5", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["pooled"]["columns"][0]["point"] is None
    assert result["pooled"]["mean_hit_rate"] == pytest.approx((0 + 0.9) / 2)
    code, out, _ = run(a, "--targets", "1", "5")
    assert "no swept threshold stays under it" in out


@pytest.fixture(scope="module")
def stream_reports(synth_npz, tiny_models, tmp_path_factory):  # noqa: F811
    """kws-eval-stream on a keyword stream and its negatives pair: each alone, and both pooled by it."""
    from kws.train.data_cli import main as kws_data

    out = tmp_path_factory.mktemp("pool")
    assert kws_data(["stream", "--data", str(synth_npz), "--minutes", "1", "--out", str(out / "kw.wav"),
                     "--split", "all", "--snr-db", "20", "--pair", "--seed", "3", "--gap-s", "1.0", "3.0"]) == 0
    model = str(tiny_models["float"])
    paths = {}
    for name, wavs in {"kw": ["kw.wav"], "neg": ["kw_negatives.wav"], "both": ["kw.wav", "kw_negatives.wav"]}.items():
        argv = ["--model", model, "--json", "-q"]
        for wav in wavs:
            argv += ["--wav", str(out / wav)]
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            assert eval_stream(argv) == 0
        paths[name] = out / f"report_{name}.json"
        paths[name].write_text(text.getvalue())
    return paths


def test_pooling_two_reports_equals_kws_eval_stream_pooling_the_streams(stream_reports, tmp_path):
    png = tmp_path / "det.png"
    code, out, err = run(stream_reports["kw"], stream_reports["neg"], "--json", "--det-png", png)
    assert code == 0, err
    result = json.loads(out)
    both = json.loads(stream_reports["both"].read_text())
    assert result["pooled"]["hours"] == pytest.approx(both["hours"])
    keys = ("threshold", "hits", "n_events", "false_accepts")
    assert [{k: p[k] for k in keys} for p in result["pooled"]["sweep"]] == [{k: p[k] for k in keys}
                                                                          for p in both["sweep"]]
    for mine, theirs in zip(result["pooled"]["sweep"], both["sweep"]):
        assert mine["fa_per_hour"] == pytest.approx(theirs["fa_per_hour"])
    assert result["pooled"]["n_events"] > 0 and result["reports"][1]["n_events"] == 0
    assert max(p["hits"] for p in both["sweep"]) > 0 and max(p["false_accepts"] for p in both["sweep"]) > 0
    assert png.stat().st_size > 0 and result["det_png"] == str(png)
    code, out, err = run(stream_reports["kw"], stream_reports["neg"])
    assert code == 0 and "pooled" in out and "hits at <= 0.5 / 1 / 2 / 3 / 5 / 10 FA/hour" in out


def test_bad_reports_are_named(tmp_path, stream_reports):
    good = stream_reports["kw"]
    (tmp_path / "text.json").write_text("not json")
    (tmp_path / "other.json").write_text(json.dumps({"model": "x"}))
    cases = {
        str(tmp_path / "missing.json"): "report not found",
        str(tmp_path): "is a directory",
        str(tmp_path / "text.json"): "is not valid JSON",
        str(tmp_path / "other.json"): "not a kws-eval-stream --json report",
    }
    for path, message in cases.items():
        code, _, err = run(good, path)
        assert code == 2 and message in err and path in err, (path, err)
        assert "Traceback" not in err
    bad = write_report(tmp_path / "bad.json", [(0.5, 120, 100, 0)])
    code, _, err = run(bad)
    assert code == 2 and "hits <= n_events" in err
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({**json.loads(good.read_text()), "sweep": []}))
    code, _, err = run(empty)
    assert code == 2 and "the sweep is empty" in err


def test_reports_scored_differently_or_twice_are_refused(tmp_path):
    a = write_report(tmp_path / "a.json", [(0.5, 90, 100, 4), (0.7, 80, 100, 1)])
    other_sweep = write_report(tmp_path / "b.json", [(0.5, 90, 100, 4), (0.8, 80, 100, 1)])
    other_hop = write_report(tmp_path / "c.json", [(0.5, 90, 100, 4), (0.7, 80, 100, 1)], hop_ms=125.0)
    other_smoothing = write_report(tmp_path / "d.json", [(0.5, 90, 100, 4), (0.7, 80, 100, 1)], smoothing=1)
    code, _, err = run(a, other_sweep)
    assert code == 2 and "same kws-eval-stream --sweep" in err and "first difference 0.7" in err
    code, _, err = run(a, other_hop)
    assert code == 2 and "hop_ms 125.0" in err
    code, _, err = run(a, other_smoothing)
    assert code == 2 and "smoothing_windows 1" in err
    code, _, err = run(a, tmp_path / "." / "a.json")
    assert code == 2 and "given more than once" in err
    same_wav = write_report(tmp_path / "e.json", [(0.5, 90, 100, 4), (0.7, 80, 100, 1)], wav="a.wav")
    code, _, err = run(a, same_wav)
    assert code == 0 and "counts twice" in err


def test_bad_flags(tmp_path):
    a = write_report(tmp_path / "a.json", [(0.5, 90, 100, 4)])
    code, _, err = run(a, "--targets", "-1")
    assert code == 2 and "--targets -1" in err
    code, _, err = run(a, "--targets", "nan")
    assert code == 2 and "--targets nan" in err
    png = tmp_path / "det.png"
    png.write_bytes(b"keep")
    code, _, err = run(a, "--det-png", png)
    assert code == 2 and "--det-png" in err and png.read_bytes() == b"keep"
    code, _, err = run(a, "--det-png", png, "--force")
    assert code == 0 and png.read_bytes() != b"keep"


def _json_copy(tiny_models, tmp_path, name="target.json") -> Path:  # noqa: F811
    dst = tmp_path / name
    shutil.copy(tiny_models["float"].with_suffix(".json"), dst)
    return dst


def test_calibrate_json_matches_kws_eval_stream_calibrating_the_pooled_streams(stream_reports, tiny_models,
                                                                                tmp_path):  # noqa: F811
    mine, theirs = _json_copy(tiny_models, tmp_path, "mine.json"), _json_copy(tiny_models, tmp_path, "theirs.json")
    both = json.loads(stream_reports["both"].read_text())
    wavs = [s["wav"] for s in both["streams"]]
    argv = ["--model", str(tiny_models["float"]), "--target-fa-per-hour", "100", "--calibrate",
            "--calibrate-json", str(theirs), "-q"]
    for wav in wavs:
        argv += ["--wav", wav]
    with contextlib.redirect_stdout(io.StringIO()):
        assert eval_stream(argv) == 0
    code, out, err = run(stream_reports["kw"], stream_reports["neg"], "--target-fa-per-hour", "100",
                         "--calibrate-json", mine)
    assert code == 0, err
    expected = ModelMeta.load(theirs).extra["detection"]
    got = ModelMeta.load(mine).extra["detection"]
    assert got["threshold"] == expected["threshold"] and 0 < got["threshold"] < 1
    for key in ("smoothing_windows", "refractory_ms", "min_count"):
        assert got[key] == expected[key]
    for key in ("target_fa_per_hour", "n_events", "hit_rate", "fa_per_hour", "hop_ms", "tolerance_s"):
        assert got["calibrated"][key] == pytest.approx(expected["calibrated"][key]), key
    assert got["calibrated"]["hours"] == pytest.approx(expected["calibrated"]["hours"])
    assert got["calibrated"]["stream"] == wavs
    assert got["calibrated"]["pooled_reports"] == [str(stream_reports["kw"]), str(stream_reports["neg"])]
    assert f"calibrated: wrote threshold {got['threshold']:.2f}" in out


def test_calibration_that_cannot_meet_the_target_leaves_the_json(stream_reports, tiny_models, tmp_path):  # noqa: F811
    target = _json_copy(tiny_models, tmp_path)
    before = target.read_bytes()
    code, out, err = run(stream_reports["kw"], stream_reports["neg"], "--calibrate-json", target)
    assert code == 1 and "keeps false accepts at or under 1 per hour" in err and "left unchanged" in err
    assert "pooled" in out                                             # the table is printed all the same
    assert target.read_bytes() == before


def test_calibrate_json_refused_before_anything_is_written(stream_reports, tiny_models, tmp_path):  # noqa: F811
    target = _json_copy(tiny_models, tmp_path)
    code, _, err = run(stream_reports["kw"], "--calibrate-json", tmp_path / "missing.json")
    assert code == 2 and "file not found" in err
    meta = json.loads(target.read_text())
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**meta, "labels": list(reversed(meta["labels"]))}))
    code, _, err = run(stream_reports["kw"], "--calibrate-json", other)
    assert code == 2 and "labels" in err and "differ" in err
    orphan = write_report(tmp_path / "orphan.json", [(0.5, 9, 10, 0)])   # names m.tflite, which has no JSON
    code, _, err = run(orphan, "--calibrate-json", target)
    assert code == 2 and "m.json not found" in err
    target.chmod(stat.S_IRUSR)
    try:
        code, _, err = run(stream_reports["kw"], "--target-fa-per-hour", "1000", "--calibrate-json", target)
        assert code == 2 and "read-only" in err
    finally:
        target.chmod(stat.S_IRUSR | stat.S_IWUSR)
    code, _, err = run(stream_reports["kw"], "--target-fa-per-hour", "-2", "--calibrate-json", target)
    assert code == 2 and "--target-fa-per-hour -2" in err
    assert json.loads(target.read_text()) == meta


def _with_speakers(path: Path, threshold: float, speakers: dict | None) -> Path:
    report = json.loads(path.read_text())
    report["detector"]["threshold"] = threshold
    if speakers is not None:
        report["score"]["false_accept_speakers"] = speakers
    path.write_text(json.dumps(report))
    return path


def test_false_accept_speakers_are_summed_only_at_one_threshold(tmp_path):
    rows = [(0.5, 9, 10, 3), (0.9, 5, 10, 1)]
    a = _with_speakers(write_report(tmp_path / "a.json", rows), 0.9, {"corpus": 3, "s1": 1})
    b = _with_speakers(write_report(tmp_path / "b.json", rows), 0.9, {"s2": 2, "corpus": 1, "s1": 1})
    result, _ = pool([load_report(a), load_report(b)], [1.0])
    by = result["pooled"]["false_accept_speakers"]
    assert by == {"threshold": 0.9, "why_not": None, "counts": {"corpus": 4, "s1": 2, "s2": 2}}
    assert list(by["counts"]) == ["corpus", "s1", "s2"]                     # most first, then by name
    code, out, _ = run(a, b)
    assert code == 0 and "false accepts at threshold 0.90 by speaker of the word: corpus 4, s1 2, s2 2" in out
    # Another threshold: not summed, and the table says why.
    _with_speakers(b, 0.7, {"s2": 2})
    by = pool([load_report(a), load_report(b)], [1.0])[0]["pooled"]["false_accept_speakers"]
    assert by["counts"] is None and "different thresholds (0.70, 0.90)" in by["why_not"]
    code, out, _ = run(a, b)
    assert code == 0 and "false accepts by speaker: not pooled: the reports were scored at different" in out
    # A report from before the field: not summed either.
    c = write_report(tmp_path / "c.json", rows)
    by = pool([load_report(a), load_report(c)], [1.0])[0]["pooled"]["false_accept_speakers"]
    assert by["counts"] is None and "c.json has no false_accept_speakers" in by["why_not"]
    bad = _with_speakers(write_report(tmp_path / "bad.json", rows), 0.9, {"s": -1})
    code, _, err = run(a, bad)
    assert code == 2 and "score.false_accept_speakers is not a map of speaker to count" in err


def test_false_accept_speakers_pooled_from_real_reports(stream_reports):
    reports = [load_report(stream_reports[k]) for k in ("kw", "neg")]
    by = pool(reports, [1.0])[0]["pooled"]["false_accept_speakers"]
    both = json.loads(stream_reports["both"].read_text())["score"]["false_accept_speakers"]
    assert by["why_not"] is None and by["counts"] == both
    assert sum(both.values()) == json.loads(stream_reports["both"].read_text())["score"]["false_accepts_on_unknown"]
