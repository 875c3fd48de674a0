"""``kws-data``: inspect an npz, build one from Speech Commands, fetch the seed's, make streams and demos.

Subcommands::

    kws-data inspect FILE.npz [--json]              clips per label, speakers, levels, clipping, duration
    kws-data from-folder DIR OUT.npz [options]      Google Speech Commands tree -> seed-schema npz
    kws-data fetch [--out DIR] [--url URL]          download the seed's speech_wav_8000.npz (resumes)
    kws-data stream ...                             a long labelled test stream (kws.train.streams)
    kws-data demo ...                               synthetic-voice demo data (kws.train.demo)
    kws-data tts-negatives --out NEG.npz ...        synthetic non-keyword words (kws.train.tts_negatives)

``stream``, ``demo`` and ``tts-negatives`` live in their own modules, imported only when they are run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import urllib.parse
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kws.runtime.cli import configure_logging, run_main
from kws.runtime.errors import EXIT_FAILURE, EXIT_OK, KwsError

logger = logging.getLogger(__name__)

PROG = "kws-data"
#: Subcommands implemented in other modules: name -> (module, one-line help).
PLUGINS = {
    "stream": ("kws.train.streams", "build a long labelled test stream (wav + truth JSON) from an npz"),
    "demo": ("kws.train.demo", "generate demo speech data with the installed text-to-speech voices"),
    "tts-negatives": ("kws.train.tts_negatives",
                      "speak many non-keyword words with the installed text-to-speech voices (unknown clips)"),
}
_CHUNK_ROWS = 1024


# ------------------------------------------------------------------------------------ inspect

def _dbfs(x: float) -> float:
    return 20.0 * math.log10(x) if x > 0 else -math.inf


def summarize(ds, *, progress: bool = False) -> dict[str, Any]:
    """Level and content statistics of a :class:`kws.train.data.Dataset`, computed in chunks.

    Levels are relative to full scale (1.0 float, 32768 int16). A clip "clips" when a sample sits at
    full scale: int16 -32768 or 32767, float ``abs(x) >= 32767/32768``.

    Returns
    -------
    dict (JSON-ready except for -inf levels of all-zero audio)
    """
    from tqdm import tqdm

    from kws.train.data import class_counts

    n = len(ds)
    peak = np.empty(n, np.float64)
    rms = np.empty(n, np.float64)
    clipped = np.empty(n, np.int64)
    full_scale = 32767.0 / 32768.0
    for start in tqdm(range(0, n, _CHUNK_ROWS), desc="inspect", unit="chunk", leave=False,
                      disable=not progress):
        stop = min(start + _CHUNK_ROWS, n)
        raw = ds.wav[start:stop]
        if raw.dtype == np.int16:
            clipped[start:stop] = ((raw == 32767) | (raw == -32768)).sum(axis=1)
        else:
            clipped[start:stop] = (np.abs(raw) >= full_scale).sum(axis=1)
        audio = ds.audio(slice(start, stop))
        peak[start:stop] = np.abs(audio).max(axis=1)
        rms[start:stop] = np.sqrt(np.mean(np.square(audio, dtype=np.float64), axis=1))

    nonzero = rms > 0
    counts = class_counts(ds)
    per_label = {}
    for i, name in enumerate(ds.label_names):
        sel = ds.labels == i
        spk = None if ds.speaker is None else int(len(np.unique(ds.speaker[sel])))
        sel_nz = sel & nonzero
        per_label[name] = {
            "clips": counts[name],
            "share": counts[name] / n,
            "speakers": spk,
            "rms_dbfs_median": _dbfs(float(np.median(rms[sel_nz]))) if sel_nz.any() else None,
            "clipped_clips": int((clipped[sel] > 0).sum()),
        }
    split_counts = None
    if ds.split is not None:
        su, sc = np.unique(ds.split, return_counts=True)
        split_counts = {str(s): int(c) for s, c in zip(su, sc)}
    storage = "memory-mapped" if isinstance(ds.wav, np.memmap) else "read into memory"
    return {
        "path": str(ds.path),
        "file_bytes": ds.path.stat().st_size,
        "dtype": str(ds.wav.dtype),
        "storage": storage,
        "clips": n,
        "window_samples": ds.window_samples,
        "sample_rate_hz": ds.sample_rate_hz,
        "duration_min": ds.duration_s / 60.0,
        "speakers": None if ds.speaker is None else int(len(np.unique(ds.speaker))),
        "split": split_counts,
        "peak_dbfs_max": _dbfs(float(peak.max())),
        "peak_dbfs_median": _dbfs(float(np.median(peak))),
        "clipped_clips": int((clipped > 0).sum()),
        "clipped_clip_fraction": float((clipped > 0).mean()),
        "clipped_sample_fraction": float(clipped.sum() / (n * ds.window_samples)),
        "rms_dbfs_median": _dbfs(float(np.median(rms[nonzero]))) if nonzero.any() else None,
        "rms_dbfs_p10": _dbfs(float(np.percentile(rms[nonzero], 10))) if nonzero.any() else None,
        "rms_dbfs_p90": _dbfs(float(np.percentile(rms[nonzero], 90))) if nonzero.any() else None,
        "all_zero_clips": int((~nonzero).sum()),
        "labels": per_label,
    }


def _fmt_db(x: float | None) -> str:
    return "n/a" if x is None else f"{round(x, 1) + 0.0:.1f}"  # + 0.0: no "-0.0"


def format_summary(s: dict[str, Any]) -> str:
    """The human-readable ``kws-data inspect`` report."""
    kind = "int16 PCM" if s["dtype"] == "int16" else f"{s['dtype']} in [-1, 1]"
    split = ("none" if s["split"] is None else
             ", ".join(f"{k} {v:,}" for k, v in sorted(s["split"].items(), key=lambda kv: -kv[1])))
    lines = [
        f"{s['path']}  ({s['file_bytes'] / 1e6:,.1f} MB, {s['storage']})",
        f"  clips       {s['clips']:,} x {s['window_samples']} samples, {kind}, {s['sample_rate_hz']} Hz",
        f"  duration    {s['duration_min']:,.1f} min",
        f"  speakers    {'no speaker array' if s['speakers'] is None else format(s['speakers'], ',')}",
        f"  split       {split}",
        f"  peak        max {_fmt_db(s['peak_dbfs_max'])} dBFS; "
        f"per-clip peak median {_fmt_db(s['peak_dbfs_median'])} dBFS",
        f"  clipping    {s['clipped_clips']:,} clips ({100 * s['clipped_clip_fraction']:.2f} %) reach full scale; "
        f"{100 * s['clipped_sample_fraction']:.4f} % of samples",
        f"  RMS         median {_fmt_db(s['rms_dbfs_median'])} dBFS (10th pct {_fmt_db(s['rms_dbfs_p10'])}, "
        f"90th pct {_fmt_db(s['rms_dbfs_p90'])}); {s['all_zero_clips']:,} all-zero clips",
        "",
        f"  {'label':<9}{'clips':>8}{'share':>8}{'speakers':>10}{'median RMS dBFS':>17}{'clipped':>9}",
    ]
    for name, row in s["labels"].items():
        spk = "-" if row["speakers"] is None else f"{row['speakers']:,}"
        lines.append(f"  {name:<9}{row['clips']:>8,}{100 * row['share']:>7.1f}%{spk:>10}"
                     f"{_fmt_db(row['rms_dbfs_median']):>17}{row['clipped_clips']:>9,}")
    return "\n".join(lines)


def _json_ready(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_ready(v) for k, v in obj.items()}
    return obj


def _cmd_inspect(args: argparse.Namespace) -> int:
    from kws.train.data import load_npz

    ds = load_npz(args.file, allow_pickle=args.allow_pickle)
    summary = summarize(ds, progress=not args.quiet and not args.json)
    if args.json:
        print(json.dumps(_json_ready(summary), indent=2))
    else:
        print(format_summary(summary))
    return EXIT_OK


# ------------------------------------------------------------------------------------ from-folder

def _cmd_from_folder(args: argparse.Namespace) -> int:
    from kws.runtime.labels import KEYWORDS
    from kws.train.data import load_npz
    from kws.train.speech_commands import build_from_folder

    keywords = tuple(k for part in args.keywords for k in part.split(",") if k) if args.keywords else KEYWORDS
    summary = build_from_folder(args.dir, args.out, keywords=keywords, silence_clips=args.silence_clips,
                                max_unknown=args.max_unknown, seed=args.seed, dtype=args.dtype,
                                compress=args.compress, force=args.force, progress=not args.quiet)
    load_npz(summary.out)  # the file we wrote must pass the loader's checks
    counts = ", ".join(f"{k} {v:,}" for k, v in sorted(summary.counts.items(), key=lambda kv: -kv[1]))
    rates = ", ".join(f"{r} Hz: {c:,}" for r, c in sorted(summary.resampled_from_hz.items()))
    print(f"wrote {summary.out}: {summary.n_clips:,} clips from {summary.n_words} word folders, "
          f"{summary.n_speakers:,} speakers (source wavs {rates})")
    print(f"  labels: {counts}")
    if summary.split_counts:
        print("  split: " + ", ".join(f"{k} {v:,}" for k, v in sorted(summary.split_counts.items())))
    if summary.skipped:
        print(f"  skipped folders: {', '.join(summary.skipped)}")
    return EXIT_OK


# ------------------------------------------------------------------------------------ fetch

def _cmd_fetch(args: argparse.Namespace) -> int:
    from kws.train import fetch as fetch_mod

    dest_dir = Path(args.out).expanduser() if args.out else fetch_mod.default_path().parent
    if args.name is not None:
        name = fetch_mod.check_name(args.name)
    else:
        url_name = Path(urllib.parse.urlsplit(args.url).path).name
        name = fetch_mod.check_name(url_name, what="--url's file name") if url_name else fetch_mod.SEED_NAME
    path = fetch_mod.fetch(args.url, dest_dir / name, timeout_s=args.timeout_s, force=args.force,
                           progress=not args.quiet)
    print(f"{path}  ({path.stat().st_size:,} bytes); check it with: kws-data inspect {path}")
    return EXIT_OK


# ------------------------------------------------------------------------------------ main

def _first_command(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def _build_parser(command: str | None, plugin=None) -> argparse.ArgumentParser:
    from kws.train.fetch import SEED_URL, default_path

    parser = argparse.ArgumentParser(prog=PROG, description="Data for keyword spotting: inspect, build, fetch.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings only, no progress bars")
    parser.add_argument("--allow-pickle", action="store_true", dest="allow_pickle_all",
                        help="allow object-dtype (pickled) arrays in the npz files a subcommand reads "
                             "(inspect, stream, demo); only for files you trust")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("inspect", help="clips per label, speakers, peak/RMS levels, clipping, duration",
                       description="Validate an npz and print what is in it.")
    p.add_argument("file", metavar="FILE.npz")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.add_argument("--allow-pickle", action="store_true",
                   help="allow object-dtype (pickled) arrays; only for a file you trust")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("from-folder", help="build an npz from a Google Speech Commands folder tree",
                       description="Resample a Speech Commands tree (v0.01/v0.02) to 8 kHz and write the seed's "
                                   "npz schema plus speaker, word and split arrays.")
    p.add_argument("dir", metavar="DIR", help="the unpacked Speech Commands folder")
    p.add_argument("out", metavar="OUT.npz")
    p.add_argument("--silence-clips", type=int, metavar="N",
                   help="silence clips to cut from _background_noise_ (default: mean clips per keyword)")
    p.add_argument("--max-unknown", type=int, metavar="N", help="keep at most N unknown clips (default: all)")
    p.add_argument("--keywords", nargs="+", metavar="WORD",
                   help="words that keep their label (default: all ten seed keywords); others become unknown")
    p.add_argument("--seed", type=int, default=0,
                   help="seed for silence crops and the unknown subsample, an integer >= 0 (default 0)")
    p.add_argument("--dtype", choices=("int16", "float32"), default="int16",
                   help="clip storage (default int16: half the size of the seed's float32)")
    p.add_argument("--compress", action="store_true", help="np.savez_compressed (smaller, not memory-mappable)")
    p.add_argument("--force", action="store_true", help="overwrite an existing OUT.npz")
    p.set_defaults(func=_cmd_from_folder)

    p = sub.add_parser("fetch", help="download the seed's speech_wav_8000.npz (about 1.6 GB, resumes)",
                       description=f"Download {SEED_URL} to {default_path().parent} (or --out), resuming a "
                                   ".part file and checking the size.")
    p.add_argument("--out", metavar="DIR", help=f"folder to put it in (default {default_path().parent})")
    p.add_argument("--url", default=SEED_URL, help="where to download from (default: the seed's address)")
    p.add_argument("--name", help="file name, without a folder (default: the URL's)")
    p.add_argument("--force", action="store_true", help="download again even if the file exists")
    p.add_argument("--timeout-s", type=float, default=30.0, help="network timeout in seconds, > 0 (default 30)")
    p.set_defaults(func=_cmd_fetch)

    for name, (_module_name, help_text) in PLUGINS.items():
        if name == command and plugin is not None:
            p = sub.add_parser(name, help=help_text,
                               description=(plugin.__doc__ or help_text).strip().split("\n")[0])
            plugin.add_arguments(p)
            p.set_defaults(func=plugin.run)
        else:  # listed in --help; its module is imported only when it runs
            sub.add_parser(name, help=help_text, add_help=False).set_defaults(func=None)
    return parser


def _main(argv: Sequence[str] | None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    command = _first_command(argv)
    plugin = None
    if command in PLUGINS:
        module_name = PLUGINS[command][0]
        try:
            plugin = importlib.import_module(module_name)
            plugin.add_arguments, plugin.run  # noqa: B018 - both must exist
        except (ImportError, AttributeError) as exc:
            raise KwsError(f"'{command}' is not available in this installation: cannot import {module_name} "
                           f"({exc.__class__.__name__}: {exc})", exit_code=EXIT_FAILURE) from None
    args = _build_parser(command, plugin).parse_args(argv)
    if hasattr(args, "allow_pickle"):  # `kws-data --allow-pickle CMD` as well as `kws-data CMD --allow-pickle`
        args.allow_pickle = args.allow_pickle or args.allow_pickle_all
    configure_logging(-1 if args.quiet else args.verbose)
    return int(args.func(args) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kws-data``."""
    import os
    import sys

    try:
        return run_main(PROG, _main, argv)
    except BrokenPipeError:  # `kws-data inspect ... | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
