"""Motion -> keyframes on a rig: shape keys (ARKit or FLAME) and bones. The add-on's real work.

Covers Blender 4.2-4.3 (actions with fcurves) and 4.4+/5.x (layered actions: slots and
channelbags). Nothing here overwrites what the user made: every generation is a new action,
placed on a new NLA track (or assigned after pushing the current action down to the NLA).
"""
from __future__ import annotations

import math

import bpy
import numpy as np

from .flame_rig import flame_axis_angle_to_armature
from .model_core.base.errors import LaliaError
from .model_core.base.motion import (
    ARKIT_NAMES,
    EYE_ROTATION_NAMES,
    HEAD_ROTATION_NAMES,
    JAW_ROTATION_NAMES,
    Motion,
    canonical_arkit_name,
    head_rotation_matrices,
)
from .model_core.retarget.flame import FLAME_TO_BLENDER

HEAD_BONE_GUESSES = ("head", "Head", "DEF-head", "mixamorig:Head", "ORG-head", "head.x", "Head_M",
                     "neck", "Neck")


def find_arkit_shape_keys(obj) -> dict[str, str]:
    """ARKit name -> the object's shape-key name, for every spelling we recognise."""
    if obj is None or obj.type != "MESH" or obj.data.shape_keys is None:
        return {}
    found = {}
    for kb in obj.data.shape_keys.key_blocks[1:]:
        arkit = canonical_arkit_name(kb.name)
        if arkit and arkit not in found:
            found[arkit] = kb.name
    return found


def find_armature(obj):
    """The armature deforming `obj` (modifier or parent), or obj itself if it is one."""
    if obj is None:
        return None
    if obj.type == "ARMATURE":
        return obj
    for mod in getattr(obj, "modifiers", []):
        if mod.type == "ARMATURE" and mod.object is not None:
            return mod.object
    return obj.parent if obj.parent is not None and obj.parent.type == "ARMATURE" else None


def guess_head_bone(armature) -> str:
    if armature is None:
        return ""
    names = [b.name for b in armature.data.bones]
    for g in HEAD_BONE_GUESSES:
        if g in names:
            return g
    for n in names:
        if "head" in n.lower():
            return n
    return ""


def _fcurve_container(action, id_data):
    """(slot or None, fcurves collection) for a fresh action that will animate id_data."""
    if hasattr(action, "slots"):  # Blender 4.4+: layered actions (layer -> keyframe strip)
        slot = action.slots.new(id_type=id_data.id_type, name=id_data.name)
        layer = action.layers[0] if action.layers else action.layers.new("Layer")
        strip = layer.strips[0] if layer.strips else layer.strips.new(type="KEYFRAME")
        return slot, strip.channelbag(slot, ensure=True).fcurves
    return None, action.fcurves


def write_keys(fc, frames: np.ndarray, values: np.ndarray, tolerance: float | None = None) -> None:
    """Replace an F-curve's keys: dense (a LINEAR key per frame: what the model generated, no
    overshoot), or with a `tolerance` the fewest Bézier keys within it (`base/keys.py`)."""
    from .model_core.base.keys import reduce_keys
    while len(fc.keyframe_points):
        fc.keyframe_points.remove(fc.keyframe_points[0], fast=True)
    pairs = lambda x, y: np.stack([np.asarray(x, np.float64), np.asarray(y, np.float64)], 1).ravel()
    if tolerance is None:
        fc.keyframe_points.add(len(frames))
        fc.keyframe_points.foreach_set("co", pairs(frames, values))
        fc.keyframe_points.foreach_set("interpolation", np.full(len(frames), 1, np.int32))  # LINEAR
    else:
        keys = reduce_keys(values, tolerance)
        n = len(keys.frames)
        kf = np.asarray(frames, np.float64)[keys.frames]
        fc.keyframe_points.add(n)
        fc.keyframe_points.foreach_set("co", pairs(kf, keys.values))
        fc.keyframe_points.foreach_set("interpolation", np.full(n, 2, np.int32))  # BEZIER (CONSTANT 0, LINEAR 1)
        fc.keyframe_points.foreach_set("handle_left_type", np.zeros(n, np.int32))  # FREE: as computed
        fc.keyframe_points.foreach_set("handle_right_type", np.zeros(n, np.int32))
        fc.keyframe_points.foreach_set("handle_left", pairs(kf + keys.left[:, 0], keys.values + keys.left[:, 1]))
        fc.keyframe_points.foreach_set("handle_right", pairs(kf + keys.right[:, 0], keys.values + keys.right[:, 1]))
    fc.update()


