"""How much the head moves, the brows rise and the mouth articulates, set on generated motion
in plain code.

The denoiser follows the style vector's speaking energy (articulation) but hardly its head
amount or brow activity, so those amounts are applied here, after sampling, where they cannot
fail to act (docs/architecture.md says what was measured before this layer):

- head rotation is first smoothed as the corpus smooths it (the few-step sampler leaves a
  frame-to-frame shake in it);
- head motion is scaled about the clip's median pose (so a held pose, such as the head an
  emotion lowers, stays where it is and only the movement grows or shrinks), by the Head
  motion slider and, with a motion reference, by how much more or less the reference's head
  moves than the generated head (RMS frame-to-frame rotation, which pose offsets barely touch);
- brow raises (the brows above their resting level, which is what remains after removing
  every bump shorter than 2 s: the resting brow an emotion sets) are scaled by the Brow
  activity slider and, with a motion reference, to the reference's mean brow raise;
- with a motion reference, articulation (the jaw and lip channels above their resting level)
  is scaled so the lips open and close as fast as the reference's do (RMS frame-to-frame
  change of the inner lip gap), since the model alone under-articulates a lively speaker's
  reference. `closures.keep_closures` runs after this, so a larger mouth still closes on its
  bilabials;
- a style preset or a library identity brings its speakers' amounts (`ship.AMOUNTS`: head
  motion and brow activity as ratios to the average speaker's, which multiply the sliders, and
  the mouth's side asymmetry, one side's movement grown and the other's shrunk), which the
  style vector alone barely conveys.
"""
from __future__ import annotations

import numpy as np

from ..base.motion import ARKIT_NAMES
from ..base.signals import HEAD_SMOOTHING_FRAMES, gaussian_smooth
from .closures import ARTICULATION, lip_gap

HEAD = ("headPitch", "headYaw", "headRoll")
BROWS = ("browInnerUp", "browOuterUpLeft", "browOuterUpRight")
# the mouth's left-side channels (not mouthLeft, which moves the whole mouth) and their right twins
MOUTH_LEFT = tuple(n for n in ARKIT_NAMES if n.startswith("mouth") and n.endswith("Left") and n != "mouthLeft")
MOUTH_RIGHT = tuple(n.replace("Left", "Right") for n in MOUTH_LEFT)
REFERENCE_GAIN_RANGE = (0.25, 4.0)  # a reference can shrink or grow a movement this much at most
RESTING_FRAMES = 51                 # 2 s at 25 fps: longer than a brow raise (~0.35 s) or a syllable


def _columns(channels, names) -> list[int]:
    return [channels.index(n) for n in names if n in channels]


def head_activity(values: np.ndarray, channels) -> float | None:
    """RMS frame-to-frame head rotation (radians per frame, over the three axes); None when the
    motion has no head channels or is too short to say."""
    cols = _columns(tuple(channels), HEAD)
    if len(cols) < 3 or len(values) < 3:
        return None
    return float(np.sqrt((np.diff(values[:, cols], axis=0) ** 2).sum(1).mean()))


def articulation_activity(values: np.ndarray, channels) -> float | None:
    """RMS frame-to-frame change of the inner lip gap (mm per frame); None without the ARKit
    mouth or when too short to say."""
    gap = lip_gap(values, channels)
    if gap is None or len(values) < 3:
        return None
    return float(np.sqrt((np.diff(gap) ** 2).mean()))


def brow_raise(values: np.ndarray, channels) -> float | None:
    """Mean height of the brows above their resting level (an emotion's raised or lowered
    resting brow doesn't count, only the raises on top); None without the brow channels."""
    cols = _columns(tuple(channels), BROWS)
    if len(cols) < len(BROWS) or len(values) < 3:
        return None
    x = values[:, cols]
    return float((x - resting_level(x)).mean())


