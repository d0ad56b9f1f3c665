import json
from pathlib import Path

import pytest
from corpus_cli import build_corpus_cli

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "model_core" / "assets" / "sample_speech.flac"


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """~2 minutes of corpus with cached speech features, built once per test session."""
    from model_core.data.dataset import cache_features
    root = tmp_path_factory.mktemp("corpus") / "c"
    build_corpus_cli(root, hours=0.035, seed=7, workers=2)
    cache_features(root)
    return root


TINY_TRAIN = """
corpus = "{corpus}"
run_dir = "{run}"
steps = {steps}
batch = 4
warmup = 2
log_every = 1
val_every = 2
ckpt_every = 2
threads = 1

[model]
d_model = 32
layers = 1
heads = 2
ffn = 64
style_dim = 16
style_layers = 1
vae_hidden = 16
"""


@pytest.fixture
def train_config(tmp_path):
    """make(corpus, steps, name) -> a tiny training config (runs in seconds) under tmp_path."""
    def make(corpus, steps, name="run"):
        p = tmp_path / f"{name}_{steps}.toml"
        p.write_text(TINY_TRAIN.format(corpus=corpus, run=tmp_path / name, steps=steps))
        return p
    return make


@pytest.fixture(scope="session")
def sample_audio():
    from model_core.base.audio import load_audio
    return load_audio(SAMPLE)


@pytest.fixture(scope="session")
def sample_segments():
    return json.loads(SAMPLE.with_suffix(".json").read_text())


@pytest.fixture(scope="session")
def generator():
    from model_core import load_generator
    return load_generator()
