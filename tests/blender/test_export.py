"""`lalia export`: a batch's lines -> FBX (Blender in a child process) and Live Link CSV. Each FBX
is imported again here with bpy and its shape-key and head-bone animation compared with the
motion it came from."""
import json
import os
import time

import bpy
import numpy as np
import pytest
import soundfile as sf

from model_core.base.motion import ARKIT_NAMES, HEAD_ROTATION_NAMES, Motion, head_rotation_matrices, read_live_link_csv
from model_core.cli import main


@pytest.fixture(scope="module")
def batch_out(tmp_path_factory, sample_audio):
    """Three short lines (2-2.5 s of the real recording) through `lalia batch`."""
    root = tmp_path_factory.mktemp("export")
    rows = ["id,audio,seed"]
    for i, (a, b) in enumerate(((0, 2), (8, 10.5), (14, 16))):
        sf.write(root / f"l{i}.wav", sample_audio[int(a * 16000):int(b * 16000)], 16000)
        rows.append(f"line{i},l{i}.wav,{i}")
    (root / "lines.csv").write_text("\n".join(rows) + "\n")
    assert main(["batch", str(root / "lines.csv"), "--out", str(root / "out"), "-q"]) == 0
    return root / "out"


def _records(folder):
    return {r["id"]: r for r in map(json.loads, (folder / "export.jsonl").read_text().splitlines())}


def _imported_animation(fbx, n_frames):
    """Import an FBX into an empty scene; its shape-key values (frames x 52) and the head bone's
    rotation about its rest in world axes (frames x 3 x 3), at the frames the importer keyed
    (it places FBX time 0 at frame 1)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=str(fbx))
    mesh = next(o for o in bpy.data.objects if o.type == "MESH")
    arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    kb = mesh.data.shape_keys.key_blocks
    shapes, heads = np.zeros((n_frames, 52)), np.zeros((n_frames, 3, 3))
    scene = bpy.context.scene
    for t in range(n_frames):
        scene.frame_set(t + 1)
        shapes[t] = [kb[n].value for n in ARKIT_NAMES]
        pb = arm.pose.bones["head"]
        posed = (arm.matrix_world @ pb.matrix).to_3x3()
        rest = (arm.matrix_world @ pb.bone.matrix_local).to_3x3()
        heads[t] = np.array(posed @ rest.inverted())
    return shapes, heads


def test_export_round_trip_resume_and_timing(batch_out):
    t0 = time.perf_counter()
    assert main(["export", str(batch_out), "-q"]) == 0
    first_run = time.perf_counter() - t0
    out = batch_out / "export"
    recs = _records(out)
    assert sorted(recs) == ["line0", "line1", "line2"] and {r["status"] for r in recs.values()} == {"ok"}
    for line_id, rec in recs.items():
        motion = Motion.read(batch_out / f"{line_id}.npz")
        assert rec["fbx_frames"] == motion.num_frames and rec["fps"] == 25.0
        shapes, heads = _imported_animation(out / f"{line_id}.fbx", motion.num_frames)
        want = motion.select(ARKIT_NAMES).values
        assert np.ptp(want[:, ARKIT_NAMES.index("jawOpen")]) > 0.1  # a line that really speaks
        assert np.abs(shapes - want).max() < 1e-4, line_id
        R = head_rotation_matrices(motion.select(HEAD_ROTATION_NAMES).values)
        assert np.abs(R - np.eye(3)).max() > 0.01  # the head really turns
        assert np.abs(heads - R).max() < 1e-3, line_id
        csv = read_live_link_csv(out / f"{line_id}.csv")
        assert np.abs(csv.select(ARKIT_NAMES).values - want).max() < 1e-5
        assert rec["outputs"]["fbx"]["bytes"] == (out / f"{line_id}.fbx").stat().st_size
    # a rerun does nothing (no Blender started); a deleted FBX is made again, and only it
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.fbx")}
    t0 = time.perf_counter()
    assert main(["export", str(batch_out), "-q"]) == 0
    rerun = time.perf_counter() - t0
    assert {r["status"] for r in _records(out).values()} == {"skipped"}
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.fbx")} == stamps
    (out / "line1.fbx").unlink()
    assert main(["export", str(batch_out), "-q"]) == 0
    assert {k: r["status"] for k, r in _records(out).items()} == {"line0": "skipped", "line1": "ok", "line2": "skipped"}
    # `batch --fbx` chains the export into OUT/export: here every line of both is done already
    manifest = batch_out.parent / "lines.csv"
    assert main(["batch", str(manifest), "--out", str(batch_out), "-q", "--fbx"]) == 0
    assert {r["status"] for r in _records(out).values()} == {"skipped"}
    print(f"export: 3 lines {first_run:.2f} s (Blender per line: "
          f"{[r['timings']['blender'] for r in recs.values()]}), rerun {rerun:.2f} s")


@pytest.fixture(scope="module")
def user_rig(addon, tmp_path_factory):
    """A user's file: the demo head renamed, its rig named otherwise, a cube beside it, and an
    action of the user's own on the face."""
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.lalia.add_demo_head()
    face = bpy.context.active_object
    face.name, face.parent.name = "Hero Face", "Hero Rig"
    key = face.data.shape_keys
    key.key_blocks["browInnerUp"].value = 0.7
    key.key_blocks["browInnerUp"].keyframe_insert("value", frame=5)
    key.animation_data.action.name = "hand made"
    bpy.ops.mesh.primitive_cube_add()
    path = tmp_path_factory.mktemp("rig") / "hero.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