def reference_gain(reference_activity: float | None, generated_activity: float | None) -> float:
    """The gain that gives a generated movement the reference's activity (1 when either is
    unknown or the generated movement is still), clamped to REFERENCE_GAIN_RANGE."""
    if not reference_activity or not generated_activity or generated_activity < 1e-6:
        return 1.0
    lo, hi = REFERENCE_GAIN_RANGE
    return float(np.clip(reference_activity / generated_activity, lo, hi))


def smooth_head(values: np.ndarray, channels) -> np.ndarray:
    """Head rotation smoothed as the corpus animator smooths it (in place; returns `values`).
    The training motion has no head movement faster than that, so what a few-step sampler
    leaves there is sampling noise: frame-to-frame shake of about half a degree."""
    cols = _columns(tuple(channels), HEAD)
    if cols:
        values[:, cols] = gaussian_smooth(values[:, cols], HEAD_SMOOTHING_FRAMES)
    return values


def scale_head(values: np.ndarray, channels, gain: float) -> np.ndarray:
    """Head rotation scaled by `gain` about its median pose (in place; returns `values`)."""
    cols = _columns(tuple(channels), HEAD)
    if abs(gain - 1.0) < 1e-6 or not cols:
        return values
    head = values[:, cols]
    median = np.median(head, axis=0)
    values[:, cols] = median + gain * (head - median)
    return values


def _running(x: np.ndarray, frames: int, reduce) -> np.ndarray:
    half = frames // 2
    padded = np.pad(x, ((half, half), (0, 0)), mode="edge")
    return reduce(np.lib.stride_tricks.sliding_window_view(padded, frames, axis=0), axis=-1)


def resting_level(x: np.ndarray, frames: int = RESTING_FRAMES) -> np.ndarray:
    """T x k resting level: a morphological opening (running minimum, then running maximum,
    over `frames`). It removes bumps shorter than `frames` (a brow raise, a syllable's jaw
    drop) and keeps slower changes, such as an emotion's resting brow or jaw stepping up or
    down, exactly where they happen."""
    return _running(_running(x, frames, np.min), frames, np.max)


def scale_above_rest(values: np.ndarray, channels, names, gain: float) -> np.ndarray:
    """The named channels' movement above their resting level scaled by `gain`, weights kept
    in 0..1 (in place; returns `values`)."""
    cols = _columns(tuple(channels), names)
    if abs(gain - 1.0) < 1e-6 or not cols:
        return values
    x = values[:, cols]
    base = resting_level(x)
    values[:, cols] = np.clip(base + gain * (x - base), 0.0, 1.0)
    return values


def scale_brow_raises(values: np.ndarray, channels, gain: float) -> np.ndarray:
    """Brow raises above the resting brows scaled by `gain` (in place)."""
    return scale_above_rest(values, channels, BROWS, gain)


def scale_articulation(values: np.ndarray, channels, gain: float) -> np.ndarray:
    """Jaw and lip movement above its resting level scaled by `gain` (in place)."""
    return scale_above_rest(values, channels, ARTICULATION, gain)


def side_asymmetry(values: np.ndarray, channels) -> float | None:
    """How much more the mouth's left side moves than its right: (left - right) / (left +
    right) of their movement above rest (as the corpus animator's `asymmetry`: a speaker's
    label and this measure of its motion correlate at r = 0.98). None without the channels."""
    left, right = _columns(tuple(channels), MOUTH_LEFT), _columns(tuple(channels), MOUTH_RIGHT)
    if not left or len(left) != len(right):
        return None
    moves = [float((values[:, c] - resting_level(values[:, c])).sum()) for c in (left, right)]
    return (moves[0] - moves[1]) / max(moves[0] + moves[1], 1e-9)


def shift_sides(values: np.ndarray, channels, asymmetry: float) -> np.ndarray:
    """The mouth's left-side movement grown by `asymmetry` and its right side's shrunk by as
    much (negative: the other way), as a lopsided speaker talks (in place; returns `values`)."""
    if abs(asymmetry) < 1e-6:
        return values
    scale_above_rest(values, channels, MOUTH_LEFT, 1.0 + asymmetry)
    return scale_above_rest(values, channels, MOUTH_RIGHT, 1.0 - asymmetry)
