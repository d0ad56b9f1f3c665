"""The amplitude layer on plain arrays: head movement scaled about the median pose, brow raises
and articulation scaled above their resting level, the reference gain."""
import numpy as np
import pytest

from model_core.base.motion import ARKIT_HEAD_LAYOUT
from model_core.inference.amplitude import (
    BROWS,
    HEAD,
    articulation_activity,
    head_activity,
    reference_gain,
    resting_level,
    scale_articulation,
    scale_brow_raises,
    scale_head,
)

CH = ARKIT_HEAD_LAYOUT


def _motion(T=200, seed=0):
    rng = np.random.default_rng(seed)
    v = np.zeros((T, len(CH)), np.float32)
    t = np.arange(T) / 25
    head = [CH.index(n) for n in HEAD]
    v[:, head] = 0.05 + 0.03 * np.sin(2 * np.pi * 0.7 * t)[:, None] * rng.uniform(0.5, 1.5, 3)
    return v


def test_scale_head_keeps_the_median_pose_and_scales_the_movement():
    v = _motion()
    head = [CH.index(n) for n in HEAD]
    before = v[:, head].copy()
    out = scale_head(v.copy(), CH, 2.0)
    np.testing.assert_allclose(np.median(out[:, head], 0), np.median(before, 0), atol=1e-6)
    np.testing.assert_allclose(out[:, head].std(0), 2 * before.std(0), rtol=1e-5)
    assert head_activity(out, CH) / head_activity(v, CH) > 1.99
    still = scale_head(v.copy(), CH, 0.0)
    assert still[:, head].std(0).max() < 1e-7 and head_activity(still, CH) < 1e-7
    others = np.ones(len(CH), bool)
    others[head] = False
    np.testing.assert_array_equal(out[:, others], v[:, others])


def test_head_activity_needs_head_channels():
    v = _motion()
    assert head_activity(v[:, :52], CH[:52]) is None
    assert head_activity(v, CH) > 0


def test_reference_gain_matches_and_is_clamped():
    assert reference_gain(0.02, 0.01) == 2.0
    assert reference_gain(1.0, 0.01) == 4.0 and reference_gain(1e-4, 0.01) == 0.25
    assert reference_gain(None, 0.01) == 1.0 and reference_gain(0.02, 0.0) == 1.0


def test_brow_raises_scale_above_the_resting_brow():
    """A resting brow that steps up (an emotion) stays; the short raises on top scale."""
    T = 300
    v = np.zeros((T, len(CH)), np.float32)
    cols = [CH.index(n) for n in BROWS]
    rest = np.where(np.arange(T) < 150, 0.1, 0.5)
    raises = np.zeros(T)
    for c in (40, 100, 200, 260):
        raises[c:c + 8] = 0.2
    v[:, cols] = (rest + raises)[:, None]
    base = resting_level(v[:, cols])
    assert np.abs(base[10:140, 0] - 0.1).max() < 1e-6 and np.abs(base[150:290, 0] - 0.5).max() < 1e-6
    out = scale_brow_raises(v.copy(), CH, 2.0)
    np.testing.assert_allclose(out[[42, 102, 202, 262], cols[0]], rest[[42, 102, 202, 262]] + 0.4, atol=1e-6)
    np.testing.assert_allclose(out[[20, 120, 230], cols[0]], rest[[20, 120, 230]], atol=1e-6)
    none = scale_brow_raises(v.copy(), CH, 0.0)
    assert none[[42, 102, 202, 262], cols[0]].max() <= 0.5 + 1e-6 and none[42, cols[0]] < 0.1 + 1e-6


