#!/usr/bin/env python3
"""Build the installable Blender extension zip: `python build_addon.py [--no-wheels] [--out DIR]`.

The zip holds blender_addon/ at its root and, inside it, the runtime rooms of model_core
(base, model, inference, retarget: no corpus synthesis, training, evaluation or benchmarks)
with the assets they use (the head, the speech encoder weights, the default model, the sample
speech), and, unless --no-wheels, the Python wheels it
needs for the platform (torch CPU, safetensors, soundfile, scipy), listed in
blender_manifest.toml so "Install from Disk" works offline. numpy comes with Blender.

--no-wheels builds a lean zip for environments that already provide those packages (the test
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
PLATFORM = "linux-x64"
PIP_PLATFORM = "manylinux_2_28_x86_64"
WHEELS = ["torch==2.13.0", "safetensors", "soundfile", "scipy<1.15", "cffi", "pycparser",
          "filelock", "fsspec", "jinja2", "markupsafe", "mpmath", "networkx", "sympy",
          "typing_extensions"]
# the rooms the add-on runs; data/, training/, evaluation/, batch/ and cli.py are build-time only
RUNTIME_ROOMS = ("base", "model", "inference", "retarget")
ASSETS = ("head.npz", "HEAD_PROVENANCE.md", "whisper_tiny_en_encoder.safetensors",
          "default_model.safetensors", "default_model.json", "sample_speech.flac", "sample_speech.json",
          "SAMPLE_SPEECH_PROVENANCE.md")


def _version() -> str:
    for line in (ROOT / "blender_addon" / "blender_manifest.toml").read_text().splitlines():
        if line.startswith("version"):
            return line.split("=")[1].strip().strip('"')
    raise SystemExit("no version in blender_manifest.toml")


def download_wheels(dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.11", "--platform", PIP_PLATFORM, "--platform", "manylinux2014_x86_64",
           "--platform", "manylinux_2_17_x86_64", "--platform", "any", "-d", str(dest)] + WHEELS
    subprocess.run(cmd, check=True)
    return sorted(dest.glob("*.whl"))


def build(out_dir: Path, wheels: bool) -> Path:
    missing = [a for a in ASSETS if not (ROOT / "model_core" / "assets" / a).exists()]
    if missing:
        raise SystemExit(f"missing assets {missing}: run `make setup` (and `make model` for the model)")
    stage = out_dir / "stage"
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
    if wheels:
        wheel_files = download_wheels(out_dir / "wheels")
        (stage / "wheels").mkdir()
        for w in wheel_files:
            shutil.copy2(w, stage / "wheels" / w.name)
        lines.append("wheels = [\n" + "".join(f'  "./wheels/{w.name}",\n' for w in wheel_files) + "]")
        lines.append(f'platforms = ["{PLATFORM}"]')
    manifest = manifest.replace("# @WHEELS@", "\n".join(lines))
    (stage / "blender_manifest.toml").write_text(manifest)
    suffix = PLATFORM if wheels else "nowheels"
    zpath = out_dir / f"lalia-{_version()}-{suffix}.zip"
    zpath.unlink(missing_ok=True)
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(stage.rglob("*")):
            if f.is_file():
                z.write(f, f.relative_to(stage).as_posix())
    shutil.rmtree(stage)
    return zpath


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "dist"))
    ap.add_argument("--no-wheels", action="store_true")
    a = ap.parse_args()
    path = build(Path(a.out), wheels=not a.no_wheels)
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
