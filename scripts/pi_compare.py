#!/usr/bin/env python3
"""Helpers for ``scripts/pi-emulate``: make the inputs, dump raw outputs, compare two runs.

Subcommands (all paths explicit; nothing is read from the repository's data)::

    pi_compare.py make-inputs OUTDIR [--seed N]      # host: OUTDIR/stream.wav + OUTDIR/eval.npz
    pi_compare.py make-model OUTDIR [--seed N]       # host, needs TensorFlow: a tiny int8 model
    pi_compare.py raw MODEL NPZ OUTDIR [--inputs Q.npy]  # both sides: features, int8 in/outputs
    pi_compare.py compare-raw X86_DIR ARM_DIR        # interpreter exact, front-end within rounding
    pi_compare.py compare NAME X86_FILE ARM_FILE [--map X86_PATH=ARM_PATH]
                                                     # exit 0 identical, 1 with the first difference

``raw`` and ``compare`` import only numpy and ``kws.runtime`` (they run inside the arm64 root,
where TensorFlow is never installed). ``make-model`` imports TensorFlow lazily, on the host only.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np

#: Keys whose values are timings or host facts: they may differ between x86 and emulated arm64
#: without the outputs differing. Matched against the last key of a JSON path (case-insensitive).
#: Detection times (``time_s``), scores, labels and accuracies are never in this list; paths are
#: compared after mapping the x86 input folder onto the root's (``compare --map``).
VOLATILE_KEY = re.compile(
    r"(latency|elapsed|wall|_per_s(ec)?$|per_second|rtf|real_?time_factor|throughput|"
    r"^(mean|median|p\d+|max|min)_ms$|_ms_(mean|median|p\d+|max|min)$|cpu|threads?$|"
    r"^(host|hostname|platform|machine|python|python_version|backend_version|exported_utc|utc|"
    r"started_utc|finished_utc|timestamp|date)$)",
    re.IGNORECASE)

STREAM_SAMPLE_RATE_HZ = 16000  # the stream is written at 16 kHz, so kws-listen must resample


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------
def _stream_8k(*, seed: int, words: tuple[str, ...]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    from kws.train.synth import SAMPLE_RATE_HZ, synth_word

    rng = np.random.default_rng(seed)
    gap = int(1.5 * SAMPLE_RATE_HZ)
    total = gap * (len(words) + 1)
    audio = rng.normal(0.0, 0.005, total).astype(np.float32)
    truth = []
    for i, label in enumerate(words):
        word = synth_word(label, rng) * np.float32(0.8)
        start = gap * (i + 1) - len(word) // 2
        audio[start:start + len(word)] += word
        truth.append({"label": label, "start_s": start / SAMPLE_RATE_HZ})
    return np.clip(audio, -1.0, 1.0), truth


def _upsample_2x(audio: np.ndarray) -> np.ndarray:
    """8 kHz -> 16 kHz by an FFT (band-limited) interpolation, float32. Host-only, numpy only."""
    n = len(audio)
    spec = np.fft.rfft(audio.astype(np.float64))
    padded = np.zeros(n + 1, dtype=complex)
    padded[:len(spec)] = spec
    return (np.fft.irfft(padded, 2 * n) * 2.0).astype(np.float32)


def cmd_make_inputs(args: argparse.Namespace) -> int:
    from kws.runtime.audio_io import write_wav
    from kws.train.synth import write_synthetic_npz

    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    words = ("yes", "stop", "go", "unknown", "left", "on")
    audio_8k, truth = _stream_8k(seed=args.seed, words=words)
    write_wav(out / "stream.wav", _upsample_2x(audio_8k), STREAM_SAMPLE_RATE_HZ)
    (out / "stream_truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    write_synthetic_npz(out / "eval.npz", clips_per_label=args.clips_per_label, n_speakers=4,
                        seed=args.seed + 1)
    print(f"wrote {out / 'stream.wav'} ({len(audio_8k) / 8000:.1f} s at {STREAM_SAMPLE_RATE_HZ} Hz, "
          f"{len(words)} words) and {out / 'eval.npz'} ({args.clips_per_label} clips per label)")
    return 0


# --------------------------------------------------------------------------------------------
# a tiny int8 model (host, TensorFlow), used until the shipped model exists
# --------------------------------------------------------------------------------------------
def cmd_make_model(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from kws.convert.export import convert
    from kws.convert.representative import RepresentativeSet
    from kws.runtime.features import FeatureConfig, compute_features
    from kws.runtime.interpreter import TfliteModel
    from kws.runtime.labels import SEED_LABELS
    from kws.runtime.meta import ModelMeta, file_sha256
    from kws.train.synth import synthetic_dataset

    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = FeatureConfig(kind="stft", mel_bands=20, log=True)
    data = synthetic_dataset(clips_per_label=24, n_speakers=6, seed=args.seed)
    x = compute_features(data["wav_vals"], cfg)
    y = np.array([SEED_LABELS.index(v) for v in data["label_vals"][:, 0]])
    tf.keras.utils.set_random_seed(args.seed)
    model = tf.keras.Sequential([
        tf.keras.Input(cfg.input_shape),
        tf.keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
        tf.keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(len(SEED_LABELS)),
    ])
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    hist = model.fit(x, y, epochs=args.epochs, batch_size=32, verbose=0)
    acc = float(hist.history["accuracy"][-1])

    path = out / "tiny_int8.tflite"
    path.write_bytes(convert(model, "int8", RepresentativeSet.of_features(x[:100])))
    tfl = TfliteModel(path)
    quant = {"type": "int8",
             "input": tfl.input_quant.to_dict(), "output": tfl.output_quant.to_dict()}
    ModelMeta(SEED_LABELS, cfg, {
        "architecture": {"name": "pi-emulate-tiny", "parameters": int(model.count_params())},
        "quantization": quant,
        "detection": {"threshold": 0.6, "smoothing_windows": 2, "refractory_ms": 1000.0,
                      "min_count": 1},
        "source_model": "scripts/pi_compare.py make-model (synthetic tones, for pi-emulate only)",
        "sha256": file_sha256(path),
    }).save(path.with_suffix(".json"))
    print(f"wrote {path} (train accuracy {acc:.2f} on synthetic tones; a test model only)")
    return 0


# --------------------------------------------------------------------------------------------
# raw interpreter outputs (both sides)
# --------------------------------------------------------------------------------------------
def cmd_raw(args: argparse.Namespace) -> int:
    """Features, quantized inputs and raw int8 outputs of the first clips of an npz, to OUTDIR.

    With ``--inputs Q.npy`` (the other side's quantized inputs) the interpreter also runs on
    exactly those bytes, so the interpreter is compared apart from the float front-end.
    """
    import platform

    from kws.runtime.features import compute_features, pcm16_to_float
    from kws.runtime.model import KwsModel

    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    model = KwsModel(args.model)
    tfl = model.tflite
    with np.load(args.npz, allow_pickle=False) as data:
        wav = data["wav_vals"][: args.max_clips]
    audio = pcm16_to_float(wav) if wav.dtype == np.int16 else wav.astype(np.float32)
    feats = compute_features(audio, model.features)
    q = np.stack([tfl.quantize_input(f[None])[0] for f in feats])
    np.save(out / "features.npy", feats)
    np.save(out / "inputs.npy", q)
    np.save(out / "outputs.npy", np.stack([tfl.invoke_raw(x[None])[0] for x in q]))
    if args.inputs:
        given = np.load(args.inputs)
        np.save(out / "outputs_from_given_inputs.npy", np.stack([tfl.invoke_raw(x[None])[0] for x in given]))
    info = {"machine": platform.machine(), "backend": model.backend, "xnnpack": tfl.xnnpack,
            "n_clips": len(q)}
    (out / "info.json").write_text(json.dumps(info) + "\n")
    print(f"{info['machine']}: {len(q)} clips through {Path(args.model).name} with {model.backend}"
          f" (XNNPACK {'on' if tfl.xnnpack else 'off' if tfl.xnnpack is False else 'unknown'})")
    return 0


def compare_raw(x86_dir: Path, arm_dir: Path) -> tuple[bool, list[str]]:
    """Compare two ``raw`` runs. Returns (ok, report lines).

    - interpreter: the same int8 input bytes must give the same int8 outputs (exact);
    - front-end: the numpy features may differ in the last float32 bits between CPUs (the FFT
      and SIMD paths differ); reported, and only a difference above 1e-5 of the feature range
      or more than 1 step on a quantized input fails;
    - end to end: the outputs from each side's own features, reported (not a failure by itself:
      listen and eval below are compared exactly).
    """
    lines, ok = [], True
    ix = json.loads((x86_dir / "info.json").read_text())
    ia = json.loads((arm_dir / "info.json").read_text())
    lines.append(f"backends: x86 {ix['backend']} (XNNPACK {ix['xnnpack']}), arm64 {ia['backend']} "
                 f"(XNNPACK {ia['xnnpack']})")
    if ix["xnnpack"] != ia["xnnpack"]:
        ok = False
        lines.append("FAIL: XNNPACK is applied on one side only (in a chroot: /sys and /proc must be "
                     "mounted for cpuinfo)")
    ox = np.load(x86_dir / "outputs.npy")
    og = np.load(arm_dir / "outputs_from_given_inputs.npy")
    d = np.abs(ox.astype(np.int64) - og.astype(np.int64))
    if d.any():
        ok = False
        first = tuple(int(i) for i in np.argwhere(d)[0])
        lines.append(f"FAIL: interpreter: identical int8 inputs give different outputs in {int((d > 0).sum())} "
                     f"of {d.size} values (max {int(d.max())} steps); first at clip {first[0]}, class "
                     f"{first[1]}: x86 {int(ox[first])} != arm64 {int(og[first])}")
    else:
        lines.append(f"interpreter: identical int8 outputs for identical inputs ({d.size} values, "
                     f"{len(ox)} clips)")
    fx, fa = np.load(x86_dir / "features.npy"), np.load(arm_dir / "features.npy")
    df = np.abs(fx.astype(np.float64) - fa)
    span = float(fx.max() - fx.min()) or 1.0
    qx, qa = np.load(x86_dir / "inputs.npy"), np.load(arm_dir / "inputs.npy")
    dq = np.abs(qx.astype(np.int64) - qa)
    lines.append(f"front-end: {int((df > 0).sum())} of {df.size} float32 features differ, max "
                 f"{df.max():.3g} ({df.max() / span:.2g} of the range); quantized inputs differ in "
                 f"{int((dq > 0).sum())} values by at most {int(dq.max())} step(s)")
    if df.max() > 1e-5 * span or dq.max() > 1:
        ok = False
        lines.append("FAIL: front-end: the numpy features differ by more than float rounding")
    oa = np.load(arm_dir / "outputs.npy")
    de = np.abs(ox.astype(np.int64) - oa)
    lines.append(f"end to end: {int((de > 0).sum())} of {de.size} int8 outputs differ (max "
                 f"{int(de.max())} step(s)); top-1 agrees on {int((ox.argmax(1) == oa.argmax(1)).sum())} "
                 f"of {len(ox)} clips")
    return ok, lines


def cmd_compare_raw(args: argparse.Namespace) -> int:
    ok, lines = compare_raw(Path(args.x86), Path(args.arm))
    for line in lines:
        print(f"raw: {line}")
    return 0 if ok else 1


# --------------------------------------------------------------------------------------------
# comparison
# --------------------------------------------------------------------------------------------
def _load_json_or_lines(path: Path) -> Any:
    """A JSON document, or JSON lines (one object a line) as a list; else the text's lines."""
    return _parse_json_or_lines(path.read_text())


