"""kws-eval-stream: hit rate, false accepts per hour and a threshold sweep on long test streams.

Runs a stream (from ``kws-data stream``) through exactly the ``kws-listen --wav`` code path
(:func:`kws.runtime.pipeline.run_wav`: ring buffer, front-end, interpreter, detector) with the
window posteriors recorded, and scores the detections against the stream's truth file::

    kws-eval-stream --model models/model_int8.tflite --wav stream.wav --truth stream.json
    kws-eval-stream --wav kw.wav --wav neg.wav --det-png det.png --calibrate   # pooled, calibrate

Matching (see :mod:`kws.runtime.scoring`): a detection at ``time_s`` (the END of the window
that fired) counts for a keyword spoken over ``[start_s, end_s]`` when
``start_s - tol <= time_s <= end_s + window + (smoothing - 1) * hop + tol``: hit (same label),
wrong keyword (another label), else false accept; an event without a detection is missed.

The threshold sweep replays the recorded posteriors through a fresh
:class:`~kws.runtime.detector.Detector` for each threshold (the same class the pipeline uses;
at the operating threshold the replay reproduces the pipeline's detections exactly), giving a
DET curve (miss rate against false accepts per hour) and the lowest threshold that keeps false
accepts at or under ``--target-fa-per-hour``. ``--calibrate`` writes that threshold, with the
detector settings it was found with, into the model's JSON ``detection`` section.

Several ``--wav`` (each with its ``--truth``, in order; default ``STREAM.json`` beside each
wav) are pooled: events and hours add up, e.g. a keyword stream plus a negatives-only stream.
``--negatives AUDIO.wav`` adds a recording known to hold no keyword (a room, a radio) without a
truth file, and ``--save-false-accepts OUT.npz`` keeps the false accepts as ``unknown`` training
clips (:mod:`kws.runtime.mining`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from kws.runtime.cli import add_detection_arguments, configure_logging, run_main
from kws.runtime.detector import Detection, Detector, DetectorConfig
from kws.runtime.errors import EXIT_FAILURE, EXIT_OK, DataError, KwsError
from kws.runtime.interpreter import BACKENDS
from kws.runtime.scoring import (DEFAULT_SWEEP, DEFAULT_TOLERANCE_S, StreamScore, SweepPoint, Truth,
                                 choose_threshold, format_speaker_counts, load_truth, match_detections, max_delay_s,
                                 sweep_thresholds)

logger = logging.getLogger(__name__)
PROG = "kws-eval-stream"
#: A wav may differ from its truth's duration by this much (resampling rounds) before it is refused.
DURATION_SLACK_S = 0.05
#: Less audio than this gets a warning from --calibrate: 1 false accept per hour is barely measured.
MIN_CALIBRATION_HOURS = 0.5
#: Silence put between pooled streams on the common time line (not counted in the hours).
POOL_GAP_S = 30.0

EPILOG = f"""\
exit codes:
  {EXIT_OK}    evaluated (and calibrated, with --calibrate)
  {EXIT_FAILURE}    --calibrate: no swept threshold meets the target (the JSON is left as it was)
  2    bad input: a missing or unreadable wav or truth file, a truth file that does not
       belong to the wav, a bad flag, a missing or corrupt model or model JSON

