import json

import pytest
import torch

from model_core.base.errors import LaliaError
from model_core.base.vocabulary import EMOTIONS
from model_core.model.checkpoint import FORMAT_VERSION, load_checkpoint, manifest_path, read_manifest, save_checkpoint
from model_core.model.networks import LaliaModel, ModelConfig

CFG = dict(d_model=32, layers=1, heads=2, ffn=64, window=20, prev=4, style_dim=16, style_layers=1)


def _manifest():
    return {"channels": [f"c{i}" for i in range(55)], "fps": 25.0, "norm_mean": [0.0] * 55,
            "norm_std": [1.0] * 55, "emotions": list(EMOTIONS), "sampler": {"name": "ddim", "steps": 4}}


@pytest.fixture
def ckpt(tmp_path):
    m = LaliaModel(ModelConfig(**CFG))
    return save_checkpoint(tmp_path / "m.safetensors", m, _manifest(), extra={"preset.x": torch.ones(16)}), m


def test_roundtrip_without_pickle(ckpt):
    path, m = ckpt
    assert path.read_bytes()[:8] != b"\x80\x04\x95"  # not a pickle
    model, manifest, extra = load_checkpoint(path)
    assert manifest["format_version"] == FORMAT_VERSION and "preset.x" in extra
    for k, v in m.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)


def test_truncated_checkpoint_is_a_clear_error(ckpt):
    path, _ = ckpt
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(LaliaError, match="corrupt or truncated"):
        load_checkpoint(path)


def test_unknown_version_is_refused(ckpt):
    path, _ = ckpt
    mp = manifest_path(path)
    d = json.loads(mp.read_text())
    d["format_version"] = 99
    mp.write_text(json.dumps(d))
    with pytest.raises(LaliaError, match="version 99"):
        read_manifest(path)


def test_mismatched_manifest_is_refused(ckpt):
    path, _ = ckpt
    mp = manifest_path(path)
    d = json.loads(mp.read_text())
    d["model"]["d_model"] = 64
    mp.write_text(json.dumps(d))
    with pytest.raises(LaliaError, match="does not match"):
        load_checkpoint(path)


def test_missing_files(tmp_path, ckpt):
    with pytest.raises(LaliaError, match="not found"):
        load_checkpoint(tmp_path / "nothing.safetensors")
    path, _ = ckpt
    manifest_path(path).unlink()
    with pytest.raises(LaliaError, match="no manifest"):
        load_checkpoint(path)
