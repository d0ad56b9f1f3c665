"""Lips the words close stay closed, whatever the emotion (ExpTalk's promise, kept in plain code).

The denoiser adds an emotion's face on top of the mouth the speech asks for, and for emotions
that open the jaw (surprised; disgusted raises the upper lip) that face can hold the lips apart
through a /p b m/. The content prior's neutral decoding (what the face does for the words
alone, the AD-VAE's content code with the neutral emotion code) knows where the words close the
lips, so wherever it closes the lips for a
moment in speech, the generated mouth's articulation channels are blended into its own there,
feathered over a few frames; the emotion keeps every other channel and every other frame.
A long closure is the mouth at rest, which the emotion is free to set (a surprised face
keeps its dropped jaw in a pause), except where the voice sounds inside it: a hummed /m/ or
voiced /b/ in a hesitation or slow speech ("mmm", "uh-m"), which the words' mouth shows as one
long closure with the pause beside it (`voiced_closures`; on the real-speech benchmark's tuning
clips these were every bilabial surprised and disgusted still missed that neutral closed).

With a usable transcript the closures are the aligned /p b m/ instead (`transcript.py`): the
words' mouth at those frames, closed where it isn't yet (`close_lips`), is what the generated
mouth is blended into, so every bilabial the aligner found closes even where the speech
features alone missed it.

The inner lip gap is affine in the ARKit weights (`HeadAsset.lip_gap_model`), so "closed" is
measured on the bundled head, the same way the evaluation measures it.
"""
from __future__ import annotations

import numpy as np

from ..base.head import load_head
from ..base.motion import ARKIT_NAMES
from ..base.signals import true_runs

CLOSED_MM = 2.0           # inner lip gap under which the lips count as closed
MAX_CLOSURE_FRAMES = 10   # 0.4 s at 25 fps: a bilabial closure lasts 60-200 ms; longer is rest
CLOSED_TARGET_MM = 0.5    # the gap `close_lips` closes an aligned bilabial to
# the blend fades in and out over 1 frame each side: over 2, the neighbouring vowels took half
# the words' neutral mouth, which cost 0.06 of openness r with aligned bilabials
# (docs/transcript.md) and 0.011 under surprised from the audio alone (docs/lipsync_benchmark.md)
FEATHER_FRAMES = 1
# the channels that open and close the lips (jaw and lip shapes); the expression channels
# (smile, frown, press, stretch, sneer, brows, eyes) are the emotion's and are never touched
ARTICULATION = ("jawOpen", "jawForward", "mouthClose", "mouthFunnel", "mouthPucker",
                "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
                "mouthUpperUpLeft", "mouthUpperUpRight", "mouthLowerDownLeft", "mouthLowerDownRight")


def lip_gap(values: np.ndarray, channels) -> np.ndarray | None:
    """Inner lip gap (mm) per frame on the bundled head; None for layouts that don't start
    with the 52 ARKit blendshapes (FLAME parameters)."""
    if tuple(channels)[:52] != ARKIT_NAMES:
        return None
    return load_head().lip_gap(values[:, :52])


def brief_closures(gap_mm: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) frames of each brief closure in speech: a closed run of at most
    MAX_CLOSURE_FRAMES with open lips after it or before it. A run at the clip's very start or
    end counts: dialogue lines are often trimmed tight, and one that starts on a /p b m/ (a tenth
    of the bilabials the jaw-opening emotions missed on the real-speech benchmark) opens from a
    closure, not from rest."""
    T = len(gap_mm)
    return [(s, e) for s, e in true_runs(gap_mm < CLOSED_MM) if e - s <= MAX_CLOSURE_FRAMES and (s > 0 or e < T)]


def voiced_closures(gap_mm: np.ndarray, speech: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) frames where the lips are closed *while the voice sounds* inside a closed
    run too long to be brief: a hummed /m/ or a voiced /b/ held in a hesitation ("mmm", "uh-m")
    or in slow speech, which the words' mouth shows as one long closure with the rest beside it.
    `speech`: per frame, whether the audio is loud enough to be speech."""
    T = len(gap_mm)
    out = []
    for s, e in true_runs(gap_mm < CLOSED_MM):
        if e - s > MAX_CLOSURE_FRAMES or (s == 0 and e == T):
            out += [(s + a, s + b) for a, b in true_runs(speech[s:e])]
    return out


