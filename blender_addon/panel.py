"""The sidebar panel (3D View > Sidebar > Lalia)."""
import bpy

from . import engine, scene_lines
from .flame_rig import exp_keys
from .properties import EMOTIONS
from .rig import find_arkit_shape_keys, find_armature, guess_head_bone


class LALIA_PT_main(bpy.types.Panel):
    bl_label = "Lalia"
    bl_idname = "LALIA_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Lalia"

    def draw(self, context):
        from .model_core.base.motion import ARKIT_NAMES
        s = context.scene.lalia
        col = self.layout.column()
        problem = engine.runtime_problem(really_import=False)
        if problem:  # one line, never a traceback: what's missing and which zip brings it
            col.label(text=problem, icon="ERROR")
        row = col.row()
        row.operator("lalia.add_demo_head", icon="MONKEY")
        row.operator("lalia.import_flame_head", icon="IMPORT")

        box = col.box()
        box.label(text="Target", icon="SHAPEKEY_DATA")
        obj = context.active_object
        if obj is None:
            box.label(text="Select a face mesh", icon="ERROR")
        else:
            mesh = obj
            if obj.type == "ARMATURE":
                mesh = next((c for c in obj.children if find_arkit_shape_keys(c) or exp_keys(c)), obj)
            found = find_arkit_shape_keys(mesh)
            flame = exp_keys(mesh)
            if flame and not found:
                box.label(text=f"{mesh.name}: FLAME head, {len(flame)} Exp shape keys")
            else:
                box.label(text=f"{mesh.name}: {len(found)}/52 ARKit shape keys")
            missing = [n for n in ARKIT_NAMES if n not in found]
            if found and missing:
                box.label(text="Missing: " + ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else ""))
            arm = find_armature(mesh)
            if arm is not None:
                box.prop(s, "animate_head")
                box.prop_search(s, "head_bone", arm.data, "bones", text="Head bone")
                if not s.head_bone:
                    box.label(text=f"Default: {guess_head_bone(arm) or 'none'}")

        box = col.box()
        box.label(text="Audio", icon="SOUND")
        box.prop(s, "audio_source", expand=True)
        if s.audio_source == "FILE":
            box.prop(s, "audio_path", text="")
        box.prop(s, "transcript_block", text="Dialogue text")
        if s.transcript_block is None:
            box.prop(s, "transcript_text", text="")

        box = col.box()
        box.label(text="Emotion", icon="FUND")
        for e in EMOTIONS:
            box.prop(s, e, slider=True)
        box.prop(s, "auto_emotion")
        box.prop(s, "emotion_reference", text="From reference")

        box = col.box()
        box.label(text="Style", icon="ARMATURE_DATA")
        box.prop(s, "style_preset", text="")
        if s.style_preset == "REFERENCE":
            box.prop(s, "style_reference")
            box.prop_search(s, "style_action", bpy.data, "actions")
        for name in ("head_motion", "expressiveness", "brow_activity", "blink_rate"):
            box.prop(s, name, slider=True)

        box = col.box()
        box.prop(s, "checkpoint")
        box.prop(s, "seed")
        box.prop(s, "steps")
        box.prop(s, "placement")
        box.prop(s, "add_sound")
        row = col.row()
        row.scale_y = 1.6
        row.enabled = not s.running and not problem
        row.operator("lalia.generate", icon="PLAY")
        if s.running:
            col.prop(s, "progress", text="Generating (Esc cancels)", slider=True)
        if s.status:
            col.label(text=s.status)

        scene_lines.draw(col, s)

        box = col.box()
        box.label(text="Edit", icon="GREASEPENCIL")
        row = box.row()
        row.prop(s, "reduce_keys")
        if s.reduce_keys:
            row.prop(s, "key_tolerance")
            box.prop(s, "head_tolerance")
        if not context.scene.use_preview_range:
            row = box.row()
            row.prop(s, "range_start")
            row.prop(s, "range_end")
        box.operator("lalia.regenerate_range", icon="FILE_REFRESH")
        box.label(text="Protect when regenerating:")
        box.row().prop(s, "protect")
        box.prop(s, "protect_names")
        box.operator("lalia.add_correction_layer", icon="NLA")
        box.label(text="Strength by region:")
        flow = box.grid_flow(columns=2)
        for r in ("mouth", "brows", "eyes", "cheeks", "head"):
            flow.prop(s, f"strength_{r}", slider=True)
        box.operator("lalia.apply_strength")

        box = col.box()
        box.label(text="Export", icon="EXPORT")
        row = box.row()
        row.operator("lalia.export_fbx", text="FBX Unity").preset = "UNITY"
        row.operator("lalia.export_fbx", text="FBX Unreal").preset = "UNREAL"
        box.operator("lalia.export_csv")


def register():
    bpy.utils.register_class(LALIA_PT_main)


def unregister():
    bpy.utils.unregister_class(LALIA_PT_main)
