"""Audio damage for the corpus, so the model hears speech as microphones, rooms and codecs deliver it.

Every step draws from the take's own random generator, so a take's audio depends on (seed, take)
alone. Two profiles:

- "basic": the corpus's original chain, unchanged (a corpus built before keeps its audio): room
  reverb on a quarter of the takes, white noise at 15-40 dB SNR on 30%.
- "full": reverb, microphone EQ, band limits (telephone, low-pass, high-pass), coloured noise at
  several SNRs, loudness changes, and codec-like damage (mu-law 8-bit, 8-bit linear, a low-rate
  resample round trip, clipping); each step on a share of the takes, so clean audio stays common.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

from ..base.audio import resample
from ..base.errors import LaliaError
from ..base.vocabulary import SAMPLE_RATE

PROFILES = ("none", "basic", "full")
SNRS_DB = (5.0, 10.0, 15.0, 20.0, 30.0)


def _reverb(x: np.ndarray, rng) -> np.ndarray:
    """A decaying-noise room response (RT 0.15-0.5 s) with a direct path, at the dry peak level."""
    rt = rng.uniform(0.15, 0.5)
    n = int(rt * SAMPLE_RATE)
    ir = rng.normal(0, 1, n) * np.exp(-6.9 * np.arange(n) / n)
    ir[0] = 1.0 / rng.uniform(0.05, 0.3)
    wet = np.convolve(x, ir)[: len(x)]
    return wet / (np.abs(wet).max() + 1e-9) * np.abs(x).max()


def _noise(x: np.ndarray, rng, snr_db: float, colour: str = "white") -> np.ndarray:
    """Additive noise at `snr_db` against the signal's mean power; pink/brown by spectral shaping."""
    p = np.mean(x ** 2) + 1e-12
    sd = np.sqrt(p / 10 ** (snr_db / 10))
    if colour == "white":
        return x + rng.normal(0, sd, len(x))
    n = rng.normal(0, 1, len(x))
    spec = np.fft.rfft(n)
    f = np.maximum(np.fft.rfftfreq(len(n), 1 / SAMPLE_RATE), 20.0)
    spec /= np.sqrt(f) if colour == "pink" else f
    n = np.fft.irfft(spec, len(n))
    return x + n / (np.std(n) + 1e-12) * sd


def _peaking(f0: float, gain_db: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    """RBJ cookbook peaking biquad."""
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * f0 / SAMPLE_RATE
    alpha = np.sin(w) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w), 1 - alpha / a])
    return b / den[0], den / den[0]


def _mic_eq(x: np.ndarray, rng) -> np.ndarray:
    """One to three resonances or dips (200 Hz - 6 kHz, +-9 dB): a microphone's colouring."""
    for _ in range(int(rng.integers(1, 4))):
        b, a = _peaking(rng.uniform(200, 6000), rng.uniform(-9, 9), rng.uniform(0.7, 2.5))
        x = lfilter(b, a, x)
    return x


def _band_limit(x: np.ndarray, rng, kind: int | None = None) -> np.ndarray:
    """Telephone band (300-3400 Hz), a low-pass (3-7 kHz) or a high-pass (100-400 Hz): kind 0, 1, 2."""
    kind = int(rng.integers(3)) if kind is None else kind
    if kind == 0:
        sos = butter(4, [300, 3400], "bandpass", fs=SAMPLE_RATE, output="sos")
    elif kind == 1:
        sos = butter(6, rng.uniform(3000, 7000), "lowpass", fs=SAMPLE_RATE, output="sos")
    else:
        sos = butter(2, rng.uniform(100, 400), "highpass", fs=SAMPLE_RATE, output="sos")
    return sosfilt(sos, x)


def _codec(x: np.ndarray, rng, kind: int | None = None) -> np.ndarray:
    """mu-law 8-bit, 8-bit linear, a round trip through 8 or 11.025 kHz, or clipping: kind 0-3."""
    kind = int(rng.integers(4)) if kind is None else kind
    peak = np.abs(x).max() + 1e-9
    y = np.clip(x / peak, -1, 1)
    if kind == 0:
        mu = 255.0
        q = np.round(np.sign(y) * np.log1p(mu * np.abs(y)) / np.log1p(mu) * 127) / 127
        y = np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu
    elif kind == 1:
        y = np.round(y * 127) / 127
    elif kind == 2:
        low = int(rng.choice([8000, 11025]))
        y = resample(resample(y, SAMPLE_RATE, low), low, SAMPLE_RATE)[: len(y)]
        y = np.pad(y, (0, len(x) - len(y)))
    else:
        c = rng.uniform(0.3, 0.7)
        y = np.clip(y, -c, c) / c
    return y * peak


def augment(audio: np.ndarray, rng, profile: str = "basic") -> np.ndarray:
    """The profile's damage applied to 16 kHz float audio (same length out)."""
    if profile not in PROFILES:
        raise LaliaError(f"unknown augmentation profile {profile!r}; choose one of {', '.join(PROFILES)}")
    out = audio
    if profile == "none":
        return np.asarray(out, np.float32)
    if profile == "basic":  # exactly the original chain: same draws, same arithmetic
        if rng.random() < 0.25:
            out = _reverb(out, rng)
        if rng.random() < 0.3:
            out = _noise(out, rng, rng.uniform(15, 40))
        return out.astype(np.float32)
    out = np.asarray(audio, np.float64)
    level = np.abs(out).max()
    if rng.random() < 0.35:
        out = _reverb(out, rng)
    if rng.random() < 0.4:
        out = _mic_eq(out, rng)
    if rng.random() < 0.25:
        out = _band_limit(out, rng)
    # filters change the level: back to the dry peak before noise and loudness
    out = out / (np.abs(out).max() + 1e-9) * level
    if rng.random() < 0.5:
        snr = float(rng.choice(SNRS_DB)) + rng.uniform(-2.5, 2.5)
        out = _noise(out, rng, snr, ("white", "pink", "brown")[int(rng.integers(3))])
    if rng.random() < 0.3:
        out = _codec(out, rng)
    if rng.random() < 0.6:
        out = out * 10 ** (rng.uniform(-24, 6) / 20)
    return np.clip(out, -1, 1).astype(np.float32)
