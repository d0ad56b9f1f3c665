"""Natural (neural) voices for the corpus, with per-phoneme timings: Kokoro-82M and Piper.

- Kokoro-82M through `kokoro_onnx`, on the int8 graph with the encoder's per-token durations as an
  extra output (see `voice_cache.py`): 28 English voices (af/am: US, bf/bm: GB), blends of them, and
  a speed control. Timings come in 25 ms units, one per IPA character the model reads.
- Piper `en_US-joe-medium` through `piper-tts` on the alignment-patched graph: samples per phoneme.

Both phonemize with espeak-ng, so both give IPA characters with a time span each; `spans_to_phones`
turns those into the corpus alphabet (`base.vocabulary.PHONES`, through `base.phones.ipa_prefix`). Stress
marks and the length mark are characters with durations of their own: a stress mark's time goes to
the vowel it announces (and marks it stressed), a length mark's to the vowel before it. Word gaps
and punctuation become silence where the audio is quiet, and go to their neighbours where it is not.
Each engine's constant timing offset, measured against pocketsphinx (`timing_check.py`), is taken
out (`tts.engine_offset`).
"""
from __future__ import annotations

import functools
import threading

import numpy as np

from ..base.audio import resample
from ..base.errors import LaliaError
from ..base.phones import ipa_prefix
from ..base.vocabulary import SAMPLE_RATE
from .tts import VOWELS, Phone, Utterance, engine_offset, fill_silence, shift_phones
from .voice_cache import KOKORO_TIMED, KOKORO_VOICES, PIPER_MODEL, require

STRESS = "ˈˌ"
LENGTH = "ːˑ"
# a word gap or punctuation mark is silence when it lasts this long and its audio is this quiet next to
# the utterance's loud part; a shorter one would shut the mouth between the words of a phrase
_QUIET = 0.12
_MIN_PAUSE = 0.05
_lock = threading.Lock()

KOKORO_ENGLISH = ("af_alloy af_aoede af_bella af_heart af_jessica af_kore af_nicole af_nova af_river af_sarah "
                  "af_sky am_adam am_echo am_eric am_fenrir am_liam am_michael am_onyx am_puck am_santa "
                  "bf_alice bf_emma bf_isabella bf_lily bm_daniel bm_fable bm_george bm_lewis").split()


def _rms(audio: np.ndarray, a: float, b: float, sr: int) -> float:
    seg = audio[int(a * sr): max(int(a * sr) + 1, int(b * sr))]
    return float(np.sqrt(np.mean(seg ** 2))) if len(seg) else 0.0


def spans_to_phones(spans: list[tuple[str, float, float]], audio: np.ndarray, sr: int) -> list[Phone]:
    """IPA characters with time spans (seconds) -> phones of the corpus alphabet.

    Characters that belong together (diphthongs, affricates, vowel + length mark) become one phone;
    characters the alphabet lacks (tie bars, syllabic marks) lengthen the phone before them."""
    loud = float(np.percentile(np.abs(audio), 99)) + 1e-9
    chars = "".join(c for c, _, _ in spans)
    phones: list[list] = []        # [symbol, start, end, stressed]
    gaps: list[tuple[float, float]] = []
    pending: float | None = None   # start of a stress mark not yet given to its vowel
    stressed = False
    i = 0
    while i < len(spans):
        c, a, b = spans[i]
        if c in STRESS:
            pending = a if pending is None else pending
            stressed = c == "ˈ"
            i += 1
            continue
        sym, n = ipa_prefix(chars[i:])
        if sym is None:
            if c.isspace() or not c.isalpha():  # word gap, punctuation, BOS/EOS marks
                if b > a:
                    gaps.append((a, b))
            elif phones:
                phones[-1][2] = max(phones[-1][2], b)
            i += 1
            continue
        end = spans[i + n - 1][2]
        start = a if pending is None else pending
        phones.append([sym, start, end, bool(stressed and sym in VOWELS)])
        pending, stressed = None, False
        i += n
        # a length mark after the phone is part of it
        while i < len(spans) and spans[i][0] in LENGTH:
            phones[-1][2] = spans[i][2]
            i += 1
    out = [Phone(s, a, b, st) for s, a, b, st in phones if b > a]
    # gaps: silence where quiet (fill_silence makes it so); otherwise shared by the phones either side
    for a, b in gaps:
        if b - a >= _MIN_PAUSE and _rms(audio, a, b, sr) < _QUIET * loud:
            continue
        before = [p for p in out if abs(p.end - a) < 1e-6]
        after = [p for p in out if abs(p.start - b) < 1e-6]
        mid = (a + b) / 2
        if before:
            out[out.index(before[-1])] = Phone(before[-1].symbol, before[-1].start, mid if after else b,
                                               before[-1].stressed)
        if after:
            out[out.index(after[0])] = Phone(after[0].symbol, mid if before else a, after[0].end, after[0].stressed)
    return fill_silence(out, len(audio) / sr)