def test_articulation_scales_above_the_resting_jaw():
    """An emotion's held jaw (the resting level) stays; the syllables' jaw drops on top scale,
    and so does the lips' frame-to-frame movement."""
    T = 200
    v = np.zeros((T, len(CH)), np.float32)
    jaw, brow = CH.index("jawOpen"), CH.index("browInnerUp")
    syllables = 0.15 * np.clip(np.sin(2 * np.pi * 4 * np.arange(T) / 25), 0, None)
    v[:, jaw] = 0.1 + syllables
    v[:, brow] = 0.3
    out = scale_articulation(v.copy(), CH, 1.5)
    np.testing.assert_allclose(out[:, jaw], 0.1 + 1.5 * syllables, atol=1e-6)
    assert abs(articulation_activity(out, CH) / articulation_activity(v, CH) - 1.5) < 1e-3
    np.testing.assert_array_equal(out[:, brow], v[:, brow])
    assert articulation_activity(v[:, 52:], CH[52:]) is None


def test_shift_sides_moves_one_side_more_and_side_asymmetry_measures_it():
    """The mouth's left-side channels' movement above rest grows by the asymmetry and the right
    side's shrinks by as much; a resting smile stays even; the measure reads the shift back."""
    from model_core.inference.amplitude import MOUTH_LEFT, MOUTH_RIGHT, shift_sides, side_asymmetry
    T = 200
    v = np.zeros((T, len(CH)), np.float32)
    syllables = 0.2 * np.clip(np.sin(2 * np.pi * 4 * np.arange(T) / 25), 0, None)
    left, right = [CH.index(n) for n in MOUTH_LEFT], [CH.index(n) for n in MOUTH_RIGHT]
    v[:, left] = v[:, right] = 0.1 + syllables[:, None]  # a resting smile-like level of 0.1
    assert "mouthLeft" not in MOUTH_LEFT and len(left) == len(right) > 4
    assert abs(side_asymmetry(v, CH)) < 1e-6
    out = shift_sides(v.copy(), CH, 0.25)
    np.testing.assert_allclose(out[:, left], np.repeat(0.1 + 1.25 * syllables[:, None], len(left), 1), atol=1e-6)
    np.testing.assert_allclose(out[:, right], np.repeat(0.1 + 0.75 * syllables[:, None], len(right), 1), atol=1e-6)
    assert abs(side_asymmetry(out, CH) - 0.25) < 1e-3
    assert side_asymmetry(shift_sides(v.copy(), CH, -0.2), CH) < -0.19
    assert side_asymmetry(v[:, 52:], CH[52:]) is None


def test_region_strengths_scale_their_region_alone():
    from model_core.base.errors import LaliaError
    from model_core.base.motion import ARKIT_HEAD_LAYOUT
    from model_core.inference.strength import REGIONS, apply_strengths
    rng = np.random.default_rng(0)
    v = rng.uniform(0, 0.4, (100, len(ARKIT_HEAD_LAYOUT))).astype(np.float32)
    v[:, 52:] = rng.normal(0, 0.05, (100, 3))
    out = apply_strengths(v.copy(), ARKIT_HEAD_LAYOUT, {"mouth": 0.5, "brows": 2.0, "head": 0.0})
    col = {n: i for i, n in enumerate(ARKIT_HEAD_LAYOUT)}
    assert np.allclose(out[:, col["jawOpen"]], 0.5 * v[:, col["jawOpen"]])
    assert np.allclose(out[:, col["browInnerUp"]], 2.0 * v[:, col["browInnerUp"]])
    assert np.allclose(out[:, 52:], np.median(v[:, 52:], axis=0))  # a still head at its median pose
    untouched = [col[n] for n in REGIONS["eyes"] + REGIONS["cheeks"]]
    assert np.array_equal(out[:, untouched], v[:, untouched])
    assert sorted(set(sum(REGIONS.values(), ()))) == sorted(ARKIT_HEAD_LAYOUT)  # every channel in one region
    with pytest.raises(LaliaError, match="Unknown region"):
        apply_strengths(v, ARKIT_HEAD_LAYOUT, {"ears": 1.0})
    with pytest.raises(LaliaError, match="between 0 and"):
        apply_strengths(v, ARKIT_HEAD_LAYOUT, {"mouth": -1})
