"""Fuzz the core's file boundaries with hypothesis: every input must load or raise LaliaError.

    python tools/fuzz.py [--seconds 600] [--targets audio,manifest,motion,flame] [--out docs/fuzz_report.json]

Targets (each gets `--seconds`, default FUZZ_SECONDS or 600):
- audio: structured WAV files (RIFF/fmt/data chunks with lying sizes, odd format tags, channel
  counts, sample rates from 0 to 2^32-1, bit depths, float payloads with NaN/Inf/huge/silent/
  clipped/DC samples, extra chunks, truncation) and raw bytes -> `load_audio`.
- manifest: a tiny valid checkpoint whose manifest (and sometimes safetensors header or tensor
  data) is mutated: fields set to arbitrary JSON, deleted, or the text cut -> `load_checkpoint`.
- motion: npz (any dtype incl. object arrays, any keys and shapes), Live Link CSV (any header,
  cells, timecodes) and JSON references -> `Motion.load`, then the resampling the generator does.
- flame: a tiny FLAME-structured pickle (chumpy and scipy stand-ins) with fields replaced,
  deleted or the bytes flipped/truncated, and npz variants -> `load_flame`.

Anything other than success or LaliaError is a finding, as is an accepted input whose result
breaks an invariant (non-finite values, wrong shapes), an execution over PER_EXEC_SECONDS, or
a MemoryError under the address-space limit. The report counts executions and lists each
distinct finding (exception type and the innermost model_core frame) with one example.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from model_core.base.errors import LaliaError  # noqa: E402

PER_EXEC_SECONDS = 20
MEMORY_LIMIT = 6 << 30  # address space: a runaway allocation becomes a MemoryError, not an OOM kill
INTERESTING_INTS = [0, 1, -1, 2, 3, 7, 8, 55, 100, 255, 256, 3999, 4000, 8000, 16000, 65535, 65536,
                    384000, 384001, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 63 - 1, -2 ** 63, 10 ** 30]
ints = st.sampled_from(INTERESTING_INTS) | st.integers(-10 ** 6, 10 ** 6)
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 1e-45, 1e-6, 1.0, 25.0, 1e30, 3.5e38, 1e300, float("nan"), float("inf"), -float("inf")])
json_values = st.recursive(
    st.none() | st.booleans() | ints | floats | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=12)


class Timeout(Exception):
    pass


# ---- audio ----------------------------------------------------------------------------
SAMPLE_KINDS = ["random", "silent", "dc", "clipped", "nan", "inf", "huge", "subnormal", "speechlike"]


@st.composite
def wav_bytes(draw) -> bytes:
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=2000))
    # half the files have a consistent header (only the samples are odd), the rest 1-3 odd fields
    odd = set() if draw(st.booleans()) else set(draw(st.lists(st.sampled_from(
        ["tag", "channels", "rate", "bits", "block", "byte_rate", "chunks", "size", "riff", "cut", "prefix"]),
        min_size=1, max_size=3)))
    tag = draw(st.sampled_from([1, 3, 3, 0xFFFE, 0, 2, 6, 7, 0x55, 0x11]) | st.integers(0, 65535)) \
        if "tag" in odd else draw(st.sampled_from([1, 3]))
    channels = draw(st.sampled_from([0, 3, 8, 64, 65, 65535])) if "channels" in odd else draw(st.sampled_from([1, 2]))
    rate = draw(st.sampled_from([0, 1, 2, 3999, 4000, 384000, 384001, 383999, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1])
                | st.integers(0, 2 ** 32 - 1)) if "rate" in odd else draw(st.sampled_from([16000, 44100, 8000, 48000]))
    bits = draw(st.sampled_from([24, 64, 0, 1, 12, 65535])) if "bits" in odd else (32 if tag == 3 else 16)
    n = draw(st.integers(0, 3000))
    kind = draw(st.sampled_from(SAMPLE_KINDS))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    x = {"random": rng.uniform(-1, 1, n), "silent": np.zeros(n), "dc": np.full(n, 0.7) + rng.normal(0, 0.01, n),
         "clipped": np.sign(rng.normal(0, 1, n)), "nan": np.where(rng.random(n) < 0.01, np.nan, 0.1),
         "inf": np.where(rng.random(n) < 0.01, np.inf, 0.1),
         "huge": rng.uniform(-1, 1, n) * 10.0 ** rng.integers(0, 39),
         "subnormal": np.full(n, 1e-40), "speechlike": np.sin(np.arange(n) * 0.05) * rng.uniform(0, 5)}[kind]
    if tag == 3 and bits == 64:
        payload = x.astype("<f8").tobytes()
    elif tag == 3:
        payload = x.astype("<f4").tobytes()
    elif bits == 8:
        payload = (np.clip(np.nan_to_num(x), -1, 1) * 127 + 128).astype(np.uint8).tobytes()
    else:
        payload = (np.clip(np.nan_to_num(x), -1, 1) * 32767).astype("<i2").tobytes()
    if "prefix" in odd:
        payload = draw(st.binary(max_size=200)) + payload
    block = draw(st.sampled_from([None, 0, 1, 65535])) if "block" in odd else None
    block = channels * max(bits, 8) // 8 if block is None else block
    byte_rate = draw(st.sampled_from([None, 0, 2 ** 32 - 1])) if "byte_rate" in odd else None
    byte_rate = (rate * block) & 0xFFFFFFFF if byte_rate is None else byte_rate
    fmt = struct.pack("<HHIIHH", tag, channels & 0xFFFF, rate & 0xFFFFFFFF, byte_rate, block & 0xFFFF, bits & 0xFFFF)
    if tag == 0xFFFE:
        fmt += struct.pack("<HHI16s", 22, bits & 0xFFFF, 3, draw(st.binary(min_size=16, max_size=16)))
    chunks = [b"fmt " + struct.pack("<I", len(fmt)) + fmt]
    for _ in range(draw(st.integers(1, 2)) if "chunks" in odd else 0):
        body = draw(st.binary(max_size=40))
        cid = draw(st.sampled_from([b"LIST", b"fact", b"JUNK", b"data", b"fmt "]) | st.binary(min_size=4, max_size=4))
        chunks.insert(draw(st.integers(0, len(chunks))), cid + struct.pack("<I", len(body)) + body)
    size = draw(st.sampled_from([0, 1, 2 ** 32 - 1, 2 ** 31])) if "size" in odd else None
    chunks.append(b"data" + struct.pack("<I", len(payload) if size is None else size) + payload)
    body = b"WAVE" + b"".join(chunks)
    riff = draw(st.sampled_from([0, 2 ** 32 - 1])) if "riff" in odd else None
    data = b"RIFF" + struct.pack("<I", len(body) if riff is None else riff) + body
    cut = draw(st.integers(0, len(data))) if "cut" in odd else None
    return data if cut is None else data[:cut]


def run_audio(data: bytes, work: Path):
    from model_core.base.audio import load_audio
    p = work / "a.wav"
    p.write_bytes(data)
    y = load_audio(p)
    assert y.dtype == np.float32 and y.ndim == 1, "load_audio returned a wrong array"
    assert np.isfinite(y).all(), "load_audio returned non-finite samples"


# ---- checkpoint manifest ----------------------------------------------------------------
def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            yield from _paths(v, prefix + (i,))


def _mutate(obj, ops):
    obj = json.loads(json.dumps(obj))
    for op, path, value in ops:
        if not path:
            obj = value if op == "set" else {}
            continue
        parent = obj
        try:
            for k in path[:-1]:
                parent = parent[k]
            if op == "set":
                parent[path[-1]] = value
            else:
                del parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            pass
    return obj


class ManifestTarget:
    def __init__(self, work: Path):
        import torch

        from model_core.base.vocabulary import EMOTIONS
        from model_core.model.checkpoint import manifest_path, save_checkpoint
        from model_core.model.networks import LaliaModel, ModelConfig
        cfg = ModelConfig(d_model=32, layers=1, heads=2, ffn=64, window=20, prev=4, style_dim=16, style_layers=1,
                          vae_hidden=16, n_identities=3)
        manifest = {"channels": [f"c{i}" for i in range(55)], "fps": 25.0, "norm_mean": [0.0] * 55,
                    "norm_std": [1.0] * 55, "emotions": list(EMOTIONS), "style_presets": {"calm": "quiet"},
                    "style_sliders": {"head_motion": {"field": "head_amount", "half_range": 0.5}},
                    "style_amounts": ["head_motion"],
                    "sampler": {"name": "ddim", "steps": 1, "guidance": {"audio": 1.0, "emotion": 1.0}}}
        extra = {"preset.calm": torch.ones(16), "slider.head_motion": torch.ones(16),
                 "identity_styles": torch.zeros(3, 16), "amounts.identity": torch.ones(3, 1),
                 "amounts.preset.calm": torch.ones(1)}
        self.base = save_checkpoint(work / "base.safetensors", LaliaModel(cfg), manifest, extra=extra)
        self.weights = self.base.read_bytes()
        self.manifest = json.loads(manifest_path(self.base).read_text())
        self.paths = [p for p in _paths(self.manifest) if not (p and p[0] in ("norm_mean", "norm_std")
                                                                and len(p) > 1 and p[1] > 2)]

    def strategy(self):
        op = st.tuples(st.sampled_from(["set", "set", "del"]), st.sampled_from(self.paths), json_values)
        return st.tuples(st.lists(op, min_size=1, max_size=4), st.sampled_from(["manifest"] * 6 + [
            "cut", "header", "nan", "weights_cut"]), st.integers(0, 2 ** 32 - 1), json_values)

    def run(self, x, work: Path):
        from model_core.model.checkpoint import load_checkpoint, manifest_path
        ops, mode, seed, value = x
        rng = np.random.default_rng(seed)
        p = work / "m.safetensors"
        weights, text = self.weights, json.dumps(self.manifest)
        if mode == "manifest":
            text = json.dumps(_mutate(self.manifest, ops))
        elif mode == "cut":
            text = text[: rng.integers(0, len(text))]
        elif mode == "weights_cut":
            weights = weights[: rng.integers(0, len(weights))]
        else:  # the safetensors header (JSON after an 8-byte length), or a tensor's bytes
            n = struct.unpack("<Q", weights[:8])[0]
            header = json.loads(weights[8:8 + n])
            if mode == "header":
                key = rng.choice(sorted(header))
                field = rng.choice(["dtype", "shape", "data_offsets"]) if isinstance(header[key], dict) else None
                if field:
                    header[key][field] = value
                hb = json.dumps(header).encode()
                weights = struct.pack("<Q", len(hb)) + hb + weights[8 + n:]
            else:
                body = bytearray(weights)
                i = 8 + n + 2 * int(rng.integers(0, (len(weights) - 8 - n) // 2))
                body[i:i + 2] = b"\x00\x7e"  # float16 NaN
                weights = bytes(body)
        p.write_bytes(weights)
        manifest_path(p).write_text(text)
        model, manifest, extra = load_checkpoint(p)
        import torch
        assert all(bool(torch.isfinite(v).all()) for v in model.state_dict().values()), "accepted NaN weights"


# ---- motion references ---------------------------------------------------------------------
def _names():
    from model_core.base.motion import ARKIT_HEAD_LAYOUT
    return st.sampled_from(list(ARKIT_HEAD_LAYOUT) + ["Exp1", "jawRotX", "", " ", "nose", "JawOpen",
                                                      "eyeBlink_L", "Timecode", "BlendShapeCount", "x" * 300])


def _array(draw):
    kind = draw(st.sampled_from(["f4", "f8", "i4", "u1", "b1", "c8", "U5", "S3", "O", "f2"]))
    shape = draw(st.lists(st.integers(0, 70), min_size=0, max_size=3))
    n = int(np.prod(shape)) if shape else 1
    if n > 20000:
        shape, n = [n % 500], n % 500
    if kind == "O":
        return np.array([draw(json_values) for _ in range(min(n, 5))] + [None], dtype=object)
    vals = np.array(draw(st.lists(floats, min_size=1, max_size=8)) * (n // 1 + 1))[:n]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return vals.astype(kind).reshape(shape)


@st.composite
def motion_files(draw):
    # rare choices from a seeded numpy generator: hypothesis draws small integers far more often
    # than uniformly, so `draw(integers(0, 9)) == 0` would not be rare
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    fmt = draw(st.sampled_from(["npz", "npz", "csv", "csv", "json", "json", "npz_bytes"]))
    if rng.random() < 0.5:  # plausible: known names, >= 1 s at a real frame rate (reaches acceptance)
        from model_core.base.motion import ARKIT_HEAD_LAYOUT
        names = draw(st.lists(st.sampled_from(ARKIT_HEAD_LAYOUT), min_size=1, max_size=8, unique=True))
        fps = draw(st.sampled_from([24.0, 25.0, 30.0, 60.0, 1.0, 1000.0]))
        T = draw(st.integers(int(fps), int(fps) * 3 + 5))
    else:
        T = draw(st.integers(0, 300))
        names = draw(st.lists(_names(), min_size=0, max_size=8))
        fps = draw(floats | st.sampled_from([25.0, 60.0, 1e-6, 0.5, 1e4]))
    if fmt == "npz":
        d = {}
        for k in ("fps", "channels", "values"):
            if rng.random() < 1 / 10:
                continue
            if rng.random() < 1 / 4:
                d[k] = _array(draw)
            else:
                d[k] = {"fps": np.float64(fps),
                        "channels": np.array(names) if names else np.array([], "U1"),
                        "values": rng.uniform(0, 1, (T, len(names))).astype(np.float32)}[k]
        if rng.random() < 0.5:
            d["extra"] = _array(draw)
        buf = io.BytesIO()
        np.savez(buf, **d)
        return "npz", buf.getvalue()
    if fmt == "npz_bytes":
        buf = io.BytesIO()
        np.savez_compressed(buf, fps=np.float32(25), channels=np.array(["jawOpen"]),
                            values=rng.uniform(0, 1, (60, 1)).astype(np.float32))
        b = bytearray(buf.getvalue())
        for _ in range(draw(st.integers(1, 4))):
            b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
        return "npz", bytes(b[: draw(st.integers(0, len(b)))] if draw(st.booleans()) else b)
    if fmt == "json":
        if rng.random() < 1 / 5:
            return "json", json.dumps(draw(json_values)).encode()
        vals = rng.uniform(0, 1, (T, len(names))).tolist()
        if vals and rng.random() < 0.2:
            vals[int(rng.integers(0, len(vals)))] = draw(st.lists(json_values, max_size=4))
        d = {"fps": draw(st.sampled_from([fps, fps, "25", None, [25]])), "channels": names, "values": vals}
        return "json", json.dumps(d).encode()
    cells = st.sampled_from(["0.5", "1", "", "nan", "inf", "-inf", "1e999", "abc", "0x10", "1,5", " 0.2 "])
    header = names if draw(st.booleans()) else ["Timecode", "BlendShapeCount"] + names
    lines = [",".join(header)]
    for t in range(min(T, 120)):
        row = [draw(cells) if rng.random() < 1 / 10 else f"{rng.uniform(0, 1):.3f}" for _ in names]
        if header and header[0] == "Timecode":
            tc = draw(st.sampled_from([f"00:00:{t // 60:02d}:{t % 60:02d}.000", "12:34", "aa:bb:cc:dd.eee",
                                       "00:00:00:99999999999.0", "00:00:00:-5.0", "00:00:00:1e3.0"]))
            row = [tc, "52"] + row
        lines.append(",".join(row))
    text = "\n".join(lines)
    if rng.random() < 1 / 10:
        text = text.replace(",", draw(st.sampled_from([";", "\t", '"', "\x00"])))
    return "csv", text.encode() + (b"\xff\xfe" if rng.random() < 1 / 10 else b"")


def run_motion(x, work: Path):
    from model_core.base.motion import ARKIT_HEAD_LAYOUT, MAX_FPS, MIN_FPS, Motion
    suffix, data = x
    p = work / f"ref.{suffix}"
    p.write_bytes(data)
    m = Motion.load(p)
    assert np.isfinite(m.values).all() and MIN_FPS <= m.fps <= MAX_FPS, "accepted a bad motion"
    r = m.resample(25.0).select(ARKIT_HEAD_LAYOUT)  # what the generator does with a reference
    assert np.isfinite(r.values).all(), "resampling made non-finite values"


# ---- FLAME ---------------------------------------------------------------------------------
def tiny_flame(rng) -> dict:
    import scipy.sparse as sp
    from flame_fixture import _FakeCh
    V = 12
    v = rng.normal(0, 0.1, (V, 3))
    faces = np.array([[i, (i + 1) % V, (i + 2) % V] for i in range(V)], np.uint32)
    reg = np.zeros((5, V))
    reg[np.arange(5), np.arange(5)] = 1.0
    return {"v_template": v, "f": faces, "shapedirs": _FakeCh(rng.normal(0, 1e-3, (V, 3, 305))),
            "J_regressor": sp.csc_matrix(reg), "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]]),
            "weights": np.full((V, 5), 0.2), "posedirs": rng.normal(0, 1e-4, (V, 3, 36)), "bs_style": "lbs"}


class FlameTarget:
    KEYS = ["v_template", "f", "shapedirs", "J_regressor", "kintree_table", "weights", "posedirs", "J"]

    def strategy(self):
        change = st.tuples(st.sampled_from(["del", "array", "nan", "sparse", "json", "list_bomb"]),
                           st.sampled_from(self.KEYS), st.integers(0, 2 ** 32 - 1))
        return st.tuples(st.lists(change, max_size=3), st.sampled_from(["pkl", "pkl", "pkl", "npz", "bytes", "npy"]),
                         st.integers(0, 2 ** 32 - 1), st.none())

    def run(self, x, work: Path):
        import scipy.sparse as sp
        from flame_fixture import _FakeCh, write_flame_pickle

        from model_core.retarget.flame import load_flame
        changes, container, seed, _ = x
        rng = np.random.default_rng(seed)
        d = tiny_flame(rng)
        for op, key, s in changes:
            r = np.random.default_rng(s)
            if op == "del":
                d.pop(key, None)
            elif op == "array":
                shape = tuple(int(n) for n in r.integers(0, 8, r.integers(0, 4)))
                d[key] = r.normal(0, 1, shape).astype(r.choice(["f8", "f4", "i8", "u1", "b1"]))
            elif op == "nan" and isinstance(d.get(key), np.ndarray) and d[key].dtype.kind == "f" and d[key].size:
                d[key] = d[key].copy()
                d[key].flat[int(r.integers(0, d[key].size))] = r.choice([np.nan, np.inf])
            elif op == "sparse":
                m = sp.random(int(r.integers(1, 20)), int(r.integers(1, 20)), density=0.3,
                              random_state=int(s % 2 ** 31))
                d[key] = getattr(m, r.choice(["tocsc", "tocsr", "tocoo"]))()
            elif op == "json":
                d[key] = [[float(r.normal())] * 3] * int(r.integers(0, 20))
            elif op == "list_bomb":
                bomb = [0.0] * 1000
                for _ in range(4):
                    bomb = [bomb] * 1000
                d[key] = bomb
        p = work / f"flame.{'npz' if container == 'npz' else 'npy' if container == 'npy' else 'pkl'}"
        if container == "npz":
            arrays = {k: (v.x if isinstance(v, _FakeCh) else v.toarray() if sp.issparse(v) else v)
                      for k, v in d.items()}
            arrays = {k: v for k, v in arrays.items() if isinstance(v, np.ndarray)}
            np.savez(p, **arrays)
        elif container == "npy":
            np.save(p, np.array(d, dtype=object), allow_pickle=True) if rng.random() < 0.5 else p.write_bytes(
                b"\x93NUMPY\x01\x00" + bytes(rng.integers(0, 256, 60, dtype=np.uint8)))
        else:
            write_flame_pickle(p, d)
            if container == "bytes":
                b = bytearray(p.read_bytes())
                for _ in range(int(rng.integers(1, 6))):
                    b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
                p.write_bytes(bytes(b[: int(rng.integers(len(b) // 2, len(b) + 1))]))
        m = load_flame(p)
        for a in (m.v_template, m.shapedirs, m.expdirs, m.joints, m.weights):
            assert np.isfinite(a).all(), "accepted non-finite FLAME arrays"
        assert m.expdirs.shape[:2] == m.v_template.shape and m.faces.max() < len(m.v_template), "inconsistent model"


# ---- the harness -----------------------------------------------------------------------------
def _site(e: BaseException) -> str:
    """The innermost frame in model_core (else the innermost frame): where the finding is."""
    frames = traceback.extract_tb(e.__traceback__)
    ours = [f for f in frames if "model_core" in f.filename] or frames
    f = ours[-1]
    return f"{Path(f.filename).name}:{f.lineno} ({f.name})"


def _alarm(signum, frame):
    raise Timeout(f"one execution took over {PER_EXEC_SECONDS} s")


def fuzz(name: str, seconds: float, work: Path) -> dict:
    if name == "audio":
        strategy, run = wav_bytes(), run_audio
    elif name == "manifest":
        t = ManifestTarget(work)
        strategy, run = t.strategy(), t.run
    elif name == "motion":
        strategy, run = motion_files(), run_motion
    else:
        t = FlameTarget()
        strategy, run = t.strategy(), t.run
    stats = {"executions": 0, "accepted": 0, "lalia_errors": 0, "findings": {}}
    deadline = time.monotonic() + seconds

    @settings(max_examples=200, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(x):
        if time.monotonic() > deadline:
            return
        stats["executions"] += 1
        signal.alarm(PER_EXEC_SECONDS)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run(x, work)
            stats["accepted"] += 1
        except LaliaError:
            stats["lalia_errors"] += 1
        except BaseException as e:  # noqa: BLE001 - every other outcome is a finding
            if isinstance(e, KeyboardInterrupt):
                raise
            key = f"{type(e).__name__} at {_site(e)}"
            f = stats["findings"].setdefault(key, {"count": 0, "message": str(e)[:300], "example": repr(x)[:600]})
            f["count"] += 1
        finally:
            signal.alarm(0)

    while time.monotonic() < deadline:
        one()
    stats["seconds"] = seconds
    return stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("FUZZ_SECONDS", 600)))
    ap.add_argument("--targets", default="audio,manifest,motion,flame")
    ap.add_argument("--out", default=str(ROOT / "docs" / "fuzz_report.json"))
    a = ap.parse_args(argv)
    import logging
    logging.disable(logging.CRITICAL)
    import torch
    torch.set_num_threads(1)
    signal.signal(signal.SIGALRM, _alarm)
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    report = {"tool": f"hypothesis {__import__('hypothesis').__version__}", "seconds_per_target": a.seconds,
              "targets": {}}
    for name in a.targets.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.time()
            r = fuzz(name, a.seconds, Path(tmp))
        report["targets"][name] = r
        print(f"{name}: {r['executions']} executions in {time.time() - t0:.0f} s, {r['accepted']} accepted, "
              f"{r['lalia_errors']} LaliaError, {len(r['findings'])} distinct other outcomes", flush=True)
        for k, f in r["findings"].items():
            print(f"  {k} x{f['count']}: {f['message'][:160]}", flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    from model_core.base.files import write_text_atomic
    write_text_atomic(a.out, json.dumps(report, indent=1))
    return 1 if any(r["findings"] for r in report["targets"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
