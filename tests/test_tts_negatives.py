"""Synthetic negative words (kws.train.tts_negatives, ``kws-data tts-negatives``)."""

from __future__ import annotations

import argparse
import collections
import re

import numpy as np
import pytest

from kws.runtime.errors import DataError
from kws.runtime.labels import KEYWORDS, UNKNOWN
from kws.train import tts
from kws.train import tts_negatives as tn
from kws.train.data_cli import main as kws_data


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kws-data tts-negatives")
    tn.add_arguments(parser)
    return parser.parse_args(argv)


# -- the word list ------------------------------------------------------------------------------
def test_built_in_list_is_distinct_and_keyword_free():
    assert len(tn.NEGATIVE_WORDS) == len(set(tn.NEGATIVE_WORDS))
    assert tn.check_words(tn.NEGATIVE_WORDS) == list(tn.NEGATIVE_WORDS)
    assert set(tn.CONFUSABLE_WORDS) == set(KEYWORDS)
    for words in tn.CONFUSABLE_WORDS.values():
        assert set(words) <= set(tn.NEGATIVE_WORDS)
    said = {part for w in tn.NEGATIVE_WORDS for part in re.split(r"[ -]", w)}
    assert not said & set(KEYWORDS)
    # The streams' own wake words stay out (see the module docstring).
    for wake in ("alexa", "computer", "jarvis", "snowboy", "mycroft", "mirror", "glass"):
        assert wake not in said


@pytest.mark.parametrize("word, message", [
    ("stop sign", "'stop sign' contains the keyword 'stop'; a negative word must not"),
    ("Turn OFF", "'Turn OFF' contains the keyword 'off'"),
    ("go-kart", "'go-kart' contains the keyword 'go'"),
    ("rm -rf /", "'rm -rf /' is not a word; expected letters, spaces, apostrophes and hyphens"),
    ('say "hi"', "is not a word"),
    ("caf\u00e9", "is not a word"),
])
def test_check_words_refuses_keywords_and_odd_characters(word, message):
    with pytest.raises(DataError, match=re.escape(message)):
        tn.check_words(["fine", word])


def test_check_words_normalises_and_drops_repeats_and_blanks():
    assert tn.check_words(["  Thank   You ", "thank you", "", "don't", "a", "x-ray"]) == \
        ["thank you", "don't", "a", "x-ray"]
    with pytest.raises(DataError, match="no words"):
        tn.check_words(["", "   "])


def test_read_words_file_and_its_errors(tmp_path):
    f = tmp_path / "w.txt"
    f.write_text("# my room\ncup  # rhymes with up\n\nHey Siri\ncup\n", encoding="utf-8")
    assert tn.read_words(f) == ["cup", "hey siri"]
    with pytest.raises(DataError, match=r"missing\.txt: word list \(a text file, one word per line\) not found"):
        tn.read_words(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="is a directory; expected a word list"):
        tn.read_words(tmp_path)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"cup\n\xff\xfe\n")
    with pytest.raises(DataError, match="not UTF-8 text"):
        tn.read_words(bad)
    kw = tmp_path / "kw.txt"
    kw.write_text("cup\nyes please\n")
    with pytest.raises(DataError, match=r"kw\.txt: 'yes please' contains the keyword 'yes'"):
        tn.read_words(kw)


# -- flags and outputs, before any engine is asked -------------------------------------------
def test_bad_numbers_and_outputs_are_refused_first(tmp_path):
    for kwargs, message in (({"clips_per_word": 0}, "--clips-per-word 0: expected at least 1"),
                            ({"n_voices": 0}, "--voices 0: expected at least 1"),
                            ({"jobs": 0}, "--jobs 0: expected at least 1"),
                            ({"seed": -1}, "seed")):
        with pytest.raises(DataError, match=re.escape(message)):
            tn.generate(out=tmp_path / "n.npz", path="", **kwargs)
    with pytest.raises(DataError, match=r"\.npz"):
        tn.generate(out=tmp_path / "n.wav", path="")
    existing = tmp_path / "old.npz"
    existing.write_bytes(b"keep me")
    with pytest.raises(DataError, match=r"old\.npz: exists; pass --force"):
        tn.generate(out=existing, path="")
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(DataError, match="expected a comma-separated subset"):
        tn.generate(out=tmp_path / "n.npz", engines="espeak", path="")


