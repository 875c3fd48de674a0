#!/usr/bin/env python3
"""Export the seed's conv1d and spec2d and the edge dscnn as float and int8 .tflite, for kws-bench.

Weights are untrained (latency and memory do not depend on them), so no data is needed: the
int8 representative set is generated audio (:mod:`kws.train.synth`) passed through the runtime's
front-end (:func:`kws.runtime.features.compute_features`), exactly as export does with real clips.
Each ``NAME_{float32,int8}.tflite`` gets its sidecar JSON (labels, features, quantization,
architecture with the Keras-side MAC count), so ``kws-bench --models-dir`` can load it.

Usage::

    python scripts/make_bench_models.py                   # -> build/bench-models/ (git-ignored)
    python scripts/make_bench_models.py --models dscnn --out /tmp/bm
    kws-bench --models-dir build/bench-models --compare spec2d_float32

The seed conv1d float file is about 139 MB: keep it out of git (build/ is ignored).
Needs TensorFlow (the ``train`` extra); kws-bench itself does not.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from kws.runtime.cli import configure_logging, run_main  # noqa: E402
from kws.runtime.errors import KwsError  # noqa: E402
from kws.runtime.features import FeatureConfig, compute_features  # noqa: E402
from kws.runtime.interpreter import TfliteModel  # noqa: E402
from kws.runtime.labels import SEED_LABELS  # noqa: E402
from kws.runtime.meta import ModelMeta, file_sha256  # noqa: E402

logger = logging.getLogger("make_bench_models")

PROG = "make_bench_models.py"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "build" / "bench-models"
DEFAULT_MODELS = ("conv1d", "spec2d", "dscnn")


def features_for(name: str) -> FeatureConfig:
    """The default front-end of registry model ``name`` (its preset, as kws-train uses it)."""
    from kws.train.presets import feature_config
    from kws.train.nets import get_spec

    return feature_config(get_spec(name).features)


def representative(cfg: FeatureConfig, *, clips_per_label: int, seed: int) -> np.ndarray:
    """Features of generated clips of every label, float32 (n, *input_shape)."""
    from kws.train.synth import synthetic_dataset

    data = synthetic_dataset(clips_per_label=clips_per_label, n_speakers=4, seed=seed)
    return compute_features(np.asarray(data["wav_vals"], dtype=np.float32), cfg)


def _quant_section(path: Path, kind: str) -> dict[str, Any]:
    model = TfliteModel(path)
    return {"type": kind, "input": model.input_quant.to_dict(), "output": model.output_quant.to_dict()}


def export_one(name: str, out_dir: Path, *, clips_per_label: int, seed: int) -> list[Path]:
    """Build ``name`` with default knobs and write its float32 and int8 .tflite + JSON."""
    import keras
    import tensorflow as tf

    from kws.train.macs import count_macs
    from kws.train.nets import build_model, count_params, resolve_knobs

    keras.utils.set_random_seed(seed)
    cfg = features_for(name)
    model = build_model(name, input_shape=cfg.input_shape, n_classes=len(SEED_LABELS))
    architecture = {"name": name, "params": resolve_knobs(name), "macs": int(count_macs(model)),
                    "parameters": count_params(model)}
    logger.info("%s: input %s, %s parameters, %.3g M MACs (Keras)", name, cfg.input_shape,
                f"{architecture['parameters']:,}", architecture["macs"] / 1e6)
    rep = representative(cfg, clips_per_label=clips_per_label, seed=seed)
    written = []
    for kind in ("float32", "int8"):
        t0 = time.perf_counter()
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        if kind == "int8":
            def rep_gen():
                for item in rep:
                    yield [item[None]]

            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = rep_gen
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        try:
            blob = conv.convert()
        except Exception as exc:  # the converter raises many types; name the model
            raise KwsError(f"{name} {kind}: TFLite conversion failed ({str(exc).splitlines()[0]})",
                           exit_code=1) from None
        path = out_dir / f"{name}_{kind}.tflite"
        path.write_bytes(blob)
        meta = ModelMeta(SEED_LABELS, cfg, {
            "architecture": architecture,
            "quantization": _quant_section(path, kind),
            "source_model": f"untrained kws.train.nets.build_model({name!r}) seed {seed} "
                            "(scripts/make_bench_models.py; for latency only)",
            "sha256": file_sha256(path),
            "exported_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        })
        if kind == "int8":
            meta = meta.replace(representative={"source": "kws.train.synth (generated tones)",
                                                "n": int(len(rep))})
        meta.save(path.with_suffix(".json"))
        logger.info("wrote %s (%.1f MB) in %.0f s", path, path.stat().st_size / 1e6,
                    time.perf_counter() - t0)
        written.append(path)
    del model
    keras.backend.clear_session()
    return written


def _main(argv: Sequence[str] | None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(DEFAULT_OUT), help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS),
                   help=f"registry names, comma-separated (default {','.join(DEFAULT_MODELS)})")
    p.add_argument("--rep-clips-per-label", type=int, default=3,
                   help="generated clips per label for the int8 representative set (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-v", "--verbose", action="count", default=0)
    args = p.parse_args(argv)
    configure_logging(args.verbose)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    if not names:
        raise KwsError(f"--models {args.models!r}: expected registry names, e.g. conv1d,spec2d,dscnn")
    from kws.train.nets import get_spec

    for n in names:
        get_spec(n)  # unknown names list the valid ones
    if args.rep_clips_per_label < 1:
        raise KwsError(f"--rep-clips-per-label {args.rep_clips_per_label}: expected an integer >= 1")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for n in names:
        written += export_one(n, out_dir, clips_per_label=args.rep_clips_per_label, seed=args.seed)
    for path in written:
        print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
