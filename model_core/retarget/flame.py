"""FLAME head models: a safe loader, and the retarget from ARKit shapes to FLAME.

FLAME (Li et al. 2017) can't be shipped (licence), so users bring their own file:
- FLAME 2020 `generic_model.pkl` or FLAME 2023 pickles. They hold numpy arrays, scipy sparse
  matrices (`J_regressor`) and chumpy arrays (`shapedirs`). They are read with the restricted
  unpickler: chumpy and scipy classes become inert stand-ins whose recorded state is turned into
  numpy arrays; nothing in the file is executed, and neither package is needed.
- an `.npz` with the same keys (`FlameModel.save_npz` writes one).
- optionally a landmark embedding (FLAME's `flame_static_embedding.pkl`, DECA's
  `landmark_embedding.npy`, or an npz): faces and barycentric coordinates of the 2D landmarks.

Coordinates: FLAME's files are metres, Y up, face toward +Z. `FlameModel` keeps them; Blender
code converts with `flame_to_blender` (Z up, face toward -Y, as the FLAME Blender add-on does).

The retarget (`retarget_arkit`) turns the ARKit-52 model's output into FLAME parameters: for
each ARKit shape of the bundled head, the FLAME expression coefficients and jaw rotation that
best reproduce its displacement at corresponding points (a dense correspondence between the two
heads after alignment, or given landmark pairs), ridge-regularised.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..base.errors import LaliaError
from .safe_pickle import StateRecord, safe_loads

log = logging.getLogger(__name__)
N_SHAPE = 300  # FLAME 2020/2023: shapedirs holds 300 identity then 50 or 100 expression components
JOINTS = ("root", "neck", "jaw", "left_eye", "right_eye")  # FLAME's kinematic tree, in order
# flame coords (y up, face +z) -> blender coords (z up, face -y)
FLAME_TO_BLENDER = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float64)


def flame_to_blender(p: np.ndarray) -> np.ndarray:
    return np.asarray(p) @ FLAME_TO_BLENDER.T


# ---- reading the pickle ---------------------------------------------------------------
class _Chumpy(StateRecord):
    """chumpy.ch.Ch: its pickled state is its __dict__, the array is under 'x'."""

    def array(self) -> np.ndarray:
        if not isinstance(self.state, dict) or "x" not in self.state:
            raise LaliaError("a chumpy array in the file has no data ('x')")
        return _plain(self.state["x"])


class _Sparse(StateRecord):
    """scipy.sparse csc/csr/coo matrices: rebuilt densely from their recorded arrays."""
    kind = "csc"

    def array(self) -> np.ndarray:
        s = self.state if isinstance(self.state, dict) else {}
        shape = s.get("_shape") or s.get("shape")
        if shape is None:
            raise LaliaError("a sparse matrix in the file has no shape")
        try:
            shape = tuple(int(x) for x in shape)
            if len(shape) != 2 or min(shape) < 0 or shape[0] * shape[1] > MAX_ELEMENTS:
                raise LaliaError(f"a sparse matrix in the file has an impossible shape {shape}")
            out = np.zeros(shape, np.float64)
            if self.kind == "coo":
                out[np.asarray(s["row"]), np.asarray(s["col"])] = np.asarray(s["data"])
                return out
            data, indices, indptr = (np.asarray(s[k]) for k in ("data", "indices", "indptr"))
            n = shape[1] if self.kind == "csc" else shape[0]
            if (indptr.shape != (n + 1,) or indptr[0] != 0 or np.any(np.diff(indptr) < 0)
                    or not indptr[-1] == len(indices) == len(data)):
                raise ValueError("its index pointers don't match its data")
            for j in range(n):
                sl = slice(indptr[j], indptr[j + 1])
                if self.kind == "csc":
                    out[indices[sl], j] = data[sl]
                else:
                    out[j, indices[sl]] = data[sl]
            return out
        except (KeyError, IndexError, TypeError, ValueError, OverflowError) as e:
            # the recorded arrays don't describe a matrix: damaged, or not scipy's layout
            raise LaliaError(f"a sparse matrix in the file is inconsistent ({type(e).__name__}: {e})") from None


def _sparse(kind):
    return type(f"_Sparse_{kind}", (_Sparse,), {"kind": kind})


_STAND_INS = {("chumpy.ch", "Ch"): _Chumpy, ("chumpy", "Ch"): _Chumpy}
for _kind in ("csc", "csr", "coo"):
    for _mod in (f"scipy.sparse.{_kind}", f"scipy.sparse._{_kind}", "scipy.sparse"):
        _STAND_INS[(_mod, f"{_kind}_matrix")] = _sparse(_kind)
        _STAND_INS[(_mod, f"{_kind}_array")] = _sparse(_kind)


MAX_ELEMENTS = 50_000_000  # numbers in one array: FLAME's largest (shapedirs) has 2.1 M


def _plain(v):
    """Stand-ins -> numpy arrays; everything else as it is. Nested lists are sized first: a
    pickle can repeat one list by reference, so a few bytes can stand for billions of numbers."""
    if isinstance(v, (_Chumpy, _Sparse)):
        v = v.array()
    if isinstance(v, (list, tuple)) and _leaves(v, {}) > MAX_ELEMENTS:
        raise LaliaError(f"a value in the file holds over {MAX_ELEMENTS} numbers (or contains itself); "
                         "not a FLAME model")
    return v


def _leaves(v, memo: dict, depth: int = 0) -> float:
    """Numbers in nested lists, counting repeats; each distinct list is walked once (memo), a
    list that contains itself counts as infinite."""
    if not isinstance(v, (list, tuple)):
        return 1
    if id(v) in memo:
        return memo[id(v)]
    if depth > 64:  # no array has 64 dimensions
        return float("inf")
    memo[id(v)] = float("inf")  # in progress: meeting it again is a cycle
    n = 0
    for x in v:
        n += _leaves(x, memo, depth + 1)
        if n > MAX_ELEMENTS:
            break
    memo[id(v)] = n
    return n


def _read_mapping(path: Path, what: str) -> dict:
    """A FLAME-style file (pkl, npz, or npy holding a pickled dict) -> dict of plain values."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise LaliaError(f"{what} not found: {path}")
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as d:
                return {k: d[k] for k in d.files}
        except (ValueError, OSError) as e:
            raise LaliaError(f"{path.name} is not a readable npz ({e})") from None
    raw = path.read_bytes()
    if suffix == ".npy":
        raw = _npy_payload(raw, path)
        if isinstance(raw, np.ndarray):
            raise LaliaError(f"{path.name} holds a plain array, not a {what}")
    obj = safe_loads(raw, path.name, extra_allowed=_STAND_INS, encoding="latin1")
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()  # np.save of a dict
    if not isinstance(obj, dict):
        raise LaliaError(f"{path.name} is not a {what}: expected a dictionary of arrays, got {type(obj).__name__}")
    try:
        return {str(k): _plain(v) for k, v in obj.items()}
    except LaliaError as e:
        raise LaliaError(f"{path.name}: {e}") from None


