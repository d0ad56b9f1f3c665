"""What makes an add-on zip installable and runnable, checked without Blender:
`python tests/addon_zip_check.py ZIP...` prints each zip's problems (none: it's good).

A zip is checked against every Blender release its manifest admits: each of those embeds a Python
and a numpy (below), and Blender installs only the wheels whose tags fit its platform and Python;
it never resolves dependencies. So every wheel must fit, every third-party module the runtime
imports must come from a wheel (or from Blender), and every wheel's own requirements must be in the
zip too, at versions that satisfy them, with numpy's satisfied by Blender's own numpy.
"""
from __future__ import annotations

import ast
import re
import sys
import tomllib
import zipfile
from pathlib import PurePosixPath

try:
    from packaging.markers import Marker
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version
except ImportError:  # pip always vendors it
    from pip._vendor.packaging.markers import Marker  # noqa: F401
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.specifiers import SpecifierSet  # noqa: F401
    from pip._vendor.packaging.version import Version

# Blender release -> (Python, the numpy versions it may carry). 4.2-5.0 bundle numpy 1.26.4
# (bpy 4.5/5.0 on PyPI pin numpy>=1.26,<2); 5.1-5.3 require numpy>=2.2,<3 (bpy 5.3 pulled 2.5.5).
BLENDERS = {
    "4.2": ("3.11", ("1.26.4",)), "4.3": ("3.11", ("1.26.4",)), "4.4": ("3.11", ("1.26.4",)),
    "4.5": ("3.11", ("1.26.4",)), "5.0": ("3.11", ("1.26.4",)),
    "5.1": ("3.13", ("2.2.0", "2.5.5")), "5.2": ("3.13", ("2.2.0", "2.5.5")), "5.3": ("3.13", ("2.2.0", "2.5.5")),
}
PLATFORM_TAGS = {  # Blender platform -> sysconfig.get_platform() of its builds, as Blender compares it
    "linux-x64": "linux_x86_64", "windows-x64": "win_amd64", "macos-arm64": "macosx_11_0_arm64",
}
MARKER_ENV = {  # packaging marker environment per Blender platform
    "linux-x64": dict(sys_platform="linux", platform_system="Linux", platform_machine="x86_64", os_name="posix"),
    "windows-x64": dict(sys_platform="win32", platform_system="Windows", platform_machine="AMD64", os_name="nt"),
    "macos-arm64": dict(sys_platform="darwin", platform_system="Darwin", platform_machine="arm64", os_name="posix"),
}
# what Blender itself provides to add-ons
BLENDER_MODULES = {"bpy", "bpy_extras", "bpy_types", "mathutils", "bmesh", "bgl", "blf", "gpu", "gpu_extras",
                   "aud", "bl_math", "bl_ui", "bl_operators", "addon_utils", "idprop", "imbuf", "rna_prop_ui",
                   "freestyle", "numpy"}
MAX_BYTES = 300_000_000
REQUIRED_KEYS = ("schema_version", "id", "version", "name", "tagline", "maintainer", "type",
                 "blender_version_min", "license")


def _vt(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in s.split("."))


def blenders_of(manifest: dict) -> list[str]:
    """The known Blender releases the manifest admits (blender_version_max is exclusive)."""
    lo = _vt(manifest.get("blender_version_min", "0.0.0"))
    hi = _vt(manifest["blender_version_max"]) if "blender_version_max" in manifest else (99,)
    return [b for b in BLENDERS if lo <= _vt(b + ".0") < hi]


def wheel_tags(name: str) -> tuple[str, str, list[str], list[str], str]:
    """(distribution, version, python tags, platform tags, abi) from a wheel file name."""
    parts = name[:-4].split("-")
    dist, version = parts[0], parts[1]
    py, abi, plat = parts[-3:]
    return dist.lower().replace("_", "-"), version, py.split("."), plat.split("."), abi


def platform_accepts(tag: str, platform: str) -> bool:
    """Blender's own test (bl_pkg `_extensions_wheel_filter_for_this_system`), on the whole
    platform tag, compound or not: any; equal to its own; macOS: any macosx_* ending in its
    architecture or universal2; Linux: any manylinux* ending in its architecture."""
    current = PLATFORM_TAGS[platform]
    if tag in ("any", current):
        return True
    arch = current.rpartition("_")[2] if current.startswith("macosx_") else current.partition("_")[2]
    if current.startswith("macosx_"):
        return tag.startswith("macosx_") and tag.endswith(("_" + arch, "_universal2"))
    return current.startswith("linux_") and tag.startswith("manylinux") and tag.endswith("_" + arch)


