"""Audio in, per-frame speech features out: the generator's first stage."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..base.audio import check_samples, load_audio
from ..base.errors import LaliaError
from ..base.vocabulary import SAMPLE_RATE


def load_wav(audio) -> tuple[np.ndarray, float]:
    """Audio (a path, or a 16 kHz mono float array) -> (waveform, seconds loading it)."""
    t0 = time.perf_counter()
    if isinstance(audio, (str, Path)):
        wav = load_audio(audio)
    else:
        wav = check_samples(audio, "audio array").astype(np.float32, copy=False)
    if wav.ndim != 1 or len(wav) < 1600:
        raise LaliaError("Audio must be mono and at least 0.1 s long")
    return wav, time.perf_counter() - t0


def n_frames_of(wav: np.ndarray, fps: float) -> int:
    """The number of motion frames a waveform gets."""
    return max(1, int(round(len(wav) / SAMPLE_RATE * fps)))


def encode(wav: np.ndarray, encoder, fps: float, fit: bool = False) -> tuple[np.ndarray, float]:
    """Waveform -> (T x D features at `fps`, seconds encoding it); `fit`: see `SpeechEncoder.encode`."""
    t0 = time.perf_counter()
    n_frames = n_frames_of(wav, fps)
    # asked only when wanted: an encoder handed to the Generator needn't know `fit`
    feats = encoder.encode(wav, n_frames, fit=True) if fit else encoder.encode(wav, n_frames)
    return feats, time.perf_counter() - t0


def load_features(audio, encoder, fps: float, fit: bool = False) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Audio (a path, or a 16 kHz mono float array) -> (waveform, T x D features at `fps`,
    seconds loading the audio, seconds encoding it); `fit`: see `SpeechEncoder.encode`."""
    wav, t_load = load_wav(audio)
    feats, t_encode = encode(wav, encoder, fps, fit)
    return wav, feats, t_load, t_encode
