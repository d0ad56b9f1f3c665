"""Contact sheets of corpus takes: the head at bilabials, open vowels, and in each emotion."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..base.motion import ARKIT_HEAD_LAYOUT, Motion
from ..base.signals import frame_energy
from ..base.vocabulary import EMOTIONS
from .animator import Style, animate, emotion_prosody
from .corpus import HOP, Corpus
from .preview import contact_sheet
from .tts import synthesize

PREVIEW_SENTENCE = "Peter bought a map of the moon. Why are you so happy?"


def _key_frames(phones, T, fps=25.0):
    """Frames at the first two bilabials and the first three open vowels."""
    mid = lambda p: min(T - 1, int(round((p[1] + p[2]) / 2 * fps)))
    bil = [mid(p) for p in phones if p[0] in ("p", "b", "m")][:2]
    vow = [mid(p) for p in phones if p[0] in ("aa", "ae", "ao", "ay", "aw", "ah")][:3]
    return sorted(bil + vow), bil


def preview(corpus_root: Path | None, out: Path, split: str = "test") -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    # 1. one sentence, one voice, each emotion at full intensity
    motions, frames, labels = [], [], []
    for emo in EMOTIONS:
        e = np.zeros(8, np.float32)
        e[EMOTIONS.index(emo)] = 1.0
        u = synthesize(PREVIEW_SENTENCE, {"engine": "espeak", "name": "en-us+m3", "rate": 160,
                                          "pitch": 50, "range": 50}, emotion_prosody(e))
        T = int(round(len(u.audio) / HOP))
        m = animate(u.phones, T, np.tile(e, (T, 1)), Style(), np.random.default_rng(0), frame_energy(u.audio, T))
        ph = [(p.symbol, p.start, p.end) for p in u.phones]
        fr, _ = _key_frames(ph, T)
        motions.append(m)
        frames.append(fr)
        mid_frame = lambda p: min(T - 1, int(round((p[1] + p[2]) / 2 * 25)))
        labels.append(f"{emo}: frames {fr} = " + " ".join(p[0] for p in ph if mid_frame(p) in fr))
    written.append(contact_sheet(motions, frames, labels, out / "emotions.png", size=180))
    # 2. takes from a built corpus
    if corpus_root is not None:
        corpus = Corpus(corpus_root)
        motions, frames, labels = [], [], []
        for i, take in enumerate(corpus.takes(split)):
            if i >= 4:
                break
            fr, _ = _key_frames(take.phones, len(take.motion))
            dom = EMOTIONS[int(np.argmax(take.emotion.mean(0)))]
            motions.append(Motion(25.0, ARKIT_HEAD_LAYOUT, take.motion))
            frames.append(fr)
            labels.append(f"take {i} speaker {take.speaker} ({dom}): {take.texts[0][:60]}")
        written.append(contact_sheet(motions, frames, labels, out / f"corpus_{split}.png", size=180, crop="face"))
    return written
