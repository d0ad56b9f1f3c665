"""FLAME heads in Blender: build one from the user's FLAME model, and read one back.

Names follow the official FLAME Blender add-on, so heads it made work too: shape keys `Basis`,
`Shape1..`, `Exp1..`, `Pose1..36` (pose correctives), bones `root`, `neck`, `jaw`, `left_eye`,
`right_eye`, mesh in metres, Z up. Expression coefficients are PCA units, so the Exp keys get
slider ranges of +-10 (Blender's limit).
"""
from __future__ import annotations

import bpy
import numpy as np

from .model_core.base.errors import LaliaError
from .model_core.retarget.flame import FLAME_TO_BLENDER, JOINTS, FlameModel, FlameRigData, flame_to_blender

SLIDER_RANGE = 10.0
RETARGET_PROP = "lalia_flame_retarget"


def build_flame_head(context, model: FlameModel, n_shape_keys: int = 100, pose_correctives: bool = True):
    """Mesh + shape keys + armature (root/neck/jaw/eyes with FLAME's skinning weights).
    Returns (mesh object, armature object). Nothing is linked until everything is built."""
    verts = flame_to_blender(model.v_template)
    name = "FLAME"
    mesh = bpy.data.meshes.new(name)
    try:
        mesh.from_pydata(verts.tolist(), [], model.faces.tolist())
        mesh.update()
        mesh.polygons.foreach_set("use_smooth", np.ones(len(mesh.polygons), bool))
        obj = bpy.data.objects.new(name, mesh)
        obj["lalia_flame_sha256"] = model.sha256
        basis = obj.shape_key_add(name="Basis", from_mix=False)
        del basis

        def add_keys(prefix, dirs, count, lo, hi):
            for i in range(count):
                kb = obj.shape_key_add(name=f"{prefix}{i + 1}", from_mix=False)
                kb.data.foreach_set("co", (verts + flame_to_blender(dirs[:, :, i])).ravel())
                kb.slider_min, kb.slider_max = lo, hi

        add_keys("Shape", model.shapedirs, min(n_shape_keys, model.shapedirs.shape[2]), -SLIDER_RANGE, SLIDER_RANGE)
        add_keys("Exp", model.expdirs, model.n_exp, -SLIDER_RANGE, SLIDER_RANGE)
        if pose_correctives and model.posedirs is not None:
            add_keys("Pose", model.posedirs, model.posedirs.shape[2], -SLIDER_RANGE, SLIDER_RANGE)
        arm = _build_armature(context, model, obj)
    except Exception:
        for o in [o for o in bpy.data.objects if o.data in (mesh,)]:
            bpy.data.objects.remove(o)
        bpy.data.meshes.remove(mesh)
        raise
    for o in context.view_layer.objects:
        o.select_set(False)
    obj.select_set(True)
    context.view_layer.objects.active = obj
    return obj, arm


def _build_armature(context, model: FlameModel, obj):
    joints = flame_to_blender(model.joints)
    arm_data = bpy.data.armatures.new("FLAME Rig")
    arm = bpy.data.objects.new("FLAME Rig", arm_data)
    context.collection.objects.link(arm)
    context.collection.objects.link(obj)
    view_layer = context.view_layer
    prev = view_layer.objects.active
    view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    bones = []
    for j, bname in enumerate(JOINTS):
        eb = arm_data.edit_bones.new(bname)
        eb.head = joints[j].tolist()
        # FLAME's joints are points: give each bone a short tail pointing up (eyes: forward)
        offset = (0.0, -0.02, 0.0) if "eye" in bname else (0.0, 0.0, 0.03)
        eb.tail = (joints[j] + offset).tolist()
        bones.append(eb)
    for j, p in enumerate(model.parents):
        if p >= 0:
            bones[j].parent = bones[int(p)]
    bpy.ops.object.mode_set(mode="OBJECT")
    view_layer.objects.active = prev
    for pb in arm.pose.bones:
        pb.rotation_mode = "QUATERNION"
    for j, bname in enumerate(JOINTS):
        vg = obj.vertex_groups.new(name=bname)
        w = model.weights[:, j]
        for val in np.unique(np.round(w[w > 1e-3], 3)):
            vg.add(np.nonzero(np.round(w, 3) == val)[0].tolist(), float(val), "REPLACE")
    obj.parent = arm
    obj.modifiers.new("Armature", "ARMATURE").object = arm
    return arm


