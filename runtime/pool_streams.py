"""kws-pool-streams: pool several ``kws-eval-stream --json`` reports into one threshold sweep.

Cross-validation by speaker folds (``kws-train --folds 5 --fold K``) gives one model per fold,
each scored on streams of its own held-out speakers. A shipped model has one threshold for
every speaker, so the honest summary is not the mean of five curves but one curve: at each
threshold, the folds' hits, keywords, false accepts and hours are summed::

    kws-eval-stream --model runs/fold0/export/model_int8.tflite --wav streams/fold0.wav \\
        --wav streams/fold0_negatives.wav --sweep 0.20,0.21,...,0.99 --json > fold0.json   # each fold
    kws-pool-streams fold0.json fold1.json fold2.json fold3.json fold4.json --det-png det_folds.png

prints each report's and the pooled hit rate at or under each ``--targets`` false-accept rate
(hits at <= 0.5 / 1 / 2 / 3 / 5 / 10 FA/hour by default; the best swept threshold within each
budget, :func:`kws.runtime.scoring.best_at_or_under`) and their mean. Every report must have
swept the same thresholds with the same detector settings, or the pooled points would mix
operating conditions.

``--calibrate-json MODEL.json`` writes the pooled sweep's threshold for ``--target-fa-per-hour``
into a model's JSON, chosen as ``kws-eval-stream --calibrate`` chooses it: the threshold of a
recipe measured on every speaker of the folds, handed to the same recipe fitted on all of them.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from kws.runtime.cli import configure_logging, run_main
from kws.runtime.errors import EXIT_FAILURE, EXIT_OK, DataError, KwsError
from kws.runtime.fileio import read_json
from kws.runtime.scoring import SweepPoint, best_at_or_under, fa_per_hour, format_speaker_counts, most_first

logger = logging.getLogger(__name__)
PROG = "kws-pool-streams"
#: The default false-accept budgets, per hour (the columns of docs/streaming.md's tables).
DEFAULT_TARGETS: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
#: Report fields that must agree for pooled points to mean one operating condition.
SAME_SETTINGS = ("hop_ms", "tolerance_s")
SAME_DETECTOR = ("smoothing_windows", "refractory_ms", "min_count", "keywords")


@dataclass(frozen=True)
class Report:
    """One ``kws-eval-stream --json`` report, as far as pooling needs it."""

    path: Path
    model: str | None
    duration_s: float
    n_events: int
    settings: dict[str, Any]
    streams: tuple[str, ...]
    points: tuple[SweepPoint, ...]
    threshold: float | None = None                          # the detector's (operating) threshold
    false_accept_speakers: dict[str, int] | None = None     # at that threshold; None in older reports

    @property
    def hours(self) -> float:
        return self.duration_s / 3600.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Pool several kws-eval-stream --json reports (e.g. one per speaker fold) into one "
                               "threshold sweep, read at each false-accept budget.",
        epilog="exit codes: 0 pooled (and calibrated, with --calibrate-json); 1 --calibrate-json: no swept "
               "threshold meets the target (the JSON is left as it was); 2 bad input (an unreadable report, one that is not a kws-eval-stream "
               "--json report, reports swept or detected differently, a bad flag). See docs/streaming.md.")
    parser.add_argument("reports", nargs="+", metavar="REPORT.json",
                        help="kws-eval-stream --json outputs, e.g. one per speaker fold")
    parser.add_argument("--targets", type=float, nargs="+", default=list(DEFAULT_TARGETS), metavar="FA",
                        help="false accepts per hour to read the pooled curve at (default 0.5 1 2 3 5 10)")
    parser.add_argument("--target-fa-per-hour", type=float, default=1.0, metavar="FA",
                        help="the false-accept rate --calibrate-json calibrates to (default 1)")
    parser.add_argument("--calibrate-json", metavar="MODEL.json",
                        help="write the pooled sweep's threshold for --target-fa-per-hour into this model JSON "
                             "(e.g. the shipped model, fitted on every speaker: its labels and front-end must "
                             "match the pooled reports' models)")
    parser.add_argument("--det-png", metavar="PNG", help="draw the pooled DET curve to this PNG")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --det-png")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log lines")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings only on stderr")
    return parser


# -------------------------------------------------------------------------------------------
# Reading reports
# -------------------------------------------------------------------------------------------
def _field(data: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise DataError(f"{where}: no {key!r}; expected the JSON that kws-eval-stream --json prints")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise DataError(f"{where}: {key!r} is {value!r}; expected a {getattr(kind, '__name__', 'number')}")
    return value


def _point(item: Any, where: str) -> SweepPoint:
    if not isinstance(item, dict):
        raise DataError(f"{where}: a sweep entry is {item!r}; expected an object")
    number = (int, float)
    threshold = float(_field(item, "threshold", number, where))
    hits = _field(item, "hits", int, where)
    n_events = _field(item, "n_events", int, where)
    false_accepts = _field(item, "false_accepts", int, where)
    if min(hits, n_events, false_accepts) < 0 or hits > n_events:
        raise DataError(f"{where}: sweep point at threshold {threshold:g} has hits {hits}, n_events {n_events}, "
                        f"false_accepts {false_accepts}; expected counts >= 0 with hits <= n_events")
    return SweepPoint(threshold, hits, n_events, false_accepts, float(_field(item, "fa_per_hour", number, where)))


def load_report(path: str | Path) -> Report:
    """Read one ``kws-eval-stream --json`` report; :class:`DataError` names what is wrong."""
    path = Path(path)
    data = read_json(path, what="kws-eval-stream --json report")
    where = str(path)
    if not isinstance(data, dict) or "sweep" not in data:
        raise DataError(f"{path}: not a kws-eval-stream --json report (no 'sweep'); expected the output of "
                        "kws-eval-stream --json")
    sweep = _field(data, "sweep", list, where)
    if not sweep:
        raise DataError(f"{path}: the sweep is empty; expected at least one threshold")
    score = _field(data, "score", dict, where)
    duration_s = float(_field(score, "duration_s", (int, float), where))
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise DataError(f"{path}: duration_s {duration_s}; expected a positive number of seconds of audio")
    detector = _field(data, "detector", dict, where)
    settings = {key: data.get(key) for key in SAME_SETTINGS}
    settings.update({key: detector.get(key) for key in SAME_DETECTOR})
    points = tuple(sorted((_point(item, where) for item in sweep), key=lambda p: p.threshold))
    thresholds = [p.threshold for p in points]
    if len(set(thresholds)) != len(thresholds):
        raise DataError(f"{path}: a threshold appears twice in the sweep")
    streams = tuple(str(s.get("wav")) for s in data.get("streams") or () if isinstance(s, dict))
    model = data.get("model")
    threshold = detector.get("threshold")
    speakers = score.get("false_accept_speakers")
    if speakers is not None and not (isinstance(speakers, dict) and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in speakers.values())):
        raise DataError(f"{path}: score.false_accept_speakers is not a map of speaker to count; expected the "
                        "output of kws-eval-stream --json")
    return Report(path, model if isinstance(model, str) else None, duration_s, int(points[0].n_events), settings,
                  streams, points, float(threshold) if isinstance(threshold, (int, float)) else None,
                  None if speakers is None else dict(speakers))


def check_compatible(reports: Sequence[Report]) -> None:
    """Refuse reports that cannot be pooled: another sweep, other detector settings, one file twice."""
    first = reports[0]
    seen: dict[Path, Report] = {}
    for report in reports:
        key = report.path.resolve()
        if key in seen:
            raise KwsError(f"{report.path} given more than once: pooling a report twice counts its keywords and "
                           "false accepts twice; give each report once")
        seen[key] = report
    for report in reports[1:]:
        mine = [p.threshold for p in report.points]
        theirs = [p.threshold for p in first.points]
        if mine != theirs:
            extra = sorted(set(mine) ^ set(theirs))
            raise DataError(f"{report.path}: swept {len(mine)} thresholds, {first.path} {len(theirs)}"
                            + (f" (first difference {extra[0]:g})" if extra else "")
                            + "; score every report with the same kws-eval-stream --sweep")
        for key, value in report.settings.items():
            if value != first.settings[key]:
                raise DataError(f"{report.path}: {key} {value} but {first.path} has {first.settings[key]}; "
                                "pool reports scored with the same detector settings")
    streams: dict[str, Path] = {}
    for report in reports:
        for wav in report.streams:
            if wav in streams and streams[wav] != report.path:
                logger.warning("%s is scored in both %s and %s: its audio counts twice in the pooled hours",
                               wav, streams[wav], report.path)
            streams.setdefault(wav, report.path)


# -------------------------------------------------------------------------------------------
# Pooling
# -------------------------------------------------------------------------------------------
def pool_points(reports: Sequence[Report]) -> list[SweepPoint]:
    """One sweep: per threshold, hits, keywords and false accepts summed, over the summed hours."""
    check_compatible(reports)
    duration_s = sum(r.duration_s for r in reports)
    pooled = []
    for i, point in enumerate(reports[0].points):
        group = [r.points[i] for r in reports]
        false_accepts = sum(p.false_accepts for p in group)
        pooled.append(SweepPoint(point.threshold, sum(p.hits for p in group), sum(p.n_events for p in group),
                                 false_accepts, fa_per_hour(false_accepts, duration_s)))
    return pooled


def pool_false_accept_speakers(reports: Sequence[Report]) -> dict[str, Any]:
    """The reports' false accepts by speaker of the word, summed (most first), where that means something.

    Each report counts them at its own operating threshold, so they are summed only when every
    report was scored at one threshold; otherwise (or when a report predates the field) the
    result says why not. Returns ``{"threshold", "counts", "why_not"}`` (counts None when not pooled).
    """
    old = next((r for r in reports if r.false_accept_speakers is None), None)
    if old is not None:
        return {"threshold": None, "counts": None,
                "why_not": f"{old.path} has no false_accept_speakers (score it again with this kws-eval-stream)"}
    thresholds = sorted({r.threshold for r in reports}, key=lambda t: (t is None, t))
    if len(thresholds) != 1 or thresholds[0] is None:
        shown = ", ".join("?" if t is None else f"{t:.2f}" for t in thresholds)
        return {"threshold": None, "counts": None,
                "why_not": f"the reports were scored at different thresholds ({shown}); give each "
                           "kws-eval-stream the same --threshold to pool them"}
    counts: dict[str, int] = {}
    for report in reports:
        for speaker, n in report.false_accept_speakers.items():
            counts[speaker] = counts.get(speaker, 0) + n
    return {"threshold": thresholds[0], "why_not": None, "counts": most_first(counts)}


def read_columns(points: Sequence[SweepPoint], targets: Sequence[float]) -> list[dict[str, Any]]:
    """For each target, the best swept point at or under it (None where none is)."""
    columns = []
    for target in targets:
        best = best_at_or_under(points, target)
        columns.append({"target_fa_per_hour": target, "point": None if best is None else best.to_dict()})
    return columns


def mean_hit_rate(columns: Sequence[dict[str, Any]]) -> float | None:
    """The hit rate averaged over the columns, a column without a point counting 0; None without keywords."""
    rates = []
    for column in columns:
        point = column["point"]
        if point is not None and point["hit_rate"] is None:
            return None
        rates.append(0.0 if point is None else point["hit_rate"])
    return sum(rates) / len(rates) if rates else None


def pool(reports: Sequence[Report], targets: Sequence[float]) -> tuple[dict[str, Any], list[SweepPoint]]:
    """The whole result (each report's columns, the pooled sweep and its columns) and the pooled points."""
    points = pool_points(reports)
    rows = []
    for report in reports:
        columns = read_columns(report.points, targets)
        rows.append({"report": str(report.path), "hours": report.hours, "n_events": report.n_events,
                     "columns": columns, "mean_hit_rate": mean_hit_rate(columns)})
    columns = read_columns(points, targets)
    hours = sum(r.hours for r in reports)
    return {"targets": list(targets), "reports": rows,
            "pooled": {"hours": hours, "n_events": points[0].n_events, "columns": columns,
                       "mean_hit_rate": mean_hit_rate(columns), "sweep": [p.to_dict() for p in points],
                       "false_accept_speakers": pool_false_accept_speakers(reports)},
            "settings": dict(reports[0].settings), "det_png": None}, points


# -------------------------------------------------------------------------------------------
# Calibration from the pooled sweep
# -------------------------------------------------------------------------------------------
def check_calibration_target(path: Path, reports: Sequence[Report]) -> None:
    """Refuse, before anything is written, a ``--calibrate-json`` that is missing or read-only, or
    whose labels or front-end differ from those of a pooled report's model (a threshold only
    carries over within one recipe)."""
    from kws.runtime.eval_stream import check_calibrate_json, check_writable
    from kws.runtime.meta import ModelMeta, sidecar_path

    for report in reports:
        if report.model is None:
            raise DataError(f"{report.path}: names no model; --calibrate-json needs each report's model JSON "
                            "to check the labels and front-end")
        meta_path = sidecar_path(report.model)
        if not meta_path.is_file():
            raise DataError(f"{report.path}: its model's JSON {meta_path} not found; --calibrate-json needs it to "
                            "check the labels and front-end (run kws-pool-streams where kws-eval-stream ran)")
        check_calibrate_json(path, ModelMeta.load(meta_path))
    check_writable(path)


def calibrate_pooled(path: Path, reports: Sequence[Report], points: Sequence[SweepPoint], *,
                     target_fa_per_hour: float) -> SweepPoint:
    """Write the pooled sweep's threshold for ``target_fa_per_hour`` into the model JSON at ``path``.

    The threshold is chosen as ``kws-eval-stream --calibrate`` chooses it
    (:func:`kws.runtime.scoring.choose_threshold`: the lowest from which every higher swept
    threshold stays within the target). Raises :class:`KwsError` (exit 1), leaving the JSON as it
    was, when no threshold meets the target or the one that does detects no keyword.
    """
    from kws.runtime.detector import DetectorConfig
    from kws.runtime.eval_stream import calibrate
    from kws.runtime.scoring import choose_threshold

    chosen = choose_threshold(points, target_fa_per_hour)
    if chosen is None:
        top = max(points, key=lambda p: p.threshold)
        raise KwsError(f"--calibrate-json: no swept threshold (up to {top.threshold:.2f}, {top.fa_per_hour:.2f} "
                       f"FA/hour pooled) keeps false accepts at or under {target_fa_per_hour:g} per hour; "
                       f"{path} left unchanged", exit_code=EXIT_FAILURE)
    if chosen.n_events and not chosen.hits:
        raise KwsError(f"--calibrate-json: at {chosen.threshold:.2f}, the lowest threshold that meets the target, "
                       f"the pooled models detect no keyword at all; {path} left unchanged", exit_code=EXIT_FAILURE)
    settings = reports[0].settings
    config = DetectorConfig(threshold=chosen.threshold, smoothing_windows=settings["smoothing_windows"],
                            refractory_ms=settings["refractory_ms"], min_count=settings["min_count"])
    calibrate(None, config, chosen, target_fa_per_hour=target_fa_per_hour,
              streams=[wav for r in reports for wav in r.streams], hours=sum(r.hours for r in reports),
              hop_ms=settings["hop_ms"], tolerance_s=settings["tolerance_s"], json_path=path,
              extra={"pooled_reports": [str(r.path) for r in reports], "models": [r.model for r in reports]})
    return chosen


def _cell(column: dict[str, Any]) -> str:
    point = column["point"]
    if point is None:
        return "-"
    return "-" if point["hit_rate"] is None else f"{100 * point['hit_rate']:.1f}%"


def format_table(result: dict[str, Any]) -> str:
    """The text table printed without --json."""
    targets = " / ".join(f"{t:g}" for t in result["targets"])
    width = max(len("pooled"), *(len(r["report"]) for r in result["reports"]))
    lines = [f"{'report':<{width}}  {'hours':>6}  {'keywords':>8}  hits at <= {targets} FA/hour  mean"]

    def row(name: str, r: dict[str, Any]) -> str:
        cells = " / ".join(_cell(c) for c in r["columns"])
        mean = "-" if r["mean_hit_rate"] is None else f"{100 * r['mean_hit_rate']:.1f}%"
        return f"{name:<{width}}  {r['hours']:>6.2f}  {r['n_events']:>8}  {cells}  {mean}"

    for r in result["reports"]:
        lines.append(row(r["report"], r))
    lines.append(row("pooled", result["pooled"]))
    pooled = result["pooled"]
    for column in pooled["columns"]:
        point = column["point"]
        if point is not None:
            lines.append(f"  <= {column['target_fa_per_hour']:g} FA/hour: threshold {point['threshold']:.2f}, "
                         f"{point['hits']} of {point['n_events']} keywords, {point['false_accepts']} false "
                         f"accepts ({point['fa_per_hour']:.2f} per hour)")
        else:
            lines.append(f"  <= {column['target_fa_per_hour']:g} FA/hour: no swept threshold stays under it")
    by_speaker = pooled["false_accept_speakers"]
    if by_speaker["counts"]:
        lines.append(f"false accepts at threshold {by_speaker['threshold']:.2f} by speaker of the word: "
                     + format_speaker_counts(by_speaker["counts"]))
    elif by_speaker["why_not"]:
        lines.append(f"false accepts by speaker: not pooled: {by_speaker['why_not']}")
    if pooled["hours"] * min(result["targets"]) < 3:
        lines.append(f"note: {pooled['hours']:.2f} h of audio measures {min(result['targets']):g} FA/hour to "
                     f"within {1 / pooled['hours']:.2f} FA/hour")
    if result.get("det_png"):
        lines.append(f"DET curve: {result['det_png']}")
    if result.get("calibrated"):
        chosen = result["chosen"]
        lines.append(f"calibrated: wrote threshold {chosen['threshold']:.2f} (pooled: {100 * chosen['hit_rate']:.1f}% "
                     f"of keywords at {chosen['fa_per_hour']:.2f} FA/hour) to {result['calibrated']}")
    return "\n".join(lines)


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(-1 if args.quiet else args.verbose)
    for target in args.targets:
        if not (math.isfinite(target) and target >= 0):
            raise KwsError(f"--targets {target:g}: expected false accepts per hour >= 0")
    targets = sorted(set(args.targets))
    if not (math.isfinite(args.target_fa_per_hour) and args.target_fa_per_hour >= 0):
        raise KwsError(f"--target-fa-per-hour {args.target_fa_per_hour}: expected a number >= 0")
    if args.det_png is not None:
        from kws.runtime.eval_stream import check_png_path

        check_png_path(Path(args.det_png), flag="--det-png", force=args.force)
    reports = [load_report(path) for path in args.reports]
    result, points = pool(reports, targets)   # refuses reports that cannot be pooled; writes nothing
    result.update(calibrated=None, chosen=None)
    calibrate_json = None if args.calibrate_json is None else Path(args.calibrate_json)
    chosen, failure = None, None
    if calibrate_json is not None:
        check_calibration_target(calibrate_json, reports)
        try:
            chosen = calibrate_pooled(calibrate_json, reports, points, target_fa_per_hour=args.target_fa_per_hour)
            result.update(calibrated=str(calibrate_json), chosen=chosen.to_dict())
        except KwsError as exc:
            if exc.exit_code != EXIT_FAILURE:
                raise
            failure = exc   # the table is still printed
    if args.det_png is not None:
        from kws.runtime.eval_stream import plot_det

        if calibrate_json is not None:
            target, marked = args.target_fa_per_hour, chosen
        else:
            target = 1.0 if 1.0 in targets else targets[0]
            marked = best_at_or_under(points, target)
        title = (f"{len(reports)} reports pooled: {result['pooled']['hours']:.1f} h, "
                 f"{result['pooled']['n_events']} keywords")
        if plot_det(points, args.det_png, target_fa_per_hour=target, operating=None, chosen=marked, title=title):
            result["det_png"] = str(args.det_png)
        else:
            logger.warning("--det-png %s: matplotlib is not installed; no plot drawn", args.det_png)
    if args.json:
        print(json.dumps(result))
    else:
        print(format_table(result))
    sys.stdout.flush()
    if failure is not None:
        raise failure
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
