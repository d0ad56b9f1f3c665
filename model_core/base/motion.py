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
from .files import atomic_write, check_output_path

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
# frame rates a motion may have: below 1 fps a few frames span hours (resampling a reference at
# 1e-6 fps to 25 fps once asked for 51 GiB); above 1000 fps no capture device or rig exists
MIN_FPS, MAX_FPS = 1.0, 1000.0
MIN_REFERENCE_SECONDS = 1.0  # the style and emotion encoders read clips of motion, not poses
MAX_REFERENCE_BYTES = 1 << 30  # a reference's values, uncompressed (about 40 h of 55 channels)
MOTION_FORMATS = ("npz", "csv", "json")
_KNOWN_EXTRA = set(HEAD_ROTATION_NAMES) | set(JAW_ROTATION_NAMES) | set(EYE_ROTATION_NAMES)


def known_channel(name: str) -> bool:
    """A channel some Lalia layout has: ARKit (any spelling), head/jaw/eye rotation, FLAME Exp<n>."""
    return (name in _KNOWN_EXTRA or canonical_arkit_name(name) is not None
            or re.fullmatch(r"Exp[1-9][0-9]{0,3}", name) is not None)


def check_finite_values(values: np.ndarray, channels, what: str = "generated motion") -> np.ndarray:
    """Raise LaliaError unless every value is finite; -> values. The generator's final guard:
    `return Motion(fps, channels, check_finite_values(values, channels, "generated motion"))`."""
    bad = ~np.isfinite(values)
    if bad.any():
        frames, cols = np.nonzero(bad)
        names = sorted({channels[c] for c in cols})
        todo = ("nothing was written. Try another seed or checkpoint, and report it with the audio if it "
                "repeats" if what.startswith("generated") else "the file or rig it came from is damaged")
        raise LaliaError(f"The {what} has {int(bad.sum())} NaN/infinite values (first at frame "
                         f"{int(frames[0])}, channels {', '.join(names[:4])}); {todo}")
    return values