def test_without_engines_exit_3_and_nothing_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "n.npz"
    assert tn.run(_parse(["--out", str(out)])) == tts.EXIT_NO_ENGINE == 3
    assert "no text-to-speech engine found" in capsys.readouterr().err
    assert kws_data(["tts-negatives", "--out", str(out)]) == 3
    assert not out.exists()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert kws_data(["tts-negatives"]) == 2
    assert "nothing to write: give --out NEG.npz" in capsys.readouterr().err
    words = tmp_path / "w.txt"
    words.write_text("left turn\n")
    assert kws_data(["tts-negatives", "--out", str(tmp_path / "n.npz"), "--words", str(words)]) == 2
    err = capsys.readouterr().err
    assert "'left turn' contains the keyword 'left'" in err and "Traceback" not in err
    assert not (tmp_path / "n.npz").exists()


def test_list_words(capsys):
    assert kws_data(["tts-negatives", "--list-words"]) == 0
    assert capsys.readouterr().out.splitlines() == list(tn.NEGATIVE_WORDS)


# -- speaking ----------------------------------------------------------------------------------
def test_negatives_dataset_labels_words_and_distinct_voices(espeak_voices):
    words = ["cup", "town", "thank you"]
    data = tn.negatives_dataset(espeak_voices[:40], words, clips_per_word=5, seed=3, jobs=2, progress=False)
    assert data["wav_vals"].shape == (15, 8000) and data["wav_vals"].dtype == np.float32
    assert np.abs(data["wav_vals"]).max() <= 1.0
    assert (data["label_vals"] == UNKNOWN).all() and data["label_vals"].shape == (15, 1)
    assert collections.Counter(data["word"].tolist()) == {w: 5 for w in words}
    for w in words:  # five different voices for each word
        assert len(set(data["speaker"][data["word"] == w].tolist())) == 5
    # Every clip holds a word well above its noise: the loudest 100 ms beats the quietest by 10 dB.
    frames = data["wav_vals"].reshape(15, 10, 800)
    rms = np.sqrt((frames ** 2).mean(axis=2))
    assert (20 * np.log10(rms.max(axis=1) / rms.min(axis=1)) > 10).all()
    again = tn.negatives_dataset(espeak_voices[:40], words, clips_per_word=5, seed=3, jobs=1, progress=False)
    np.testing.assert_array_equal(again["wav_vals"], data["wav_vals"])


def test_more_clips_than_voices_cycles(espeak_voices):
    data = tn.negatives_dataset(espeak_voices[:2], ["cup"], clips_per_word=4, seed=0, progress=False)
    assert collections.Counter(data["speaker"].tolist()) == {v.speaker: 2 for v in espeak_voices[:2]}


def test_command_writes_an_npz_kws_train_accepts(espeak_voices, tmp_path, capsys):
    from kws.train.data import load_npz

    words = tmp_path / "w.txt"
    words.write_text("cup\ntown\n")
    out = tmp_path / "neg.npz"
    assert kws_data(["-q", "tts-negatives", "--out", str(out), "--words", str(words), "--clips-per-word", "3",
                     "--engines", "espeak-ng", "--voices", "20"]) == 0
    assert f"{out}: 6 clips of 2 words, label unknown" in capsys.readouterr().out
    ds = load_npz(out)
    assert len(ds) == 6 and {ds.label_names[i] for i in ds.labels} == {UNKNOWN}
    assert kws_data(["tts-negatives", "--out", str(out), "--words", str(words)]) == 2  # exists