# ---- Kokoro --------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _kokoro(cache: str | None = None):
    from kokoro_onnx import Kokoro
    root = require(cache, KOKORO_TIMED, KOKORO_VOICES)
    k = Kokoro(str(root / KOKORO_TIMED), str(root / KOKORO_VOICES))
    if not k.has_timings:
        raise LaliaError(f"{root / KOKORO_TIMED} reports no durations: delete it and run `make voices`")
    return k


def kokoro_style(voice: dict) -> np.ndarray:
    """The voice's style rows: one pack, or a weighted blend of packs ({"blend": [[name, w], ...]})."""
    k = _kokoro(voice.get("cache"))
    parts = voice.get("blend") or [[voice["name"], 1.0]]
    for name, _ in parts:
        if name not in k.voices:
            raise LaliaError(f"Kokoro has no voice {name!r}")
    total = sum(w for _, w in parts)
    return sum(k.voices[name] * (w / total) for name, w in parts).astype(np.float32)


def kokoro_speak(text: str, voice: dict, rate: float = 1.0) -> Utterance:
    """voice: {"engine": "kokoro", "name": "af_bella" (or a blend's name), "blend": [[name, weight], ...]
    (optional), "speed": 1.0}; `rate` multiplies the speed (emotion prosody)."""
    k = _kokoro(voice.get("cache"))
    first = (voice.get("blend") or [[voice["name"]]])[0][0]
    lang = "en-gb" if first[:1] == "b" else "en-us"
    speed = float(np.clip(voice.get("speed", 1.0) * rate, 0.5, 2.0))
    with _lock:
        try:
            audio, sr, timings = k.create_timed(text, kokoro_style(voice), speed=speed, lang=lang,
                                                sentence_pause=0, clause_pause=0)
        except ValueError as e:
            raise LaliaError(f"Kokoro could not speak {text!r}: {e}") from e
    audio = np.asarray(audio, np.float32)
    spans = [(t.phoneme, t.start, t.end) for t in timings]
    phones = spans_to_phones(spans, audio, sr)
    return _finish(audio, sr, phones, text, "kokoro")


# ---- Piper ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _piper(cache: str | None = None):
    from piper import PiperVoice
    root = require(cache, PIPER_MODEL)
    return PiperVoice.load(str(root / PIPER_MODEL))


def piper_speak(text: str, voice: dict, rate: float = 1.0) -> Utterance:
    """voice: {"engine": "piper", "name": "joe", "length_scale": 1.0, "noise_scale": 0.667,
    "noise_w": 0.8}; `rate` divides the length scale (emotion prosody)."""
    from piper import SynthesisConfig
    pv = _piper(voice.get("cache"))
    cfg = SynthesisConfig(length_scale=voice.get("length_scale", 1.0) / rate,
                          noise_scale=voice.get("noise_scale"), noise_w_scale=voice.get("noise_w"))
    pieces, spans, t = [], [], 0.0
    sr = pv.config.sample_rate
    with _lock:
        for chunk in pv.synthesize(text, cfg, include_alignments=True):
            if chunk.phoneme_alignments is None:
                raise LaliaError(f"Piper gave no alignments for {text!r} (is the voice patched? `make voices`)")
            for al in chunk.phoneme_alignments:
                d = al.num_samples / sr
                spans.append((al.phoneme, t, t + d))
                t += d
            pieces.append(chunk.audio_float_array)
    if not pieces:
        raise LaliaError(f"Piper could not speak {text!r}")
    audio = np.concatenate(pieces).astype(np.float32)
    return _finish(audio, sr, spans_to_phones(spans, audio, sr), text, "piper")


def _finish(audio: np.ndarray, sr: int, phones: list[Phone], text: str, engine: str) -> Utterance:
    if not any(p.symbol != "sil" for p in phones):
        raise LaliaError(f"{engine} gave no phones for {text!r}")
    audio16 = resample(audio, sr, SAMPLE_RATE)
    dur = len(audio16) / SAMPLE_RATE
    return Utterance(audio16, shift_phones(phones, -engine_offset(engine), dur), text)
