#!/usr/bin/env python3
"""docs/three_characters.png: three copies of the bundled head, each animated by Generate all sound
strips from its own sound strip (three lines of the bundled recording, on channels 1-3, all from
frame 1), rendered with Workbench at the frame where their mouths differ most.

Usage: python tools/three_characters.py EXTENSION_ZIP OUT.png
"""
import sys
import tempfile
from pathlib import Path

zip_path, out_png = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
from blender_session import install_lalia  # noqa: E402

bpy, lalia = install_lalia(zip_path)
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from bl_ext.user_default.lalia import preview  # noqa: E402
from bl_ext.user_default.lalia.model_core.base.assets import SAMPLE_SPEECH  # noqa: E402
from bl_ext.user_default.lalia.model_core.base.audio import load_audio  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

scene = bpy.context.scene
scene.render.fps = 25
audio = load_audio(SAMPLE_SPEECH)
tmp = Path(tempfile.mkdtemp(prefix="lalia-three-"))
names = ("ANNA_001", "BEN_001", "CARL_001")
cuts = ((0.0, 4.0), (8.0, 12.0), (14.0, 18.0))  # seconds of the recording: three different lines
faces = []
for i, name in enumerate(names):
    bpy.ops.lalia.add_demo_head()
    face = bpy.context.active_object
    face.name, face.parent.name = name.split("_")[0].title(), name.split("_")[0].title() + " Rig"
    face.parent.location.x = 0.26 * (i - 1)
    faces.append(face)
se = scene.sequence_editor_create()
strips = lalia.rig.sequencer_strips(se)
for i, (name, (a, b)) in enumerate(zip(names, cuts)):
    path = tmp / f"{name}.wav"
    sf.write(path, audio[int(a * 16000):int(b * 16000)], 16000)
    strips.new_sound(name=name, filepath=str(path), channel=1 + i, frame_start=1)
for name, face in zip(names, faces):
    row = scene.lalia.strip_targets.add()
    row.match, row.target = name.split("_")[0] + "_", face
strips.get(names[1])["lalia_emotion"] = "happy=0.8"
bpy.ops.lalia.generate_strips()
print(scene.lalia.status)

# the frame where the three mouths differ most (spread of jawOpen and mouthSmileLeft)
spread = []
for f in range(1, 100):
    scene.frame_set(f)
    v = np.array([[fc.data.shape_keys.key_blocks[k].value for k in ("jawOpen", "mouthSmileLeft")] for fc in faces])
    spread.append((float(np.ptp(v[:, 0]) + 0.5 * np.ptp(v[:, 1])), f, v[:, 0].round(2).tolist()))
_, frame, jaws = max(spread)
print(f"frame {frame}: jawOpen {jaws}")

preview.frame_face(scene, faces[1], size=256, crop=0.8)
scene.render.resolution_x, scene.render.resolution_y = 960, 400
scene.camera.data.ortho_scale = 0.8
paths = preview.render_frames(scene, [frame], tmp, "three")
img = Image.open(paths[0]).convert("RGB")
draw = ImageDraw.Draw(img)
for i, (name, face) in enumerate(zip(names, faces)):
    x = 480 + int((i - 1) * 0.26 / 0.8 * 960) - 60
    label = f"{face.name}: strip {name}, ch {i + 1}" + (" (happy=0.8)" if i == 1 else "")
    draw.text((x - 30, 372), label, fill=(255, 255, 255))
draw.text((8, 8), f"Generate all sound strips: frame {frame} ({(frame - 1) / 25:.2f} s)", fill=(255, 255, 255))
out_png.parent.mkdir(parents=True, exist_ok=True)
img.quantize(colors=128).save(out_png, optimize=True)
print(f"{out_png}: {out_png.stat().st_size} bytes")