def tolerance_for(data_path: str, tolerances: dict | None) -> float | None:
    """A curve's key tolerance from {"shape": weight units, "rotation": per rotation component}."""
    if tolerances is None:
        return None
    return tolerances["rotation" if "rotation" in data_path else "shape"]


def _write_curves(fcurves, data_path_values: list[tuple[str, int, np.ndarray]], frames: np.ndarray,
                  tolerances: dict | None = None) -> dict:
    """One new F-curve per (data path, index, values). Returns the key counts, dense and written."""
    counts = {"dense": 0, "written": 0}
    for data_path, index, values in data_path_values:
        fc = fcurves.new(data_path, index=index)
        write_keys(fc, frames, values, tolerance_for(data_path, tolerances))
        counts["dense"] += len(frames)
        counts["written"] += len(fc.keyframe_points)
    return counts


def _snapshot(id_data) -> dict:
    """What placing a generation changes on id_data's animation: its active action and slot, and
    its NLA tracks' mute states (so a later failure can put them back)."""
    ad = id_data.animation_data
    if ad is None:
        return {"id": id_data, "had_animation_data": False}
    return {"id": id_data, "had_animation_data": True, "action": ad.action,
            "slot": getattr(ad, "action_slot", None), "mutes": {t.name: t.mute for t in ad.nla_tracks},
            "tracks": {t.name for t in ad.nla_tracks}}


def _place(id_data, action, slot, placement: str, track_name: str, frame_start: int):
    """NLA: a new track on top (earlier Lalia tracks muted, so the newest plays); LINE: a new
    track that plays only over its own frames (one of many lines on a rig, all playing);
    ASSIGN: the active action (the current one pushed down to a muted track first)."""
    ad = id_data.animation_data or id_data.animation_data_create()
    if placement == "ASSIGN":
        if ad.action is not None:  # keep the user's action: push it down to the NLA first
            old = ad.action
            tr = ad.nla_tracks.new()
            tr.name = f"Kept: {old.name}"
            strip = tr.strips.new(old.name, int(old.frame_range[0]), old)
            if hasattr(strip, "action_slot") and getattr(ad, "action_slot", None) is not None:
                strip.action_slot = ad.action_slot
            tr.mute = True
        ad.action = action
        if slot is not None:
            ad.action_slot = slot
        return
    if placement == "NLA":
        for tr in ad.nla_tracks:  # earlier generations stay, muted, so the newest one plays
            if tr.name.startswith("Lalia:"):
                tr.mute = True
    tr = ad.nla_tracks.new()
    tr.name = track_name
    strip = tr.strips.new(action.name, frame_start, action)
    if slot is not None and hasattr(strip, "action_slot"):
        strip.action_slot = slot
    if placement == "LINE":
        strip.extrapolation = "NOTHING"  # outside its frames the rig's other lines (or rest) play


def local_quaternions(R_armature: np.ndarray, bone) -> np.ndarray:
    """Armature-space rotations about a bone's head (T x 3 x 3) -> the bone's local rotation
    as quaternions (T x 4, w first): B^-1 R B with B the bone's rest orientation."""
    from mathutils import Matrix
    B = np.array(bone.matrix_local.to_3x3())
    local = np.einsum("ij,tjk,kl->til", B.T, R_armature, B)
    return np.array([tuple(Matrix(m.tolist()).to_quaternion()) for m in local], np.float32)


def head_rotations_local(pitch_yaw_roll: np.ndarray, bone) -> np.ndarray:
    """headPitch/Yaw/Roll (radians, armature axes) -> the bone's local quaternions (T x 4)."""
    return local_quaternions(head_rotation_matrices(pitch_yaw_roll), bone)


def _bone_rotations(m: Motion, armature, head_bone: str) -> dict[str, np.ndarray]:
    """Armature-space rotations (T x 3 x 3) per bone from the motion's rotation channels:
    head rotation -> the head bone; FLAME jaw axis-angle -> 'jaw'; eye rotations -> the eyes."""
    out = {}
    bones = armature.pose.bones
    if head_bone and all(c in m.channels for c in HEAD_ROTATION_NAMES):
        out[head_bone] = head_rotation_matrices(m.select(HEAD_ROTATION_NAMES).values)
    if "jaw" in bones and all(c in m.channels for c in JAW_ROTATION_NAMES):
        out["jaw"] = flame_axis_angle_to_armature(m.select(JAW_ROTATION_NAMES).values)
    if all(c in m.channels for c in EYE_ROTATION_NAMES):
        eyes = m.select(EYE_ROTATION_NAMES).values
        for i, bone in enumerate(("left_eye", "right_eye")):
            if bone in bones:
                pyr = np.stack([eyes[:, 2 * i], eyes[:, 2 * i + 1], np.zeros(len(eyes))], 1)
                out[bone] = head_rotation_matrices(pyr)
    return out


