"""kws-listen: always-on keyword spotting from a microphone, a WAV file or raw PCM on stdin.

Runs with numpy, a TFLite interpreter and sounddevice only (no TensorFlow)::

    kws-listen                                  # default microphone, shipped int8 model
    kws-listen --device "USB" --threshold 0.8   # a USB microphone (any rate, resampled)
    kws-listen --wav recording.wav --json       # a file, as fast as possible, JSON lines
    arecord -r 8000 -f S16_LE -c 1 | kws-listen --stdin

See docs/runtime.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Sequence

import numpy as np

from kws.runtime.cli import add_detection_arguments, configure_logging, run_main
from kws.runtime.detector import Detection, DetectorConfig
from kws.runtime.errors import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, KwsError
from kws.runtime.interpreter import BACKENDS
from kws.runtime.pipeline import Pipeline
from kws.runtime.sources import AudioSource, list_input_devices, open_source

logger = logging.getLogger(__name__)
PROG = "kws-listen"

EPILOG = f"""\
exit codes:
  {EXIT_OK}    the stream ended (end of --wav / --stdin, or --max-seconds reached)
  {EXIT_FAILURE}    a runtime failure: the microphone is missing, broken or failed for good
       (transient audio errors are retried with back-off first)
  {EXIT_BAD_INPUT}    bad input: a bad flag, an unreadable WAV, a missing or corrupt .tflite,
       a model JSON that does not match the model
  {EXIT_INTERRUPTED}  stopped with Ctrl-C (after printing the summary)

Detections go to stdout, one per line ("  3.25 s  yes  0.93", or with --json
{{"time_s": 3.25, "label": "yes", "score": 0.93}}); time_s is the end of the 1 s window in
seconds from the start of the stream. Everything else (backend, summary, --verbose) goes to stderr.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Spot keywords in a live microphone, a WAV file or raw PCM on stdin.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_argument_group("model")
    model.add_argument("--model", metavar="PATH.tflite",
                       help="model with its JSON beside it (default: the shipped models/model_int8.tflite)")
    model.add_argument("--threads", type=int, metavar="N", help="interpreter threads (default: backend's)")
    model.add_argument("--backend", choices=("auto", *BACKENDS), default="auto",
                       help="TFLite interpreter (default auto: ai-edge-litert, tflite-runtime, tensorflow)")
    det = add_detection_arguments(parser, title="detection (defaults from the model's JSON)")
    det.add_argument("--keywords", nargs="+", metavar="WORD",
                     help="only these keywords fire (space or comma separated)")
    src = parser.add_argument_group("audio source (default: the microphone)")
    src.add_argument("--device", metavar="NAME|INDEX", help="input device (see --list-devices)")
    src.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    src.add_argument("--capture-rate", type=int, metavar="HZ",
                     help="microphone capture rate (default: 8000 if the device offers it, else its "
                          "default rate; resampled to the model's rate)")
    src.add_argument("--wav", metavar="FILE", help="stream a WAV file (any rate, mono or stereo)")
    src.add_argument("--realtime", action="store_true", help="with --wav: play the file at real time")
    src.add_argument("--stdin", action="store_true", help="read raw S16_LE mono PCM from stdin")
    src.add_argument("--stdin-rate", type=int, default=None, metavar="HZ",
                     help="sample rate of --stdin (default 8000)")
    src.add_argument("--max-seconds", type=float, metavar="S",
                     help="microphone: stop after S seconds of audio (default: run until Ctrl-C)")
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="one JSON object per detection on stdout")
    out.add_argument("-v", "--verbose", action="count", default=0,
                     help="show the running top class on stderr (-vv: debug log)")
    out.add_argument("-q", "--quiet", action="store_true", help="no startup line or summary")
    return parser


def _keywords(values: Sequence[str] | None) -> tuple[str, ...] | None:
    if not values:
        return None
    words = tuple(w.strip() for v in values for w in v.split(",") if w.strip())
    if not words:
        raise KwsError("--keywords is empty; name at least one keyword")
    return words


def format_detection(detection: Detection, *, as_json: bool) -> str:
    """One stdout line: ``  3.25 s  yes  0.93`` or a JSON object."""
    if as_json:
        return json.dumps({"time_s": round(float(detection.time_s), 3), "label": detection.label,
                           "score": round(float(detection.score), 4)})
    return f"{detection.time_s:6.2f} s  {detection.label}  {detection.score:.2f}"


