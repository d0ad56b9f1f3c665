"""Blinks and eyebrow flashes, added after sampling at the corpus animator's timing.

Speech says roughly *where* a blink or a brow raise may go (at pauses, on loud syllables) but
not *which* pause or syllable gets one, so a few-step sampler averages them away: the model
alone blinks and raises its brows far less than the corpus does. These layers put them back,
seeded, and are what the Blink rate and Brow activity sliders set.
"""
from __future__ import annotations

import numpy as np

from ..base.signals import SPEECH_ENERGY, frame_energy, gaussian_smooth, loud_onsets, true_runs
from ..base.vocabulary import FPS

BLINKS_PER_MINUTE = 11.0  # with the blinks at pauses: about the corpus median of 18 a minute
# the corpus animator raises the brows on half the loud stressed syllables (12.6 a minute in the
# held-out takes); `loud_onsets` finds 35 loud onsets a minute there, stressed or not, so 18% of
# them give the corpus's ~6 raises a minute
BROW_RAISE_SHARE = 0.18
TYPICAL_BROW_ACTIVITY = 0.5  # the corpus speakers' brow activity is uniform in 0..1


# brow raise height per unit of a speaker's brow activity (0..1)
BROW_RAISE = {"browInnerUp": 0.35, "browOuterUpLeft": 0.3, "browOuterUpRight": 0.3}


def brow_raise_curve(onsets: np.ndarray, fps: float = FPS) -> np.ndarray:
    """Brow raise per frame (0..1) for raise onsets (T impulses): up at once, down over ~0.6 s."""
    T = len(onsets)
    curve = np.clip(np.convolve(onsets, np.exp(-np.arange(int(0.6 * fps)) / (0.25 * fps)))[:T], 0, 1)
    return gaussian_smooth(curve, 1.5)


def blink_times(duration: float, per_minute: float, pauses, rng: np.random.Generator) -> list[float]:
    """Blink onsets (s): a Poisson process at `per_minute` (at least 0.35 s apart), plus one at
    about half of the pauses longer than 0.3 s, since people blink at pauses.
    pauses: (start, end) seconds."""
    times = []
    tcur = rng.exponential(60.0 / per_minute) * 0.5
    while tcur < duration:
        times.append(tcur)
        tcur += max(0.35, rng.exponential(60.0 / per_minute))
    times += [a + 0.05 for a, b in pauses if b - a > 0.3 and a > 0.2 and rng.random() < 0.5]
    return times


def blink_curve(times: list[float], n_frames: int, fps: float = FPS) -> np.ndarray:
    """Lid closure per frame (0..1) for blinks at `times`: ~100 ms closing, ~150 ms opening."""
    blink = np.zeros(n_frames, np.float32)
    shape_t = np.arange(-3, 6) / fps
    prof = np.where(shape_t < 0, np.exp(-(shape_t / 0.05) ** 2), np.exp(-(shape_t / 0.09) ** 2))
    for bt in times:
        idx = int(round(bt * fps)) + np.arange(-3, 6)
        ok = (idx >= 0) & (idx < n_frames)
        blink[idx[ok]] = np.maximum(blink[idx[ok]], prof[ok])
    return blink


def add_blinks(values: np.ndarray, channels, wav: np.ndarray, fps: float, seed: int, rate: float) -> np.ndarray:
    """Blinks on top of the model's lids (in place; returns `values`): a Poisson process plus
    blinks at pauses, at BLINKS_PER_MINUTE x `rate` (0 = the model's own lids only)."""
    channels = tuple(channels)
    if rate <= 0 or "eyeBlinkLeft" not in channels:
        return values
    T = len(values)
    pauses = [(a / fps, b / fps) for a, b in true_runs(frame_energy(wav, T, fps=fps) < SPEECH_ENERGY)]
    rng = np.random.default_rng([int(seed), 2])
    blink = blink_curve(blink_times(T / fps, BLINKS_PER_MINUTE * rate, pauses, rng), T, fps)
    for side in ("Left", "Right"):
        j = channels.index("eyeBlink" + side)
        values[:, j] += (1.0 - values[:, j]) * blink
    return values


def add_brow_raises(values: np.ndarray, channels, wav: np.ndarray, fps: float, seed: int,
                    activity: float) -> np.ndarray:
    """Eyebrow flashes on BROW_RAISE_SHARE of the loud syllable onsets, as high as a typical
    corpus speaker's x `activity` (0 = none), weights kept in 0..1 (in place; returns `values`)."""
    channels = tuple(channels)
    if activity <= 0 or not all(n in channels for n in BROW_RAISE):
        return values
    T = len(values)
    onsets = loud_onsets(frame_energy(wav, T, fps=fps))
    rng = np.random.default_rng([int(seed), 3])
    impulses = np.zeros(T, np.float32)
    impulses[onsets[rng.random(len(onsets)) < BROW_RAISE_SHARE]] = 1.0
    raise_ = brow_raise_curve(impulses, fps)
    for name, height in BROW_RAISE.items():
        j = channels.index(name)
        values[:, j] = np.clip(values[:, j] + height * TYPICAL_BROW_ACTIVITY * activity * raise_, 0.0, 1.0)
    return values