def closure_weights(gap_mm: np.ndarray) -> np.ndarray:
    """T weights in 0..1: 1 on each brief closure, fading to 0 over FEATHER_FRAMES."""
    return span_weights(brief_closures(gap_mm), len(gap_mm))


def span_weights(spans, T: int, feather: int = FEATHER_FRAMES) -> np.ndarray:
    """T weights in 0..1: 1 on each (start, end) span of frames, fading to 0 over `feather` frames."""
    hold = np.zeros(T)
    for s, e in spans:
        hold[s:e] = 1.0
    F = feather
    taper = 1.0 - np.abs(np.arange(-F, F + 1)) / (F + 1)
    padded = np.pad(hold, F)
    return np.max([padded[i:i + T] * taper[i] for i in range(2 * F + 1)], axis=0)


# channels that part the lips (their gap coefficient is positive), beside the jaw
_OPENERS = ("mouthFunnel", "mouthShrugUpper", "mouthUpperUpLeft", "mouthUpperUpRight", "mouthLowerDownLeft",
            "mouthLowerDownRight", "jawForward")


def close_lips(values: np.ndarray, channels, target_mm: float = CLOSED_TARGET_MM) -> np.ndarray:
    """A copy of `values` (T x C, ARKit layout) whose lips are closed to `target_mm` on every
    frame: first mouthClose rises (at most to jawOpen, as ARKit rigs expect: the lips closed
    over an open jaw), then what still parts the lips (funnel, raised upper and lowered lower
    lip, ...) shrinks just enough. Frames already closed are unchanged."""
    out = values.copy()
    dg = load_head().lip_gap_model()[1]
    idx = {n: i for i, n in enumerate(ARKIT_NAMES)}
    jaw, close = idx["jawOpen"], idx["mouthClose"]
    excess = lip_gap(out, channels) - target_mm
    raise_close = np.clip(np.minimum(excess / -dg[close], out[:, jaw] - out[:, close]), 0.0, None)
    out[:, close] += raise_close
    excess = lip_gap(out, channels) - target_mm
    openers = [idx[n] for n in _OPENERS]
    opening = out[:, openers] @ dg[openers]
    shrink = np.where((excess > 0) & (opening > 1e-9), np.clip(1.0 - excess / np.maximum(opening, 1e-9), 0, 1), 1.0)
    out[:, openers] *= shrink[:, None]
    return out


def keep_closures(values: np.ndarray, content: np.ndarray, channels, spans=None,
                  speech: np.ndarray | None = None) -> np.ndarray:
    """Blend the articulation channels of `values` (T x C) into those of `content` (the words'
    neutral mouth, same layout) on the brief closures `content` makes, or, given `spans` (the
    aligned bilabials' (start, end) frames), on those; either way with `content` closed there
    (`close_lips`). In place; returns `values`. A no-op for layouts without the ARKit mouth."""
    gap = lip_gap(content, channels)
    if gap is None:
        return values
    if spans is None:
        # the words' closures closed for real inside their runs (the prior's "closed" is < 2 mm;
        # a bilabial seals), and left as they are on the feathered frames around them
        runs = brief_closures(gap) + ([] if speech is None else voiced_closures(gap, speech))
        a, target = span_weights(runs, len(gap))[:, None], content.copy()
        inside = span_weights(runs, len(gap), 0) > 0
        target[inside] = close_lips(content[inside], channels)
    else:
        a, target = span_weights(spans, len(gap))[:, None], close_lips(content, channels)
    cols = [tuple(channels).index(n) for n in ARTICULATION if n in channels]
    values[:, cols] = (1.0 - a) * values[:, cols] + a * target[:, cols]
    return values
