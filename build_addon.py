#!/usr/bin/env python3
"""Build the installable Blender extension zips.

    python build_addon.py --no-wheels [--out DIR]          the lean zip (no wheels, any platform)
    python build_addon.py --platform windows-x64 [...]     the offline zips for one platform
    python build_addon.py --platform all [--wheels-from DIR]

Every zip holds blender_addon/ at its root and, inside it, the runtime rooms of model_core
(base, model, inference, retarget: no corpus synthesis, training, evaluation or benchmarks)
with the assets they use. numpy comes with Blender.

An offline zip also carries the wheels the runtime needs (torch CPU, safetensors, soundfile,
pocketsphinx and espeakng-loader for the transcript, and their dependencies) for ONE platform
and ONE Python, listed in blender_manifest.toml so "Install from Disk" works without a network.
Blender 4.2-5.0 embed Python 3.11 and 5.1+ Python 3.13, and compiled wheels are per Python, so
each platform gets two zips, split by blender_version_min/max:
one zip holding both Pythons' torch would be over 300 MB on Linux and Windows (torch alone is
~190-250 MB per Python). Wheels are cached under build/wheels/ so reruns don't download again.

PyPI's Linux torch is a CUDA build (2.7 GB with its nvidia wheels); the CPU wheel for Python 3.11
is on this machine's find-links, the one for 3.13 is not on PyPI at all: pass a folder holding
`torch-*+cpu-cp313-*linux*.whl` with --wheels-from, or the Linux 5.1+ zip is skipped (loudly).

--no-wheels builds the lean zip for environments that already provide those packages (the test
suite's bpy-in-a-venv); the code inside is identical.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / "build" / "wheels"
# the runtime's wheels: torch and what it imports, soundfile and its cffi. numpy is Blender's own,
# and must never be shipped (it would shadow Blender's). scipy isn't needed (numpy resampler).
TORCH = "2.13.0"
# Blender never resolves dependencies: tests/addon_zip_check.py checks every wheel's requirements are here.
# pocketsphinx (the transcript's aligner, ~29 MB with its en-us model; it requires sounddevice, which
# it imports only for live microphones) and espeakng-loader (libespeak-ng and its data, ~10 MB)
WHEELS = ["safetensors==0.8.0", "soundfile==0.14.0", "cffi", "pycparser", "filelock", "fsspec", "jinja2",
          "markupsafe", "mpmath<1.4", "networkx", "sympy", "typing_extensions", "setuptools",
          "pocketsphinx==5.1.1", "sounddevice", "espeakng-loader==0.2.4"]
# Blender platform -> pip platform tags (pip also accepts older manylinux/macOS tags below these)
PIP_PLATFORMS = {
    "linux-x64": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "windows-x64": ["win_amd64"],
    "macos-arm64": ["macosx_14_0_arm64", "macosx_11_0_arm64"],
}
# Python -> the Blender releases embedding it, and their numpy (bpy's requirement on PyPI)
PYTHONS = {
    "3.11": {"blender_min": "4.2.0", "blender_max": "5.1.0", "label": "blender4.2-5.0", "numpy": "1.26.4"},
    "3.13": {"blender_min": "5.1.0", "blender_max": None, "label": "blender5.1-later", "numpy": "2.2.0"},
}
# the rooms the add-on runs; data/, training/, evaluation/, batch/ and cli.py are build-time only
RUNTIME_ROOMS = ("base", "model", "inference", "retarget")
ASSETS = ("head.npz", "HEAD_PROVENANCE.md", "whisper_tiny_en_encoder.safetensors", "encoder_fit_adapter.safetensors",
          "default_model.safetensors", "default_model.json", "sample_speech.flac", "sample_speech.json",
          "SAMPLE_SPEECH_PROVENANCE.md")


def _version() -> str:
    for line in (ROOT / "blender_addon" / "blender_manifest.toml").read_text().splitlines():
        if line.startswith("version"):
            return line.split("=")[1].strip().strip('"')
    raise SystemExit("no version in blender_manifest.toml")


def zip_name(platform: str | None, python: str | None) -> str:
    """lalia-0.1.0-nowheels.zip, lalia-0.1.0-windows-x64-blender4.2-5.0.zip, ..."""
    if platform is None:
        return f"lalia-{_version()}-nowheels.zip"
    return f"lalia-{_version()}-{platform}-{PYTHONS[python]['label']}.zip"


def _cpu_torch(folder: Path | None, python: str) -> Path | None:
    """A Linux CPU torch wheel for `python` in `folder` (the one PyPI doesn't have)."""
    cp = "cp" + python.replace(".", "")
    for f in sorted(folder.glob(f"torch-{TORCH}+cpu-{cp}-{cp}-*linux*_x86_64.whl")) if folder else []:
        return f
    return None


def download_wheels(platform: str, python: str, wheels_from: Path | None) -> list[Path] | None:
    """The wheels for one platform and Python, from the cache (downloading what it lacks), or None
    when no CPU torch can be had for it."""
    cp = python.replace(".", "")
    dest = CACHE / f"{platform}-cp{cp}"
    dest.mkdir(parents=True, exist_ok=True)
    torch = f"torch=={TORCH}"
    links = []
    if platform == "linux-x64":
        # never PyPI's CUDA torch: the +cpu wheel, from --wheels-from or pip's find-links
        torch = f"torch=={TORCH}+cpu"
        local = _cpu_torch(wheels_from, python)
        if local is not None:
            links = ["--find-links", str(local.parent)]
            (dest / local.name).unlink(missing_ok=True)  # pip reuses a cached file by name: take the given one
        elif python != "3.11":  # only 3.11's CPU wheel is on this machine's find-links
            return None
    plats = [a for p in PIP_PLATFORMS[platform] + ["any"] for a in ("--platform", p)]
    wanted = [torch] + WHEELS
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--python-version", python, "--implementation", "cp", *plats, *links, "-d", str(dest), *wanted]
    run = subprocess.run(cmd, check=True, capture_output=True, text=True)
    # exactly the files pip picked this time ("Saved X" or "File was already downloaded X"), not
    # whatever else the cache holds from earlier resolutions
    said = ("Saved ", "File was already downloaded ")
    lines = [line.strip() for line in run.stdout.splitlines()]
    picked = sorted({Path(line[len(p):]).resolve() for line in lines for p in said if line.startswith(p)})
    if len(picked) != len(wanted) or not all(_fits(w.name, platform, cp) for w in picked):
        raise SystemExit(f"pip picked {[w.name for w in picked]} for {wanted}:\n{run.stdout}\n{run.stderr}")
    return picked


def _fits(name: str, platform: str, cp: str) -> bool:
    py, abi, plat = name[:-4].split("-")[-3:]
    pys = py.split(".")
    py_ok = f"cp{cp}" in pys or "py3" in pys or (abi == "abi3" and any(p.startswith("cp3") for p in pys))
    plat_ok = plat == "any" or any(t in plat for t in {"linux-x64": ("x86_64",), "windows-x64": ("win_amd64",),
                                                       "macos-arm64": ("arm64", "universal2")}[platform])
    return py_ok and plat_ok


def build(out_dir: Path, platform: str | None = None, python: str | None = None,
          wheel_files: list[Path] | None = None) -> Path:
    """The zip: lean when platform is None, else the offline zip for (platform, python)."""
    missing = [a for a in ASSETS if not (ROOT / "model_core" / "assets" / a).exists()]
    if missing:
        raise SystemExit(f"missing assets {missing}: run `make setup` (and `make model` for the model)")
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = out_dir / f"stage-{platform or 'lean'}-{python or ''}"
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree(ROOT / "blender_addon", stage, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    core = stage / "model_core"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    core.mkdir()
    shutil.copy2(ROOT / "model_core" / "__init__.py", core / "__init__.py")
    for room in RUNTIME_ROOMS:
        shutil.copytree(ROOT / "model_core" / room, core / room, ignore=skip)
    (core / "assets").mkdir()
    for a in ASSETS:
        shutil.copy2(ROOT / "model_core" / "assets" / a, core / "assets" / a)
    manifest = (stage / "blender_manifest.toml").read_text()
    lines = []
    if platform is not None:
        (stage / "wheels").mkdir()
        for w in wheel_files:
            shutil.copy2(w, stage / "wheels" / w.name)
        lines.append("wheels = [\n" + "".join(f'  "./wheels/{w.name}",\n' for w in wheel_files) + "]")
        lines.append(f'platforms = ["{platform}"]')
        span = PYTHONS[python]
        manifest = manifest.replace('blender_version_min = "4.2.0"', f'blender_version_min = "{span["blender_min"]}"')
        if span["blender_max"]:  # exclusive: the first Blender with another Python
            lines.append(f'blender_version_max = "{span["blender_max"]}"')
    manifest = manifest.replace("# @WHEELS@", "\n".join(lines))
    (stage / "blender_manifest.toml").write_text(manifest)
    zpath = out_dir / zip_name(platform, python)
    zpath.unlink(missing_ok=True)
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(stage.rglob("*")):
            if f.is_file():  # wheels are zips already: stored, not deflated again
                z.write(f, f.relative_to(stage).as_posix(),
                        compress_type=zipfile.ZIP_STORED if f.suffix == ".whl" else zipfile.ZIP_DEFLATED)
    shutil.rmtree(stage)
    return zpath


def build_platform(out_dir: Path, platform: str, wheels_from: Path | None) -> list[Path]:
    made = []
    for python in PYTHONS:
        wheels = download_wheels(platform, python, wheels_from)
        if wheels is None:
            bar = "!" * 100
            print(f"{bar}\n!! NOT BUILT: {zip_name(platform, python)} (Blender {PYTHONS[python]['label'][7:]}, "
                  f"Python {python}).\n!! PyPI has no CPU torch for Linux + Python {python} (only the 2.7 GB "
                  f"CUDA build). Pass --wheels-from DIR holding\n!! torch-{TORCH}+cpu-cp{python.replace('.', '')}-"
                  f"...-linux_x86_64.whl (download.pytorch.org/whl/cpu) to build it.\n{bar}", file=sys.stderr)
            continue
        made.append(build(out_dir, platform, python, wheels))
    return made


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "dist"))
    ap.add_argument("--no-wheels", action="store_true", help="the lean zip (no wheels)")
    ap.add_argument("--platform", choices=[*PIP_PLATFORMS, "all"], help="offline zips for a platform (or all)")
    ap.add_argument("--wheels-from", type=Path, help="a folder with CPU torch wheels PyPI lacks (Linux, 3.13)")
    a = ap.parse_args()
    out = Path(a.out)
    if a.no_wheels or a.platform is None:
        if not a.no_wheels:
            ap.error("choose --no-wheels (the lean zip) or --platform")
        paths = [build(out)]
    else:
        platforms = list(PIP_PLATFORMS) if a.platform == "all" else [a.platform]
        paths = [p for plat in platforms for p in build_platform(out, plat, a.wheels_from)]
    for path in paths:
        print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
