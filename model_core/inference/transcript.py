"""The dialogue text of a line -> phone timings the generator can trust, or a reason not to.

`align_transcript` normalises the text (`words.py`), aligns its words to the audio in the
aligner's child process (`align_process.py`, `aligner.py`) and gates the result: it is used only
when the alignment succeeded, covers at least MIN_COVERAGE of the speech (frames louder than
SPEECH_LEVEL x the line's 95th-percentile loudness, `frame_energy`), and its acoustic score per
speech frame is at least MIN_SCORE (a transcript of another sentence scores far lower: the
aligner has to lay the wrong phones over the sounds). Anything else is a fallback to the audio
alone, with the reason in `TranscriptAlignment.warning`; bad text is never an error.

The thresholds were chosen on benchmark clips kept apart from those the results report
(docs/transcript.md).
"""
from __future__ import annotations

import concurrent.futures
import time
from dataclasses import dataclass, field

import numpy as np

from ..base.errors import LaliaError
from ..base.signals import frame_energy
from ..base.vocabulary import FPS, SAMPLE_RATE
from .align_process import AlignerDied, shared_aligner
from .words import spoken_words

MIN_COVERAGE = 0.8        # share of the speech frames the aligned words must cover
MIN_SCORE = -28.0         # acoustic score per aligned speech frame (0 = as good as it gets)
SPEECH_LEVEL = 0.1        # a frame louder than this x the line's 95th percentile is speech
MAX_WORDS_PER_SECOND = 8  # faster than any speaker: the text is not this line's
MAX_CHARACTERS = 100_000  # longer text isn't read at all
BILABIALS = frozenset({"p", "b", "m"})


@dataclass
class TranscriptAlignment:
    """What became of a line's transcript. `used`: the phones are good enough to drive the
    mouth; otherwise `warning` says why not (None when no transcript was given)."""
    used: bool = False
    phones: list = field(default_factory=list)   # [(phone, start_s, end_s)]
    words: int = 0
    coverage: float = float("nan")
    score: float = float("nan")
    pronounced: list = field(default_factory=list)  # words espeak-ng pronounced
    skipped: list = field(default_factory=list)     # words nobody could pronounce (left out)
    unreadable: list = field(default_factory=list)  # tokens of other scripts (left out)
    seconds: float = 0.0
    warning: str | None = None

    def info(self) -> dict:
        """A summary for `Generation.info` (numbers rounded, no phone list)."""
        r = lambda x: None if x != x else round(float(x), 3)
        out = {"used": self.used, "words": self.words, "coverage": r(self.coverage), "score": r(self.score),
               "seconds": round(self.seconds, 3)}
        for name in ("pronounced", "skipped", "unreadable"):
            if getattr(self, name):
                out[name] = list(getattr(self, name))[:20]
        if self.warning:
            out["warning"] = self.warning
        return out


def check_transcript(text) -> str | None:
    """The transcript option as text, None for none (None, empty or whitespace)."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise LaliaError(f"transcript must be text, got {type(text).__name__}")
    return text if text.strip() else None


def speech_coverage(phones, wav: np.ndarray, n_frames: int, fps: float = FPS) -> float:
    """Share of the speech frames (loud ones) that lie inside an aligned phone other than silence."""
    speech = frame_energy(wav, n_frames, SAMPLE_RATE, fps) > SPEECH_LEVEL
    covered = np.zeros(n_frames, bool)
    for sym, start, end in phones:
        if sym != "sil":
            covered[max(0, int(np.floor(start * fps))):min(n_frames, int(np.ceil(end * fps)))] = True
    return float(covered[speech].mean()) if speech.any() else 0.0


def bilabial_frames(phones, n_frames: int, fps: float = FPS) -> list[tuple[int, int]]:
    """(first, end) frames of each aligned /p b m/: the frames whose instants lie in the phone,
    or the one nearest its middle when it falls between two frames; touching spans merged."""
    spans: list[list[int]] = []
    for sym, start, end in phones:
        if sym not in BILABIALS:
            continue
        a, b = int(np.ceil(start * fps - 1e-6)), int(np.floor(end * fps + 1e-6)) + 1
        if b <= a:
            a = int(round(0.5 * (start + end) * fps))
            b = a + 1
        a, b = max(0, a), min(n_frames, b)
        if b <= a:
            continue
        if spans and a <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], b)
        else:
            spans.append([a, b])
    return [(a, b) for a, b in spans]


def align_transcript(wav: np.ndarray, text: str, n_frames: int, fps: float = FPS,
                     aligner=None) -> TranscriptAlignment:
    """Align a line's text to its audio (16 kHz) and judge the result (see the module's doc).
    `aligner`: an `AlignerProcess` (default: the shared one)."""
    t0 = time.perf_counter()
    out = TranscriptAlignment()

    def fallback(why: str) -> TranscriptAlignment:
        out.warning, out.seconds = f"Transcript not used ({why}): the mouth follows the audio alone", \
            time.perf_counter() - t0
        return out
    if len(text) > MAX_CHARACTERS:
        return fallback(f"{len(text):,} characters is far more than a line")
    words = spoken_words(text)
    out.words, out.unreadable = len(words.words), words.unreadable
    if not words.words:
        return fallback("no English words in it" if words.unreadable else "no words in it")
    seconds = len(wav) / SAMPLE_RATE
    if len(words.words) > MAX_WORDS_PER_SECOND * seconds + 3:
        return fallback(f"{len(words.words)} words can't be said in {seconds:.1f} s of audio")
    try:
        result = (aligner or shared_aligner()).align(wav, words.words)
    except AlignerDied as e:
        return fallback(str(e))
    out.pronounced, out.skipped, out.score = result.pronounced, result.skipped, result.score
    if result.error:
        return fallback(result.error)
    out.phones = result.phones
    out.coverage = speech_coverage(result.phones, wav, n_frames, fps)
    if out.coverage < MIN_COVERAGE:
        return fallback(f"its words cover {100 * out.coverage:.0f}% of the speech, under {100 * MIN_COVERAGE:.0f}%")
    if not out.score >= MIN_SCORE:
        return fallback(f"alignment score {out.score:.1f} under {MIN_SCORE:g}: the words don't match the audio")
    out.used = True
    if out.unreadable or out.skipped:
        left = out.unreadable + out.skipped
        out.warning = f"Transcript used without {len(left)} word(s) the aligner can't read: {' '.join(left[:5])}"
    out.seconds = time.perf_counter() - t0
    return out


_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="lalia-transcript")


def align_transcript_soon(wav: np.ndarray, text: str, n_frames: int, fps: float = FPS,
                          aligner=None) -> concurrent.futures.Future:
    """`align_transcript` started in the background (the aligner's child works while the
    speech encoder runs); `.result()` gives the `TranscriptAlignment`."""
    return _pool.submit(align_transcript, wav, text, n_frames, fps, aligner)
