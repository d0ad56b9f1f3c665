"""Readers for real talking-face data, so users can train on what they have.

Each reader yields `Sequence(name, speaker, audio16k, motion)`; `import_dataset` writes them as a
corpus folder in the same shard format as the synthetic corpus, so `features` and `train` work
unchanged. Supported:
- `tfhp`: DiffPoseTalk's TFHP/HDTF LMDB (root `metadata` {seg_len}, per clip
  `{person}/{id:03d}/metadata` {n_frames}, segments `{clip}/{i:03d}` = {audio: FLAC bytes,
  coef: {shape, exp, pose}}), FLAME coefficients at 25 fps. Values are pickles: read with the
  restricted unpickler (numpy arrays only).
- `flame-npz`: a folder of (NAME.wav, NAME.npz) pairs, npz with `exp` (T x 50|100) and `pose`
  (T x 6: global + jaw axis-angle) or `jaw_pose`/`global_pose`, and an optional `fps` (default 25).
- `arkit-csv`: a folder of (NAME.csv, NAME.wav) Live Link Face captures (any fps, resampled).
"""
from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..base.audio import load_audio, resample
from ..base.errors import LaliaError
from ..base.motion import ARKIT_HEAD_LAYOUT, Motion, flame_layout, read_live_link_csv
from ..retarget.flame import FLAME_TO_BLENDER, axis_angle_to_matrix
from ..retarget.safe_pickle import safe_loads
from .corpus import HOP, Take, write_shard

log = logging.getLogger(__name__)
FPS = 25.0


@dataclass
class Sequence:
    name: str
    speaker: str
    audio: np.ndarray  # 16 kHz mono float32
    motion: Motion     # 25 fps


def flame_global_to_head(aa: np.ndarray) -> np.ndarray:
    """FLAME global rotation (axis-angle; y up, face toward +z) -> headPitch/Yaw/Roll in our
    convention (Blender axes: z up, face toward -y; R = Rz(yaw) Rx(pitch) Ry(roll))."""
    M = FLAME_TO_BLENDER
    R = M @ axis_angle_to_matrix(aa) @ M.T
    pitch = np.arcsin(np.clip(R[..., 2, 1], -1, 1))
    yaw = np.arctan2(-R[..., 0, 1], R[..., 1, 1])
    roll = np.arctan2(-R[..., 2, 0], R[..., 2, 2])
    return np.stack([pitch, yaw, roll], -1).astype(np.float32)


def flame_motion(exp: np.ndarray, global_pose: np.ndarray, jaw_pose: np.ndarray, fps: float) -> Motion:
    exp = np.asarray(exp, np.float32)
    if exp.ndim != 2 or exp.shape[1] not in (50, 100):
        raise LaliaError(f"FLAME expression coefficients must be T x 50 or T x 100, got {exp.shape}")
    vals = np.concatenate([exp, np.asarray(jaw_pose, np.float32), flame_global_to_head(global_pose)], 1)
    return Motion(fps, flame_layout(exp.shape[1]), vals).resample(FPS)


