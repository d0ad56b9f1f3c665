"""A synthetic FLAME model file with FLAME 2020's pickle structure and key names, for tests
(the real model can't be downloaded or shipped).

Like `generic_model.pkl`: a protocol-2 pickle of a dict holding numpy arrays, a `chumpy.ch.Ch`
(`shapedirs`, its array under 'x' in the pickled state) and a scipy sparse `J_regressor`. The
mesh is the bundled head's skin and eyes in FLAME's axes (Y up, face +Z), so the retarget can
align it; the identity basis is random, the expression basis random mixtures of the head's
non-jaw ARKit targets plus noise, the skinning weights root/neck/jaw/eyes from the head's bones.
chumpy is not installed: a stand-in module is put in sys.modules only while pickling.
"""
from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np

BLENDER_TO_FLAME = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], np.float64)


class _FakeCh:
    """Pickles like chumpy.ch.Ch: NEWOBJ of the class, then its __dict__ as state."""

    def __init__(self, x):
        self.x = np.asarray(x, np.float64)
        self._dirty_vars = set()
        self._itr = None
        self._depends_on_deps = {}
        self._make_dense = False
        self._make_sparse = False


def flame_dict(n_exp: int = 100, n_shape: int = 300, seed: int = 0, with_posedirs: bool = True) -> dict:
    import scipy.sparse as sp

    from model_core.base.head import load_head
    from model_core.base.motion import ARKIT_NAMES
    h = load_head()
    keep = np.nonzero(h.part <= 1)[0]  # skin and eyes (FLAME has eyeballs, no teeth or tongue)
    remap = -np.ones(len(h.vertices), np.int64)
    remap[keep] = np.arange(len(keep))
    tris = []
    for p in h.polygons:
        q = [int(i) for i in p if i >= 0]
        if all(remap[i] >= 0 for i in q):
            tris += [[remap[q[0]], remap[q[j]], remap[q[j + 1]]] for j in range(1, len(q) - 1)]
    V = len(keep)
    to_flame = lambda p: p @ BLENDER_TO_FLAME.T
    v = to_flame(h.vertices[keep].astype(np.float64))
    rng = np.random.default_rng(seed)
    shapedirs = rng.normal(0, 1e-4, (V, 3, n_shape))
    src = [k for k, n in enumerate(ARKIT_NAMES) if not n.startswith("jaw")]
    mix = rng.normal(0, 1, (len(src), n_exp)) / np.sqrt(len(src))
    targets = to_flame(h.targets[src][:, keep].astype(np.float64))  # S x V x 3
    expdirs = np.einsum("svj,sn->vjn", targets, mix) + rng.normal(0, 2e-5, (V, 3, n_exp))
    # weights: root, neck, jaw, left eye, right eye (from the head's neck/head/jaw bones)
    bw = h.bone_weights[keep].astype(np.float64)
    weights = np.zeros((V, 5))
    weights[:, 1] = bw[:, 0] + bw[:, 1]
    weights[:, 2] = bw[:, 2]
    eye = h.part[keep] == 1
    left = eye & (h.vertices[keep, 0] > 0)
    weights[eye] = 0
    weights[left, 3] = 1
    weights[eye & ~left, 4] = 1
    joints_b = np.array([h.bone_heads[0], h.bone_heads[0], h.bone_heads[2],
                         h.vertices[keep][left].mean(0), h.vertices[keep][eye & ~left].mean(0)])
    J = to_flame(joints_b.astype(np.float64))
    # a sparse J_regressor that reproduces J exactly: affine weights over 8 nearby vertices
    reg = np.zeros((5, V))
    for j in range(5):
        near = np.argsort(np.linalg.norm(v - J[j], axis=1))[:8]
        A = np.vstack([v[near].T, np.ones(8)])
        reg[j, near] = np.linalg.lstsq(A, np.append(J[j], 1.0), rcond=None)[0]
    d = {"f": np.array(tris, np.uint32), "v_template": v, "shapedirs": _FakeCh(np.concatenate([shapedirs, expdirs], 2)),
         "J_regressor": sp.csc_matrix(reg), "J": J,
         "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]]),
         "weights": weights, "bs_style": "lbs", "bs_type": "lrotmin"}
    if with_posedirs:
        d["posedirs"] = rng.normal(0, 1e-4, (V, 3, 36))
    return d


def write_flame_pickle(path: Path, d: dict | None = None, **kw) -> Path:
    d = flame_dict(**kw) if d is None else d
    chumpy, ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    ch.Ch = type("Ch", (_FakeCh,), {"__module__": "chumpy.ch"})
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = chumpy, ch
    try:
        d = {k: (ch.Ch(v.x) if isinstance(v, _FakeCh) else v) for k, v in d.items()}
        path.write_bytes(pickle.dumps(d, protocol=2))
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    return path