A detection's time_s is the end of the window that fired; it counts for a keyword spoken over
[start_s, end_s] when start_s - tol <= time_s <= end_s + window + (smoothing - 1) * hop + tol.
False accepts per hour divide by the total audio duration. See docs/streaming.md.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Score a model on long test streams: hit rate per keyword, false accepts "
                               "per hour, a threshold sweep (DET curve) and threshold calibration.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_argument_group("model")
    model.add_argument("--model", metavar="PATH.tflite",
                       help="model with its JSON beside it (default: the shipped models/model_int8.tflite)")
    model.add_argument("--threads", type=int, metavar="N", help="interpreter threads (default: backend's)")
    model.add_argument("--backend", choices=("auto", *BACKENDS), default="auto", help="TFLite interpreter")
    data = parser.add_argument_group("streams")
    data.add_argument("--wav", action="append", default=[], metavar="STREAM.wav",
                      help="a stream from kws-data stream; repeat to pool several")
    data.add_argument("--truth", action="append", metavar="TRUTH.json",
                      help="its truth file, one per --wav in the same order (default: STREAM.json beside it, "
                           "or STREAM.truth.json where only that exists)")
    data.add_argument("--negatives", action="append", default=[], metavar="AUDIO.wav|DIR",
                      help="a recording with no keyword in it (your room, a radio, a television; any rate, "
                           "mono or stereo), or a folder of them (its *.wav files): needs no truth file, every "
                           "detection in it is a false accept; repeat to pool several, with or without --wav")
    add_detection_arguments(parser, title="detection (defaults from the model's JSON, as kws-listen)")
    score = parser.add_argument_group("scoring")
    score.add_argument("--tolerance-s", type=float, default=DEFAULT_TOLERANCE_S, metavar="S",
                       help=f"slack on both sides of each keyword's interval (default {DEFAULT_TOLERANCE_S})")
    score.add_argument("--target-fa-per-hour", type=float, default=1.0, metavar="R",
                       help="false accepts per hour the chosen threshold must not exceed (default 1.0)")
    score.add_argument("--sweep", metavar="P,P,...",
                       help="thresholds to sweep (default 0.05..0.85 by 0.05, then 0.90..0.99 by 0.01)")
    score.add_argument("--det-png", metavar="PATH.png", help="draw the DET curve here (needs matplotlib)")
    score.add_argument("--force", action="store_true",
                       help="replace an existing --det-png or --save-false-accepts file")
    score.add_argument("--calibrate", action="store_true",
                       help="write the chosen threshold into the model's JSON 'detection' section")
    score.add_argument("--calibrate-json", metavar="MODEL.json",
                       help="with --calibrate: write it into this JSON instead, the model of the same recipe "
                            "fitted on more speakers (kws-train --train-on all), which cannot be calibrated on "
                            "streams of speakers it was trained on; its labels and front-end must match")
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    out.add_argument("--save-false-accepts", metavar="OUT.npz",
                     help="cut each false accept (at the operating --threshold) out of the audio as a 1 s "
                          "'unknown' clip, into an npz for kws-train --extra-train (hard-negative mining); "
                          "false accepts overlapping a keyword of the truth are left out")
    out.add_argument("-v", "--verbose", action="count", default=0, help="more log lines")
    out.add_argument("-q", "--quiet", action="store_true", help="warnings only on stderr")
    return parser


# -------------------------------------------------------------------------------------------
# Pieces
# -------------------------------------------------------------------------------------------
def parse_sweep(text: str | None) -> tuple[float, ...]:
    if text is None:
        return DEFAULT_SWEEP
    items = text.replace(" ", "").split(",")
    if "" in items:
        raise KwsError(f"--sweep {text!r}: an empty entry; expected comma-separated thresholds like 0.5,0.7,0.9")
    try:
        values = tuple(float(x) for x in items)
    except ValueError:
        raise KwsError(f"--sweep {text!r}: expected comma-separated thresholds like 0.5,0.7,0.9") from None
    if not values or not all(0.0 <= v <= 1.0 for v in values):
        raise KwsError(f"--sweep {text!r}: expected thresholds in [0, 1]")
    return values


def replay(labels: Sequence[str], config: DetectorConfig, scores: Sequence[tuple[float, Any]]) -> list[Detection]:
    """Run a fresh :class:`Detector` with ``config`` over recorded ``(time_s, probs)`` windows."""
    detector = Detector(labels, config)
    found = []
    for time_s, probs in scores:
        detection = detector.update(time_s, probs)
        if detection is not None:
            found.append(detection)
    return found


@dataclass
class StreamRun:
    """One stream's pipeline output and truth."""

    wav: Path
    truth_path: Path | None   #: None for a --negatives recording (its truth is made, not read)
    truth: Truth
    detections: list[Detection]
    scores: list[tuple[float, Any]]
    windows_scored: int
    duration_s: float
    mean_latency_ms: float


def _truth_paths(wavs: Sequence[str], truths: Sequence[str] | None,
                 negatives: Sequence[str] = ()) -> list[tuple[Path, Path | None]]:
    """(wav, truth file) per ``--wav``, then (wav, None) per ``--negatives``, in that order."""
    if not wavs and not negatives:
        raise KwsError("no audio: give at least one --wav STREAM.wav (with its truth file) or "
                       "--negatives AUDIO.wav (a recording with no keyword in it)")
    given = list(wavs) + list(negatives)
    repeated = sorted({w for w in given if given.count(w) > 1})
    if repeated:
        flag = "--wav" if repeated[0] in wavs else "--negatives"
        raise KwsError(f"{flag} {repeated[0]} given more than once: pooling a stream twice counts its keywords and "
                       "false accepts twice; give each stream once")
    if truths and len(truths) != len(wavs):
        raise KwsError(f"{len(wavs)} --wav but {len(truths)} --truth: give one truth file per stream "
                       "(or none, for STREAM.json beside each; --negatives recordings need none)")
    pairs: list[tuple[Path, Path | None]] = [
        (Path(w), Path(truths[i]) if truths else default_truth_path(Path(w))) for i, w in enumerate(wavs)]
    return pairs + [(Path(w), None) for w in negatives]