def read_tfhp(root) -> Iterator[Sequence]:
    import lmdb
    root = Path(root)
    if not (root / "data.mdb").exists():
        raise LaliaError(f"{root} is not an LMDB folder (no data.mdb)")
    env = lmdb.open(str(root), readonly=True, lock=False)
    with env.begin() as txn:
        meta = txn.get(b"metadata")
        if meta is None:
            raise LaliaError(f"{root}: no 'metadata' entry; not DiffPoseTalk's TFHP layout")
        seg_len = int(safe_loads(meta, f"{root}:metadata")["seg_len"])
        keys_file = root / "keys.txt"
        if keys_file.exists():
            clips = [k for k in keys_file.read_text().split() if k]
        else:  # no keys.txt: every '<clip>/metadata' key names a clip
            clips = sorted({k.decode()[: -len("/metadata")] for k, _ in txn.cursor()
                            if k.endswith(b"/metadata") and k != b"metadata"})
        for clip in clips:
            raw = txn.get(f"{clip}/metadata".encode())
            if raw is None:
                log.warning("TFHP: clip %s has no metadata, skipped", clip)
                continue
            n_frames = int(safe_loads(raw, f"{clip}/metadata")["n_frames"])
            audio_parts, coefs = [], {"exp": [], "pose": []}
            for i in range((n_frames + seg_len - 1) // seg_len):
                seg = txn.get(f"{clip}/{i:03d}".encode())
                if seg is None:
                    raise LaliaError(f"TFHP: {clip} segment {i:03d} is missing")
                d = safe_loads(seg, f"{clip}/{i:03d}")
                import soundfile as sf
                a, sr = sf.read(io.BytesIO(d["audio"]), dtype="float32", always_2d=True)
                audio_parts.append(resample(a.mean(1), sr, 16000))
                for k in coefs:
                    coefs[k].append(np.asarray(d["coef"][k], np.float32))
            pose = np.concatenate(coefs["pose"])
            motion = flame_motion(np.concatenate(coefs["exp"]), pose[:, :3], pose[:, 3:6], FPS)
            yield Sequence(clip, clip.split("/")[0], np.concatenate(audio_parts), motion)
    env.close()


def _pairs(root, suffix: str) -> list[Path]:
    """Files NAME{suffix} under root that have a NAME.wav beside them."""
    pairs = sorted(p for p in Path(root).rglob(f"*{suffix}") if p.with_suffix(".wav").exists())
    if not pairs:
        raise LaliaError(f"{root}: no (NAME{suffix}, NAME.wav) pairs found")
    return pairs


def read_flame_npz_folder(root) -> Iterator[Sequence]:
    for npz in _pairs(root, ".npz"):
        with np.load(npz, allow_pickle=False) as d:
            if "pose" in d:
                gp, jp = d["pose"][:, :3], d["pose"][:, 3:6]
            elif "global_pose" in d and "jaw_pose" in d:
                gp, jp = d["global_pose"], d["jaw_pose"]
            else:
                raise LaliaError(f"{npz}: needs 'pose' (T x 6) or 'global_pose' and 'jaw_pose'")
            if "exp" not in d:
                raise LaliaError(f"{npz}: no 'exp' array")
            fps = float(d["fps"]) if "fps" in d else FPS
            motion = flame_motion(d["exp"], gp, jp, fps)
        yield Sequence(npz.stem, npz.parent.name, load_audio(npz.with_suffix(".wav")), motion)


def read_arkit_csv_folder(root) -> Iterator[Sequence]:
    for csv in _pairs(root, ".csv"):
        motion = read_live_link_csv(csv).select(ARKIT_HEAD_LAYOUT).resample(FPS)
        yield Sequence(csv.stem, csv.parent.name, load_audio(csv.with_suffix(".wav")), motion)


READERS = {"tfhp": read_tfhp, "flame-npz": read_flame_npz_folder, "arkit-csv": read_arkit_csv_folder}


def import_dataset(fmt: str, src, out, val_share: float = 0.1, test_share: float = 0.1) -> dict:
    """Write a reader's sequences as a corpus folder; speakers are split across train/val/test."""
    from .corpus import stable_split
    if fmt not in READERS:
        raise LaliaError(f"Unknown dataset format '{fmt}'; choose from {', '.join(READERS)}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise LaliaError(f"{out} is not empty; choose a new folder")
    takes: dict[str, list[Take]] = {"train": [], "val": [], "test": []}
    speakers: dict[str, int] = {}
    channels = None
    for seq in READERS[fmt](src):
        T = min(seq.motion.num_frames, len(seq.audio) // HOP)
        if T < 25:
            log.warning("%s: shorter than 1 s, skipped", seq.name)
            continue
        if channels is None:
            channels = seq.motion.channels
        elif seq.motion.channels != channels:
            raise LaliaError(f"{seq.name}: channel layout differs from the first sequence's")
        sid = speakers.setdefault(seq.speaker, len(speakers))
        split = stable_split(seq.speaker, "speaker", val_share, test_share)
        takes[split].append(Take(seq.audio[: T * HOP], seq.motion.values[:T],
                                 np.zeros((T, 8), np.float32),  # emotion unknown
                                 [], [seq.name], sid))
    if channels is None:
        raise LaliaError(f"{src}: no usable sequences")
    for split, items in takes.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        for i in range(0, len(items), 64):
            write_shard(out / split / f"shard_{i // 64:04d}.npz", items[i:i + 64])
    manifest = {"format": "lalia-corpus", "version": 1, "source": {"format": fmt, "path": str(src)},
                "fps": FPS, "sample_rate": 16000, "channels": list(channels), "emotion_labels": False,
                "speakers": [{"id": i, "name": n, "style": {}} for n, i in speakers.items()],
                "splits": {s: {"takes": len(v), "hours": round(sum(len(t.audio) for t in v) / 16000 / 3600, 4)}
                           for s, v in takes.items()}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
