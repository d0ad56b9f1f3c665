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


@pytest.mark.parametrize("rates", [(44100, 16000), (48000, 16000), (22050, 16000), (8000, 16000), (16000, 44100)])
def test_resample_matches_scipy(rates):
    """The numpy resampler (the add-on ships without scipy) gives scipy's resample_poly result."""
    from math import gcd

    signal = pytest.importorskip("scipy.signal")
    from model_core.base.audio import resample
    sr_in, sr_out = rates
    x = np.random.default_rng(0).standard_normal(sr_in + 7).astype(np.float32)
    g = gcd(sr_in, sr_out)
    ref = signal.resample_poly(x.astype(np.float64), sr_out // g, sr_in // g).astype(np.float32)
    assert np.array_equal(resample(x, sr_in, sr_out), ref)


def test_nearest_matches_a_kd_tree():
    spatial = pytest.importorskip("scipy.spatial")
    from model_core.retarget.flame import nearest
    rng = np.random.default_rng(1)
    pts, q = rng.normal(size=(3000, 3)) * 0.1 + [0, 0, 1.6], rng.normal(size=(2000, 3)) * 0.1 + [0, 0, 1.6]
    d, i = nearest(pts, q)
    d_ref, i_ref = spatial.cKDTree(pts).query(q)
    assert np.array_equal(i, i_ref) and np.allclose(d, d_ref, atol=1e-12)
