"""The toolkit's error type and the exit codes of its commands.

Every problem a user can cause (a bad file, a bad flag, a missing microphone) is raised as
:class:`KwsError` with a one-line message that names the bad value and what was expected.
Command-line entry points catch it (see :func:`kws.runtime.cli.run_main`) and print the
line instead of a traceback.

Exit codes shared by all ``kws-*`` commands:

====  ==========================================================================
0     success
1     a runtime failure: the audio device failed for good, a model failed to run
2     bad input: a bad flag, an unreadable or invalid file, a model/JSON mismatch
130   interrupted with Ctrl-C (after a clean summary)
====  ==========================================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class KwsError(Exception):
    """A user-facing error: one line, no traceback.

    Parameters
    ----------
    message : str
        One line that names the bad value and what was expected.
    exit_code : int
        The process exit code a command returns for it (default :data:`EXIT_BAD_INPUT`).
    """

    def __init__(self, message: str, *, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class DataError(KwsError):
    """An npz, wav or folder that cannot be used as it is."""


class ModelError(KwsError):
    """A model file or its sidecar JSON that is missing, corrupt or inconsistent."""


class AudioError(KwsError):
    """A microphone or audio stream that cannot be opened or read."""

    def __init__(self, message: str, *, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message, exit_code=exit_code)
