"""A small software renderer of the bundled head (painter's algorithm, Lambert shading).

Used for contact sheets of corpus samples and generated motion without Blender; the add-on
renders with Blender itself.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..base.head import HeadAsset, load_head
from ..base.motion import ARKIT_NAMES, Motion, head_rotation_matrices

_PART_COLOURS = {0: (0.86, 0.68, 0.58), 1: (0.95, 0.95, 0.95), 2: (0.97, 0.96, 0.9), 3: (0.75, 0.35, 0.38)}


def posed_vertices(head: HeadAsset, frame: np.ndarray) -> np.ndarray:
    """Vertices for one frame of the ARKit+head layout: shapes, then the head bone's rotation
    about the head joint blended by skinning weight (neck gets a third of it)."""
    v = head.deform(frame[:52])
    if len(frame) >= 55:
        R = head_rotation_matrices(frame[52:55])
        pivot = head.bone_heads[1]
        rotated = (v - pivot) @ R.T + pivot
        wgt = head.bone_weights[:, 1:].sum(1, keepdims=True) + head.bone_weights[:, :1] / 3
        v = v + wgt * (rotated - v)
    return v


def render_frame(head: HeadAsset, frame: np.ndarray, size: int = 256, zoom: float = 1.0,
                 crop: str = "face"):
    from PIL import Image, ImageDraw
    v = posed_vertices(head, frame)
    tris = head.polygons
    quads = tris[:, 3] >= 0
    faces = np.concatenate([tris[:, :3], tris[quads][:, [0, 2, 3]]])
    part = np.concatenate([head.part[tris[:, 0]], head.part[tris[quads][:, 0]]])
    p = v[faces]  # F x 3 x 3
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    light = np.array([0.3, -0.8, 0.5])
    light /= np.linalg.norm(light)
    shade = 0.25 + 0.75 * np.abs(n @ light)
    centre = head.vertices[head.landmarks["noseTip"]] * np.array([0, 0, 1])
    half = (0.07 if crop == "mouth" else 0.13) / zoom
    if crop == "mouth":
        lip, chin = head.vertices[head.landmarks["upperLipInner"]], head.vertices[head.landmarks["chin"]]
        centre = (lip + chin) / 2 * np.array([0, 0, 1])
    xy = np.stack([p[..., 0] - centre[0], centre[2] - p[..., 2]], -1)  # camera looks along +Y
    xy = (xy / (2 * half) + 0.5) * size
    order = np.argsort(-p[..., 1].mean(1))  # far (large y) first
    img = Image.new("RGB", (size, size), (40, 44, 52))
    draw = ImageDraw.Draw(img)
    for f in order:
        if n[f, 1] > 0.2 and part[f] == 0:  # skin facing away from the camera
            continue
        col = tuple(int(255 * c * shade[f]) for c in _PART_COLOURS[int(part[f])])
        draw.polygon([tuple(pt) for pt in xy[f]], fill=col)
    return img


def contact_sheet(motions: list[Motion], frames: list[list[int]], labels: list[str], path,
                  size: int = 200, crop: str = "face") -> Path:
    """Rows of rendered frames, one row per motion, with labels."""
    from PIL import Image, ImageDraw
    head = load_head()
    cols = max(len(f) for f in frames)
    sheet = Image.new("RGB", (cols * size, len(motions) * (size + 16)), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    for r, (m, fr, lab) in enumerate(zip(motions, frames, labels)):
        vals = m.select(list(ARKIT_NAMES) + ["headPitch", "headYaw", "headRoll"]).values
        for c, i in enumerate(fr):
            sheet.paste(render_frame(head, vals[i], size, crop=crop), (c * size, r * (size + 16) + 16))
        draw.text((4, r * (size + 16) + 2), lab, fill=(255, 255, 255))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
