"""Phones: espeak-ng's IPA names -> the shared ARPAbet alphabet, and phone timings -> a per-frame
phone track, the form the content prior reads.

The IPA table serves both espeak-ng uses: the corpus's synthesis events (one phoneme name each,
`ipa_to_phone`) and the runtime's pronunciation of words the aligner's dictionary lacks (a
whole word's phonemes, `ipa_to_phones`).

A track holds one index into `PHONES` per motion frame (frame i is the instant i / fps, as the
motion's frames are); `UNKNOWN_PHONE` marks frames no timing covers and is what the model sees
when it is given no phones at all.
"""
from __future__ import annotations

import re

import numpy as np

from .vocabulary import FPS, PHONES

UNKNOWN_PHONE = len(PHONES)
_INDEX = {p: i for i, p in enumerate(PHONES)}

# espeak-ng IPA phoneme names -> shared alphabet (longest prefix wins)
IPA_PHONES = {
    "ɑː": "aa", "ɑ": "aa", "ɒ": "ao", "æ": "ae", "a": "ae", "ʌ": "ah", "ɐ": "ah", "ɔː": "ao",
    "ɔ": "ao", "aʊ": "aw", "aɪ": "ay", "ɛ": "eh", "e": "eh", "ɜː": "er", "ɚ": "er", "ɝ": "er",
    "eɪ": "ey", "ɪ": "ih", "ᵻ": "ih", "iː": "iy", "i": "iy", "oʊ": "ow", "əʊ": "ow", "o": "ow",
    "ɔɪ": "oy", "ʊ": "uh", "uː": "uw", "u": "uw", "ə": "ax", "ɾ": "t", "ʔ": "t",
    "p": "p", "b": "b", "m": "m", "f": "f", "v": "v", "θ": "th", "ð": "dh", "t": "t", "d": "d",
    "n": "n", "l": "l", "ɫ": "l", "s": "s", "z": "z", "ʃ": "sh", "ʒ": "zh", "tʃ": "ch",
    "dʒ": "jh", "k": "k", "ɡ": "g", "g": "g", "ŋ": "ng", "h": "hh", "ɹ": "r", "r": "r",
    "w": "w", "j": "y", "x": "k", "ç": "hh", "ʍ": "w", "ɬ": "l", "ɣ": "g", "ʁ": "r",
}
# stress, length, nasalisation, syllabicity, ties and espeak's separators carry no phone of their own
_IPA_MARKS = re.compile(r"[ˈˌ\u0303\u0329\u032f\u0361_:#;^-]")


def ipa_prefix(s: str) -> tuple[str | None, int]:
    """The phone the longest table entry at the start of `s` names, and that entry's length."""
    for n in (3, 2, 1):
        if s[:n] in IPA_PHONES:
            return IPA_PHONES[s[:n]], n
    return None, 0


def ipa_to_phone(ipa: str) -> str | None:
    """One espeak-ng phoneme name -> its phone (None: not a phone of the alphabet)."""
    return ipa_prefix(_IPA_MARKS.sub("", ipa))[0]


def ipa_to_phones(ipa: str) -> list[str]:
    """A word's IPA phonemes (espeak-ng's, separated by _ or spaces) -> its phones, left to
    right, longest entries first; symbols the table lacks are skipped."""
    out = []
    for name in re.split(r"[_\s]+", ipa):
        s = _IPA_MARKS.sub("", name)
        while s:
            phone, n = ipa_prefix(s)
            if phone is not None:
                out.append(phone)
            s = s[max(n, 1):]
    return out


def phone_track(phones, n_frames: int, fps: float = FPS) -> np.ndarray:
    """[(symbol, start_s, end_s, ...)] -> int64 array of n_frames phone indices. Symbols outside
    `PHONES` and frames outside every timing are `UNKNOWN_PHONE`; where timings overlap, the
    later one wins."""
    track = np.full(n_frames, UNKNOWN_PHONE, np.int64)
    for p in phones:
        idx = _INDEX.get(str(p[0]).lower(), UNKNOWN_PHONE)
        a = max(0, int(np.ceil(float(p[1]) * fps - 1e-6)))
        b = min(n_frames, int(np.ceil(float(p[2]) * fps - 1e-6)))
        if b > a:
            track[a:b] = idx
    return track
