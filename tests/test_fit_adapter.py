"""The fit adapter's training stage (model_core.training.fit_adapter): stretches of a corpus encoded
both ways, kept and reused, and an adapter that moves fitted features towards the padded
window's on stretches it did not train on."""
import json

import numpy as np

from model_core.model.speech_encoder import load_fit_adapter
from model_core.training.fit_adapter import FitAdapterConfig, train_adapter


def test_training_brings_held_out_features_closer_and_reuses_the_encodings(tiny_corpus, tmp_path):
    cfg = FitAdapterConfig(clips_train=16, clips_val=6, steps=80, batch=8, lr=3e-3, hidden=48)
    out = train_adapter([tiny_corpus], tmp_path / "run", tmp_path / "adapter.safetensors", cfg)
    adapter = load_fit_adapter(out)
    assert adapter.inp.out_channels == 48 and float(adapter.scale.min()) > 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    val = report["val"]
    assert val["mse"] < val["mse_raw"] and val["cos"] > val["cos_raw"], val  # the validation split's stretches
    with np.load(tmp_path / "run" / "pairs_train.npz") as d:
        lengths = np.diff(d["offsets"])
        assert len(d["samples"]) == 16 and d["fit"].shape == d["full"].shape == (lengths.sum(), 384)
        assert (np.abs(lengths - np.round(d["samples"] / 640)) <= 1).all()  # 25 fps frames of each stretch
    # a second run reuses the encoded pairs; another seed encodes new stretches
    stamp = (tmp_path / "run" / "pairs_train.npz").stat().st_mtime_ns
    train_adapter([tiny_corpus], tmp_path / "run", tmp_path / "again.safetensors", cfg)
    assert (tmp_path / "run" / "pairs_train.npz").stat().st_mtime_ns == stamp
    train_adapter([tiny_corpus], tmp_path / "run", tmp_path / "other.safetensors",
                  FitAdapterConfig(**{**cfg.__dict__, "seed": 1, "steps": 2}))
    assert (tmp_path / "run" / "pairs_train.npz").stat().st_mtime_ns != stamp
