"""FBX for game engines: the face and its rig with their active actions baked, written whole or
not at all. Used by the Export FBX button and by `lalia export` (model_core/batch/export.py),
which runs this module in a background Blender for every line of a batch."""
from __future__ import annotations

import bpy

from .model_core.base.errors import LaliaError
from .model_core.base.files import atomic_write
from .rig import find_armature

PRESETS = {
    # Unity: Y up, -Z forward, unit scale applied to the FBX
    "UNITY": dict(axis_forward="-Z", axis_up="Y", apply_scale_options="FBX_SCALE_ALL",
                  apply_unit_scale=True),
    # Unreal: Z up, -Y forward as Blender, scale kept in FBX units (UE reads cm)
    "UNREAL": dict(axis_forward="-Y", axis_up="Z", apply_scale_options="FBX_SCALE_NONE",
                   apply_unit_scale=True, primary_bone_axis="Y", secondary_bone_axis="X"),
}


def write_fbx(context, obj, path, preset: str = "UNITY") -> None:
    """Export `obj` (the face mesh) and the armature deforming it, with the shape-key and bone
    animation of their active actions baked over the scene's frame range. The selection is put
    back afterwards. Any failure is a LaliaError, and an earlier file at `path` is kept."""
    if preset not in PRESETS:
        raise LaliaError(f"Unknown FBX preset '{preset}': use {' or '.join(p.lower() for p in PRESETS)}")
    arm = find_armature(obj)
    prev_sel = [o for o in context.view_layer.objects if o.select_get()]
    for o in prev_sel:
        o.select_set(False)
    for o in (obj, arm):
        if o is not None:
            o.select_set(True)
    # written to a temp name beside the target and renamed: a failed export never truncates an
    # earlier one (the FBX exporter writes as it goes)
    try:
        with atomic_write(path, "FBX file") as tmp:
            bpy.ops.export_scene.fbx(
                filepath=str(tmp), use_selection=True, object_types={"ARMATURE", "MESH"},
                add_leaf_bones=False, bake_anim=True, bake_anim_use_all_actions=False,
                bake_anim_use_nla_strips=False, bake_anim_simplify_factor=0.0,
                use_mesh_modifiers=False, mesh_smooth_type="FACE", **PRESETS[preset])
    except LaliaError:
        raise
    except Exception as e:  # the exporter's own failure: one line, the details in the console
        raise LaliaError(f"FBX export to {path} failed; the previous file (if any) is kept\n{e}") from e
    finally:
        for o in context.view_layer.objects:
            o.select_set(o in prev_sel)
