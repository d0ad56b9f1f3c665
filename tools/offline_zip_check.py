#!/usr/bin/env python3
"""An offline zip works in a Blender that has nothing else: `python tools/offline_zip_check.py ZIP`,
run with a bpy venv WITHOUT torch (tools/blender_matrix.py --offline makes one). Blender installs
the zip's wheels itself (Install from Disk), then Lalia generates from the bundled sample speech
and the face really moves. Prints one JSON line; exit status 0 when it all worked."""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(zpath: str) -> dict:
    if importlib.util.find_spec("torch") is not None:
        raise SystemExit("this Python already has torch: the check needs a bare bpy venv")
    home = tempfile.mkdtemp(prefix="lalia-offline-")
    os.environ["BLENDER_USER_RESOURCES"] = home
    import bpy
    t = time.time()
    bpy.ops.extensions.package_install_files(filepath=zpath, repo="user_default", enable_on_install=True)
    installed = time.time() - t
    addon = sys.modules["bl_ext.user_default.lalia"]
    problem = addon.engine.runtime_problem()
    import torch
    bpy.ops.lalia.add_demo_head()
    obj = bpy.context.active_object
    bpy.context.scene.lalia.audio_path = str(ROOT / "model_core" / "assets" / "sample_speech.flac")
    t = time.time()
    bpy.ops.lalia.generate()
    key = obj.data.shape_keys.key_blocks["jawOpen"]
    jaw = []
    for f in range(1, 200, 3):
        bpy.context.scene.frame_set(f)
        jaw.append(key.value)
    return {"zip": Path(zpath).name, "blender": bpy.app.version_string, "python": sys.version.split()[0],
            "runtime_problem": problem, "torch": torch.__version__,
            "torch_from_the_zip": Path(torch.__file__).resolve().is_relative_to(Path(home).resolve()),
            "install_s": round(installed, 1), "generate_s": round(time.time() - t, 1),
            "jaw_range": round(max(jaw) - min(jaw), 3)}


if __name__ == "__main__":
    r = main(sys.argv[1])
    r["ok"] = not r["runtime_problem"] and r["torch_from_the_zip"] and r["jaw_range"] > 0.15
    print("RESULT " + json.dumps(r), flush=True)
    sys.exit(0 if r["ok"] else 1)
