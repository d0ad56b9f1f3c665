"""Render frames of the animated face to PNG (Workbench, headless-safe): demo and tests."""
from __future__ import annotations

import math
from pathlib import Path

import bpy
from mathutils import Vector

FOCUS = {"face": 0.58, "mouth": 0.7}  # how far down the head's height the view is centred


def frame_face(scene, obj, size: int = 384, crop: float = 0.24, focus: str = "face"):
    """A camera looking at the front (-Y side) of `obj`'s head, orthographic, `crop` m wide,
    centred on the face (about nose height) or on the mouth."""
    cam_data = bpy.data.cameras.get("Lalia Preview Camera") or bpy.data.cameras.new("Lalia Preview Camera")
    cam = bpy.data.objects.get("Lalia Preview Camera")
    if cam is None:
        cam = bpy.data.objects.new("Lalia Preview Camera", cam_data)
        scene.collection.objects.link(cam)
    cam_data.type = "ORTHO"
    cam_data.ortho_scale = crop
    corners = [obj.matrix_world @ Vector(c) for c in obj.bound_box]
    centre = sum(corners, Vector()) / 8
    top, bottom = max(c.z for c in corners), min(c.z for c in corners)
    target = Vector((centre.x, min(c.y for c in corners), top - FOCUS[focus] * (top - bottom)))
    cam.location = target + Vector((0, -1.0, 0))
    cam.rotation_euler = (math.pi / 2, 0, 0)
    scene.camera = cam
    r = scene.render
    r.engine = "BLENDER_WORKBENCH"
    r.resolution_x = r.resolution_y = size
    r.resolution_percentage = 100
    r.image_settings.file_format = "PNG"
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = "MATERIAL"
    return cam


def render_frames(scene, frames, out_dir, prefix: str = "frame") -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    keep = scene.frame_current
    for f in frames:
        scene.frame_set(int(f))
        p = out_dir / f"{prefix}_{int(f):05d}.png"
        scene.render.filepath = str(p)
        bpy.ops.render.render(write_still=True)
        paths.append(p)
    scene.frame_set(keep)
    return paths
