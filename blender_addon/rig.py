"""Motion -> keyframes on a rig: ARKit shape keys and a head bone. The add-on's real work.

Covers Blender 4.2-4.3 (actions with fcurves) and 4.4+/5.x (layered actions: slots and
channelbags). Nothing here overwrites what the user made: every generation is a new action,
placed on a new NLA track (or assigned after pushing the current action down to the NLA).
"""
from __future__ import annotations

import math

import bpy
import numpy as np

from .model_core.errors import LaliaError
from .model_core.motion import ARKIT_NAMES, Motion, canonical_arkit_name

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


def _write_curves(fcurves, data_path_values: list[tuple[str, int, np.ndarray]], frames: np.ndarray):
    for data_path, index, values in data_path_values:
        fc = fcurves.new(data_path, index=index)
        fc.keyframe_points.add(len(frames))
        co = np.empty(2 * len(frames), np.float32)
        co[0::2], co[1::2] = frames, values
        fc.keyframe_points.foreach_set("co", co)
        # LINEAR between per-frame keys: what the model generated, no overshoot
        fc.keyframe_points.foreach_set("interpolation", np.full(len(frames), 1, np.int32))
        fc.update()


def _place(id_data, action, slot, placement: str, track_name: str, frame_start: int):
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
    for tr in ad.nla_tracks:  # earlier generations stay, muted, so the newest one plays
        if tr.name.startswith("Lalia"):
            tr.mute = True
    tr = ad.nla_tracks.new()
    tr.name = track_name
    strip = tr.strips.new(action.name, frame_start, action)
    if slot is not None and hasattr(strip, "action_slot"):
        strip.action_slot = slot


def head_rotations_local(pitch_yaw_roll: np.ndarray, bone) -> np.ndarray:
    """Armature-space head rotation (pitch about X, yaw about Z, roll about Y; radians) ->
    the bone's local rotation as quaternions (T x 4, w first)."""
    from mathutils import Matrix
    B = bone.matrix_local.to_3x3()
    Binv = B.inverted()
    out = np.empty((len(pitch_yaw_roll), 4), np.float32)
    for i, (p, y, r) in enumerate(pitch_yaw_roll):
        R = Matrix.Rotation(y, 3, "Z") @ Matrix.Rotation(p, 3, "X") @ Matrix.Rotation(r, 3, "Y")
        out[i] = tuple((Binv @ R @ B).to_quaternion())
    return out


def apply_motion(scene, mesh_obj, motion: Motion, *, name: str, armature=None, head_bone: str = "",
                 placement: str = "NLA", frame_start: int | None = None) -> dict:
    """Key `motion` onto the mesh's ARKit shape keys and the head bone. Returns what was made.

    The motion is resampled to the scene's frame rate first.
    """
    found = find_arkit_shape_keys(mesh_obj)
    if not found:
        raise LaliaError(f"'{mesh_obj.name}' has no ARKit shape keys (e.g. jawOpen, eyeBlinkLeft)")
    if armature is not None and head_bone and head_bone not in armature.pose.bones:
        raise LaliaError(f"Armature '{armature.name}' has no bone '{head_bone}'")  # before any change
    fps = scene.render.fps / scene.render.fps_base
    m = motion.resample(fps)
    frame_start = scene.frame_start if frame_start is None else frame_start
    frames = frame_start + np.arange(m.num_frames, dtype=np.float32)
    made = {"shape_action": None, "bone_action": None, "frames": (frame_start, frame_start + m.num_frames - 1)}

    key = mesh_obj.data.shape_keys
    action = bpy.data.actions.new(f"{name} [face]")
    action.use_fake_user = False
    slot, fcurves = _fcurve_container(action, key)
    curves = [(f'key_blocks["{found[a]}"].value', 0, m.channel(a)) for a in ARKIT_NAMES
              if a in found and a in m.channels]
    for a in found:  # values outside a key's slider range would be clamped: widen the range
        kb = key.key_blocks[found[a]]
        kb.slider_min, kb.slider_max = min(kb.slider_min, 0.0), max(kb.slider_max, 1.0)
    _write_curves(fcurves, curves, frames)
    _place(key, action, slot, placement, f"Lalia: {name}", frame_start)
    made["shape_action"] = action.name

    if armature is not None and head_bone and all(c in m.channels for c in ("headPitch", "headYaw", "headRoll")):
        pb = armature.pose.bones[head_bone]
        rot = head_rotations_local(np.stack([m.channel("headPitch"), m.channel("headYaw"),
                                             m.channel("headRoll")], 1), pb.bone)
        bact = bpy.data.actions.new(f"{name} [head]")
        bslot, bcurves = _fcurve_container(bact, armature)
        base = f'pose.bones["{head_bone}"]'
        if pb.rotation_mode == "QUATERNION":
            curves = [(base + ".rotation_quaternion", i, rot[:, i]) for i in range(4)]
        else:
            from mathutils import Quaternion
            eul = np.array([tuple(Quaternion(q).to_euler(pb.rotation_mode)) for q in rot], np.float32)
            curves = [(base + ".rotation_euler", i, eul[:, i]) for i in range(3)]
        _write_curves(bcurves, curves, frames)
        _place(armature, bact, bslot, placement, f"Lalia: {name}", frame_start)
        made["bone_action"] = bact.name
    return made


def sequencer_strips(se, all_strips: bool = False):
    """The sequencer's strips: `strips` in Blender 4.4+/5.x, `sequences` before."""
    if all_strips:
        return se.strips_all if hasattr(se, "strips_all") else se.sequences_all
    return se.strips if hasattr(se, "strips") else se.sequences


def remove_generation(made: dict) -> None:
    """Undo what apply_motion made (used when a later step fails): tracks and actions."""
    for key in ("shape_action", "bone_action"):
        act = bpy.data.actions.get(made.get(key) or "")
        if act is None:
            continue
        for id_data in list(bpy.data.shape_keys) + list(bpy.data.objects):
            ad = getattr(id_data, "animation_data", None)
            if ad is None:
                continue
            for tr in list(ad.nla_tracks):
                if any(st.action == act for st in tr.strips):
                    ad.nla_tracks.remove(tr)
            if ad.action == act:
                ad.action = None
        bpy.data.actions.remove(act)


def add_sound_strip(scene, audio_path: str, frame_start: int, name: str):
    """The audio as a sound strip starting at frame_start, so playback is in sync."""
    se = scene.sequence_editor or scene.sequence_editor_create()
    strips = sequencer_strips(se)
    for s in strips:  # regenerating from the same audio: the strip is already there
        if s.type == "SOUND" and bpy.path.abspath(s.sound.filepath) == audio_path and int(s.frame_start) == frame_start:
            return s
    used = {s.channel for s in strips}
    channel = next(c for c in range(1, 128) if c not in used)
    strip = strips.new_sound(name=name[:60], filepath=audio_path, channel=channel, frame_start=frame_start)
    if scene.frame_end < strip.frame_final_end:
        scene.frame_end = int(math.ceil(strip.frame_final_end))
    return strip