def expand_negatives(paths: Sequence[str]) -> list[str]:
    """``--negatives`` as given, each folder replaced by its ``*.wav`` files (sorted by name)."""
    out: list[str] = []
    for given in paths:
        folder = Path(given)
        if not folder.is_dir():
            out.append(given)
            continue
        wavs = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() == ".wav" and p.is_file())
        if not wavs:
            raise KwsError(f"--negatives {given}: a folder with no .wav file in it; expected recordings "
                           "with no keyword in them")
        out.extend(wavs)
    return out


def default_truth_path(wav: Path) -> Path:
    """``STREAM.json`` beside ``STREAM.wav`` (what ``kws-data stream`` writes), else
    ``STREAM.truth.json`` when only that exists (what ``kws-data demo --stream`` writes)."""
    plain = wav.with_suffix(".json")
    demo = wav.with_suffix(".truth.json")
    return demo if not plain.exists() and demo.exists() else plain


def check_png_path(path: Path, *, flag: str, force: bool = False) -> None:
    """Refuse, before any audio is read, a plot path that could not (or, without ``force``, may not)
    be written (:func:`kws.runtime.fileio.check_output`, which does not make the folder)."""
    from kws.runtime.fileio import check_output

    if path.suffix.lower() == ".png" and path.is_dir():
        raise KwsError(f"{flag} {path}: is a directory; expected a .png file name")
    check_output(path, flag=flag, force=force, suffix=".png")


def _check_wav(wav: Path, truth: Truth, truth_path: Path, model_rate_hz: int) -> None:
    """Refuse a wav that is not the truth's stream; note a rate that will be resampled."""
    from kws.runtime.audio_io import wav_info

    info = wav_info(wav)   # the header: the samples are read once, by the pipeline
    rate, duration_s = info.sample_rate_hz, info.duration_s
    if abs(duration_s - truth.duration_s) > DURATION_SLACK_S:
        raise DataError(f"{wav} lasts {duration_s:.2f} s but {truth_path} says duration_s={truth.duration_s:.2f}: "
                        "not the truth file of this stream")
    if rate != model_rate_hz:
        logger.warning("%s: %d Hz (truth: %d Hz); resampled to the model's %d Hz, truth times in seconds kept",
                       wav, rate, truth.sample_rate_hz, model_rate_hz)
    elif rate != truth.sample_rate_hz:
        logger.warning("%s: %d Hz, but %s says %d Hz; its times (in seconds) are used as they are",
                       wav, rate, truth_path, truth.sample_rate_hz)


def run_stream(model, wav: Path, truth_path: Path | None, *, hop_ms: float, config: DetectorConfig) -> StreamRun:
    """Load the truth, check the wav against it, and run it through :func:`run_wav` with scores recorded.

    ``truth_path`` None: a ``--negatives`` recording, whose truth (no words, its own length at the
    model rate) is made once it has been read.
    """
    from kws.runtime.pipeline import run_wav

    truth = None
    if truth_path is not None:
        truth = load_truth(truth_path)
        _check_wav(wav, truth, truth_path, model.features.sample_rate_hz)
        unknown_labels = sorted({e.label for e in truth.events} - set(model.labels))
        if unknown_labels:
            logger.warning("%s: keyword(s) %s are not among the model's labels; they can only be missed",
                           truth_path, ", ".join(unknown_labels))
    started = time.perf_counter()
    result = run_wav(model, wav, hop_ms=hop_ms, detector=config, record_scores=True)
    logger.info("%s: %d windows in %.1f s", wav, result.windows_scored, time.perf_counter() - started)
    if truth is None:
        truth = Truth(model.features.sample_rate_hz, result.duration_s, (), (),
                      {"negatives": "declared keyword-free with --negatives"})
    return StreamRun(wav, truth_path, truth, list(result.detections), list(result.scores),
                     result.windows_scored, result.duration_s, result.mean_latency_ms)


