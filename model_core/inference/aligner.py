"""Forced alignment of known words to speech with pocketsphinx (PyPI `pocketsphinx` 5.x, whose
wheel ships its en-us acoustic model and CMUdict): phone timings to ~10-20 ms.

Two passes with bestpath off (see shared FACTS section 3): the first aligns the words, the
second, seeded by it, their phones. pocketsphinx crashes the interpreter on some inputs (a
hyp() after a failed alignment segfaults), so the runtime calls this only from a child process
(`align_process.py`); build-time tools call it directly in their own child processes.

The acoustic score says how well the words fit the audio. pocketsphinx scores every frame
against the best-scoring senone of that frame, so the aligned path's score per speech frame is
0 when the words are what the acoustic model would have heard anyway, and sinks when they are
not (another sentence): `AlignResult.score`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..base.vocabulary import SAMPLE_RATE
from .g2p import Pronouncer

# pocketsphinx's non-speech units all count as silence for the face
NON_SPEECH = {"SIL": "sil", "+NSN+": "sil", "+SPN+": "sil", "+BREATH+": "sil"}
FRAMES_PER_S = 100  # pocketsphinx's frame rate


@dataclass
class AlignResult:
    """phones: [(phone, start_s, end_s)], ARPAbet lower case, "sil" for pauses; words:
    [(word, start_s, end_s)]; score: the acoustic score per aligned speech frame (0 = as good as
    the best senone; lower is worse); pronounced: words given a pronunciation by espeak-ng;
    skipped: words without any (left out of the alignment); error: why nothing was aligned."""
    phones: list = field(default_factory=list)
    words: list = field(default_factory=list)
    score: float = float("nan")
    pronounced: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict:
        return {"phones": self.phones, "words": self.words, "score": self.score, "pronounced": self.pronounced,
                "skipped": self.skipped, "error": self.error}


def pcm16(audio16k: np.ndarray) -> bytes:
    """16 kHz float audio -> the 16-bit PCM bytes pocketsphinx reads."""
    return (np.clip(audio16k, -1, 1) * 32767).astype(np.int16).tobytes()


class PhoneAligner:
    """One pocketsphinx decoder (its model loads once, ~0.3 s) that aligns utterance after
    utterance. `extra_words` {word: "P H O N E S"} extend its dictionary; words it still lacks
    get espeak-ng's pronunciation (`g2p=True`) or are skipped."""

    def __init__(self, extra_words: dict | None = None, g2p: bool = True):
        from pocketsphinx import Decoder
        self.decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", bestpath=False)
        self.pronouncer = Pronouncer() if g2p else None
        self.add_words(extra_words or {})

    def add_words(self, words: dict) -> None:
        items = list(words.items())
        for i, (word, phones) in enumerate(items):
            self.decoder.add_word(word, phones, i == len(items) - 1)  # rebuild the search once, at the end

    def known(self, word: str) -> bool:
        return self.decoder.lookup_word(word) is not None

    def _dictionary_words(self, words: list[str], result: AlignResult) -> list[str]:
        """The words the decoder can align: known ones, and the others espeak-ng pronounces."""
        new = {}
        for w in dict.fromkeys(words):
            if self.known(w):
                continue
            phones = self.pronouncer.pronounce(w) if self.pronouncer else None
            if phones:
                # pocketsphinx's en-us phone set has no schwa of its own: it is AH
                new[w] = " ".join("AH" if p == "ax" else p.upper() for p in phones if p != "sil")
                result.pronounced.append(w)
            else:
                result.skipped.append(w)
        self.add_words(new)
        return [w for w in words if w not in result.skipped]

    def _decode(self, pcm: bytes) -> None:
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()

    def align(self, audio16k: np.ndarray, words: list[str]) -> AlignResult:
        """The words' phones in the audio (16 kHz float). A result with `error` set (and no
        phones) when nothing could be aligned."""
        result = AlignResult()
        words = self._dictionary_words(list(words), result)
        if not words:
            result.error = "no word of the transcript can be pronounced"
            return result
        try:
            self.decoder.set_align_text(" ".join(words))
        except RuntimeError as e:
            result.error = f"pocketsphinx refused the words ({str(e)[:120]})"
            return result
        pcm = pcm16(audio16k)
        # an utterance is decoded with the cepstral mean the decoder was left with (the last
        # utterance's): a first pass that is thrown away sets it to this utterance's own, so an
        # alignment never depends on what was aligned before it
        self._decode(pcm)
        self._decode(pcm)
        if self.decoder.hyp() is None:  # the words can't be laid over this audio at all
            result.error = "the words could not be aligned to the audio"
            return result
        self.decoder.set_alignment()
        self._decode(pcm)
        score, speech_frames = 0.0, 0
        for word in self.decoder.get_alignment():
            w0, w1 = word.start / FRAMES_PER_S, (word.start + word.duration) / FRAMES_PER_S
            if word.name not in NON_SPEECH and not word.name.startswith(("<", "[", "+")):
                result.words.append((word.name, w0, w1))
            for p in word:
                sym = NON_SPEECH.get(p.name, p.name.lower())
                result.phones.append((sym, p.start / FRAMES_PER_S, (p.start + p.duration) / FRAMES_PER_S))
                if sym != "sil":
                    score += p.score
                    speech_frames += p.duration
        result.score = score / speech_frames if speech_frames else float("nan")
        if not speech_frames:
            result.error = "the alignment holds no speech"
        return result
