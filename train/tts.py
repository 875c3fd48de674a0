"""Text-to-speech engines: the installed voices, and speaking a word with one of them.

The project cannot ship recordings of people it did not record, so the quickstart speaks the
ten keywords and some other words through whatever engines the machine has:

* ``espeak-ng``: its English voices (en-gb, en-us, en-gb-scotland, en-029, ...) times its
  voice variants (``+m1`` .. ``+m8``, ``+f1`` .. ``+f5``, ``+klatt`` .. and named ones);
* ``flite``: its built-in voices (kal, awb, rms, slt; ``awb_time`` is a talking clock and
  ``kal16`` is kal again, so both are left out);
* ``festival``: every voice ``(voice.list)`` names (Debian: kal_diphone), through one batch
  process;
* ``mbrola``: the MBROLA voices that espeak-ng lists (``mb-us1`` ...), only where the
  ``mbrola`` program and the voice's data are installed (Debian contrib/non-free).

Each synthetic speaker is ``engine:voice:variant`` (e.g. ``espeak-ng:en-gb-scotland:m3``).
:func:`detect_voices` finds them; :func:`speak` says a text with one at a given rate and pitch,
resampled to 8 kHz with a polyphase filter (:mod:`kws.runtime.resample`), and :func:`trim_word`
cuts the audio to the word. Where no engine is installed, :class:`NoEngineError` says so
(:func:`no_engine_message`) with the exit code :data:`EXIT_NO_ENGINE`.

The demo data spoken with these voices (the labelled npz, the stream and ``kws-data demo``) is
made in :mod:`kws.train.demo`.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from kws.runtime.audio_io import read_wav, to_mono
from kws.runtime.errors import DataError, KwsError
from kws.runtime.resample import resample

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 8000

#: ``kws-data demo`` returns this when no text-to-speech engine is installed.
EXIT_NO_ENGINE = 3

#: Engines in the order they are tried.
ENGINES: tuple[str, ...] = ("espeak-ng", "flite", "festival", "mbrola")

#: espeak-ng voice variants that sound like a person (robots, whispers and effects left out).
ESPEAK_VARIANTS: tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6",
    "adam", "Alex", "Alicia", "Andrea", "Andy", "Annie", "aunty", "belinda", "benjamin", "caleb",
    "david", "ed", "edward", "Gene", "grandma", "grandpa", "iven", "john", "Lee", "linda", "max",
    "Michael", "Mike", "norbert", "paul", "quincy", "rob", "robert", "steph", "travis", "victor",
    "zac",
)

#: flite voices left out: a limited-domain talking clock, and kal again at 16 kHz.
FLITE_SKIP = frozenset({"awb_time", "kal16"})

_TIMEOUT_S = 60


class NoEngineError(KwsError):
    """No text-to-speech engine (or none of the asked ones) is installed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=EXIT_NO_ENGINE)


# ------------------------------------------------------------------------------------------
# Voices and engine detection
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Voice:
    """One synthetic speaker: an engine, one of its voices and a variant (``""`` = none)."""

    engine: str
    voice: str
    variant: str = ""
    command: str = field(default="", compare=False, repr=False)  # resolved program path

    @property
    def speaker(self) -> str:
        """``engine:voice:variant`` (variant ``default`` when there is none)."""
        return f"{self.engine}:{self.voice}:{self.variant or 'default'}"


def _run(cmd: Sequence[str], *, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), input=stdin, capture_output=True, text=True, timeout=_TIMEOUT_S,
                          check=False)


def _espeak_table(command: str, which: str) -> list[list[str]]:
    """Rows of ``espeak-ng --voices=WHICH`` split on whitespace (header dropped)."""
    try:
        out = _run([command, f"--voices={which}"]).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("espeak-ng --voices=%s failed: %s", which, exc)
        return []
    return [line.split() for line in out.splitlines()[1:] if line.strip()]


def _espeak_voices(command: str) -> tuple[list[str], list[str], list[str]]:
    """(English espeak voices by language code, installed variants, mbrola voice names)."""
    voices: list[str] = []
    mbrola: list[str] = []
    seen_files: set[str] = set()
    for row in _espeak_table(command, "en"):
        if len(row) < 5:
            continue
        lang, file = row[1], row[4]
        if file in seen_files:
            continue
        seen_files.add(file)
        if file.startswith("mb/"):
            mbrola.append(file.split("/", 1)[1])
        elif lang.startswith("en"):
            voices.append(lang)
    variants = [r[4].split("/", 1)[1] for r in _espeak_table(command, "variant") if len(r) > 4 and "/" in r[4]]
    return voices, variants, mbrola