def pool(runs: Sequence[StreamRun]) -> tuple[Truth, list[tuple[float, Any]], list[Detection]]:
    """Put several streams on one time line (``POOL_GAP_S`` apart); hours add up, gaps don't count."""
    if len(runs) == 1:
        r = runs[0]
        return r.truth, r.scores, r.detections
    events, unknown, scores, detections = [], [], [], []
    offset = 0.0
    total_s = 0.0
    for r in runs:
        shift = lambda e: dataclasses.replace(e, start_s=e.start_s + offset, end_s=e.end_s + offset)  # noqa: E731
        events += [shift(e) for e in r.truth.events]
        unknown += [shift(e) for e in r.truth.unknown_events]
        scores += [(t + offset, p) for t, p in r.scores]
        detections += [dataclasses.replace(d, time_s=d.time_s + offset) for d in r.detections]
        offset += r.truth.duration_s + POOL_GAP_S
        total_s += r.truth.duration_s
    truth = Truth(runs[0].truth.sample_rate_hz, total_s, tuple(events), tuple(unknown), {"pooled": len(runs)})
    return truth, scores, detections


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def format_report(report: dict[str, Any]) -> str:
    """The human-readable report (what is printed without --json)."""
    lines = []
    det = report["detector"]
    lines.append(f"model {report['model']}  hop {report['hop_ms']:g} ms  threshold {det['threshold']:.2f}  "
                 f"smoothing {det['smoothing_windows']}  refractory {det['refractory_ms']:g} ms  "
                 f"min count {det['min_count']}  tolerance {report['tolerance_s']:g} s")
    for s in report["streams"]:
        lines.append(f"  {s['wav']}: {s['duration_s'] / 60:.1f} min, {s['windows_scored']} windows, "
                     f"{s['n_events']} keywords, {s['hits']} hits, {s['false_accepts']} false accepts")
    for warning in report.get("warnings") or ():
        lines.append(f"warning: {warning}")
    r = report["score"]
    if r["n_events"]:
        lo, hi = r["hit_rate_ci95"]
        lines.append(f"keywords: {r['n_events']} in {r['hours']:.2f} h: hit rate {_pct(r['hit_rate'])} "
                     f"(95% interval {_pct(lo)}-{_pct(hi)}; {r['hits']} hits, {r['wrong_keyword']} wrong "
                     f"keyword, {r['missed']} missed; miss rate {_pct(r['miss_rate'])})")
    else:
        lines.append(f"negatives only: {r['hours']:.2f} h, no keywords (false accepts only)")
    lo, hi = r["fa_per_hour_ci95"]
    clips = "" if r["false_accept_clips"] is None else f" from {r['false_accept_clips']} distinct clip(s)"
    lines.append(f"false accepts: {r['false_accepts']} = {r['fa_per_hour']:.2f} per hour "
                 f"(95% interval {lo:.2f}-{hi:.2f}; {r['false_accepts_on_unknown']} on unknown words{clips}, "
                 "the rest on noise)")
    if r["false_accept_clips"] is not None and r["false_accept_clips"] < r["false_accepts_on_unknown"]:
        lines.append("note: some unknown clips caused more than one false accept (the stream places clips "
                     "more than once); the false accepts are not independent and their interval is too narrow")
    speakers = r.get("false_accept_speakers") or {}
    if speakers:
        lines.append("false accepts by speaker of the word: " + format_speaker_counts(speakers))
        top, count = next(iter(speakers.items()))
        if count >= 3 and count > r["false_accepts_on_unknown"] / 2:
            lines.append(f"note: {count} of {r['false_accepts_on_unknown']} false accepts on unknown words are "
                         f"{top}'s words: one speaker (or one corpus, where a source stands for its speakers) "
                         "sets this number; more of its kind of audio in training is what would lower it")
    if r["per_keyword"]:
        lines.append("per keyword:   events  hit rate  wrong  missed")
        for label, k in r["per_keyword"].items():
            lines.append(f"  {label:<10} {k['events']:>7}  {_pct(k['hit_rate']):>8}  {k['wrong_keyword']:>5}  "
                         f"{k['missed']:>6}")
    if r["confusions"]:
        lines.append("wrong keywords (said->detected): "
                     + ", ".join(f"{k} {v}" for k, v in sorted(r["confusions"].items(), key=lambda kv: -kv[1])))
    with_clips = any(p.get("false_accept_clips") is not None for p in report["sweep"])
    lines.append("sweep:   threshold  hit rate  miss rate  FA/hour" + ("  FA clips" if with_clips else ""))
    for p in report["sweep"]:
        clips = f"  {p['false_accept_clips']:>8}" if with_clips and p.get("false_accept_clips") is not None else ""
        lines.append(f"  {p['threshold']:>15.2f}  {_pct(p['hit_rate']):>8}  {_pct(p['miss_rate']):>9}  "
                     f"{p['fa_per_hour']:>7.2f}{clips}")
    chosen = report["chosen"]
    target = report["target_fa_per_hour"]
    if chosen is None:
        lines.append(f"no swept threshold keeps false accepts at or under {target:g} per hour")
    else:
        lines.append(f"target {target:g} FA/hour: threshold {chosen['threshold']:.2f} "
                     f"(hit rate {_pct(chosen['hit_rate'])}, {chosen['fa_per_hour']:.2f} FA/hour)")
    if report["hours"] * target < 3:
        lines.append(f"note: {report['hours']:.2f} h of audio measures {target:g} FA/hour to within "
                     f"{1 / report['hours']:.1f} FA/hour; use longer (negatives) streams for a firm number")
    if report.get("det_png"):
        lines.append(f"DET curve: {report['det_png']}")
    elif report.get("det_png_note"):
        lines.append(report["det_png_note"])
    if report.get("calibrated"):
        lines.append(f"calibrated: wrote threshold {chosen['threshold']:.2f} to {report['calibrated']}")
    saved = report.get("false_accepts_saved")
    if saved:
        skipped = (f"; {saved['skipped_on_keyword']} left out: their window overlaps a keyword"
                   if saved["skipped_on_keyword"] else "")
        where = (f"saved to {saved['path']} as 'unknown' clips (train on them: kws-train --extra-train "
                 f"{saved['path']})" if saved["path"] else "nothing saved")
        lines.append(f"false accepts at {saved['threshold']:.2f}: {saved['clips']} {where}{skipped}")
    return "\n".join(lines)


