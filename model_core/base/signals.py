"""Small signal helpers over per-frame curves, shared by the corpus animator and the inference layers."""
from __future__ import annotations

import numpy as np

from .vocabulary import FPS, SAMPLE_RATE

HEAD_SMOOTHING_FRAMES = 1.0  # the head never moves faster than this smoothing lets it
LOUD = 0.9  # a syllable this loud (x the utterance's 95th-percentile RMS) is emphasised
SPEECH_ENERGY = 0.1  # frames at least this loud (same scale) are speech; quieter ones are a pause


def gaussian_smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Gaussian smoothing along the first axis (edges padded with their values)."""
    if sigma_frames <= 0:
        return x
    r = int(3 * sigma_frames) + 1
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma_frames) ** 2)
    k /= k.sum()
    pad = np.pad(x, [(r, r)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    if x.ndim == 1:
        return np.convolve(pad, k, mode="valid")
    return np.stack([np.convolve(pad[:, j], k, mode="valid") for j in range(x.shape[1])], 1)


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) frame pairs, end exclusive, of each run of True in a 1-d mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], np.asarray(mask, np.int8), [0]])))
    return [(int(s), int(e)) for s, e in zip(edges[::2], edges[1::2])]


def frame_energy(audio: np.ndarray, n_frames: int, sr: int = SAMPLE_RATE, fps: float = FPS) -> np.ndarray:
    """RMS loudness per motion frame, normalised to the utterance's 95th percentile."""
    hop = int(round(sr / fps))
    x = np.pad(audio, (0, max(0, n_frames * hop - len(audio))))[: n_frames * hop]
    rms = np.sqrt((x.reshape(n_frames, hop) ** 2).mean(1) + 1e-12)
    return rms / (np.percentile(rms, 95) + 1e-9)


def loud_onsets(energy: np.ndarray, min_gap: int = 8) -> np.ndarray:
    """Frames where the loudness of the next 3 frames rises through LOUD (the onsets of loud
    syllables, as `frame_energy` measures them), at least `min_gap` frames apart."""
    ahead = np.array([energy[t:t + 3].mean() for t in range(len(energy))])
    rising = np.flatnonzero((ahead[1:] > LOUD) & (ahead[:-1] <= LOUD)) + 1
    kept: list[int] = []
    for t in rising:
        if not kept or t - kept[-1] >= min_gap:
            kept.append(int(t))
    return np.array(kept, dtype=int)


def peak_position(curve: np.ndarray) -> float:
    """Index of a curve's maximum with sub-sample precision: the vertex of the parabola through
    the peak and its two neighbours (the peak itself at either end)."""
    i = int(np.argmax(curve))
    if not 0 < i < len(curve) - 1:
        return float(i)
    y0, y1, y2 = curve[i - 1], curve[i], curve[i + 1]
    denom = y0 - 2 * y1 + y2
    return i + (0.5 * (y0 - y2) / denom if abs(denom) > 1e-12 else 0.0)