def _mbrola_installed(name: str, path: str | None) -> bool:
    """Whether espeak-ng's MBROLA voice ``mb-xx1`` can run: the mbrola program and its data."""
    if shutil.which("mbrola", path=path) is None:
        return False
    base = name[3:].split("-", 1)[0]  # mb-us1 -> us1, mb-de1-en -> de1
    roots = [Path("/usr/share/mbrola"), Path("/usr/share/mbrola/voices"), Path("/usr/local/share/mbrola")]
    return any((r / base).exists() or (r / base / base).exists() for r in roots)


def _probe(voice: Voice) -> bool:
    try:
        speak(voice, "yes")
        return True
    except (KwsError, OSError, subprocess.SubprocessError) as exc:
        logger.debug("voice %s does not work: %s", voice.speaker, exc)
        return False


def detect_voices(*, engines: Iterable[str] = ENGINES, path: str | None = None,
                  variants: Sequence[str] = ESPEAK_VARIANTS, probe: bool = True) -> list[Voice]:
    """The voices of the installed engines.

    Parameters
    ----------
    engines : iterable of str
        Which of :data:`ENGINES` to look for.
    path : str or None
        The search path for the programs (``None``: ``$PATH``); ``""`` finds nothing.
    variants : sequence of str
        espeak-ng variants to combine with each English voice (only the installed ones are used).
    probe : bool
        Speak one word with one voice of each engine (and each MBROLA voice) to prove it works.

    Returns
    -------
    list of Voice, sorted; empty when nothing is installed.
    """
    engines = list(engines)
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise DataError(f"unknown text-to-speech engine(s) {', '.join(unknown)}; expected some of "
                        f"{', '.join(ENGINES)}")
    found: list[Voice] = []
    espeak = shutil.which("espeak-ng", path=path)
    if espeak and ("espeak-ng" in engines or "mbrola" in engines):
        ev, evariants, mbrola = _espeak_voices(espeak)
        if "espeak-ng" in engines:
            installed = set(evariants)
            chosen = [""] + [v for v in variants if v in installed]
            batch = [Voice("espeak-ng", v, var, espeak) for v in ev for var in chosen]
            if batch and (not probe or _probe(batch[0])):
                found += batch
        if "mbrola" in engines:
            for name in mbrola:
                v = Voice("mbrola", name, "", espeak)
                if _mbrola_installed(name, path) and (not probe or _probe(v)):
                    found.append(v)
    flite = shutil.which("flite", path=path)
    if flite and "flite" in engines:
        try:
            out = _run([flite, "-lv"]).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        names = out.split(":", 1)[1].split() if ":" in out else []
        batch = [Voice("flite", n, "", flite) for n in names if n not in FLITE_SKIP]
        if batch and (not probe or _probe(batch[0])):
            found += batch
    festival = shutil.which("festival", path=path)
    if festival and "festival" in engines:
        try:
            out = _run([festival, "--pipe"], stdin="(print (voice.list))\n").stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        match = re.search(r"\(([^()]*)\)", out)
        names = match.group(1).split() if match else []
        batch = [Voice("festival", n, "", festival) for n in names]
        found += [v for v in batch if not probe or _probe(v)]
    return sorted(found)


def describe_voices(voices: Sequence[Voice]) -> str:
    """One line per engine: how many voices, and which."""
    if not voices:
        return "no text-to-speech engine found (looked for " + ", ".join(ENGINES) + ")"
    lines = []
    for engine in ENGINES:
        vs = [v for v in voices if v.engine == engine]
        if not vs:
            continue
        if engine == "espeak-ng":
            base = sorted({v.voice for v in vs})
            n_var = len({v.variant for v in vs})
            lines.append(f"espeak-ng: {len(base)} English voices ({', '.join(base)}) x {n_var} variants "
                         f"= {len(vs)} speakers")
        else:
            lines.append(f"{engine}: {', '.join(v.voice for v in vs)}")
    return "\n".join(lines)


def no_engine_message(engines: Sequence[str] = ENGINES) -> str:
    return ("no text-to-speech engine found (looked for " + ", ".join(engines) + "); install one with "
            "'sudo apt-get install espeak-ng flite festival', or use the committed demo stream "
            "models/demo_stream.wav")


