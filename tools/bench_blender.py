#!/usr/bin/env python3
"""`make bench`: Generate from audio in real Blender (bpy), through the installed extension.

60 s of the bundled real speech (repeated) at 30 fps on the demo head: the model's part
(decode, speech encoder, sampler) and Blender's part (resampling to the scene rate, writing the
shape-key and head-bone keyframes, NLA placement, the sound strip), timed separately after a
warm-up generation. Prints a table; `--json` prints JSON.

Usage: python tools/bench_blender.py EXTENSION_ZIP [--seconds 60] [--json] [--out REPORT.json]
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument("zip")
ap.add_argument("--seconds", type=float, default=60.0)
ap.add_argument("--json", action="store_true")
ap.add_argument("--out", help="also write the JSON report here (Blender prints its own lines to stdout)")
args = ap.parse_args()
from blender_session import install_lalia  # noqa: E402

bpy, lalia = install_lalia(args.zip, prefix="lalia-bench-")
import numpy as np  # noqa: E402
from bl_ext.user_default.lalia.model_core.base.assets import SAMPLE_SPEECH  # noqa: E402
from bl_ext.user_default.lalia.model_core.base.audio import load_audio, save_wav  # noqa: E402

tmp = Path(tempfile.mkdtemp())
base = load_audio(SAMPLE_SPEECH)
audio = np.tile(base, int(np.ceil(args.seconds * 16000 / len(base))))[: int(args.seconds * 16000)]
wav = save_wav(tmp / "speech.wav", audio)
scene = bpy.context.scene
scene.render.fps = 30
bpy.ops.lalia.add_demo_head()
s = scene.lalia
s.audio_path = str(save_wav(tmp / "warm.wav", base[:16000 * 4]))
bpy.ops.lalia.generate()  # warm-up: loads the model and the speech encoder

# the operator's own path: timed whole, and its two halves through the same functions
s.audio_path = str(wav)
t0 = time.perf_counter()
bpy.ops.lalia.generate()
total = time.perf_counter() - t0
tm = lalia.engine.last_generation["timings"]
model_s = tm.audio + tm.encoder + tm.sampler
report = {"audio_seconds": args.seconds, "scene_fps": 30, "operator_seconds": round(total, 3),
          "model_seconds": round(model_s, 3),
          "model_split": {"audio_decoding": round(tm.audio, 3), "speech_encoder": round(tm.encoder, 3),
                          "sampler": round(tm.sampler, 3)},
          "keyframes_and_scene_seconds": round(total - model_s, 3),
          "frames_keyed": int(args.seconds * 30), "status": s.status,
          "blender": bpy.app.version_string}
if args.out:
    Path(args.out).write_text(json.dumps(report, indent=1))
if args.json:
    print(json.dumps(report, indent=1))
else:
    print(f"Blender {report['blender']}: Generate from audio, {args.seconds:.0f} s at 30 fps: {total:.2f} s "
          f"(model {model_s:.2f} s: decode {tm.audio:.3f}, encoder {tm.encoder:.3f}, sampler {tm.sampler:.3f}; "
          f"keyframes, NLA and sound strip {total - model_s:.2f} s)")
