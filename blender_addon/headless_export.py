"""The Blender side of `lalia export`, run as a child process of model_core/batch/export.py with the
bpy module (it lives with the add-on so that Blender stays out of model_core):
bpy never loads into the caller, and a Blender crash costs the line it was on (the driver starts
a fresh child for the next one).

It runs the add-on's own code (rig mapping, key writing, FBX export), loaded as a package from
the add-on's folder, so an exported FBX is what the Export FBX button would write for the same
motion on the same rig.

Protocol: argv[1] is a JSON object {addon, rig, object, head_bone, preset}. The child answers on
its original stdout (Blender's own prints are sent to stderr): first one JSON line, {"ready":
true, ...} or {"ready": false, "error": ...}; then, for every task line on stdin ({id, npz, fbx,
fps}), one answer line ({"ok": true, ...} or {"ok": false, "error": ...}). It ends when stdin
closes. This file imports only the standard library until it has bpy and the add-on.

Every FBX depends only on its own line (`lalia export --workers N` writes the same bytes whichever
child exports which lines): see `reproducible_fbx`.
"""
from __future__ import annotations

import datetime
import importlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

PACKAGE = "lalia_export_addon"  # the add-on's package name in the child (never the installed extension's)
FBX_TIME = datetime.datetime(1970, 1, 1, 10, 0)  # the CreationTime that Blender's FBX writer itself fixes


def load_addon(folder: Path):
    """The add-on as an importable package, without installing it into Blender: a source
    checkout's blender_addon/ (whose `.model_core` is the checkout's model_core, beside it) or an
    unpacked extension (model_core inside). Nothing is registered: only its functions are used."""
    folder = Path(folder)
    if not (folder / "__init__.py").is_file() or not (folder / "rig.py").is_file():
        raise FileNotFoundError(f"{folder} is not the Lalia add-on's folder (no __init__.py and rig.py)")
    search = [str(folder)] + ([] if (folder / "model_core").is_dir() else [str(folder.parent)])
    spec = importlib.util.spec_from_file_location(PACKAGE, folder / "__init__.py", submodule_search_locations=search)
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    spec.loader.exec_module(module)
    return module


def _part(name: str):
    return importlib.import_module(f"{PACKAGE}.{name}")


def reproducible_fbx():
    """Blender's FBX exporter stamps the time of writing in the header, and numbers the FBX's
    objects by hash() of their names (the driver fixes PYTHONHASHSEED), remembering the numbers
    for the life of the process, so a name's number could depend on the lines exported before it.
    The stamp is fixed here; the returned function forgets the numbers (call it before each FBX).
    An exporter without these internals is left as it is."""
    try:
        fbx_bin = importlib.import_module("io_scene_fbx.export_fbx_bin")
    except ImportError:
        return lambda: None
    header = getattr(fbx_bin, "fbx_header_elements", None)
    if header is not None:
        fbx_bin.fbx_header_elements = lambda root, scene_data, time=None: header(root, scene_data, FBX_TIME)
    tables = [getattr(fbx_bin.fbx_utils, t, {}) for t in ("_keys_to_uuids", "_uuids_to_keys")]

    def forget() -> None:
        for t in tables:
            t.clear()
    return forget


