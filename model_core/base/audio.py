"""Audio in: decode any common file, mix to mono, resample to 16 kHz, validate."""
from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np

from .errors import LaliaError
from .vocabulary import SAMPLE_RATE

log = logging.getLogger(__name__)
MAX_SECONDS = 3 * 3600


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling with an anti-alias filter: the same filter and alignment as
    scipy.signal.resample_poly (Kaiser-windowed sinc, beta 5, 10 zero crossings per side), in
    numpy so the add-on ships without scipy (41 MB per Python)."""
    if sr_in == sr_out:
        return np.asarray(x, np.float32)
    from math import gcd
    g = gcd(int(sr_in), int(sr_out))
    return _resample_poly(np.asarray(x, np.float64), int(sr_out) // g, int(sr_in) // g).astype(np.float32)


def _lowpass(up: int, down: int) -> tuple[np.ndarray, int]:
    """scipy.signal.firwin(2 * half + 1, 1 / max(up, down), window=("kaiser", 5.0)) * up."""
    rate = max(up, down)
    half = 10 * rate
    m = np.arange(2 * half + 1) - half
    h = np.sinc(m / rate) / rate * np.kaiser(2 * half + 1, 5.0)
    return h / h.sum() * up, half


def _resample_poly(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """Upsample by `up` (zeros between samples), filter, keep every `down`-th sample, without ever
    making the upsampled signal: output j uses one polyphase branch of the filter, and outputs j,
    j + up, j + 2 up, ... use the same branch on input windows `down` apart, so each branch is one
    matrix-vector product over a strided view of the input."""
    h, half = _lowpass(up, down)
    n_out = -(-len(x) * up // down)
    pre = down - half % down  # zero-pad the filter so outputs land on its centre, as scipy does
    h = np.concatenate([np.zeros(pre), h])
    first = (half + pre) // down
    taps = -(-len(h) // up)
    branches = np.zeros((up, taps))
    for p in range(up):
        branches[p, : len(h[p::up])] = h[p::up]
    end = ((n_out - 1 + first) * down) // up + taps + 1  # past the newest input any output reads
    xp = np.concatenate([np.zeros(taps), x, np.zeros(max(0, end - taps - len(x)))])
    windows = np.lib.stride_tricks.sliding_window_view(xp, taps)
    y = np.empty(n_out)
    for r in range(min(up, n_out)):
        n = (first + r) * down  # output r's position at the upsampled rate
        newest = n // up + taps  # its newest input sample, in xp
        y[r::up] = windows[newest - taps + 1 :: down][: len(range(r, n_out, up))] @ branches[n % up][::-1]
    return y


def load_audio(path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode `path` to float32 mono at `sample_rate`.

    wav/flac/ogg go through libsndfile (soundfile); anything else (mp3, m4a, ...) or a file
    libsndfile refuses goes through ffmpeg when it is installed.
    """
    path = Path(path)
    if not path.is_file():
        raise LaliaError(f"Audio file not found: {path}")
    if path.stat().st_size == 0:
        raise LaliaError(f"Audio file is empty: {path}")
    try:
        import soundfile as sf
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile can't read it: try ffmpeg
        data, sr = _ffmpeg_decode(path, sample_rate, e), sample_rate
        data = data[:, None]
    if data.size == 0:
        raise LaliaError(f"Audio file has no samples: {path}")
    mono = data.mean(axis=1)
    if len(mono) / sr > MAX_SECONDS:
        raise LaliaError(f"{path} is {len(mono) / sr / 3600:.1f} h long; split it into parts "
                         f"under {MAX_SECONDS // 3600} h")
    mono = resample(mono, sr, sample_rate)
    if not np.all(np.isfinite(mono)):
        raise LaliaError(f"Audio file contains invalid samples (NaN/Inf): {path}")
    return mono


def _ffmpeg_decode(path: Path, sr: int, why: Exception) -> np.ndarray:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise LaliaError(f"Cannot decode {path.name} ({why}). Convert it to WAV or FLAC, "
                         "or install ffmpeg for mp3/m4a support.")
    res = subprocess.run([exe, "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-ar",
                          str(sr), "-"], capture_output=True, timeout=600)
    if res.returncode != 0 or not res.stdout:
        raise LaliaError(f"Cannot decode {path.name}: {res.stderr.decode(errors='replace')[:200]}")
    return np.frombuffer(res.stdout, np.float32).copy()


def save_wav(path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    import soundfile as sf
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(audio, -1, 1), sample_rate, subtype="PCM_16")
    return path
