"""Blinks and eyebrow flashes added after sampling (model_core.inference.gestures), on plain arrays and
the bundled speech."""
import numpy as np

from model_core.base.motion import ARKIT_HEAD_LAYOUT as CH
from model_core.base.signals import LOUD, frame_energy, loud_onsets
from model_core.inference.gestures import BROW_RAISE, BROW_RAISE_SHARE, add_blinks, add_brow_raises


def test_loud_onsets_are_where_loudness_rises_through_the_threshold():
    e = np.full(100, 0.3)
    e[20:23] = 1.0
    e[25:30] = 1.0   # rises again 5 frames later: too close to count again
    e[60:70] = 0.95
    e[80:90] = 0.8   # never loud
    e[40] = 3.0      # one loud frame: its 3-frame mean is loud from frame 38
    assert loud_onsets(e).tolist() == [20, 38, 60]
    assert e[38:41].mean() > LOUD >= e[37:40].mean()


def test_brow_raises_follow_the_slider_and_touch_only_the_brows(sample_audio):
    T = int(len(sample_audio) / 16000 * 25)
    base = np.zeros((T, len(CH)), np.float32)
    base[:, CH.index("jawOpen")] = 0.2
    runs = {a: add_brow_raises(base.copy(), CH, sample_audio, 25.0, 0, a) for a in (0.0, 1.0, 2.0)}
    np.testing.assert_array_equal(runs[0.0], base)
    brows = [CH.index(n) for n in BROW_RAISE]
    rest = np.setdiff1d(np.arange(len(CH)), brows)
    np.testing.assert_array_equal(runs[1.0][:, rest], base[:, rest])
    np.testing.assert_allclose(runs[2.0][:, brows], 2 * runs[1.0][:, brows], atol=1e-6)  # no clipping here
    raised = runs[1.0][:, CH.index("browInnerUp")]
    starts = np.flatnonzero((raised[1:] > 0.05) & (raised[:-1] <= 0.05))
    n_loud = len(loud_onsets(frame_energy(sample_audio, T)))
    assert 1 <= len(starts) <= n_loud and 0.1 < raised.max() <= 0.35 * 0.5 + 1e-6
    assert len(starts) < 3 * BROW_RAISE_SHARE * n_loud + 2
    again = add_brow_raises(base.copy(), CH, sample_audio, 25.0, 0, 1.0)
    np.testing.assert_array_equal(again, runs[1.0])  # seeded


def test_blinks_close_the_lids_and_nothing_else(sample_audio):
    T = int(len(sample_audio) / 16000 * 25)
    base = np.zeros((T, len(CH)), np.float32)
    out = add_blinks(base.copy(), CH, sample_audio, 25.0, 0, 1.0)
    lids = [CH.index("eyeBlinkLeft"), CH.index("eyeBlinkRight")]
    assert out[:, lids].max() > 0.9
    rest = np.setdiff1d(np.arange(len(CH)), lids)
    np.testing.assert_array_equal(out[:, rest], base[:, rest])
    np.testing.assert_array_equal(add_blinks(base.copy(), CH, sample_audio, 25.0, 0, 0.0), base)
