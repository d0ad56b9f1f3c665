"""`Motion`: per-frame animation channels, plus the channel layouts and file formats.

A Motion is `fps`, channel names and a float32 T x C array. ARKit channels are Apple's 52
camelCase blendshape names (weights nominally 0..1); head rotation is `headPitch`, `headYaw`,
`headRoll` in radians.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import LaliaError

ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight",
    "eyeLookOutRight", "eyeLookUpRight", "eyeSquintRight", "eyeWideRight", "jawForward",
    "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft",
    "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft",
    "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft",
    "noseSneerRight", "tongueOut",
)
HEAD_ROTATION_NAMES: tuple[str, ...] = ("headPitch", "headYaw", "headRoll")
ARKIT_HEAD_LAYOUT: tuple[str, ...] = ARKIT_NAMES + HEAD_ROTATION_NAMES
ARKIT_INDEX = {n: i for i, n in enumerate(ARKIT_NAMES)}
JAW_ROTATION_NAMES: tuple[str, ...] = ("jawRotX", "jawRotY", "jawRotZ")  # FLAME axis-angle, FLAME axes
EYE_ROTATION_NAMES: tuple[str, ...] = ("leftEyePitch", "leftEyeYaw", "rightEyePitch", "rightEyeYaw")


def head_rotation_matrices(pitch_yaw_roll: np.ndarray) -> np.ndarray:
    """headPitch/Yaw/Roll (..., 3) -> rotation matrices (..., 3, 3) in Blender's axes:
    R = Rz(yaw) Rx(pitch) Ry(roll); pitch > 0 looks down."""
    p, y, r = (np.asarray(pitch_yaw_roll, np.float64)[..., i] for i in range(3))
    one, zero = np.ones_like(p), np.zeros_like(p)
    rx = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, np.cos(p), -np.sin(p)], -1),
                   np.stack([zero, np.sin(p), np.cos(p)], -1)], -2)
    rz = np.stack([np.stack([np.cos(y), -np.sin(y), zero], -1), np.stack([np.sin(y), np.cos(y), zero], -1),
                   np.stack([zero, zero, one], -1)], -2)
    ry = np.stack([np.stack([np.cos(r), zero, np.sin(r)], -1), np.stack([zero, one, zero], -1),
                   np.stack([-np.sin(r), zero, np.cos(r)], -1)], -2)
    return rz @ rx @ ry


def flame_layout(n_exp: int, eyes: bool = False) -> tuple[str, ...]:
    """FLAME motion channels: the FLAME add-on's Exp names, jaw axis-angle (FLAME's axes: x
    right, y up, z forward), head rotation, and optionally eye rotations (radians)."""
    return (tuple(f"Exp{i + 1}" for i in range(n_exp)) + JAW_ROTATION_NAMES + HEAD_ROTATION_NAMES
            + (EYE_ROTATION_NAMES if eyes else ()))


def canonical_arkit_name(name: str) -> str | None:
    """Map any common spelling of an ARKit blendshape to Apple's camelCase name.

    Handles camelCase (`jawOpen`), PascalCase (Live Link: `JawOpen`), Apple's raw `_L`/`_R`
    suffixes (`eyeBlink_L`), snake/space separated variants and common rig prefixes
    (`blendShape1.jawOpen`, `ARKit_jawOpen`). Returns None for names that are not ARKit shapes.
    """
    base = name.rsplit(".", 1)[-1]
    base = re.sub(r"^(arkit|ARKit|bs|BS|blendShape|blendshape)[_ ]?", "", base)
    m = re.match(r"^(.*?)[_ .-]?([LR])$", base)
    if m and m.group(1):
        base = m.group(1) + ("Left" if m.group(2) == "L" else "Right")
    key = re.sub(r"[^a-z]", "", base.lower())
    return _ARKIT_BY_KEY.get(key)


_ARKIT_BY_KEY = {n.lower(): n for n in ARKIT_NAMES}


@dataclass
class Motion:
    fps: float
    channels: tuple[str, ...]
    values: np.ndarray  # float32, T x C

    def __post_init__(self):
        self.channels = tuple(str(c) for c in self.channels)
        self.values = np.asarray(self.values, dtype=np.float32)
        if self.values.ndim != 2 or self.values.shape[1] != len(self.channels):
            raise LaliaError(
                f"Motion values must be T x {len(self.channels)}, got {self.values.shape}")
        if not (self.fps > 0):
            raise LaliaError(f"Motion fps must be positive, got {self.fps}")

    @property
    def num_frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def channel(self, name: str) -> np.ndarray:
        return self.values[:, self.channels.index(name)]

    def select(self, names) -> "Motion":
        """The given channels in the given order; missing channels are zeros."""
        out = np.zeros((self.num_frames, len(names)), np.float32)
        index = {c: i for i, c in enumerate(self.channels)}
        for j, n in enumerate(names):
            if n in index:
                out[:, j] = self.values[:, index[n]]
        return Motion(self.fps, tuple(names), out)

    def resample(self, fps: float) -> "Motion":
        """Linear resampling to another frame rate, keeping the duration."""
        if abs(fps - self.fps) < 1e-9:
            return Motion(self.fps, self.channels, self.values.copy())
        n_out = max(1, int(round(self.duration * fps)))
        t_out = np.arange(n_out) / fps
        t_in = np.arange(self.num_frames) / self.fps
        vals = np.stack([np.interp(t_out, t_in, self.values[:, c])
                         for c in range(self.values.shape[1])], axis=1)
        return Motion(fps, self.channels, vals)

    # ---- files -------------------------------------------------------------------------
    def save(self, path, fmt: str | None = None) -> Path:
        path = Path(path)
        fmt = (fmt or path.suffix.lstrip(".") or "npz").lower()
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "npz":
            np.savez_compressed(path, fps=np.float32(self.fps),
                                channels=np.array(self.channels), values=self.values)
        elif fmt == "csv":
            write_live_link_csv(self, path)
        elif fmt == "json":
            path.write_text(json.dumps({"fps": self.fps, "channels": list(self.channels),
                                        "values": np.round(self.values, 5).tolist()}))
        else:
            raise LaliaError(f"Unknown motion format '{fmt}': use npz, csv or json")
        return path

    @staticmethod
    def load(path) -> "Motion":
        path = Path(path)
        if not path.is_file():
            raise LaliaError(f"Motion file not found: {path}")
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return read_live_link_csv(path)
        if suffix == ".json":
            d = json.loads(path.read_text())
            return Motion(float(d["fps"]), tuple(d["channels"]), np.array(d["values"], np.float32))
        try:
            with np.load(path, allow_pickle=False) as d:
                return Motion(float(d["fps"]), tuple(d["channels"].tolist()), d["values"])
        except (KeyError, ValueError, OSError) as e:
            raise LaliaError(f"{path} is not a Lalia motion npz (fps, channels, values): {e}")


# ---- Live Link Face CSV ---------------------------------------------------------------
# Live Link Face writes: Timecode, BlendShapeCount, then 52 PascalCase blendshape columns and
# HeadYaw, HeadPitch, HeadRoll, LeftEye..., RightEye... Timecode is HH:MM:SS:FF.mmm.
def _pascal(name: str) -> str:
    return name[0].upper() + name[1:]


def write_live_link_csv(motion: Motion, path) -> None:
    m = motion.select(ARKIT_HEAD_LAYOUT)
    fps = motion.fps
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Timecode", "BlendShapeCount"] + [_pascal(n) for n in ARKIT_NAMES]
                   + ["HeadYaw", "HeadPitch", "HeadRoll"])
        for t in range(m.num_frames):
            sec = t / fps
            frame = int(round((sec % 1.0) * fps))
            tc = f"{int(sec // 3600):02d}:{int(sec // 60) % 60:02d}:{int(sec) % 60:02d}:{frame:02d}.{t % 1000:03d}"
            row = m.values[t]
            w.writerow([tc, len(ARKIT_NAMES)] + [f"{v:.5f}" for v in row[:52]]
                       + [f"{row[53]:.5f}", f"{row[52]:.5f}", f"{row[54]:.5f}"])


def read_live_link_csv(path, fps: float | None = None) -> Motion:
    """Read a Live Link Face style CSV (any spelling of the ARKit columns)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise LaliaError(f"{path}: CSV has no data rows")
    header = [h.strip() for h in rows[0]]
    cols: dict[str, int] = {}
    for i, h in enumerate(header):
        arkit = canonical_arkit_name(h)
        if arkit:
            cols[arkit] = i
        elif h.lower() in ("headpitch", "headyaw", "headroll"):
            cols["head" + h[4:].capitalize()] = i
    if not cols:
        raise LaliaError(f"{path}: no ARKit blendshape columns found in the CSV header")
    data = np.zeros((len(rows) - 1, len(ARKIT_HEAD_LAYOUT)), np.float32)
    for r, row in enumerate(rows[1:]):
        for j, name in enumerate(ARKIT_HEAD_LAYOUT):
            if name in cols and cols[name] < len(row) and row[cols[name]].strip():
                data[r, j] = float(row[cols[name]])
    if fps is None:
        fps = _fps_from_timecodes([row[0] for row in rows[1:]]) if header[0].lower() == "timecode" else 60.0
    return Motion(fps, ARKIT_HEAD_LAYOUT, data)


def _fps_from_timecodes(tcs) -> float:
    """Live Link timecodes carry a frame field; the largest frame number + 1 is the rate."""
    frames = []
    for tc in tcs:
        parts = tc.split(":")
        if len(parts) == 4:
            frames.append(int(float(parts[3].split(".")[0])))
    if not frames:
        return 60.0
    top = max(frames) + 1
    for std in (24, 25, 30, 50, 60):
        if top <= std:
            return float(std)
    return float(top)
