"""Sparse keys (model_core.base.keys): within the tolerance at every frame, far fewer keys."""
import numpy as np
import pytest

from model_core.base.keys import reduce_keys


@pytest.mark.parametrize("tolerance", [0.001, 0.01, 0.05])
def test_sparse_keys_stay_within_tolerance(tolerance):
    """A jaw-like curve at 30 fps: openings (two a second) of varying height."""
    rng = np.random.default_rng(0)
    t = np.arange(1800) / 30
    y = 0.5 * np.sin(np.pi * 2 * t) ** 2 * np.interp(t, np.arange(0, 61, 0.5), rng.uniform(0.2, 1, 122))
    keys = reduce_keys(y, tolerance)
    assert keys.frames[0] == 0 and keys.frames[-1] == len(y) - 1
    err = np.abs(keys.evaluate(len(y)) - y).max()
    assert err <= tolerance + 1e-9
    assert len(keys.frames) < len(y) * {0.001: 0.5, 0.01: 0.25, 0.05: 0.2}[tolerance]


def test_flat_and_linear_curves_take_two_keys():
    for y in (np.zeros(300), np.linspace(0, 1, 300)):
        assert len(reduce_keys(y, 0.01).frames) == 2


def test_handles_are_a_third_of_the_way_along_the_slope():
    y = np.array([0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    keys = reduce_keys(y, 1e-6)  # every frame must be kept exactly
    assert np.abs(keys.evaluate(len(y)) - y).max() < 1e-9
    gaps = np.diff(keys.frames)
    assert np.allclose(keys.right[:-1, 0], gaps / 3) and np.allclose(keys.left[1:, 0], -gaps / 3)
    slope = keys.right[:, 1] / keys.right[:, 0]
    assert np.allclose(slope, keys.left[:, 1] / keys.left[:, 0])  # aligned: one slope through each key


def test_the_committed_editing_report_keeps_its_promises():
    """docs/editing.json (`make edit-report`, real Blender): a 60 s line with Reduce keys at the
    default tolerances needs far fewer keys, and the F-curves Blender evaluates stay within them."""
    import json
    from pathlib import Path
    r = json.loads((Path(__file__).resolve().parents[1] / "docs" / "editing.json").read_text())["sixty_seconds"]
    assert r["seconds"] == 60 and r["keys_dense"] == 30 * 60 * 56  # 52 shape keys + 4 quaternion curves
    assert abs(r["share"] - r["keys_written"] / r["keys_dense"]) < 1e-4
    assert r["share"] < 0.2
    assert r["max_shape_key_error"] <= r["tolerance"] + 1e-4
    assert r["max_head_error_deg"] <= r["head_tolerance_deg"]
