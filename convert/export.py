"""``kws-export`` / ``python convert/export.py``: Keras model -> TFLite float32, dynamic, int8.

Usage::

    python convert/export.py --int8       # newest runs/*/ of kws-train, its npz -> models/
    python convert/export.py --model runs/dscnn --data data.npz --int8          # -> models/
    kws-export --keras m.keras --features m.json --data data.npz --int8 --dynamic --out out/

Writes ``model_float32.tflite`` (always), ``model_dynamic.tflite`` (``--dynamic``: int8 weights,
float activations) and ``model_int8.tflite`` (``--int8``: full integer, ``TFLITE_BUILTINS_INT8``,
int8 input and output), each with its sidecar JSON (:mod:`kws.runtime.meta`), plus
``parity.json`` and ``parity.md`` (:mod:`kws.convert.parity`) measured on the TEST split that
kws-train held out (re-derived with :func:`kws.train.data.split_dataset` and ``model.json``'s
``split`` settings). The int8 representative set is drawn from the TRAINING split
(:mod:`kws.convert.representative`). Existing files are never overwritten without ``--force``.

Conversion uses ``TFLiteConverter.from_keras_model`` (a concrete function traced from a loaded
Keras 3 model can lose its variables).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import shutil
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from kws.convert.parity import PARITY_JSON, PARITY_MD, format_markdown, measure_parity, write_parity
from kws.convert.quantize_check import check_full_integer, converter_error
from kws.convert.representative import (DEFAULT_REP_SAMPLES, RepresentativeSet,
                                        build_representative_set)
from kws.runtime.cli import configure_logging, run_main
from kws.runtime.errors import DataError, KwsError, ModelError
from kws.runtime.features import FeatureConfig
from kws.runtime.fileio import check_seed, read_json
from kws.runtime.interpreter import MAX_THREADS, TfliteModel
from kws.runtime.labels import SEED_LABELS
from kws.runtime.meta import FORMAT, ModelMeta, file_sha256, sidecar_path

logger = logging.getLogger(__name__)

KINDS = ("float32", "dynamic", "int8")
FILE_NAMES = {kind: f"model_{kind}.tflite" for kind in KINDS}

#: Default ``--input-percentile`` per front-end (docs/export.md has the measurements that chose
#: them). 100 = plain min/max calibration of the input tensor.
DEFAULT_INPUT_PERCENTILE = {"waveform": 100.0, "stft-log": 100.0, "stft-pcen": 100.0, "stft-linear": 99.0}


def input_kind(config: FeatureConfig) -> str:
    """``waveform``, ``stft-log``, ``stft-pcen`` or ``stft-linear``: the key of :data:`DEFAULT_INPUT_PERCENTILE`."""
    if config.kind == "waveform":
        return "waveform"
    if config.pcen:
        return "stft-pcen"
    return "stft-log" if config.log else "stft-linear"


def default_input_percentile(config: FeatureConfig) -> float:
    return DEFAULT_INPUT_PERCENTILE[input_kind(config)]

#: Keys of a source model.json that an export replaces.
_EXPORT_KEYS = ("quantization", "source_model", "sha256", "exported_utc", "parity")


# ---------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------
@dataclass
class Source:
    """The Keras model to export and its JSON."""

    model: Any                 # keras.Model, logits out
    meta: ModelMeta
    keras_path: Path | None    # None for a model passed in memory


def _read_features_json(path: Path) -> ModelMeta:
    """A kws-model/1 JSON, or ``{"features": {...}, "labels": [...]}``, or a bare FeatureConfig."""
    data = read_json(path, what="feature JSON", error=ModelError)
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object with feature settings")
    if "format" in data:
        return ModelMeta.from_dict(data, source=str(path))
    if "features" in data:  # a model JSON without "format": keep its other keys
        body = {**data, "format": FORMAT, "labels": data.get("labels", list(SEED_LABELS))}
    else:  # a bare FeatureConfig dict; the labels are the seed's
        body = {"format": FORMAT, "labels": list(SEED_LABELS), "features": data}
    return ModelMeta.from_dict(body, source=str(path))


def _register_custom_layers() -> None:
    """Import the project's network code so its custom Keras layers can be deserialized."""
    try:
        import kws.train.nets  # noqa: F401
    except ImportError as exc:
        logger.debug("kws.train.nets not importable (%s); loading without its layers", exc)


