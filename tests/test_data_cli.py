"""kws-data: inspect, from-folder (tiny generated Speech Commands tree), fetch (local HTTP server)."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from kws.runtime.audio_io import write_wav
from kws.train import data_cli, fetch as fetch_mod
from kws.train.data import load_npz, split_dataset
from kws.train.speech_commands import build_from_folder, fit_length, speaker_of, to_rate


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = data_cli.main(["-q", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------ inspect

@pytest.fixture()
def level_npz(tmp_path) -> Path:
    """4 int16 clips with known levels: a full-scale square, a -20 dBFS-peak sine, zeros, a clipped sine."""
    t = np.arange(8000) / 8000
    wav = np.zeros((4, 8000), np.int16)
    wav[0] = np.where(np.sin(2 * np.pi * 100 * t) >= 0, 32767, -32768)  # every sample at full scale
    wav[1] = np.round(3277 * np.sin(2 * np.pi * 440 * t))  # peak 0.1 -> -20 dBFS, RMS -23 dBFS
    wav[3] = np.clip(np.round(60000 * np.sin(2 * np.pi * 50 * t)), -32768, 32767)
    labels = np.array([["yes"], ["yes"], ["silence"], ["go"]])
    path = tmp_path / "levels.npz"
    np.savez(path, wav_vals=wav, label_vals=labels, speaker=np.array(["a", "b", "b", "c"]))
    return path


def test_inspect_json_numbers(capsys, level_npz):
    code, out, err = run_cli(capsys, "inspect", str(level_npz), "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["clips"] == 4 and s["dtype"] == "int16" and s["speakers"] == 3
    assert s["duration_min"] == pytest.approx(4 / 60)
    assert s["clipped_clips"] == 2 and s["clipped_clip_fraction"] == pytest.approx(0.5)
    n_full = 8000 + int(np.sum(np.abs(np.clip(np.round(60000 * np.sin(2 * np.pi * 50 * np.arange(8000) / 8000)),
                                              -32768, 32767)) >= 32767))
    assert s["clipped_sample_fraction"] == pytest.approx(n_full / 32000)
    assert s["peak_dbfs_max"] == pytest.approx(0.0, abs=1e-3)
    assert s["all_zero_clips"] == 1
    assert s["labels"]["yes"]["clips"] == 2 and s["labels"]["yes"]["speakers"] == 2
    assert s["labels"]["yes"]["clipped_clips"] == 1
    assert s["labels"]["silence"]["rms_dbfs_median"] is None  # only an all-zero clip
    assert s["labels"]["no"]["clips"] == 0
    audio = np.load(level_npz)["wav_vals"].astype(np.float64) / 32768
    rms = np.sqrt(np.mean(audio ** 2, axis=1))[[0, 1, 3]]  # the all-zero clip is left out
    assert s["rms_dbfs_median"] == pytest.approx(20 * np.log10(np.median(rms)))
    assert s["rms_dbfs_p10"] == pytest.approx(20 * np.log10(np.percentile(rms, 10)))
    assert s["rms_dbfs_p90"] == pytest.approx(20 * np.log10(np.percentile(rms, 90)))
    assert s["peak_dbfs_median"] == pytest.approx(20 * np.log10(np.median(np.abs(audio).max(axis=1))))
    assert 20 * np.log10(rms[1]) == pytest.approx(-23.0, abs=0.1)  # the 0.1-peak sine


def test_inspect_text_report(capsys, synth_npz):
    code, out, _ = run_cli(capsys, "inspect", str(synth_npz))
    assert code == 0
    assert "288 x 8000 samples, float32 in [-1, 1], 8000 Hz" in out
    assert "duration    4.8 min" in out
    assert "speakers    10" in out
    assert "clipping    0 clips (0.00 %) reach full scale" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines()[10:]}
    assert lines["yes"][1] == "24" and lines["yes"][2] == "8.3%" and lines["silence"][1] == "24"


def test_inspect_bad_file_one_line(capsys, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"")
    code, out, err = run_cli(capsys, "inspect", str(bad))
    assert code == 2 and out == ""
    assert err == f"kws-data: error: {bad}: file is empty (0 bytes), expected an .npz\n"


def test_inspect_object_labels_flag(capsys, tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, wav_vals=np.zeros((2, 8000), np.float32), label_vals=np.array([["yes"], ["no"]], dtype=object))
    code, _, err = run_cli(capsys, "inspect", str(path))
    assert code == 2 and "allow_pickle=True" in err and "Traceback" not in err
    code, out, _ = run_cli(capsys, "inspect", str(path), "--allow-pickle")
    assert code == 0 and "2 x 8000 samples" in out
    code, out, _ = run_cli(capsys, "--allow-pickle", "inspect", str(path))  # as the loader's message says
    assert code == 0 and "2 x 8000 samples" in out


# ------------------------------------------------------------------------------------ from-folder

def _write_wav(path: Path, audio: np.ndarray, rate: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, audio, rate)


@pytest.fixture()
def sc_tree(tmp_path) -> Path:
    """A tiny Speech Commands v2-like tree: 3 keywords + 2 other words, 4 speakers, noise, lists."""
    root = tmp_path / "speech_commands"
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    speakers = ["0a7c2a8d", "1b4c9b89", "2c5d0e1f", "3d6e1f20"]
    for w, word in enumerate(["yes", "no", "left", "bed", "cat"]):
        for s, spk in enumerate(speakers):
            for k in range(2):
                n = 16000 if (s + k) % 3 else 12000  # some clips shorter than 1 s
                tone = 0.5 * np.sin(2 * np.pi * (300 + 100 * w) * t[:n])
                _write_wav(root / word / f"{spk}_nohash_{k}.wav", tone)
    _write_wav(root / "_background_noise_" / "white_noise.wav", rng.uniform(-0.5, 0.5, 16000 * 12))
    _write_wav(root / "_background_noise_" / "pink_noise.wav", 0.3 * rng.standard_normal(16000 * 11))
    (root / "_background_noise_" / "README.md").write_text("noise")
    (root / "_ignored_").mkdir()
    (root / "validation_list.txt").write_text("yes/1b4c9b89_nohash_0.wav\nbed/1b4c9b89_nohash_1.wav\n")
    (root / "testing_list.txt").write_text("\n".join(f"{w}/3d6e1f20_nohash_{k}.wav"
                                                     for w in ["yes", "no", "left", "bed", "cat"] for k in (0, 1)))
    (root / "LICENSE").write_text("CC BY 4.0")
    return root


def test_from_folder_builds_a_valid_npz(capsys, tmp_path, sc_tree):
    out = tmp_path / "sc.npz"
    code, stdout, err = run_cli(capsys, "from-folder", str(sc_tree), str(out), "--silence-clips", "10", "--seed", "3")
    assert code == 0, err
    assert f"wrote {out}: 50 clips from 5 word folders" in stdout and "16000 Hz: 40" in stdout
    assert "skipped folders: _ignored_" in stdout

    ds = load_npz(out)
    assert len(ds) == 50 and ds.wav.dtype == np.int16
    names = ds.label_strings()
    assert {n: int((names == n).sum()) for n in set(names)} == {"yes": 8, "no": 8, "left": 8, "unknown": 16,
                                                                  "silence": 10}
    with np.load(out) as z:
        words, speakers, split = z["word"], z["speaker"], z["split"]
    assert set(words[names == "unknown"]) == {"bed", "cat"}
    assert set(speakers[names != "silence"]) == {"0a7c2a8d", "1b4c9b89", "2c5d0e1f", "3d6e1f20"}
    assert set(speakers[names == "silence"]) <= {"noise:white_noise", "noise:pink_noise"}
    # official lists -> split array
    is_val = (words == "yes") & (speakers == "1b4c9b89")
    assert split[(words == "bed") & (speakers == "1b4c9b89")].tolist().count("validation") == 1
    assert (split[(speakers == "3d6e1f20")] == "testing").all()
    assert split[is_val].tolist().count("validation") == 1
    speech = names != "silence"
    assert int((split[speech] == "testing").sum()) == 10 and int((split[speech] == "validation").sum()) == 2
    # resampled tone: 300 Hz at 8 kHz, -6 dBFS peak, padded with zeros where the source was 0.75 s
    yes0 = ds.audio(int(np.flatnonzero((words == "yes") & (speakers == "0a7c2a8d"))[0]))
    spectrum = np.abs(np.fft.rfft(yes0))
    assert np.argmax(spectrum) == pytest.approx(300, abs=1)
    assert 0.45 < np.abs(yes0).max() < 0.55
    short = ds.audio(int(np.flatnonzero((words == "yes") & (speakers == "0a7c2a8d"))[0]))
    assert np.all(short[6100:] == 0)  # (0 + 0) % 3 == 0: the 12000-sample source -> 6000 samples + padding
    # speaker split of the built file keeps speakers apart
    s = split_dataset(ds, seed=0)
    assert not set(ds.speaker[s.train]) & set(ds.speaker[s.test])


def test_from_folder_is_reproducible_and_seeded(tmp_path, sc_tree):
    a = build_from_folder(sc_tree, tmp_path / "a.npz", silence_clips=6, seed=1, progress=False)
    b = build_from_folder(sc_tree, tmp_path / "b.npz", silence_clips=6, seed=1, progress=False)
    c = build_from_folder(sc_tree, tmp_path / "c.npz", silence_clips=6, seed=2, progress=False)
    with np.load(a.out) as za, np.load(b.out) as zb, np.load(c.out) as zc:
        np.testing.assert_array_equal(za["wav_vals"], zb["wav_vals"])
        assert not np.array_equal(za["wav_vals"][-6:], zc["wav_vals"][-6:])
        np.testing.assert_array_equal(za["wav_vals"][:-6], zc["wav_vals"][:-6])


def test_from_folder_options(tmp_path, sc_tree):
    s = build_from_folder(sc_tree, tmp_path / "o.npz", keywords=("yes",), silence_clips=0, max_unknown=5,
                          dtype="float32", progress=False)
    assert s.counts == {"yes": 8, "unknown": 5}
    ds = load_npz(s.out)
    assert ds.wav.dtype == np.float32
    default = build_from_folder(sc_tree, tmp_path / "d.npz", progress=False)
    assert default.counts["silence"] == 8  # mean clips per keyword


def test_from_folder_without_lists_has_no_split(tmp_path, sc_tree):
    (sc_tree / "validation_list.txt").unlink()
    (sc_tree / "testing_list.txt").unlink()
    s = build_from_folder(sc_tree, tmp_path / "n.npz", silence_clips=2, progress=False)
    assert s.split_counts is None and load_npz(s.out).split is None


@pytest.mark.parametrize("setup,args,message", [
    (None, ["nowhere"], "not a directory; expected an unpacked Speech Commands tree"),
    ("empty", [], "no word folders with .wav files"),
    ("nonoise", ["--silence-clips", "3"], "no _background_noise_/*.wav to cut 3 silence clips from"),
    (None, ["--keywords", "yes,bed"], "keywords ['bed'] are not in the vocabulary"),
    (None, ["--silence-clips", "-1"], "--silence-clips -1 is negative"),
    (None, ["--max-unknown", "-1"], "--max-unknown -1 is negative, expected 0 or more"),
    (None, ["--seed", "-1"], "--seed -1: expected an integer in [0, 2**32)"),
])
def test_from_folder_errors(capsys, tmp_path, sc_tree, setup, args, message):
    root = sc_tree
    if setup == "empty":
        root = tmp_path / "empty"
        root.mkdir()
    elif setup == "nonoise":
        for f in (sc_tree / "_background_noise_").iterdir():
            f.unlink()
    if args and args[0] == "nowhere":
        root, args = tmp_path / "nowhere", []
    code, _, err = run_cli(capsys, "from-folder", str(root), str(tmp_path / "x.npz"), *args)
    assert code == 2 and message in err and err.count("\n") == 1


def test_from_folder_existing_out_needs_force(capsys, tmp_path, sc_tree):
    out = tmp_path / "sc.npz"
    out.write_bytes(b"mine")
    code, _, err = run_cli(capsys, "from-folder", str(sc_tree), str(out), "--silence-clips", "2")
    assert code == 2 and err == f"kws-data: error: {out}: exists; pass --force to overwrite it\n"
    assert out.read_bytes() == b"mine"
    code, _, err = run_cli(capsys, "from-folder", str(sc_tree), str(out), "--silence-clips", "2", "--force")
    assert code == 0, err
    assert len(load_npz(out)) == 42


def test_from_folder_out_is_a_folder(capsys, tmp_path, sc_tree):
    out = tmp_path / "adir.npz"
    out.mkdir()
    code, _, err = run_cli(capsys, "from-folder", str(sc_tree), str(out), "--force")
    assert code == 2 and err == f"kws-data: error: {out}: is a directory; expected a file name\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir.npz", "speech_commands"]


def test_from_folder_failed_write_leaves_nothing(tmp_path, sc_tree, monkeypatch):
    from kws.runtime.errors import DataError

    out = tmp_path / "new" / "sc.npz"

    def full_disk(fh, **arrays):   # kws.runtime.fileio hands numpy an open file
        fh.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(DataError, match=r"cannot write .*sc.npz: No space left on device"):
        build_from_folder(sc_tree, out, silence_clips=2, progress=False)
    assert not (tmp_path / "new").exists()  # no temporary file, and no folder made for it


def test_helpers():
    assert speaker_of(Path("yes/0a7c2a8d_nohash_3.wav")) == "0a7c2a8d"
    assert speaker_of(Path("noise.wav")) == "noise"
    x = np.zeros(10000, np.float32)
    x[7000:7100] = 1.0
    cut = fit_length(x, 8000)
    assert len(cut) == 8000 and cut.sum() == 100  # the loudest second is kept
    assert len(fit_length(np.ones(10), 8000)) == 8000
    # polyphase 16 -> 8 kHz removes content above 4 kHz
    t = np.arange(16000) / 16000
    y = to_rate(np.sin(2 * np.pi * 5000 * t).astype(np.float32), 16000, 8000)
    assert y.dtype == np.float32 and len(y) == 8000 and np.abs(y[200:-200]).max() < 0.01


# ------------------------------------------------------------------------------------ fetch

PAYLOAD = bytes(np.random.default_rng(7).integers(0, 256, 300_000, dtype=np.uint8))


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /speech_wav_8000.npz. Server attributes steer it: ``ranges`` (honour Range),
    ``cut_at`` (announce the full length but close after this many bytes), ``seen`` (Range headers)."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        srv = self.server
        if self.path != "/speech_wav_8000.npz":
            self.send_error(404, "Not Found")
            return
        srv.seen.append(self.headers.get("Range"))
        start = 0
        rng = self.headers.get("Range")
        if rng and srv.ranges:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cut_at is not None:
            self.wfile.write(body[: srv.cut_at])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture()
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.ranges, srv.cut_at, srv.seen = True, None, []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/speech_wav_8000.npz"
    yield srv
    srv.shutdown()
    srv.server_close()


def test_fetch_downloads_and_checks_size(capsys, tmp_path, server):
    code, out, err = run_cli(capsys, "fetch", "--url", server.url, "--out", str(tmp_path / "data"))
    assert code == 0, err
    dest = tmp_path / "data" / "speech_wav_8000.npz"
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "data" / "speech_wav_8000.npz.part").exists()
    assert f"{dest}  (300,000 bytes)" in out
    assert server.seen == [None]
    # already there: no second request
    code, _, _ = run_cli(capsys, "fetch", "--url", server.url, "--out", str(tmp_path / "data"))
    assert code == 0 and server.seen == [None]


def test_fetch_resumes_with_range(tmp_path, server):
    dest = tmp_path / "speech_wav_8000.npz"
    part = tmp_path / "speech_wav_8000.npz.part"
    part.write_bytes(PAYLOAD[:123_456])
    assert fetch_mod.fetch(server.url, dest, progress=False) == dest
    assert server.seen == ["bytes=123456-"]
    assert dest.read_bytes() == PAYLOAD and not part.exists()


def test_fetch_broken_connection_then_resume(tmp_path, server):
    dest = tmp_path / "speech_wav_8000.npz"
    server.cut_at = 100_000
    with pytest.raises(fetch_mod.FetchError, match="run kws-data fetch again to resume") as info:
        fetch_mod.fetch(server.url, dest, progress=False)
    assert info.value.exit_code == 1 and not dest.exists()
    part = tmp_path / "speech_wav_8000.npz.part"
    assert 0 < part.stat().st_size <= 100_000
    have = part.stat().st_size
    server.cut_at = None
    fetch_mod.fetch(server.url, dest, progress=False)
    assert server.seen[-1] == f"bytes={have}-" and dest.read_bytes() == PAYLOAD


def test_fetch_restarts_when_server_ignores_range(tmp_path, server):
    server.ranges = False
    dest = tmp_path / "speech_wav_8000.npz"
    (tmp_path / "speech_wav_8000.npz.part").write_bytes(b"garbage" * 100)
    fetch_mod.fetch(server.url, dest, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_fetch_complete_part_is_finished(tmp_path, server):
    dest = tmp_path / "speech_wav_8000.npz"
    (tmp_path / "speech_wav_8000.npz.part").write_bytes(PAYLOAD)
    fetch_mod.fetch(server.url, dest, progress=False)  # HTTP 416 with the total: nothing left to fetch
    assert dest.read_bytes() == PAYLOAD and server.seen == [f"bytes={len(PAYLOAD)}-"]


def test_fetch_oversized_part_is_removed(tmp_path, server):
    dest = tmp_path / "speech_wav_8000.npz"
    part = tmp_path / "speech_wav_8000.npz.part"
    part.write_bytes(PAYLOAD + b"extra")
    with pytest.raises(fetch_mod.FetchError, match="refused to resume"):
        fetch_mod.fetch(server.url, dest, progress=False)
    assert not part.exists()


def test_fetch_http_error(capsys, tmp_path, server):
    code, _, err = run_cli(capsys, "fetch", "--url", server.url.replace(".npz", "_x.npz"), "--out", str(tmp_path))
    assert code == 1 and "HTTP 404" in err and err.count("\n") == 1


def test_fetch_offline_says_where_to_put_the_file(capsys, tmp_path):
    with socket.socket() as s:  # a local port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/speech_wav_8000.npz"
    code, out, err = run_cli(capsys, "fetch", "--url", url, "--out", str(tmp_path / "d"), "--timeout-s", "5")
    dest = tmp_path / "d" / "speech_wav_8000.npz"
    assert code == 1 and out == ""
    assert err.startswith(f"kws-data: error: cannot reach {url} (")
    assert f"put it at {dest}" in err and err.count("\n") == 1
    assert not (tmp_path / "d").exists()   # the folder made for the download is gone again


@pytest.mark.parametrize("args, message", [
    (["--url", "notaurl"], "--url notaurl: expected an http:// or https:// address"),
    (["--url", "ftp:/x.npz"], "--url ftp:/x.npz: expected an http:// or https:// address"),
    (["--timeout-s", "-1"], "--timeout-s -1.0: expected a number of seconds > 0"),
    (["--timeout-s", "nan"], "--timeout-s nan: expected a number of seconds > 0"),
    (["--timeout-s", "inf"], "--timeout-s inf: expected a number of seconds > 0"),
    (["--name", "../x.npz"], "--name '../x.npz': expected a plain file name (no folder, no '..')"),
    (["--name", "sub/x.npz"], "--name 'sub/x.npz': expected a plain file name"),
    (["--name", ".."], "--name '..': expected a plain file name"),
    (["--name", ""], "--name '': expected a plain file name"),
    (["--out", "{tmp}/ok.wav"], "{tmp}/ok.wav/speech_wav_8000.npz: folder {tmp}/ok.wav is not a directory"),
    (["--name", "adir"], "{tmp}/d/adir: is a directory; expected a file name"),
])
def test_fetch_bad_input_is_one_line(capsys, tmp_path, server, args, message):
    (tmp_path / "ok.wav").write_bytes(b"mine")
    (tmp_path / "d" / "adir").mkdir(parents=True)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    base = {"--url": server.url, "--out": str(tmp_path / "d")}
    for flag in args[::2]:
        base.pop(flag, None)
    code, out, err = run_cli(capsys, "fetch", *[x for kv in base.items() for x in kv], *args)
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert message.replace("{tmp}", str(tmp_path)) in err
    assert server.seen == []  # refused before any request
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "ok.wav"]
    assert (tmp_path / "ok.wav").read_bytes() == b"mine"
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["adir"]


def test_fetch_default_path_is_the_seeds(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert fetch_mod.default_path() == tmp_path / "aiffel" / "speech_recognition" / "data" / "speech_wav_8000.npz"


# ------------------------------------------------------------------------------------ plugins

def test_plugin_subcommand_unavailable(capsys, monkeypatch):
    monkeypatch.setitem(data_cli.PLUGINS, "stream", ("kws.train.no_such_module", "help"))
    code, out, err = run_cli(capsys, "stream", "--minutes", "1")
    assert code == 1 and out == ""
    assert "'stream' is not available in this installation: cannot import kws.train.no_such_module" in err
    # --help still lists it
    with pytest.raises(SystemExit) as info:
        data_cli.main(["--help"])
    assert info.value.code == 0
    assert "stream" in capsys.readouterr().out


def test_plugin_module_loaded_only_when_run(capsys, monkeypatch, synth_npz):
    import sys

    monkeypatch.setitem(data_cli.PLUGINS, "demo", ("kws.train.no_such_module", "help"))
    monkeypatch.delitem(sys.modules, "kws.train.no_such_module", raising=False)
    code, _, _ = run_cli(capsys, "inspect", str(synth_npz))
    assert code == 0  # a broken plugin does not break the other subcommands


def test_no_command_is_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        data_cli.main([])
    assert info.value.code == 2


def test_plugin_dispatch(capsys, monkeypatch):
    import sys
    import types

    fake = types.ModuleType("kws_fake_plugin")
    fake.__doc__ = "A fake subcommand."
    fake.add_arguments = lambda p: p.add_argument("--minutes", type=float, required=True)
    fake.run = lambda args: print(f"ran {args.minutes}") or 0
    monkeypatch.setitem(sys.modules, "kws_fake_plugin", fake)
    monkeypatch.setitem(data_cli.PLUGINS, "stream", ("kws_fake_plugin", "help"))
    code, out, _ = run_cli(capsys, "stream", "--minutes", "2.5")
    assert code == 0 and out == "ran 2.5\n"
    with pytest.raises(SystemExit) as info:
        data_cli.main(["stream"])  # its own required option: argparse usage error
    assert info.value.code == 2 and "--minutes" in capsys.readouterr().err
