"""Negative words from text-to-speech: many words, many voices, all labelled ``unknown``.

An always-on listener hears thousands of words it was never trained on; most of its false
accepts are such words (``docs/experiments.md``, "Where the false accepts come from"). The seed's
``unknown`` class holds the 25 other words of Google Speech Commands. This module speaks a much
broader vocabulary with the installed engines (:mod:`kws.train.tts`), including words that share
sounds with a keyword ("yet", "know", "cup", "town", "lift", "write", "own", "cough", "shop",
"goat"), in the clip format of :mod:`kws.train.demo`, for ``kws-train --extra-train``:

    kws-data tts-negatives --out data/negatives.npz [--words WORDS.txt] [--clips-per-word 8]

The built-in list (:data:`NEGATIVE_WORDS`) leaves out on purpose the wake words of the public
wake-word corpora the streams are built from ("alexa", "computer", "jarvis", "smart mirror",
"snowboy", "view glass", "hey mycroft"), so that measurements on those corpora stay honest; a
user whose room has a smart speaker should add its wake word with ``--words``.

The npz is in the seed schema (``wav_vals`` float32 (N, 8000) in [-1, 1], ``label_vals`` (N, 1)
all ``unknown``) plus ``speaker`` (``engine:voice:variant``) and ``word``.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from kws.runtime.errors import DataError
from kws.runtime.fileio import check_output, check_seed, npz_writer, read_text, write_atomically
from kws.runtime.labels import KEYWORDS, UNKNOWN
from kws.train.demo import (CLIP_SAMPLES, Jitter, colored_noise, parse_engines, place_word, select_voices,
                             speak_words)
from kws.train.tts import ENGINES, EXIT_NO_ENGINE, NoEngineError, Voice, detect_voices, no_engine_message

logger = logging.getLogger(__name__)

#: Words whose sounds overlap a keyword's, by keyword. None contains the keyword as a word.
CONFUSABLE_WORDS: dict[str, tuple[str, ...]] = {
    "yes": ("yet", "yeah", "yell", "yellow", "guess", "less", "mess", "chess", "dress", "bless", "address",
            "success", "unless", "yesterday"),
    "no": ("know", "snow", "nose", "note", "known", "noble", "nobody", "notice", "slow", "new", "knee",
           "nope", "gnome", "noah"),
    "up": ("cup", "pup", "supper", "upper", "hop", "pop", "puppy", "cub", "hub", "tub", "rub", "cut", "but",
           "app"),
    "down": ("town", "gown", "brown", "clown", "crown", "drown", "noun", "dawn", "sound", "round", "count",
             "done", "dune", "loud"),
    "left": ("lift", "loft", "laughed", "theft", "lived", "leaf", "lest", "deaf", "chef", "lent", "lend",
             "let", "west", "next"),
    "right": ("write", "light", "night", "bright", "white", "kite", "bite", "ride", "fight", "might",
              "quite", "rice", "ripe", "wrote"),
    "on": ("an", "in", "own", "gone", "john", "honor", "onion", "odd", "fawn", "con", "don", "upon",
           "lawn", "bond"),
    "off": ("of", "cough", "scoff", "often", "office", "offer", "awful", "doff", "boss", "moth", "loss",
            "toss", "soft", "golf"),
    "stop": ("top", "shop", "stock", "step", "spot", "stomp", "stoop", "stuff", "drop", "crop", "chop",
             "strap", "topic", "staff"),
    "go": ("goat", "ghost", "grow", "glow", "though", "gold", "goal", "code", "cold", "toe", "dough",
           "show", "so", "ago"),
}

#: Everyday words and short phrases a listener hears in a home.
EVERYDAY_WORDS: tuple[str, ...] = (
    "hello", "goodbye", "okay", "please", "thank you", "sorry", "maybe", "really", "sure", "alright",
    "morning", "evening", "tonight", "today", "tomorrow", "weekend", "monday", "friday", "minute", "hour",
    "water", "coffee", "tea", "milk", "bread", "butter", "cheese", "apple", "banana", "orange", "lemon",
    "chicken", "pizza", "pasta", "dinner", "breakfast", "lunch", "kitchen", "table", "chair", "window",
    "door", "garden", "flower", "paper", "pencil", "phone", "music", "movie", "story", "picture",
    "number", "letter", "money", "market", "doctor", "teacher", "school", "people", "family", "mother",
    "father", "brother", "sister", "baby", "friend", "party", "birthday", "weather", "rain", "sunny",
    "cloudy", "summer", "winter", "autumn", "river", "mountain", "ocean", "city", "country", "street",
    "car", "bus", "train", "plane", "bicycle", "red", "green", "blue", "black", "purple", "silver",
    "ten", "eleven", "twelve", "twenty", "thirty", "fifty", "hundred", "thousand", "first", "last",
    "where", "when", "what", "why", "which", "who", "how", "this", "that", "there", "here", "very",
    "something", "nothing", "everything", "anything", "always", "never", "again", "already", "because",
    "before", "after", "between", "around", "inside", "outside", "together", "little", "big", "small",
    "great", "good", "bad", "nice", "funny", "quiet", "busy", "tired", "hungry", "happy birthday",
    "listen", "look", "wait", "come here", "sit", "open", "close", "remember", "forget", "finish",
    "start", "begin", "play", "pause", "next one", "volume", "louder", "timer", "alarm", "reminder",
    "lights", "television", "radio", "speaker", "kitchen light", "heating", "temperature", "degrees",
    "question", "answer", "problem", "idea", "important", "interesting", "beautiful", "wonderful",
    "banana bread", "washing", "cooking", "reading", "sleeping", "walking", "talking", "laughing",
    "elephant", "giraffe", "monkey", "rabbit", "horse", "mouse", "turtle", "dolphin", "tiger", "lion",
    "michael", "sarah", "david", "emma", "james", "olivia", "robert", "sophie", "peter", "anna",
)

#: The built-in vocabulary of ``kws-data tts-negatives``: confusables first, then everyday words.
NEGATIVE_WORDS: tuple[str, ...] = tuple(dict.fromkeys(
    [w for words in CONFUSABLE_WORDS.values() for w in words] + list(EVERYDAY_WORDS)))

#: Engines used unless ``--engines`` says otherwise: festival is left out, being slow.
DEFAULT_ENGINES: tuple[str, ...] = tuple(e for e in ENGINES if e != "festival")

_WORD_RE = re.compile(r"^[a-z][a-z' -]*[a-z]$|^[a-z]$")


def check_words(words: Sequence[str], *, source: str = "--words") -> list[str]:
    """Normalised (lower case, single spaces) distinct words; refuse keywords and odd characters.

    A word or phrase is refused if any of its words is a keyword (``"stop sign"`` would teach the
    model that "stop" is ``unknown``), or if it holds anything but letters, spaces, apostrophes
    and hyphens (the text goes to the engines' command lines and festival's script).
    """
    out: list[str] = []
    for raw in words:
        w = " ".join(raw.lower().split())
        if not w:
            continue
        if not _WORD_RE.match(w):
            raise DataError(f"{source}: {raw!r} is not a word; expected letters, spaces, apostrophes and hyphens")
        hit = [k for k in re.split(r"[ -]", w) if k in KEYWORDS]
        if hit:
            raise DataError(f"{source}: {raw!r} contains the keyword {hit[0]!r}; a negative word must not "
                            f"(the model would learn that {hit[0]!r} is {UNKNOWN})")
        if w not in out:
            out.append(w)
    if not out:
        raise DataError(f"{source}: no words; expected one word or short phrase per line")
    return out


def read_words(path: str | Path) -> list[str]:
    """Words of a text file, one word or short phrase per line; ``#`` starts a comment."""
    p = Path(path)
    text = read_text(p, what="word list (a text file, one word per line)")
    return check_words([line.split("#", 1)[0] for line in text.splitlines()], source=f"--words {p}")


