"""Editing after generation: regenerate a frame range, a correction layer for hand edits,
protected channels, sparse keys and per-region strength (the operators; the layer bookkeeping
is `layers.py`, the keys `rig.py`)."""
from __future__ import annotations

import math

import bpy
import numpy as np
from bpy.props import IntProperty

from . import engine, layers
from .properties import generation_options, key_tolerances, protection, strengths
from .rig import _fcurve_container, find_armature, guess_head_bone, motion_curves, tolerance_for, write_keys


def _scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def after_generation(context, obj, arm, made: dict, motion, audio: str, previous: dict) -> str:
    """Bookkeeping once a generation's actions exist: remember what made them, carry the
    protected channels over from the generation that played before, apply the strengths, keep
    the correction layer on top. Returns a line for the status."""
    s = context.scene.lalia
    regions, names = protection(s)
    notes = []
    for kind, id_data in (("shape_action", obj.data.shape_keys), ("bone_action", arm)):
        action = bpy.data.actions.get(made.get(kind) or "")
        if action is None:
            continue
        layers.remember(action, motion, audio, made["frames"][0], key_tolerances(s))
        if (regions or names) and previous.get(kind) is not None:
            n = layers.copy_protected(previous[kind], action, regions, names)
            if n:
                notes.append(f"{n} protected curves kept")
        layers.set_strengths(action, strengths(s))
        layers.keep_corrections_on_top(id_data)
    keys = made["keys"]
    if keys["written"] < keys["dense"]:
        notes.append(f"{keys['written']:,} keys instead of {keys['dense']:,}")
    return "; ".join(notes)


def playing(obj, arm) -> dict:
    """The Lalia actions that play now on the face and the head (before a new generation)."""
    return {"shape_action": layers.playing_generation(obj.data.shape_keys),
            "bone_action": layers.playing_generation(arm) if arm is not None else None}


def _error(op, e):
    op.report({"ERROR"}, str(e))
    return {"CANCELLED"}


def _face(op, context):
    """(face mesh, its armature or None) for an editing operator, or None after reporting why not."""
    from .model_core.base.errors import LaliaError
    from .operators import _target
    try:
        obj = _target(context)
    except LaliaError as e:
        _error(op, e)
        return None
    return obj, find_armature(obj)


class LALIA_OT_regenerate_range(bpy.types.Operator):
    """Regenerate a frame range of the playing Lalia animation with the panel's settings (a new
    seed, emotion or style); every other frame stays as it is"""
    bl_idname = "lalia.regenerate_range"
    bl_label = "Regenerate range"
    bl_options = {"REGISTER", "UNDO"}
    frame_start: IntProperty(name="From", default=0, description="0: the preview range, or the panel's fields")
    frame_end: IntProperty(name="To", default=0)

    def _range(self, scene) -> tuple[int, int]:
        if self.frame_start or self.frame_end:
            return self.frame_start, self.frame_end
        if scene.use_preview_range:
            return scene.frame_preview_start, scene.frame_preview_end
        return scene.lalia.range_start, scene.lalia.range_end

    def execute(self, context):
        from .model_core.base.errors import LaliaError
        from .operators import _checkpoint_path, _style, _target, motion_for_rig
        try:
            scene, s = context.scene, context.scene.lalia
            obj = _target(context)
            arm = find_armature(obj)
            now = playing(obj, arm)
            face = now["shape_action"]
            if face is None:
                raise LaliaError("No Lalia animation plays on this face: Generate first")
            kept, audio, start, tolerances = layers.recall(face)
            fs, fe = self._range(scene)
            fps = _scene_fps(scene)
            a = max(0, math.floor((fs - start) / fps * kept.fps))
            b = min(kept.num_frames, math.ceil((fe - start) / fps * kept.fps) + 1)
            if fe < fs or a >= b:
                raise LaliaError(f"Frames {fs}-{fe} are outside the generation (frames {start}-"
                                 f"{start + math.ceil(kept.duration * fps) - 1})")
            options = generation_options(s, _style(context)).replace(keep=kept, frames=(a, b))
            result = engine.generator(_checkpoint_path(context)).generate(audio, options)
        except LaliaError as e:
            return _error(self, e)
        bone = (s.head_bone or guess_head_bone(arm)) if (arm is not None and s.animate_head) else ""
        shape, bones = motion_curves(obj, motion_for_rig(result.motion, obj, arm).resample(fps), arm, bone)
        regions, names = protection(s)
        for action, curves in ((face, shape), (now["bone_action"], bones)):
            if action is None:
                continue
            by_path = {(p, i): v for p, i, v in curves}
            for fc in layers.curves_of(action):
                v = by_path.get((fc.data_path, fc.array_index))
                if v is None or layers.protected(fc.data_path, regions, names):
                    continue
                _write_range(fc, v, start, fs, fe, tolerance_for(fc.data_path, tolerances))
            layers.remember(action, result.motion, audio, start, tolerances)
        s.status = f"Regenerated frames {fs}-{fe} of {face.name}"
        self.report({"INFO"}, s.status)
        return {"FINISHED"}


