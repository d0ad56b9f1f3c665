"""The bundled CC0 head as a Blender object: mesh + 52 ARKit shape keys + neck/head/jaw armature."""
from __future__ import annotations

import bpy
import numpy as np

from .model_core.base.head import load_head
from .model_core.base.motion import ARKIT_NAMES


def build_demo_head(context, name: str = "Lalia Head"):
    head = load_head()
    mesh = bpy.data.meshes.new(name)
    polys = [tuple(int(i) for i in p if i >= 0) for p in head.polygons]
    mesh.from_pydata(head.vertices.tolist(), [], polys)
    mesh.update()
    for p in mesh.polygons:
        p.use_smooth = True
    # materials: skin, eyes, teeth, tongue
    colours = {"Skin": (0.8, 0.55, 0.45, 1), "Eyes": (0.95, 0.95, 0.95, 1),
               "Teeth": (0.95, 0.93, 0.85, 1), "Tongue": (0.7, 0.25, 0.3, 1)}
    for mname, col in colours.items():
        mat = bpy.data.materials.new(f"Lalia {mname}")
        mat.diffuse_color = col
        mesh.materials.append(mat)
    part_of_poly = head.part[head.polygons[:, 0]]
    mesh.polygons.foreach_set("material_index", part_of_poly.astype(np.int32))
    obj = bpy.data.objects.new(name, mesh)
    context.collection.objects.link(obj)

    obj.shape_key_add(name="Basis", from_mix=False)
    for k, shape in enumerate(ARKIT_NAMES):
        kb = obj.shape_key_add(name=shape, from_mix=False)
        kb.data.foreach_set("co", (head.vertices + head.targets[k]).ravel())

    arm_data = bpy.data.armatures.new(f"{name} Rig")
    arm = bpy.data.objects.new(f"{name} Rig", arm_data)
    context.collection.objects.link(arm)
    view_layer = context.view_layer
    prev_active = view_layer.objects.active
    view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    bones = {}
    for i, bname in enumerate(head.bone_names):
        eb = arm_data.edit_bones.new(bname)
        eb.head, eb.tail = head.bone_heads[i].tolist(), head.bone_tails[i].tolist()
        bones[bname] = eb
    bones["head"].parent = bones["neck"]
    bones["jaw"].parent = bones["head"]
    bpy.ops.object.mode_set(mode="OBJECT")
    view_layer.objects.active = prev_active
    for pb in arm.pose.bones:
        pb.rotation_mode = "QUATERNION"

    for i, bname in enumerate(head.bone_names):
        vg = obj.vertex_groups.new(name=bname)
        w = head.bone_weights[:, i]
        for val in np.unique(np.round(w[w > 0.01], 2)):
            idx = np.nonzero(np.round(w, 2) == val)[0].tolist()
            vg.add(idx, float(val), "REPLACE")
    obj.parent = arm
    mod = obj.modifiers.new("Armature", "ARMATURE")
    mod.object = arm
    for o in context.view_layer.objects:
        o.select_set(False)
    obj.select_set(True)
    view_layer.objects.active = obj
    return obj, arm