def plot_det(points: Sequence[SweepPoint], path: str | Path, *, target_fa_per_hour: float,
             operating: SweepPoint | None, chosen: SweepPoint | None, title: str) -> bool:
    """Draw the DET curve (miss rate against FA/hour) to ``path``; False without matplotlib.

    On a negatives-only stream, FA/hour against the threshold instead.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    negatives = points[0].n_events == 0
    if negatives:
        ax.plot([p.threshold for p in points], [p.fa_per_hour for p in points], "o-", ms=3)
        ax.axhline(target_fa_per_hour, color="gray", ls="--", label=f"target {target_fa_per_hour:g} FA/h")
        ax.set_xlabel("threshold")
        ax.set_ylabel("false accepts per hour")
        if chosen is not None:
            ax.plot([chosen.threshold], [chosen.fa_per_hour], "r*", ms=12, label=f"chosen {chosen.threshold:.2f}")
    else:
        xs = [p.fa_per_hour for p in points]
        ys = [100 * p.miss_rate for p in points]
        ax.plot(xs, ys, "o-", ms=3, label="sweep")
        seen = set()
        for p in points[:: max(1, len(points) // 8)]:
            if (p.fa_per_hour, p.miss_rate) in seen:  # one label per distinct point
                continue
            seen.add((p.fa_per_hour, p.miss_rate))
            ax.annotate(f"{p.threshold:.2f}", (p.fa_per_hour, 100 * p.miss_rate), fontsize=7,
                        textcoords="offset points", xytext=(4, 4))
        ax.axvline(target_fa_per_hour, color="gray", ls="--", label=f"target {target_fa_per_hour:g} FA/h")
        if operating is not None:
            ax.plot([operating.fa_per_hour], [100 * operating.miss_rate], "ks", ms=7,
                    label=f"operating {operating.threshold:.2f}")
        if chosen is not None:
            ax.plot([chosen.fa_per_hour], [100 * chosen.miss_rate], "r*", ms=12,
                    label=f"chosen {chosen.threshold:.2f}")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(left=0)
        ax.set_xlabel("false accepts per hour")
        ax.set_ylabel("miss rate (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as exc:
        raise KwsError(f"{path}: cannot write the DET curve ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
    return True


def calibrate(model_path: Path | None, config: DetectorConfig, chosen: SweepPoint, *, target_fa_per_hour: float,
              streams: Sequence[str], hours: float, hop_ms: float, tolerance_s: float,
              json_path: Path | None = None, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``chosen.threshold`` (and the detector settings it was found with) into the model's JSON,
    or into ``json_path`` (another model's, :func:`check_calibrate_json`; ``calibrated.model`` then
    names the model the streams were scored with; ``model_path`` None: ``extra`` says which).

    ``streams`` and ``hours``: the audio the sweep scored. Other keys of the JSON and of its
    ``detection`` section are kept; ``extra`` is added to ``calibrated``. Returns the JSON path.
    """
    from kws.runtime.meta import ModelMeta, sidecar_path

    other = json_path is not None
    if json_path is None and model_path is None:
        raise ValueError("calibrate needs model_path or json_path")
    json_path = json_path if other else sidecar_path(model_path)
    json_path = Path(os.path.realpath(json_path))   # through a symlink: the link stays a link
    meta = ModelMeta.load(json_path)
    detection = dict(meta.extra.get("detection", {}))
    detection.update({
        "threshold": chosen.threshold,
        "smoothing_windows": config.smoothing_windows,
        "refractory_ms": config.refractory_ms,
        "min_count": config.min_count,
        "calibrated": {
            "target_fa_per_hour": target_fa_per_hour,
            "stream": list(streams) if len(streams) != 1 else streams[0],
            "hours": hours,
            "n_events": chosen.n_events,
            "hit_rate": chosen.hit_rate,
            "fa_per_hour": chosen.fa_per_hour,
            "hop_ms": hop_ms,
            "tolerance_s": tolerance_s,
            "utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **({"model": str(model_path)} if other and model_path is not None else {}),
            **(extra or {}),
        },
    })
    meta.replace(detection=detection).save(json_path)
    return json_path


