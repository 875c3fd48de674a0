"""kws-bench runs and writes its JSON; MACs from the .tflite graph; bad input. No timing asserts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kws.runtime.bench import main, model_names
from kws.runtime.interpreter import TfliteModel, builtin_graph_details
from kws.runtime.labels import SEED_LABELS
from kws.runtime.meta import ModelMeta
from kws.runtime.tflite_graph import count_macs, graph_macs, op_macs

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# A small mel front-end keeps the test fast: (20 bands, 126 frames, 1).
FEATURES = {"kind": "stft", "mel_bands": 20, "log": True}
FAST = ["--no-shipped", "--windows", "5", "--warmup", "1", "--stream-windows", "3",
        "--probe-windows", "1", "-q"]


def _convert(model, path: Path, *, int8: bool, rep_shape=None) -> Path:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rng = np.random.default_rng(0)
        shape = rep_shape or tuple(model.input_shape[1:])

        def rep():
            for _ in range(8):
                yield [rng.uniform(-1, 1, (1, *shape)).astype(np.float32)]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    path.write_bytes(conv.convert())
    return path


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """A tiny float and int8 classifier on 20 log-mel bands, each with its sidecar JSON."""
    import keras

    from kws.runtime.features import FeatureConfig

    cfg = FeatureConfig(**FEATURES)
    inp = keras.Input(cfg.input_shape)
    x = keras.layers.Conv2D(4, (3, 3), strides=(2, 2), activation="relu")(inp)
    x = keras.layers.DepthwiseConv2D((3, 3), padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(len(SEED_LABELS))(x)
    model = keras.Model(inp, out)
    folder = tmp_path_factory.mktemp("tiny")
    paths = {}
    for name, int8 in (("tiny_float32", False), ("tiny_int8", True)):
        path = _convert(model, folder / f"{name}.tflite", int8=int8)
        ModelMeta(SEED_LABELS, cfg, {"quantization": {"type": "int8" if int8 else "float32"}}).save(
            path.with_suffix(".json"))
        paths[name] = path
    return paths


# ---------------------------------------------------------------------------------------
# MACs from the graph
# ---------------------------------------------------------------------------------------
def test_op_macs_formulas():
    # CONV_2D: out (1, 10, 8, 16), filter (16, 3, 3, 4) -> 10*8*16 * 3*3*4
    assert op_macs("CONV_2D", [(1, 12, 10, 4), (16, 3, 3, 4), (16,)], [(1, 10, 8, 16)]) == 10 * 8 * 16 * 36
    assert op_macs("DEPTHWISE_CONV_2D", [(1, 10, 8, 16), (1, 3, 3, 16), (16,)], [(1, 10, 8, 16)]) == 10 * 8 * 16 * 9
    assert op_macs("FULLY_CONNECTED", [(1, 64), (12, 64), (12,)], [(1, 12)]) == 64 * 12
    # BATCH_MATMUL (2, 5, 7) x (2, 7, 3) -> (2, 5, 3); and with b transposed (2, 3, 7)
    assert op_macs("BATCH_MATMUL", [(2, 5, 7), (2, 7, 3)], [(2, 5, 3)]) == 2 * 5 * 3 * 7
    assert op_macs("BATCH_MATMUL", [(2, 5, 7), (2, 3, 7)], [(2, 5, 3)]) == 2 * 5 * 3 * 7
    # TRANSPOSE_CONV: output_shape, weights (cout 6, 3, 3, cin 4), input (1, 5, 5, 4)
    assert op_macs("TRANSPOSE_CONV", [(4,), (6, 3, 3, 4), (1, 5, 5, 4)], [(1, 10, 10, 6)]) == 25 * 4 * 9 * 6
    assert op_macs("MAX_POOL_2D", [(1, 4, 4, 2)], [(1, 2, 2, 2)]) is None


def test_graph_macs_from_details():
    ops = [{"index": 0, "op_name": "CONV_2D", "inputs": [0, 1, -1], "outputs": [2]},
           {"index": 1, "op_name": "RELU", "inputs": [2], "outputs": [3]}]
    tensors = [{"index": 0, "shape": [1, 8, 8, 1]}, {"index": 1, "shape": [2, 3, 3, 1]},
               {"index": 2, "shape": [1, 6, 6, 2]}, {"index": 3, "shape": [1, 6, 6, 2]}]
    g = graph_macs(ops, tensors)
    assert g.total == 36 * 2 * 9
    assert g.by_op == {"CONV_2D": 648} and g.other_ops == {"RELU": 1} and g.n_ops == 2


def test_count_macs_on_known_graph(tmp_path):
    """Conv1D (-> CONV_2D), Conv2D, DepthwiseConv2D, Conv2DTranspose and Dense, counted by hand
    and by the Keras-side counter; float and int8 graphs agree."""
    import keras

    macs_mod = pytest.importorskip("kws.train.macs")

    wav_in = keras.Input((64, 1))
    a = keras.layers.Conv1D(4, 9, padding="same")(wav_in)        # 64*4 * 9*1
    a = keras.layers.Reshape((8, 8, 4))(a)
    a = keras.layers.Conv2D(6, 3)(a)                              # 6*6*6 * 3*3*4
    a = keras.layers.DepthwiseConv2D(3, padding="same")(a)        # 6*6*6 * 9
    a = keras.layers.Conv2DTranspose(2, 3, strides=2)(a)          # 6*6*6 * 9 * 2 (input pixels)
    a = keras.layers.Flatten()(a)
    out = keras.layers.Dense(12)(a)                               # in * 12
    model = keras.Model(wav_in, out)
    flat = int(np.prod(model.layers[-2].output.shape[1:]))
    expected = (64 * 4 * 9 + 36 * 6 * 36 + 36 * 6 * 9 + 36 * 6 * 9 * 2 + flat * 12)
    keras_macs = macs_mod.count_macs(model)
    assert keras_macs == expected

    f32 = count_macs(_convert(model, tmp_path / "k.tflite", int8=False))
    i8 = count_macs(_convert(model, tmp_path / "k8.tflite", int8=True))
    assert f32.total == expected == i8.total
    assert set(f32.by_op) == {"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED"}
    assert f32.by_op["CONV_2D"] == 64 * 4 * 9 + 36 * 6 * 36


def _registry_names() -> list[str]:
    try:
        from kws.train.nets import MODELS
    except ImportError:
        return []
    return list(MODELS)


@pytest.mark.parametrize("name", _registry_names())
def test_graph_macs_match_keras_count_for_registry_models(name, tmp_path):
    """Every kws.train.nets model, small: the .tflite graph count equals kws.train.macs."""
    from kws.train.presets import feature_config
    from kws.train.macs import count_macs as keras_macs
    from kws.train.nets import build_model, get_spec

    spec = get_spec(name)
    knobs = {"width": 0.125} if isinstance(spec.knobs.get("width"), float) else {"width": 8, "depth": 2}
    model = build_model(name, input_shape=feature_config(spec.features).input_shape,
                        n_classes=len(SEED_LABELS), **knobs)
    graph = count_macs(_convert(model, tmp_path / f"{name}.tflite", int8=False))
    assert graph.total == keras_macs(model) > 0


def test_count_macs_batch_matmul(tmp_path):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((1, 5, 7), tf.float32),
                                  tf.TensorSpec((1, 7, 3), tf.float32)])
    def matmul(a, b):
        return tf.linalg.matmul(a, b)

    conv = tf.lite.TFLiteConverter.from_concrete_functions([matmul.get_concrete_function()], matmul)
    path = tmp_path / "mm.tflite"
    path.write_bytes(conv.convert())
    g = count_macs(path)
    assert g.by_op == {"BATCH_MATMUL": 5 * 3 * 7}


def test_xnnpack_flag_is_truthful(tiny_models):
    """With ai-edge-litert the loaded model shows DELEGATE nodes; the counting graph has none."""
    for path in tiny_models.values():
        model = TfliteModel(path)
        names = [str(op["op_name"]) for op in model.ops_details()]
        assert model.xnnpack == any("DELEGATE" in n for n in names)
        if model.backend == "ai-edge-litert":
            assert model.xnnpack is True
        ops, _ = builtin_graph_details(path)
        assert not any("DELEGATE" in str(op["op_name"]) for op in ops)


# ---------------------------------------------------------------------------------------
# kws-bench
# ---------------------------------------------------------------------------------------
def test_bench_runs_and_writes_json(tiny_models, tmp_path, capsys):
    out = tmp_path / "b.json"
    rc = main([*FAST, "--model", str(tiny_models["tiny_float32"]), "--model", str(tiny_models["tiny_int8"]),
               "--threads", "1,2", "--hop-ms", "250,100", "--json-out", str(out),
               "--compare", "tiny_float32", "--target-model", "tiny_int8"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| tiny_int8 | int8 | 1 |" in text and "Ratios against tiny_float32" in text
    data = json.loads(out.read_text())
    assert data["format"] == "kws-bench/1"
    assert data["settings"]["threads"] == [1, 2] and data["settings"]["hop_ms"] == [250.0, 100.0]
    for key in ("backend", "import", "install"):
        assert key in data["runtime"]
    assert data["runtime"]["import"]["import_s"] > 0
    assert data["runtime"]["install"]["total_bytes"] > 0
    assert "numpy" in data["runtime"]["install"]["packages"]
    assert [m["name"] for m in data["models"]] == ["tiny_float32", "tiny_int8"]
    for m in data["models"]:
        for key in ("path", "file_bytes", "quantization", "backend", "xnnpack", "macs", "peak_rss", "runs"):
            assert key in m, key
        assert m["macs"]["total"] > 0
        assert m["peak_rss"]["ru_maxrss_bytes"] > 0
        assert [r["threads"] for r in m["runs"]] == [1, 2]
        for r in m["runs"]:
            assert r["windows"] == 5
            for part in ("feature_ms", "invoke_ms", "total_ms", "total_cpu_ms"):
                assert set(r[part]) >= {"median", "p90", "p99"}
                assert r[part]["median"] > 0
            assert [h["hop_ms"] for h in r["hops"]] == [250.0, 100.0]
            for h in r["hops"]:
                assert h["cpu_share"] > 0 and h["real_time_factor"] > 0
    assert {m["quantization"] for m in data["models"]} == {"float32", "int8"}
    # same graph: same MACs
    assert data["models"][0]["macs"]["total"] == data["models"][1]["macs"]["total"]
    rows = data["compare"]["rows"]
    assert data["compare"]["baseline"] == "tiny_float32" and len(rows) == 4
    assert all(r["macs"] == pytest.approx(1.0) for r in rows)
    assert data["targets"]["model"] == "tiny_int8"
    assert set(data["targets"]["checks"]) == {"total_median_ms_1_thread", "cpu_share_250ms_hop",
                                               "peak_rss_mb", "runtime_install_mb"}


def test_bench_out_dir_and_models_dir(tiny_models, tmp_path, capsys):
    out_dir = tmp_path / "res"
    rc = main([*FAST, "--models-dir", str(tiny_models["tiny_int8"].parent), "--threads", "1",
               "--hop-ms", "250", "--out", str(out_dir)])
    assert rc == 0
    data = json.loads((out_dir / "bench.json").read_text())
    assert sorted(m["name"] for m in data["models"]) == ["tiny_float32", "tiny_int8"]
    assert (out_dir / "bench.md").read_text().startswith("kws-bench on ")


def test_budget_cuts_windows_but_not_below_minimum(tiny_models, tmp_path):
    from kws.runtime.bench import MIN_BUDGET_WINDOWS

    out = tmp_path / "b.json"
    rc = main([*FAST, "--model", str(tiny_models["tiny_int8"]), "--threads", "1", "--hop-ms", "250",
               "--windows", str(MIN_BUDGET_WINDOWS + 10), "--stream-windows", str(MIN_BUDGET_WINDOWS + 10),
               "--budget-s", "1e-9", "--json-out", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    run = data["models"][0]["runs"][0]
    assert data["settings"]["budget_s"] == 1e-9
    assert run["windows"] == MIN_BUDGET_WINDOWS and run["hops"][0]["windows"] == MIN_BUDGET_WINDOWS


def test_console_script_runs_without_tensorflow(tiny_models, tmp_path):
    """The command as a user runs it, in a fresh process: TensorFlow is installed here but is
    never imported, and the process stays small."""
    code = ("import sys\n"
            "from kws.runtime.bench import main, _peak_rss\n"
            "rc = main(sys.argv[1:])\n"
            "leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
            "assert not leaked, leaked[:5]\n"
            "sys.exit(rc)\n")
    out = tmp_path / "c.json"
    result = subprocess.run([sys.executable, "-c", code, *FAST, "--model", str(tiny_models["tiny_int8"]),
                             "--threads", "1", "--hop-ms", "250", "--json-out", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["models"][0]["name"] == "tiny_int8"
    # the probe ran while the bench process was small: its ru_maxrss is its own peak
    assert data["models"][0]["peak_rss"]["ru_maxrss_bytes"] < 200e6


# ---------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------
def _run_err(capsys, argv) -> tuple[int, str]:
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err[-1] if err else ""


def test_missing_model_file(tmp_path, capsys):
    rc, err = _run_err(capsys, [*FAST, "--model", str(tmp_path / "nope.tflite")])
    assert rc == 2
    assert err == f"kws-bench: error: --model {tmp_path / 'nope.tflite'}: model file not found (expected a .tflite file)"


def test_corrupt_model_file(tiny_models, tmp_path, capsys):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"this is not a flatbuffer" * 10)
    ModelMeta.load(tiny_models["tiny_int8"].with_suffix(".json")).save(bad.with_suffix(".json"))
    rc, err = _run_err(capsys, [*FAST, "--model", str(bad)])
    assert rc == 2
    assert err.startswith(f"kws-bench: error: {bad}: not a loadable .tflite model")


def test_model_without_json(tiny_models, tmp_path, capsys):
    lone = tmp_path / "lone.tflite"
    lone.write_bytes(tiny_models["tiny_int8"].read_bytes())
    rc, err = _run_err(capsys, [*FAST, "--model", str(lone)])
    assert rc == 2 and "no feature/label JSON beside it" in err


def test_bad_flags(tiny_models, tmp_path, capsys):
    model = str(tiny_models["tiny_int8"])
    rc, err = _run_err(capsys, [*FAST, "--model", model, "--threads", "1,x"])
    assert rc == 2 and "--threads '1,x': expected comma-separated positive integers" in err
    rc, err = _run_err(capsys, [*FAST, "--model", model, "--hop-ms", "0"])
    assert rc == 2 and "--hop-ms '0'" in err
    rc, err = _run_err(capsys, [*FAST, "--model", model, "--hop-ms", "2000"])
    assert rc == 2 and "--hop-ms 2000: expected at most the window, 1000 ms" in err
    rc, err = _run_err(capsys, [*FAST, "--model", model, "--budget-s", "inf"])
    assert rc == 2 and "--budget-s inf: expected a finite number of seconds" in err
    rc, err = _run_err(capsys, [*FAST, "--model", model, "--threads", "1,100000"])
    assert rc == 2 and "expected thread counts of at most 256" in err
    for bad in ("nan", "inf", "250,nan", "250,,100"):
        rc, err = _run_err(capsys, [*FAST, "--model", model, "--hop-ms", bad])
        assert rc == 2 and f"--hop-ms '{bad}': expected comma-separated positive numbers" in err
    rc, err = _run_err(capsys, [*FAST, "--model", model, "--compare", "other"])
    assert rc == 2 and "--compare other: not a model in this run (one of: tiny_int8" in err
    rc, err = _run_err(capsys, [*FAST, "--models-dir", str(tmp_path / "none")])
    assert rc == 2 and "not a directory" in err
    rc, err = _run_err(capsys, [*FAST, "--model", model, "--windows", "0"])
    assert rc == 2 and "--windows 0: expected an integer >= 1" in err
    rc, err = _run_err(capsys, ["--no-shipped", "-q"])
    assert rc == 2 and "no models to benchmark" in err


def test_existing_results_are_kept_without_force(tiny_models, tmp_path, capsys):
    model = str(tiny_models["tiny_int8"])
    out = tmp_path / "b.json"
    out.write_text("my earlier results")
    rc, err = _run_err(capsys, [*FAST, "--model", model, "--threads", "1", "--json-out", str(out)])
    assert rc == 2 and err == f"kws-bench: error: --json-out {out}: exists; pass --force to overwrite it"
    assert out.read_text() == "my earlier results"
    (tmp_path / "afile").write_text("x")
    rc, err = _run_err(capsys, [*FAST, "--model", model, "--out", str(tmp_path / "afile")])
    assert rc == 2 and "is a file; expected a directory" in err
    (tmp_path / "adir.json").mkdir()
    rc, err = _run_err(capsys, [*FAST, "--model", model, "--json-out", str(tmp_path / "adir.json")])
    assert rc == 2 and "is a directory" in err
    assert main([*FAST, "--model", model, "--threads", "1", "--hop-ms", "250", "--json-out", str(out),
                 "--force"]) == 0
    assert json.loads(out.read_text())["format"] == "kws-bench/1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir.json", "afile", "b.json"]   # no temp files


@pytest.mark.parametrize("paths, names", [
    (["models/model_int8.tflite", "models/model_float32.tflite"], ["model_int8", "model_float32"]),
    (["models/model_int8.tflite", "runs/a/export/model_int8.tflite", "runs/b/export/model_int8.tflite",
      "runs/b/export/model_float32.tflite"],
     ["models/model_int8", "a/export/model_int8", "b/export/model_int8", "model_float32"]),
    (["/x/m.tflite", "/y/x/m.tflite", "m.tflite"], ["x/m", "y/x/m", "m"]),
])
def test_model_names_add_folders_until_unique(paths, names):
    assert model_names([Path(p) for p in paths]) == names
