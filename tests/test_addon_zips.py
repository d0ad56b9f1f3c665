"""The add-on zips open, and install and run in every Blender they claim (tests/addon_zip_check.py):
the lean zip built here, every zip in dist/ (or in $LALIA_ZIPS: `make addon-all` fills dist/), and
deliberately broken zips the check must refuse."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from addon_zip_check import blenders_of, problems, wheel_fits  # noqa: E402

ZIPS = sorted(Path(os.environ.get("LALIA_ZIPS", ROOT / "dist")).glob("lalia-*.zip"))


@pytest.fixture(scope="module")
def lean_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lean")
    subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--no-wheels", "--out", str(out)], check=True,
                   capture_output=True)
    return next(out.glob("lalia-*-nowheels.zip"))


def test_lean_zip(lean_zip):
    assert problems(lean_zip) == []


@pytest.mark.parametrize("zpath", ZIPS, ids=[z.name for z in ZIPS])
def test_built_zip(zpath):
    assert problems(zpath) == []


def test_offline_zips_cover_every_blender_once():
    """Of the zips present for a platform, no two claim the same Blender (the user can't pick wrong)."""
    seen = {}
    for z in ZIPS:
        m = __import__("tomllib").loads(zipfile.ZipFile(z).read("blender_manifest.toml").decode())
        for plat in m.get("platforms", []):
            for b in blenders_of(m):
                assert (plat, b) not in seen, (z.name, seen[(plat, b)])
                seen[(plat, b)] = z.name


def test_wheel_tags():
    assert wheel_fits("torch-2.13.0-cp313-cp313-win_amd64.whl", "windows-x64", "3.13")
    assert not wheel_fits("torch-2.13.0-cp311-cp311-win_amd64.whl", "windows-x64", "3.13")
    assert not wheel_fits("torch-2.13.0-cp313-cp313-win_amd64.whl", "linux-x64", "3.13")
    assert wheel_fits("safetensors-0.8.0-cp310-abi3-macosx_11_0_arm64.whl", "macos-arm64", "3.11")
    assert not wheel_fits("safetensors-0.8.0-cp310-abi3-macosx_11_0_x86_64.whl", "macos-arm64", "3.11")
    assert wheel_fits("x-1-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", "linux-x64", "3.11")
    assert wheel_fits("soundfile-0.14.0-py2.py3-none-win_amd64.whl", "windows-x64", "3.13")


# ---- the check must be able to fail -------------------------------------------------------------
def _wheel(name: str, requires=(), top=None, tags=None) -> bytes:
    """A minimal wheel: a METADATA with its requirements, a WHEEL with its tags (those of its name
    unless given) and one importable top-level package."""
    import io
    dist, version = name.split("-")[:2]
    py, abi, plat = name[:-4].split("-")[-3:]
    tags = tags or [f"{a}-{b}-{c}" for a in py.split(".") for b in abi.split(".") for c in plat.split(".")]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as w:
        w.writestr(f"{dist}-{version}.dist-info/METADATA", "Metadata-Version: 2.1\nName: {}\nVersion: {}\n{}".format(
            dist, version, "".join(f"Requires-Dist: {r}\n" for r in requires)))
        w.writestr(f"{dist}-{version}.dist-info/WHEEL", "Wheel-Version: 1.0\n" + "".join(f"Tag: {t}\n" for t in tags))
        w.writestr(f"{top or dist}/__init__.py", "")
    return buf.getvalue()


GOOD_WHEELS = {  # Windows, Python 3.13 (Blender 5.1+)
    "torch-2.13.0-cp313-cp313-win_amd64.whl": (["filelock", "typing-extensions>=4.10.0"], None),
    "filelock-4.3.1-py3-none-any.whl": ([], None),
    "typing_extensions-4.16.0-py3-none-any.whl": ([], "typing_extensions"),
    "safetensors-0.8.0-cp310-abi3-win_amd64.whl": (['numpy>=1.21.6 ; extra == "numpy"'], None),
    "soundfile-0.14.0-py2.py3-none-win_amd64.whl": (["cffi>=1.0", "numpy"], None),
    "cffi-2.1.1-cp313-cp313-win_amd64.whl": (['pycparser; implementation_name != "PyPy"'], None),
    "pycparser-3.12-py3-none-any.whl": ([], None),
    "pocketsphinx-5.1.1-cp313-cp313-win_amd64.whl": (["sounddevice"], None),
    "sounddevice-0.5.6-py3-none-win_amd64.whl": (["cffi", 'numpy; extra == "numpy"'], None),
}


def _offline_zip(lean_zip: Path, out: Path, wheels=None, manifest_edit=None, drop=(), name=None) -> Path:
    """The lean zip made into a Windows 5.1+ offline zip with fake wheels, optionally broken."""
    wheels = dict(GOOD_WHEELS if wheels is None else wheels)
    src = zipfile.ZipFile(lean_zip)
    manifest = src.read("blender_manifest.toml").decode()
    listed = "wheels = [\n" + "".join(f'  "./wheels/{w}",\n' for w in wheels) + "]\n"
    manifest = manifest.replace('blender_version_min = "4.2.0"', 'blender_version_min = "5.1.0"')
    manifest = manifest.replace("[permissions]", listed + 'platforms = ["windows-x64"]\n\n[permissions]')
    if manifest_edit:
        manifest = manifest_edit(manifest)
    zpath = out / (name or "lalia-0.1.0-windows-x64-blender5.1-later.zip")
    with zipfile.ZipFile(zpath, "w") as z:
        for item in src.infolist():
            if item.filename != "blender_manifest.toml":
                z.writestr(item, src.read(item))
        z.writestr("blender_manifest.toml", manifest)
        for w, (req, top, *tags) in wheels.items():
            if w not in drop:
                z.writestr(f"wheels/{w}", _wheel(w, req, top, *tags))
    return zpath


def test_a_good_offline_zip_passes(lean_zip, tmp_path):
    assert problems(_offline_zip(lean_zip, tmp_path)) == []


def _swap(old: str, new: str, req=None):
    w = dict(GOOD_WHEELS)
    r, top = w.pop(old)
    w[new] = (r if req is None else req, top)
    return w


BROKEN = {
    # Blender 5.1+ refuses a zip whose torch is for Python 3.11
    "cp311 torch for 5.1+": (dict(wheels=_swap("torch-2.13.0-cp313-cp313-win_amd64.whl",
                                               "torch-2.13.0-cp311-cp311-win_amd64.whl")), r"torch.*does not fit"),
    "linux torch in a windows zip": (dict(wheels=_swap("torch-2.13.0-cp313-cp313-win_amd64.whl",
                                                       "torch-2.13.0-cp313-cp313-manylinux_2_28_x86_64.whl")),
                                     r"does not fit"),
    "no soundfile": (dict(wheels={k: v for k, v in GOOD_WHEELS.items() if not k.startswith("soundfile")}),
                     r"imports soundfile"),
    "listed, not in the zip": (dict(drop=("pycparser-3.12-py3-none-any.whl",)), r"not in the zip"),
    "a dependency missing": (dict(wheels={k: v for k, v in GOOD_WHEELS.items() if not k.startswith("pycparser")}),
                             r"cffi requires pycparser"),
    "a dependency too old": (dict(wheels=_swap("typing_extensions-4.16.0-py3-none-any.whl",
                                               "typing_extensions-4.9.0-py3-none-any.whl")),
                             r"typing-extensions>=4.10.0, the zip has 4.9.0"),
    "needs numpy 1 on Blender 5.1+": (dict(wheels=_swap("soundfile-0.14.0-py2.py3-none-win_amd64.whl",
                                                        "soundfile-0.14.0-py2.py3-none-win_amd64.whl",
                                                        ["cffi>=1.0", "numpy<2"])), r"Blender has numpy 2"),
    "ships numpy": (dict(wheels={**GOOD_WHEELS, "numpy-2.2.0-cp313-cp313-win_amd64.whl": ([], None)}),
                    r"shadow Blender's own numpy"),
    "no file permission": (dict(manifest_edit=lambda m: re.sub(r"files = .*\n", "", m)), r"permissions"),
    "two platforms": (dict(manifest_edit=lambda m: m.replace('["windows-x64"]', '["windows-x64", "linux-x64"]')),
                      r"exactly one known platform"),
    "admits no Blender": (dict(manifest_edit=lambda m: m.replace('"5.1.0"', '"5.1.0"\nblender_version_max = "5.0.0"')),
                          r"admits no known Blender"),
    "renamed wheel": (dict(wheels={**{k: v for k, v in GOOD_WHEELS.items() if not k.startswith("torch")},
                                   "torch-2.13.0-cp313-cp313-win_amd64.whl": (["filelock", "typing-extensions>=4.10.0"],
                                                                              None, ["cp311-cp311-win_amd64"])}),
                      r"not the ones its WHEEL file declares"),
    "bad version": (dict(manifest_edit=lambda m: m.replace('version = "0.1.0"', 'version = "0.1"')), r"semver"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_zip_is_refused(lean_zip, tmp_path, case):
    kwargs, expect = BROKEN[case]
    found = problems(_offline_zip(lean_zip, tmp_path, **kwargs))
    assert any(re.search(expect, p) for p in found), found


# ---- and Blender's own manifest validator agrees ---------------------------------------------
def _blender_validator() -> Path | None:
    """bl_pkg's command line (`blender --command extension validate`), shipped inside PyPI's bpy."""
    import importlib.util
    spec = importlib.util.find_spec("bpy")
    for base in (spec.submodule_search_locations or []) if spec else []:
        for cli in sorted(Path(base).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py")):
            return cli
    return None


def _blender_validates(zpath: Path) -> tuple[bool, str]:
    cli = _blender_validator()
    if cli is None:
        pytest.skip("no bpy here: Blender's validator comes with it")
    r = subprocess.run([sys.executable, str(cli), "validate", str(zpath)], capture_output=True, text=True, timeout=120)
    return r.returncode == 0 and "Success" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("zpath", ZIPS, ids=[z.name for z in ZIPS])
def test_blender_validates_built_zip(zpath):
    ok, said = _blender_validates(zpath)
    assert ok, said


def test_blender_validates_lean_zip_and_refuses_a_bad_one(lean_zip, tmp_path):
    ok, said = _blender_validates(lean_zip)
    assert ok, said
    long_tagline = 'tagline = "' + "x" * 70 + '"'
    bad = _offline_zip(lean_zip, tmp_path, manifest_edit=lambda m: re.sub(r'tagline = ".*"', long_tagline, m))
    assert not _blender_validates(bad)[0] and problems(bad)


def test_platform_tags_as_blender_reads_them():
    from addon_zip_check import platform_accepts
    assert platform_accepts("manylinux2014_x86_64.manylinux_2_17_x86_64", "linux-x64")
    assert platform_accepts("linux_x86_64", "linux-x64") and platform_accepts("any", "windows-x64")
    assert not platform_accepts("musllinux_1_2_x86_64", "linux-x64")
    assert not platform_accepts("manylinux_2_28_aarch64", "linux-x64")
    assert platform_accepts("macosx_14_0_arm64", "macos-arm64") and platform_accepts("macosx_10_9_universal2",
                                                                                        "macos-arm64")
    assert not platform_accepts("macosx_10_9_x86_64", "macos-arm64")
    assert not platform_accepts("win32", "windows-x64") and not platform_accepts("win_arm64", "windows-x64")
