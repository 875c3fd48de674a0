"""Download the seed's ``speech_wav_8000.npz`` (``kws-data fetch``), resumably, with urllib only.

The file (about 1.6 GB) goes to ``~/aiffel/speech_recognition/data/`` as in the seed tutorial,
or to ``--out DIR``. Bytes arrive in ``NAME.part`` beside it; a second run asks the server for
the rest with an HTTP ``Range`` header and appends. The finished file must have exactly the size
the server announced (``Content-Range`` total or ``Content-Length``) before ``.part`` is renamed.
"""

from __future__ import annotations

import http.client
import logging
import math
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from kws.runtime.errors import EXIT_FAILURE, KwsError
from kws.runtime.fileio import check_output, missing_folders, remove_empty_folders

logger = logging.getLogger(__name__)

SEED_URL = "https://aiffelstaticdev.blob.core.windows.net/dataset/speech_wav_8000.npz"
SEED_DIR = Path("~/aiffel/speech_recognition/data")
SEED_NAME = "speech_wav_8000.npz"
_CHUNK_BYTES = 1 << 20


class FetchError(KwsError):
    """A download that failed; exit code 1 (a runtime failure, not bad input)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=EXIT_FAILURE)


def default_path() -> Path:
    """``~/aiffel/speech_recognition/data/speech_wav_8000.npz`` (the seed's path)."""
    return SEED_DIR.expanduser() / SEED_NAME


def _total_from_content_range(value: str | None) -> int | None:
    m = re.match(r"bytes\s+(?:\d+-\d+|\*)/(\d+)", value or "")
    return int(m.group(1)) if m else None


def check_url(url: str) -> str:
    """``url`` when it is an http:// or https:// address with a host; else a KwsError."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise KwsError(f"--url {url}: expected an http:// or https:// address")
    return url


def check_name(name: str, *, what: str = "--name") -> str:
    """``name`` when it is a plain file name (no folder part, not ``.`` or ``..``); else a KwsError.

    ``what`` says where the name came from, for the message.
    """
    seps = {os.sep, "/", "\\"} | ({os.altsep} if os.altsep else set())
    if not name or name in (".", "..") or any(sep in name for sep in seps) or "\0" in name:
        raise KwsError(f"{what} {name!r}: expected a plain file name (no folder, no '..')")
    return name


def _check_dest(dest: Path) -> None:
    """Refuse a destination that is a directory, or whose nearest existing parent is not one (an
    existing file is fine: it is kept, or downloaded again with --force)."""
    check_output(dest, flag="", force=True, make_folder=True)


def _by_hand(url: str, dest: Path) -> str:
    return f"download {url} on a machine with a network and put it at {dest}"


def fetch(url: str = SEED_URL, dest: str | Path | None = None, *, timeout_s: float = 30.0,
          force: bool = False, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` (default :func:`default_path`), resuming a ``.part`` file.

    Parameters
    ----------
    url : the file to download (http:// or https://)
    dest : the final file path
    timeout_s : socket timeout in seconds for connecting and for each read (> 0)
    force : download again even when ``dest`` exists
    progress : show a tqdm bar on stderr

    Returns
    -------
    Path of the complete file.

    Raises
    ------
    KwsError
        Bad input (exit 2): a URL that is not http(s), a timeout that is not a positive number, a
        destination that is a folder or lies under a file.
    FetchError
        No network or server unreachable (the message says where to put the file by hand), an HTTP
        error, or a size that does not match what the server announced (``.part`` is kept to resume).
    """
    from tqdm import tqdm

    check_url(url)
    if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s > 0):
        raise KwsError(f"--timeout-s {timeout_s}: expected a number of seconds > 0")
    dest = Path(dest).expanduser() if dest is not None else default_path()
    _check_dest(dest)
    if dest.exists() and not force:
        logger.info("%s already exists (%d bytes); use --force to download it again", dest, dest.stat().st_size)
        return dest
    created = missing_folders(dest.parent)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KwsError(f"cannot create {dest.parent}: {exc.strerror}") from None
    part = dest.with_name(dest.name + ".part")
    if force and part.exists():
        part.unlink()
    have = part.stat().st_size if part.exists() else 0

    request = urllib.request.Request(url, headers={"User-Agent": "kws-edge-fetch/1"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            total = _total_from_content_range(exc.headers.get("Content-Range"))
            if total == have:  # the .part was already complete
                return _finish(part, dest, total)
            part.unlink()
            raise FetchError(f"{url}: the server refused to resume at byte {have} (HTTP 416); the partial file "
                             f"was removed, run kws-data fetch again") from None
        remove_empty_folders(created)
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}; {_by_hand(url, dest)}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        remove_empty_folders(created)
        raise FetchError(f"cannot reach {url} ({reason}); no network? {_by_hand(url, dest)}") from None

    with response:
        status = getattr(response, "status", 200)
        length = response.headers.get("Content-Length")
        if status == 206:
            total = _total_from_content_range(response.headers.get("Content-Range"))
            mode = "ab"
            logger.info("resuming %s at %d bytes", part, have)
        else:
            if have:
                logger.info("the server does not resume (HTTP %d); starting %s again", status, part)
            have = 0
            total = int(length) if length is not None else None
            mode = "wb"
        received = have
        try:
            with open(part, mode) as fh, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                              unit_divisor=1024, desc=dest.name, disable=not progress) as bar:
                while True:
                    chunk = response.read(_CHUNK_BYTES)
                    if not chunk:
                        break
                    fh.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except (OSError, socket.timeout, ConnectionError) as exc:
            raise FetchError(f"download of {url} broke off at {received} bytes ({exc}); run kws-data fetch again "
                             f"to resume from {part}") from None
        except http.client.HTTPException as exc:  # IncompleteRead: the connection closed early
            raise FetchError(f"download of {url} broke off at {received} bytes ({exc.__class__.__name__}); "
                             f"run kws-data fetch again to resume from {part}") from None
    if total is None:
        logger.warning("the server did not announce a size; cannot check %s", part)
        total = received
    return _finish(part, dest, total)


def _finish(part: Path, dest: Path, total: int) -> Path:
    size = part.stat().st_size
    if size != total:
        if size > total:
            part.unlink()
            raise FetchError(f"{part}: {size} bytes is more than the {total} the server announced; removed it, "
                             "run kws-data fetch again")
        raise FetchError(f"{part}: incomplete, {size} of {total} bytes; run kws-data fetch again to resume")
    os.replace(part, dest)
    if dest.suffix == ".npz" and not zipfile.is_zipfile(dest):
        logger.warning("%s has the announced size but is not a zip archive", dest)
    logger.info("wrote %s (%d bytes)", dest, total)
    return dest