def wheel_fits(name: str, platform: str, python: str) -> bool:
    _, _, pys, _, abi = wheel_tags(name)
    plat = name[:-4].split("-")[-1]
    cp = "cp" + python.replace(".", "")
    if abi == "abi3":  # stable ABI: built for cpXY, runs on every CPython from X.Y on
        py_ok = any(p.startswith("cp3") and int(p[3:]) <= int(cp[3:]) for p in pys)
    else:
        py_ok = cp in pys or (abi == "none" and any(p in ("py3", "py2.py3") or p == "py3" for p in pys))
    return py_ok and platform_accepts(plat, platform)


def _wheel_info(z: zipfile.ZipFile, member: str) -> tuple[list[str], set[str], set[str]]:
    """(Requires-Dist lines, top-level importable names, the tags its WHEEL file declares) of a wheel
    inside the add-on zip."""
    with zipfile.ZipFile(z.open(member)) as w:  # seekable: wheels are stored, so only their index is read
        names = w.namelist()
        meta = next(n for n in names if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        requires = [line.split(":", 1)[1].strip() for line in w.read(meta).decode("utf-8", "replace").splitlines()
                    if line.startswith("Requires-Dist:")]
        wheel = meta[: -len("METADATA")] + "WHEEL"
        declared = {line.split(":", 1)[1].strip() for line in w.read(wheel).decode().splitlines()
                    if line.startswith("Tag:")} if wheel in names else set()
        tops = set()
        for n in names:
            head = n.split("/")[0]
            if head.endswith((".dist-info", ".data")):
                continue
            tops.add(head[:-3] if head.endswith(".py") else head.split(".")[0])
        return requires, tops, declared


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    t = handler.type
    names = [e.id for e in (t.elts if isinstance(t, ast.Tuple) else [t]) if isinstance(e, ast.Name)]
    return t is None or bool({"ImportError", "ModuleNotFoundError"} & set(names))


def runtime_imports(z: zipfile.ZipFile) -> dict[str, str]:
    """Third-party top-level modules the zip's own code imports (anywhere in a file) -> a file."""
    found = {}
    for n in z.namelist():
        if not n.endswith(".py") or n.startswith("wheels/"):
            continue
        tree = ast.parse(z.read(n))
        optional = set()  # imports under `try: ... except ImportError:` handle their own absence
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers):
                optional |= {id(x) for b in node.body for x in ast.walk(b)}
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            for m in mods:
                top = m.split(".")[0]
                if top not in sys.stdlib_module_names and top not in BLENDER_MODULES and top != "model_core":
                    found.setdefault(top, n)
    return found


