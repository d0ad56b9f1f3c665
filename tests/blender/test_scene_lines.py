"""Generate all sound strips: three characters, each animated from its own strips, with per-strip
overrides, in real Blender."""
import bpy
import numpy as np
import pytest
import soundfile as sf


@pytest.fixture
def three_lines(tmp_path, sample_audio):
    paths = []
    for i, (a, b) in enumerate(((0, 4), (8, 11), (14, 19))):  # seconds of the real recording
        p = tmp_path / f"line{i}.wav"
        sf.write(p, sample_audio[a * 16000:b * 16000], 16000)
        paths.append(p)
    return paths


def _faces(n):
    faces = []
    for i in range(n):
        bpy.ops.lalia.add_demo_head()
        obj = bpy.context.active_object
        obj.parent.location.x = 0.3 * i
        obj.name = obj.parent.name = f"Char{i}"
        faces.append(obj)
    return faces


def test_every_strip_animates_its_character(scene, addon, three_lines):
    if not addon.rig.has_audio():
        pytest.skip("this Blender has no sound strips (built without Audaspace)")
    faces = _faces(3)
    se = scene.sequence_editor_create()
    strips = addon.rig.sequencer_strips(se)
    starts = (1, 150, 300)
    names = ("ANNA_0", "BOB_1", "CARL_2")  # the third goes by its channel, 3
    made = [strips.new_sound(name=n, filepath=str(p), channel=1 + i, frame_start=f)
            for i, (n, p, f) in enumerate(zip(names, three_lines, starts))]
    made[2]["lalia_emotion"] = "happy=1.0"
    made[2]["lalia_transcript"] = "a line with its text"
    s = scene.lalia
    for match, face in (("ANNA_", faces[0]), ("BOB_", faces[1]), ("3", faces[2])):
        row = s.strip_targets.add()
        row.match, row.target = match, face
    assert bpy.ops.lalia.generate_strips() == {"FINISHED"}
    assert s.status == "3 of 3 strips generated"
    tracks = {f.name: [t.name for t in f.data.shape_keys.animation_data.nla_tracks] for f in faces}
    assert tracks == {"Char0": ["Lalia: ANNA_0"], "Char1": ["Lalia: BOB_1"], "Char2": ["Lalia: CARL_2"]}
    strip2 = faces[2].data.shape_keys.animation_data.nla_tracks[0].strips[0]
    assert strip2.frame_start == 300 and strip2.extrapolation == "NOTHING"
    assert strip2.action["lalia_transcript"] == "a line with its text"

    def curve(face, frames, name):
        kb = face.data.shape_keys.key_blocks
        out = []
        for f in frames:
            scene.frame_set(f)
            out.append(kb[name].value)
        return np.array(out)
    for face, start in zip(faces, starts):  # each speaks during its own line
        assert np.ptp(curve(face, range(start, start + 90), "jawOpen")) > 0.1, face.name
    # the happy override on CARL_2's strip: Char2 smiles more than Char0 did in its line
    assert curve(faces[2], range(320, 400), "mouthSmileLeft").mean() > \
        curve(faces[0], range(20, 100), "mouthSmileLeft").mean() + 0.1


def test_no_strips_is_a_clear_error(scene, addon):
    _faces(1)
    with pytest.raises(RuntimeError, match="no sound strips"):
        bpy.ops.lalia.generate_strips()
