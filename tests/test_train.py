import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model_core.base.errors import LaliaError
from model_core.training.train import load_config, train

ROOT = Path(__file__).resolve().parents[1]
def test_train_writes_checkpoints_and_resumes(tmp_path, tiny_corpus, train_config):
    final = train(train_config(tiny_corpus, 3))
    state = json.loads((tmp_path / "run" / "last.json").read_text())["train_state"]
    assert state["step"] == 3
    losses = [h for h in state["history"] if "x0" in h and "val" not in h]
    assert losses and all(h["x0"] > 0 for h in losses)
    assert any("val" in h for h in state["history"])
    man = json.loads(final.with_suffix(".json").read_text())
    assert len(man["norm_mean"]) == 55 and man["training"]["corpus_manifest"]["seed"] == 7
    train(train_config(tiny_corpus, 5))  # resumes from step 3
    state = json.loads((tmp_path / "run" / "last.json").read_text())["train_state"]
    assert state["step"] == 5
    assert [h["step"] for h in state["history"] if "x0" in h and "val" not in h][:3] == [1, 2, 3]


def test_trained_checkpoint_generates(tmp_path, tiny_corpus, sample_audio, train_config):
    from model_core.inference.generator import Generator
    from model_core.model.checkpoint import load_checkpoint
    final = train(train_config(tiny_corpus, 2, "gen"))
    model, manifest, extra = load_checkpoint(final)
    m = Generator(model, manifest, extra).generate(sample_audio[:16000 * 3], steps=2).motion
    assert m.values.shape == (75, 55)


def test_ddp_with_two_cpu_processes(tmp_path, tiny_corpus, train_config):
    cfg = train_config(tiny_corpus, 2, "ddp")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", "29531", "-m", "model_core", "train", str(cfg)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    man = json.loads((tmp_path / "ddp" / "final.json").read_text())
    assert man["training"]["world_size"] == 2


def test_bad_config(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('stepz = 3\n')
    with pytest.raises(LaliaError, match="unknown settings"):
        load_config(p)
    with pytest.raises(LaliaError, match="not found"):
        load_config(tmp_path / "none.toml")


def test_train_on_imported_flame_data(tmp_path, sample_audio, train_config):
    """A FLAME-parameter dataset (wav + npz pairs) imports into a corpus and trains."""
    import numpy as np
    import soundfile as sf

    from model_core.data.dataset import cache_features
    from model_core.data.readers import import_dataset
    rng = np.random.default_rng(0)
    src = tmp_path / "flame"
    for spk in ("a", "b", "c", "d"):
        (src / spk).mkdir(parents=True)
        T = 150
        np.savez(src / spk / "s.npz", exp=rng.normal(size=(T, 50)).astype(np.float32),
                 pose=(rng.normal(size=(T, 6)) * 0.05).astype(np.float32))
        sf.write(src / spk / "s.wav", sample_audio[: T * 640], 16000)
    corpus = tmp_path / "corpus"
    import_dataset("flame-npz", src, corpus, val_share=0.25, test_share=0.0)
    cache_features(corpus)
    m = json.loads(train(train_config(corpus, 2, "flame")).with_suffix(".json").read_text())
    assert m["channels"][0] == "Exp1" and len(m["norm_mean"]) == 56