def _write_range(fc, values: np.ndarray, start: int, fs: int, fe: int, tolerance: float | None) -> None:
    """The curve's keys on frames fs..fe take the new values; keys outside stay as they are.
    A reduced curve is rebuilt from the new dense values (within its tolerance everywhere)."""
    n = len(fc.keyframe_points)
    co = np.empty(2 * n, np.float64)
    fc.keyframe_points.foreach_get("co", co)
    frames = co[0::2]
    if tolerance is not None:
        write_keys(fc, start + np.arange(len(values), dtype=np.float64), values, tolerance)
        return
    idx = np.flatnonzero((frames >= fs) & (frames <= fe))
    src = np.clip(np.round(frames[idx]).astype(int) - start, 0, len(values) - 1)
    co[1::2][idx] = values[src]
    fc.keyframe_points.foreach_set("co", co)
    fc.update()


class LALIA_OT_add_correction_layer(bpy.types.Operator):
    """Add a layer for hand edits above Lalia's: keys in it are added to the generated animation
    and survive regeneration"""
    bl_idname = "lalia.add_correction_layer"
    bl_label = "Add correction layer"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        face = _face(self, context)
        if face is None:
            return {"CANCELLED"}
        obj, arm = face
        scene = context.scene
        made = []
        for id_data in (obj.data.shape_keys, arm):
            if id_data is None:
                continue
            made.append(layers.add_correction_layer(id_data, (scene.frame_start, scene.frame_end),
                                                    _fcurve_container).name)
        context.scene.lalia.status = "Correction layer: " + ", ".join(made) + " (tweak its strip to key)"
        self.report({"INFO"}, context.scene.lalia.status)
        return {"FINISHED"}


class LALIA_OT_apply_strength(bpy.types.Operator):
    """Scale each face region's movement on the Lalia animation (non-destructive F-curve modifiers)"""
    bl_idname = "lalia.apply_strength"
    bl_label = "Apply strength"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        face = _face(self, context)
        if face is None:
            return {"CANCELLED"}
        obj, arm = face
        n = 0
        for action in bpy.data.actions:
            if layers.recall(action) is not None and _animates(action, obj, arm):
                n += layers.set_strengths(action, strengths(context.scene.lalia))
        self.report({"INFO"}, f"Strength set on {n} curves")
        return {"FINISHED"}


def _animates(action, obj, arm) -> bool:
    """Is this Lalia action on the face's shape keys or its armature (active or in the NLA)?"""
    for id_data in (obj.data.shape_keys, arm):
        ad = getattr(id_data, "animation_data", None)
        if ad is not None and (ad.action == action or any(st.action == action for t in ad.nla_tracks
                                                          for st in t.strips)):
            return True
    return False


_classes = (LALIA_OT_regenerate_range, LALIA_OT_add_correction_layer, LALIA_OT_apply_strength)

register, unregister = bpy.utils.register_classes_factory(_classes)  # unregisters in reverse order