def _npy_payload(raw: bytes, path: Path):
    """An .npy file: its array when plain, or the bytes of the pickle it carries (object arrays)."""
    import ast
    import io
    if raw[:6] != b"\x93NUMPY" or len(raw) < 10:
        raise LaliaError(f"{path.name} is not an .npy file")
    major = raw[6]
    hlen_size = 2 if major == 1 else 4
    hlen = int.from_bytes(raw[8:8 + hlen_size], "little")
    try:
        header = ast.literal_eval(raw[8 + hlen_size: 8 + hlen_size + hlen].decode("latin1"))
        descr = header.get("descr")
        if descr != "|O":
            return np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, SyntaxError, TypeError, AttributeError, MemoryError, RecursionError, EOFError) as e:
        raise LaliaError(f"{path.name} is not a readable .npy file ({type(e).__name__})") from None
    return raw[8 + hlen_size + hlen:]


# ---- the model --------------------------------------------------------------------------
@dataclass
class FlameModel:
    v_template: np.ndarray   # V x 3, FLAME coordinates, metres
    faces: np.ndarray        # F x 3
    shapedirs: np.ndarray    # V x 3 x n_shape (identity)
    expdirs: np.ndarray      # V x 3 x n_exp (expression)
    posedirs: np.ndarray | None  # V x 3 x P pose correctives (P = 36 for FLAME's 4 joints)
    joints: np.ndarray       # 5 x 3 rest joints (J_regressor @ v_template)
    weights: np.ndarray      # V x 5 skinning weights
    parents: np.ndarray      # 5, -1 for the root
    name: str = "FLAME"
    sha256: str = ""

    @property
    def n_exp(self) -> int:
        return int(self.expdirs.shape[2])

    def save_npz(self, path) -> Path:
        """The same model as an npz (no pickle), readable by `load_flame`."""
        from ..base.files import atomic_write
        path = Path(path)
        shapedirs = np.concatenate([self.shapedirs, self.expdirs], 2)
        extra = {} if self.posedirs is None else {"posedirs": self.posedirs}
        with atomic_write(path, "FLAME npz") as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, v_template=self.v_template, f=self.faces, shapedirs=shapedirs,
                                weights=self.weights, kintree_table=np.stack([self.parents, np.arange(5)]),
                                J=self.joints, **extra)
        return path