def negatives_dataset(voices: Sequence[Voice], words: Sequence[str], *, clips_per_word: int = 8, seed: int = 0,
                      jitter: Jitter = Jitter(), jobs: int = 2, progress: bool = True) -> dict[str, np.ndarray]:
    """Each word spoken ``clips_per_word`` times, by different voices where there are enough.

    Each word's voices are drawn at random without replacement (cycling when there are fewer
    voices than clips); every utterance gets the demo's rate,
    pitch, speed, level and noise jitter (:class:`kws.train.demo.Jitter`).

    Returns
    -------
    dict with ``wav_vals`` float32 (N, 8000) in [-1, 1], ``label_vals`` str (N, 1) (all
    ``unknown``), ``speaker`` str (N,) and ``word`` str (N,); N = len(words) * clips_per_word,
    in random order.
    """
    if not voices:
        raise NoEngineError(no_engine_message())
    if clips_per_word < 1:
        raise DataError(f"--clips-per-word {clips_per_word}: expected at least 1")
    rng = np.random.default_rng(check_seed(seed))
    said, speakers = [], []
    for w in words:
        picks = np.resize(rng.permutation(len(voices)), clips_per_word)
        said += [w] * clips_per_word
        speakers += [voices[int(k)] for k in picks]
    audio = speak_words(speakers, said, rng, jitter, jobs, progress, "speaking")
    clips = [place_word(a, rng, jitter, colored_noise(CLIP_SAMPLES, rng)) for a in audio]
    order = rng.permutation(len(clips))
    return {
        "wav_vals": np.stack(clips)[order].astype(np.float32),
        "label_vals": np.full((len(clips), 1), UNKNOWN),
        "speaker": np.array([v.speaker for v in speakers])[order],
        "word": np.array(said)[order],
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``kws-data tts-negatives``."""
    parser.add_argument("--out", type=Path, metavar="NEG.npz",
                        help="write the negative clips here (seed schema + speaker, word)")
    parser.add_argument("--words", type=Path, default=None, metavar="WORDS.txt",
                        help="words to speak, one word or short phrase per line, '#' comments "
                             f"(default: the built-in {len(NEGATIVE_WORDS)} words; see --list-words)")
    parser.add_argument("--clips-per-word", type=int, default=8,
                        help="clips of each word, each by another voice where possible (default 8)")
    parser.add_argument("--voices", type=int, default=400, dest="n_voices",
                        help="how many synthetic speakers to use at most (default 400)")
    parser.add_argument("--engines", default=",".join(DEFAULT_ENGINES),
                        help=f"comma-separated engines to use (default {','.join(DEFAULT_ENGINES)}: festival is slow)")
    parser.add_argument("--seed", type=int, default=0, help="random seed, an integer >= 0 (default 0)")
    parser.add_argument("--jobs", type=int, default=2, help="engine processes at once (default 2)")
    parser.add_argument("--list-words", action="store_true", help="print the built-in words and exit")
    parser.add_argument("--force", action="store_true", help="overwrite an existing NEG.npz")


@dataclass(frozen=True)
class NegativesResult:
    """What :func:`generate` wrote."""

    npz: Path
    n_clips: int
    n_words: int
    voices: tuple[Voice, ...]   # the voices that spoke at least one clip


def generate(*, out: str | Path, words: Sequence[str] | None = None, clips_per_word: int = 8,
             n_voices: int = 400, engines: str | Sequence[str] = DEFAULT_ENGINES,
             seed: int = 0, jobs: int = 2, force: bool = False, progress: bool = True,
             path: str | None = None) -> NegativesResult:
    """Check every input, detect the engines, speak, and write ``out`` atomically.

    Raises :class:`NoEngineError` when none of ``engines`` is installed, :class:`DataError` for
    bad input.
    """
    for name, value in (("--clips-per-word", clips_per_word), ("--voices", n_voices), ("--jobs", jobs)):
        if value < 1:
            raise DataError(f"{name} {value}: expected at least 1")
    check_seed(seed)
    word_list = check_words(NEGATIVE_WORDS if words is None else words)
    out = Path(out)
    check_output(out, flag="--out", suffix=".npz", force=force, make_folder=True)
    engine_list = parse_engines(engines)
    found = detect_voices(engines=engine_list, path=path)
    if not found:
        raise NoEngineError(no_engine_message(engine_list))
    voices, _ = select_voices(found, n=n_voices, n_stream=0, seed=seed)
    data = negatives_dataset(voices, word_list, clips_per_word=clips_per_word, seed=seed, jobs=jobs,
                             progress=progress)
    write_atomically([(out, npz_writer(data))])
    spoke = set(data["speaker"].tolist())
    result = NegativesResult(out, len(data["wav_vals"]), len(word_list),
                             tuple(v for v in voices if v.speaker in spoke))
    logger.info("wrote %s: %d clips of %d words by %d voices", out, result.n_clips, result.n_words,
                len(result.voices))
    return result


def run(args: argparse.Namespace) -> int:
    """``kws-data tts-negatives``: 0, or :data:`EXIT_NO_ENGINE` (3) when no engine is installed."""
    if args.list_words:
        for w in NEGATIVE_WORDS:
            print(w)
        return 0
    if args.out is None:
        raise DataError("nothing to write: give --out NEG.npz (or --list-words)")
    words = read_words(args.words) if args.words is not None else None
    try:
        res = generate(out=args.out, words=words, clips_per_word=args.clips_per_word, n_voices=args.n_voices,
                       engines=args.engines, seed=args.seed, jobs=args.jobs, force=args.force,
                       progress=os.isatty(2))
    except NoEngineError as exc:
        print(f"kws-data tts-negatives: {exc}", file=sys.stderr, flush=True)
        return EXIT_NO_ENGINE
    print(f"{res.npz}: {res.n_clips} clips of {res.n_words} words, label {UNKNOWN}, {len(res.voices)} voices "
          f"({', '.join(sorted({v.engine for v in res.voices}))}); "
          f"train with: kws-train ... --extra-train {res.npz}")
    return 0
