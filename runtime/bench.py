"""kws-bench: latency and footprint of .tflite keyword models, on the runtime alone.

For every model (default: all ``*.tflite`` in the shipped ``models/``, plus ``--model`` and
``--models-dir``) and every ``--threads`` count, it scores one-second windows the way the
runtime does (:func:`kws.runtime.features.compute_features` + :class:`TfliteModel.predict` +
softmax) and reports:

- per window: feature time, invoke time (quantize + ``invoke`` + dequantize + softmax) and their
  total, as median / p90 / p99 over ``--windows`` windows after ``--warmup`` windows;
- per ``--hop-ms``: the CPU share (process CPU time per second of audio, all threads) and the
  real-time factor (busy wall time per second of audio) of scoring a window every hop;
- the model file size, MACs per inference from the .tflite graph (:mod:`kws.runtime.tflite_graph`),
  the backend and whether XNNPACK is applied, and the peak resident memory (``ru_maxrss`` and
  ``VmHWM``) of a fresh process that loads the model and scores a few windows;
- once per run: the import time of the runtime (a fresh ``python -c "import ..."``) and the disk
  size of the installed runtime packages (numpy, the interpreter, sounddevice, and their
  dependencies).

Output (:mod:`kws.runtime.bench_report`): Markdown tables on stdout, a JSON file (``--json-out``, default ``bench.json``), and with
``--compare NAME`` the ratios of every model against that baseline. Nothing here imports
TensorFlow; timings are never asserted by tests.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import platform
import re
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kws.runtime.bench_report import TARGETS, compare_rows, evaluate_targets, render
from kws.runtime.cli import configure_logging, run_main
from kws.runtime.errors import EXIT_FAILURE, KwsError, ModelError
from kws.runtime.fileio import check_output, write_text_atomic
from kws.runtime.features import compute_features
from kws.runtime.interpreter import _MODULES, BACKENDS, MAX_THREADS, softmax
from kws.runtime.meta import load_sidecar
from kws.runtime.model import DEFAULT_MODEL_NAME, KwsModel
from kws.runtime.pipeline import hop_samples_for
from kws.runtime.tflite_graph import count_macs

logger = logging.getLogger(__name__)

PROG = "kws-bench"
SCHEMA = "kws-bench/1"

#: Distributions of the Pi runtime whose installed size is reported (plus their dependencies).
RUNTIME_DISTS = ("numpy", "sounddevice")
_BACKEND_DISTS = {"ai-edge-litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime",
                  "tensorflow": "tensorflow-cpu"}
#: The packages the issue names; the rest of the closure is reported beside them.
CORE_DISTS = ("numpy", "ai-edge-litert", "tflite-runtime", "sounddevice", "cffi", "pycparser")


# ----------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------
def _parse_list(text: str, *, name: str, kind: type) -> list:
    """``"1,2,4"`` -> ``[1, 2, 4]``; a bad item names the flag and what was expected."""
    items = [t.strip() for t in str(text).split(",")]
    if "" in items:
        items = []   # an empty entry ("250,,100") is a typo, not a list of two
    try:
        values = [kind(t) for t in items]
    except ValueError:
        values = []
    if not values or any(not (v > 0 and math.isfinite(v)) for v in values):
        what = "positive integers" if kind is int else "positive numbers"
        raise KwsError(f"{name} {text!r}: expected comma-separated {what}, e.g. "
                       f"{'1,2,4' if kind is int else '250,100'}")
    return list(dict.fromkeys(values))


def check_outputs(paths: Sequence[Path], *, out_dir: Path | None, force: bool) -> None:
    """Refuse, before anything is measured, outputs that cannot or may not be written
    (:func:`kws.runtime.fileio.check_output`; ``out_dir`` is made if missing)."""
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise KwsError(f"--out {out_dir}: is a file; expected a directory for bench.json and bench.md")
    for path in paths:
        check_output(path, flag="--out" if out_dir is not None else "--json-out", force=force, make_folder=True)


def stats_ms(samples_ns: np.ndarray) -> dict[str, float]:
    """median, p90, p99, mean, min and max of nanosecond samples, in milliseconds."""
    x = np.asarray(samples_ns, dtype=np.float64) / 1e6
    return {"median": float(np.median(x)), "p90": float(np.percentile(x, 90)),
            "p99": float(np.percentile(x, 99)), "mean": float(x.mean()), "min": float(x.min()),
            "max": float(x.max())}


def _vm_hwm_bytes() -> int | None:
    """Peak resident set (VmHWM) of this process from /proc/self/status, or None."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def _ru_maxrss_bytes() -> int:
    """Peak resident set from getrusage (KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def _peak_rss() -> dict[str, int | None]:
    return {"ru_maxrss_bytes": _ru_maxrss_bytes(), "vm_hwm_bytes": _vm_hwm_bytes()}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key = line.split(":", 1)[0].strip().lower()
            if key in ("model name", "hardware", "cpu model"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def blas_info() -> dict[str, Any]:
    """numpy's BLAS and the thread settings it reads at start-up.

    The mel filterbank is a matrix product, so a log-mel front-end calls BLAS every window;
    OpenBLAS then wakes its own threads (one per core, unless ``OPENBLAS_NUM_THREADS`` says
    otherwise), which spin between calls and, on a busy machine, wait for a free core.
    """
    info: dict[str, Any] = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info.update(name=blas.get("name"), version=blas.get("version"))
    except Exception:  # numpy < 1.26 or another layout: only the environment is known
        info.update(name=None, version=None)
    return info


def host_info() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    return {"machine": platform.machine(), "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
            "usable_cpus": usable, "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(),
            "numpy": np.__version__, "blas": blas_info(),
            "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def _test_audio(n_clips: int, n_samples: int, rng: np.random.Generator, *,
                sample_rate_hz: int = 8000) -> np.ndarray:
    """float32 windows (n_clips, n_samples) in [-1, 1]: noise with a tone burst each. Content
    does not change the cost of the features or of a fixed-graph model."""
    t = np.arange(n_samples, dtype=np.float32) / float(sample_rate_hz)
    clips = 0.02 * rng.standard_normal((n_clips, n_samples)).astype(np.float32)
    for clip in clips:
        start = int(rng.integers(0, max(1, n_samples // 2)))
        length = min(n_samples - start, n_samples // 3)
        freq = float(rng.uniform(200, 1200))
        clip[start:start + length] += 0.3 * np.sin(2 * np.pi * freq * t[:length]).astype(np.float32)
    return np.clip(clips, -1.0, 1.0)


# ----------------------------------------------------------------------------------------
# which models
# ----------------------------------------------------------------------------------------
def _shipped_models() -> list[Path]:
    from kws.models import MODELS_DIR

    return sorted(MODELS_DIR.glob("*.tflite"))


def collect_models(models: Sequence[str], models_dirs: Sequence[str], *,
                   shipped: bool = True) -> list[Path]:
    """The model files of a run, in order (shipped, --models-dir, --model), without duplicates."""
    paths: list[Path] = list(_shipped_models()) if shipped else []
    for d in models_dirs:
        folder = Path(d)
        if not folder.is_dir():
            raise ModelError(f"--models-dir {d}: not a directory")
        found = sorted(folder.glob("*.tflite"))
        if not found:
            raise ModelError(f"--models-dir {d}: holds no .tflite files")
        paths.extend(found)
    for m in models:
        path = Path(m)
        if path.is_dir():
            raise ModelError(f"--model {m}: is a directory; expected a .tflite file "
                             "(use --models-dir for a folder)")
        if not path.is_file():
            raise ModelError(f"--model {m}: model file not found (expected a .tflite file)")
        paths.append(path)
    unique: dict[Path, Path] = {}
    for p in paths:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def model_names(paths: Sequence[Path]) -> list[str]:
    """Short unique names: the file stem, with as many of its folders in front as it takes to tell
    it from the others (``models/model_int8``, ``runs/a/export/model_int8``, ``runs/b/export/model_int8``
    are ``models/model_int8``, ``a/export/model_int8`` and ``b/export/model_int8``)."""
    parts = [p.with_suffix("").parts[1 if p.is_absolute() else 0:] for p in paths]
    depth = [1] * len(paths)
    while True:
        names = ["/".join(pt[-d:]) for pt, d in zip(parts, depth)]
        clashing = [i for i, n in enumerate(names) if names.count(n) > 1 and depth[i] < len(parts[i])]
        if not clashing:
            return names
        for i in clashing:
            depth[i] += 1


def _find(name_or_path: str, paths: Sequence[Path], names: Sequence[str]) -> int | None:
    """Index of the model a --compare/--target-model value names (name, stem, file or path)."""
    for i, (p, n) in enumerate(zip(paths, names)):
        if name_or_path in (n, p.stem, p.name):
            return i
    candidate = Path(name_or_path)
    if candidate.exists():
        for i, p in enumerate(paths):
            if p.resolve() == candidate.resolve():
                return i
    return None


# ----------------------------------------------------------------------------------------
# measuring
# ----------------------------------------------------------------------------------------
#: Fewest timed windows (per hop: stream windows) a --budget-s may cut a measurement to.
MIN_BUDGET_WINDOWS = 30


def time_windows(model: KwsModel, clips: np.ndarray, *, windows: int, warmup: int,
                 budget_s: float = 0.0) -> dict[str, Any]:
    """Per-window feature, invoke and total times over ``windows`` windows after ``warmup``.

    Times are wall clock; ``total_cpu_ms`` is the process CPU time of each window (all
    interpreter threads), which a busy machine inflates far less than wall time.

    With ``budget_s`` > 0 timing stops early once that much wall time has gone into the timed
    windows (never below :data:`MIN_BUDGET_WINDOWS`); ``windows`` in the result is the count used.
    """
    cfg = model.features
    tflite = model.tflite
    n = warmup + windows
    feat = np.empty(n, dtype=np.int64)
    inv = np.empty(n, dtype=np.int64)
    cpu = np.empty(n, dtype=np.int64)
    clock, cpu_clock = time.perf_counter_ns, time.process_time_ns
    deadline = None
    for i in range(n):
        if i == warmup and budget_s > 0:
            deadline = clock() + int(budget_s * 1e9)
        elif deadline is not None and i - warmup >= MIN_BUDGET_WINDOWS and clock() > deadline:
            n = i
            break
        audio = clips[i % len(clips)]
        c0 = cpu_clock()
        t0 = clock()
        features = compute_features(audio, cfg)
        t1 = clock()
        softmax(tflite.predict(features))
        t2 = clock()
        cpu[i] = cpu_clock() - c0
        feat[i] = t1 - t0
        inv[i] = t2 - t1
    feat, inv, cpu = feat[warmup:n], inv[warmup:n], cpu[warmup:n]
    return {"windows": n - warmup, "warmup": warmup, "feature_ms": stats_ms(feat),
            "invoke_ms": stats_ms(inv), "total_ms": stats_ms(feat + inv),
            "total_cpu_ms": stats_ms(cpu)}


def stream_cost(model: KwsModel, stream: np.ndarray, *, hop_ms: float, windows: int,
                realtime: bool = False, budget_s: float = 0.0) -> dict[str, Any]:
    """CPU share and real-time factor of scoring a window every ``hop_ms`` of ``stream``.

    The windows are consecutive one-second slices ``hop_ms`` apart, scored back to back (or
    paced at the hop with ``realtime``). CPU time is the process's (all interpreter threads);
    both are divided by the audio time the windows advance, ``windows * hop_ms``. ``budget_s``
    stops early as in :func:`time_windows`.
    """
    cfg = model.features
    window = cfg.window_samples
    hop = hop_samples_for(hop_ms, cfg.sample_rate_hz, window_samples=window)
    needed = window + (windows - 1) * hop
    if len(stream) < needed:
        stream = np.resize(stream, needed)
    tflite = model.tflite
    busy_ns = 0
    cpu0 = time.process_time_ns()
    start = time.perf_counter_ns()
    done = windows
    for i in range(windows):
        if (budget_s > 0 and i >= MIN_BUDGET_WINDOWS
                and time.perf_counter_ns() - start > budget_s * 1e9):
            done = i
            break
        if realtime:
            due = start + int(i * hop_ms * 1e6)
            delay = due - time.perf_counter_ns()
            if delay > 0:
                time.sleep(delay / 1e9)
        t0 = time.perf_counter_ns()
        softmax(tflite.predict(compute_features(stream[i * hop:i * hop + window], cfg)))
        busy_ns += time.perf_counter_ns() - t0
    cpu_ns = time.process_time_ns() - cpu0
    audio_s = done * hop / cfg.sample_rate_hz
    return {"hop_ms": hop_ms, "windows": done, "audio_s": audio_s, "realtime": realtime,
            "cpu_ms_per_window": cpu_ns / 1e6 / done,
            "cpu_share": cpu_ns / 1e9 / audio_s,
            "real_time_factor": busy_ns / 1e9 / audio_s}


_PROBE = """
import json, sys
import numpy as np
from kws.runtime.bench import _peak_rss, _test_audio
from kws.runtime.errors import KwsError
from kws.runtime.model import KwsModel
from kws.runtime.interpreter import softmax
try:
    m = KwsModel(sys.argv[1], threads=int(sys.argv[2]), backend=sys.argv[4])
    clips = _test_audio(4, m.features.window_samples, np.random.default_rng(0))
    for i in range(int(sys.argv[3])):
        softmax(m.logits(clips[i % 4]))