def _pose_correctives(rotations: dict, key_names: set, T: int) -> list[tuple[str, np.ndarray]]:
    """FLAME's pose-corrective weights: (R - I) of the neck, jaw and eye joints' rotations, in
    FLAME's axes, flattened (4 x 9 = 36 values) -> Pose1..Pose36. Joints not animated are at rest."""
    if "Pose1" not in key_names:
        return []
    M = FLAME_TO_BLENDER
    rest = np.broadcast_to(np.eye(3), (T, 3, 3))
    feats = [(np.einsum("ji,tjk,kl->til", M, rotations.get(j, rest), M) - np.eye(3)).reshape(T, 9)
             for j in ("neck", "jaw", "left_eye", "right_eye")]
    f = np.concatenate(feats, 1)
    return [(f"Pose{i + 1}", f[:, i]) for i in range(36) if f"Pose{i + 1}" in key_names]


def shape_key_channels(mesh_obj, m: Motion) -> list[tuple[str, str]]:
    """(shape key name, motion channel) pairs: ARKit channels by any spelling of the key, FLAME
    Exp channels by exact name."""
    found = find_arkit_shape_keys(mesh_obj)
    pairs = [(found[a], a) for a in ARKIT_NAMES if a in found and a in m.channels]
    if mesh_obj.data.shape_keys is not None:
        names = set(mesh_obj.data.shape_keys.key_blocks.keys())
        pairs += [(c, c) for c in m.channels if c.startswith("Exp") and c in names]
    return pairs


def motion_curves(mesh_obj, m: Motion, armature=None, head_bone: str = "") -> tuple[list, list]:
    """The F-curves a motion makes on a rig, as (data path, index, values per frame) lists: the
    mesh's shape keys (ARKit or FLAME Exp, plus FLAME pose correctives), and the armature's
    bones (head, and for FLAME rigs jaw and eyes)."""
    channels = shape_key_channels(mesh_obj, m)
    if not channels:
        raise LaliaError(f"'{mesh_obj.name}' has no shape keys this motion can drive "
                         "(ARKit names such as jawOpen, or FLAME Exp1..)")
    rotations = _bone_rotations(m, armature, head_bone) if armature is not None else {}
    key = mesh_obj.data.shape_keys
    values = [(k, m.channel(c)) for k, c in channels]
    values += _pose_correctives(rotations, set(key.key_blocks.keys()), m.num_frames)
    shape = [(f'key_blocks["{k}"].value', 0, v) for k, v in values]
    bone = []
    for bone_name, R in rotations.items():
        pb = armature.pose.bones[bone_name]
        rot = local_quaternions(R, pb.bone)
        base = f'pose.bones["{bone_name}"]'
        if pb.rotation_mode == "QUATERNION":
            bone += [(base + ".rotation_quaternion", i, rot[:, i]) for i in range(4)]
        else:
            from mathutils import Quaternion
            eul = np.array([tuple(Quaternion(q).to_euler(pb.rotation_mode)) for q in rot], np.float32)
            bone += [(base + ".rotation_euler", i, eul[:, i]) for i in range(3)]
    return shape, bone


def apply_motion(scene, mesh_obj, motion: Motion, *, name: str, armature=None, head_bone: str = "",
                 placement: str = "NLA", frame_start: int | None = None, tolerances: dict | None = None) -> dict:
    """Key `motion` onto the mesh's shape keys and the armature's bones (`motion_curves`), as new
    actions placed on the NLA or assigned (`placement`). Returns what was made, with the key
    counts. The motion is resampled to the scene's frame rate first; `tolerances` reduce keys."""
    if armature is not None and head_bone and head_bone not in armature.pose.bones:
        raise LaliaError(f"Armature '{armature.name}' has no bone '{head_bone}'")  # before any change
    fps = scene.render.fps / scene.render.fps_base
    m = motion.resample(fps)
    shape, bone = motion_curves(mesh_obj, m, armature, head_bone)
    frame_start = scene.frame_start if frame_start is None else frame_start
    frames = frame_start + np.arange(m.num_frames, dtype=np.float32)
    made = {"shape_action": None, "bone_action": None, "frames": (frame_start, frame_start + m.num_frames - 1),
            "keys": {"dense": 0, "written": 0}, "scene": scene, "frame_end": scene.frame_end,
            "before": [_snapshot(d) for d in (mesh_obj.data.shape_keys, armature) if d is not None]}
    key = mesh_obj.data.shape_keys
    for data_path, _, v in shape:  # values outside a key's slider range would be clamped: widen it
        kb = key.path_resolve(data_path.rsplit(".", 1)[0])
        kb.slider_min = max(-10.0, min(kb.slider_min, float(v.min()), 0.0))
        kb.slider_max = min(10.0, max(kb.slider_max, float(v.max()), 1.0))
    for id_data, curves, suffix in ((key, shape, "face"), (armature, bone, "head")):
        if not curves:
            continue
        action = bpy.data.actions.new(f"{name} [{suffix}]")
        slot, fcurves = _fcurve_container(action, id_data)
        for k, n in _write_curves(fcurves, curves, frames, tolerances).items():
            made["keys"][k] += n
        _place(id_data, action, slot, placement, f"Lalia: {name}", frame_start)
        made["shape_action" if suffix == "face" else "bone_action"] = action.name
    return made


