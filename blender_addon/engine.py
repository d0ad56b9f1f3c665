"""The loaded model, shared by the operators (loaded once, on first use)."""
from __future__ import annotations

import threading

_lock = threading.Lock()
_generators: dict = {}
# what the last finished Generate reported (info, timings), set on the main thread; the
# status line and the Blender benchmark read it
last_generation: dict = {}


def generator(checkpoint: str | None = None):
    """The model (the bundled default, or a checkpoint file), loaded once per file."""
    with _lock:
        if checkpoint not in _generators:
            from .model_core.inference.generator import load_generator
            _generators[checkpoint] = load_generator(checkpoint)
        return _generators[checkpoint]


def preset_descriptions() -> dict:
    """Style presets of the default model, from its manifest's JSON alone: the checkpoint reader
    imports torch, most of the add-on's start (1.7 s of 2.5 s), and the panel only needs these
    labels; Generate checks the whole manifest before it loads the model."""
    import json

    from .model_core.base.assets import DEFAULT_MODEL
    try:
        presets = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text()).get("style_presets", {})
        return {str(k): str(v) for k, v in presets.items()} if isinstance(presets, dict) else {}
    except Exception:  # a broken install shows no presets; Generate reports the real error
        return {}


# ---- the runtime's packages: what's missing, and which zip brings them ----------------------
# numpy is Blender's own; the rest come from the offline zip's wheels. A lean zip in a plain
# Blender, or another extension's wheel of the same name in the shared site-packages, leaves one
# of them unimportable: say so in one line instead of a traceback deep in the model.
RUNTIME_PACKAGES = ("numpy", "torch", "safetensors", "soundfile")
# Blender embeds Python 3.11 in 4.2-5.0 and 3.13 from 5.1 on; build_addon.py names the zips alike
ZIP_SPANS = {(3, 11): "blender4.2-5.0", (3, 13): "blender5.1-later"}
_imported: dict = {}  # package -> "" (imports) or why not, once actually imported


def zip_for_this_blender() -> str:
    """The offline zip this Blender (platform and Python) installs, e.g.
    lalia-0.1.0-windows-x64-blender4.2-5.0.zip; '' when no such zip is built."""
    import platform
    import sys
    machine = platform.machine().lower()
    plat = {("linux", "x86_64"): "linux-x64", ("linux", "amd64"): "linux-x64", ("win32", "amd64"): "windows-x64",
            ("win32", "x86_64"): "windows-x64", ("darwin", "arm64"): "macos-arm64"}.get((sys.platform, machine))
    span = ZIP_SPANS.get(sys.version_info[:2])
    return f"lalia-{_addon_version()}-{plat}-{span}.zip" if plat and span else ""


def _addon_version() -> str:
    import tomllib
    from pathlib import Path
    try:
        return tomllib.loads((Path(__file__).parent / "blender_manifest.toml").read_text())["version"]
    except Exception:  # the version only decorates the message
        return "*"


def _why_not(name: str, really_import: bool) -> str:
    """'' when `name` imports (or, without really_import, can be found); else why not, briefly."""
    import importlib
    import importlib.util
    if name in _imported:
        return _imported[name]
    try:
        if not really_import:
            return "" if importlib.util.find_spec(name) is not None else "missing"
        importlib.import_module(name)
        why = ""
    except ModuleNotFoundError:
        why = "missing"
    except Exception as e:  # a wheel for another Python or platform, a DLL that won't load, ...
        why = f"won't load: {str(e).splitlines()[0][:80] if str(e) else type(e).__name__}"
    _imported[name] = why
    return why


def runtime_problem(really_import: bool = True) -> str:
    """'' when the packages the model needs are there; else ONE line naming what's missing and the
    zip to install. The panel asks without importing (fast, every redraw); operators import."""
    bad = [(n, w) for n in RUNTIME_PACKAGES if (w := _why_not(n, really_import))]
    if not bad:
        return ""
    missing = [n for n, w in bad if w == "missing"]
    parts = [f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing"] if missing else []
    parts += [f"{n} {w}" for n, w in bad if w != "missing"]
    zname = zip_for_this_blender()
    fix = f"install {zname} (Preferences > Get Extensions > Install from Disk)" if zname else \
        "no Lalia zip fits this platform: install torch, safetensors and soundfile into Blender's Python"
    return f"Lalia can't run, {'; '.join(parts)}: {fix}"
