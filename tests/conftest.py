import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "model_core" / "assets" / "sample_speech.flac"


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """~2 minutes of corpus with cached speech features, built once per test session."""
    from model_core.corpus import build_corpus
    from model_core.dataset import cache_features
    root = tmp_path_factory.mktemp("corpus") / "c"
    build_corpus(root, hours=0.035, seed=7, workers=2)
    cache_features(root)
    return root


@pytest.fixture(scope="session")
def sample_audio():
    from model_core.audio import load_audio
    return load_audio(SAMPLE)


@pytest.fixture(scope="session")
def sample_segments():
    return json.loads(SAMPLE.with_suffix(".json").read_text())


@pytest.fixture(scope="session")
def generator():
    from model_core import load_generator
    return load_generator()