def load_keras(path: Path):
    import keras

    if not path.is_file():
        raise ModelError(f"{path}: Keras model file not found")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):   # keras would say "file not found"
        raise ModelError(f"{path}: not a .keras model (expected the zip archive that keras Model.save or "
                         "kws-train writes)")
    _register_custom_layers()
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # keras raises many types for a bad file
        text = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip()) or type(exc).__name__
        raise ModelError(f"{path}: cannot load the Keras model ({text[:400]})") from None


def check_model_fits(model, meta: ModelMeta, *, name: str = "model") -> None:
    """The Keras model's input/output shapes must match the JSON's features and labels."""
    in_shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    if in_shape is not None and tuple(in_shape) != tuple(meta.features.input_shape):
        raise ModelError(f"{name}: takes input {in_shape}, but its feature JSON gives "
                         f"{meta.features.input_shape} ({meta.features.kind})")
    out_shape = tuple(model.outputs[0].shape[1:]) if getattr(model, "outputs", None) else None
    if out_shape is not None and out_shape[-1] != len(meta.labels):
        raise ModelError(f"{name}: outputs {out_shape[-1]} classes, but its JSON lists "
                         f"{len(meta.labels)} labels")


#: Where kws-train writes by default (``runs/MODEL``); searched when no source model is given.
RUNS_DIR = Path("runs")


def latest_run(runs_dir: Path = RUNS_DIR) -> Path:
    """The kws-train folder under ``runs_dir`` with the newest ``model.keras`` (and a model.json)."""
    found = [p.parent for p in runs_dir.glob("*/model.keras") if (p.parent / "model.json").is_file()]
    if not found:
        raise KwsError(f"give --model DIR (kws-train output), or --keras FILE.keras with --features "
                       f"FILE.json (no kws-train output with model.keras and model.json under {runs_dir}/)")
    return max(found, key=lambda d: (d / "model.keras").stat().st_mtime)


def load_source(*, model_dir: Path | None = None, keras_path: Path | None = None,
                features_path: Path | None = None) -> Source:
    """Load ``DIR/model.keras`` + ``DIR/model.json``, or a .keras file plus a feature JSON."""
    if model_dir is not None:
        if not model_dir.is_dir():
            raise ModelError(f"--model {model_dir}: not a directory (expected kws-train's output "
                             "with model.keras and model.json)")
        keras_path = model_dir / "model.keras"
        meta = ModelMeta.load(model_dir / "model.json")
    else:
        if keras_path is None or features_path is None:
            raise KwsError("give --model DIR (kws-train output), or --keras FILE.keras with "
                           "--features FILE.json")
        meta = _read_features_json(features_path)
    model = load_keras(keras_path)
    check_model_fits(model, meta, name=str(keras_path))
    return Source(model, meta, keras_path)


def _npz_header(path: Path) -> tuple[tuple[int, ...] | None, int | None]:
    """(wav_vals shape, sample_rate_hz scalar) read cheaply from the npz; (None, None) if unreadable."""
    shape = rate = None
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "wav_vals.npy" in names:
                with zf.open("wav_vals.npy") as fh:
                    version = np.lib.format.read_magic(fh)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape = tuple(int(d) for d in read(fh)[0])
            if "sample_rate_hz.npy" in names:
                with zf.open("sample_rate_hz.npy") as fh:
                    value = np.lib.format.read_array(fh, allow_pickle=False)
                if value.size == 1:
                    rate = int(value.reshape(()))
    except (OSError, ValueError, zipfile.BadZipFile, KeyError):
        return None, None
    return shape, rate


