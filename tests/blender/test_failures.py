"""A Blender operation that fails late changes nothing: the rig's actions, active actions, NLA
track mutes and the frame range are as before, and the error is one or two lines."""
import bpy
import numpy as np


def _rig_state(obj):
    out = []
    for id_data in (obj.data.shape_keys, obj.parent):
        ad = id_data.animation_data
        tracks = None if ad is None else [(t.name, t.mute, [s.action.name for s in t.strips]) for t in ad.nla_tracks]
        out.append(None if ad is None else (ad.action.name if ad.action else None, tracks))
    return out


def test_a_failing_sound_strip_restores_everything(scene, speech_wav, addon):
    """All 128 sequencer channels taken: adding the sound strip fails after the keys are written."""
    if not addon.rig.has_audio():
        return  # no sound strips in this Blender (PyPI bpy 4.2): nothing to fill
    bpy.ops.lalia.add_demo_head()
    obj = bpy.context.active_object
    s = scene.lalia
    s.audio_path = str(speech_wav)
    bpy.ops.lalia.generate()  # an earlier generation, on its own track
    key = obj.data.shape_keys
    key.key_blocks["browInnerUp"].value = 0.4
    key.key_blocks["browInnerUp"].keyframe_insert("value", frame=3)  # the user's own active action
    user_values = np.array([fc.keyframe_points[0].co[1] for fc in addon.layers.curves_of(key.animation_data.action)])
    strips = addon.rig.sequencer_strips(scene.sequence_editor)
    for st in list(strips):  # the earlier generation's sound strip would be reused, not added
        strips.remove(st)
    for ch in range(1, 129):
        try:  # Blender 4.x: frame_end; 5.x: length
            strips.new_effect(name=f"fill{ch}", type="COLOR", channel=ch, frame_start=1, frame_end=2)
        except TypeError:
            strips.new_effect(name=f"fill{ch}", type="COLOR", channel=ch, frame_start=1, length=1)
    scene.frame_end = 17
    before = _rig_state(obj)
    actions = set(bpy.data.actions.keys())
    for placement in ("NLA", "ASSIGN"):
        s.placement, s.seed = placement, 5
        try:
            result = bpy.ops.lalia.generate()
        except RuntimeError as e:
            result, message = {"CANCELLED"}, str(e)
        assert result == {"CANCELLED"}
        assert len([x for x in message.splitlines() if x.strip()]) <= 3  # "Error: " + one or two lines
        assert _rig_state(obj) == before, placement
        assert set(bpy.data.actions.keys()) == actions and scene.frame_end == 17
    now = np.array([fc.keyframe_points[0].co[1] for fc in addon.layers.curves_of(key.animation_data.action)])
    assert np.array_equal(now, user_values)


def test_export_into_an_impossible_place_is_one_line_and_keeps_the_earlier_file(scene, speech_wav, tmp_path):
    bpy.ops.lalia.add_demo_head()
    scene.lalia.audio_path = str(speech_wav)
    bpy.ops.lalia.generate()
    good = tmp_path / "face.fbx"
    assert bpy.ops.lalia.export_fbx(filepath=str(good), preset="UNITY") == {"FINISHED"}
    data = good.read_bytes()
    assert len(data) > 100_000 and not list(tmp_path.glob(".*part*"))
    for bad in ("/proc/lalia.fbx", str(good) + "/inside.fbx"):
        try:
            bpy.ops.lalia.export_fbx(filepath=bad, preset="UNITY")
            raise AssertionError(f"exported to {bad}")
        except RuntimeError as e:
            assert "Traceback" not in str(e) and len(str(e).strip().splitlines()) <= 3, str(e)
    assert good.read_bytes() == data
