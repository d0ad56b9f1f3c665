#!/usr/bin/env python3
"""`make demo`: install the built extension into a fresh Blender (bpy), animate the bundled head
speaking the bundled sample, and write out/demo/: .blend, FBX, CSV, contact sheet, short video.

Usage: python tools/demo.py EXTENSION_ZIP OUT_DIR
"""
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

zip_path, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
out.mkdir(parents=True, exist_ok=True)
from blender_session import install_lalia  # noqa: E402

bpy, lalia = install_lalia(zip_path)
from bl_ext.user_default.lalia import preview  # noqa: E402
from bl_ext.user_default.lalia.model_core.base.assets import SAMPLE_SPEECH  # noqa: E402

scene = bpy.context.scene
scene.render.fps = 30
bpy.ops.lalia.add_demo_head()
head = bpy.context.active_object
s = scene.lalia
s.audio_path = str(SAMPLE_SPEECH)
t0 = time.perf_counter()
bpy.ops.lalia.generate()
gen_s = time.perf_counter() - t0
print(f"generated {s.status} in {gen_s:.1f} s")

blend = out / "lalia_demo.blend"
bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True)
bpy.ops.lalia.export_fbx(filepath=str(out / "lalia_demo_unity.fbx"), preset="UNITY")
bpy.ops.lalia.export_csv(filepath=str(out / "lalia_demo_livelink.csv"))

# contact sheet: 12 frames over the first 8 seconds
from PIL import Image, ImageDraw  # noqa: E402

preview.frame_face(scene, head, size=256)
frames_dir = out / "frames"
shutil.rmtree(frames_dir, ignore_errors=True)
sheet_frames = [1 + int(i * 8 * 30 / 12) for i in range(12)]
paths = preview.render_frames(scene, sheet_frames, frames_dir, "sheet")
sheet = Image.new("RGB", (6 * 256, 2 * 272), (20, 20, 20))
draw = ImageDraw.Draw(sheet)
for i, (p, f) in enumerate(zip(paths, sheet_frames)):
    x, y = (i % 6) * 256, (i // 6) * 272
    sheet.paste(Image.open(p).convert("RGB"), (x, y + 16))
    draw.text((x + 4, y + 2), f"frame {f} ({(f - 1) / 30:.2f} s)", fill=(255, 255, 255))
sheet.save(out / "contact_sheet.png")

# a short video with sound: the first 8 seconds
video = None
if shutil.which("ffmpeg"):
    vid_frames = list(range(1, 8 * 30 + 1))
    t1 = time.perf_counter()
    preview.frame_face(scene, head, size=320)
    preview.render_frames(scene, vid_frames, frames_dir, "video")
    video = out / "lalia_demo.mp4"
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-framerate", "30", "-start_number", "1",
                    "-i", str(frames_dir / "video_%05d.png"), "-ss", "0", "-t", "8", "-i", str(SAMPLE_SPEECH),
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(video)], check=True)
    print(f"rendered {len(vid_frames)} frames in {time.perf_counter() - t1:.1f} s")
shutil.rmtree(frames_dir, ignore_errors=True)

summary = {"blend": blend.name, "fbx": "lalia_demo_unity.fbx", "csv": "lalia_demo_livelink.csv",
           "contact_sheet": "contact_sheet.png", "video": video.name if video else None,
           "audio": SAMPLE_SPEECH.name, "generation_seconds": round(gen_s, 2), "status": s.status}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