def load_data(path: Path, config: FeatureConfig, *, model_name: str = "the model"):
    """Load the npz with :func:`kws.train.data.load_npz`, refusing a rate/window mismatch."""
    from kws.train.data import load_npz

    shape, rate = _npz_header(path)
    if rate is not None and rate != config.sample_rate_hz:
        raise DataError(f"{path}: sample_rate_hz={rate}, but {model_name}'s feature JSON expects "
                        f"{config.sample_rate_hz} Hz")
    if shape is not None and len(shape) >= 2 and shape[1] != config.window_samples:
        raise DataError(f"{path}: clips of {shape[1]} samples, but {model_name}'s feature JSON "
                        f"expects windows of {config.window_samples} samples "
                        f"({config.window_seconds:g} s at {config.sample_rate_hz} Hz)")
    return load_npz(path, sample_rate_hz=config.sample_rate_hz, window_samples=config.window_samples)


def map_labels(ds, labels: Sequence[str]) -> np.ndarray:
    """Each clip's class as an index into the model's ``labels`` (matched by name)."""
    index = {name: i for i, name in enumerate(labels)}
    present = np.unique(ds.labels)
    unknown = [ds.label_names[i] for i in present if ds.label_names[i] not in index]
    if unknown:
        raise DataError(f"{ds.path}: label(s) {unknown} are not among the model's labels {list(labels)}")
    lut = np.array([index.get(name, -1) for name in ds.label_names], dtype=np.int64)
    return lut[ds.labels]


def split_settings(meta: ModelMeta) -> dict[str, Any]:
    """seed/val_fraction/test_fraction (or seed/folds/fold)/by from model.json's ``split`` (kws-train's
    defaults else): ``split_dataset``'s keyword arguments."""
    from kws.train.data import SPLIT_METHODS

    from kws.runtime.meta import split_seed_and_fractions

    raw = meta.extra.get("split") or {}
    by = raw.get("by", "auto")
    return {**split_seed_and_fractions(raw), "by": by if by in SPLIT_METHODS else "auto"}


# ---------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def _captured_output(sink: list[str]):
    """Capture what the converter prints (Python and C++, stdout and stderr) into ``sink``."""
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as tmp:
        saved = (os.dup(1), os.dup(2))
        py_out, py_err = io.StringIO(), io.StringIO()
        try:
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
            with contextlib.redirect_stdout(py_out), contextlib.redirect_stderr(py_err):
                yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            tmp.seek(0)
            sink.append(tmp.read().decode("utf-8", "replace") + py_out.getvalue() + py_err.getvalue())