def load_flame(path, n_shape: int = N_SHAPE) -> FlameModel:
    """Read and validate a FLAME model (pkl or npz). Bad files raise LaliaError naming the
    problem; nothing in them is executed."""
    path = Path(path)
    d = _read_mapping(path, "FLAME model")
    missing = [k for k in ("v_template", "f", "shapedirs", "weights", "kintree_table") if k not in d]
    if "J_regressor" not in d and "J" not in d:
        missing.append("J_regressor")
    if missing:
        raise LaliaError(f"{path.name} is not a FLAME model: it lacks {', '.join(missing)} "
                         f"(found {', '.join(sorted(d)[:8])})")
    try:
        v = np.asarray(d["v_template"], np.float64)
        faces = np.asarray(d["f"], np.int64)
        sd = np.asarray(d["shapedirs"], np.float64)
        weights = np.asarray(d["weights"], np.float64)
        kin = np.asarray(d["kintree_table"], np.int64)
    except (TypeError, ValueError, OverflowError) as e:
        raise LaliaError(f"{path.name}: a FLAME array has an unexpected type ({e})") from None
    V = len(v) if v.ndim else 0
    problems = []
    if v.ndim != 2 or v.shape[1] != 3:
        problems.append(f"v_template is {v.shape}, expected V x 3")
    if faces.ndim != 2 or faces.shape[1] != 3 or (faces.size and (faces.min() < 0 or faces.max() >= V)):
        problems.append("f must be F x 3 vertex indices")
    if sd.ndim != 3 or sd.shape[:2] != (V, 3):
        problems.append(f"shapedirs is {sd.shape}, expected {V} x 3 x K")
    elif sd.shape[2] <= n_shape:
        problems.append(f"shapedirs has {sd.shape[2]} components: no expression components after the "
                        f"{n_shape} identity ones")
    if weights.shape != (V, 5):
        problems.append(f"weights is {weights.shape}, expected {V} x 5 (root, neck, jaw, eyes)")
    if kin.shape != (2, 5):
        problems.append(f"kintree_table is {kin.shape}, expected 2 x 5")
    elif not all(0 <= kin[0, i] < i for i in range(1, 5)):
        problems.append(f"kintree_table's parents {kin[0].tolist()} are not a tree over the 5 joints")
    if V < 3 or faces.size == 0:
        problems.append(f"the mesh has {V} vertices and faces of shape {faces.shape}")
    if problems:
        raise LaliaError(f"{path.name} is not a usable FLAME model: " + "; ".join(problems))
    try:
        return _assemble(path, d, v, faces, sd, weights, kin, n_shape)
    except (TypeError, ValueError, OverflowError) as e:
        raise LaliaError(f"{path.name}: a FLAME array has an unexpected type or shape ({e})") from None