def sequencer_strips(se, all_strips: bool = False):
    """The sequencer's strips: `strips` in Blender 4.4+/5.x, `sequences` before."""
    if all_strips:
        return se.strips_all if hasattr(se, "strips_all") else se.sequences_all
    return se.strips if hasattr(se, "strips") else se.sequences


def remove_generation(made: dict) -> None:
    """Undo what apply_motion made when a later step fails: its actions and tracks go, and the
    rig's active actions, track mutes, pushed-down tracks and the scene's frame range are as before."""
    made_actions = [bpy.data.actions.get(made.get(k) or "") for k in ("shape_action", "bone_action")]
    for snap in made.get("before", []):
        id_data = snap["id"]
        ad = id_data.animation_data
        if ad is None:
            continue
        for tr in list(ad.nla_tracks):
            if tr.name not in snap.get("tracks", ()) or any(st.action in made_actions for st in tr.strips):
                ad.nla_tracks.remove(tr)  # the generation's track, or the user's action pushed down
        if not snap["had_animation_data"]:
            id_data.animation_data_clear()
            continue
        for tr in ad.nla_tracks:
            tr.mute = snap["mutes"].get(tr.name, tr.mute)
        ad.action = snap["action"]
        if snap["slot"] is not None and hasattr(ad, "action_slot"):
            ad.action_slot = snap["slot"]
    for act in made_actions:
        if act is not None:
            bpy.data.actions.remove(act)
    if "scene" in made:
        made["scene"].frame_end = made["frame_end"]


def strip_start(strip) -> float:
    """The frame the strip's content starts at: `content_start` where it exists (5.3 deprecates
    `frame_start`, to go in 6.0), `frame_start` in 4.2-4.5."""
    return strip.content_start if hasattr(strip, "content_start") else strip.frame_start


def strip_end(strip) -> float:
    """The frame after the strip's last shown frame: `right_handle` where it exists (5.3 deprecates
    `frame_final_end`), `frame_final_end` before."""
    return strip.right_handle if hasattr(strip, "right_handle") else strip.frame_final_end


def has_audio() -> bool:
    """Whether this Blender can hold sound strips (PyPI's bpy 4.2 is built without Audaspace)."""
    return bool(getattr(bpy.app.build_options, "audaspace", True))


def audio_frames(scene, audio_path: str, motion) -> int:
    """The audio's length in scene frames, rounded as Blender sizes a sound strip; from the file
    when libsndfile reads it, else from the generated motion (which spans the audio)."""
    try:
        import soundfile as sf
        seconds = sf.info(audio_path).duration
    except Exception:  # mp3 and other ffmpeg-decoded formats
        seconds = motion.num_frames / motion.fps
    return max(1, round(seconds * scene.render.fps / scene.render.fps_base))


def extend_frame_range(scene, end: float) -> None:
    """Let the scene play at least to `end` (the frame after the audio), as a sound strip would."""
    if scene.frame_end < end:
        scene.frame_end = int(math.ceil(end))


def add_sound_strip(scene, audio_path: str, frame_start: int, name: str):
    """The audio as a sound strip starting at frame_start, so playback is in sync."""
    se = scene.sequence_editor or scene.sequence_editor_create()
    strips = sequencer_strips(se)
    for s in strips:  # regenerating from the same audio: the strip is already there
        if s.type == "SOUND" and bpy.path.abspath(s.sound.filepath) == audio_path and \
                int(strip_start(s)) == frame_start:
            return s
    used = {s.channel for s in strips}
    channel = next((c for c in range(1, 129) if c not in used), None)
    if channel is None:
        raise LaliaError("Every sequencer channel is taken, so the sound strip can't be added: free a channel, "
                         "or turn off Add sound strip")
    strip = strips.new_sound(name=name[:60], filepath=audio_path, channel=channel, frame_start=frame_start)
    extend_frame_range(scene, strip_end(strip))
    return strip