def check_npz_path(path: Path, *, force: bool, inputs: Mapping[str, Sequence[Path]]) -> None:
    """Refuse, before any audio is read, a ``--save-false-accepts`` path that could not (or, without
    ``force``, may not) be written, or that is one of the input files (``inputs``: flag -> paths)."""
    from kws.runtime.fileio import check_distinct, check_output

    check_output(path, flag="--save-false-accepts", force=force, suffix=".npz")
    for flag, paths in inputs.items():
        for given in paths:
            check_distinct({"--save-false-accepts": path}, {flag: given})


def save_false_accepts(path: Path, runs: Sequence[StreamRun], outcomes: Sequence[Sequence[str]], *, model,
                       model_path: Path, config: DetectorConfig, hop_ms: float) -> dict[str, Any]:
    """Cut every run's false accepts (at ``config``'s threshold; ``outcomes[i]`` are run i's
    detection outcomes, as :func:`evaluate` matched them) out of its audio into ``path``
    (:mod:`kws.runtime.mining`); returns the report's ``false_accepts_saved`` entry."""
    from kws.runtime.fileio import save_npz
    from kws.runtime.mining import concatenate, mine_stream, stream_blocks

    features = model.features
    parts = []
    for r, run_outcomes in zip(runs, outcomes):
        if "false_accept" not in run_outcomes:
            continue
        audio = stream_blocks(r.wav, sample_rate_hz=features.sample_rate_hz)
        parts.append(mine_stream(audio, wav_name=str(r.wav), truth=r.truth, detections=r.detections,
                                 outcomes=run_outcomes, scores=r.scores, labels=list(model.labels),
                                 sample_rate_hz=features.sample_rate_hz, window_samples=features.window_samples,
                                 span_s=(config.smoothing_windows - 1) * hop_ms / 1000.0))
    mined = concatenate(parts, window_samples=features.window_samples)
    saved = {"path": None, "clips": len(mined), "skipped_on_keyword": mined.skipped_on_keyword,
             "threshold": config.threshold}
    if len(mined):
        save_npz(path, mined.arrays(model=str(model_path)))
        saved["path"] = str(path)
        logger.info("saved %d false accept(s) to %s", len(mined), path)
    else:
        logger.warning("--save-false-accepts: no false accept to save at threshold %.2f; %s not written",
                       config.threshold, path)
    return saved


def check_writable(path: Path) -> None:
    """Refuse, before any audio is read, a JSON that --calibrate could not or should not rewrite."""
    target = Path(os.path.realpath(path))
    if target.is_file() and (not os.access(target, os.W_OK) or not target.stat().st_mode & 0o222):
        raise KwsError(f"{path}: is read-only; --calibrate writes the threshold into it (make it writable, "
                       "or calibrate a copy with --calibrate-json COPY.json)")


def check_calibrate_json(path: Path, evaluated) -> None:
    """Refuse a ``--calibrate-json`` that is missing, unreadable, or whose labels or front-end differ
    from the evaluated model's ``ModelMeta`` (a threshold only carries over within one recipe)."""
    from kws.runtime.meta import ModelMeta

    if path.is_dir():
        raise KwsError(f"--calibrate-json {path}: is a directory; expected a model's JSON file")
    if not path.is_file():
        raise KwsError(f"--calibrate-json {path}: file not found (expected a model's JSON)")
    target = ModelMeta.load(path)
    if tuple(target.labels) != tuple(evaluated.labels):
        raise KwsError(f"--calibrate-json {path}: labels {list(target.labels)} differ from the evaluated "
                       f"model's {list(evaluated.labels)}")
    if target.features != evaluated.features:
        raise KwsError(f"--calibrate-json {path}: its front-end differs from the evaluated model's "
                       f"({target.features.to_dict()} against {evaluated.features.to_dict()})")


def seen_speaker_warnings(meta, runs: Sequence[StreamRun]) -> list[str]:
    """One line per stream whose speakers the model may have been trained on.

    Compares each truth's ``settings`` (``split``, ``split_settings``: how ``kws-data stream``
    chose its clips) with the model JSON's ``split`` (seed, fractions, ``trained_on``). Nothing is
    said when either side does not record its split (a stream from another npz, a model not made
    by ``kws-train``).
    """
    from kws.runtime.meta import split_seed_and_fractions, trained_parts

    split_meta = meta.extra.get("split")
    if not isinstance(split_meta, Mapping):
        return []
    parts = trained_parts(split_meta)
    model_split = split_seed_and_fractions(split_meta)
    out = []
    for r in runs:
        name = r.truth.settings.get("split")
        if name is None:
            continue
        if name == "all" or name in parts:
            out.append(f"{r.wav}: built from the {name!r} split, and the model was trained on "
                       f"{' + '.join(parts)}: these speakers are not held out")
            continue
        raw = r.truth.settings.get("split_settings")   # a dict, or "defaults"
        stream_split = split_seed_and_fractions(raw if isinstance(raw, Mapping) else None)
        if stream_split != model_split:
            out.append(f"{r.wav}: built with split {stream_split}, the model was trained with {model_split}: "
                       "some of its speakers may be the model's training speakers")
    return out


