#!/usr/bin/env python3
"""The add-on tests (tests/blender) on several Blender releases: `python tools/blender_matrix.py`.

Each Blender is PyPI's bpy in its own venv (made on first use, ignored by git), with the Python
that Blender release embeds: 4.2 LTS and 4.5 LTS on 3.11, 5.3 on 3.13. The tests install the
built lean zip through Blender's own extension install, with torch from the venv (Linux torch for
3.13 on PyPI is the CUDA build, ~6 GB of venv; it runs on the CPU). Results go to
docs/blender_matrix.json: per Blender, the versions seen, tests passed/failed/skipped, the failures
by name, and how the process ended. A failure is either fixed or explained there ("notes").
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# name -> (venv, Python, pip requirements). Real Blender 4.2-5.0 bundle numpy 1.26.4; PyPI's bpy 4.2
# doesn't pin it, so it is pinned here to run what Blender users run.
TEST_DEPS = ["torch==2.13.0", "safetensors==0.8.0", "soundfile==0.14.0", "pillow", "scipy", "pytest",
             "pocketsphinx==5.1.1", "espeakng-loader==0.2.4"]  # the runtime dependencies the lean zip lacks
TARGETS = {
    "4.2": (".venv-bpy42", "3.11", ["bpy==4.2.*", "numpy==1.26.4"]),
    "4.5": (".venv", "3.11", None),  # the project's own venv (`make setup`, requirements.txt)
    "5.3": (".venv-bpy53", "3.13", ["bpy==5.3.*"]),
}
# bare bpy venvs (no torch) where the offline Linux zip must bring everything itself
OFFLINE = {
    "4.2": (".venv-bpy42-bare", "3.11", ["bpy==4.2.*", "numpy==1.26.4"]),
    "4.5": (".venv-bpy45-bare", "3.11", ["bpy==4.5.*", "numpy==1.26.4"]),
}
# what a non-zero exit or a failure is, when it is known and not ours to fix (see the report)
NOTES = {
    "4.2": "PyPI's bpy 4.2.23 is built without Audaspace: no sound strips; Generate warns and sets the "
           "frame range from the audio (tested).",
}
PROBE = ("import json, sys, bpy, numpy, torch; print(json.dumps({'blender': bpy.app.version_string, "
         "'python': sys.version.split()[0], 'numpy': numpy.__version__, 'torch': torch.__version__, "
         "'audio': bool(bpy.app.build_options.audaspace)}))")


def python_for(version: str) -> str:
    found = shutil.which(f"python{version}")
    if not found:
        raise SystemExit(f"python{version} not found: install it (e.g. pyenv install {version}) or set PATH")
    return found


def ensure_venv(name: str, targets: dict = TARGETS, deps: list = TEST_DEPS) -> Path:
    venv, py, reqs = targets[name]
    python = ROOT / venv / "bin" / "python"
    # the stamp names what was installed, so a changed list installs again
    wanted = hashlib.sha1(" ".join([*(reqs or []), *deps]).encode()).hexdigest()[:10]
    stamp = ROOT / venv / f".matrix-{name}-{wanted}"
    if reqs is None:
        if not python.exists():
            raise SystemExit(f"{venv} is missing: run `make setup`")
    elif not stamp.exists():
        if not python.exists():
            subprocess.run([python_for(py), "-m", "venv", str(ROOT / venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *reqs, *deps], check=True)
        stamp.touch()
    return python


def run(name: str, out_dir: Path, k: str | None) -> dict:
    python = ensure_venv(name)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    seen = json.loads(subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True, env=env,
                                     check=True).stdout.strip().splitlines()[-1])
    xml = out_dir / f"blender-{name}.xml"
    xml.unlink(missing_ok=True)
    log = out_dir / f"blender-{name}.log"
    with open(log, "w") as f:
        cmd = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}",
               str(ROOT / "tests" / "blender"), *(["-k", k] if k else [])]
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    counts = {"collected": 0, "passed": 0, "failed": 0, "skipped": 0}
    failures = []
    if xml.exists():
        for case in ET.parse(xml).getroot().iter("testcase"):
            counts["collected"] += 1
            bad = case.find("failure") if case.find("failure") is not None else case.find("error")
            if bad is not None:
                counts["failed"] += 1
                failures.append(f"{case.get('name')}: {(bad.get('message') or '').splitlines()[0][:200]}")
            elif case.find("skipped") is not None:
                counts["skipped"] += 1
            else:
                counts["passed"] += 1
    exit_ = "ok" if p.returncode == 0 else ("tests failed" if p.returncode == 1 else
                                             f"crashed (signal {-p.returncode})" if p.returncode < 0 else
                                             f"exit status {p.returncode}")
    return {"blender": seen["blender"], "python": seen["python"], "numpy": seen["numpy"], "torch": seen["torch"],
            "audio": seen["audio"], **counts, "failures": failures, "exit": exit_,
            "notes": NOTES.get(name, "")}


def offline(name: str, zpath: Path, out_dir: Path) -> dict:
    """The offline zip installed by a bare Blender (its wheels, no torch of ours): tools/offline_zip_check.py."""
    python = ensure_venv(name, OFFLINE, [])
    log = out_dir / f"offline-{name}.log"
    with open(log, "w") as f:
        p = subprocess.run([str(python), str(ROOT / "tools" / "offline_zip_check.py"), str(zpath)],
                           stdout=subprocess.PIPE, stderr=f, text=True, cwd=ROOT)
    lines = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
    r = json.loads(lines[0][7:]) if lines else {"zip": zpath.name, "ok": False}
    r["exit"] = "ok" if p.returncode == 0 else (f"crashed (signal {-p.returncode})" if p.returncode < 0 else
                                                f"exit status {p.returncode} (see build/matrix/{log.name})")
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=list(TARGETS), help="some of the Blenders (default: all)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "blender_matrix.json"))
    ap.add_argument("--no-offline", action="store_true", help="skip installing the offline Linux zip in bare bpy")
    ap.add_argument("-k", help="only the tests pytest -k selects (a partial run; don't publish its report)")
    a = ap.parse_args()
    logs = ROOT / "build" / "matrix"
    logs.mkdir(parents=True, exist_ok=True)
    out = Path(a.out)
    report = json.loads(out.read_text()) if out.exists() else {}
    report.setdefault("results", {})
    for name in a.only or list(TARGETS):
        print(f"Blender {name} ...", flush=True)
        r = report["results"][name] = run(name, logs, a.k)
        print(f"  {r['blender']} (Python {r['python']}, numpy {r['numpy']}): {r['passed']} passed, "
              f"{r['failed']} failed, {r['skipped']} skipped; exit: {r['exit']}", flush=True)
        for f in r["failures"]:
            print("   ", f)
    if not a.no_offline:
        from build_addon import build_platform, zip_name
        zpath = ROOT / "dist" / zip_name("linux-x64", "3.11")
        build_platform(zpath.parent, "linux-x64", None)  # from the code as it is now (wheels cached)
        report["offline_zip"] = {}
        for name in OFFLINE if a.only is None else [n for n in a.only if n in OFFLINE]:
            print(f"offline zip on bare Blender {name} ...", flush=True)
            r = report["offline_zip"][name] = offline(name, zpath, logs)
            print("  ", r, flush=True)
        report["offline_zip"]["5.3"] = {"zip": zip_name("linux-x64", "3.13"), "ok": None,
                                        "notes": "not built here: PyPI has no CPU torch for Linux + Python 3.13 "
                                                 "(see docs/install.md); the Windows and macOS 5.1+ zips are "
                                                 "checked by tests/test_addon_zips.py, not installed"}
    report["about"] = ("tests/blender on PyPI's bpy, made by `make test-blender-matrix` (tools/blender_matrix.py): "
                       "the lean zip installed through Blender's extension install, torch from the venv")
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")
    ok = all(r["failed"] == 0 for r in report["results"].values())
    sys.exit(0 if ok and all(r["ok"] is not False for r in report.get("offline_zip", {}).values()) else 1)


if __name__ == "__main__":
    main()
