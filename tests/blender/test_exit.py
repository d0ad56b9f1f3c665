"""Blender exits cleanly after using the add-on. PyPI's bpy 4.2 frees its space types in a C++
static destructor after Python is finalized; if any EnumProperty with an items callback was ever
registered, that calls into Python (bpy_class_free -> PyGILState_Ensure) and segfaults, with or
without Lalia (docs/install.md has the 15-line reproduction). The add-on registers no such enum."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = r"""
import os, sys, tempfile
os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp()
import bpy
bpy.ops.extensions.package_install_files(filepath=sys.argv[1], repo="user_default", enable_on_install=True)
bpy.ops.lalia.add_demo_head()
bpy.context.scene.lalia.audio_path = sys.argv[2]
bpy.ops.lalia.generate()
print("generated", flush=True)
"""


def test_blender_exits_cleanly_after_generating(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--no-wheels", "--out", str(tmp_path)], check=True,
                   capture_output=True)
    zpath = next(tmp_path.glob("lalia-*-nowheels.zip"))
    audio = ROOT / "model_core" / "assets" / "sample_speech.flac"
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(zpath), str(audio)], capture_output=True, text=True,
                       timeout=600, cwd=tmp_path)
    assert "generated" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    assert r.returncode == 0, f"exit status {r.returncode}: " + r.stderr[-2000:]
