"""kws.runtime.fileio: the output checks and atomic writes every command shares."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from kws.runtime.errors import DataError
from kws.runtime.fileio import (check_distinct, check_output, check_seed, save_npz, temporary_path,
                                write_atomically, write_text_atomic)


def test_check_output_cases(tmp_path):
    (tmp_path / "d.json").mkdir()
    (tmp_path / "f").write_text("mine")
    assert check_output(tmp_path / "new.json", flag="--out", force=False, suffix=".json") == tmp_path / "new.json"
    cases = [
        (dict(path=tmp_path / "x.txt", suffix=".json"), "--out {t}/x.txt: expected a .json path"),
        (dict(path=tmp_path / "d.json"), "--out {t}/d.json: is a directory; expected a file name"),
        (dict(path=tmp_path / "no" / "x.json"), "--out {t}/no/x.json: folder {t}/no does not exist (make it first)"),
        (dict(path=tmp_path / "f" / "x.json", make_folder=True), "folder {t}/f is not a directory"),
        (dict(path=tmp_path / "f"), "--out {t}/f: exists; pass --force to overwrite it"),
    ]
    for kwargs, message in cases:
        with pytest.raises(DataError) as info:
            check_output(flag="--out", force=False, **kwargs)
        assert message.format(t=tmp_path) in str(info.value)
    assert check_output(tmp_path / "f", flag="--out", force=True) == tmp_path / "f"
    assert check_output(tmp_path / "a" / "b" / "x.json", flag="--out", force=False, make_folder=True)
    with pytest.raises(DataError, match=r"^{}: exists".format(tmp_path / "f")):
        check_output(tmp_path / "f", flag="", force=False)     # a positional argument: no flag


def test_check_seed_and_distinct(tmp_path):
    assert check_seed(0) == 0 and check_seed(np.int64(2**32 - 1)) == 2**32 - 1
    for bad in (-1, 2**32, 1.5, True, "3"):
        with pytest.raises(DataError, match=r"expected an integer in \[0, 2\*\*32\)"):
            check_seed(bad)
    data = tmp_path / "in.npz"
    data.write_bytes(b"x")
    with pytest.raises(DataError, match="is the --data file it reads"):
        check_distinct({"--out": data}, {"--data": data})
    with pytest.raises(DataError, match="is the same file as --out"):
        check_distinct({"--out": tmp_path / "a.wav", "--truth": tmp_path / "a.wav"}, {})


def test_write_atomically_all_or_nothing_and_keeps_permissions(tmp_path):
    old = tmp_path / "a.json"
    old.write_text("old")
    old.chmod(0o600)

    def fail(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(DataError, match=r"cannot write .*b.json: No space left on device"):
        write_atomically([(old, lambda tmp: tmp.write_text("new")), (tmp_path / "b.json", fail)])
    assert old.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    write_text_atomic(old, "new")
    assert old.read_text() == "new" and stat.S_IMODE(old.stat().st_mode) == 0o600
    assert temporary_path(old).name.startswith(".a.json.") and not temporary_path(old).exists()


@pytest.mark.parametrize("links", [True, False])
def test_a_failed_rename_rolls_back_the_ones_before_it(tmp_path, monkeypatch, links):
    """Three files that belong together; the third rename fails: the first two are put back as
    they were (a replaced file restored, a new one removed), and no backup is left behind."""
    import kws.runtime.fileio as fileio

    wav, truth, third = tmp_path / "kw.wav", tmp_path / "kw.json", tmp_path / "kw_negatives.wav"
    wav.write_text("old wav")
    third.write_text("old third")
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst) == third and Path(src).name.endswith(".tmp"):
            raise OSError(13, "Permission denied")
        return real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", replace)
    if not links:
        monkeypatch.setattr(fileio.os, "link", lambda a, b: (_ for _ in ()).throw(OSError(1, "no links here")))
    with pytest.raises(DataError, match="cannot write .*kw_negatives.wav: Permission denied"):
        write_atomically([(wav, lambda tmp: tmp.write_text("new wav")), (truth, lambda tmp: tmp.write_text("new")),
                          (third, lambda tmp: tmp.write_text("new third"))])
    assert wav.read_text() == "old wav" and not truth.exists() and third.read_text() == "old third"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kw.wav", "kw_negatives.wav"]
    monkeypatch.setattr(fileio.os, "replace", real_replace)
    write_atomically([(wav, lambda tmp: tmp.write_text("new wav")), (truth, lambda tmp: tmp.write_text("new"))])
    assert wav.read_text() == "new wav" and truth.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kw.json", "kw.wav", "kw_negatives.wav"]


def test_save_npz_writes_exactly_the_path(tmp_path):
    path = save_npz(tmp_path / "clips.data", {"x": np.arange(3)}, compress=True)
    assert path == tmp_path / "clips.data" and not (tmp_path / "clips.data.npz").exists()
    with np.load(path) as z:
        assert z["x"].tolist() == [0, 1, 2]


def test_write_atomically_makes_missing_folders_and_removes_them_on_failure(tmp_path):
    def fail(tmp):
        raise OSError(28, "No space left on device")

    target = tmp_path / "new" / "deep" / "x.json"
    with pytest.raises(DataError, match="No space left"):
        write_atomically([(tmp_path / "new" / "a.json", lambda tmp: tmp.write_text("a")), (target, fail)])
    assert not (tmp_path / "new").exists()          # every folder this call made is gone again
    write_text_atomic(target, "ok")
    assert target.read_text() == "ok"


def test_read_json_names_the_file_and_what_it_is(tmp_path):
    from kws.runtime.errors import ModelError
    from kws.runtime.fileio import read_json

    good = tmp_path / "good.json"
    good.write_text('{"a": [1, 2]}')
    assert read_json(good, what="truth file") == {"a": [1, 2]}
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "latin1.json").write_bytes(b'{"caf\xe9": 1}')
    cases = {
        tmp_path / "missing.json": "truth file not found (make one)",
        tmp_path: "is a directory; expected a truth file",
        tmp_path / "bad.json": "truth file is not valid JSON (Expecting property name",
        tmp_path / "latin1.json": "not a truth file (not UTF-8 text)",
    }
    for path, message in cases.items():
        with pytest.raises(DataError) as err:
            read_json(path, what="truth file", missing_hint=" (make one)")
        assert str(err.value).startswith(f"{path}: {message}"), str(err.value)
    with pytest.raises(ModelError, match="model JSON not found"):
        read_json(tmp_path / "missing.json", what="model JSON", error=ModelError)
