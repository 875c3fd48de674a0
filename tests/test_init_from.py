"""``kws-train --init-from RUN``: fine-tuning from an earlier run's weights.

Tiny models, one epoch of two steps, generated data (``synth_npz``), as in ``test_train.py``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kws.runtime.errors import KwsError  # noqa: E402
from kws.runtime.meta import ModelMeta  # noqa: E402

keras = pytest.importorskip("keras")

from kws.train import init_from, trainer  # noqa: E402
from kws.train.nets import build_model  # noqa: E402

from test_train import _NO_KERAS, _extra_npz, _train  # noqa: E402

QUICK = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8"]


@pytest.fixture(scope="module")
def source_run(tmp_path_factory, synth_npz):
    """A finished tiny dscnn run to fine-tune from."""
    out = tmp_path_factory.mktemp("init_from") / "source"
    code = trainer.main(["--data", str(synth_npz), "--model", "dscnn", "--width", "4", "--depth", "2",
                         "--downsample", "2", *QUICK, "--lr", "3e-3", "--out", str(out)])
    assert code == 0
    return out


def test_fine_tune_from_a_run_records_where_it_started(tmp_path, synth_npz, source_run, capsys):
    extra = _extra_npz(tmp_path / "mined.npz", speaker_prefix="room-")
    out_dir = tmp_path / "ft"
    # --model and knobs equal to the source's are accepted; those not given are the source's
    code, out, err = _train(capsys, "--data", synth_npz, "--init-from", source_run, "--model", "dscnn",
                            "--width", 4.0, "--extra-train", extra, *QUICK, "--lr", 3e-4, "--out", out_dir)
    assert code == 0, err
    src = ModelMeta.load(source_run / "model.json")
    meta = ModelMeta.load(out_dir / "model.json")
    assert f"starting from the weights of {source_run / 'model.keras'} (dscnn, best val loss" in out
    assert "may have seen" not in err   # same data and split: nothing held out leaks
    assert meta.extra["training"]["init_from"] == {
        "path": str((source_run / "model.keras").resolve()), "model": "dscnn",
        "best_val_loss": src.extra["training"]["best_val_loss"]}
    assert isinstance(meta.extra["training"]["init_from"]["best_val_loss"], float)
    assert meta.extra["architecture"]["params"] == src.extra["architecture"]["params"]
    assert meta.extra["architecture"]["params"]["downsample"] == [2]
    assert meta.features == src.features and meta.labels == src.labels
    assert meta.extra["data"]["extra_train"][0]["n_clips"] == 48
    assert meta.extra["training"]["status"] == "finished"
    assert (out_dir / "eval.json").is_file()


def test_fine_tune_with_weight_averaging_and_a_teacher(tmp_path, synth_npz, source_run, capsys):
    """--init-from combines with --swa-epochs (the average of the fine-tune's last epochs) and with
    --teacher (the source itself as the teacher: same data, split, labels and front-end)."""
    out_dir = tmp_path / "ft_swa"
    code, out, err = _train(capsys, "--data", synth_npz, "--init-from", source_run, "--epochs", 3,
                            "--steps-per-epoch", 2, "--batch-size", 8, "--lr", 3e-4, "--lr-schedule", "cosine",
                            "--swa-epochs", 2, "--teacher", source_run, "--distill-weight", 0.5, "--out", out_dir)
    assert code == 0, err
    training = ModelMeta.load(out_dir / "model.json").extra["training"]
    assert training["init_from"]["path"] == str((source_run / "model.keras").resolve())
    assert training["swa"]["averaged_epochs"] == 2 and training["swa"]["lr"] == pytest.approx(3e-5)
    assert [(Path(t["path"]).resolve(), t["model"]) for t in training["teachers"]] == [(source_run.resolve(), "dscnn")]
    assert "model.keras: the average of the last 2 epoch(s)" in out
    fine = keras.models.load_model(out_dir / "model.keras", compile=False)
    source = keras.models.load_model(source_run / "model.keras", compile=False)
    assert any(not np.allclose(a, b) for a, b in zip(fine.get_weights(), source.get_weights()))


def test_training_starts_from_the_source_weights(tmp_path, synth_npz, source_run, capsys, monkeypatch):
    """What the net predicts when fit begins is what the source predicts (every weight copied)."""
    src_model = keras.models.load_model(source_run / "model.keras", compile=False)
    x = np.random.default_rng(0).normal(size=(6, *src_model.input_shape[1:])).astype(np.float32)
    seen = {}

    class AtStart(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["weights"] = [np.array(w) for w in self.model.get_weights()]
            seen["logits"] = np.asarray(self.model(x, training=False))

    real = trainer.make_callbacks
    monkeypatch.setattr(trainer, "make_callbacks", lambda args, out: real(args, out) + [AtStart()])
    # the model.keras form of the flag; another split seed: the source saw held-out speakers
    code, _, err = _train(capsys, "--data", synth_npz, "--init-from", source_run / "model.keras",
                          "--split-seed", 3, *QUICK, "--out", tmp_path / "ft")
    assert code == 0, err
    assert "may have seen this run's validation and test speakers" in err
    expected = src_model.get_weights()
    assert len(seen["weights"]) == len(expected)
    for got, want in zip(seen["weights"], expected):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(seen["logits"], np.asarray(src_model(x, training=False)))


def test_copy_weights_helper(source_run):
    source = init_from.read_source(source_run)
    assert source.model == "dscnn" and source.knobs["downsample"] == (2,)
    src_model = keras.models.load_model(source.path, compile=False)
    model = build_model("dscnn", input_shape=source.meta.features.input_shape, n_classes=12, **source.knobs)
    x = np.random.default_rng(1).normal(size=(4, *model.input_shape[1:])).astype(np.float32)
    assert not np.allclose(np.asarray(model(x)), np.asarray(src_model(x)))   # a fresh init differs
    init_from.copy_weights(model, source)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(src_model(x)))

    other = build_model("dscnn", input_shape=source.meta.features.input_shape, n_classes=12,
                        **{**source.knobs, "width": 6})
    with pytest.raises(KwsError, match=r"layer stem_conv has weights of shapes .* expects"):
        init_from.copy_weights(other, source)


def _copy_run(source_run, dest, **json_changes):
    """A copy of the source run, its model.json changed by ``json_changes`` (None removes a key)."""
    shutil.copytree(source_run, dest)
    data = json.loads((dest / "model.json").read_text())
    for key, value in json_changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value(data[key]) if callable(value) else value
    (dest / "model.json").write_text(json.dumps(data))
    return dest


def _swap_two(labels):
    return [labels[1], labels[0], *labels[2:]]


@pytest.mark.parametrize("setup, argv, message", [
    (None, ["--init-from", "{tmp}/nope"], "--init-from {tmp}/nope: not found; expected a kws-train output folder"),
    ("empty", ["--init-from", "{tmp}/empty"], "--init-from {tmp}/empty: no model.keras in this folder"),
    ("keras-only", ["--init-from", "{tmp}/keras-only/model.keras"],
     "--init-from {tmp}/keras-only/model.keras: no model.json beside model.keras"),
    ("npz", ["--init-from", "{tmp}/npz/data.npz"], "expected a .keras model file or a kws-train output folder"),
    ("bad-json", ["--init-from", "{tmp}/bad-json"], "bad-json/model.json: model JSON of --init-from is not valid JSON"),
    ("no-labels", ["--init-from", "{tmp}/no-labels"], "'labels' must be a list of at least 2 distinct strings"),
    ("no-arch", ["--init-from", "{tmp}/no-arch"], "'architecture' must name a registry model"),
    ("ensemble", ["--init-from", "{tmp}/ensemble"], "is a kws-ensemble model, which cannot be fine-tuned"),
    ("src", ["--init-from", "{tmp}/src", "--model", "bcresnet"],
     "--model bcresnet: differs from the --init-from run's model dscnn"),
    ("src", ["--init-from", "{tmp}/src", "--width", "8"], "--width 8: differs from the --init-from run's --width 4"),
    ("src", ["--init-from", "{tmp}/src", "--depth", "3"], "--depth 3: differs from the --init-from run's --depth 2"),
    ("src", ["--init-from", "{tmp}/src", "--stride", "2"], "--stride 2: differs from the --init-from run's --stride 4"),
    ("src", ["--init-from", "{tmp}/src", "--freq-stride", "2"], "--freq-stride 2: differs from the --init-from run's"),
    ("src", ["--init-from", "{tmp}/src", "--downsample", "1"],
     "--downsample 1: differs from the --init-from run's --downsample 2"),
    ("src", ["--init-from", "{tmp}/src", "--dropout", "0.5"],
     "--dropout 0.5: differs from the --init-from run's --dropout 0.2"),
    ("src", ["--init-from", "{tmp}/src", "--features", "pcen-mel"],
     "--features pcen-mel: differs from the --init-from run's --features log-mel"),
    ("src", ["--init-from", "{tmp}/src", "--mel-bands", "32"],
     "--mel-bands 32: differs from the --init-from run's --mel-bands 40"),
    ("src", ["--init-from", "{tmp}/src", "--no-log"], "--no-log: differs from the --init-from run's --log"),
    ("src", ["--init-from", "{tmp}/src", "--stride", "3", "--depth", "5"], "--depth 5: differs"),
    ("labels", ["--init-from", "{tmp}/labels"], "its labels ['no', 'yes', 'up'"),
    ("rate", ["--init-from", "{tmp}/rate"],
     "its front-end differs from this run's: sample_rate_hz 16000 (this data: 8000)"),
    ("src", ["--init-from", "{tmp}/src", "--out", "{tmp}/src", "--force"],
     "--out {tmp}/src: is the --init-from run's folder"),
])
def test_init_from_errors_are_one_line_exit_2(tmp_path, synth_npz, source_run, capsys, setup, argv, message):
    if setup == "empty":
        (tmp_path / "empty").mkdir()
    elif setup == "keras-only":
        (tmp_path / "keras-only").mkdir()
        shutil.copy(source_run / "model.keras", tmp_path / "keras-only" / "model.keras")
    elif setup == "npz":
        (tmp_path / "npz").mkdir()
        shutil.copy(synth_npz, tmp_path / "npz" / "data.npz")
    elif setup == "bad-json":
        _copy_run(source_run, tmp_path / "bad-json")
        (tmp_path / "bad-json" / "model.json").write_text("{")
    elif setup == "no-labels":
        _copy_run(source_run, tmp_path / "no-labels", labels=None)
    elif setup == "no-arch":
        _copy_run(source_run, tmp_path / "no-arch", architecture=None)
    elif setup == "ensemble":
        _copy_run(source_run, tmp_path / "ensemble", architecture={"name": "ensemble", "params": {}})
    elif setup == "src":
        _copy_run(source_run, tmp_path / "src")
    elif setup == "labels":
        _copy_run(source_run, tmp_path / "labels", labels=_swap_two)
    elif setup == "rate":
        _copy_run(source_run, tmp_path / "rate", features=lambda f: {**f, "sample_rate_hz": 16000})
    out_dir = tmp_path / "out"
    argv = [a.format(tmp=tmp_path) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(out_dir)]
    code, _, err = _train(capsys, "--data", synth_npz, *argv, *QUICK)
    assert code == 2, err
    assert err.startswith("kws-train: error: ") and message.format(tmp=tmp_path) in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out_dir.exists()
    if setup == "src":   # the source run is left as it was
        assert sorted(p.name for p in (tmp_path / "src").iterdir()) == sorted(p.name for p in source_run.iterdir())


def test_labels_mismatch_names_both_lists(tmp_path, synth_npz, source_run, capsys):
    src = _copy_run(source_run, tmp_path / "src", labels=_swap_two)
    code, _, err = _train(capsys, "--data", synth_npz, "--init-from", src, *QUICK, "--out", tmp_path / "out")
    assert code == 2
    theirs = _swap_two(list(ModelMeta.load(source_run / "model.json").labels))
    assert f"its labels {theirs} differ from the data's {_swap_two(theirs)}" in err


@pytest.mark.parametrize("flags, code, message", [
    (["--width", "16"], 2, "kws-train: error: --width 16: differs from the --init-from run's --width 4"),
    (["--features", "seed-stft"], 2, "kws-train: error: --features seed-stft: differs"),
    (["--help"], 0, "--init-from RUN"),
])
def test_conflicts_are_refused_without_importing_tensorflow(tmp_path, source_run, flags, code, message):
    import subprocess
    import sys

    argv = ["--data", str(tmp_path / "not-read.npz"), "--init-from", str(source_run), *flags]
    result = subprocess.run([sys.executable, "-c", _NO_KERAS, *argv], capture_output=True, text=True)
    assert result.returncode == code, result.stderr
    assert message in result.stdout + result.stderr
    assert "blocked import" not in result.stderr and "Traceback" not in result.stderr
