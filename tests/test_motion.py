import numpy as np
import pytest

from model_core.base.errors import LaliaError
from model_core.base.motion import ARKIT_HEAD_LAYOUT, ARKIT_NAMES, Motion, canonical_arkit_name, read_live_link_csv


def test_arkit_layout_is_apples_52():
    assert len(ARKIT_NAMES) == 52 and len(set(ARKIT_NAMES)) == 52
    assert ARKIT_HEAD_LAYOUT[-3:] == ("headPitch", "headYaw", "headRoll")


@pytest.mark.parametrize("spelling,expected", [
    ("jawOpen", "jawOpen"), ("JawOpen", "jawOpen"), ("eyeBlink_L", "eyeBlinkLeft"),
    ("EyeBlinkRight", "eyeBlinkRight"), ("mouthSmile_R", "mouthSmileRight"),
    ("blendShape1.jawOpen", "jawOpen"), ("ARKit_cheekPuff", "cheekPuff"),
    ("browInnerUp", "browInnerUp"), ("Basis", None), ("Exp1", None), ("mouth_smile_L", "mouthSmileLeft")])
def test_canonical_names(spelling, expected):
    assert canonical_arkit_name(spelling) == expected


def _motion(T=50, fps=25.0):
    rng = np.random.default_rng(0)
    return Motion(fps, ARKIT_HEAD_LAYOUT, rng.uniform(0, 1, (T, 55)).astype(np.float32))


@pytest.mark.parametrize("fmt", ["npz", "json"])
def test_roundtrip(tmp_path, fmt):
    m = _motion()
    back = Motion.load(m.save(tmp_path / f"m.{fmt}"))
    assert back.channels == m.channels and back.fps == m.fps
    np.testing.assert_allclose(back.values, m.values, atol=1e-4)


def test_live_link_csv_roundtrip(tmp_path):
    m = _motion(T=60, fps=30.0)
    p = m.save(tmp_path / "take.csv")
    header = p.read_text().splitlines()[0].split(",")
    assert header[:3] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft"] and "HeadYaw" in header
    back = read_live_link_csv(p)
    assert back.fps == 30.0 and back.num_frames == 60
    np.testing.assert_allclose(back.values, m.values, atol=1e-4)


def test_resample_keeps_duration():
    m = _motion(T=100, fps=25.0)
    r = m.resample(30.0)
    assert r.num_frames == 120 and abs(r.duration - m.duration) < 1e-6
    np.testing.assert_allclose(r.values[0], m.values[0])


def test_bad_motion_inputs(tmp_path):
    with pytest.raises(LaliaError):
        Motion(25, ("a", "b"), np.zeros((3, 3)))
    with pytest.raises(LaliaError):
        Motion.load(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(LaliaError):
        Motion.load(tmp_path / "bad.npz")
