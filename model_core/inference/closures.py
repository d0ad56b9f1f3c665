"""Lips the words close stay closed, whatever the emotion (ExpTalk's promise, kept in plain code).

The denoiser adds an emotion's face on top of the mouth the speech asks for, and for emotions
that open the jaw (surprised; disgusted raises the upper lip) that face can hold the lips apart
through a /p b m/. The content prior's neutral decoding (what the face does for the words
alone, the AD-VAE's content code with the neutral emotion code) knows where the words close the
lips, so wherever it closes the lips for a
moment in speech, the generated mouth's articulation channels are blended into its own there,
feathered over a few frames; the emotion keeps every other channel and every other frame.
A long closure is the mouth at rest, which the emotion is free to set (a surprised face
keeps its dropped jaw in a pause).

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
FEATHER_FRAMES = 2        # the blend fades in and out over this many frames each side
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


def closure_weights(gap_mm: np.ndarray) -> np.ndarray:
    """T weights in 0..1: 1 on each brief closure, fading to 0 over FEATHER_FRAMES."""
    T = len(gap_mm)
    hold = np.zeros(T)
    for s, e in brief_closures(gap_mm):
        hold[s:e] = 1.0
    F = FEATHER_FRAMES
    taper = 1.0 - np.abs(np.arange(-F, F + 1)) / (F + 1)
    padded = np.pad(hold, F)
    return np.max([padded[i:i + T] * taper[i] for i in range(2 * F + 1)], axis=0)


def keep_closures(values: np.ndarray, content: np.ndarray, channels) -> np.ndarray:
    """Blend the articulation channels of `values` (T x C) into those of `content` (the words'
    neutral mouth, same layout) on the brief closures `content` makes (in place; returns
    `values`). A no-op for layouts without the ARKit mouth."""
    gap = lip_gap(content, channels)
    if gap is None:
        return values
    a = closure_weights(gap)[:, None]
    cols = [tuple(channels).index(n) for n in ARTICULATION if n in channels]
    values[:, cols] = (1.0 - a) * values[:, cols] + a * content[:, cols]
    return values