def exp_keys(obj) -> dict[int, str]:
    """Exp shape keys of a FLAME rig: index (1-based) -> key name."""
    if obj is None or obj.type != "MESH" or obj.data.shape_keys is None:
        return {}
    out = {}
    for kb in obj.data.shape_keys.key_blocks:
        if kb.name.startswith("Exp") and kb.name[3:].isdigit():
            out[int(kb.name[3:])] = kb.name
    return out


def is_flame_rig(obj) -> bool:
    return len(exp_keys(obj)) >= 10


def rig_data(obj, armature) -> FlameRigData:
    """What the ARKit -> FLAME retarget needs, read off the Blender rig (mesh local space)."""
    keys = obj.data.shape_keys.key_blocks
    exp = exp_keys(obj)
    n = max(exp)
    if sorted(exp) != list(range(1, n + 1)):
        raise LaliaError(f"'{obj.name}': Exp shape keys are not numbered 1..{n} without gaps")
    V = len(obj.data.vertices)
    basis = np.empty(V * 3, np.float32)
    obj.data.shape_keys.reference_key.data.foreach_get("co", basis)
    basis = basis.reshape(V, 3).astype(np.float64)
    dirs = np.empty((V, 3, n))
    co = np.empty(V * 3, np.float32)
    for i in range(1, n + 1):
        keys[exp[i]].data.foreach_get("co", co)
        dirs[:, :, i - 1] = co.reshape(V, 3) - basis
    if armature is None or "jaw" not in armature.data.bones:
        raise LaliaError(f"'{obj.name}' has Exp shape keys but no armature with a 'jaw' bone")
    to_mesh = obj.matrix_world.inverted() @ armature.matrix_world
    jaw_joint = np.array(to_mesh @ armature.data.bones["jaw"].head_local)
    weights = {name: np.zeros(V) for name in ("jaw", "left_eye", "right_eye")}
    groups = {vg.index: vg.name for vg in obj.vertex_groups if vg.name in weights}
    for v in obj.data.vertices:
        for g in v.groups:
            if g.group in groups:
                weights[groups[g.group]][v.index] = g.weight
    face = (weights["left_eye"] + weights["right_eye"]) < 0.5
    return FlameRigData(basis, dirs, jaw_joint, weights["jaw"], face)


def cached_retarget(obj, armature) -> dict:
    """The 52 x N ARKit -> FLAME retarget for this rig, computed once and kept on the mesh
    (recomputed when the Exp keys change in number)."""
    from .model_core.retarget.flame import retarget_arkit
    n = len(exp_keys(obj))
    cached = obj.get(RETARGET_PROP)
    if cached is not None and int(cached.get("n_exp", -1)) == n:
        return {"expression": np.array(cached["expression"], np.float32).reshape(52, n),
                "jaw": np.array(cached["jaw"], np.float32).reshape(52, 3)}
    rt = retarget_arkit(rig_data(obj, armature))
    obj[RETARGET_PROP] = {"n_exp": n, "expression": rt["expression"].ravel().tolist(),
                          "jaw": rt["jaw"].ravel().tolist(), "pairs": rt["pairs"],
                          "align_rms_mm": rt["align_rms_mm"]}
    return rt


def flame_axis_angle_to_armature(aa_flame: np.ndarray) -> np.ndarray:
    """FLAME axis-angle rotations (T x 3, FLAME axes) -> rotation matrices in armature axes."""
    from .model_core.retarget.flame import axis_angle_to_matrix
    M = FLAME_TO_BLENDER
    return M @ axis_angle_to_matrix(aa_flame) @ M.T
