"""Speech synthesis with phone timings: espeak-ng (through its C library) and flite, and the neural
voices of `neural_tts.py` (Kokoro-82M, Piper).

All return a `Utterance`: 16 kHz float32 audio and a list of `Phone(symbol, start, end,
stressed)` in seconds, with symbols in one shared ARPAbet-style alphabet (see `PHONE_SET`),
so the animator never knows which synthesizer spoke. Each engine's constant timing offset against
a pocketsphinx alignment of its own audio (`timing_check.py`, `tts_offsets.json`) is taken out.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import logging
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..base.audio import resample
from ..base.errors import LaliaError
from ..base.phones import ipa_to_phone
from ..base.vocabulary import PHONES, SAMPLE_RATE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Phone:
    symbol: str      # ARPAbet-style, lower case; "sil" for pauses
    start: float
    end: float
    stressed: bool = False


@dataclass
class Utterance:
    audio: np.ndarray            # float32 mono at 16 kHz
    phones: list[Phone]
    text: str
    voice: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE


PHONE_SET = PHONES

_FLITE = {"pau": "sil", "h#": "sil", "brth": "sil", "ax": "ax", "axr": "er", "hv": "hh",
          "dx": "t", "el": "l", "em": "m", "en": "n", "nx": "n"}


OFFSETS_FILE = Path(__file__).with_name("tts_offsets.json")


@functools.lru_cache(maxsize=1)
def _offsets() -> dict:
    return json.loads(OFFSETS_FILE.read_text())["offset_s"]


def engine_offset(engine: str) -> float:
    """How late (s) the engine's phone timings sit against a pocketsphinx alignment of its own audio;
    measured by `timing_check.py` (docs/voices.md), subtracted from every phone it gives."""
    return float(_offsets().get(engine, 0.0))


def shift_phones(phones: list[Phone], delta: float, duration: float) -> list[Phone]:
    """Move every spoken phone by `delta` seconds inside [0, duration], silences re-filled."""
    moved = [Phone(p.symbol, min(max(p.start + delta, 0.0), duration), min(max(p.end + delta, 0.0), duration),
                   p.stressed) for p in phones if p.symbol != "sil"]
    return fill_silence([p for p in moved if p.end > p.start], duration)


# ---- espeak-ng through its C library ---------------------------------------------------
class _EspeakEvent(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_EV_PHONEME, _EV_LIST_TERMINATED = 7, 0
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_EspeakEvent))


class Espeak:
    """One process-wide espeak-ng instance (re-initialising after Terminate hangs).

    espeak-ng keeps state between utterances (pause lengths depend on what was spoken before),
    so the corpus builder speaks each take in a fresh worker process to stay deterministic."""
    _instance: "Espeak | None" = None
    _lock = threading.Lock()
    PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}

    @classmethod
    def get(cls) -> "Espeak":
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def __init__(self):
        path = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(path)
        except OSError as e:
            raise LaliaError("espeak-ng library not found: install it with "
                             "`apt-get install libespeak-ng1 espeak-ng-data`") from e
        # AUDIO_OUTPUT_SYNCHRONOUS = 2; options: PHONEME_EVENTS | PHONEME_IPA
        self.rate = self.lib.espeak_Initialize(2, 0, None, 0x0001 | 0x0002)
        if self.rate <= 0:
            raise LaliaError("espeak-ng failed to initialise (is espeak-ng-data installed?)")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._cb = _CALLBACK(self._on_synth)
        self.lib.espeak_SetSynthCallback(self._cb)
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint,
                                          ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                          ctypes.c_void_p, ctypes.c_void_p]

    def _on_synth(self, wav, n, events):
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).astype(np.float32) / 32768)
        i = 0
        while events[i].type != _EV_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EV_PHONEME:
                self._events.append((ev.audio_position, bytes(ev.id).split(b"\0")[0].decode("utf-8", "replace")))
            i += 1
        return 0

    def speak(self, text: str, voice: str, rate: int, pitch: int, range_: int) -> Utterance:
        with self._lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise LaliaError(f"espeak-ng has no voice '{voice}'")
            for k, v in (("rate", rate), ("pitch", pitch), ("range", range_)):
                self.lib.espeak_SetParameter(self.PARAM[k], int(v), 0)
            self._chunks, self._events = [], []
            data = text.encode("utf-8") + b"\0"
            buf = ctypes.create_string_buffer(data)
            # position type 1 = POS_CHARACTER; flags 1 = espeakCHARS_UTF8
            err = self.lib.espeak_Synth(buf, len(data), 0, 1, 0, 1, None, None)
            self.lib.espeak_Synchronize()
            if err != 0 or not self._chunks:
                raise LaliaError(f"espeak-ng could not speak {text!r} (error {err})")
            audio = np.concatenate(self._chunks)
            events = list(self._events)
        dur = len(audio) / self.rate
        phones: list[Phone] = []
        marks = [(t / 1000.0, name) for t, name in events]
        for j, (t, name) in enumerate(marks):
            sym = ipa_to_phone(name)
            end = marks[j + 1][0] if j + 1 < len(marks) else dur
            if sym is None or end <= t:
                continue
            phones.append(Phone(sym, t, min(end, dur)))
        return Utterance(resample(audio, self.rate, SAMPLE_RATE),
                         shift_phones(phones, -engine_offset("espeak"), dur), text)


def fill_silence(phones: list[Phone], duration: float) -> list[Phone]:
    """Make the phone list cover [0, duration] with explicit 'sil' gaps."""
    out, t = [], 0.0
    for p in phones:
        if p.start > t + 1e-3:
            out.append(Phone("sil", t, p.start))
        out.append(p)
        t = max(t, p.end)
    if duration > t + 1e-3:
        out.append(Phone("sil", t, duration))
    return out


# ---- flite through its command line ----------------------------------------------------
FLITE_VOICES = ("slt", "awb", "rms")  # kal's timings don't match its audio


def flite_speak(text: str, voice: str, stretch: float = 1.0, f0_mean: float | None = None,
                f0_std: float | None = None) -> Utterance:
    exe = shutil.which("flite")
    if exe is None:
        raise LaliaError("flite not found: install it with `apt-get install flite`")
    if voice not in FLITE_VOICES:
        raise LaliaError(f"flite voice '{voice}' is not one with reliable timings {FLITE_VOICES}")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        cmd = [exe, "-voice", voice, "--setf", f"duration_stretch={stretch:.3f}"]
        if f0_mean:
            cmd += ["--setf", f"int_f0_target_mean={f0_mean:.1f}"]
        if f0_std:
            cmd += ["--setf", f"int_f0_target_stddev={f0_std:.1f}"]
        res = subprocess.run(cmd + ["-t", text, "-o", str(wav), "-psdur"], capture_output=True,
                             text=True, timeout=60)
        if res.returncode != 0 or not wav.exists():
            raise LaliaError(f"flite failed on {text!r}: {res.stderr.strip()[:200]}")
        from ..base.audio import load_audio
        audio = load_audio(wav)
    phones, t = [], 0.0
    for tok in res.stdout.split():
        if ":" not in tok:
            continue
        name, end = tok.rsplit(":", 1)
        end = float(end)
        sym = _FLITE.get(name, name)
        if sym in PHONE_SET and end > t:
            phones.append(Phone(sym, t, end))
        t = max(t, end)
    dur = len(audio) / SAMPLE_RATE
    return Utterance(audio, shift_phones([p for p in phones if p.start < dur], -engine_offset("flite"), dur), text)


def mark_stress(phones: list[Phone]) -> list[Phone]:
    """espeak-ng and flite report no lexical stress with their timings; stressed vowels are longer, so
    call a vowel stressed when it is in the longest 40% of this utterance's vowels."""
    vowels = [p for p in phones if p.symbol in VOWELS]
    if not vowels:
        return phones
    cut = np.percentile([p.end - p.start for p in vowels], 60)
    return [Phone(p.symbol, p.start, p.end, bool(p.symbol in VOWELS and p.end - p.start >= cut))
            for p in phones]


