"""Output files, the same way in every command: checked before any work, written atomically.

Every command that writes files (``kws-data``, ``kws-train``'s helpers, ``kws-export``,
``kws-bench``, ``kws-eval-stream --calibrate``, ``kws-quickstart``) goes through these, so the
rules and their messages are the same everywhere:

* an output is refused **before any work** if it has the wrong suffix, is a directory, lies in a
  folder that does not exist, is the file of an input (writing it would destroy the input), is
  named twice, or already exists without ``--force``;
* it is written to a hidden temporary file beside its target (``.NAME.PID.tmp``, so two runs do
  not share one) and renamed onto it only once everything to be written has been written; a
  failure removes the temporary files and leaves the targets as they were. A replaced file keeps
  its permission bits.

Renames happen one file at a time: a rename that fails half-way (a disk error between two of them)
can still leave some targets new and some old, but never one half-written.

Reading goes through :func:`read_json` where a JSON file is an input, so a missing, unreadable or
malformed one is named the same way by every command.

numpy only, like the rest of the runtime.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from kws.runtime.errors import DataError, KwsError

logger = logging.getLogger(__name__)

#: Seeds are handed to numpy's generators and to Keras, whose seeds are 32-bit.
MAX_SEED = 2**32 - 1


def check_seed(seed: Any, *, flag: str = "--seed") -> int:
    """``seed`` as an int when it is an integer in [0, 2**32); else a :class:`DataError`."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise DataError(f"{flag} {seed}: expected an integer in [0, 2**32)")
    return int(seed)


def check_output(path: str | Path, *, flag: str, force: bool, suffix: str | None = None,
                 make_folder: bool = False) -> Path:
    """Refuse an output path that cannot or may not be written; returns it as a Path.

    Parameters
    ----------
    path : the file to be written
    flag : the option that named it, for the message (``--out``; empty for a positional argument)
    force : an existing file may be replaced
    suffix : the expected suffix, lower case (``".wav"``), compared case-insensitively; None: any
    make_folder : the command creates a missing parent folder itself (so only a parent that is a
        file is refused); otherwise the folder must exist
    """
    path = Path(path)
    name = f"{flag} {path}" if flag else str(path)
    if suffix is not None and path.suffix.lower() != suffix:
        raise DataError(f"{name}: expected a {suffix} path")
    if path.is_dir():
        raise DataError(f"{name}: is a directory; expected a file name")
    parent = path.parent
    if make_folder:
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist (make it first)"
        raise DataError(f"{name}: folder {parent} {what}")
    if path.exists() and not force:
        raise DataError(f"{name}: exists; pass --force to overwrite it")
    return path


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_distinct(outputs: Mapping[str, Path], inputs: Mapping[str, Path | None]) -> None:
    """Refuse two outputs at one path, or an output at the path of an input (which it would overwrite).

    ``outputs`` and ``inputs`` map an option name (for the message) to its path; None inputs are skipped.
    """
    seen: list[tuple[str, Path]] = []
    for flag, path in outputs.items():
        for in_flag, in_path in inputs.items():
            if in_path is not None and _same_file(Path(path), Path(in_path)):
                raise DataError(f"{flag} {path}: is the {in_flag} file it reads; expected a new path "
                                f"(writing it would overwrite {in_flag})")
        for other_flag, other in seen:
            if _same_file(Path(path), other):
                raise DataError(f"{flag} {path}: is the same file as {other_flag} {other}; expected two "
                                "different paths")
        seen.append((flag, Path(path)))


