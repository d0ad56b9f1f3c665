"""FLAME without the real FLAME: the safe loader on files with FLAME's pickle structure, bad
files, landmark embeddings, and the ARKit -> FLAME retarget checked on the bundled head."""
import os
import pickle

import numpy as np
import pytest
from flame_fixture import flame_dict, write_flame_pickle

from model_core.base.errors import LaliaError
from model_core.base.motion import ARKIT_NAMES, Motion, flame_layout
from model_core.retarget.flame import (
    arkit_to_flame,
    load_flame,
    load_landmark_embedding,
    pseudo_flame_from_head,
    retarget_arkit,
    rig_data_from_flame,
    rig_vertices,
    validate_retarget,
)


@pytest.fixture(scope="module")
def flame_pkl(tmp_path_factory):
    return write_flame_pickle(tmp_path_factory.mktemp("flame") / "generic_model.pkl")


def test_loads_flame_2020_pickle_without_chumpy(flame_pkl):
    assert "chumpy" not in __import__("sys").modules
    m = load_flame(flame_pkl)
    d = flame_dict()
    assert m.n_exp == 100 and m.shapedirs.shape[2] == 300
    np.testing.assert_allclose(m.v_template, d["v_template"])
    np.testing.assert_allclose(m.expdirs, d["shapedirs"].x[:, :, 300:])
    np.testing.assert_allclose(m.joints, d["J"], atol=1e-9)  # J_regressor (sparse) @ template
    assert list(m.parents) == [-1, 0, 1, 1, 1] and m.posedirs.shape[2] == 36 and len(m.sha256) == 64
    assert "chumpy" not in __import__("sys").modules


def test_50_expression_components_and_npz_roundtrip(tmp_path):
    p = write_flame_pickle(tmp_path / "flame50.pkl", n_exp=50, with_posedirs=False)
    m = load_flame(p)
    assert m.n_exp == 50 and m.posedirs is None
    again = load_flame(m.save_npz(tmp_path / "flame50.npz"))
    np.testing.assert_allclose(again.expdirs, m.expdirs)
    np.testing.assert_allclose(again.joints, m.joints)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/lalia_pwned_by_pickle",))


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    marker = "/tmp/lalia_pwned_by_pickle"
    if os.path.exists(marker):
        os.remove(marker)
    p = tmp_path / "evil.pkl"
    d = flame_dict(n_exp=50, with_posedirs=False)
    d["shapedirs"] = _Evil()
    p.write_bytes(pickle.dumps(d, protocol=2))
    with pytest.raises(LaliaError, match="refused"):
        load_flame(p)
    assert not os.path.exists(marker)


@pytest.mark.parametrize("case,msg", [
    ("truncated", "not a readable pickle"), ("wrong_keys", "lacks"), ("not_a_dict", "dictionary"),
    ("bad_shapes", "weights"), ("no_expressions", "no expression components"), ("text", "not a readable pickle"),
    ("missing", "not found")])
def test_bad_flame_files_are_clear_errors(tmp_path, flame_pkl, case, msg):
    p = tmp_path / "model.pkl"
    if case == "truncated":
        p.write_bytes(flame_pkl.read_bytes()[:100000])
    elif case == "wrong_keys":
        p.write_bytes(pickle.dumps({"vertices": np.zeros((3, 3)), "faces": np.zeros((1, 3))}, protocol=2))
    elif case == "not_a_dict":
        p.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    elif case == "bad_shapes":
        d = flame_dict(n_exp=50, with_posedirs=False)
        d["weights"] = d["weights"][:, :3]
        write_flame_pickle(p, d)
    elif case == "no_expressions":
        d = flame_dict(n_exp=50, with_posedirs=False)
        d["shapedirs"].x = d["shapedirs"].x[:, :, :300]
        write_flame_pickle(p, d)
    elif case == "text":
        p.write_text("this is not a model")
    else:
        p = tmp_path / "nothing.pkl"
    with pytest.raises(LaliaError, match=msg):
        load_flame(p)