def _assemble(path: Path, d: dict, v, faces, sd, weights, kin, n_shape: int) -> FlameModel:
    V = len(v)
    if "J_regressor" in d:
        J = np.asarray(d["J_regressor"], np.float64)
        if J.shape != (5, V):
            raise LaliaError(f"{path.name}: J_regressor is {J.shape}, expected 5 x {V}")
        joints = J @ v
    else:
        joints = np.asarray(d["J"], np.float64)
    posedirs = None
    if "posedirs" in d:
        pd = np.asarray(d["posedirs"], np.float64)
        posedirs = pd.reshape(V, 3, -1) if pd.size % (V * 3) == 0 else None
    parents = kin[0].copy()
    parents[0] = -1
    if joints.shape != (5, 3):
        raise LaliaError(f"{path.name}: the joints are {joints.shape}, expected 5 x 3")
    arrays = {"v_template": v, "shapedirs": sd, "weights": weights, "joints": joints, "posedirs": posedirs}
    bad = [k for k, a in arrays.items() if a is not None and not np.all(np.isfinite(a))]
    if bad:
        raise LaliaError(f"{path.name}: the model contains NaN or infinite values (in {', '.join(bad)}); "
                         "the file is damaged: download it again")
    n_exp = sd.shape[2] - n_shape
    log.info("FLAME model %s: %d vertices, %d shape + %d expression components", path.name, V, n_shape, n_exp)
    return FlameModel(v, faces, sd[:, :, :n_shape], sd[:, :, n_shape:], posedirs, joints, weights, parents,
                      name=path.stem, sha256=hashlib.sha256(path.read_bytes()).hexdigest())


def load_landmark_embedding(path, model: FlameModel) -> np.ndarray:
    """Landmark positions (L x 3, FLAME coordinates) on the template from an embedding file:
    FLAME's static embedding (`lmk_face_idx`, `lmk_b_coords`), DECA's `landmark_embedding.npy`
    (`static_lmk_faces_idx`, ...) or an npz with either naming. FLAME's 51 static landmarks
    are the iBUG-68 points without the jaw line (index = iBUG index - 17)."""
    path = Path(path)
    d = _read_mapping(path, "landmark embedding")
    for fk, bk in (("lmk_face_idx", "lmk_b_coords"), ("static_lmk_faces_idx", "static_lmk_bary_coords"),
                   ("full_lmk_faces_idx", "full_lmk_bary_coords")):
        if fk in d and bk in d:
            fi = np.asarray(d[fk], np.int64).reshape(-1)
            bc = np.asarray(d[bk], np.float64).reshape(len(fi), 3)
            break
    else:
        raise LaliaError(f"{path.name} is not a FLAME landmark embedding (no lmk_face_idx/lmk_b_coords)")
    if fi.min() < 0 or fi.max() >= len(model.faces):
        raise LaliaError(f"{path.name}: landmark faces are out of range for {model.name}")
    tri = model.v_template[model.faces[fi]]  # L x 3 x 3
    return (bc[:, :, None] * tri).sum(1)


# ---- the retarget -----------------------------------------------------------------------
@dataclass
class FlameRigData:
    """What the retarget needs from a FLAME rig, in Blender coordinates: from a FLAME file
    (`rig_data_from_flame`) or read off a Blender object (the add-on)."""
    vertices: np.ndarray    # V x 3 neutral
    expdirs: np.ndarray     # V x 3 x N (one unit of each Exp shape key)
    jaw_joint: np.ndarray   # 3
    jaw_weights: np.ndarray  # V
    face: np.ndarray        # V bool: vertices that take part (skin of the face; not eyeballs)
    landmarks: dict | None = None  # our landmark name -> point (3,), for the alignment


