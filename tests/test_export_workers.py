"""`lalia export --workers N`: the driver's side, with a stand-in for the Blender child (no bpy
needed; tests/blender/test_export.py does it with real Blender): the same files and records
whatever N, failures listed in input order, no more children than lines, N < 1 refused."""
import json
import time
from pathlib import Path

import numpy as np
import pytest

from model_core.base.motion import ARKIT_NAMES, Motion
from model_core.batch import export
from model_core.cli import main

IDS = ["l0", "bad1", "l1", "bad2", "l2"]


class FakeBlender:
    """Writes an 'FBX' made from the line's id and fails the lines named bad*; the earlier a
    line, the longer it takes, so with several children the lines finish out of order."""
    made: list = []

    def __init__(self, rig, addon):
        self.fps, self.starts = None, []
        FakeBlender.made.append(self)

    def ready(self):
        if not self.starts:
            self.starts.append(0.01)

    def export(self, task):
        time.sleep(0.03 * (len(IDS) - IDS.index(task["id"])))
        if task["id"].startswith("bad"):
            return {"ok": False, "error": f"Blender crashed on this line ({task['id']})"}
        Path(task["fbx"]).write_bytes(f"fbx of {task['id']}".encode())
        return {"ok": True, "seconds": 0.01, "fps": 25.0, "keys": 3, "fbx_frames": 10}

    def close(self):
        pass


@pytest.fixture
def npzs(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "BlenderChild", FakeBlender)
    FakeBlender.made = []
    rng = np.random.default_rng(0)
    paths = []
    for i in IDS:
        paths.append(tmp_path / f"{i}.npz")
        Motion(25.0, ARKIT_NAMES, rng.uniform(0, 1, (10, len(ARKIT_NAMES)))).save(paths[-1])
    return [str(p) for p in paths]


def _results(out: Path) -> list:
    """export.jsonl without the timings (the one thing that differs from run to run)."""
    recs = [json.loads(raw) for raw in (out / export.EXPORTS).read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "timings"} for r in recs]


def test_the_same_files_and_records_whatever_the_workers(npzs, tmp_path, capsys):
    runs = {}
    for n in (1, 2, 9):
        FakeBlender.made = []
        out = tmp_path / f"out{n}"
        assert main(["export", *npzs, "--out", str(out), "--workers", str(n), "-q"]) == 1
        assert len(FakeBlender.made) == min(n, len(IDS))  # 9 asked, 5 lines: 5 children
        text = capsys.readouterr().out
        assert text.index("failed bad1") < text.index("failed bad2")  # input order, not finishing order
        assert f"{min(n, len(IDS))} side by side" in text
        runs[n] = ({p.name: p.read_bytes() for ext in ("fbx", "csv") for p in out.glob(f"*.{ext}")}, _results(out))
    assert runs[1] == runs[2] == runs[9]
    files, recs = runs[1]
    assert [r["id"] for r in recs] == IDS and sorted(files) == sorted(
        f"{i}.{ext}" for i in IDS if i.startswith("l") for ext in ("fbx", "csv"))
    # a rerun with more workers redoes the failed lines only
    FakeBlender.made = []
    assert main(["export", *npzs, "--out", str(tmp_path / "out1"), "--workers", "2", "-q"]) == 1
    assert [r["status"] for r in _results(tmp_path / "out1")] == ["skipped", "failed", "skipped", "failed", "skipped"]
    assert len(FakeBlender.made) == 2


def test_workers_below_one_are_refused(npzs, tmp_path, capsys):
    assert main(["export", npzs[0], "--out", str(tmp_path / "o"), "--workers", "0", "-q"]) == 2
    assert "--workers 0: give 1 or more" in capsys.readouterr().err
    assert not FakeBlender.made and not (tmp_path / "o").exists()