def test_landmark_embeddings(tmp_path, flame_pkl):
    m = load_flame(flame_pkl)
    fi = np.arange(51) * 7
    bc = np.tile([0.2, 0.3, 0.5], (51, 1))
    expect = (bc[:, :, None] * m.v_template[m.faces[fi]]).sum(1)
    static = tmp_path / "flame_static_embedding.pkl"  # FLAME's own file
    static.write_bytes(pickle.dumps({"lmk_face_idx": fi.astype(np.uint32), "lmk_b_coords": bc}, protocol=2))
    np.testing.assert_allclose(load_landmark_embedding(static, m), expect)
    deca = tmp_path / "landmark_embedding.npy"  # DECA's: np.save of a dict (an object array)
    np.save(deca, {"static_lmk_faces_idx": fi, "static_lmk_bary_coords": bc,
                   "dynamic_lmk_faces_idx": fi[:17]}, allow_pickle=True)
    np.testing.assert_allclose(load_landmark_embedding(deca, m), expect)
    evil = tmp_path / "evil.npy"
    np.save(evil, np.array({"x": _Evil()}, dtype=object), allow_pickle=True)
    with pytest.raises(LaliaError, match="refused"):
        load_landmark_embedding(evil, m)


@pytest.fixture(scope="module")
def speech_motion():
    """The procedural animator saying a sentence, happy: 'ground truth' ARKit motion."""
    from model_core.data.animator import Style, animate
    from model_core.data.tts import synthesize
    u = synthesize("Maybe the brown fox will jump over the lazy dog today.",
                   {"engine": "espeak", "name": "en-us", "rate": 160, "pitch": 50, "range": 50},
                   {"pitch": 1.0, "range": 1.0, "rate": 1.0})
    T = int(u.duration * 25)
    emo = np.zeros((T, 8), np.float32)
    emo[:, 0], emo[:, 1] = 0.4, 0.6
    return animate(u.phones, T, emo, Style(), np.random.default_rng(0))


def test_retarget_reproduces_the_arkit_face_on_the_bundled_head(speech_motion):
    """Drive a FLAME-like rig made from the bundled head (PCA expression basis without the jaw
    shapes, the head's jaw bone) through the retarget: its skin must match the direct ARKit
    result far closer than the face moves."""
    r = validate_retarget(speech_motion)
    assert r["dense"]["mean_mm"] < 0.25 * r["motion_mean_mm"] and r["dense"]["p95_mm"] < 2.0
    assert r["landmarks"]["pairs"] == 14 and r["landmarks"]["mean_mm"] < 0.5 * r["motion_mean_mm"]


def test_retarget_opens_the_jaw_with_the_jaw_bone(flame_pkl):
    m = load_flame(flame_pkl)
    rig = rig_data_from_flame(m)
    rt = retarget_arkit(rig)
    assert rt["expression"].shape == (52, 100) and rt["jaw"].shape == (52, 3) and rt["pairs"] > 1000
    k = ARKIT_NAMES.index("jawOpen")
    assert np.linalg.norm(rt["jaw"][k]) > 0.2  # radians: the jaw bone does the opening
    w = np.zeros((2, 55), np.float32)
    w[1, k] = 1.0
    fm = arkit_to_flame(Motion(25.0, ARKIT_NAMES + ("headPitch", "headYaw", "headRoll"), w), rt)
    assert fm.channels == flame_layout(100, eyes=True)
    v = rig_vertices(rig, fm)
    jawed = rig.face & (rig.jaw_weights > 0.9)
    chin = np.argmin(np.where(jawed, rig.vertices[:, 2] + rig.vertices[:, 1], np.inf))  # low and forward
    assert v[1, chin, 2] < v[0, chin, 2] - 0.005  # the chin drops by more than 5 mm


def test_pseudo_flame_has_no_jaw_shapes():
    rig = pseudo_flame_from_head(20)
    assert rig.expdirs.shape[2] == 20 and rig.jaw_weights.max() > 0.5