def rig_data_from_flame(model: FlameModel, landmarks: np.ndarray | None = None) -> FlameRigData:
    v = flame_to_blender(model.v_template)
    exp = np.einsum("ij,vjn->vin", FLAME_TO_BLENDER, model.expdirs)
    eyes = model.weights[:, 3:5].sum(1) > 0.5
    lm = None
    if landmarks is not None and len(landmarks) == 51:
        lm = {name: flame_to_blender(landmarks[i - 17]) for name, i in IBUG_LANDMARKS.items()}
    return FlameRigData(v, exp, flame_to_blender(model.joints[2]), model.weights[:, 2], ~eyes, lm)


# our landmark -> iBUG-68 index (the subject's left is the image right)
IBUG_LANDMARKS = {"noseTip": 30, "mouthCornerRight": 48, "mouthCornerLeft": 54, "upperLipOuter": 51,
                  "lowerLipOuter": 57, "upperLipInner": 62, "lowerLipInner": 66, "browRight": 19,
                  "browLeft": 24}


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama (1991): s, R, t minimising |s R src + t - dst|^2 over point pairs."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    U, S, Vt = np.linalg.svd(b.T @ a / len(src))
    D = np.eye(3)
    D[2, 2] = np.sign(np.linalg.det(U @ Vt))
    R = U @ D @ Vt
    s = float(np.trace(np.diag(S) @ D) / (a ** 2).sum(1).mean())
    return s, R, md - s * R @ ms


