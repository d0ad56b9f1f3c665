#!/usr/bin/env python3
"""A close-up strip of the mouth on a real clip: the bundled head rendered with Blender's
Workbench (bpy) at the clip's bilabial frames (/p b m/, mid-phone) and open-vowel frames
(/aa ae ao aw ay/), one row per system: the shipped model from the audio alone, with the
clip's transcript, and the procedural animator on the reference alignment (the upper reference).

Usage: python tools/mouth_strip.py --set REALSPEECH_DIR --clip ID --out docs/mouth_strip.png
"""
import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OPEN_VOWELS = ("aa", "ae", "ao", "aw", "ay")
CELL = (150, 110)


def head_object(bpy, head):
    """The bundled head as a mesh with its 52 ARKit shape keys (no rig: the strip is the mouth)."""
    from model_core.base.motion import ARKIT_NAMES
    polys = [[int(i) for i in p if i >= 0] for p in head.polygons]
    mesh = bpy.data.meshes.new("Head")
    mesh.from_pydata(head.vertices.tolist(), [], polys)
    obj = bpy.data.objects.new("Head", mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.shape_key_add(name="Basis")
    for k, name in enumerate(ARKIT_NAMES):
        key = obj.shape_key_add(name=name)
        key.data.foreach_set("co", (head.vertices + head.targets[k]).ravel())
    return obj


def pick_frames(phones, n_frames, fps=25.0, each=4):
    """Mid-phone frames of up to `each` bilabials and `each` open vowels, in time order."""
    def mids(symbols):
        out = [(int(round((a + b) / 2 * fps)), s) for s, a, b in phones if s in symbols]
        step = max(1, len(out) // each)
        return [(f, s) for f, s in out[::step][:each] if f < n_frames]
    return sorted(mids(("p", "b", "m")) + mids(OPEN_VOWELS))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", required=True)
    ap.add_argument("--clip", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    import bpy
    from PIL import Image, ImageDraw

    from model_core import load_generator
    from model_core.base.head import load_head
    from model_core.base.motion import ARKIT_NAMES
    from model_core.data.real_speech import MANIFEST_IN_REPO, load_set
    from model_core.evaluation.lipsync_eval import _frames, animator_motion
    clip = next(c for c in load_set(Path(a.set), MANIFEST_IN_REPO) if c["id"] == a.clip)
    gen = load_generator()
    audio_only = gen.generate(clip["audio16k"], seed=0)
    with_text = gen.generate(clip["audio16k"], seed=0, transcript=clip["transcript"])
    rows = [("audio only", audio_only.motion),
            ("with transcript" + ("" if with_text.info["transcript"]["used"] else " (NOT USED)"), with_text.motion),
            ("animator (reference)", animator_motion(clip["phones"], _frames(clip), clip["audio16k"]))]
    frames = pick_frames(clip["phones"], len(audio_only.motion.values))

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    head = load_head()
    obj = head_object(bpy, head)
    lip, chin = head.vertices[head.landmarks["upperLipInner"]], head.vertices[head.landmarks["chin"]]
    centre = (lip + chin) / 2
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    cam.data.type, cam.data.ortho_scale = "ORTHO", 0.085
    cam.location = (float(centre[0]), float(head.vertices[:, 1].min()) - 1.0, float(centre[2]) + 0.004)
    cam.rotation_euler = (np.pi / 2, 0, 0)
    scene.camera = cam
    r = scene.render
    r.engine = "BLENDER_WORKBENCH"
    r.resolution_x, r.resolution_y, r.resolution_percentage = CELL[0], CELL[1], 100
    scene.display.shading.light = "STUDIO"
    tmp = Path(a.out).with_suffix(".tmp.png")
    label_w, head_h = 130, 34
    sheet = Image.new("RGB", (label_w + CELL[0] * len(frames), head_h + CELL[1] * len(rows)), (24, 24, 28))
    draw = ImageDraw.Draw(sheet)
    keys = obj.data.shape_keys.key_blocks
    for j, (f, sym) in enumerate(frames):
        kind = "bilabial" if sym in ("p", "b", "m") else "open vowel"
        draw.text((label_w + j * CELL[0] + 6, 4), f"/{sym}/ {kind}", fill=(255, 220, 120) if kind == "bilabial"
                  else (140, 200, 255))
        draw.text((label_w + j * CELL[0] + 6, 18), f"frame {f} ({f / 25:.2f} s)", fill=(200, 200, 200))
    for i, (name, motion) in enumerate(rows):
        draw.text((6, head_h + i * CELL[1] + CELL[1] // 2 - 6), name, fill=(255, 255, 255))
        gaps = head.lip_gap(motion.values[:, :52])
        for j, (f, _) in enumerate(frames):
            w = motion.values[min(f, len(motion.values) - 1), :52]
            for k, n in enumerate(ARKIT_NAMES):
                keys[n].value = float(w[k])
            r.filepath = str(tmp)
            bpy.ops.render.render(write_still=True)
            cell = Image.open(tmp).convert("RGB")
            ImageDraw.Draw(cell).text((4, CELL[1] - 14), f"gap {gaps[min(f, len(gaps) - 1)]:.1f} mm",
                                      fill=(255, 255, 255))
            sheet.paste(cell, (label_w + j * CELL[0], head_h + i * CELL[1]))
    tmp.unlink(missing_ok=True)
    sheet.quantize(colors=64).save(a.out, optimize=True)
    print(f"{a.out}: {clip['id']} ({clip['speaker']}), frames {frames}")


if __name__ == "__main__":
    main()
