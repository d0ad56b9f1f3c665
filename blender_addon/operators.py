"""Operators: lalia.add_demo_head, lalia.import_flame_head, lalia.generate, lalia.export_fbx,
lalia.export_csv.

Generate runs synchronously in background mode (`blender -b`, scripts, tests). In the UI it runs
the model in a worker thread, shows progress, and writes keyframes on the main thread when the
motion is ready; Esc cancels and leaves the scene untouched.
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty

from . import engine
from .fbx import write_fbx
from .flame_rig import cached_retarget, is_flame_rig
from .properties import generation_options, key_tolerances
from .rig import (
    add_sound_strip,
    apply_motion,
    audio_frames,
    extend_frame_range,
    find_arkit_shape_keys,
    find_armature,
    guess_head_bone,
    has_audio,
    remove_generation,
    sequencer_strips,
)


def _error(op, e: Exception):
    """Report an error in one or two lines; anything longer (an unexpected exception's text)
    goes to the console, and the report says so."""
    lines = [x for x in str(e).splitlines() if x.strip()] or [type(e).__name__]
    if len(lines) > 2 or "Traceback" in str(e):
        print(f"Lalia: {type(e).__name__}: {e}")
        lines = [(lines[-1] if "Traceback" in lines[0] else lines[0])[:300], "(details in the system console)"]
    op.report({"ERROR"}, "\n".join(lines))
    return {"CANCELLED"}


def _sound_strip(context):
    """The sound strip Generate reads: the active one, else the first."""
    from .model_core.base.errors import LaliaError
    se = context.scene.sequence_editor
    strips = [] if se is None else list(sequencer_strips(se, all_strips=True))
    sounds = [st for st in strips if st.type == "SOUND"]
    if not sounds:
        raise LaliaError("The scene has no sound strip; pick an audio file instead")
    return se.active_strip if se.active_strip in sounds else sounds[0]


def _audio_path(context) -> str:
    s = context.scene.lalia
    from .model_core.base.errors import LaliaError
    if s.audio_source == "STRIP":
        return bpy.path.abspath(_sound_strip(context).sound.filepath)
    if not s.audio_path:
        raise LaliaError("Choose an audio file first")
    path = bpy.path.abspath(s.audio_path)
    if not os.path.isfile(path):
        raise LaliaError(f"Audio file not found: {path}")
    return path


def _drivable(obj) -> bool:
    return bool(find_arkit_shape_keys(obj)) or is_flame_rig(obj)


def _checkpoint_path(context) -> str | None:
    """The model file chosen in the panel, or None for the bundled default."""
    path = context.scene.lalia.checkpoint
    return bpy.path.abspath(path) if path else None


def _target(context):
    """The face mesh to animate: the active object, or the mesh under a selected armature."""
    from .model_core.base.errors import LaliaError
    obj = context.active_object
    if obj is None:
        raise LaliaError("Select the face mesh (ARKit shape keys or a FLAME head) first")
    return face_mesh(obj)


def face_mesh(obj):
    """The face mesh `obj` stands for: itself, or for an armature the mesh it deforms. It needs
    ARKit-named shape keys or FLAME Exp keys; anything else is a LaliaError that says why."""
    from .model_core.base.errors import LaliaError
    if obj.type == "ARMATURE":  # the rig is selected: use the mesh it deforms
        meshes = [o for o in obj.children if o.type == "MESH" and _drivable(o)]
        if not meshes:
            raise LaliaError(f"Armature '{obj.name}' deforms no mesh with ARKit or FLAME shape keys")
        obj = meshes[0]
    if obj.type != "MESH" or obj.data.shape_keys is None:
        raise LaliaError(f"'{obj.name}' has no shape keys; select a face mesh with ARKit shape keys "
                         "or a FLAME head")
    if not _drivable(obj):
        raise LaliaError(f"'{obj.name}' has shape keys but none with ARKit names (jawOpen, eyeBlinkLeft, ...) "
                         "and no FLAME Exp keys")
    return obj


def motion_for_rig(motion, obj, armature):
    """Fit the generated motion to the rig: ARKit motion on a FLAME head goes through the
    rig's ARKit -> FLAME retarget (computed once, kept on the mesh)."""
    from .model_core.base.errors import LaliaError
    from .model_core.retarget.flame import arkit_to_flame
    flame_motion = any(c.startswith("Exp") for c in motion.channels)
    if is_flame_rig(obj) and not find_arkit_shape_keys(obj) and not flame_motion:
        return arkit_to_flame(motion, cached_retarget(obj, armature))
    if flame_motion and not is_flame_rig(obj):
        raise LaliaError("This model makes FLAME motion (Exp1..); select a FLAME head, or use an ARKit model")
    return motion


def _style(context):
    s = context.scene.lalia
    from .model_core.base.errors import LaliaError
    if s.style_preset == "AUTO":
        return "auto"
    if s.style_preset == "NONE":
        return "average"
    if s.style_preset != "REFERENCE":
        return s.style_preset
    if s.style_action:
        return _motion_from_action(context, s.style_action)
    if not s.style_reference:
        raise LaliaError("Style 'From reference' needs a reference file or action")
    return bpy.path.abspath(s.style_reference)


def _motion_from_action(context, action_name):
    """Sample an existing shape-key action on an ARKit rig into a Motion (style reference)."""
    import numpy as np

    from .model_core.base.errors import LaliaError
    from .model_core.base.motion import ARKIT_NAMES, Motion, canonical_arkit_name
    act = bpy.data.actions.get(action_name)
    if act is None:
        raise LaliaError(f"No action named '{action_name}'")
    curves = list(getattr(act, "fcurves", []) or [])
    if not curves and hasattr(act, "layers"):
        for layer in act.layers:
            for strip in layer.strips:
                for cb in strip.channelbags:
                    curves += list(cb.fcurves)
    lo, hi = (int(x) for x in act.frame_range)
    frames = np.arange(lo, hi + 1)
    values = np.zeros((len(frames), 52), np.float32)
    hits = 0
    for fc in curves:
        m = re.match(r'key_blocks\["(.+)"\]\.value', fc.data_path)
        name = canonical_arkit_name(m.group(1)) if m else None
        if name:
            values[:, ARKIT_NAMES.index(name)] = [fc.evaluate(f) for f in frames]
            hits += 1
    if not hits:
        raise LaliaError(f"Action '{action_name}' animates no ARKit shape keys")
    fps = context.scene.render.fps / context.scene.render.fps_base
    return Motion(fps, ARKIT_NAMES, values)


class LALIA_OT_add_demo_head(bpy.types.Operator):
    """Add the bundled CC0 head, rigged with 52 ARKit shape keys and a neck/head/jaw armature"""
    bl_idname = "lalia.add_demo_head"
    bl_label = "Add demo head"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from .demo_head import build_demo_head
        if context.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        obj, arm = build_demo_head(context)
        context.scene.lalia.head_bone = "head"
        self.report({"INFO"}, f"Added '{obj.name}' with 52 ARKit shape keys")
        return {"FINISHED"}


class LALIA_OT_import_flame_head(bpy.types.Operator):
    """Build a FLAME head (shape keys and armature) from your FLAME model file (generic_model.pkl,
    FLAME 2023, or .npz). The file is read without running anything in it"""
    bl_idname = "lalia.import_flame_head"
    bl_label = "Import FLAME head"
    bl_options = {"REGISTER", "UNDO"}
    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.pkl;*.npz", options={"HIDDEN"})
    shape_keys: bpy.props.IntProperty(name="Identity shape keys", default=100, min=0, max=300)
    pose_correctives: bpy.props.BoolProperty(name="Pose correctives", default=True)

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        from .flame_rig import build_flame_head
        from .model_core.base.errors import LaliaError
        from .model_core.retarget.flame import load_flame
        try:
            if not self.filepath:
                raise LaliaError("Choose your FLAME model file (generic_model.pkl, FLAME 2023 or .npz)")
            model = load_flame(bpy.path.abspath(self.filepath))  # validated before anything is built
        except LaliaError as e:
            return _error(self, e)
        if context.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        obj, arm = build_flame_head(context, model, self.shape_keys, self.pose_correctives)
        context.scene.lalia.head_bone = "neck"
        self.report({"INFO"}, f"Added '{obj.name}': {model.n_exp} Exp shape keys, rig '{arm.name}'")
        return {"FINISHED"}


class LALIA_OT_generate(bpy.types.Operator):
    """Generate lip sync, expression, blinks and head motion from audio as new keyframes"""
    bl_idname = "lalia.generate"
    bl_label = "Generate from audio"
    bl_options = {"REGISTER", "UNDO"}

    _thread = None
    _timer = None

    def _gather(self, context):
        s = context.scene.lalia
        obj = _target(context)
        arm = find_armature(obj)
        bone = (s.head_bone or guess_head_bone(arm)) if s.animate_head else ""
        audio = _audio_path(context)
        options = generation_options(s, _style(context))
        if s.audio_source == "STRIP" and options.transcript is None:  # the strip's own text, if it has one
            from .scene_lines import strip_transcript
            options = options.replace(transcript=strip_transcript(_sound_strip(context), s.transcript_from_strip_name))
        if is_flame_rig(obj) and not find_arkit_shape_keys(obj):
            cached_retarget(obj, arm)  # fails early (on the main thread) if the rig can't be read
        return obj, arm, bone, audio, options

    def _finish(self, context, result, obj, arm, bone, audio, options):
        from .editing import after_generation, playing
        from .layers import correction_track
        s = context.scene.lalia
        engine.last_generation.update(info=result.info, timings=result.timings)
        for warning in result.info.get("warnings", []):  # a transcript left out, and why
            self.report({"WARNING"}, warning)
        emo = "+".join(f"{k}{v:.1f}" for k, v in (options.emotion or {}).items()) or \
            ("auto" if options.emotion_from_voice else "neutral")
        name = f"Lalia {Path(audio).stem} {emo} s{s.seed}"
        before = playing(obj, arm)
        # with a correction layer, generations go on NLA tracks under it (an active action
        # would play over the corrections)
        placement = "NLA" if correction_track(obj.data.shape_keys) is not None else s.placement
        made = apply_motion(context.scene, obj, motion_for_rig(result.motion, obj, arm), name=name, armature=arm,
                            head_bone=bone, placement=placement, tolerances=key_tolerances(s))
        no_audio = s.add_sound and not has_audio()
        try:
            if no_audio:  # the frame range still follows the audio, as the strip would have set it
                extend_frame_range(context.scene, made["frames"][0] + audio_frames(context.scene, audio, result.motion))
            elif s.add_sound:
                add_sound_strip(context.scene, audio, made["frames"][0], Path(audio).name)
            notes = after_generation(context, obj, arm, made, result.motion, audio, before)
        except Exception:
            remove_generation(made)  # all or nothing
            raise
        engine.last_generation["keys"] = made["keys"]
        s.status = f"{made['shape_action']}: frames {made['frames'][0]}-{made['frames'][1]}" + \
            (f" ({notes})" if notes else "")
        if no_audio:
            self.report({"WARNING"}, "This Blender has no audio support (built without Audaspace): "
                                     "no sound strip added; the frame range follows the audio")
        self.report({"INFO"}, f"Generated {s.status}")

    def execute(self, context):
        from .model_core.base.errors import LaliaError
        if problem := engine.runtime_problem():
            return _error(self, LaliaError(problem))
        try:
            obj, arm, bone, audio, options = self._gather(context)
            result = engine.generator(_checkpoint_path(context)).generate(audio, options)
            self._finish(context, result, obj, arm, bone, audio, options)
        except LaliaError as e:
            return _error(self, e)
        return {"FINISHED"}

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        from .model_core.base.errors import LaliaError
        if problem := engine.runtime_problem():
            return _error(self, LaliaError(problem))
        try:
            self._args = self._gather(context)
        except LaliaError as e:
            return _error(self, e)
        s = context.scene.lalia
        s.running, s.progress, s.status = True, 0.0, "Loading model..."
        self._cancel = threading.Event()
        self._result = {}
        _, _, _, audio, options = self._args

        checkpoint = _checkpoint_path(context)

        def work():
            try:
                gen = engine.generator(checkpoint)
                self._result["generation"] = gen.generate(
                    audio, options, progress=lambda f: self._result.__setitem__("progress", f),
                    cancel=self._cancel.is_set)
            except Exception as e:  # reported on the main thread
                self._result["error"] = e

        self._thread = threading.Thread(target=work, daemon=True)
        self._thread.start()
        self._timer = context.window_manager.event_timer_add(0.1, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        s = context.scene.lalia
        if event.type == "ESC":
            self._cancel.set()
        if event.type != "TIMER":
            return {"PASS_THROUGH"} if event.type != "ESC" else {"RUNNING_MODAL"}
        s.progress = self._result.get("progress", 0.0)
        s.status = f"Generating... {100 * s.progress:.0f}%"
        for area in context.screen.areas if context.screen else []:
            area.tag_redraw()
        if self._thread.is_alive():
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        s.running = False
        if self._cancel.is_set():
            s.status = "Cancelled: nothing was changed"
            self.report({"WARNING"}, s.status)
            return {"CANCELLED"}
        if "error" in self._result:
            s.status = str(self._result["error"])
            return _error(self, self._result["error"])
        try:
            self._finish(context, self._result["generation"], *self._args)
        except Exception as e:
            return _error(self, e)
        return {"FINISHED"}


class LALIA_OT_export_fbx(bpy.types.Operator):
    """Export the selected face and its rig with baked shape-key and head-bone animation"""
    bl_idname = "lalia.export_fbx"
    bl_label = "Export FBX for game engines"
    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.fbx", options={"HIDDEN"})
    preset: EnumProperty(items=[("UNITY", "Unity", ""), ("UNREAL", "Unreal", "")], default="UNITY")

    def invoke(self, context, event):
        if not self.filepath:
            self.filepath = bpy.path.ensure_ext(bpy.data.filepath[:-6] if bpy.data.filepath else "lalia", ".fbx")
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        from .model_core.base.errors import LaliaError
        try:
            obj = _target(context)
        except LaliaError as e:
            return _error(self, e)
        if not self.filepath:
            return _error(self, LaliaError("Choose a file to export to"))
        path = bpy.path.ensure_ext(bpy.path.abspath(self.filepath), ".fbx")
        try:
            write_fbx(context, obj, path, self.preset)
        except LaliaError as e:
            return _error(self, e)
        self.report({"INFO"}, f"Exported {path}")
        return {"FINISHED"}


class LALIA_OT_export_csv(bpy.types.Operator):
    """Export the face's current animation as a Live Link Face style CSV"""
    bl_idname = "lalia.export_csv"
    bl_label = "Export Live Link CSV"
    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.csv", options={"HIDDEN"})

    def invoke(self, context, event):
        if not self.filepath:
            self.filepath = "lalia.csv"
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        import numpy as np

        from .model_core.base.errors import LaliaError
        from .model_core.base.motion import ARKIT_HEAD_LAYOUT, ARKIT_NAMES, Motion
        try:
            obj = _target(context)
            if not self.filepath:
                raise LaliaError("Choose a file to export to")
            found = find_arkit_shape_keys(obj)
            if not found:
                raise LaliaError(f"'{obj.name}' has no ARKit shape keys: Live Link CSV holds ARKit curves "
                                 "(export FBX for FLAME heads)")
        except LaliaError as e:
            return _error(self, e)
        scene = context.scene
        arm = find_armature(obj)
        bone = scene.lalia.head_bone or guess_head_bone(arm)
        frames = range(scene.frame_start, scene.frame_end + 1)
        vals = np.zeros((len(frames), len(ARKIT_HEAD_LAYOUT)), np.float32)
        keep = scene.frame_current
        for i, f in enumerate(frames):  # evaluate what plays: NLA, drivers and all
            scene.frame_set(f)
            kbs = obj.data.shape_keys.key_blocks
            for j, a in enumerate(ARKIT_NAMES):
                if a in found:
                    vals[i, j] = kbs[found[a]].value
            if arm is not None and bone in arm.pose.bones:
                pb = arm.pose.bones[bone]
                q = pb.rotation_quaternion if pb.rotation_mode == "QUATERNION" else pb.rotation_euler.to_quaternion()
                B = pb.bone.matrix_local.to_3x3()
                R = B @ q.to_matrix() @ B.inverted()
                e = R.to_euler("YXZ")  # R = Rz(yaw) Rx(pitch) Ry(roll)
                vals[i, 52:55] = (e.x, e.z, e.y)
        scene.frame_set(keep)
        fps = scene.render.fps / scene.render.fps_base
        Motion(fps, ARKIT_HEAD_LAYOUT, vals).save(bpy.path.abspath(self.filepath), "csv")
        self.report({"INFO"}, f"Exported {self.filepath}")
        return {"FINISHED"}


_classes = (LALIA_OT_add_demo_head, LALIA_OT_import_flame_head, LALIA_OT_generate, LALIA_OT_export_fbx,
            LALIA_OT_export_csv)

register, unregister = bpy.utils.register_classes_factory(_classes)  # unregisters in reverse order
