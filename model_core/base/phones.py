"""Phone timings -> a per-frame phone track, the form the content prior reads.

A track holds one index into `PHONES` per motion frame (frame i is the instant i / fps, as the
motion's frames are); `UNKNOWN_PHONE` marks frames no timing covers and is what the model sees
when it is given no phones at all.
"""
from __future__ import annotations

import numpy as np

from .vocabulary import FPS, PHONES

UNKNOWN_PHONE = len(PHONES)
_INDEX = {p: i for i, p in enumerate(PHONES)}


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