class Exporter:
    """The rig, opened once; then one FBX per motion, each from a clean rig (what a line adds is
    removed again by the add-on's own `remove_generation`)."""

    def __init__(self, cfg: dict):
        import bpy
        load_addon(Path(cfg["addon"]))
        self.bpy = bpy
        self.rig, self.ops, self.fbx = _part("rig"), _part("operators"), _part("fbx")
        self.Motion = _part("model_core.base.motion").Motion
        self.LaliaError = _part("model_core.base.errors").LaliaError
        self.preset = cfg.get("preset", "UNITY")
        self.forget_fbx_ids = reproducible_fbx()
        if cfg.get("rig"):
            bpy.ops.wm.open_mainfile(filepath=cfg["rig"], load_ui=False)
            obj = self._object(cfg["rig"], cfg.get("object") or "")
        else:
            bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
            obj, _ = _part("demo_head").build_demo_head(bpy.context)
        self.face = self.ops.face_mesh(obj)
        self.armature = self.rig.find_armature(self.face)
        self.head_bone = self._head_bone(cfg.get("head_bone"))

    def _object(self, rig: str, name: str):
        bpy = self.bpy
        obj = bpy.data.objects.get(name)
        if obj is None:
            faces = sorted(o.name for o in bpy.data.objects if o.type in ("MESH", "ARMATURE"))
            listed = ", ".join(f"'{n}'" for n in faces[:12]) + (" ..." if len(faces) > 12 else "")
            raise self.LaliaError(f"{Path(rig).name} has no object '{name}'; its meshes and armatures: "
                                  f"{listed or 'none'}")
        if obj.name not in bpy.context.view_layer.objects:
            raise self.LaliaError(f"'{name}' is not in the scene '{bpy.context.scene.name}' that {Path(rig).name} "
                                  "opens with; link it there (or save the file with its scene active)")
        return obj

    def _head_bone(self, asked: str | None) -> str:
        """--head-bone; else the head bone the panel saved in the file; else the add-on's guess."""
        arm = self.armature
        if arm is None:
            return ""
        saved = self.bpy.context.scene.get("lalia", {}).get("head_bone", "") if asked is None else asked
        bone = saved or self.rig.guess_head_bone(arm)
        if bone and bone not in arm.pose.bones:
            raise self.LaliaError(f"Armature '{arm.name}' has no bone '{bone}'; bones: "
                                  f"{', '.join(b.name for b in arm.pose.bones[:12])}")
        return bone

    def describe(self) -> dict:
        key = self.face.data.shape_keys
        return {"object": self.face.name, "armature": self.armature.name if self.armature else None,
                "head_bone": self.head_bone, "shape_keys": len(key.key_blocks) - 1 if key else 0,
                "blender": self.bpy.app.version_string}

    def export(self, task: dict) -> dict:
        """One motion file -> one FBX: keyed as the active actions from frame 0 at the FBX's frame
        rate (so the take starts at 0 s, with the line's audio), baked over exactly its frames; the
        rig and the scene are put back afterwards."""
        scene = self.bpy.context.scene
        motion = self.Motion.read(task["npz"])
        fps = float(task.get("fps") or motion.fps)
        kept = (scene.render.fps, scene.render.fps_base, scene.frame_start, scene.frame_end, scene.frame_current)
        scene.render.fps = max(1, round(fps))
        scene.render.fps_base = scene.render.fps / fps
        made = None
        try:
            made = self.rig.apply_motion(scene, self.face, self.ops.motion_for_rig(motion, self.face, self.armature),
                                         name=task["id"], armature=self.armature, head_bone=self.head_bone,
                                         placement="ASSIGN", frame_start=0)
            scene.frame_start, scene.frame_end = made["frames"]
            self.forget_fbx_ids()
            self.fbx.write_fbx(self.bpy.context, self.face, task["fbx"], self.preset)
            first, last = made["frames"]
            return {"fbx_frames": last - first + 1, "fps": fps, "keys": made["keys"]["written"]}
        finally:
            if made is not None:
                self.rig.remove_generation(made)
            (scene.render.fps, scene.render.fps_base, scene.frame_start, scene.frame_end) = kept[:4]
            scene.frame_set(kept[4])


def _why(e: BaseException, lalia_error) -> str:
    if lalia_error is not None and isinstance(e, lalia_error):
        return str(e)
    return f"{type(e).__name__}: {e}"


def main() -> None:
    cfg = json.loads(sys.argv[1])
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # Blender's and the FBX exporter's prints go to stderr; the replies stay clean

    def send(msg: dict) -> None:
        replies.write(json.dumps(msg) + "\n")
        replies.flush()

    t0 = time.perf_counter()
    try:
        import bpy  # noqa: F401  (first, so its absence is named as such)
    except ImportError as e:
        send({"ready": False, "error": f"the bpy module (Blender as a Python module) doesn't import in "
                                       f"{sys.executable}: {e}. pip install bpy (4.2 or later, Python 3.11)"})
        return
    lalia_error = None
    try:
        exporter = Exporter(cfg)
        lalia_error = exporter.LaliaError
    except Exception as e:
        lalia_error = getattr(sys.modules.get(f"{PACKAGE}.model_core.base.errors"), "LaliaError", None)
        send({"ready": False, "error": _why(e, lalia_error)})
        return
    send({"ready": True, "seconds": round(time.perf_counter() - t0, 3), **exporter.describe()})
    for raw in sys.stdin:
        task = json.loads(raw)
        t = time.perf_counter()
        try:
            info = exporter.export(task)
            send({"ok": True, "seconds": round(time.perf_counter() - t, 3), **info})
        except Exception as e:  # the line's own problem; the next line gets a clean rig all the same
            send({"ok": False, "error": _why(e, lalia_error), "seconds": round(time.perf_counter() - t, 3)})


if __name__ == "__main__":
    main()
