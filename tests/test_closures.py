"""Lips the words close stay closed under any emotion (model_core.inference.closures): the brief closures
found on plain arrays, the blend confined to the articulation channels, and the shipped model
holding the neutral rendition's closures when surprised or disgusted."""
import numpy as np
import pytest

from model_core.base.motion import ARKIT_HEAD_LAYOUT as CH
from model_core.inference.closures import (
    ARTICULATION,
    CLOSED_MM,
    brief_closures,
    closure_weights,
    keep_closures,
    lip_gap,
    voiced_closures,
)

JAW, SMILE = CH.index("jawOpen"), CH.index("mouthSmileLeft")


def test_closure_weights_hold_brief_closures_in_speech_not_rest():
    gap = np.full(120, 6.0)
    gap[:15] = 0.5      # closed for 0.6 s at the start: rest before speaking
    gap[40:44] = 0.5    # a bilabial: 4 frames
    gap[70:100] = 0.5   # a 1.2 s pause: rest
    w = closure_weights(gap)
    np.testing.assert_array_equal(w[40:44], 1.0)
    np.testing.assert_allclose(w[[39, 44]], [1 / 2, 1 / 2])  # one frame of feather each side
    assert w[:39].max() == 0 and w[45:].max() == 0
    # a line trimmed tight that starts (or ends) on its /p b m/: a brief closed run at the edge
    gap[:15] = 6.0
    gap[:3] = 0.5
    gap[117:] = 0.5
    w = closure_weights(gap)
    np.testing.assert_array_equal(w[:3], 1.0)
    np.testing.assert_array_equal(w[117:], 1.0)
    assert brief_closures(np.full(8, 0.5)) == []  # closed throughout: rest, nothing to hold


def test_a_hummed_bilabial_inside_a_long_closure_is_held_a_silent_pause_is_not():
    gap = np.full(120, 6.0)
    gap[20:45] = 0.5             # "mmm" then a pause: one 1 s closed run in the words' mouth
    gap[70:100] = 0.5            # a silent 1.2 s pause
    speech = np.zeros(120, bool)
    speech[:20] = speech[45:70] = speech[100:] = True
    speech[30:38] = True         # the voice hums through part of the first run
    assert voiced_closures(gap, speech) == [(30, 38)]
    assert voiced_closures(gap, np.zeros(120, bool)) == []
    content, emotional = _mouth(120), _mouth(120)
    content[:, JAW] = np.where(gap < 1, 0.0, 0.3)
    emotional[:, JAW] = 0.45     # the emotion drops the jaw in the pause and through the hum
    out = keep_closures(emotional.copy(), content, CH, speech=speech)
    assert lip_gap(out, CH)[30:38].max() < CLOSED_MM
    assert lip_gap(out, CH)[70:100].min() > CLOSED_MM  # the silent pause stays the emotion's
    np.testing.assert_array_equal(out[:27], emotional[:27])


def _mouth(T=100):
    v = np.zeros((T, len(CH)), np.float32)
    v[:, SMILE] = 0.4
    return v


def test_keep_closures_blends_only_articulation_and_only_at_closures():
    content = _mouth()
    content[:, JAW] = 0.3
    content[50:54, JAW] = 0.0                       # the words close the lips here
    emotional = _mouth()
    emotional[:, JAW] = 0.45                        # a surprised jaw that never closes
    emotional[:, SMILE] = 0.1
    out = keep_closures(emotional.copy(), content, CH)
    assert lip_gap(out, CH)[50:54].max() < CLOSED_MM <= lip_gap(emotional, CH)[50:54].min()
    np.testing.assert_array_equal(out[:45], emotional[:45])   # elsewhere the emotion's own
    np.testing.assert_array_equal(out[59:], emotional[59:])
    others = [i for i, n in enumerate(CH) if n not in ARTICULATION]
    np.testing.assert_array_equal(out[:, others], emotional[:, others])  # smile kept throughout
    flame = ("Exp1", "Exp2", "headPitch")
    x = np.zeros((10, 3), np.float32)
    assert keep_closures(x.copy(), x + 1, flame).tolist() == x.tolist()  # no ARKit mouth: untouched


@pytest.mark.parametrize("emotion", ["surprised", "disgusted"])
def test_an_emotion_keeps_the_neutral_renditions_closures(generator, sample_audio, emotion):
    """Where the neutral rendition closes the lips for a bilabial, the surprised (disgusted)
    one seals them too; only the articulation channels differ. Since the emotion-swap stage
    (docs/model.md) the model alone, without the layer, closes them on this clip as well
    (before it, surprised alone left some open)."""
    clip = sample_audio[: 12 * 16000]
    gap = lip_gap(generator.generate(clip, emotion={"neutral": 1.0}).motion.values, CH)
    runs = [(s, t) for s, t in brief_closures(gap) if 0 < s and t < len(gap)]  # inside the speech
    assert len(runs) >= 6

    def narrowest(m):
        gap = lip_gap(m.values, CH)
        return np.array([gap[max(0, s - 1):t + 1].min() for s, t in runs])
    held = generator.generate(clip, emotion={emotion: 1.0}).motion
    alone = generator.generate(clip, emotion={emotion: 1.0}, hold_closures=False).motion
    assert np.mean(narrowest(held) < 1.0) >= 0.9
    assert np.mean(narrowest(alone) < CLOSED_MM) >= 0.9
    differ = np.flatnonzero(np.abs(held.values - alone.values).max(0) > 0)
    assert set(CH[i] for i in differ) <= set(ARTICULATION)
