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
# sample rates a recording can have: telephone-grade 4 kHz up to 384 kHz studio rates. Checked
# before decoding: a header claiming 1 Hz makes minutes of samples into days, one claiming 2^31 Hz
# makes the resampler's filter gigabytes long
MIN_RATE, MAX_RATE = 4000, 384000
MAX_CHANNELS = 64
# float files may run a little over full scale (unclipped mixes); a thousand times over (60 dB) is
# no recording's level but a wrong scale (int samples stored as float, a gain bug), and near 1e19
# the speech encoder's power spectrum overflows float32 to inf. Refused rather than rescaled.
MAX_PEAK = 1000.0


def check_samples(x: np.ndarray, what: str = "audio") -> np.ndarray:
    """Refuse audio no model should hear: non-finite samples or an absurd level. -> x."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise LaliaError(f"The {what} must be numbers, got {x.dtype}")
    finite = np.isfinite(x)
    if not finite.all():
        first = int(np.argmin(finite.reshape(-1)))
        raise LaliaError(f"The {what} contains {int((~finite).sum())} NaN/infinite samples (the first at "
                         f"sample {first}); the file is damaged: re-export it")
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > MAX_PEAK:
        raise LaliaError(f"The {what} peaks at {peak:.3g} times full scale (a recording stays near 1); "
                         "it is stored at a wrong scale: normalise it to -1..1 and try again")
    return x


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling with an anti-alias filter: the same filter and alignment as
    scipy.signal.resample_poly (Kaiser-windowed sinc, beta 5, 10 zero crossings per side), in
    numpy so the add-on ships without scipy (41 MB per Python)."""
    if sr_in == sr_out:
        return np.asarray(x, np.float32)
    from fractions import Fraction
    # the exact ratio for every common rate (44.1 kHz: 160/441); an odd rate such as 383999 Hz
    # would need a 16000/383999 polyphase filter (millions of taps, slower than real time), so
    # its ratio is rounded to a denominator <= 1000: a timing error of a few ms per hour
    ratio = Fraction(int(sr_out), int(sr_in)).limit_denominator(1000)
    return _resample_poly(np.asarray(x, np.float64), ratio.numerator, ratio.denominator).astype(np.float32)


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
        info = sf.info(str(path))
    except Exception as e:  # libsndfile can't read it: try ffmpeg (it resamples to sample_rate)
        data, sr = _ffmpeg_decode(path, sample_rate, e), sample_rate
        data = data[:, None]
    else:
        sr = _check_header(path, info.samplerate, info.channels, info.frames)
        try:
            data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        except (RuntimeError, ValueError, TypeError, MemoryError, OverflowError, sf.LibsndfileError) as e:
            raise LaliaError(f"Cannot decode {path.name}: the file is damaged or truncated ({e})") from None
    if data.size == 0:
        raise LaliaError(f"Audio file has no samples: {path}")
    if len(data) / sr > MAX_SECONDS:
        raise LaliaError(f"{path} is {len(data) / sr / 3600:.1f} h long; split it into parts "
                         f"under {MAX_SECONDS // 3600} h")
    # checked before mixing and resampling, which would spread a NaN over its neighbours
    check_samples(data, f"audio in {path.name}")
    mono = data.mean(axis=1)
    return resample(mono, sr, sample_rate)


def _check_header(path: Path, sr, channels, frames) -> int:
    """The header's claims, checked before a sample is decoded."""
    if not (MIN_RATE <= sr <= MAX_RATE):
        raise LaliaError(f"{path.name} claims a sample rate of {sr} Hz; Lalia reads {MIN_RATE // 1000}-"
                         f"{MAX_RATE // 1000} kHz audio. The header is damaged or the file is not audio: "
                         "re-export it as WAV or FLAC")
    if not (1 <= channels <= MAX_CHANNELS):
        raise LaliaError(f"{path.name} claims {channels} channels; re-export it as mono or stereo")
    if frames / sr > MAX_SECONDS:
        raise LaliaError(f"{path} is {frames / sr / 3600:.1f} h long; split it into parts "
                         f"under {MAX_SECONDS // 3600} h")
    return int(sr)


def _ffmpeg_decode(path: Path, sr: int, why: Exception) -> np.ndarray:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise LaliaError(f"Cannot decode {path.name} ({why}). Convert it to WAV or FLAC, "
                         "or install ffmpeg for mp3/m4a support.")
    try:  # -t: a damaged header can't make ffmpeg write more than the longest audio Lalia takes
        res = subprocess.run([exe, "-v", "error", "-i", str(path), "-t", str(MAX_SECONDS + 1), "-f", "f32le",
                              "-ac", "1", "-ar", str(sr), "-"], capture_output=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise LaliaError(f"Decoding {path.name} with ffmpeg took over 10 minutes; convert it to WAV first") from None
    if res.returncode != 0 or len(res.stdout) < 4:
        raise LaliaError(f"Cannot decode {path.name}: {res.stderr.decode(errors='replace')[:200]}")
    return np.frombuffer(res.stdout[: len(res.stdout) // 4 * 4], np.float32).copy()


def save_wav(path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    import soundfile as sf

    from .files import atomic_write
    path = Path(path)
    with atomic_write(path, "audio file") as tmp:
        sf.write(str(tmp), np.clip(audio, -1, 1), sample_rate, subtype="PCM_16", format="WAV")
    return path