def test_a_users_rig_and_bad_inputs(batch_out, user_rig, tmp_path, capsys):
    good = [str(batch_out / f"line{i}.npz") for i in (0, 2)]
    corrupt = tmp_path / "broken.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is no zip")
    out = tmp_path / "out"
    # the armature names the face it deforms; a damaged npz fails its own line only
    rc = main(["export", *good, str(corrupt), "--out", str(out), "--rig", str(user_rig), "--object", "Hero Rig",
               "--preset", "unreal", "--fps", "30", "-q"])
    assert rc == 1
    recs = _records(out)
    assert recs["line0"]["status"] == recs["line2"]["status"] == "ok" and recs["line0"]["fps"] == 30.0
    assert recs["broken"]["status"] == "failed" and "not a Lalia motion npz" in recs["broken"]["error"]
    assert "failed broken" in capsys.readouterr().out
    # the user's action on the face was pushed aside for the export and is the active one again
    bpy.ops.wm.open_mainfile(filepath=str(user_rig))
    assert bpy.data.objects["Hero Face"].data.shape_keys.animation_data.action.name == "hand made"
    assert user_rig.stat().st_mtime < os.path.getmtime(out / "line0.fbx")  # the rig file itself untouched
    motion = Motion.read(batch_out / "line0.npz").resample(30.0)
    shapes, _ = _imported_animation(out / "line0.fbx", motion.num_frames)
    assert np.abs(shapes[:, ARKIT_NAMES.index("jawOpen")] - motion.channel("jawOpen")).max() < 1e-4

    def error(*args):
        assert main(["export", good[0], "--out", str(tmp_path / "bad"), "-q", *args]) == 2
        msg = capsys.readouterr().err.strip()
        assert "Traceback" not in msg and len(msg.splitlines()) <= 2, msg
        return msg
    assert "Rig file not found" in error("--rig", str(tmp_path / "nope.blend"), "--object", "Hero Face")
    msg = error("--rig", str(user_rig), "--object", "Villain")
    assert "has no object 'Villain'" in msg and "'Hero Face'" in msg
    assert "'Cube' has no shape keys" in error("--rig", str(user_rig), "--object", "Cube")
    assert "--rig needs --object" in error("--rig", str(user_rig))
    assert not (tmp_path / "bad").exists() or not list((tmp_path / "bad").glob("*.fbx"))


def test_a_blender_crash_costs_one_line(batch_out, tmp_path):
    """The child Blender dies (here: killed) while it holds a line: that line fails and says so,
    and a fresh Blender exports the next one."""
    import signal

    from model_core.batch.export import BlenderChild, Rig, find_addon
    child = BlenderChild(Rig(), find_addon(None))
    try:
        child.ready()
        os.kill(child.proc.pid, signal.SIGKILL)
        task = {"id": "line0", "npz": str(batch_out / "line0.npz"), "fps": None}
        lost = child.export({**task, "fbx": str(tmp_path / "a.fbx")})
        assert not lost["ok"] and "Blender crashed on this line" in lost["error"] and "SIGKILL" in lost["error"]
        assert child.export({**task, "fbx": str(tmp_path / "b.fbx")})["ok"]
        assert len(child.starts) == 2 and (tmp_path / "b.fbx").stat().st_size > 100_000
    finally:
        child.close()


def test_workers_write_the_same_bytes(batch_out, tmp_path, capsys):
    """Two Blender children (one of them exporting two lines in a row) write the same files, byte
    for byte, and the same records as one child does: an FBX depends only on its own line."""
    runs = []
    for n in (1, 2):
        out = tmp_path / f"workers{n}"
        assert main(["export", str(batch_out), "--out", str(out), "--workers", str(n), "-q"]) == 0
        assert f"{n} side by side" in capsys.readouterr().out
        files = {p.name: p.read_bytes() for ext in ("fbx", "csv") for p in out.glob(f"*.{ext}")}
        recs = [{k: v for k, v in rec.items() if k != "timings"} for rec in _records(out).values()]
        runs.append((files, recs))
    assert len(runs[0][0]) == 6 and [r["id"] for r in runs[0][1]] == ["line0", "line1", "line2"]
    assert runs[0] == runs[1]
