"""Readers for real datasets, on fixtures written in exactly their formats."""
import io
import os
import pickle

import numpy as np
import pytest
import soundfile as sf

from model_core.base.errors import LaliaError
from model_core.base.motion import ARKIT_HEAD_LAYOUT, Motion
from model_core.data.readers import (
    flame_global_to_head,
    import_dataset,
    read_arkit_csv_folder,
    read_flame_npz_folder,
    read_tfhp,
)


def _flame_coefs(T, rng, n_exp=50):
    pose = np.zeros((T, 6), np.float32)
    pose[:, 0] = 0.1 * np.sin(np.arange(T) / 10)   # nod (FLAME: about x)
    pose[:, 3] = 0.2 * np.abs(np.sin(np.arange(T) / 5))  # jaw opening
    return {"shape": rng.normal(size=(T, 100)).astype(np.float32),
            "exp": rng.normal(size=(T, n_exp)).astype(np.float32), "pose": pose}


def write_tfhp(root, clips, rng, audio, seg_len=100):
    """DiffPoseTalk's LMDB layout, written as their preparation script does."""
    import lmdb
    env = lmdb.open(str(root), map_size=1 << 28)
    keys = []
    with env.begin(write=True) as txn:
        txn.put(b"metadata", pickle.dumps({"seg_len": seg_len}))
        for clip, T in clips:
            keys.append(clip)
            txn.put(f"{clip}/metadata".encode(), pickle.dumps({"n_frames": T}))
            coef = _flame_coefs(T, rng)
            for i in range((T + seg_len - 1) // seg_len):
                a, b = i * seg_len, min((i + 1) * seg_len, T)
                buf = io.BytesIO()
                sf.write(buf, audio[a * 640: b * 640], 16000, format="FLAC", subtype="PCM_16")
                seg = {"audio": buf.getvalue(), "coef": {k: v[a:b] for k, v in coef.items()}}
                txn.put(f"{clip}/{i:03d}".encode(), pickle.dumps(seg, protocol=pickle.HIGHEST_PROTOCOL))
    env.close()
    (root / "keys.txt").write_text("\n".join(keys))


def test_tfhp_reader(tmp_path, sample_audio):
    rng = np.random.default_rng(0)
    write_tfhp(tmp_path, [("spk1/000", 250), ("spk2/003", 130)], rng, sample_audio)
    seqs = list(read_tfhp(tmp_path))
    assert [s.name for s in seqs] == ["spk1/000", "spk2/003"]
    s = seqs[0]
    assert s.motion.num_frames == 250 and s.motion.fps == 25
    assert s.motion.channels[:2] == ("Exp1", "Exp2") and len(s.motion.channels) == 56
    assert abs(len(s.audio) - 250 * 640) < 640
    np.testing.assert_allclose(s.audio[:16000], sample_audio[:16000], atol=1e-3)  # FLAC is lossless
    assert np.abs(s.motion.channel("headPitch")).max() > 0.05


def test_tfhp_refuses_code_in_pickles(tmp_path, sample_audio):
    import lmdb
    write_tfhp(tmp_path, [("spk1/000", 100)], np.random.default_rng(0), sample_audio)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))
    env = lmdb.open(str(tmp_path), map_size=1 << 28)
    with env.begin(write=True) as txn:
        txn.put(b"spk1/000/000", pickle.dumps({"audio": b"", "coef": Evil()}))
    env.close()
    with pytest.raises(LaliaError, match="refused"):
        list(read_tfhp(tmp_path))
    assert not (tmp_path / "pwned").exists()


def test_flame_npz_folder(tmp_path, sample_audio):
    rng = np.random.default_rng(1)
    c = _flame_coefs(60, rng, n_exp=100)  # 30 fps, 100 expression components
    np.savez(tmp_path / "a.npz", exp=c["exp"], pose=c["pose"], fps=30.0)
    sf.write(tmp_path / "a.wav", sample_audio[: 2 * 16000], 16000)
    seqs = list(read_flame_npz_folder(tmp_path))
    assert len(seqs) == 1 and seqs[0].motion.num_frames == 50 and "Exp100" in seqs[0].motion.channels
    np.savez(tmp_path / "b.npz", exp=rng.normal(size=(10, 7)), pose=np.zeros((10, 6)))
    sf.write(tmp_path / "b.wav", sample_audio[:16000], 16000)
    with pytest.raises(LaliaError, match="50 or T x 100"):
        list(read_flame_npz_folder(tmp_path))


def test_arkit_csv_folder_and_import(tmp_path, sample_audio):
    rng = np.random.default_rng(2)
    src = tmp_path / "captures"
    for i in range(3):
        d = src / f"actor{i}"
        d.mkdir(parents=True)
        vals = rng.uniform(0, 0.5, (180, 55)).astype(np.float32)
        Motion(60.0, ARKIT_HEAD_LAYOUT, vals).save(d / "take.csv")
        sf.write(d / "take.wav", sample_audio[i * 16000: (i + 3) * 16000], 16000)
    seqs = list(read_arkit_csv_folder(src))
    assert len(seqs) == 3 and seqs[0].motion.num_frames == 75
    out = tmp_path / "corpus"
    man = import_dataset("arkit-csv", src, out, val_share=0.0, test_share=0.0)
    assert man["splits"]["train"]["takes"] == 3 and man["emotion_labels"] is False
    with pytest.raises(LaliaError, match="not empty"):
        import_dataset("arkit-csv", src, out)


def test_flame_head_rotation_convention():
    # FLAME: y up, face toward +z. A positive rotation about FLAME's x tips the face down (+pitch)
    hp = flame_global_to_head(np.array([[0.2, 0, 0], [0, 0.3, 0], [0, 0, 0.1]]))
    np.testing.assert_allclose(hp[0], [0.2, 0, 0], atol=1e-6)
    assert abs(hp[1, 1]) > 0.29 and abs(hp[1, 0]) < 1e-6  # about y (up): a turn (yaw)
    assert abs(hp[2, 2]) > 0.09 and abs(hp[2, 0]) < 1e-6  # about z (forward): roll