# ------------------------------------------------------------------------------------------
# Speaking one word
# ------------------------------------------------------------------------------------------
def resample_to(audio: np.ndarray, from_hz: int, to_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Polyphase resampling with the runtime's resampler, float32."""
    return resample(np.asarray(audio, np.float32), int(from_hz), int(to_hz)).astype(np.float32)


def _espeak_cmd(voice: Voice, text: str, out: Path, rate: float, pitch: float) -> list[str]:
    name = voice.voice if voice.engine == "mbrola" else voice.voice + (f"+{voice.variant}" if voice.variant else "")
    return [voice.command or "espeak-ng", "-v", name, "-s", str(int(round(175 * rate))),
            "-p", str(int(np.clip(round(50 * pitch), 0, 99))), "-w", str(out), text]


def _flite_cmd(voice: Voice, text: str, out: Path, rate: float) -> list[str]:
    return [voice.command or "flite", "-voice", voice.voice, "--setf", f"duration_stretch={1.0 / rate:.3f}",
            "-t", text, "-o", str(out)]


def _festival_script(items: Sequence[tuple[Voice, str, Path, float]]) -> str:
    lines = []
    for voice, text, out, rate in items:
        safe = text.replace("\\", " ").replace('"', " ")
        lines += [f"(voice_{voice.voice})", f"(Parameter.set 'Duration_Stretch {1.0 / rate:.3f})",
                  f'(utt.save.wave (utt.synth (Utterance Text "{safe}")) "{out}" \'riff)']
    return "\n".join(lines) + "\n"


def speak_many(items: Sequence[tuple[Voice, str, float, float]], tmp: Path, jobs: int) -> list[np.ndarray]:
    """Speak many utterances at once (festival in one process, the others ``jobs`` at a time).

    Parameters
    ----------
    items : sequence of (Voice, str, float, float)
        Voice, text, rate (1 = the engine's normal speed) and pitch factor of each utterance.
    tmp : Path
        A scratch directory for the engines' WAV files.
    jobs : int
        Engine processes run at once.

    Returns
    -------
    list of np.ndarray, float32, mono at 8 kHz, one per item, in order.
    """
    outs = [tmp / f"u{i:05d}.wav" for i in range(len(items))]
    festival = [(v, t, o, r) for (v, t, r, _), o in zip(items, outs) if v.engine == "festival"]
    if festival:
        script = tmp / "festival.scm"
        script.write_text(_festival_script(festival))
        proc = subprocess.run([festival[0][0].command or "festival", "-b", str(script)], capture_output=True,
                              text=True, timeout=_TIMEOUT_S + 2 * len(festival), check=False)
        if proc.returncode != 0:
            raise DataError(f"festival failed (exit {proc.returncode}): {proc.stderr.strip()[:200]}")

    def one(i: int) -> None:
        voice, text, rate, pitch = items[i]
        if voice.engine == "festival":
            return
        if voice.engine in ("espeak-ng", "mbrola"):
            cmd = _espeak_cmd(voice, text, outs[i], rate, pitch)
        elif voice.engine == "flite":
            cmd = _flite_cmd(voice, text, outs[i], rate)
        else:
            raise DataError(f"unknown engine {voice.engine!r}; expected one of {', '.join(ENGINES)}")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
        if proc.returncode != 0 or not outs[i].is_file():
            raise DataError(f"{voice.speaker} could not speak {text!r} (exit {proc.returncode}): "
                            f"{proc.stderr.strip()[:200]}")

    if jobs > 1:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, range(len(items))))
    else:
        for i in range(len(items)):
            one(i)
    result = []
    for (voice, text, _, _), out in zip(items, outs):
        try:
            audio, rate_hz = read_wav(out)
        except DataError as exc:
            raise DataError(f"{voice.speaker} produced no usable audio for {text!r}: {exc}") from None
        result.append(resample_to(to_mono(audio), rate_hz))
        out.unlink()
    return result


def speak(voice: Voice, text: str, *, rate: float = 1.0, pitch: float = 1.0) -> np.ndarray:
    """Speak ``text`` with ``voice``: untrimmed float32 audio at 8 kHz, shape (n,).

    ``rate`` scales the speaking rate (1 = the engine's default), ``pitch`` the espeak-ng pitch
    (other engines ignore it; :func:`kws.train.demo.demo_dataset` adds a speed perturbation for all).
    """
    with tempfile.TemporaryDirectory(prefix="kws-tts-") as tmp:
        return speak_many([(voice, text, rate, pitch)], Path(tmp), jobs=1)[0]


# ------------------------------------------------------------------------------------------
# Signal helpers
# ------------------------------------------------------------------------------------------
def trim_word(audio: np.ndarray, *, floor_db: float = -35.0, frame_samples: int = 80,
              margin_samples: int = 160) -> np.ndarray:
    """Cut leading and trailing silence: keep frames within ``floor_db`` of the loudest frame."""
    n = len(audio) // frame_samples
    if n == 0:
        return audio
    rms = np.sqrt(np.mean(audio[: n * frame_samples].reshape(n, frame_samples) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > floor_db)
    start = max(0, loud[0] * frame_samples - margin_samples)
    stop = min(len(audio), (loud[-1] + 1) * frame_samples + margin_samples)
    return audio[start:stop]
