"""Sparse keyframes: the fewest Bézier keys whose curve stays within a tolerance of a dense one.

A dense curve (one value per frame) is cut greedily into the longest segments whose cubic
Hermite interpolation, with each key's slope taken from the dense curve (central differences),
stays within `tolerance` of every frame in between. A key's Bézier handles lie a third of the
way to its neighbours along that slope: with handles at 1/3 and 2/3 of a segment in time, a
Bézier F-curve (Blender's, or any engine's) evaluates to exactly that Hermite cubic, so the
tolerance checked here is the tolerance the animator gets.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SparseKeys:
    """Keys at `frames` (indices into the dense curve) with `values`, and each key's left and
    right handles as (frame offset, value offset) from the key."""
    frames: np.ndarray        # K, int
    values: np.ndarray        # K
    left: np.ndarray          # K x 2
    right: np.ndarray         # K x 2

    def evaluate(self, n_frames: int) -> np.ndarray:
        """The curve these keys make at frames 0..n_frames-1 (to measure the error)."""
        out = np.empty(n_frames, np.float64)
        for k in range(len(self.frames) - 1):
            i, j = int(self.frames[k]), int(self.frames[k + 1])
            out[i:j + 1] = _hermite(self.values[k], self.values[k + 1], 3 * self.right[k, 1], -3 * self.left[k + 1, 1],
                                    j - i)
        out[int(self.frames[-1]):] = self.values[-1]
        return out


def slopes(y: np.ndarray) -> np.ndarray:
    """Per-frame slope of a dense curve: central differences, one-sided at the ends."""
    return np.gradient(y) if len(y) > 1 else np.zeros_like(y)


def _hermite(y0: float, y1: float, d0: float, d1: float, n: int) -> np.ndarray:
    """Cubic Hermite from y0 to y1 over n frames (n + 1 samples); d0, d1: the change over the
    whole segment that the end slopes give (slope x n)."""
    u = np.arange(n + 1) / n
    u2, u3 = u * u, u * u * u
    return (2 * u3 - 3 * u2 + 1) * y0 + (u3 - 2 * u2 + u) * d0 + (-2 * u3 + 3 * u2) * y1 + (u3 - u2) * d1


def reduce_keys(y: np.ndarray, tolerance: float) -> SparseKeys:
    """The fewest keys (greedy, left to right) whose Bézier curve stays within `tolerance` of `y`
    at every frame. The first and last frames are always keys."""
    y = np.asarray(y, np.float64)
    T = len(y)
    m = slopes(y)
    keys = [0]
    i = 0
    while i < T - 1:
        j = i + 1  # a one-frame segment is always within tolerance (it hits both ends)
        for cand in range(i + 2, T):
            n = cand - i
            if np.abs(_hermite(y[i], y[cand], m[i] * n, m[cand] * n, n) - y[i:cand + 1]).max() > tolerance:
                break
            j = cand
        keys.append(j)
        i = j
    frames = np.array(keys)
    gaps = np.diff(frames).astype(np.float64)
    left_len = np.r_[gaps[:1] if len(gaps) else [1.0], gaps] / 3   # to the previous key
    right_len = np.r_[gaps, gaps[-1:] if len(gaps) else [1.0]] / 3  # to the next key
    s = m[frames]
    left, right = np.stack([-left_len, -left_len * s], 1), np.stack([right_len, right_len * s], 1)
    return SparseKeys(frames, y[frames], left, right)