@dataclass
class Motion:
    fps: float
    channels: tuple[str, ...]
    values: np.ndarray  # float32, T x C

    def __post_init__(self):
        self.channels = tuple(str(c) for c in self.channels)
        try:
            with np.errstate(over="ignore"):  # beyond float32's range -> inf, refused below
                self.values = np.asarray(self.values, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise LaliaError(f"Motion values must be numbers ({e})") from None
        if self.values.ndim != 2 or self.values.shape[1] != len(self.channels):
            raise LaliaError(
                f"Motion values must be T x {len(self.channels)}, got {self.values.shape}")
        try:
            self.fps = float(self.fps)
        except (TypeError, ValueError):
            raise LaliaError(f"Motion fps must be a number, got {self.fps!r}") from None
        if not (MIN_FPS <= self.fps <= MAX_FPS):
            raise LaliaError(f"Motion fps must be between {MIN_FPS:g} and {MAX_FPS:g}, got {self.fps:g}; "
                             "check the file's frame rate")
        if any(not c.strip() for c in self.channels) or len(set(self.channels)) != len(self.channels):
            raise LaliaError("Motion channel names must be non-empty and distinct")
        # no Motion holds NaN/Inf: whatever makes one (a file, a rig, the generator) stops here
        self.check_finite("motion")

    def check_finite(self, what: str = "generated motion") -> "Motion":
        """Raise unless every value is finite; returns self."""
        check_finite_values(self.values, self.channels, what)
        return self

    def check_reference(self, what: str = "reference") -> "Motion":
        """A motion used as a style or emotion reference: finite, known channels, long enough."""
        unknown = [c for c in self.channels if not known_channel(c)]
        if not self.channels:
            raise LaliaError(f"The {what} has no channels")
        if unknown:
            raise LaliaError(f"The {what} has channels Lalia doesn't know: {', '.join(unknown[:5])}; use ARKit "
                             "blendshape names (jawOpen, ...), headPitch/Yaw/Roll or FLAME Exp<n>")
        self.check_finite(what)
        if self.duration < MIN_REFERENCE_SECONDS:
            raise LaliaError(f"The {what} is {self.duration:.2f} s long; it needs at least "
                             f"{MIN_REFERENCE_SECONDS:g} s of motion")
        return self

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
    @staticmethod
    def check_output(path, fmt: str | None = None) -> tuple[Path, str]:
        """The format a save to `path` would use, with the path checked: call before long work."""
        path = Path(path)
        fmt = (fmt or path.suffix.lstrip(".") or "npz").lower()
        if fmt not in MOTION_FORMATS:
            raise LaliaError(f"Unknown motion format '{fmt}': use {', '.join(MOTION_FORMATS)} "
                             "(from the file suffix or --format)")
        return check_output_path(path, "motion file"), fmt

    def save(self, path, fmt: str | None = None) -> Path:
        """Write the motion whole or not at all (an existing file is only replaced by a complete one)."""
        path, fmt = Motion.check_output(path, fmt)
        self.check_finite("motion to save")
        with atomic_write(path, "motion file") as tmp:
            if fmt == "npz":
                with open(tmp, "wb") as f:
                    np.savez_compressed(f, fps=np.float32(self.fps),
                                        channels=np.array(self.channels), values=self.values)
            elif fmt == "csv":
                write_live_link_csv(self, tmp)
            else:
                tmp.write_text(json.dumps({"fps": self.fps, "channels": list(self.channels),
                                           "values": np.round(self.values, 5).tolist()}))
        return path

    @staticmethod
    def load(path) -> "Motion":
        """A motion/reference file (npz, Live Link CSV, json), validated: finite values, known
        channel names, a sane frame rate, no pickled objects. Every problem is a LaliaError."""
        return Motion.read(path).check_reference(f"motion file {Path(path).name}")

    @staticmethod
    def read(path) -> "Motion":
        """A motion file as `load` reads it (finite values, a sane frame rate, no pickled objects),
        without a reference's checks of length and channel names: a generated line of any length."""
        path = Path(path)
        if not path.is_file():
            raise LaliaError(f"Motion file not found: {path}")
        suffix = path.suffix.lower()
        try:
            if suffix == ".csv":
                motion = read_live_link_csv(path)
            elif suffix == ".json":
                motion = _read_json(path)
            else:
                motion = _read_npz(path)
        except LaliaError as e:
            raise LaliaError(f"{path.name}: {e}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise LaliaError(f"Can't read the motion file {path}: {e}") from None
        return motion


def _read_npz(path: Path) -> Motion:
    import zipfile
    import zlib
    try:
        with zipfile.ZipFile(path) as z:  # the declared sizes, before numpy inflates anything
            big = [i.filename for i in z.infolist() if i.file_size > MAX_REFERENCE_BYTES]
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as e:
        raise LaliaError(f"not a Lalia motion npz (fps, channels, values): {e}") from None
    if big:
        raise LaliaError(f"{big[0]} is over {MAX_REFERENCE_BYTES >> 20} MiB uncompressed; "
                         "a reference needs a few seconds of motion")
    try:
        with np.load(path, allow_pickle=False) as d:
            missing = [k for k in ("fps", "channels", "values") if k not in d.files]
            if missing:
                raise LaliaError(f"not a Lalia motion npz: it lacks {', '.join(missing)}")
            fps, channels, values = d["fps"], d["channels"], d["values"]
    except ValueError as e:  # object arrays (allow_pickle=False) and broken members
        raise LaliaError(f"not a plain-array motion npz ({e}); object arrays are never loaded") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as e:
        # a damaged member: zlib's and zipfile's own errors surface through np.load (zipfile raises
        # RuntimeError for an encrypted member)
        raise LaliaError(f"not a readable npz ({type(e).__name__}: {e})") from None
    if fps.size != 1 or fps.dtype.kind not in "fiu":
        raise LaliaError(f"'fps' must be one number, got {fps.dtype} {fps.shape}")
    if channels.ndim != 1 or channels.dtype.kind not in "US":
        raise LaliaError(f"'channels' must be a list of names, got {channels.dtype} {channels.shape}")
    if values.dtype.kind not in "fiu":
        raise LaliaError(f"'values' must be numbers, got {values.dtype}")
    names = [c.decode("utf-8", "replace") if isinstance(c, bytes) else str(c) for c in channels.tolist()]
    return Motion(float(fps.reshape(-1)[0]), tuple(names), values)


def _read_json(path: Path) -> Motion:
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, RecursionError) as e:
        raise LaliaError(f"not valid JSON ({str(e)[:80]})") from None
    if not isinstance(d, dict) or not all(k in d for k in ("fps", "channels", "values")):
        raise LaliaError("a motion JSON needs an object with fps, channels and values")
    fps, channels, values = d["fps"], d["channels"], d["values"]
    if isinstance(fps, bool) or not isinstance(fps, (int, float)):
        raise LaliaError(f"'fps' must be a number, got {fps!r:.40}")
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise LaliaError("'channels' must be a list of names")
    if not isinstance(values, list) or not all(
            isinstance(r, list) and len(r) == len(channels)
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in r) for r in values):
        raise LaliaError(f"'values' must be a list of frames, each {len(channels)} numbers")
    arr = np.array(values, np.float64).reshape(len(values), len(channels))
    with np.errstate(over="ignore"):  # beyond float32's range -> inf, refused as non-finite
        return Motion(float(fps), tuple(channels), arr.astype(np.float32))


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
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (csv.Error, UnicodeDecodeError) as e:
        raise LaliaError(f"{path}: not a readable CSV ({e})") from None
    if len(rows) < 2 or not rows[0]:
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
                try:
                    data[r, j] = float(row[cols[name]])
                except ValueError:
                    raise LaliaError(f"{path}: row {r + 2}, column {header[cols[name]]}: "
                                     f"{row[cols[name]][:20]!r} is not a number") from None
    if fps is None:
        fps = _fps_from_timecodes([row[0] for row in rows[1:]]) if header[0].lower() == "timecode" else 60.0
    return Motion(fps, ARKIT_HEAD_LAYOUT, data)


def _fps_from_timecodes(tcs) -> float:
    """Live Link timecodes carry a frame field; the largest frame number + 1 is the rate."""
    frames = []
    for tc in tcs:
        parts = tc.split(":")
        if len(parts) == 4:
            try:
                frames.append(int(parts[3].split(".")[0]))
            except ValueError:
                raise LaliaError(f"timecode {tc[:20]!r} is not HH:MM:SS:FF.mmm") from None
    if not frames:
        return 60.0
    top = max(frames) + 1
    for std in (24, 25, 30, 50, 60):
        if top <= std:
            return float(std)
    return float(top)