def problems(path) -> list[str]:
    """Everything wrong with the zip at `path` (an empty list: it's good)."""
    out = []
    z = zipfile.ZipFile(path)
    names = set(z.namelist())
    if "blender_manifest.toml" not in names:
        return ["no blender_manifest.toml at the zip's root"]
    try:
        m = tomllib.loads(z.read("blender_manifest.toml").decode())
    except tomllib.TOMLDecodeError as e:
        return [f"manifest is not valid TOML: {e}"]
    out += [f"manifest lacks {k}" for k in REQUIRED_KEYS if k not in m]
    if m.get("id") != "lalia" or m.get("type") != "add-on":
        out.append(f"manifest id/type {m.get('id')}/{m.get('type')}, expected lalia/add-on")
    if not re.fullmatch(r"\d+\.\d+\.\d+", str(m.get("version", ""))) or f"-{m.get('version')}-" not in str(path):
        out.append(f"version {m.get('version')!r} is not semver or not the one in the zip's name")
    if len(m.get("tagline", "")) > 64 or str(m.get("tagline", "")).endswith("."):
        out.append("tagline over 64 characters or ends with a period")
    if not all(str(x).startswith("SPDX:") for x in m.get("license", [None])):
        out.append("license must be a list of SPDX: identifiers")
    for key in ("blender_version_min", "blender_version_max"):
        if key in m and not re.fullmatch(r"\d+\.\d+\.\d+", m[key]):
            out.append(f"{key} {m[key]!r} is not X.Y.Z")
    perms = m.get("permissions", {})
    if not isinstance(perms, dict) or not perms.get("files"):
        out.append("permissions.files (the add-on reads audio and writes exports) is missing")
    blenders = blenders_of(m) if not any("blender_version" in p for p in out) else []
    if not blenders:
        out.append(f"the manifest admits no known Blender ({m.get('blender_version_min')}-"
                   f"{m.get('blender_version_max', '')})")
    if "__init__.py" not in names or "model_core/inference/generator.py" not in names:
        out.append("the add-on's __init__.py or the vendored core is missing")
    if path.stat().st_size > MAX_BYTES:
        out.append(f"{path.stat().st_size / 1e6:.0f} MB: over the {MAX_BYTES / 1e6:.0f} MB limit")

    listed = m.get("wheels", [])
    in_zip = sorted(n for n in names if n.startswith("wheels/") and n.endswith(".whl"))
    platforms = m.get("platforms", [])
    if not listed:  # the lean zip: no wheels, runs anywhere its environment provides the packages
        if in_zip or platforms:
            out.append("a zip without a wheels list must carry no wheels and name no platform")
        return out
    for w in listed:
        if not w.startswith("./wheels/") or w[2:] not in names:
            out.append(f"listed wheel {w} is not in the zip")
    out += [f"wheel {w} is in the zip but not listed" for w in in_zip if f"./{w}" not in listed]
    if len(platforms) != 1 or platforms[0] not in PLATFORM_TAGS or f"-{platforms[0]}-" not in str(path):
        return out + [f"an offline zip names exactly one known platform, also in its file name; got {platforms}"]
    platform = platforms[0]

    wheels = {}  # distribution -> (version, file)
    for w in in_zip:
        dist, version, *_ = wheel_tags(PurePosixPath(w).name)
        if dist in wheels:
            out.append(f"two versions of {dist}: {wheels[dist][1]} and {w}")
        wheels[dist] = (version, w)
    if "numpy" in wheels:
        out.append("the zip ships numpy: it would shadow Blender's own numpy")
    infos = {dist: _wheel_info(z, w) for dist, (_, w) in wheels.items()}
    provides = {top: dist for dist, (_, tops, _) in infos.items() for top in tops}
    for dist, (_, w) in wheels.items():  # a renamed wheel (cp311 binaries called cp313) lies in its name only
        py, abi, plat = PurePosixPath(w).name[:-4].split("-")[-3:]
        named = {f"{a}-{b}-{c}" for a in py.split(".") for b in abi.split(".") for c in plat.split(".")}
        if not named <= infos[dist][2]:
            out.append(f"{PurePosixPath(w).name}: its name's tags {sorted(named - infos[dist][2])} are not the "
                       f"ones its WHEEL file declares {sorted(infos[dist][2])}")
    imports = runtime_imports(z)
    pythons = sorted({BLENDERS[b][0] for b in blenders})
    for python in pythons:
        on = [b for b in blenders if BLENDERS[b][0] == python]
        tag = f"Blender {on[0]}-{on[-1]} (Python {python}, {platform})"
        for dist, (_, w) in wheels.items():
            if not wheel_fits(PurePosixPath(w).name, platform, python):
                out.append(f"{tag}: {PurePosixPath(w).name} does not fit; Blender skips it")
        fitting = {d for d, (_, w) in wheels.items() if wheel_fits(PurePosixPath(w).name, platform, python)}
        for top, where in sorted(imports.items()):
            if provides.get(top) not in fitting:
                out.append(f"{tag}: the runtime imports {top} ({where}) and no fitting wheel provides it")
        env = dict(MARKER_ENV[platform], python_version=python, python_full_version=python + ".0",
                   implementation_name="cpython", platform_python_implementation="CPython", extra="")
        numpys = {v for b in on for v in BLENDERS[b][1]}
        for dist in sorted(fitting):
            for line in infos[dist][0]:
                req = Requirement(line)
                if req.marker is not None and not req.marker.evaluate(env):
                    continue  # an extra, or another platform or Python
                name = req.name.lower().replace("_", "-")
                if name == "numpy":
                    bad = [v for v in sorted(numpys) if Version(v) not in req.specifier]
                    out += [f"{tag}: {dist} requires {req} but Blender has numpy {v}" for v in bad]
                elif name not in fitting:
                    out.append(f"{tag}: {dist} requires {req}, which the zip lacks")
                elif not req.specifier.contains(Version(wheels[name][0]), prereleases=True):
                    out.append(f"{tag}: {dist} requires {req}, the zip has {wheels[name][0]}")
    return out


if __name__ == "__main__":
    from pathlib import Path
    bad = 0
    for arg in sys.argv[1:]:
        found = problems(Path(arg))
        bad += bool(found)
        print(f"{arg}: {'OK' if not found else ''}" + "".join(f"\n  {p}" for p in found))
    sys.exit(1 if bad else 0)
