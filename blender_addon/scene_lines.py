"""Generate for all sound strips: every line of dialogue in the scene's sequencer becomes an
animation at its strip's start, on the rig its channel or name prefix maps to.

Per-strip overrides come from the strip's custom properties: `lalia_emotion` ("happy=0.6;sad=0.2"),
`lalia_style`, `lalia_seed`, `lalia_transcript` (kept on the action for when transcripts are used).
Each line gets its own action and NLA track, named after the strip, playing only over its frames.
The whole run is one undo step; a line that fails is reported and the others still go on.
"""
from __future__ import annotations

import bpy
from bpy.props import IntProperty, PointerProperty, StringProperty

from . import engine
from .rig import apply_motion, find_armature, guess_head_bone, sequencer_strips, strip_start


class LaliaStripTarget(bpy.types.PropertyGroup):
    match: StringProperty(name="Channel or prefix",
                          description="A sequencer channel number (e.g. 2), or the start of the strips' names "
                                      "(e.g. ANNA_)")
    target: PointerProperty(name="Face", type=bpy.types.Object,
                            description="The face mesh these strips animate")


def target_for(strip, rows, fallback):
    """The face a strip animates: the first row whose channel or prefix it matches, else `fallback`."""
    for row in rows:
        m = row.match.strip()
        if row.target is not None and m and (m == str(strip.channel) or (not m.isdigit() and strip.name.startswith(m))):
            return row.target
    return fallback


def _emotion(text: str) -> dict:
    from .model_core.base.errors import LaliaError
    out = {}
    for part in filter(None, (p.strip() for p in str(text).split(";"))):
        name, _, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise LaliaError(f"lalia_emotion '{text}': write it as happy=0.6;sad=0.2") from None
    return out


def strip_transcript(strip, from_name: bool) -> str | None:
    """A sound strip's dialogue text: its `lalia_transcript` property, else (when the panel says
    so) its name."""
    if "lalia_transcript" in strip:
        return str(strip["lalia_transcript"])
    return strip.name if from_name else None


def strip_options(base, strip, from_name: bool = False):
    """The panel's options with the strip's own overrides; the panel's dialogue text is one
    line's, so a strip has only its own."""
    changes = {"transcript": strip_transcript(strip, from_name)}
    if "lalia_emotion" in strip:
        changes["emotion"] = _emotion(strip["lalia_emotion"]) or None
    if "lalia_style" in strip:
        changes["style"] = str(strip["lalia_style"])
    if "lalia_seed" in strip:
        changes["seed"] = int(strip["lalia_seed"])
    return base.replace(**changes)


class LALIA_OT_generate_strips(bpy.types.Operator):
    """Generate every sound strip of the scene onto the face its channel or name prefix maps to"""
    bl_idname = "lalia.generate_strips"
    bl_label = "Generate all sound strips"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from .model_core.base.errors import LaliaError
        from .operators import _checkpoint_path, _error, _style, motion_for_rig
        from .properties import generation_options, key_tolerances
        scene, s = context.scene, context.scene.lalia
        se = scene.sequence_editor
        strips = sorted((st for st in sequencer_strips(se, all_strips=True) if st.type == "SOUND"),
                        key=lambda st: (strip_start(st), st.channel)) if se else []
        if not strips:
            return _error(self, LaliaError("The scene has no sound strips to generate from"))
        fallback = context.active_object if context.active_object is not None and \
            context.active_object.type == "MESH" else None
        try:
            base = generation_options(s, _style(context))
            gen = engine.generator(_checkpoint_path(context))
        except LaliaError as e:
            return _error(self, e)
        wm = context.window_manager
        wm.progress_begin(0, len(strips))
        done, failed, warned = [], [], []
        try:
            for i, st in enumerate(strips):
                obj = target_for(st, s.strip_targets, fallback)
                if obj is None:
                    failed.append(f"{st.name}: no face for channel {st.channel} (add a row to the strip table)")
                    continue
                try:
                    result = gen.generate(bpy.path.abspath(st.sound.filepath),
                                          strip_options(base, st, s.transcript_from_strip_name))
                    arm = find_armature(obj)
                    bone = (s.head_bone or guess_head_bone(arm)) if (arm is not None and s.animate_head) else ""
                    made = apply_motion(scene, obj, motion_for_rig(result.motion, obj, arm), name=st.name,
                                        armature=arm, head_bone=bone, placement="LINE",
                                        frame_start=int(round(strip_start(st))), tolerances=key_tolerances(s))
                    for key in ("shape_action", "bone_action"):
                        action = bpy.data.actions.get(made.get(key) or "")
                        if action is not None and "lalia_transcript" in st:
                            action["lalia_transcript"] = str(st["lalia_transcript"])
                    done.append(f"{st.name} -> {obj.name}")
                    warned += [f"{st.name}: {w}" for w in result.info.get("warnings", [])]
                except LaliaError as e:
                    failed.append(f"{st.name}: {e}")
                wm.progress_update(i + 1)
        finally:
            wm.progress_end()
        s.status = f"{len(done)} of {len(strips)} strips generated" + (f"; {len(failed)} failed" if failed else "")
        for line in failed + warned:  # warned: a strip's transcript left out, and why
            self.report({"WARNING"}, line)
        self.report({"INFO"}, s.status)
        return {"FINISHED"} if done else {"CANCELLED"}


class LALIA_OT_strip_target_add(bpy.types.Operator):
    """Add a row to the strip table: a channel or name prefix, and the face it animates"""
    bl_idname = "lalia.strip_target_add"
    bl_label = "Add row"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        row = context.scene.lalia.strip_targets.add()
        obj = context.active_object
        row.target = obj if obj is not None and obj.type == "MESH" else None
        return {"FINISHED"}


class LALIA_OT_strip_target_remove(bpy.types.Operator):
    """Remove this row of the strip table"""
    bl_idname = "lalia.strip_target_remove"
    bl_label = "Remove row"
    bl_options = {"REGISTER", "UNDO"}
    index: IntProperty(default=0)

    def execute(self, context):
        rows = context.scene.lalia.strip_targets
        if 0 <= self.index < len(rows):
            rows.remove(self.index)
        return {"FINISHED"}


def draw(layout, s):
    """The panel's box: the strip table and the button."""
    box = layout.box()
    box.label(text="All sound strips", icon="SEQUENCE")
    for i, row in enumerate(s.strip_targets):
        r = box.row(align=True)
        r.prop(row, "match", text="")
        r.prop(row, "target", text="")
        r.operator("lalia.strip_target_remove", text="", icon="X").index = i
    box.operator("lalia.strip_target_add", icon="ADD")
    box.prop(s, "transcript_from_strip_name")
    box.operator("lalia.generate_strips", icon="PLAY")


_classes = (LALIA_OT_generate_strips, LALIA_OT_strip_target_add, LALIA_OT_strip_target_remove)

register, unregister = bpy.utils.register_classes_factory(_classes)  # unregisters in reverse order