def _parse_json_or_lines(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    lines = [ln for ln in text.splitlines() if ln.strip()]
    try:
        return [json.loads(ln) for ln in lines]
    except json.JSONDecodeError:
        return {"_text_lines": lines}


def _walk(a: Any, b: Any, path: str) -> Iterator[str]:
    """Yield a description of each difference between ``a`` and ``b`` (exact, volatile keys skipped)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if VOLATILE_KEY.search(str(key)):
                continue
            sub = f"{path}.{key}" if path else str(key)
            if key not in a:
                yield f"{sub}: only in arm64 ({json.dumps(b[key])[:120]})"
            elif key not in b:
                yield f"{sub}: only in x86 ({json.dumps(a[key])[:120]})"
            else:
                yield from _walk(a[key], b[key], sub)
    elif isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from _walk(x, y, f"{path}[{i}]")
        if len(a) != len(b):
            yield f"{path}: x86 has {len(a)} items, arm64 has {len(b)}"
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return
    elif type(a) is not type(b) or a != b:
        yield f"{path or '(top)'}: x86 {json.dumps(a)[:120]} != arm64 {json.dumps(b)[:120]}"


def differences(a: Any, b: Any) -> list[str]:
    """All differences between two parsed outputs, first one first."""
    return list(_walk(a, b, ""))


def cmd_compare(args: argparse.Namespace) -> int:
    x86_text = Path(args.x86).read_text()
    for mapping in args.map:
        old, _, new = mapping.partition("=")
        x86_text = x86_text.replace(old, new)
    a = _parse_json_or_lines(x86_text)
    b = _load_json_or_lines(Path(args.arm))
    diffs = differences(a, b)
    if not diffs:
        print(f"{args.name}: identical")
        return 0
    print(f"{args.name}: {len(diffs)} difference(s); first: {diffs[0]}")
    for d in diffs[1:5]:
        print(f"  also: {d}")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pi_compare.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("make-inputs")
    p.add_argument("outdir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clips-per-label", type=int, default=4)
    p.set_defaults(func=cmd_make_inputs)
    p = sub.add_parser("make-model")
    p.add_argument("outdir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=30)
    p.set_defaults(func=cmd_make_model)
    p = sub.add_parser("raw")
    p.add_argument("model")
    p.add_argument("npz")
    p.add_argument("outdir")
    p.add_argument("--max-clips", type=int, default=48)
    p.add_argument("--inputs", help="quantized inputs (.npy) from the other side")
    p.set_defaults(func=cmd_raw)
    p = sub.add_parser("compare-raw")
    p.add_argument("x86")
    p.add_argument("arm")
    p.set_defaults(func=cmd_compare_raw)
    p = sub.add_parser("compare")
    p.add_argument("name")
    p.add_argument("x86")
    p.add_argument("arm")
    p.add_argument("--map", action="append", default=[], metavar="X86_PATH=ARM_PATH",
                   help="replace a path in the x86 output before comparing (repeatable)")
    p.set_defaults(func=cmd_compare)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
