"""A Blender without the runtime's packages (the lean zip in a plain Blender, or another
extension's torch that won't load for this Blender): the panel shows one line saying what's missing
and which zip to install, Generate reports the same, never a traceback; the rest still works.
Each case runs in a fresh Blender (bpy) process, installed through Blender's extension install."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, os, sys, tempfile
mode, zpath = sys.argv[1], sys.argv[2]
if mode == "missing":  # no torch, no safetensors anywhere on the path
    sys.modules["torch"] = sys.modules["safetensors"] = None
else:  # another extension's torch, for another platform, first on the shared path
    d = tempfile.mkdtemp()
    os.makedirs(f"{d}/torch")
    with open(f"{d}/torch/__init__.py", "w") as f:
        f.write("raise OSError('DLL load failed while importing _C: The specified module could not be found.')")
    sys.path.insert(0, d)
os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp()
import bpy
bpy.ops.extensions.package_install_files(filepath=zpath, repo="user_default", enable_on_install=True)
addon = sys.modules["bl_ext.user_default.lalia"]


class Layout:  # records what the panel draws
    def __init__(self, log):
        self.__dict__["log"] = log
    def __getattr__(self, name):
        def call(*a, **k):
            self.log.append((name, k.get("text"), k.get("icon")))
            return Layout(self.log)
        return call
    def __setattr__(self, name, value):
        self.log.append(("set", name, value))


def draw():
    log = []
    panel = type("P", (), {"layout": Layout(log)})()
    addon.panel.LALIA_PT_main.draw(panel, bpy.context)
    return [t for n, t, i in log if n == "label" and i == "ERROR"], ("set", "enabled", False) in log


before = draw()
bpy.ops.lalia.add_demo_head()  # the add-on still works for what needs no model
try:
    bpy.ops.lalia.generate()
    error = ""
except RuntimeError as e:
    error = str(e)
print("RESULT " + json.dumps({"before": before, "after": draw(), "error": error,
                              "zip": addon.engine.zip_for_this_blender(), "head": bpy.context.active_object.name}))
"""


@pytest.fixture(scope="module")
def lean_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--no-wheels", "--out", str(out)], check=True,
                   capture_output=True)
    return next(out.glob("lalia-*-nowheels.zip"))


@pytest.mark.parametrize("mode", ["missing", "broken"])
def test_missing_runtime_is_one_clear_line(lean_zip, mode, tmp_path):
    r = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(lean_zip)], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    lines = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    assert lines, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(lines[0][7:])
    zname = res["zip"]
    assert zname.startswith("lalia-0.1.0-") and zname.endswith((".2-5.0.zip", "-later.zip"))
    if mode == "missing":
        expect = "Lalia can't run, torch and safetensors are missing: install " + zname
        (line,), greyed = res["before"]  # one line, and Generate is greyed out
        assert line.startswith(expect) and greyed
    else:
        expect = "Lalia can't run, torch won't load: DLL load failed while importing _C"
        assert res["before"] == [[], False]  # found on the path: only importing it tells
        fix = zname + " (Preferences > Get Extensions > Install from Disk)"
        assert res["after"][0][0].startswith(expect) and res["after"][0][0].endswith(fix)
    assert len(res["after"][0]) == 1 and res["after"][0][0].startswith(expect)
    assert res["error"].startswith("Error: " + expect) and "Traceback" not in res["error"]
    assert "\n" not in res["error"].strip()
    assert "Traceback" not in r.stdout + r.stderr
    assert res["head"]  # the demo head was added


def test_zip_names_agree_with_the_build():
    """The zip the message names is the one build_addon.py makes for this Blender."""
    import importlib.util
    sys.path.insert(0, str(ROOT))
    import build_addon
    spec = importlib.util.spec_from_file_location("lalia_engine", ROOT / "blender_addon" / "engine.py")
    engine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(engine)
    for (major, minor), label in engine.ZIP_SPANS.items():
        assert build_addon.PYTHONS[f"{major}.{minor}"]["label"] == label
    assert set(build_addon.PYTHONS) == {f"{a}.{b}" for a, b in engine.ZIP_SPANS}
    assert engine.zip_for_this_blender() == build_addon.zip_name("linux-x64", f"{sys.version_info[0]}."
                                                                              f"{sys.version_info[1]}")


ENABLE = r"""
import json, os, sys, tempfile
os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp()
import bpy
bpy.ops.extensions.package_install_files(filepath=sys.argv[1], repo="user_default", enable_on_install=True)
presets = bpy.context.scene.lalia.bl_rna.properties["style_preset"].enum_items.keys()
print("RESULT " + json.dumps({"torch": "torch" in sys.modules, "presets": list(presets)}))
"""


def test_enabling_the_addon_leaves_torch_for_the_first_generate(lean_zip, tmp_path):
    """Registering reads the style presets from the model's manifest as plain JSON: importing
    torch there made every Blender start (and every `lalia export` child) 1.7 s slower."""
    from model_core.model.checkpoint import read_manifest
    r = subprocess.run([sys.executable, "-c", ENABLE, str(lean_zip)], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path)
    lines = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    assert lines, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(lines[0][7:])
    assert res["torch"] is False
    shipped = list(read_manifest(ROOT / "model_core" / "assets" / "default_model.safetensors")["style_presets"])
    assert shipped and res["presets"] == ["AUTO", "NONE", *shipped, "REFERENCE"]