# -------------------------------------------------------------------------------------------
# The command
# -------------------------------------------------------------------------------------------
def evaluate(model, model_path: Path, pairs: Sequence[tuple[Path, Path | None]], *, hop_ms: float, config: DetectorConfig,
             tolerance_s: float, target_fa_per_hour: float, thresholds: Sequence[float],
             det_png: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run and score the streams; returns (report dict, internals: the runs, the chosen sweep point
    and each run's detection outcomes, for calibration and --save-false-accepts)."""
    runs = [run_stream(model, wav, truth_path, hop_ms=hop_ms, config=config) for wav, truth_path in pairs]
    truth, scores, detections = pool(runs)
    delay_s = max_delay_s(window_s=model.features.window_seconds, hop_s=hop_ms / 1000.0,
                          smoothing_windows=config.smoothing_windows)
    score: StreamScore = match_detections(detections, truth, tolerance_s=tolerance_s, max_delay_s=delay_s)

    replayed = replay(model.labels, config, scores)
    same = [(d.time_s, d.label) for d in replayed] == [(d.time_s, d.label) for d in detections]
    if not same:  # cannot happen unless the pipeline and the detector drift apart
        logger.warning("replaying the recorded posteriors did not reproduce the pipeline's detections")

    grid = sorted(set(thresholds) | {config.threshold})
    points = sweep_thresholds(lambda t: replay(model.labels, dataclasses.replace(config, threshold=t), scores),
                              truth, grid, tolerance_s=tolerance_s, max_delay_s=delay_s)
    chosen = choose_threshold(points, target_fa_per_hour)
    operating = next(p for p in points if p.threshold == config.threshold)

    per_stream, outcomes = [], []
    for r in runs:
        s = match_detections(r.detections, r.truth, tolerance_s=tolerance_s, max_delay_s=delay_s)
        outcomes.append(s.detection_outcomes)
        per_stream.append({"wav": str(r.wav), "truth": None if r.truth_path is None else str(r.truth_path),
                           "duration_s": r.truth.duration_s,
                           "windows_scored": r.windows_scored, "n_events": s.n_events, "hits": s.hits,
                           "hit_rate": s.hit_rate, "false_accepts": s.false_accepts, "fa_per_hour": s.fa_per_hour,
                           "mean_latency_ms": r.mean_latency_ms})
    report: dict[str, Any] = {
        "model": str(model_path),
        "backend": getattr(model, "backend", None),
        "hop_ms": hop_ms,
        "detector": config.to_dict(),
        "tolerance_s": tolerance_s,
        "max_delay_s": delay_s,
        "hours": truth.duration_s / 3600.0,
        "negatives_only": truth.negatives_only,
        "streams": per_stream,
        "score": score.to_dict(),
        "detections": [d.to_dict() | {"outcome": o} | ({} if c is None else {"clip_index": c})
                       for d, o, c in zip(detections, score.detection_outcomes, score.detection_clips)],
        "replay_matches_pipeline": same,
        "sweep": [p.to_dict() for p in points],
        "target_fa_per_hour": target_fa_per_hour,
        "chosen": None if chosen is None else chosen.to_dict(),
        "det_png": None,
        "calibrated": None,
        "warnings": seen_speaker_warnings(model.meta, runs),
    }
    if det_png:
        title = (f"{model_path.name}: {truth.duration_s / 3600:.2f} h, {len(truth.events)} keywords, "
                 f"hop {hop_ms:g} ms, smoothing {config.smoothing_windows}")
        if plot_det(points, det_png, target_fa_per_hour=target_fa_per_hour, operating=operating, chosen=chosen,
                    title=title):
            report["det_png"] = str(det_png)
        else:
            report["det_png_note"] = "matplotlib is not installed: DET curve not drawn (pip install matplotlib)"
            logger.warning(report["det_png_note"])
    return report, {"runs": runs, "chosen": chosen, "outcomes": outcomes}


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(-1 if args.quiet else args.verbose)
    if not (math.isfinite(args.tolerance_s) and args.tolerance_s >= 0):
        raise KwsError(f"--tolerance-s {args.tolerance_s}: expected a number of seconds >= 0")
    if not (math.isfinite(args.target_fa_per_hour) and args.target_fa_per_hour >= 0):
        raise KwsError(f"--target-fa-per-hour {args.target_fa_per_hour}: expected a number >= 0")
    thresholds = parse_sweep(args.sweep)
    args.negatives = expand_negatives(args.negatives)
    pairs = _truth_paths(args.wav, args.truth, args.negatives)
    from kws.runtime.audio_io import check_wav_path

    for wav, truth_path in pairs:  # fail on a bad wav or truth file before loading the model
        check_wav_path(wav)
        if truth_path is not None:
            load_truth(truth_path)
    if args.calibrate_json is not None and not args.calibrate:
        raise KwsError(f"--calibrate-json {args.calibrate_json}: needs --calibrate")
    if args.det_png is not None:
        check_png_path(Path(args.det_png), flag="--det-png", force=args.force)
    if args.save_false_accepts is not None:
        check_npz_path(Path(args.save_false_accepts), force=args.force,
                       inputs={"--wav": [Path(w) for w in args.wav], "--negatives": [Path(w) for w in args.negatives],
                               "--truth": [t for _, t in pairs if t is not None]})

    from kws.runtime.model import KwsModel, default_model_path

    model_path = Path(args.model) if args.model is not None else default_model_path()
    model = KwsModel(model_path, threads=args.threads, backend=args.backend)
    calibrate_json = None if args.calibrate_json is None else Path(args.calibrate_json)
    if calibrate_json is not None:
        check_calibrate_json(calibrate_json, model.meta)
    if args.save_false_accepts is not None:
        from kws.runtime.mining import check_can_mine

        check_can_mine(model.labels)
    if args.calibrate:
        from kws.runtime.meta import sidecar_path

        check_writable(calibrate_json or sidecar_path(model_path))
    config = DetectorConfig.from_meta(model.meta, threshold=args.threshold, smoothing_windows=args.smoothing,
                                      refractory_ms=args.refractory_ms, min_count=args.min_count)
    report, internals = evaluate(model, model_path, pairs, hop_ms=args.hop_ms, config=config,
                                 tolerance_s=args.tolerance_s, target_fa_per_hour=args.target_fa_per_hour,
                                 thresholds=thresholds, det_png=args.det_png)
    if args.json:   # the text report prints them itself
        for warning in report["warnings"]:
            logger.warning("%s", warning)
    chosen = internals["chosen"]
    failed = None
    scored = sum(s["windows_scored"] for s in report["streams"])
    if not scored:
        logger.warning("the audio is shorter than one window (%.2f s): nothing was scored",
                       model.features.window_seconds)
    if args.calibrate:
        if not scored:
            failed = ("--calibrate: no window was scored (the audio is shorter than one window); "
                      f"{calibrate_json or model_path.with_suffix('.json')} left unchanged")
            chosen = None
        elif report["hours"] < MIN_CALIBRATION_HOURS:
            logger.warning("--calibrate on %.1f minutes of audio: a false-accept rate per hour is barely "
                           "measured by so little (kws-data stream --minutes 60 --pair gives 2 hours)",
                           60 * report["hours"])
    if args.calibrate and failed is None:
        if chosen is not None and chosen.n_events and not chosen.hits:
            failed = (f"--calibrate: at {chosen.threshold:.2f}, the lowest threshold that meets the target, the "
                      "model detects no keyword at all; "
                      f"{calibrate_json or model_path.with_suffix('.json')} left unchanged")
        elif chosen is None:
            top = report["sweep"][-1]
            failed = (f"--calibrate: no swept threshold (up to {top['threshold']:.2f}, {top['fa_per_hour']:.2f} "
                      f"FA/hour) keeps false accepts at or under {args.target_fa_per_hour:g} per hour; "
                      f"{calibrate_json or model_path.with_suffix('.json')} left unchanged")
        else:
            report["calibrated"] = str(calibrate(model_path, config, chosen,
                                                 target_fa_per_hour=args.target_fa_per_hour,
                                                 streams=[str(r.wav) for r in internals["runs"]],
                                                 hours=sum(r.truth.duration_s for r in internals["runs"]) / 3600.0,
                                                 hop_ms=args.hop_ms,
                                                 tolerance_s=args.tolerance_s, json_path=calibrate_json))
    if args.save_false_accepts is not None:
        report["false_accepts_saved"] = save_false_accepts(
            Path(args.save_false_accepts), internals["runs"], internals["outcomes"], model=model,
            model_path=model_path, config=config, hop_ms=args.hop_ms)
    if args.json:
        print(json.dumps(report))
    else:
        print(format_report(report))
    sys.stdout.flush()
    if failed:
        raise KwsError(failed, exit_code=EXIT_FAILURE)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
