#!/usr/bin/env python3
"""The editing loop measured in real Blender: `python tools/edit_report.py [--out DIR]` (`make edit-report`).

Keys for a 60 s line at the default tolerance (written vs one per frame, and the largest error of
the F-curves as Blender evaluates them against the generated curves) go to docs/editing.json; a
render strip of frames 70-130 of an 8 s line regenerated surprised, under the original, goes to
DIR/regenerate_strip.png, to look at.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STRIP_FRAMES = (50, 66, 80, 100, 120, 136, 150)
RANGE = (70, 130)


def install(out: Path):
    subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--no-wheels", "--out", str(out)], check=True,
                   capture_output=True)
    zpath = next(out.glob("lalia-*nowheels.zip"))
    bpy.ops.extensions.package_install_files(filepath=str(zpath), repo="user_default", enable_on_install=True)
    return sys.modules["bl_ext.user_default.lalia"]


def new_scene(audio: Path):
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = 30
    bpy.ops.lalia.add_demo_head()
    scene.lalia.audio_path = str(audio)
    return scene, bpy.context.active_object


def sparse_keys(lalia, wav60: Path) -> dict:
    """A 60 s line with Reduce keys at the default tolerances, measured by evaluating its F-curves."""
    scene, obj = new_scene(wav60)
    s = scene.lalia
    s.reduce_keys = True
    bpy.ops.lalia.generate()
    keys = lalia.engine.last_generation["keys"]
    face = obj.data.shape_keys.animation_data.nla_tracks[-1].strips[0].action
    motion = lalia.layers.recall(face)[0].resample(30.0)
    worst = 0.0
    for fc in lalia.layers.curves_of(face):
        dense = motion.channel(fc.data_path.split('"')[1])
        got = np.array([fc.evaluate(1 + i) for i in range(len(dense))])
        worst = max(worst, float(np.abs(got - dense).max()))
    arm = obj.parent  # the head: the bone's evaluated quaternion against the generated rotation, as an angle
    head = {fc.array_index: fc for fc in lalia.layers.curves_of(arm.animation_data.nla_tracks[-1].strips[0].action)}
    pyr = np.stack([motion.channel(c) for c in ("headPitch", "headYaw", "headRoll")], 1)
    R = lalia.rig.head_rotations_local(pyr, arm.pose.bones["head"].bone)
    q = np.array([[head[i].evaluate(1 + t) for i in range(4)] for t in range(len(R))])
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    angle = np.degrees(2 * np.arccos(np.clip(np.abs((q * R).sum(1)), 0, 1)))
    return {"blender": bpy.app.version_string, "scene_fps": 30, "seconds": 60,
            "keys_dense": keys["dense"], "keys_written": keys["written"],
            "share": round(keys["written"] / keys["dense"], 4), "tolerance": round(s.key_tolerance, 4),
            "max_shape_key_error": round(worst, 5), "head_tolerance_deg": round(s.head_tolerance, 3),
            "max_head_error_deg": round(float(angle.max()), 4)}


def regenerate_strip(wav8: Path, out: Path) -> Path:
    """Renders of the same frames before and after regenerating RANGE surprised."""
    from bl_ext.user_default.lalia import preview
    from PIL import Image, ImageDraw
    scene, obj = new_scene(wav8)
    s = scene.lalia
    s.animate_head = False  # a still head: only the face changes
    bpy.ops.lalia.generate()
    preview.frame_face(scene, obj, size=200, crop=0.2, focus="face")
    before = preview.render_frames(scene, STRIP_FRAMES, out / "before", "b")
    s.surprised, s.seed = 1.0, 3
    bpy.ops.lalia.regenerate_range(frame_start=RANGE[0], frame_end=RANGE[1])
    after = preview.render_frames(scene, STRIP_FRAMES, out / "after", "a")
    size = 200
    strip = Image.new("RGB", (size * len(STRIP_FRAMES), 2 * size + 40), "white")
    draw = ImageDraw.Draw(strip)
    for i, f in enumerate(STRIP_FRAMES):
        strip.paste(Image.open(before[i]).convert("RGB"), (i * size, 20))
        strip.paste(Image.open(after[i]).convert("RGB"), (i * size, size + 40))
        draw.text((i * size + 5, 2), f"frame {f}" + (" (in range)" if RANGE[0] <= f <= RANGE[1] else ""), fill="black")
    draw.text((5, size + 22), f"after: frames {RANGE[0]}-{RANGE[1]} regenerated, surprised 1.0, seed 3", fill="red")
    path = out / "regenerate_strip.png"
    strip.save(path)
    return path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "out" / "editing"))
    args = ap.parse_args()
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="lalia-edit-")
    import bpy
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lalia = install(out)
    from bl_ext.user_default.lalia.model_core.base.assets import SAMPLE_SPEECH
    from bl_ext.user_default.lalia.model_core.base.audio import load_audio, save_wav
    sample = load_audio(SAMPLE_SPEECH)
    report = {"sixty_seconds": sparse_keys(lalia, save_wav(out / "speech60.wav", np.tile(sample, 3)[: 60 * 16000]))}
    print(json.dumps(report, indent=1))
    print("strip:", regenerate_strip(save_wav(out / "speech8.wav", sample[: 8 * 16000]), out))
    (ROOT / "docs" / "editing.json").write_text(json.dumps(report, indent=1) + "\n")