VOWELS = frozenset("aa ae ah ao aw ay eh er ey ih iy ow oy uh uw ax".split())


# ---- speakers --------------------------------------------------------------------------
ESPEAK_LANGS = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc",
                "en-gb-x-gbclan", "en-gb-x-gbcwmd")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
                   "klatt", "klatt2", "klatt3", "Andy", "Annie", "belinda", "david", "edward",
                   "linda", "max", "paul", "steph", "travis", "zac", "john", "quincy", "rob",
                   "shelby", "grandma", "grandpa", "aunty", "boris", "caleb", "norbert")


def synthesize(text: str, voice: dict, emotion_prosody: dict | None = None) -> Utterance:
    """Speak `text` with a voice description; emotion_prosody scales pitch, range and rate.

    voice: {"engine": "espeak", "name": "en-us+m3", "rate": 170, "pitch": 50, "range": 50}
        or {"engine": "flite", "name": "slt", "stretch": 1.0, "f0": 110, "f0_std": 15}
        or a Kokoro or Piper voice (see `neural_tts.kokoro_speak` / `piper_speak`: they follow the
        emotion's rate only, and mark stress from their own phonemes)
    """
    if not text or not re.search(r"[A-Za-z]", text):
        raise LaliaError(f"nothing to speak in {text!r}")
    ep = {"pitch": 1.0, "range": 1.0, "rate": 1.0, **(emotion_prosody or {})}
    engine = voice.get("engine")
    if engine == "espeak":
        utt = Espeak.get().speak(text, voice["name"], rate=voice["rate"] * ep["rate"],
                                 pitch=min(99, voice["pitch"] * ep["pitch"]),
                                 range_=min(99, voice["range"] * ep["range"]))
    elif engine == "flite":
        utt = flite_speak(text, voice["name"], stretch=voice["stretch"] / ep["rate"],
                          f0_mean=voice["f0"] * ep["pitch"], f0_std=voice["f0_std"] * ep["range"])
    elif engine in ("kokoro", "piper"):
        from . import neural_tts
        speak = neural_tts.kokoro_speak if engine == "kokoro" else neural_tts.piper_speak
        utt = speak(text, voice, rate=ep["rate"])
    else:
        raise LaliaError(f"unknown speech engine {engine!r}")
    if engine in ("espeak", "flite"):
        utt.phones = mark_stress(utt.phones)
    utt.voice = dict(voice)
    return utt
