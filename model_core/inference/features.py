"""Audio in, per-frame speech features out: the generator's first stage."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..base.audio import check_samples, load_audio
from ..base.errors import LaliaError
from ..base.vocabulary import SAMPLE_RATE


def load_features(audio, encoder, fps: float, fit: bool = False) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Audio (a path, or a 16 kHz mono float array) -> (waveform, T x D features at `fps`,
    seconds loading the audio, seconds encoding it); `fit`: see `SpeechEncoder.encode`."""
    t0 = time.perf_counter()
    if isinstance(audio, (str, Path)):
        wav = load_audio(audio)
    else:
        wav = check_samples(audio, "audio array").astype(np.float32, copy=False)
    if wav.ndim != 1 or len(wav) < 1600:
        raise LaliaError("Audio must be mono and at least 0.1 s long")
    t1 = time.perf_counter()
    n_frames = max(1, int(round(len(wav) / SAMPLE_RATE * fps)))
    # asked only when wanted: an encoder handed to the Generator needn't know `fit`
    feats = encoder.encode(wav, n_frames, fit=True) if fit else encoder.encode(wav, n_frames)
    return wav, feats, t1 - t0, time.perf_counter() - t1