def missing_folders(folder: str | Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    folder = Path(folder)
    return [f for f in (folder, *folder.parents) if not f.exists()]


def remove_empty_folders(folders: Sequence[Path]) -> None:
    """Remove those of ``folders`` (deepest first) that exist and are empty: folders a failed run made."""
    for folder in folders:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def temporary_path(path: Path) -> Path:
    """The hidden temporary file beside ``path`` that :func:`write_atomically` writes first."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _backup(path: Path) -> Path | None:
    """A hard link to ``path`` (None when there is no file there to keep)."""
    if not path.is_file():
        return None
    backup = path.with_name(f".{path.name}.{os.getpid()}.bak")
    if backup.exists():
        backup.unlink()
    try:
        os.link(path, backup)
    except OSError:          # a file system without hard links (FAT): a copy
        shutil.copy2(path, backup)
    return backup


def _roll_back(renamed: Sequence[Path], backups: Mapping[Path, Path | None]) -> None:
    """Put back what the renames in ``renamed`` replaced (best effort: a failure is logged)."""
    for path in renamed:
        backup = backups.get(path)
        try:
            if backup is not None:
                os.replace(backup, path)
            elif path.exists():
                path.unlink()
        except OSError as exc:
            logger.error("could not restore %s after a failed write (%s); it holds the new version", path,
                         exc.strerror or exc)


def write_atomically(writers: Sequence[tuple[Path, Callable[[Path], Any]]]) -> None:
    """Write files so that none is ever half-written.

    Each ``(path, write)`` pair: ``write(tmp)`` writes a temporary file beside ``path`` (in the
    format ``path`` asks for: the temporary name has another suffix); when all have been written
    they are renamed onto their paths. Missing parent folders are made first. If a write fails, the
    temporary files and the folders made for them are removed, and the paths are left as they were.
    If a rename fails after others succeeded (a file made read-only or a folder replaced meanwhile),
    those are rolled back from hard-linked backups of the files they replaced, so that a set of
    files that belong together (a stream and its truth) is never left half new and half old.

    Raises
    ------
    DataError
        A file cannot be written (permissions, a full disk); names the file and the reason.
    """
    staged: list[tuple[Path, Path]] = []
    made: list[Path] = []
    backups: dict[Path, Path | None] = {}   # target -> hard link to the file it replaces (None: no such file)
    renamed: list[Path] = []
    current = None
    done = False
    try:
        for current, write in writers:
            current = Path(current)
            made += [f for f in missing_folders(current.parent) if f not in made]
            current.parent.mkdir(parents=True, exist_ok=True)
            tmp = temporary_path(current)
            staged.append((current, tmp))
            write(tmp)
            if current.is_file():   # a replaced file keeps its permissions
                os.chmod(tmp, stat.S_IMODE(current.stat().st_mode))
        if len(staged) > 1:
            for current, _ in staged:
                backups[current] = _backup(current)
        for current, tmp in staged:
            os.replace(tmp, current)
            renamed.append(current)
        done = True
    except OSError as exc:
        if renamed:
            _roll_back(renamed, backups)
        raise DataError(f"cannot write {current}: {exc.strerror or exc}") from None
    finally:
        for _, tmp in staged:
            if tmp.exists():
                tmp.unlink()
        for backup in backups.values():
            if backup is not None and backup.exists():
                backup.unlink()
        if not done:
            remove_empty_folders(sorted(made, key=lambda f: len(f.parts), reverse=True))


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`write_atomically`); returns the path."""
    path = Path(path)
    write_atomically([(path, lambda tmp: tmp.write_text(text))])
    return path


def npz_writer(arrays: Mapping[str, np.ndarray], *, compress: bool = False) -> Callable[[Path], None]:
    """A ``write(tmp)`` for :func:`write_atomically` that stores ``arrays`` as an npz."""
    save = np.savez_compressed if compress else np.savez

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # given a path, numpy would append .npz to the temporary name
            save(fh, **arrays)

    return write


def save_npz(path: str | Path, arrays: Mapping[str, np.ndarray], *, compress: bool = False) -> Path:
    """``np.savez`` (or ``savez_compressed``) ``arrays`` to ``path`` atomically; returns the path."""
    path = Path(path)
    write_atomically([(path, npz_writer(arrays, compress=compress))])
    return path


__all__ = ["MAX_SEED", "check_seed", "check_output", "check_distinct", "missing_folders", "remove_empty_folders",
           "temporary_path", "write_atomically",
           "write_text_atomic", "npz_writer", "save_npz", "read_text", "read_json"]


def read_text(path: str | Path, *, what: str, error: type[KwsError] = DataError, missing_hint: str = "") -> str:
    """The UTF-8 text of the file at ``path``; ``error`` (one line naming ``what`` the file is,
    e.g. "truth file") when it is missing, a directory, unreadable or not UTF-8.
    ``missing_hint`` is added to the not-found message (how to make one)."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found{missing_hint}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory; expected a {what}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a {what} (not UTF-8 text)") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror or exc})") from None


def read_json(path: str | Path, *, what: str, error: type[KwsError] = DataError, missing_hint: str = "") -> Any:
    """The parsed JSON file at ``path``; ``error`` as :func:`read_text` raises it, or when the
    text is not valid JSON."""
    text = read_text(path, what=what, error=error, missing_hint=missing_hint)
    path = Path(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: {what} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
