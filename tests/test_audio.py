import subprocess

import numpy as np
import pytest
import soundfile as sf

from model_core.base.audio import load_audio
from model_core.base.errors import LaliaError


@pytest.mark.parametrize("fmt,sr,channels", [("wav", 44100, 2), ("flac", 22050, 1), ("ogg", 48000, 1),
                                             ("wav", 8000, 1)])
def test_formats_rates_and_channels(tmp_path, sample_audio, fmt, sr, channels):
    from model_core.base.audio import resample
    x = resample(sample_audio[: 3 * 16000], 16000, sr)
    data = np.stack([x] * channels, 1) if channels > 1 else x
    p = tmp_path / f"a.{fmt}"
    sf.write(p, data, sr)
    y = load_audio(p)
    assert abs(len(y) - 3 * 16000) <= 2
    ref = sample_audio[: len(y)]
    corr = np.corrcoef(ref[: len(y)], y[: len(ref)])[0, 1]
    assert corr > (0.6 if sr == 8000 else 0.9)


def test_mp3_through_ffmpeg(tmp_path, sample_audio):
    wav = tmp_path / "a.wav"
    sf.write(wav, sample_audio[: 2 * 16000], 16000)
    mp3 = tmp_path / "a.mp3"
    r = subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), str(mp3)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("this ffmpeg cannot encode mp3")
    y = load_audio(mp3)
    assert abs(len(y) - 2 * 16000) < 0.1 * 16000


def test_bad_files(tmp_path):
    with pytest.raises(LaliaError, match="not found"):
        load_audio(tmp_path / "none.wav")
    (tmp_path / "e.wav").write_bytes(b"")
    with pytest.raises(LaliaError, match="empty"):
        load_audio(tmp_path / "e.wav")
    (tmp_path / "t.txt").write_text("hello, not audio")
    with pytest.raises(LaliaError):
        load_audio(tmp_path / "t.txt")