def convert(model, kind: str, rep: RepresentativeSet | None = None) -> bytes:
    """The .tflite bytes of ``model`` for ``kind`` in :data:`KINDS`. Raises :class:`ModelError`."""
    import tensorflow as tf

    if kind not in KINDS:
        raise KwsError(f"export kind {kind!r} is not one of {', '.join(KINDS)}")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if kind in ("dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind == "int8":
        if rep is None or len(rep) == 0:
            raise KwsError("int8 export needs a representative set")
        converter.representative_dataset = rep.generator
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    log: list[str] = []
    try:
        with _captured_output(log), warnings.catch_warnings():
            # "Statistics for quantized inputs were expected": the int8 input's range comes
            # from the representative set, which is what we want.
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            flatbuffer = converter.convert()
    except Exception as exc:  # ConverterError, ValueError, RuntimeError from MLIR
        logger.debug("converter output:\n%s", "".join(log))
        raise converter_error(kind, exc, "".join(log)) from None
    logger.debug("converter output (%s):\n%s", kind, "".join(log))
    return flatbuffer


def _write_model(flatbuffer: bytes, path: Path, kind: str) -> None:
    """Write atomically; an int8 model is checked to be full-integer before it is kept."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(flatbuffer)
    try:
        if kind == "int8":
            check_full_integer(tmp)
            loaded = TfliteModel(tmp)
            if loaded.input_quant.dtype != "int8" or loaded.output_quant.dtype != "int8":
                raise ModelError(f"int8 export: got {loaded.input_quant.dtype} input and "
                                 f"{loaded.output_quant.dtype} output, expected int8 both")
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()


def quantization_info(path: Path, kind: str) -> dict[str, Any]:
    """``{type, input{dtype,scale,zero_point}, output{...}}`` read back from the .tflite file."""
    model = TfliteModel(path)
    return {"type": kind, "input": model.input_quant.to_dict(), "output": model.output_quant.to_dict()}


# ---------------------------------------------------------------------------------------
# The export
# ---------------------------------------------------------------------------------------
@dataclass
class ExportResult:
    paths: dict[str, Path]                 # kind -> .tflite
    parity: dict[str, Any] | None
    parity_files: tuple[Path, Path] | None
    representative: RepresentativeSet | None = None
    messages: list[str] = field(default_factory=list)


def planned_files(out_dir: Path, kinds: Sequence[str]) -> list[Path]:
    files = []
    for kind in kinds:
        files += [out_dir / FILE_NAMES[kind], sidecar_path(out_dir / FILE_NAMES[kind])]
    return files + [out_dir / PARITY_JSON, out_dir / PARITY_MD]


def export(source: Source, *, data_path: Path, out_dir: Path, kinds: Sequence[str] = ("float32",),
           rep_samples: int = DEFAULT_REP_SAMPLES, input_percentile: float | None = None,
           seed: int = 0, threads: int | None = None, force: bool = False) -> ExportResult:
    """Convert ``source`` to every kind in ``kinds`` and measure parity on the test split.

    Parameters
    ----------
    source : the Keras model and its JSON (:func:`load_source`)
    data_path : npz for the representative set (training split) and parity (test split)
    out_dir : output folder (created)
    kinds : subset of :data:`KINDS`; "float32" is always exported
    rep_samples : representative clips (int8 only)
    input_percentile : int8 input range from this two-sided percentile of the representative
        features; None = :func:`default_input_percentile` of the front-end
    seed : seed of the representative sampling
    threads : interpreter threads for parity
    force : overwrite existing files
    """
    kinds = ["float32"] + [k for k in KINDS if k in kinds and k != "float32"]
    meta = source.meta
    cfg = meta.features
    out_dir = Path(out_dir)
    existing = [p for p in planned_files(out_dir, kinds) if p.exists()]
    if existing and not force:
        raise KwsError(f"{existing[0]} exists ({len(existing)} output file(s) in {out_dir} would "
                       "be overwritten); pass --force to overwrite, or --out DIR")
    name = source.keras_path.name if source.keras_path else "the model"
    ds = load_data(Path(data_path), cfg, model_name=name)
    y = map_labels(ds, meta.labels)

    from kws.train.data import split_dataset

    settings = split_settings(meta)
    split = split_dataset(ds, **settings)
    split_info = {**(meta.extra.get("split") or {}), **{k: v for k, v in settings.items() if k != "by"},
                  "by": split.by, "sizes": split.sizes()}
    logger.info("split of %s (%s, seed %d): %s", ds.path.name, split.by, settings["seed"], split.sizes())

    rep = None
    if "int8" in kinds:
        percentile = default_input_percentile(cfg) if input_percentile is None else float(input_percentile)
        if input_kind(cfg) == "stft-linear":
            logger.warning("int8 with linear (not log) %s magnitudes: most of the input's int8 steps go "
                           "to the loudest bins and quiet detail rounds to zero (docs/export.md measured "
                           "it); train with log compression (kws-train --log) for int8",
                           "mel" if cfg.mel_bands else "STFT")
        rep = build_representative_set(ds.audio, y, split.train, label_names=meta.labels, config=cfg,
                                       n_samples=rep_samples, seed=seed, input_percentile=percentile)

    # Convert everything first: a model that cannot be converted leaves no files behind.
    flatbuffers = {}
    for kind in kinds:
        logger.info("converting to %s", kind)
        flatbuffers[kind] = convert(source.model, kind, rep if kind == "int8" else None)
    # Everything is written into a staging folder inside out_dir and moved into place only once
    # parity has run: a failure anywhere leaves out_dir as it was (with --force, the old export).
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir))
    published = False
    try:
        staged, report = _write_all(source, flatbuffers, stage, kinds=kinds, rep=rep, split=split,
                                    split_info=split_info, ds=ds, y=y, threads=threads,
                                    test_fraction=settings.get("test_fraction"))
        try:
            for path in staged:
                os.replace(path, out_dir / path.name)
            for path in planned_files(out_dir, kinds):
                if path.name not in {p.name for p in staged}:
                    path.unlink(missing_ok=True)   # a stale parity report of an earlier export
        except OSError as exc:
            raise ModelError(f"{out_dir}: cannot move the exported files into place "
                             f"({exc.strerror or exc}: {getattr(exc, 'filename', '')})") from None
        published = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and not published:
            shutil.rmtree(out_dir, ignore_errors=True)   # made by this run, and holds nothing of the user's
    paths = {kind: out_dir / FILE_NAMES[kind] for kind in kinds}
    parity_files = None if report is None else (out_dir / PARITY_JSON, out_dir / PARITY_MD)
    return ExportResult(paths, report, parity_files, rep)


def _write_all(source: Source, flatbuffers: Mapping[str, bytes], stage: Path, *, kinds: Sequence[str], rep,
               split, split_info: dict, ds, y: np.ndarray, threads: int | None,
               test_fraction: float | None) -> tuple[list[Path], dict | None]:
    """Write the models, their JSON and the parity report into ``stage``; returns the files and the
    parity report (None when the test split is empty)."""
    from kws.runtime.meta import trained_parts

    meta, cfg = source.meta, source.meta.features
    paths: dict[str, Path] = {}
    for kind in kinds:
        paths[kind] = stage / FILE_NAMES[kind]
        _write_model(flatbuffers[kind], paths[kind], kind)

    exported_utc = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    base_extra = {k: v for k, v in meta.extra.items() if k not in _EXPORT_KEYS}
    metas: dict[str, ModelMeta] = {}
    for kind, path in paths.items():
        quant = quantization_info(path, kind)
        if kind == "int8" and rep is not None:
            quant["representative"] = rep.to_dict()
        metas[kind] = ModelMeta(meta.labels, cfg, {
            **base_extra,
            "quantization": quant,
            "source_model": str(source.keras_path) if source.keras_path else None,
            "sha256": file_sha256(path),
            "exported_utc": exported_utc,
            "split": split_info,
        })
        metas[kind].save(sidecar_path(path))
    files = [p for path in paths.values() for p in (path, sidecar_path(path))]

    test_idx = np.asarray(split.test, dtype=np.int64)
    if len(test_idx) == 0:
        logger.warning("the test split is empty (test_fraction=%s); no parity measured", test_fraction)
        return files, None
    trained_on = trained_parts(split_info)
    held_out = "test" not in trained_on
    if not held_out:
        logger.warning("the model was trained on the test speakers too (split.trained_on %s): parity's "
                       "agreement still measures quantization, but its accuracies are not held-out",
                       list(trained_on))
    report = measure_parity(source.model, paths, ds.audio, y, test_idx, labels=meta.labels,
                            config=cfg, threads=threads,
                            info={"data": str(ds.path), "split": "test", "split_by": split.by,
                                  "held_out": held_out})
    files += list(write_parity(report, stage))
    for kind, path in paths.items():
        metas[kind].replace(parity=report).save(sidecar_path(path))
    return files, report


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------
def _default_out() -> Path:
    from kws.models import MODELS_DIR

    return MODELS_DIR


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="kws-export",
        description="Export a trained Keras keyword model to TFLite (float32, optionally dynamic-range "
                    "and full-integer int8) with sidecar JSONs, and measure float-vs-int8 parity on "
                    "the test split.")
    src = parser.add_argument_group("source model")
    src.add_argument("--model", type=Path, metavar="DIR",
                     help="kws-train output folder (model.keras + model.json); default: the one under "
                          "runs/ with the newest model.keras")
    src.add_argument("--keras", type=Path, metavar="FILE.keras", help="a Keras model file ...")
    src.add_argument("--features", type=Path, metavar="FILE.json",
                     help="... with its model JSON or feature-settings JSON")
    parser.add_argument("--data", type=Path, metavar="FILE.npz",
                        help="npz for the representative set (training split) and parity (test split); "
                             "default: the data path recorded in model.json")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="output folder (default: the repository's models/)")
    parser.add_argument("--int8", action="store_true",
                        help="also write model_int8.tflite: full integer, int8 input and output")
    parser.add_argument("--dynamic", action="store_true",
                        help="also write model_dynamic.tflite: int8 weights, float activations")
    parser.add_argument("--rep-samples", type=int, default=DEFAULT_REP_SAMPLES, metavar="N",
                        help=f"representative clips for int8 calibration (default {DEFAULT_REP_SAMPLES})")
    parser.add_argument("--input-percentile", type=float, default=None, metavar="P",
                        help="set the int8 input range from the (100-P)th..Pth percentiles of the "
                             "representative features instead of their min/max (default: "
                             + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_INPUT_PERCENTILE.items()) + ")")
    parser.add_argument("--seed", type=int, default=0, help="representative sampling seed")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads for parity")
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    configure_logging(-1 if args.quiet else args.verbose)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    if args.model is not None and (args.keras is not None or args.features is not None):
        raise KwsError("give either --model DIR or --keras FILE with --features FILE, not both")
    if args.model is None and args.keras is None and args.features is None:
        args.model = latest_run()
        print(f"exporting the newest kws-train output: {args.model} (--model DIR to choose)")
    if args.rep_samples < 1:
        raise KwsError(f"--rep-samples {args.rep_samples}: expected a positive number of clips")
    if args.input_percentile is not None and not 50 < args.input_percentile <= 100:
        raise KwsError(f"--input-percentile {args.input_percentile}: expected a number in (50, 100]")
    if args.input_percentile is not None and not args.int8:
        raise KwsError(f"--input-percentile {args.input_percentile}: sets the int8 input range; it needs --int8")
    check_seed(args.seed)
    if args.threads is not None and not 1 <= args.threads <= MAX_THREADS:
        raise KwsError(f"--threads {args.threads}: expected a positive integer, at most {MAX_THREADS}")
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise KwsError(f"--out {args.out}: is a file; expected a directory for the exported models")
    source = load_source(model_dir=args.model, keras_path=args.keras, features_path=args.features)
    data = args.data
    if data is None:
        recorded = (source.meta.extra.get("data") or {}).get("path")
        if not recorded:
            raise KwsError("--data FILE.npz is required (model.json records no data path)")
        data = Path(recorded)
        if not data.is_file():
            raise KwsError(f"--data not given, and the npz its model.json records ({data}) is not on this machine; "
                           "give --data FILE.npz (the training npz: the representative set and the parity "
                           "clips come from it)")
        logger.info("using the data recorded in model.json: %s", data)
    kinds = ["float32"] + (["dynamic"] if args.dynamic else []) + (["int8"] if args.int8 else [])
    result = export(source, data_path=data, out_dir=args.out or _default_out(), kinds=kinds,
                    rep_samples=args.rep_samples, input_percentile=args.input_percentile,
                    seed=args.seed, threads=args.threads, force=args.force)
    if result.representative is not None:
        print(result.representative.describe())
    for kind, path in result.paths.items():
        print(f"wrote {path} ({path.stat().st_size} bytes) and {sidecar_path(path).name}")
    if result.parity is not None:
        print(f"wrote {result.parity_files[0]} and {result.parity_files[1].name}")
        print()
        print(format_markdown(result.parity), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("kws-export", _main, argv)


if __name__ == "__main__":
    sys.exit(main())
