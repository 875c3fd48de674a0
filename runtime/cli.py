"""Helpers shared by the thin ``main(argv) -> int`` entry points."""

from __future__ import annotations

import logging
import sys
from typing import Callable, Sequence

from kws.runtime.errors import EXIT_INTERRUPTED, KwsError

logger = logging.getLogger(__name__)


def configure_logging(verbosity: int = 0) -> None:
    """Configure the root logger once, from ``main()`` (never at import).

    verbosity: -1 quiet (warnings), 0 info, 1+ debug.
    """
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr,
                        force=True)


def add_detection_arguments(parser, *, title: str):
    """The detector flags shared by ``kws-listen`` and ``kws-eval-stream`` (one argument group).

    ``--hop-ms`` defaults to 250; the others default to None, meaning the model JSON's
    ``detection`` values (see :meth:`kws.runtime.detector.DetectorConfig.from_meta`).
    """
    det = parser.add_argument_group(title)
    det.add_argument("--hop-ms", type=float, default=250.0, metavar="MS",
                     help="time between scored 1 s windows (default 250)")
    det.add_argument("--threshold", type=float, metavar="P", help="smoothed posterior needed to fire, 0..1")
    det.add_argument("--smoothing", type=int, metavar="K", help="average the last K windows")
    det.add_argument("--refractory-ms", type=float, metavar="MS",
                     help="after a detection nothing fires for this long")
    det.add_argument("--min-count", type=int, metavar="N",
                     help="consecutive windows above the threshold needed")
    return det


def run_main(prog: str, body: Callable[[Sequence[str] | None], int],
             argv: Sequence[str] | None = None) -> int:
    """Run a command body; turn :class:`KwsError` into one line on stderr and its exit code.

    ``KeyboardInterrupt`` that the body did not handle itself returns 130 without a traceback.
    """
    try:
        return body(argv)
    except KwsError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
