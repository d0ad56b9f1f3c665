"""Per-region strength: how much of the generated movement each part of the face keeps.

A last layer over finished motion, so it works on a generation without regenerating it (the
add-on applies the same multipliers as F-curve modifiers on the keys). It multiplies on top of
the style sliders, which act during generation: a slider changes what the model makes, a
strength scales what was made. Blendshape weights are scaled about 0 (the rig's rest, where
the lips meet, so closures stay closures); the head about its median pose, as the amplitude
layer scales it.
"""
from __future__ import annotations

import numpy as np

from ..base.errors import LaliaError
from ..base.motion import ARKIT_NAMES, HEAD_ROTATION_NAMES
from .amplitude import scale_head

REGIONS: dict[str, tuple[str, ...]] = {
    "mouth": tuple(n for n in ARKIT_NAMES if n.startswith(("jaw", "mouth", "tongue"))),
    "brows": tuple(n for n in ARKIT_NAMES if n.startswith("brow")),
    "eyes": tuple(n for n in ARKIT_NAMES if n.startswith("eye")),
    "cheeks": tuple(n for n in ARKIT_NAMES if n.startswith(("cheek", "nose"))),
    "head": HEAD_ROTATION_NAMES,
}
MAX_STRENGTH = 3.0


def check_strengths(strengths: dict | None) -> dict[str, float]:
    """Validated {region: multiplier}; unknown regions and values outside 0..MAX_STRENGTH are errors."""
    out = {}
    for region, k in (strengths or {}).items():
        if region not in REGIONS:
            raise LaliaError(f"Unknown region '{region}'; choose from {', '.join(REGIONS)}")
        try:
            k = float(k)
        except (TypeError, ValueError):
            raise LaliaError(f"The {region} strength must be a number, got {k!r}") from None
        if not 0.0 <= k <= MAX_STRENGTH:
            raise LaliaError(f"The {region} strength must be between 0 and {MAX_STRENGTH:g}, got {k:g}")
        out[region] = k
    return out


def apply_strengths(values: np.ndarray, channels, strengths: dict | None) -> np.ndarray:
    """Each region's movement times its multiplier (in place; returns `values`); weights stay in 0..1."""
    channels = tuple(channels)
    for region, k in check_strengths(strengths).items():
        if abs(k - 1.0) < 1e-9:
            continue
        if region == "head":
            scale_head(values, channels, k)
            continue
        cols = [channels.index(n) for n in REGIONS[region] if n in channels]
        values[:, cols] = np.clip(values[:, cols] * k, 0.0, 1.0)
    return values