class _Verbose:
    """The running top class on stderr: a self-overwriting line on a terminal, else one line each."""

    def __init__(self, labels: Sequence[str], stream) -> None:
        self.labels, self.stream = tuple(labels), stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.dirty = False

    def __call__(self, time_s: float, probs: np.ndarray, detection: Detection | None) -> None:
        top = int(np.argmax(probs))
        line = f"{time_s:8.2f} s  top {self.labels[top]:<8s} {float(probs[top]):.2f}"
        if self.tty:
            self.stream.write("\r" + line)
            self.dirty = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def clear(self) -> None:
        if self.dirty:
            self.stream.write("\r" + " " * 40 + "\r")
            self.stream.flush()
            self.dirty = False


def summary_line(pipeline: Pipeline, source: AudioSource) -> str:
    latency = pipeline.mean_latency_ms
    lat = f"{latency:.1f} ms" if np.isfinite(latency) else "n/a"
    return (f"{pipeline.windows_scored} windows scored, {pipeline.detections} detections, "
            f"{getattr(source, 'overflows', 0)} overflows, mean latency {lat} per window "
            f"({pipeline.duration_s:.2f} s of audio)")


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(-1 if args.quiet else max(args.verbose - 1, 0))
    if args.list_devices:
        print(list_input_devices())
        return EXIT_OK
    if args.wav is not None and args.stdin:
        raise KwsError("--wav and --stdin both given; choose one source")
    if args.realtime and args.wav is None:
        raise KwsError("--realtime only applies to --wav")
    file_source = "--wav" if args.wav is not None else "--stdin" if args.stdin else None
    for flag, value in (("--device", args.device), ("--capture-rate", args.capture_rate),
                        ("--max-seconds", args.max_seconds)):
        if file_source and value is not None:
            raise KwsError(f"{flag} only applies to the microphone, not to {file_source}")
    if args.stdin_rate is not None and not args.stdin:
        raise KwsError("--stdin-rate only applies to --stdin")
    if args.max_seconds is not None and not args.max_seconds > 0:
        raise KwsError(f"--max-seconds {args.max_seconds}: expected a positive number")

    if args.wav is not None:  # before the model loads, so that LiteRT's start-up line does not come first
        from kws.runtime.audio_io import check_wav_path

        check_wav_path(args.wav)

    from kws.runtime.model import KwsModel, default_model_path  # after --list-devices

    model_path = args.model if args.model is not None else default_model_path()
    model = KwsModel(model_path, threads=args.threads, backend=args.backend)
    config = DetectorConfig.from_meta(model.meta, threshold=args.threshold,
                                      smoothing_windows=args.smoothing,
                                      refractory_ms=args.refractory_ms, min_count=args.min_count,
                                      keywords=_keywords(args.keywords))
    verbose = _Verbose(model.labels, sys.stderr) if args.verbose else None
    pipeline = Pipeline(model, hop_ms=args.hop_ms, detector=config, on_window=verbose)
    rate = model.features.sample_rate_hz
    source = open_source(wav=args.wav, stdin=args.stdin, device=args.device, target_rate_hz=rate,
                         realtime=args.realtime, stdin_rate_hz=8000 if args.stdin_rate is None else args.stdin_rate,
                         max_seconds=args.max_seconds, capture_rate_hz=args.capture_rate)
    quant = model.quantization_type
    threads = args.threads if args.threads is not None else "default"
    if not args.quiet:
        print(f"{PROG}: {model.path.name} ({quant}, {len(model.labels)} labels) on {model.backend} "
              f"({threads} threads); keywords {', '.join(pipeline.detector.active_keywords)}; "
              f"threshold {config.threshold:g}, smoothing {config.smoothing_windows}, refractory "
              f"{config.refractory_ms:g} ms, min count {config.min_count}, hop {args.hop_ms:g} ms",
              file=sys.stderr)
    interrupted = False
    try:
        with source:
            if not args.quiet:
                print(f"{PROG}: listening to {source.description}", file=sys.stderr)
            for block in source:
                for detection in pipeline.feed(block):
                    if verbose is not None:
                        verbose.clear()
                    print(format_detection(detection, as_json=args.json), flush=True)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if verbose is not None:
            verbose.clear()
    if not args.quiet or interrupted:
        print(f"{PROG}: {'interrupted; ' if interrupted else ''}{summary_line(pipeline, source)}",
              file=sys.stderr)
    if pipeline.windows_scored == 0 and not interrupted:
        logger.warning("%.2f s of audio is shorter than one window (%.2f s): nothing was scored",
                       pipeline.duration_s, model.features.window_seconds)
    return EXIT_INTERRUPTED if interrupted else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(PROG, _main, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
