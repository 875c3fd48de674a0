"""``kws-ensemble``: members merged into one model, checked against numpy, exported and run.

Tiny models and generated data (``synth_npz``); nothing here trains for accuracy.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kws.runtime.errors import KwsError  # noqa: E402
from kws.runtime.features import FeatureConfig, compute_features  # noqa: E402
from kws.runtime.meta import ModelMeta  # noqa: E402

keras = pytest.importorskip("keras")

from kws.train import ensemble, trainer  # noqa: E402
from kws.train.data import load_npz  # noqa: E402
from kws.train.nets import build_model  # noqa: E402

from test_distill import _meta, _softmax  # noqa: E402

RUN_ARGS = ("--model", "dscnn", "--width", 8, "--depth", 2, "--epochs", 1, "--steps-per-epoch", 2,
            "--batch-size", 8, "--lr", 3e-3, "--split-seed", 0)


@pytest.fixture(scope="module")
def member_runs(tmp_path_factory, synth_npz):
    """Two tiny kws-train runs on the synthetic set: same split, seeds 0 and 1."""
    root = tmp_path_factory.mktemp("members")
    runs = []
    for seed in (0, 1):
        out = root / f"s{seed}"
        code = trainer.main([str(a) for a in ("--data", synth_npz, *RUN_ARGS, "--seed", seed, "--out", out, "-q")])
        assert code == 0
        runs.append(out)
    return runs


def _tiny(seed):
    keras.utils.set_random_seed(seed)
    return build_model("dscnn", input_shape=(40, 126, 1), n_classes=12, width=4, depth=1)


@pytest.mark.parametrize("combine", ensemble.COMBINE_MODES)
def test_ensemble_output_is_the_combined_posterior(combine):
    models = [_tiny(s) for s in (0, 1, 2)]
    x = np.random.default_rng(0).normal(size=(5, 40, 126, 1)).astype(np.float32)
    logits = [np.asarray(m(x)) for m in models]
    merged = np.asarray(ensemble.build_ensemble(models, combine=combine)(x))
    assert merged.shape == (5, 12)
    if combine == "mean":
        expected = np.mean([_softmax(z) for z in logits], axis=0)
        np.testing.assert_allclose(merged, np.log(expected), atol=2e-5)
    else:
        expected = _softmax(np.mean(logits, axis=0))
        np.testing.assert_allclose(merged, np.mean(logits, axis=0), atol=2e-5)
    np.testing.assert_allclose(_softmax(merged), expected, atol=2e-5)


def test_mean_floor_keeps_the_log_finite():
    """A class every member rules out gets log(1e-6), not -inf (the int8 output range stays finite)."""
    inp = keras.Input((3,))
    sure = keras.Model(inp, keras.layers.Dense(2, trainable=False)(inp))
    sure.set_weights([np.array([[100.0, -100.0]] * 3, np.float32), np.zeros(2, np.float32)])
    inp2 = keras.Input((3,))
    twin = keras.Model(inp2, keras.layers.Dense(2)(inp2))
    twin.set_weights(sure.get_weights())
    out = np.asarray(ensemble.build_ensemble([sure, twin])(np.ones((1, 3), np.float32)))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0], [0.0, np.log(ensemble.POSTERIOR_FLOOR)], atol=1e-5)


def test_build_refuses_fewer_than_two_and_unknown_modes():
    with pytest.raises(KwsError, match="at least 2 members, got 1"):
        ensemble.build_ensemble([_tiny(0)])
    with pytest.raises(KwsError, match="--combine 'median': expected one of mean, geometric"):
        ensemble.build_ensemble([_tiny(0), _tiny(1)], combine="median")


@pytest.mark.parametrize("meta, message", [
    (_meta(labels=("a", "c")), "labels ['a', 'c'] (against ['a', 'b'])"),
    (_meta(features=FeatureConfig(n_fft=256)), "features.n_fft 256 (against 258)"),
    (_meta(split={"seed": 4, "val_fraction": 0.1, "test_fraction": 0.1}), "split.seed 4 (against 0)"),
    (_meta(split={"seed": 0, "val_fraction": 0.1, "test_fraction": 0.1, "trained_on": ["train", "val"]}),
     "split.trained_on ['train', 'val'] (against ['train'])"),
    (_meta(n_clips=11), "data.n_clips 11 (against 10)"),
])
def test_check_members_names_the_difference(meta, message):
    with pytest.raises(KwsError) as info:
        ensemble.check_members([_meta(), meta], ["A", "B"])
    text = str(info.value)
    assert text.startswith("--run B: differs from --run A in ") and message in text, text
    ensemble.check_members([_meta(), _meta(), _meta()], ["A", "B", "C"])


def test_kws_ensemble_end_to_end(tmp_path, member_runs, synth_npz, capsys):
    out_dir = tmp_path / "ens"
    code = ensemble.main(["--run", str(member_runs[0]), "--run", str(member_runs[1]), "--out", str(out_dir)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"wrote {out_dir}/: model.keras, model.json" in out

    meta = ModelMeta.load(out_dir / "model.json")
    members = [json.loads((r / "model.json").read_text()) for r in member_runs]
    arch = meta.extra["architecture"]
    assert arch["name"] == "ensemble" and arch["params"] == {"combine": "mean", "members": 2}
    assert arch["macs"] == sum(m["architecture"]["macs"] for m in members)
    assert arch["parameters"] == sum(m["architecture"]["parameters"] for m in members)
    assert [m["path"] for m in meta.extra["ensemble"]["members"]] == [str(r) for r in member_runs]
    assert meta.extra["split"] == members[0]["split"] and meta.labels == tuple(members[0]["labels"])
    assert f"{arch['macs']:,} MACs, {arch['parameters']:,} parameters" in out

    # the saved model is the mean posterior of the saved members, on the runtime's features
    from kws.convert.export import load_keras

    ds = load_npz(synth_npz)
    x = compute_features(ds.audio(np.arange(6)), meta.features)
    probs = [_softmax(load_keras(r / "model.keras")(x)) for r in member_runs]
    merged = np.asarray(load_keras(out_dir / "model.keras")(x))
    np.testing.assert_allclose(_softmax(merged), np.mean(probs, axis=0), atol=2e-5)


def test_ensemble_exports_to_int8_and_runs(tmp_path, member_runs, synth_npz, capsys):
    from kws.convert.export import main as export_main
    from kws.runtime.model import KwsModel

    ens = tmp_path / "ens"
    assert ensemble.main(["--run", str(member_runs[0]), "--run", str(member_runs[1]), "--out", str(ens), "-q"]) == 0
    code = export_main(["--model", str(ens), "--data", str(synth_npz), "--int8", "--out", str(tmp_path / "x"), "-q"])
    _, err = capsys.readouterr()
    assert code == 0, err
    exported = ModelMeta.load(tmp_path / "x" / "model_int8.json")
    assert exported.extra["quantization"]["type"] == "int8"
    assert exported.extra["architecture"]["name"] == "ensemble"
    model = KwsModel(tmp_path / "x" / "model_int8.tflite")
    p = model.probabilities(load_npz(synth_npz).audio(np.arange(3)))
    assert p.shape == (3, 12) and np.allclose(p.sum(axis=1), 1.0, atol=1e-3)


@pytest.mark.parametrize("argv, message", [
    (["--run", "{a}"], "--run: an ensemble needs at least 2 kws-train runs, got 1"),
    (["--run", "{a}", "--run", "{a}"], "--run {a}: given twice (also as {a})"),
    (["--run", "{a}", "--run", "{tmp}/nowhere"], "--run {tmp}/nowhere: expected a kws-train output directory"),
    (["--run", "{a}", "--run", "{b}", "--out", "{a}"], "already holds a model; pass --force"),
    (["--run", "{a}", "--run", "{b}", "--out", "{a}", "--force"], "--out {a}: is one of the members"),
])
def test_kws_ensemble_refuses_untouched(tmp_path, member_runs, capsys, argv, message):
    fmt = {"a": member_runs[0], "b": member_runs[1], "tmp": tmp_path}
    argv = [a.format(**fmt) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "ens")]
    before = {p: p.read_bytes() for r in member_runs for p in r.iterdir() if p.is_file()}
    code = ensemble.main(argv)
    _, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("kws-ensemble: error: ") and message.format(**fmt) in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ens").exists()
    assert before == {p: p.read_bytes() for r in member_runs for p in r.iterdir() if p.is_file()}


def test_kws_ensemble_refuses_members_with_another_split(tmp_path, member_runs, synth_npz, capsys):
    other = tmp_path / "other"
    assert trainer.main([str(a) for a in ("--data", synth_npz, *RUN_ARGS[:-2], "--split-seed", 3,
                                          "--out", other, "-q")]) == 0
    code = ensemble.main(["--run", str(member_runs[0]), "--run", str(other), "--out", str(tmp_path / "ens")])
    _, err = capsys.readouterr()
    assert code == 2 and "split.seed 3 (against 0)" in err and "must share labels, front-end, data" in err
    assert not (tmp_path / "ens").exists()
