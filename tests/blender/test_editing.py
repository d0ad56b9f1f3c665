"""Editing after generation, in real Blender: regenerate a range, a correction layer that
survives regeneration, protected channels, reduced keys and per-region strength, and undo."""
import bpy
import numpy as np
import pytest


def _head(scene, speech_wav):
    bpy.ops.lalia.add_demo_head()
    obj = bpy.context.active_object
    scene.lalia.audio_path = str(speech_wav)
    return obj


def _sample(scene, obj, names, frames) -> np.ndarray:
    """What plays (NLA and all), evaluated frame by frame."""
    kb = obj.data.shape_keys.key_blocks
    out = []
    for f in frames:
        scene.frame_set(f)
        out.append([kb[n].value for n in names])
    return np.array(out)


FACE = ("jawOpen", "mouthClose", "mouthSmileLeft", "browInnerUp", "eyeBlinkLeft", "cheekSquintLeft")


def test_regenerate_range_changes_only_the_range_and_joins_smoothly(scene, speech_wav):
    obj = _head(scene, speech_wav)
    bpy.ops.lalia.generate()
    frames = range(1, 241)
    before = _sample(scene, obj, FACE, frames)
    s = scene.lalia
    s.seed = 9  # a new take of the same line: the joins should not show
    assert bpy.ops.lalia.regenerate_range(frame_start=80, frame_end=150) == {"FINISHED"}
    after = _sample(scene, obj, FACE, frames)
    outside = np.array([f < 80 or f > 150 for f in frames])
    assert np.array_equal(after[outside], before[outside])  # bit for bit
    inside = ~outside
    assert np.abs(after[inside] - before[inside]).mean() > 0.003
    speed = np.abs(np.diff(after[:, :4], axis=0)).sum(1)  # mouth and brows: blinks are fast anywhere
    joins = np.r_[speed[77:92], speed[138:151]]
    assert joins.mean() < 1.5 * speed[92:138].mean()
    # an emotion for the range alone
    s.surprised = 1.0
    bpy.ops.lalia.regenerate_range(frame_start=160, frame_end=220)
    surprised = _sample(scene, obj, FACE, frames)
    assert np.array_equal(surprised[:159], after[:159])
    brows = FACE.index("browInnerUp")
    assert surprised[175:205, brows].mean() > after[175:205, brows].mean() + 0.1
    assert len(obj.data.shape_keys.animation_data.nla_tracks) == 1  # the same Lalia layer, edited


def test_correction_layer_survives_regeneration_and_protected_channels_stay(scene, speech_wav):
    obj = _head(scene, speech_wav)
    bpy.ops.lalia.generate()
    assert bpy.ops.lalia.add_correction_layer() == {"FINISHED"}
    key = obj.data.shape_keys
    track = next(t for t in key.animation_data.nla_tracks if t.name == "Lalia corrections")
    corrections = track.strips[0].action
    assert track.strips[0].blend_type == "ADD"
    # the animator's correction: +0.3 jawOpen at frame 40 (keyed into the correction action)
    from bl_ext.user_default.lalia import layers
    layers.correction_fcurve(key, 'key_blocks["jawOpen"].value').keyframe_points.insert(40, 0.3)
    assert layers.curves_of(corrections)
    lalia_only = _sample(scene, obj, ["jawOpen"], [40])[0, 0]
    track.mute = True
    generated = _sample(scene, obj, ["jawOpen", "browInnerUp"], [40, 60])
    track.mute = False
    assert abs(lalia_only - min(1.0, generated[0, 0] + 0.3)) < 1e-4
    # regenerate the whole line with another seed and emotion; brows protected
    s = scene.lalia
    s.seed, s.happy, s.protect = 4, 1.0, {"brows"}
    bpy.ops.lalia.generate()
    tracks = [t.name for t in key.animation_data.nla_tracks]
    assert tracks[-1] == "Lalia corrections" and len(tracks) == 3
    track = key.animation_data.nla_tracks[-1]
    track.mute = True
    regenerated = _sample(scene, obj, ["jawOpen", "browInnerUp"], [40, 60])
    track.mute = False
    assert np.array_equal(regenerated[:, 1], generated[:, 1])  # protected brows untouched
    with_corr = _sample(scene, obj, ["jawOpen"], [40])[0, 0]
    assert abs(with_corr - min(1.0, regenerated[0, 0] + 0.3)) < 1e-4  # the correction still applies


def test_reduced_keys_stay_within_tolerance(scene, speech_wav, addon):
    obj = _head(scene, speech_wav)
    s = scene.lalia
    s.reduce_keys, s.key_tolerance = True, 0.01
    bpy.ops.lalia.generate()
    keys = addon.engine.last_generation["keys"]
    assert keys["written"] < 0.3 * keys["dense"]
    action = obj.data.shape_keys.animation_data.nla_tracks[-1].strips[0].action
    motion = addon.layers.recall(action)[0].resample(30.0)
    worst = 0.0
    for fc in addon.layers.curves_of(action):
        name = fc.data_path.split('"')[1]
        dense = motion.channel(name)
        got = np.array([fc.evaluate(1 + i) for i in range(len(dense))])
        worst = max(worst, float(np.abs(got - dense).max()))
    assert worst <= 0.01 + 1e-4


@pytest.mark.parametrize("region,name", [("mouth", "jawOpen"), ("brows", "browInnerUp")])
def test_strength_scales_a_region_without_regenerating(scene, speech_wav, region, name):
    obj = _head(scene, speech_wav)
    bpy.ops.lalia.generate()
    frames = range(1, 120, 7)
    before = _sample(scene, obj, [name, "eyeBlinkLeft"], frames)
    setattr(scene.lalia, f"strength_{region}", 0.5)
    assert bpy.ops.lalia.apply_strength() == {"FINISHED"}
    after = _sample(scene, obj, [name, "eyeBlinkLeft"], frames)
    assert np.allclose(after[:, 0], 0.5 * before[:, 0], atol=1e-4)
    assert np.array_equal(after[:, 1], before[:, 1])  # other regions untouched
    setattr(scene.lalia, f"strength_{region}", 1.0)
    bpy.ops.lalia.apply_strength()
    assert np.allclose(_sample(scene, obj, [name], frames)[:, 0], before[:, 0], atol=1e-6)