def _front_tip(v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The most forward (-y) point of the upper two thirds of a head: the nose tip."""
    z = v[mask, 2]
    upper = mask & (v[:, 2] > z.min() + (z.max() - z.min()) / 3)
    return v[upper][np.argmin(v[upper, 1])]


def nearest(points: np.ndarray, queries: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(distance, index) of each query's nearest point, by brute force in chunks: heads have a few
    thousand vertices, and the add-on ships without scipy's KD-tree (41 MB per Python)."""
    points, queries = np.asarray(points, np.float64), np.asarray(queries, np.float64)
    p2 = (points**2).sum(1)
    idx = np.empty(len(queries), np.int64)
    for s in range(0, len(queries), chunk):
        q = queries[s : s + chunk]
        idx[s : s + chunk] = (p2[None] - 2 * q @ points.T).argmin(1)  # |q|^2 is the same for every point
    return np.linalg.norm(queries - points[idx], axis=1), idx


def align(src_v: np.ndarray, src_mask: np.ndarray, dst: FlameRigData, src_landmarks: dict | None = None,
          iterations: int = 30) -> tuple[float, np.ndarray, np.ndarray, float]:
    """Similarity transform taking the bundled head onto the FLAME head: initialised from
    shared landmarks when there are some (else the nose tips and head heights), then refined by
    ICP with scale over the front of the face. Returns (s, R, t, rms distance in m)."""
    dv, dmask = dst.vertices, dst.face
    if dst.landmarks and src_landmarks:
        names = [n for n in dst.landmarks if n in src_landmarks]
        s, R, t = similarity(np.stack([src_landmarks[n] for n in names]), np.stack([dst.landmarks[n] for n in names]))
    else:
        ts, td = _front_tip(src_v, src_mask), _front_tip(dv, dmask)
        s = (dv[dmask, 2].max() - td[2]) / (src_v[src_mask, 2].max() - ts[2])
        R, t = np.eye(3), td - s * ts
    tip = _front_tip(dv, dmask)
    radius = 0.6 * (dv[dmask, 2].max() - tip[2])
    face = np.nonzero(dmask & (np.linalg.norm(dv - tip, axis=1) < radius) & (dv[:, 1] < tip[1] + radius / 2))[0]
    src_idx = np.nonzero(src_mask)[0]
    rms = np.inf
    for _ in range(iterations):
        moved = s * src_v[src_idx] @ R.T + t
        dist, nn = nearest(moved, dv[face])
        keep = dist <= max(3 * np.median(dist), 1e-4)
        s, R, t = similarity(src_v[src_idx[nn[keep]]], dv[face[keep]])
        rms = float(np.sqrt((dist[keep] ** 2).mean()))
    return s, R, t, rms


def dense_pairs(src_v, src_mask, src_moving, dst: FlameRigData, s, R, t, max_dist: float = 0.004):
    """(dst indices, src indices): each FLAME face vertex and its nearest bundled-head vertex
    after alignment, within `max_dist`, where the ARKit shapes move anything."""
    idx = np.nonzero(src_mask)[0]
    moved = s * src_v[idx] @ R.T + t
    dist, nn = nearest(moved, dst.vertices)
    ok = dst.face & (dist < max_dist) & src_moving[idx[nn]]
    return np.nonzero(ok)[0], idx[nn[ok]]


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    """Rodrigues: axis-angle (..., 3) -> rotation matrices (..., 3, 3)."""
    aa = np.asarray(aa, np.float64)
    theta = np.linalg.norm(aa, axis=-1, keepdims=True)
    k = aa / np.maximum(theta, 1e-12)
    K = np.zeros(aa.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    K = K - np.swapaxes(K, -1, -2)
    s, c = np.sin(theta)[..., None], np.cos(theta)[..., None]
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def _crossmat(p: np.ndarray) -> np.ndarray:
    """J x 3 points -> J x 3 x 3 Jacobians of (w x p) with respect to w."""
    z = np.zeros(len(p))
    return np.stack([np.stack([z, p[:, 2], -p[:, 1]], 1), np.stack([-p[:, 2], z, p[:, 0]], 1),
                     np.stack([p[:, 1], -p[:, 0], z], 1)], 1)


def solve_retarget(src_disp: np.ndarray, dst: FlameRigData, dst_idx: np.ndarray, reg: float = 1e-3,
                   jaw_reg: float = 1e-3, refine: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Per source shape k: FLAME expression coefficients e_k (N) and jaw axis-angle w_k (3,
    Blender armature axes) minimising
        sum_j |expdirs_j e_k + jaw_j(w_k) - d_kj|^2 + reg a_e |e_k|^2 + jaw_reg a_w |w_k|^2
    where d_kj is shape k's displacement at pair j (src_disp: K x J x 3, already aligned),
    jaw_j(w) = jaw_weight_j (R(w) - I)(v_j - jaw_joint) (linear blend skinning), and a_e, a_w
    the mean diagonal of the normal equations for each block (so `reg` is scale-free). Ridge
    least squares with the jaw linearised (R(w) r ~ r + w x r), then Gauss-Newton steps on the
    jaw angle, each with the expression re-solved. -> (K x N, K x 3)."""
    E = dst.expdirs[dst_idx]                               # J x 3 x N
    r = dst.vertices[dst_idx] - dst.jaw_joint              # J x 3
    wj = dst.jaw_weights[dst_idx][:, None, None]           # J x 1 x 1
    N = E.shape[2]
    A = np.concatenate([E, wj * _crossmat(r)], 2).reshape(-1, N + 3)
    AtA = A.T @ A
    d = np.diag(AtA)
    lam = np.concatenate([np.full(N, reg * d[:N].mean()), np.full(3, jaw_reg * d[N:].mean())])
    sol = np.linalg.solve(AtA + np.diag(lam), A.T @ src_disp.reshape(len(src_disp), -1).T).T
    exp, jaw = sol[:, :N], sol[:, N:]
    Ef = E.reshape(-1, N)
    exp_lhs = Ef.T @ Ef + np.diag(lam[:N])
    for _ in range(refine):  # the jaw rotates: make its displacement exact, not linearised
        for k in range(len(src_disp)):
            if np.linalg.norm(jaw[k]) < 1e-6:
                continue
            rotated = r @ axis_angle_to_matrix(jaw[k]).T
            jaw_disp = wj[:, :, 0] * (rotated - r)
            exp[k] = np.linalg.solve(exp_lhs, Ef.T @ (src_disp[k] - jaw_disp).reshape(-1))
            resid = (src_disp[k] - E @ exp[k] - jaw_disp).reshape(-1)
            Jac = (wj * _crossmat(rotated)).reshape(-1, 3)  # left perturbation of the rotation
            jaw[k] = jaw[k] + np.linalg.solve(Jac.T @ Jac + np.diag(lam[N:]), Jac.T @ resid)
    return exp, jaw


def retarget_arkit(dst: FlameRigData, landmark_pairs: list[tuple[int, int]] | None = None,
                   reg: float = 1e-3) -> dict:
    """The ARKit -> FLAME retarget for the bundled head's 52 shapes.

    landmark_pairs: [(bundled-head vertex, FLAME vertex)] to use those points only; default: a
    dense correspondence after aligning the heads. Returns {"expression": 52 x N,
    "jaw": 52 x 3 (axis-angle, Blender armature axes), "pairs": count, "align_rms_mm": ...}."""
    from ..base.head import load_head
    head = load_head()
    skin = head.part == 0
    moving = np.abs(head.targets).max((0, 2)) > 1e-5
    if landmark_pairs is not None:
        src_idx = np.array([a for a, _ in landmark_pairs])
        dst_idx = np.array([b for _, b in landmark_pairs])
        s, R, t = similarity(head.vertices[src_idx], dst.vertices[dst_idx])
        rms = float(np.sqrt(((s * head.vertices[src_idx] @ R.T + t - dst.vertices[dst_idx]) ** 2).sum(1).mean()))
    else:
        src_lm = {n: head.vertices[i] for n, i in head.landmarks.items()}
        s, R, t, rms = align(head.vertices, skin, dst, src_lm)
        dst_idx, src_idx = dense_pairs(head.vertices, skin, moving, dst, s, R, t)
        if len(dst_idx) < 50:
            raise LaliaError(f"Could not match the FLAME head to the bundled head ({len(dst_idx)} "
                             "corresponding points; is it a FLAME head?)")
    disp = s * head.targets[:, src_idx] @ R.T  # 52 x J x 3, in the FLAME head's frame
    exp, jaw = solve_retarget(disp, dst, dst_idx, reg=reg)
    return {"expression": exp.astype(np.float32), "jaw": jaw.astype(np.float32), "pairs": int(len(dst_idx)),
            "align_rms_mm": round(rms * 1000, 3), "scale": round(float(s), 4)}


# eye gaze: ARKit's eyeLook weights at 1 as rotations (radians)
GAZE_YAW, GAZE_PITCH = 0.44, 0.35


def arkit_to_flame(motion, retarget: dict):
    """An ARKit-layout Motion -> the FLAME layout (Exp1..N, FLAME jaw axis-angle, head
    rotation, eye rotations) through a retarget from `retarget_arkit`."""
    from ..base.motion import ARKIT_NAMES, HEAD_ROTATION_NAMES, Motion, flame_layout
    E, J = np.asarray(retarget["expression"]), np.asarray(retarget["jaw"])
    m = motion.select(ARKIT_NAMES + HEAD_ROTATION_NAMES)
    w = m.values[:, :52]
    jaw_blender = w @ J
    jaw_flame = jaw_blender @ FLAME_TO_BLENDER  # blender -> flame axes (M^T applied to rows)
    c = lambda n: w[:, ARKIT_NAMES.index(n)]
    eyes = np.stack([
        GAZE_PITCH * (c("eyeLookDownLeft") - c("eyeLookUpLeft")),   # pitch > 0 looks down, like the head
        GAZE_YAW * (c("eyeLookOutLeft") - c("eyeLookInLeft")),      # yaw > 0 turns to the character's left
        GAZE_PITCH * (c("eyeLookDownRight") - c("eyeLookUpRight")),
        GAZE_YAW * (c("eyeLookInRight") - c("eyeLookOutRight"))], 1)
    values = np.concatenate([w @ E, jaw_flame, m.values[:, 52:55], eyes], 1)
    return Motion(motion.fps, flame_layout(E.shape[1], eyes=True), values.astype(np.float32))


def pseudo_flame_from_head(n_components: int = 40) -> FlameRigData:
    """A FLAME-like rig made from the bundled head, for validating the retarget where no FLAME
    model exists: its expression basis is the PCA of the 48 non-jaw ARKit targets (so opening
    the jaw must come from the jaw bone, as in FLAME), and its jaw is the head's jaw bone."""
    from ..base.head import load_head
    h = load_head()
    from ..base.motion import ARKIT_NAMES
    jaw_shapes = {"jawForward", "jawLeft", "jawRight", "jawOpen"}
    keep = [i for i, n in enumerate(ARKIT_NAMES) if n not in jaw_shapes]
    X = h.targets[keep].reshape(len(keep), -1).astype(np.float64)
    _, S, Vt = np.linalg.svd(X, full_matrices=False)
    k = min(n_components, len(S))
    expdirs = (Vt[:k] * S[:k, None] / np.sqrt(len(keep))).reshape(k, len(h.vertices), 3).transpose(1, 2, 0)
    jaw = list(h.bone_names).index("jaw")
    return FlameRigData(h.vertices.astype(np.float64), expdirs, h.bone_heads[jaw].astype(np.float64),
                        h.bone_weights[:, jaw].astype(np.float64), h.part == 0)


def rig_vertices(rig: FlameRigData, motion) -> np.ndarray:
    """Vertices (T x V x 3) of a FLAME-like rig driven by a FLAME-layout Motion (expression and
    jaw only: head rotation is left out, as the metrics do)."""
    from ..base.motion import JAW_ROTATION_NAMES
    n = rig.expdirs.shape[2]
    exp = motion.select([f"Exp{i + 1}" for i in range(n)]).values
    jaw = motion.select(JAW_ROTATION_NAMES).values @ FLAME_TO_BLENDER.T
    r = rig.vertices - rig.jaw_joint
    rotated = np.einsum("tij,vj->tvi", axis_angle_to_matrix(jaw), r)
    return rig.vertices + np.einsum("vjn,tn->tvj", rig.expdirs, exp) + rig.jaw_weights[:, None] * (rotated - r)


def validate_retarget(motion, n_components: int = 40) -> dict:
    """The retarget checked on the bundled head (no FLAME needed): drive the pseudo-FLAME
    rig by the retargeted motion and compare its skin with the direct ARKit result, through
    a dense correspondence and through the 14 named landmarks only. Errors in mm over the
    skin vertices that the mouth, eye and brow shapes move."""
    from ..base.head import load_head
    from ..base.motion import ARKIT_NAMES
    h = load_head()
    rig = pseudo_flame_from_head(n_components)
    direct = h.deform(motion.select(ARKIT_NAMES).values)
    region = (h.part == 0) & (np.abs(h.targets).max((0, 2)) > 1e-4)
    report = {"components": rig.expdirs.shape[2], "frames": motion.num_frames, "vertices": int(region.sum())}
    lm = [(i, i) for i in h.landmarks.values()]
    for name, pairs in (("dense", None), ("landmarks", lm)):
        rt = retarget_arkit(rig, landmark_pairs=pairs)
        got = rig_vertices(rig, arkit_to_flame(motion, rt))
        err = np.linalg.norm(got - direct, axis=2)[:, region] * 1000
        report[name] = {"pairs": rt["pairs"], "mean_mm": round(float(err.mean()), 3),
                        "p95_mm": round(float(np.percentile(err, 95)), 3), "max_mm": round(float(err.max()), 3)}
    motion_mm = np.linalg.norm(direct - h.vertices, axis=2)[:, region] * 1000
    report["motion_mean_mm"] = round(float(motion_mm.mean()), 3)
    return report
