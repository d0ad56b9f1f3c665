import numpy as np

from model_core.base.head import load_head
from model_core.base.motion import ARKIT_INDEX


def test_head_asset_shapes_and_targets():
    h = load_head()
    assert h.vertices.shape[1] == 3 and 3000 < len(h.vertices) < 8000
    assert h.targets.shape == (52, len(h.vertices), 3)
    moved = np.abs(h.targets).max(axis=(1, 2))
    assert (moved > 1e-4).all(), "every ARKit target moves something"
    assert abs(h.bone_weights.sum(1) - 1).max() < 1e-2


def test_landmarks_are_symmetric_and_ordered():
    h = load_head()
    v, lm = h.vertices, h.landmarks
    for a, b in (("mouthCornerLeft", "mouthCornerRight"), ("upperLidLeft", "upperLidRight"),
                 ("browLeft", "browRight")):
        assert v[lm[a], 0] > 0 > v[lm[b], 0]
        assert abs(v[lm[a], 0] + v[lm[b], 0]) < 0.01
    z = lambda n: v[lm[n], 2]
    assert z("upperLipOuter") > z("upperLipInner") >= z("lowerLipInner") > z("lowerLipOuter") > z("chin")
    assert z("browLeft") > z("upperLidLeft") > z("lowerLidLeft") > z("noseTip") > z("upperLipOuter")


def test_jaw_open_opens_lips_and_mouth_close_seals_them():
    h = load_head()
    lm = h.landmarks
    def gap(**w):
        x = np.zeros(52)
        for k, val in w.items():
            x[ARKIT_INDEX[k]] = val
        v = h.deform(x)
        return 1000 * (v[lm["upperLipInner"], 2] - v[lm["lowerLipInner"], 2])
    assert gap() < 1.0
    assert gap(jawOpen=1.0) > 25.0
    assert abs(gap(jawOpen=0.5, mouthClose=0.5)) < 2.0
    blink = np.zeros(52)
    blink[ARKIT_INDEX["eyeBlinkLeft"]] = 1
    v = h.deform(blink)
    assert v[lm["upperLidLeft"], 2] < h.vertices[lm["upperLidLeft"], 2] - 0.005
