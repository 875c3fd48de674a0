"""kws-quickstart: the whole job end to end, in a few minutes, on an embedded default.

Steps (each one is the real command, called in-process through its ``main(argv)``)::

    1. data     a small labelled npz:
                  --data FILE.npz, or the seed's npz at ~/aiffel/speech_recognition/data/
                  (a per-label sample of it), else speech from the installed TTS engines
                  (kws-data demo: espeak-ng, flite, festival, mbrola), else tone "words"
                  (kws.train.synth) when no engine is installed
    2. train    kws-train: a small dscnn, a few epochs
    3. export   kws-export --int8: float32 + int8 TFLite with the parity report
    4. bench    kws-bench: latency, CPU share, memory of the exported models (few windows)
    5. listen   kws-listen --wav on a demo stream (generated with held-out TTS voices, or the
                committed models/demo_stream.wav), detections scored against its truth; the
                shipped default model (models/model_int8.tflite) runs on it too

Everything goes under ``--out`` (default ``runs/quickstart``); ``summary.json`` holds the numbers
printed at the end. See docs/quickstart.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from kws.runtime.cli import configure_logging, run_main
from kws.runtime.errors import DataError, KwsError
from kws.runtime.fileio import check_seed, missing_folders, remove_empty_folders, save_npz
from kws.runtime.labels import SEED_LABELS

logger = logging.getLogger(__name__)
PROG = "kws-quickstart"

#: Subfolders and files the quickstart writes under --out (and removes with --force).
_OUTPUTS = ("data", "train", "export", "bench", "listen", "summary.json")


@dataclass(frozen=True)
class Preset:
    """Sizes of one quickstart run."""

    tts_clips_per_label: int
    tts_voices: int
    synth_clips_per_label: int
    npz_clips_per_label: int      # per-label sample of a given/seed npz (0: all of it)
    npz_epochs: int               # epochs on such a sample (more clips per epoch than the TTS set)
    stream_seconds: float
    epochs: int
    batch_size: int
    lr: float
    width: int
    depth: int
    rep_samples: int
    bench_windows: int
    bench_threads: str


PRESETS = {
    "default": Preset(tts_clips_per_label=120, tts_voices=60, synth_clips_per_label=60, npz_clips_per_label=200,
                      npz_epochs=12, stream_seconds=36.0, epochs=24, batch_size=16, lr=1e-2, width=32, depth=2,
                      rep_samples=200, bench_windows=200, bench_threads="1,2"),
    "quick": Preset(tts_clips_per_label=8, tts_voices=12, synth_clips_per_label=8, npz_clips_per_label=8,
                    npz_epochs=1, stream_seconds=12.0, epochs=1, batch_size=16, lr=1e-2, width=8, depth=1,
                    rep_samples=24, bench_windows=20, bench_threads="1"),
}

#: kws-train flags besides the preset's sizes. Small sets and few steps: a cosine schedule from a
#: high rate, and no SpecAugment masks (measured here: 42% -> 59% -> 70% test accuracy on the
#: 720-clip TTS set, see docs/quickstart.md).
TRAIN_FLAGS = ("--lr-schedule", "cosine", "--no-spec-augment")


def seed_npz_path() -> Path:
    """Where the seed tutorial keeps its npz (``~/aiffel/speech_recognition/data/speech_wav_8000.npz``)."""
    from kws.train.fetch import default_path

    return default_path()


def committed_stream() -> tuple[Path, Path]:
    """The demo stream shipped in models/ and its truth JSON."""
    from kws.models import MODELS_DIR

    return Path(MODELS_DIR) / "demo_stream.wav", Path(MODELS_DIR) / "demo_stream.truth.json"


# ------------------------------------------------------------------------------------------
# Step 1: data
# ------------------------------------------------------------------------------------------
@dataclass
class DataChoice:
    """What step 1 produced."""

    npz: Path
    source: str                    # "given npz", "seed npz", "tts", "synthetic tones"
    description: str
    n_clips: int
    stream: Path | None = None     # demo stream and truth (None: not made yet)
    truth: Path | None = None
    stream_source: str = ""
    notes: list[str] = field(default_factory=list)


def sample_npz(src: Path, dst: Path, *, clips_per_label: int, seed: int = 0) -> int:
    """Write up to ``clips_per_label`` clips of each label of ``src`` to ``dst`` (float32 wav_vals).

    ``speaker`` and ``split`` arrays are kept; returns the number of clips written.
    """
    from kws.train.data import load_npz

    ds = load_npz(src)
    rng = np.random.default_rng(seed)
    idx = []
    for c in range(len(ds.label_names)):
        members = np.flatnonzero(ds.labels == c)
        if clips_per_label and len(members) > clips_per_label:
            members = rng.choice(members, clips_per_label, replace=False)
        idx.append(members)
    idx = np.sort(np.concatenate(idx))
    arrays: dict[str, np.ndarray] = {
        "wav_vals": ds.audio(idx).astype(np.float32),
        "label_vals": np.asarray(ds.label_names)[ds.labels[idx]][:, None],
    }
    if ds.speaker is not None:
        arrays["speaker"] = np.asarray(ds.speaker)[idx]
    if ds.split is not None:
        arrays["split"] = np.asarray(ds.split)[idx]
    save_npz(dst, arrays)
    return len(idx)


def check_data_file(path: Path, *, what: str = "--data") -> Path:
    """Refuse a data file that does not exist or is not a file (before anything is written)."""
    if path.is_dir():
        raise DataError(f"{what} {path}: is a directory; expected an .npz file like the seed's speech_wav_8000.npz")
    if not path.is_file():
        raise DataError(f"{what} {path}: file not found (expected an npz like the seed's speech_wav_8000.npz)")
    return path


def prepare_data(out: Path, preset: Preset, *, data: Path | None = None, use_seed: bool = True,
                 use_tts: bool = True, seed: int = 0, tts_path: str | None = None) -> DataChoice:
    """Step 1: choose or make the labelled npz, and the demo stream when TTS is available.

    ``tts_path`` is the program search path for the TTS engines (None: $PATH; "" finds none).
    Writes under ``out/data``; when this step fails, a ``data`` folder it made and left empty is
    removed again.
    """
    given = data
    if given is None and use_seed and seed_npz_path().is_file():
        given = seed_npz_path()
    if given is not None:
        check_data_file(Path(given))
    folder = out / "data"
    made = missing_folders(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return _make_data(folder, preset, given=given, source="given npz" if data is not None else "seed npz",
                          use_tts=use_tts, seed=seed, tts_path=tts_path)
    except BaseException:
        remove_empty_folders(made)
        raise


def _make_data(folder: Path, preset: Preset, *, given: Path | None, source: str, use_tts: bool, seed: int,
               tts_path: str | None) -> DataChoice:
    """The body of :func:`prepare_data`: writes the npz (and stream) into ``folder``."""
    from kws.train import demo, tts

    if given is not None:
        dst = folder / "sample.npz"
        n = sample_npz(Path(given), dst, clips_per_label=preset.npz_clips_per_label, seed=seed)
        what = (f"{n} clips sampled from {given} ({preset.npz_clips_per_label} per label at most)"
                if preset.npz_clips_per_label else f"all {n} clips of {given}")
        choice = DataChoice(dst, source, what, n)
        if use_tts:
            with contextlib.suppress(tts.NoEngineError):
                res = demo.generate(stream=folder / "demo_stream.wav", truth=folder / "demo_stream.truth.json",
                                    stream_seconds=preset.stream_seconds, seed=seed, force=True, progress=False,
                                    path=tts_path)
                choice.stream, choice.truth = res.stream, res.truth
                choice.stream_source = "tts (" + ", ".join(v.speaker for v in res.stream_voices) + ")"
        return choice
    if use_tts:
        try:
            res = demo.generate(out=folder / "demo.npz", stream=folder / "demo_stream.wav",
                                truth=folder / "demo_stream.truth.json", clips_per_label=preset.tts_clips_per_label,
                                n_voices=preset.tts_voices, stream_seconds=preset.stream_seconds, seed=seed,
                                force=True, progress=sys.stderr.isatty(), path=tts_path)
            engines = sorted({v.engine for v in res.train_voices})
            what = (f"{res.n_clips} clips spoken by {len(res.train_voices)} synthetic voices "
                    f"({', '.join(engines)}); engines found:\n    " + res.description.replace("\n", "\n    "))
            return DataChoice(res.npz, "tts", what, res.n_clips, res.stream, res.truth,
                              "tts, held-out voices (" + ", ".join(v.speaker for v in res.stream_voices) + ")")
        except tts.NoEngineError as exc:
            note = f"{exc}; using generated tones instead of speech"
            print(f"{PROG}: {note}")
            notes = [note]
    else:
        notes = ["text-to-speech switched off (--no-tts); using generated tones"]
    from kws.train.synth import synthetic_dataset

    dst = save_npz(folder / "synth.npz", synthetic_dataset(clips_per_label=preset.synth_clips_per_label, seed=seed))
    n = preset.synth_clips_per_label * len(SEED_LABELS)
    return DataChoice(dst, "synthetic tones",
                      f"{n} clips of tone 'words' (kws.train.synth; not speech: a model trained on them "
                      "detects nothing in speech)", n, notes=notes)


# ------------------------------------------------------------------------------------------
# Running the other commands
# ------------------------------------------------------------------------------------------
def _call(name: str, main: Callable[[Sequence[str] | None], int], argv: list[str], *,
          capture: bool = False) -> str:
    """Run ``main(argv)`` in-process; a non-zero exit is a KwsError naming the command."""
    print(f"\n$ {name} {' '.join(argv)}", flush=True)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf) if capture else contextlib.nullcontext():
        code = main(argv)
    if code != 0:
        if capture:
            sys.stdout.write(buf.getvalue())
        raise KwsError(f"{name} failed with exit code {code} (its error is printed above)",
                       exit_code=code if code in (1, 2) else 1)
    return buf.getvalue()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _listen(model: Path, stream: Path, truth_path: Path, tag: str) -> dict[str, Any]:
    """Step 5: kws-listen --wav --json on the stream, the detections matched to the truth."""
    from kws.runtime.listen import main as listen_main
    from kws.runtime.meta import load_sidecar
    from kws.runtime.scoring import load_truth, match_detections, max_delay_s

    text = _call("kws-listen", listen_main, ["--model", str(model), "--wav", str(stream), "--json"], capture=True)
    dets = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            d = json.loads(line)
            if isinstance(d, dict) and {"time_s", "label", "score"} <= d.keys():
                dets.append(argparse.Namespace(**d))
    truth = load_truth(truth_path)
    meta = load_sidecar(model)
    det_cfg = meta.detection
    score = match_detections(dets, truth, max_delay_s=max_delay_s(
        window_s=meta.features.window_samples / meta.features.sample_rate_hz, hop_s=0.25,
        smoothing_windows=int(det_cfg["smoothing_windows"])))
    print(f"detections of {tag} on {stream.name} ({truth.duration_s:.0f} s, {score.n_events} keywords):")
    if not dets:
        print("  (none)")
    for d, outcome in zip(dets, score.detection_outcomes):
        print(f"  {d.time_s:7.2f} s  {d.label:<6} {d.score:.2f}  {outcome.replace('_', ' ')}")
    print(f"  -> {score.hits}/{score.n_events} keywords detected with the right label, "
          f"{score.wrong_keyword} wrong keyword, {score.false_accepts} false accepts "
          f"(threshold {det_cfg['threshold']:g})")
    return {"model": str(model), "stream": str(stream), "threshold": det_cfg["threshold"],
            "detections": [vars(d) for d in dets], **score.to_dict()}


# ------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/quickstart"), help="work folder (default runs/quickstart)")
    p.add_argument("--force", action="store_true", help="replace the results of an earlier run in --out")
    p.add_argument("--data", type=Path, metavar="FILE.npz",
                   help="train on (a per-label sample of) this npz instead of generated data")
    p.add_argument("--no-seed-data", action="store_true",
                   help="do not look for the seed's npz at ~/aiffel/speech_recognition/data/")
    p.add_argument("--no-tts", action="store_true", help="do not use text-to-speech: tone 'words' instead")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one epoch, few bench windows (tests)")
    p.add_argument("--epochs", type=int, help="training epochs (default 24 on generated data, 12 on an npz; --quick 1)")
    p.add_argument("--clips-per-label", type=int,
                   help="generated clips per label (default 120 TTS / 60 tones), or the per-label sample of "
                        "an npz (default 200; 0: all of it)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed for data, training and sampling, an integer >= 0 (default 0)")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("-q", "--quiet", action="store_true")
    return p


def _check_inputs(args: argparse.Namespace) -> None:
    """Refuse bad --seed, --out and --data before anything in --out is removed or written.

    --out must be a folder (or not exist yet); --data must be a file; and the npz the run reads
    (--data, or the seed's npz) must not lie in an earlier run's outputs that --force removes.
    """
    check_seed(args.seed)
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise KwsError(f"--out {out}: is a file, not a directory; expected a directory for the quickstart's results")
    data, what = args.data, "--data"
    if data is None and not args.no_seed_data and seed_npz_path().is_file():
        data, what = seed_npz_path(), "the seed's npz"
    if data is None:
        return
    check_data_file(Path(data), what=what)
    for name in _OUTPUTS:
        target = out / name
        if target.exists() and (target.resolve() == Path(data).resolve()
                                or target.resolve() in Path(data).resolve().parents):
            raise KwsError(f"{what} {data}: lies in {target}, which an earlier run wrote and --force removes; "
                           "move it, or use another --out")
    if args.force and any((out / name).exists() for name in _OUTPUTS):
        from kws.train.data import load_npz

        load_npz(Path(data))   # an unreadable npz must not cost the earlier run's results


def _prepare_out(out: Path, force: bool) -> None:
    existing = [out / name for name in _OUTPUTS if (out / name).exists()]
    if existing and not force:
        raise KwsError(f"--out {out}: holds results of an earlier run ({existing[0].name}); "
                       "pass --force to replace them, or another --out")
    for path in existing:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _step(n: int, title: str) -> float:
    print(f"\n=== {n}/5 {title} " + "=" * max(3, 60 - len(title)), flush=True)
    return time.perf_counter()


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(-1 if args.quiet else args.verbose)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    base = PRESETS["quick" if args.quick else "default"]
    overrides: dict[str, Any] = {}
    if args.epochs is not None:
        if args.epochs < 1:
            raise KwsError(f"--epochs {args.epochs}: expected at least 1")
        overrides.update(epochs=args.epochs, npz_epochs=args.epochs)
    if args.clips_per_label is not None:
        if args.clips_per_label < 0:
            raise KwsError(f"--clips-per-label {args.clips_per_label}: expected 0 (all) or more")
        n = args.clips_per_label
        overrides["npz_clips_per_label"] = n
        if n:
            overrides.update(tts_clips_per_label=n, synth_clips_per_label=n)
    from dataclasses import replace

    preset = replace(base, **overrides)
    out: Path = args.out
    _check_inputs(args)
    made = missing_folders(out)
    _prepare_out(out, args.force)
    t_start = time.perf_counter()
    summary: dict[str, Any] = {"preset": "quick" if args.quick else "default", "settings": vars(preset),
                               "seed": args.seed, "steps": {}}

    # 1. data -----------------------------------------------------------------------------
    t0 = _step(1, "data: a small labelled npz")
    try:
        choice = prepare_data(out, preset, data=args.data, use_seed=not args.no_seed_data,
                              use_tts=not args.no_tts, seed=args.seed)
    except BaseException:
        remove_empty_folders(made)  # an --out this run made and left empty
        raise
    if choice.stream is None:
        choice.stream, choice.truth = committed_stream()
        choice.stream_source = "the committed models/demo_stream.wav (made by kws-data demo)"
    print(f"data ({choice.source}): {choice.npz}\n  {choice.description}")
    print(f"demo stream: {choice.stream} ({choice.stream_source})")
    summary["steps"]["data"] = {"npz": str(choice.npz), "source": choice.source, "description": choice.description,
                                "n_clips": choice.n_clips, "stream": str(choice.stream),
                                "stream_source": choice.stream_source, "notes": choice.notes,
                                "seconds": time.perf_counter() - t0}

    # 2. train ----------------------------------------------------------------------------
    from kws.train.trainer import main as train_main

    epochs = preset.npz_epochs if choice.source in ("given npz", "seed npz") else preset.epochs
    t0 = _step(2, f"train: a small dscnn for {epochs} epoch(s)")
    train_dir = out / "train"
    _call("kws-train", train_main, [
        "--data", str(choice.npz), "--model", "dscnn", "--width", str(preset.width), "--depth", str(preset.depth),
        "--epochs", str(epochs), "--batch-size", str(preset.batch_size), "--lr", str(preset.lr),
        *TRAIN_FLAGS, "--seed", str(args.seed), "--out", str(train_dir), "--force"])
    ev = _read_json(train_dir / "eval.json")
    meta = _read_json(train_dir / "model.json")
    arch = meta.get("architecture", {})
    summary["steps"]["train"] = {"dir": str(train_dir), "test_accuracy": ev.get("accuracy"),
                                 "n_test": ev.get("n"), "parameters": arch.get("parameters"),
                                 "macs": arch.get("macs"), "seconds": time.perf_counter() - t0}

    # 3. export ---------------------------------------------------------------------------
    from kws.convert.export import main as export_main

    t0 = _step(3, "export: float32 + int8 TFLite with the parity report")
    export_dir = out / "export"
    _call("kws-export", export_main, ["--model", str(train_dir), "--data", str(choice.npz), "--int8",
                                      "--rep-samples", str(preset.rep_samples), "--seed", str(args.seed),
                                      "--out", str(export_dir), "--force"])
    parity = _read_json(export_dir / "parity.json")
    models = parity.get("models", {})
    int8 = export_dir / "model_int8.tflite"
    summary["steps"]["export"] = {
        "dir": str(export_dir), "n_test": parity.get("n"),
        "accuracy": {k: models[k].get("accuracy") for k in sorted(models, key=lambda k: (k != "keras", k))},
        "int8_agreement": parity.get("agreement", {}).get("int8"),
        "int8_max_abs_logit_diff": parity.get("max_abs_logit_diff", {}).get("int8"),
        "int8_bytes": int8.stat().st_size if int8.is_file() else None,
        "seconds": time.perf_counter() - t0}

    # 4. bench ----------------------------------------------------------------------------
    from kws.runtime.bench import main as bench_main

    t0 = _step(4, "bench: latency and footprint of the exported models")
    bench_dir = out / "bench"
    _call("kws-bench", bench_main, [
        "--model", str(int8), "--model", str(export_dir / "model_float32.tflite"), "--no-shipped",
        "--threads", preset.bench_threads, "--windows", str(preset.bench_windows), "--warmup", "5",
        "--hop-ms", "250", "--stream-windows", str(max(20, preset.bench_windows // 2)), "--probe-windows", "5",
        "--target-model", str(int8), "--out", str(bench_dir), "-q"])
    bench = _read_json(bench_dir / "bench.json")
    rows = {}
    for m in bench.get("models", []):
        run1 = next((r for r in m.get("runs", []) if r.get("threads") == 1), {})
        hop = next((h for h in run1.get("hops", []) if h.get("hop_ms") == 250), {})
        peak = m.get("peak_rss") or {}
        rows[m.get("quantization", m.get("name"))] = {
            "total_ms_median_1_thread": (run1.get("total_ms") or {}).get("median"),
            "cpu_share_250ms_hop": hop.get("cpu_share"),
            "peak_rss_mb": (peak.get("vm_hwm_bytes") or peak.get("ru_maxrss_bytes") or 0) / 1e6 or None,
            "macs": (m.get("macs") or {}).get("total"), "file_bytes": m.get("file_bytes"),
            "backend": m.get("backend")}
    summary["steps"]["bench"] = {"dir": str(bench_dir), "windows": preset.bench_windows, "models": rows,
                                 "seconds": time.perf_counter() - t0}

    # 5. listen ---------------------------------------------------------------------------
    t0 = _step(5, "listen: the demo stream through kws-listen")
    listen = {"quickstart": _listen(int8, choice.stream, choice.truth, "the quickstart's int8 model")}
    from kws.runtime.model import default_model_path

    try:
        shipped = default_model_path()
    except KwsError as exc:
        shipped = None
        print(f"shipped default model: not available ({exc})")
    if shipped is not None and Path(shipped).is_file():
        print()
        listen["shipped"] = _listen(Path(shipped), choice.stream, choice.truth, "the shipped default model")
    summary["steps"]["listen"] = {**listen, "seconds": time.perf_counter() - t0}
    summary["total_seconds"] = time.perf_counter() - t_start
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(format_summary(summary))
    return 0


def _fmt(x: Any, kind: str = "") -> str:
    if x is None:
        return "-"
    if kind == "%":
        return f"{100 * x:.1f}%"
    if kind == "ms":
        return f"{x:.3f} ms" if x < 1 else f"{x:.2f} ms"
    if kind == "M":
        return f"{x / 1e6:.2f} M"
    return f"{x:g}" if isinstance(x, float) else str(x)


def format_summary(summary: dict[str, Any]) -> str:
    """The final summary: one block per step, with the numbers it produced."""
    s = summary["steps"]
    d, tr, ex, be, li = s["data"], s["train"], s["export"], s["bench"], s["listen"]
    lines = ["", "=== summary " + "=" * 56,
             f"1 data    {d['source']}: {d['n_clips']} clips -> {d['npz']}  ({d['seconds']:.0f} s)",
             f"2 train   dscnn, {_fmt(tr['parameters'])} parameters, {_fmt(tr['macs'], 'M')} MACs; "
             f"test accuracy {_fmt(tr['test_accuracy'], '%')} on {_fmt(tr['n_test'])} clips  ({tr['seconds']:.0f} s)",
             "3 export  accuracy " + ", ".join(f"{k} {_fmt(v, '%')}" for k, v in ex["accuracy"].items())
             + f"; int8 top-1 agreement {_fmt(ex['int8_agreement'], '%')}, max |logit diff| "
               f"{_fmt(ex['int8_max_abs_logit_diff'])}; int8 file {_fmt(ex['int8_bytes'])} bytes  "
               f"({ex['seconds']:.0f} s)"]
    for i, (q, r) in enumerate(be["models"].items()):
        lines.append(("4 bench   " if i == 0 else "          ")
                     + f"{q}: {_fmt(r['total_ms_median_1_thread'], 'ms')} per window (median, 1 thread), "
                     f"CPU {_fmt(r['cpu_share_250ms_hop'], '%')} at a 250 ms hop, peak RSS "
                     f"{_fmt(None if r['peak_rss_mb'] is None else round(r['peak_rss_mb'], 1))} MB"
                     + (f"  ({be['seconds']:.0f} s)" if i == 0 else ""))
    for i, key in enumerate(k for k in ("quickstart", "shipped") if k in li):
        r = li[key]
        lines.append(("5 listen  " if i == 0 else "          ")
                     + f"{key} model: {r['hits']}/{r['n_events']} keywords hit, {r['wrong_keyword']} wrong keyword, "
                     f"{r['false_accepts']} false accepts in {r['duration_s']:.0f} s")
    lines.append(f"total {summary['total_seconds']:.0f} s; numbers in {Path(d['npz']).parent.parent / 'summary.json'}")
    if d["notes"]:
        lines += [f"note: {n}" for n in d["notes"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(PROG, _main, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
