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
