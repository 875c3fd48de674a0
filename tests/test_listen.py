"""kws-listen end to end with a real (tiny, trained-in-the-test) .tflite model.

Streams with synthetic keywords at known times go through ``--wav`` (8 kHz mono and 44.1 kHz
stereo), ``--stdin`` and the microphone path (a stand-in for sounddevice); each failure the
issue names ends with one line and its exit code.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from fixtures_models import TINY_DETECTION, tiny_models  # noqa: F401 - fixture

from kws.runtime import listen, sources
from kws.runtime.audio_io import read_wav, write_wav
from kws.runtime.detector import DetectorConfig
from kws.runtime.errors import ModelError
from kws.runtime.meta import ModelMeta, sidecar_path
from kws.runtime.model import KwsModel
from kws.runtime.pipeline import Pipeline, run_wav
from kws.runtime.resample import resample
from kws.runtime.stream import expected_windows

SR = 8000
#: (start_s, label) of the generated stream, 3 s apart (noise between the words). That unknown
#: and silence never fire is the detector's job, tested on scripts in test_detector.py; the tiny
#: model's unknown recall (~75% on synthetic chirps) is not what these tests are about.
PLACEMENTS = [(1.5, "yes"), (4.5, "no"), (7.5, "go"), (10.5, "off"), (13.5, "up"), (16.5, "stop"),
              (19.5, "down")]
STREAM_S = 23.0


def make_stream(seed: int = 3) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """Noise with synth words; returns (audio float32, [(start_s, end_s, label)])."""
    from kws.train.synth import synth_word

    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.01, int(STREAM_S * SR)).astype(np.float32)
    truth = []
    for start_s, label in PLACEMENTS:
        word = synth_word(label, rng, burst_ms=450.0) * np.float32(0.8)
        s = int(start_s * SR)
        x[s:s + len(word)] += word
        truth.append((start_s, start_s + len(word) / SR, label))
    return x, truth


@pytest.fixture(scope="module")
def stream_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("streams")
    x, truth = make_stream()
    write_wav(d / "stream8k.wav", x, SR)
    x44 = resample(x, SR, 44100)
    write_wav(d / "stream44k_stereo.wav", np.stack([x44, 0.5 * x44], axis=1), 44100)
    return {"8k": d / "stream8k.wav", "44k": d / "stream44k_stereo.wav", "truth": truth, "audio": x}


def check_detections(detections: list[tuple[float, str]], truth) -> None:
    """Each keyword once, inside its possible windows (after the word's end, within ~1.25 s);
    nothing else."""
    keywords = list(truth)
    assert len(detections) == len(keywords), detections
    for (time_s, label), (start, end, expected) in zip(sorted(detections), keywords):
        assert label == expected, (detections, truth)
        assert end - 0.3 <= time_s <= start + 1.0 + 0.75, (time_s, start, end, label)


def parse_human(stdout: str) -> list[tuple[float, str]]:
    out = []
    for line in stdout.splitlines():
        parts = line.split()
        assert len(parts) == 4 and parts[1] == "s", line
        assert line.startswith(" ") and float(parts[3]) <= 1.0
        out.append((float(parts[0]), parts[2]))
    return out


def parse_json(stdout: str) -> list[tuple[float, str]]:
    out = []
    for line in stdout.splitlines():
        obj = json.loads(line)
        assert set(obj) == {"time_s", "label", "score"}
        assert isinstance(obj["time_s"], float) and isinstance(obj["label"], str)
        assert isinstance(obj["score"], float) and 0 <= obj["score"] <= 1
        out.append((obj["time_s"], obj["label"]))
    return out


# -----------------------------------------------------------------------------------------
# --wav
# -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["float", "int8"])
@pytest.mark.parametrize("which", ["8k", "44k"])
def test_listen_wav_finds_the_placed_keywords(tiny_models, stream_files, capsys, kind, which):
    code = listen.main(["--model", str(tiny_models[kind]), "--wav", str(stream_files[which])])
    out, err = capsys.readouterr()
    assert code == 0, err
    check_detections(parse_human(out), stream_files["truth"])
    windows = expected_windows(int(STREAM_S * SR), 8000, 2000)
    assert f"{windows} windows scored, {len(PLACEMENTS)} detections, 0 overflows" in err
    assert "on ai-edge-litert" in err or "on tflite-runtime" in err or "on tensorflow" in err
    assert ("(int8, 12 labels)" if kind == "int8" else "(float32, 12 labels)") in err


def test_listen_wav_json(tiny_models, stream_files, capsys):
    code = listen.main(["--model", str(tiny_models["int8"]), "--wav", str(stream_files["8k"]), "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    check_detections(parse_json(out), stream_files["truth"])


def test_listen_keywords_restrict_and_threshold_flag(tiny_models, stream_files, capsys):
    assert listen.main(["--model", str(tiny_models["int8"]), "--wav", str(stream_files["8k"]),
                        "--keywords", "go,up", "--json"]) == 0
    assert [label for _, label in parse_json(capsys.readouterr().out)] == ["go", "up"]
    assert listen.main(["--model", str(tiny_models["int8"]), "--wav", str(stream_files["8k"]),
                        "--threshold", "1.0", "--json"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "threshold 1," in err


def test_listen_verbose_shows_the_running_top_class(tiny_models, stream_files, capsys):
    assert listen.main(["--model", str(tiny_models["int8"]), "--wav", str(stream_files["8k"]), "-v"]) == 0
    out, err = capsys.readouterr()
    tops = [line.split()[3] for line in err.splitlines() if " top " in line]
    assert len(tops) == expected_windows(int(STREAM_S * SR), 8000, 2000)
    assert "silence" in tops and "yes" in tops
    check_detections(parse_human(out), stream_files["truth"])  # stdout stays detections only


def test_listen_realtime_runs(tiny_models, tmp_path, capsys):
    x, _ = make_stream()
    write_wav(tmp_path / "short.wav", x[:int(2.5 * SR)], SR)
    assert listen.main(["--model", str(tiny_models["int8"]), "--wav", str(tmp_path / "short.wav"),
                        "--realtime", "--json"]) == 0
    assert [label for _, label in parse_json(capsys.readouterr().out)] == ["yes"]


# -----------------------------------------------------------------------------------------
# Pipeline / run_wav (the API kws-eval-stream uses)
# -----------------------------------------------------------------------------------------
def test_pipeline_blocks_of_any_size_equal_run_wav(tiny_models, stream_files):
    model = KwsModel(tiny_models["int8"])
    config = DetectorConfig.from_meta(model.meta)
    result = run_wav(model, stream_files["8k"], detector=config, record_scores=True)
    assert result.windows_scored == len(result.scores) == expected_windows(int(STREAM_S * SR), 8000, 2000)
    assert result.duration_s == pytest.approx(STREAM_S)
    assert np.isfinite(result.mean_latency_ms) and result.mean_latency_ms > 0
    pipeline = Pipeline(model, detector=config, record_scores=True)
    x = read_wav(stream_files["8k"])[0][:, 0]  # the same 16-bit samples
    rng = np.random.default_rng(0)
    found, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 5000))
        found.extend(pipeline.feed(x[i:i + n]))
        i += n
    assert found == result.detections
    assert [t for t, _ in pipeline.scores] == [t for t, _ in result.scores]
    np.testing.assert_array_equal(np.stack([p for _, p in pipeline.scores]),
                                  np.stack([p for _, p in result.scores]))
    assert result.scores[0][0] == 1.0 and result.scores[1][0] == 1.25  # end of window


def test_pipeline_defaults_come_from_the_json(tiny_models):
    pipeline = Pipeline(KwsModel(tiny_models["float"]), hop_ms=100)
    assert pipeline.detector_config == DetectorConfig(**TINY_DETECTION)
    assert pipeline.hop_samples == 800
    pipeline.feed(np.zeros(8000 + 800 * 3, np.float32))
    assert pipeline.windows_scored == 4 and pipeline.detections == 0


# -----------------------------------------------------------------------------------------
# --stdin
# -----------------------------------------------------------------------------------------
def test_listen_stdin(tiny_models, stream_files, capsys, monkeypatch):
    x16 = resample(stream_files["audio"], SR, 16000)
    pcm = np.round(np.clip(x16, -1, 1) * 32767).astype("<i2").tobytes()
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(pcm)))
    code = listen.main(["--model", str(tiny_models["int8"]), "--stdin", "--stdin-rate", "16000", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    check_detections(parse_json(out), stream_files["truth"])
    assert "stdin (raw S16_LE mono, 16000 Hz)" in err


def _console(name: str) -> list[str]:
    script = Path(sys.executable).with_name(name)
    return [str(script)] if script.exists() else [sys.executable, "-m", "kws.runtime.listen"]


def test_listen_stdin_through_a_real_pipe(tiny_models, stream_files):
    """``... | kws-listen --stdin`` as a separate process (the arecord pattern)."""
    pcm = np.round(stream_files["audio"][:int(6 * SR)] * 32767).astype("<i2").tobytes()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([*_console("kws-listen"), "--model", str(tiny_models["int8"]), "--stdin",
                           "--json"], input=pcm, capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    labels = [json.loads(line)["label"] for line in proc.stdout.decode().splitlines()]
    assert labels == ["yes", "no"]


# -----------------------------------------------------------------------------------------
# Microphone path with a stand-in for sounddevice
# -----------------------------------------------------------------------------------------
class FakeSD:
    """Just enough of the sounddevice module: a 48 kHz-only mic that plays ``signal``."""

    class PortAudioError(Exception):
        pass

    def __init__(self, signal_48k: np.ndarray, *, overflow_at=(), error_at=(), interrupt_at=None):
        self.signal, self.pos, self.reads = signal_48k, 0, 0
        self.overflow_at, self.error_at, self.interrupt_at = set(overflow_at), set(error_at), interrupt_at
        self.opened = []

    def query_devices(self, device=None, kind=None):
        if kind is None and device is None:
            return [{"name": "Fake USB Mic", "index": 0, "max_input_channels": 1,
                     "default_samplerate": 48000.0}]
        if device not in (None, 0, "Fake USB Mic", "USB"):
            raise ValueError(f"No input device matching {device!r}")
        return {"name": "Fake USB Mic", "index": 0, "max_input_channels": 1, "default_samplerate": 48000.0}

    def InputStream(self, *, device, samplerate, channels, dtype, blocksize):  # noqa: N802
        if samplerate != 48000:
            raise self.PortAudioError("Invalid sample rate [PaErrorCode -9997]")
        assert dtype == "int16" and channels == 1
        self.opened.append(samplerate)
        fake = self

        class Stream:
            def start(self):
                pass

            def read(self, frames):
                i = fake.reads
                fake.reads += 1
                if i == fake.interrupt_at:
                    raise KeyboardInterrupt
                if i in fake.error_at:
                    raise fake.PortAudioError("Stream is stopped [PaErrorCode -9983]")
                chunk = fake.signal[fake.pos:fake.pos + frames]
                chunk = np.pad(chunk, (0, frames - len(chunk)))
                fake.pos += frames
                pcm = np.round(np.clip(chunk, -1, 1) * 32767).astype(np.int16)
                return pcm[:, None], i in fake.overflow_at

            def stop(self):
                pass

            def close(self):
                pass

        return Stream()


@pytest.fixture
def fake_sd(monkeypatch, stream_files):
    holder = {}

    def install(**kwargs):
        fake = FakeSD(resample(stream_files["audio"], SR, 48000), **kwargs)
        monkeypatch.setattr(sources, "_import_sounddevice", lambda: fake)
        monkeypatch.setattr(sources.time, "sleep", lambda s: None)  # retry back-off
        holder["sd"] = fake
        return fake

    return install


def test_listen_microphone_resampled_with_overflows_and_a_transient_error(tiny_models, stream_files,
                                                                          fake_sd, capsys):
    fake = fake_sd(overflow_at={5, 40}, error_at={60})
    code = listen.main(["--model", str(tiny_models["int8"]), "--device", "USB", "--json",
                        "--max-seconds", str(STREAM_S)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert fake.opened == [48000, 48000]  # 8 kHz refused, then reopened once after the error
    labels = [label for _, label in parse_json(out)]
    assert labels == [label for _, label in PLACEMENTS]
    assert "2 overflows" in err and "input overflow" in err and "retrying in" in err
    assert "Fake USB Mic' (48000 Hz, 1 ch)" in err


def test_listen_ctrl_c_prints_the_summary_and_exits_130(tiny_models, fake_sd, capsys):
    fake_sd(overflow_at={3}, interrupt_at=50)  # 50 reads of 100 ms = 5 s
    code = listen.main(["--model", str(tiny_models["int8"]), "--json"])
    out, err = capsys.readouterr()
    assert code == 130
    assert [label for _, label in parse_json(out)] == ["yes"]
    last = err.strip().splitlines()[-1]
    # 5 s captured at 48 kHz; the resampler holds back its few samples of look-ahead, so the
    # 17th window (ending at exactly 5 s) is not complete
    assert last.startswith("kws-listen: interrupted; 16 windows scored, 1 detections, 1 overflows, "
                           "mean latency ")
    assert "ms per window (5.00 s of audio)" in last


def test_listen_list_devices(fake_sd, capsys):
    fake_sd()
    assert listen.main(["--list-devices"]) == 0
    assert capsys.readouterr().out.strip() == "*  0  Fake USB Mic  (1 in, default 48000 Hz)"


# -----------------------------------------------------------------------------------------
# Failures: one line, non-zero exit
# -----------------------------------------------------------------------------------------
def run_error(capsys, argv) -> tuple[int, str]:
    code = listen.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1]


def test_missing_microphone(tiny_models, fake_sd, capsys):
    fake_sd()
    code, line = run_error(capsys, ["--model", str(tiny_models["int8"]), "--device", "Blue Yeti"])
    assert code == 1
    assert line == ("kws-listen: error: microphone 'Blue Yeti': no such audio input (No input device "
                    "matching 'Blue Yeti'); see kws-listen --list-devices")


def test_broken_microphone_gives_up_after_retries(tiny_models, fake_sd, capsys):
    fake_sd(error_at=set(range(3, 100)))
    code, line = run_error(capsys, ["--model", str(tiny_models["int8"])])
    assert code == 1
    assert line.startswith("kws-listen: error: microphone 'Fake USB Mic' (48000 Hz, 1 ch): audio input "
                           "failed 6 times in a row (Stream is stopped")


def test_unreadable_wav(tiny_models, tmp_path, capsys):
    (tmp_path / "notes.wav").write_text("not audio")
    code, line = run_error(capsys, ["--model", str(tiny_models["int8"]), "--wav", str(tmp_path / "notes.wav")])
    assert code == 2
    assert line == f"kws-listen: error: {tmp_path / 'notes.wav'}: not a WAV file (no RIFF/WAVE header)"
    code, line = run_error(capsys, ["--model", str(tiny_models["int8"]), "--wav", str(tmp_path / "nope.wav")])
    assert (code, line) == (2, f"kws-listen: error: {tmp_path / 'nope.wav'}: WAV file not found")
    code, line = run_error(capsys, ["--model", str(tiny_models["int8"]), "--wav", str(tmp_path)])
    assert (code, line) == (2, f"kws-listen: error: {tmp_path}: is a directory; expected a WAV file")


def test_a_missing_wav_is_the_only_line_on_stderr(tiny_models, tmp_path):
    """Checked before the model loads: LiteRT's start-up line (written by C++, past Python) never precedes it."""
    proc = subprocess.run([*_console("kws-listen"), "--model", str(tiny_models["int8"]), "--wav",
                           str(tmp_path / "nope.wav")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"kws-listen: error: {tmp_path / 'nope.wav'}: WAV file not found"]


def _wav(tmp_path) -> str:
    """A real (silent, half-second) wav: the model errors below come after the wav's own check."""
    path = tmp_path / "x.wav"
    write_wav(path, np.zeros(SR // 2, dtype=np.float32), SR)
    return str(path)


def _copy_model(tiny_models, tmp_path, name="m") -> Path:
    dst = tmp_path / f"{name}.tflite"
    shutil.copy(tiny_models["int8"], dst)
    shutil.copy(sidecar_path(tiny_models["int8"]), sidecar_path(dst))
    return dst


def test_corrupt_tflite(tiny_models, tmp_path, capsys):
    path = _copy_model(tiny_models, tmp_path)
    path.write_bytes(path.read_bytes()[:500])
    code, line = run_error(capsys, ["--model", str(path), "--wav", _wav(tmp_path)])
    assert code == 2
    assert line.startswith(f"kws-listen: error: {path}: not a loadable .tflite model (")
    path.write_bytes(b"garbage" * 100)
    code, line = run_error(capsys, ["--model", str(path), "--wav", _wav(tmp_path)])
    assert code == 2 and "not a loadable .tflite model" in line


def test_json_that_does_not_match_the_model(tiny_models, tmp_path, capsys):
    path = _copy_model(tiny_models, tmp_path)
    meta = ModelMeta.load(sidecar_path(path))
    ModelMeta(meta.labels[:10], meta.features, dict(meta.extra)).save(sidecar_path(path))
    code, line = run_error(capsys, ["--model", str(path), "--wav", _wav(tmp_path)])
    assert (code, line) == (2, "kws-listen: error: m.tflite: its JSON lists 10 labels, but the model "
                               "outputs 12 classes")
    from kws.runtime.features import FeatureConfig

    ModelMeta(meta.labels, FeatureConfig(mel_bands=40), dict(meta.extra)).save(sidecar_path(path))
    code, line = run_error(capsys, ["--model", str(path), "--wav", _wav(tmp_path)])
    assert code == 2
    assert line == ("kws-listen: error: m.tflite: its JSON's feature settings give input shape "
                    "(40, 126, 1), but the model takes (130, 126, 1)")


def test_model_without_json(tiny_models, tmp_path, capsys):
    path = _copy_model(tiny_models, tmp_path)
    sidecar_path(path).unlink()
    code, line = run_error(capsys, ["--model", str(path)])
    assert code == 2 and "no feature/label JSON beside it" in line


@pytest.mark.parametrize("flags,message", [
    (["--threshold", "1.5"], "threshold 1.5: expected a probability in [0, 1]"),
    (["--keywords", "yes", "maybe"], "keyword(s) maybe not among the model's labels"),
    (["--keywords", "silence"], "silence never fire"),
    (["--hop-ms", "0.1"], "--hop-ms 0.1 is not a whole number of samples at 8000 Hz"),
    (["--hop-ms", "-5"], "--hop-ms -5.0: expected a positive number"),
    (["--smoothing", "0"], "smoothing of 0 windows"),
    (["--min-count", "0"], "minimum count 0"),
    (["--refractory-ms", "-1"], "refractory period -1.0 ms"),
    (["--threads", "0"], "--threads 0: expected a positive integer"),
    (["--threads", "100000"], "--threads 100000: expected a positive integer, at most 256"),
    (["--hop-ms", "1500"], "--hop-ms 1500: expected at most the window, 1000 ms"),
    (["--realtime"], "--realtime only applies to --wav"),
    (["--wav", "a.wav", "--stdin"], "--wav and --stdin both given"),
    (["--stdin", "--stdin-rate", "0"], "--stdin-rate 0"),
    (["--wav", "a.wav", "--device", "USB"], "--device only applies to the microphone, not to --wav"),
    (["--stdin", "--capture-rate", "16000"], "--capture-rate only applies to the microphone, not to --stdin"),
    (["--wav", "a.wav", "--max-seconds", "3"], "--max-seconds only applies to the microphone, not to --wav"),
    (["--wav", "a.wav", "--stdin-rate", "16000"], "--stdin-rate only applies to --stdin"),
])
def test_bad_flags(tiny_models, capsys, flags, message):
    code, line = run_error(capsys, ["--model", str(tiny_models["int8"]), *flags])
    assert code == 2
    assert line.startswith("kws-listen: error: ") and message in line


def test_help_documents_exit_codes(capsys):
    with pytest.raises(SystemExit) as info:
        listen.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--model", "--threads", "--hop-ms", "--threshold", "--smoothing", "--refractory-ms",
                 "--min-count", "--keywords", "--device", "--list-devices", "--wav", "--realtime",
                 "--stdin", "--json", "--verbose", "--backend"):
        assert flag in text
    assert "exit codes:" in text and "130" in text and "Ctrl-C" in text


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
@pytest.mark.parametrize("backend", ["ai-edge-litert", "tensorflow"])
def test_backend_flag_names_the_interpreter(tiny_models, stream_files, capsys, backend):
    pytest.importorskip(backend.replace("-", "_"))
    code = listen.main(["--model", str(tiny_models["int8"]), "--wav", str(stream_files["8k"]),
                        "--backend", backend, "--threads", "1", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"on {backend} (1 threads)" in err
    check_detections(parse_json(out), stream_files["truth"])


def test_a_named_backend_that_is_not_installed_is_named(tiny_models, stream_files, capsys, monkeypatch):
    import kws.runtime.interpreter as interpreter

    real = interpreter._import_backend
    monkeypatch.setattr(interpreter, "_import_backend",
                        lambda name: None if name == "tflite-runtime" else real(name))
    code = listen.main(["--model", str(tiny_models["int8"]), "--wav", str(stream_files["8k"]),
                        "--backend", "tflite-runtime"])
    err = capsys.readouterr().err
    assert code == 2
    assert "interpreter backend 'tflite-runtime' is not installed (pip install tflite-runtime)" in err


def test_an_op_newer_than_the_interpreter_is_named(tiny_models, monkeypatch):
    import kws.runtime.interpreter as interpreter

    class OldInterpreter:   # what tflite-runtime 2.14 says of an ensemble's int8 LOG
        def __init__(self, **kwargs):
            raise ValueError("Didn't find op for builtin opcode 'LOG' version '2'. An older version of this "
                             "builtin might be supported. Are you using an old TFLite binary with a newer model?\n"
                             "Registration failed.")

    monkeypatch.setattr(interpreter, "_import_backend", lambda name: OldInterpreter)
    with pytest.raises(ModelError) as info:
        interpreter.TfliteModel(tiny_models["int8"], backend="tflite-runtime")
    assert str(info.value) == (
        f"{tiny_models['int8']}: the tflite-runtime interpreter has no LOG op of version 2, which this model needs "
        "(the interpreter is older than the converter that wrote the model); run it with ai-edge-litert, or merge "
        "the ensemble with kws-ensemble --combine geometric (its int8 graph has no LOG)")

    class Broken:
        def __init__(self, **kwargs):
            raise RuntimeError("Model provided has model identifier 'abcd', should be 'TFL3'\n")

    monkeypatch.setattr(interpreter, "_import_backend", lambda name: Broken)
    with pytest.raises(ModelError, match=r"not a loadable .tflite model \(Model provided has model identifier"):
        interpreter.TfliteModel(tiny_models["int8"])


def test_quantization_is_read_from_the_model_when_the_json_has_none(tiny_models, tmp_path):
    import shutil

    from kws.runtime.meta import ModelMeta
    from kws.runtime.model import KwsModel

    model = tmp_path / "m.tflite"
    shutil.copy(tiny_models["int8"], model)
    meta = ModelMeta.load(tiny_models["int8"].with_suffix(".json"))
    ModelMeta(meta.labels, meta.features, {k: v for k, v in meta.extra.items() if k != "quantization"}).save(
        model.with_suffix(".json"))
    assert KwsModel(model).quantization_type == "int8"
    assert KwsModel(tiny_models["int8"]).quantization_type == "int8"


def test_audio_shorter_than_a_window_is_said(tiny_models, tmp_path, capsys):
    write_wav(tmp_path / "blip.wav", np.zeros(80, np.float32), SR)
    code = listen.main(["--model", str(tiny_models["int8"]), "--wav", str(tmp_path / "blip.wav"), "-q"])
    err = capsys.readouterr().err
    assert code == 0
    assert "0.01 s of audio is shorter than one window (1.00 s): nothing was scored" in err
