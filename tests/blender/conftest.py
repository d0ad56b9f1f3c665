"""Fixtures for the add-on tests in real Blender: the extension installed once per session from
the lean zip, through Blender's own extension install."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="lalia-bl-"))
import bpy  # noqa: E402  (after BLENDER_USER_RESOURCES is set)


@pytest.fixture(scope="session")
def addon(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--no-wheels", "--out", str(out)], check=True)
    zpath = next(out.glob("lalia-*.zip"))
    bpy.ops.extensions.package_install_files(filepath=str(zpath), repo="user_default", enable_on_install=True)
    assert hasattr(bpy.ops, "lalia") and hasattr(bpy.types.Scene, "lalia")
    return sys.modules["bl_ext.user_default.lalia"]


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory, sample_audio):
    """8 s of the real LibriVox recording at 44.1 kHz stereo (an unusual rate and channel count)."""
    import soundfile as sf

    from model_core.base.audio import resample
    p = tmp_path_factory.mktemp("audio") / "austen.wav"
    x = resample(sample_audio[: 8 * 16000], 16000, 44100)
    sf.write(p, np.stack([x, x], 1), 44100)
    return p


@pytest.fixture(autouse=True)
def no_blender_deprecations():
    """Nothing we (or these tests) do uses API that Blender says goes away (5.3 warns for 6.0)."""
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    gone = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught if "expected to be removed" in str(w.message)]
    assert not gone, gone


@pytest.fixture
def scene(addon):
    bpy.ops.wm.read_homefile(use_empty=True)
    sc = bpy.context.scene
    sc.render.fps = 30
    return sc