except KwsError as exc:
    print(json.dumps({"error": str(exc), "exit_code": exc.exit_code}))
    sys.exit(0)
print(json.dumps(_peak_rss()))
"""


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def rss_probe(path: Path, *, threads: int, windows: int = 10, backend: str = "auto") -> dict[str, Any]:
    """Peak RSS of a fresh process that imports the runtime, loads ``path`` and scores windows.

    It also checks the model: a model that does not load raises its :class:`ModelError`.
    ``vm_hwm_bytes`` is the probe's own peak. ``ru_maxrss_bytes`` is not always: Linux carries
    the peak of the process that spawned it across ``exec``, which is why kws-bench runs the
    probes before it loads any model itself.
    """
    result = subprocess.run([sys.executable, "-c", _PROBE, str(path), str(threads), str(windows), backend],
                            capture_output=True, text=True, env=_subprocess_env())
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelError(f"{path}: the memory probe process failed ({tail})",
                         exit_code=EXIT_FAILURE)
    peak = json.loads(lines[-1])
    if "error" in peak:
        raise ModelError(peak["error"], exit_code=int(peak.get("exit_code", 2)))
    return {"threads": threads, "windows": windows, **peak}


def _first_backend(requested: str) -> str:
    """The backend ``auto`` picks, found without importing it (importing the tensorflow
    fallback would cost this process hundreds of MB)."""
    if requested != "auto":
        return requested
    for name in BACKENDS:
        if importlib.util.find_spec(_MODULES[name].split(".")[0]) is not None:
            return name
    raise ModelError("no TFLite interpreter is installed: pip install ai-edge-litert "
                     "(or tflite-runtime on 32-bit Raspberry Pi OS)")


def runtime_import_time(backend: str, *, repeats: int = 3) -> dict[str, Any]:
    """Import time of the runtime in fresh processes (median over ``repeats``)."""
    module = _MODULES.get(backend, "ai_edge_litert.interpreter")
    code = ("import time; t0 = time.perf_counter()\n"
            f"import kws.runtime.model, kws.runtime.features, {module}\n"
            "t1 = time.perf_counter()\n"
            "from kws.runtime.bench import _peak_rss; import json\n"
            "print(json.dumps({'import_s': t1 - t0, **_peak_rss()}))")
    imports, processes, rss = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env=_subprocess_env())
        wall = time.perf_counter() - t0
        if result.returncode != 0:
            tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise KwsError(f"importing the runtime ({module}) failed: {tail}",
                           exit_code=EXIT_FAILURE)
        data = json.loads(result.stdout.strip().splitlines()[-1])
        imports.append(data["import_s"])
        processes.append(wall)
        rss.append(data["vm_hwm_bytes"] or data["ru_maxrss_bytes"])
    return {"modules": ["kws.runtime.model", "kws.runtime.features", module], "repeats": repeats,
            "import_s": float(np.median(imports)), "first_import_s": imports[0],
            "process_s": float(np.median(processes)),
            "peak_rss_bytes_after_import": int(np.median(rss))}


# ----------------------------------------------------------------------------------------
# installed footprint
# ----------------------------------------------------------------------------------------
def _req_name(requirement: str) -> tuple[str, bool] | None:
    """(name, has a marker) of a dependency; None for an extras-only one."""
    spec, _, marker = requirement.partition(";")
    if "extra" in marker:
        return None
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    return (match.group(1), bool(marker.strip())) if match else None


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dir_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def _dist_bytes(dist: importlib.metadata.Distribution) -> tuple[int, list[str]]:
    """Disk size of the top-level folders and modules a distribution installed (pycache included)."""
    tops: set[Path] = set()
    base = Path(dist.locate_file(""))
    for f in dist.files or []:
        parts = Path(f).parts
        if not parts or parts[0] == "..":
            continue
        tops.add(base / parts[0])
    return sum(_dir_bytes(p) for p in tops if p.exists()), sorted(p.name for p in tops)


def install_footprint(backend: str) -> dict[str, Any]:
    """Installed size of the Pi runtime: numpy, the interpreter, sounddevice and all they need."""
    roots = [*RUNTIME_DISTS, _BACKEND_DISTS.get(backend, backend)]
    seen: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    todo = [(name, False) for name in roots]
    while todo:
        name, conditional = todo.pop(0)
        key = _norm(name)
        if key in seen or key in missing:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            if not conditional:  # e.g. colorama only on Windows: not needed here
                missing.append(key)
            continue
        size, dirs = _dist_bytes(dist)
        seen[key] = {"version": dist.version, "bytes": size, "paths": dirs}
        todo.extend(req for req in (_req_name(r) for r in dist.requires or []) if req)
    core = sum(v["bytes"] for k, v in seen.items() if k in CORE_DISTS)
    total = sum(v["bytes"] for v in seen.values())
    return {"roots": roots, "packages": seen, "missing": missing, "core_bytes": core,
            "total_bytes": total, "target_mb": TARGETS["runtime_install_mb"]}


# ----------------------------------------------------------------------------------------
# one model
# ----------------------------------------------------------------------------------------


def bench_model(path: Path, name: str, *, threads: Sequence[int], windows: int, warmup: int,
                hops_ms: Sequence[float], stream_windows: int, realtime: bool,
                backend: str = "auto", budget_s: float = 0.0) -> dict[str, Any]:
    """Timings, MACs and facts of one model (see the module docstring); RSS is :func:`rss_probe`."""
    rng = np.random.default_rng(0)
    runs = []
    info: dict[str, Any] = {}
    for t in threads:
        logger.info("%s: %d threads, %d + %d windows", name, t, warmup, windows)
        model = KwsModel(path, threads=t, backend=backend)
        if not info:
            arch = model.meta.extra.get("architecture") or {}
            info = {
                "name": name, "path": str(path), "file_bytes": path.stat().st_size,
                "quantization": model.quantization_type,
                "input": {"shape": list(model.tflite.input_shape), **model.tflite.input_quant.to_dict()},
                "architecture": arch.get("name") if isinstance(arch, dict) else None,
                "features": model.features.to_dict(),
                "backend": model.backend, "xnnpack": model.tflite.xnnpack,
            }
            rate = model.features.sample_rate_hz
            clips = _test_audio(8, model.features.window_samples, rng, sample_rate_hz=rate)
            stream = _test_audio(1, model.features.window_samples * 4, rng, sample_rate_hz=rate)[0]
        try:
            run = {"threads": t, **time_windows(model, clips, windows=windows, warmup=warmup,
                                                budget_s=budget_s)}
            run["hops"] = [stream_cost(model, stream, hop_ms=h, windows=stream_windows,
                                       realtime=realtime, budget_s=budget_s) for h in hops_ms]
            if run["windows"] < windows:
                logger.warning("%s: --budget-s %g cut %d threads to %d timed windows", name,
                               budget_s, t, run["windows"])
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"{path}: the model failed to run ({str(exc).strip()[:200]})",
                             exit_code=EXIT_FAILURE) from None
        runs.append(run)
        del model
        gc.collect()
    info["macs"] = count_macs(path, backend=backend).to_dict()
    info["runs"] = runs
    return info


# ----------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=[], metavar="PATH",
                   help="a .tflite model with its JSON beside it (repeatable)")
    p.add_argument("--models-dir", action="append", default=[], metavar="DIR",
                   help="benchmark every .tflite in DIR (repeatable)")
    p.add_argument("--no-shipped", action="store_true",
                   help="leave out the shipped models in models/ (included by default)")
    p.add_argument("--threads", default="1,2,4", help="interpreter thread counts (default 1,2,4)")
    p.add_argument("--windows", type=int, default=500,
                   help="timed one-second windows per model and thread count (default 500)")
    p.add_argument("--warmup", type=int, default=20, help="untimed windows first (default 20)")
    p.add_argument("--hop-ms", default="250,100",
                   help="hops for CPU share and real-time factor (default 250,100)")
    p.add_argument("--stream-windows", type=int, default=200,
                   help="windows scored per hop for CPU share (default 200)")
    p.add_argument("--realtime", action="store_true",
                   help="pace the hop measurement in real time (slow: windows x hop seconds)")
    p.add_argument("--budget-s", type=float, default=0.0,
                   help="stop each timing loop after this many seconds (at least "
                        f"{MIN_BUDGET_WINDOWS} windows); for big models. Default 0: no limit")
    p.add_argument("--probe-windows", type=int, default=10,
                   help="windows the fresh memory-probe process scores (default 10)")
    p.add_argument("--backend", default="auto", help="interpreter backend (default auto)")
    p.add_argument("--compare", metavar="NAME_OR_PATH",
                   help="print ratios against this model (a name in the run, or a path to add)")
    p.add_argument("--target-model", metavar="NAME_OR_PATH",
                   help=f"model to check the targets against (default: the shipped {DEFAULT_MODEL_NAME})")
    p.add_argument("--json-out", metavar="PATH", help="JSON results (default bench.json, or OUT/bench.json)")
    p.add_argument("--out", metavar="DIR", help="write bench.json and bench.md into DIR")
    p.add_argument("--force", action="store_true",
                   help="replace an existing bench.json / bench.md (refused otherwise)")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("-q", "--quiet", action="store_true")
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(-1 if args.quiet else args.verbose)
    threads = _parse_list(args.threads, name="--threads", kind=int)
    if max(threads) > MAX_THREADS:
        raise KwsError(f"--threads {args.threads!r}: expected thread counts of at most {MAX_THREADS}")
    hops_ms = _parse_list(args.hop_ms, name="--hop-ms", kind=float)
    for flag, value, low in (("--windows", args.windows, 1), ("--warmup", args.warmup, 0),
                             ("--stream-windows", args.stream_windows, 1),
                             ("--probe-windows", args.probe_windows, 1)):
        if value < low:
            raise KwsError(f"{flag} {value}: expected an integer >= {low}")
    if not (math.isfinite(args.budget_s) and args.budget_s >= 0):
        raise KwsError(f"--budget-s {args.budget_s}: expected a finite number of seconds >= 0")
    if args.windows < 500:
        logger.warning("--windows %d is below 500: p99 rests on few samples", args.windows)

    extra = list(args.model)
    if args.compare and Path(args.compare).suffix == ".tflite":
        extra.append(args.compare)
    paths = collect_models(extra, args.models_dir, shipped=not args.no_shipped)
    if not paths:
        raise ModelError("no models to benchmark: models/ holds no .tflite; pass --model PATH.tflite "
                         "or --models-dir DIR")
    names = model_names(paths)
    baseline = None
    if args.compare:
        idx = _find(args.compare, paths, names)
        if idx is None:
            raise KwsError(f"--compare {args.compare}: not a model in this run (one of: "
                           f"{', '.join(names)}, or a .tflite path)")
        baseline = names[idx]
    target_idx = _find(args.target_model or DEFAULT_MODEL_NAME, paths, names)
    if args.target_model and target_idx is None:
        raise KwsError(f"--target-model {args.target_model}: not a model in this run "
                       f"(one of: {', '.join(names)})")

    json_out = Path(args.json_out) if args.json_out else (
        Path(args.out) / "bench.json" if args.out else Path("bench.json"))
    outputs = [json_out] + ([Path(args.out) / "bench.md"] if args.out else [])
    check_outputs(outputs, out_dir=Path(args.out) if args.out else None, force=args.force)

    host = host_info()
    if "openblas" in str(host["blas"].get("name") or "").lower() and not host["blas"]["OPENBLAS_NUM_THREADS"]:
        logger.warning("numpy uses OpenBLAS with its default threads: a mel front-end's matrix product "
                       "wakes them every window, which costs CPU and, on a busy machine, latency; "
                       "OPENBLAS_NUM_THREADS=1 kws-bench ... measures the single-threaded front-end")
    # Fresh processes first, while this one is small (see rss_probe): import time, then one
    # memory probe per model, which also refuses a missing, corrupt or JSON-less model early.
    import_time = runtime_import_time(_first_backend(args.backend))
    for path in paths:   # every hop must suit every model before anything is timed
        if not path.is_file():
            raise ModelError(f"{path}: model file not found (expected a .tflite file)")
        cfg = load_sidecar(path).features
        for hop_ms in hops_ms:
            hop_samples_for(hop_ms, cfg.sample_rate_hz, window_samples=cfg.window_samples)
    probes = []
    for path in paths:
        probes.append(rss_probe(path, threads=threads[0], windows=args.probe_windows,
                                backend=args.backend))
    models = []
    for path, name, probe in zip(paths, names, probes):
        models.append(bench_model(path, name, threads=threads, windows=args.windows,
                                  warmup=args.warmup, hops_ms=hops_ms,
                                  stream_windows=args.stream_windows, realtime=args.realtime,
                                  backend=args.backend, budget_s=args.budget_s))
        models[-1]["peak_rss"] = probe
    backend = models[0]["backend"]
    dist = _BACKEND_DISTS.get(backend, backend)
    result: dict[str, Any] = {
        "format": SCHEMA,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": [PROG, *(argv if argv is not None else sys.argv[1:])],
        "host": host,
        "settings": {"threads": threads, "windows": args.windows, "warmup": args.warmup,
                     "hop_ms": hops_ms, "stream_windows": args.stream_windows,
                     "realtime": args.realtime, "probe_windows": args.probe_windows,
                     "budget_s": args.budget_s,
                     "probe_threads": threads[0]},
        "runtime": {"backend": backend, "backend_version": _dist_version(dist),
                    "import": import_time,
                    "install": install_footprint(backend)},
        "models": models,
        "bench_process_peak_rss": _peak_rss(),
    }
    result["host"]["load_avg_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    target_name = names[target_idx] if target_idx is not None else None
    result["targets"] = evaluate_targets(result, target_name)
    if baseline:
        result["compare"] = {"baseline": baseline, "rows": compare_rows(result, baseline)}

    text = render(result)
    contents = [json.dumps(result, indent=2) + "\n"] + ([text + "\n"] if args.out else [])
    for path, content in zip(outputs, contents):
        write_text_atomic(path, content)
    logger.info("wrote %s", json_out)
    try:
        print(text, flush=True)
    except BrokenPipeError:  # kws-bench | head: the JSON is written; stay quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(PROG, _main, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
