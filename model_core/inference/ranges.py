"""Regenerating a frame range of an earlier generation (inpainting in time).

The sampler starts the range from the kept frames before it (they are the first window's
previous-frame context, the same conditioning that joins windows), and the new frames are
blended into the kept ones over a few frames at each end of the range, inside it, so every
frame outside the range stays the kept one exactly and neither join jumps.
"""
from __future__ import annotations

import numpy as np

from ..base.errors import LaliaError
from ..base.motion import Motion

JOIN_FRAMES = 10  # frames (0.4 s, as windows overlap) at each end of a range over which new motion blends in


def check_range(keep: Motion | None, frames, channels: tuple[str, ...], fps: float, T: int) -> tuple[int, int] | None:
    """The range [a, b) to regenerate, after checking `keep` fits this audio and model; None
    when no range is asked for."""
    if keep is None and frames is None:
        return None
    if keep is None or frames is None:
        raise LaliaError("Regenerating a range needs both the motion to keep and the frames (a, b)")
    if not isinstance(keep, Motion):
        raise LaliaError("keep must be a Motion (an earlier generation of this audio)")
    if abs(keep.fps - fps) > 1e-6 or keep.num_frames != T:
        raise LaliaError(f"keep must be this audio's motion at {fps:g} fps ({T} frames); it has "
                         f"{keep.num_frames} frames at {keep.fps:g} fps")
    missing = [c for c in channels if c not in keep.channels]
    if missing:
        raise LaliaError(f"keep lacks {len(missing)} of the model's channels (e.g. {missing[0]})")
    try:
        a, b = (int(x) for x in frames)
    except (TypeError, ValueError):
        raise LaliaError(f"frames must be two frame numbers (start, end), got {frames!r}") from None
    if not 0 <= a < b <= T:
        raise LaliaError(f"frames ({a}, {b}) must satisfy 0 <= start < end <= {T}")
    return a, b


def splice(kept: np.ndarray, new: np.ndarray, a: int, b: int) -> np.ndarray:
    """`kept` with frames [a, b) from `new`, blended over up to JOIN_FRAMES at each end of the
    range (smoothstep weights that stay inside it), so frames outside the range are `kept`'s."""
    out = kept.copy()
    n = b - a
    k = min(JOIN_FRAMES, n // 2)
    w = np.ones(n, np.float32)
    if k > 0:
        ramp = (np.arange(1, k + 1, dtype=np.float32) / (k + 1))
        ramp = ramp * ramp * (3 - 2 * ramp)
        if a > 0:
            w[:k] = ramp
        if b < len(kept):
            w[n - k:] = np.minimum(w[n - k:], ramp[::-1])
    out[a:b] = (1 - w[:, None]) * kept[a:b] + w[:, None] * new[a:b]
    return out
