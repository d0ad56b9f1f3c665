"""The generator: audio -> Motion, through the speech encoder and the diffusion sampler.

Long audio is cut into non-overlapping windows of `window` frames; each window is conditioned on
the last `prev` frames generated before it (DiffPoseTalk), so windows join without a jump. The
last window is padded and its padded frames are marked invalid.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from .diffusion import SAMPLERS, cosine_schedule, guided, spaced_timesteps
from .errors import LaliaError
from .motion import ARKIT_HEAD_LAYOUT, ARKIT_NAMES, Motion

log = logging.getLogger(__name__)
OVERLAP = 10  # frames shared (and cross-faded) by consecutive windows


class Cancelled(LaliaError):
    """Generation was cancelled by the caller; nothing was produced."""


@dataclass
class Timings:
    audio: float = 0.0
    encoder: float = 0.0
    sampler: float = 0.0
    extra: dict = field(default_factory=dict)


def emotion_vector(emotion, emotions: tuple[str, ...]) -> np.ndarray:
    """{'happy': 0.7, 'sad': 0.2} or an (8,) array -> (8,) intensities in 0..1."""
    v = np.zeros(len(emotions), np.float32)
    if emotion is None:
        return v
    if isinstance(emotion, dict):
        for k, x in emotion.items():
            if k not in emotions:
                raise LaliaError(f"Unknown emotion '{k}'; choose from {', '.join(emotions)}")
            v[emotions.index(k)] = float(x)
    else:
        v = np.asarray(emotion, np.float32)
    if not np.all((v >= 0) & (v <= 1)):
        raise LaliaError("Emotion intensities must be between 0 and 1")
    return v


class Generator:
    def __init__(self, model, manifest: dict, extra: dict, device: str = "cpu", encoder=None):
        self.model, self.manifest, self.device = model, manifest, device
        self.cfg = model.cfg
        self.channels = tuple(manifest["channels"])
        self.fps = float(manifest["fps"])
        self.emotions = tuple(manifest["emotions"])
        self.mean = torch.tensor(manifest["norm_mean"], device=device)
        self.std = torch.tensor(manifest["norm_std"], device=device)
        self.schedule = cosine_schedule(self.cfg.num_train_steps)
        self.presets = {k.split(".", 1)[1]: v.float().to(device) for k, v in extra.items()
                        if k.startswith("preset.")}
        self.preset_descriptions = manifest.get("style_presets", {})
        self._encoder = encoder
        self.last_timings = Timings()

    @property
    def encoder(self):
        if self._encoder is None:
            from .speech_encoder import SpeechEncoder
            self._encoder = SpeechEncoder(device=self.device)
        return self._encoder

    # ---- conditions -------------------------------------------------------------------
    def style_vector(self, style) -> torch.Tensor | None:
        """None, a preset name, a motion file (npz/csv/json), a Motion, or a raw vector."""
        if style is None or (isinstance(style, str) and style in ("", "none")):
            return None
        if isinstance(style, str) and style in self.presets:
            return self.presets[style]
        if isinstance(style, (str, Path)):
            p = Path(style)
            if not p.exists():
                raise LaliaError(f"Style '{style}' is neither a preset ({', '.join(sorted(self.presets)) or 'none'}) "
                                 f"nor an existing motion file")
            style = Motion.load(p)
        if isinstance(style, Motion):
            return self.style_from_motion(style)
        v = torch.as_tensor(np.asarray(style, np.float32), device=self.device)
        if v.shape != (self.cfg.style_dim,):
            raise LaliaError(f"A style vector must have {self.cfg.style_dim} values")
        return v

    @torch.inference_mode()
    def style_from_motion(self, motion: Motion) -> torch.Tensor:
        """Style vector from reference motion (any fps, any ARKit subset): the mean over its
        4 s clips."""
        m = motion.resample(self.fps).select(self.channels)
        x = (torch.from_numpy(m.values).to(self.device) - self.mean) / self.std
        N = self.cfg.window
        if len(x) < 25:
            raise LaliaError("A style reference needs at least 1 s of motion")
        clips = [x[s:s + N] for s in range(0, max(1, len(x) - N + 1), N)]
        vecs = []
        for c in clips:
            valid = torch.ones(1, len(c), dtype=torch.bool, device=self.device)
            vecs.append(self.model.style_encoder(c[None], valid)[0])
        return torch.stack(vecs).mean(0)

    # ---- generation -------------------------------------------------------------------
    def features(self, audio) -> tuple[np.ndarray, np.ndarray]:
        from .audio import load_audio
        t0 = time.perf_counter()
        wav = load_audio(audio) if isinstance(audio, (str, Path)) else np.asarray(audio, np.float32)
        if wav.ndim != 1 or len(wav) < 1600:
            raise LaliaError("Audio must be mono and at least 0.1 s long")
        t1 = time.perf_counter()
        n_frames = max(1, int(round(len(wav) / 16000 * self.fps)))
        feats = self.encoder.encode(wav, n_frames)
        self.last_timings.audio, self.last_timings.encoder = t1 - t0, time.perf_counter() - t1
        return wav, feats

    @torch.inference_mode()
    def generate(self, audio, emotion=None, emotion_from_voice: bool = False, style=None,
                 steps: int | None = None, seed: int = 0, sampler: str | None = None,
                 guidance: dict | None = None, head_motion: float = 1.0,
                 expressiveness: float = 1.0,
                 progress: Callable[[float], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> Motion:
        """Audio (path or 16 kHz float array) -> Motion at 25 fps (52 ARKit + head rotation).

        emotion: {'happy': 0.7, ...}, an (8,) vector, or a T x 8 curve (per frame at 25 fps).
        emotion_from_voice: infer the emotion curve from the audio (used when no emotion given).
        style: preset name, reference motion (npz/csv/Motion) or None for the average style.
        head_motion / expressiveness: 0..2 multipliers of head rotation and face movement.
        """
        self.last_timings = Timings()
        _, feats = self.features(audio)
        T = len(feats)
        dev = self.device
        f = torch.from_numpy(feats).to(dev)
        emo = self._emotion_curve(emotion, emotion_from_voice, f, T)
        style_vec = self.style_vector(style)
        defaults = self.manifest["sampler"]
        steps = int(steps or defaults["steps"])
        sampler_fn = SAMPLERS.get(sampler or defaults["name"])
        if sampler_fn is None:
            raise LaliaError(f"Unknown sampler '{sampler}'; choose from {', '.join(SAMPLERS)}")
        scales = {**defaults.get("guidance", {}), **(guidance or {})}
        timesteps = spaced_timesteps(self.cfg.num_train_steps, steps)
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        N, P, C = self.cfg.window, self.cfg.prev, self.cfg.motion_dim
        O = min(OVERLAP, N // 4)
        out = torch.zeros(T, C, device=dev)
        t0 = time.perf_counter()
        # windows overlap by O frames; each is conditioned on the P frames before it and
        # cross-faded into the previous one over the overlap (no jump at window boundaries)
        starts = self.window_starts(T)
        ramp = torch.linspace(0, 1, O + 2, device=dev)[1:-1, None]
        ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep
        for w, s in enumerate(starts):
            if cancel and cancel():
                raise Cancelled("Generation cancelled")
            n = min(N, T - s)
            a = torch.zeros(N, f.shape[1], device=dev)
            a[:n] = f[s:s + n]
            e = emo[s:s + n]
            e = torch.cat([e, e[-1:].expand(N - n, -1)]) if n < N else e
            valid = torch.zeros(N, dtype=torch.bool, device=dev)
            valid[:n] = True
            prev = torch.zeros(P, C, device=dev)
            if s > 0:
                ctx = out[max(0, s - P):s]
                prev[P - len(ctx):] = ctx
            x0 = self._sample_window(sampler_fn, timesteps, scales, gen, a, e, valid, prev, s > 0, style_vec)
            if s == 0:
                out[:n] = x0[:n]
            else:
                k = min(O, n)
                out[s:s + k] = (1 - ramp[:k]) * out[s:s + k] + ramp[:k] * x0[:k]
                out[s + k:s + n] = x0[k:n]
            if progress:
                progress((w + 1) / len(starts))
        self.last_timings.sampler = time.perf_counter() - t0
        values = (out * self.std + self.mean).cpu().numpy()
        values = self._apply_intensity(values, head_motion, expressiveness)
        return Motion(self.fps, self.channels, values)

    def window_starts(self, T: int) -> list[int]:
        """First frame of each sampling window; consecutive windows share OVERLAP frames."""
        N, O = self.cfg.window, min(OVERLAP, self.cfg.window // 4)
        return [0] + list(range(N - O, max(T - O, 1), N - O))

    def _emotion_curve(self, emotion, from_voice, feats, T) -> torch.Tensor:
        if emotion is not None and np.ndim(emotion) == 2:
            curve = np.asarray(emotion, np.float32)
            if curve.shape[1] != len(self.emotions) or not np.all((curve >= 0) & (curve <= 1)):
                raise LaliaError(f"An emotion curve must be T x {len(self.emotions)} in 0..1")
            idx = np.clip(np.round(np.linspace(0, len(curve) - 1, T)).astype(int), 0, len(curve) - 1)
            return torch.from_numpy(curve[idx]).to(self.device)
        vec = emotion_vector(emotion, self.emotions)
        if from_voice and not vec.any():
            v = self.model.voice_emotion(feats[None])[0]
            k = min(T, 25)  # smooth over ~1 s: emotion changes slowly
            kernel = torch.ones(1, 1, k, device=self.device) / k
            v = torch.nn.functional.conv1d(v.t()[:, None], kernel, padding=k // 2)[:, 0, :T].t()
            return v.clamp(0, 1)
        if not vec.any():
            vec[self.emotions.index("neutral")] = 1.0
        return torch.from_numpy(np.tile(vec, (T, 1))).to(self.device)

    def _sample_window(self, sampler_fn, timesteps, scales, gen, audio, emotion, valid, prev, has_prev, style):
        """One window through the sampler with incremental guidance over the needed branches."""
        conds = [  # (audio_on, emotion_on, style_on): D_0 .. D_3
            (False, False, False), (True, False, False), (True, True, False), (True, True, True)]
        w = [scales.get("audio", 1.0), scales.get("emotion", 1.0), scales.get("style", 1.0)]
        if style is None:
            conds, w = conds[:3], w[:2]
        first = next((i for i, x in enumerate(w) if abs(x - 1.0) > 1e-6), len(w))
        conds, w = conds[first:], w[first:]
        B = len(conds)
        dev = self.device
        flags = torch.tensor(conds, device=dev)
        style_in = style if style is not None else torch.zeros(self.cfg.style_dim, device=dev)
        kwargs = dict(audio=audio[None].expand(B, -1, -1), prev=prev[None].expand(B, -1, -1),
                      has_prev=torch.full((B,), bool(has_prev), device=dev),
                      emotion=emotion[None].expand(B, -1, -1), style=style_in[None].expand(B, -1),
                      identity=torch.zeros(B, dtype=torch.long, device=dev),
                      valid=valid[None].expand(B, -1), audio_on=flags[:, 0],
                      emotion_on=flags[:, 1], style_on=flags[:, 2])

        def branches(x, t):
            d = self.model.denoiser(x.expand(B, -1, -1), t.expand(B), **kwargs)
            return list(d.unbind(0))

        combine = guided(branches, w)  # with a single branch this is just that branch
        denoise = lambda x, t: combine(x, t)[None]
        x = torch.randn((1, self.cfg.window, self.cfg.motion_dim), generator=gen).to(dev)
        x0 = sampler_fn(denoise, x, self.schedule, timesteps, generator=gen)
        return x0[0]

    def _apply_intensity(self, values: np.ndarray, head_motion: float, expressiveness: float) -> np.ndarray:
        """Scale head rotation and face movement around their neutral values (0..2)."""
        for name, k in (("head_motion", head_motion), ("expressiveness", expressiveness)):
            if not 0.0 <= k <= 2.0:
                raise LaliaError(f"{name} must be between 0 and 2, got {k}")
        head = np.array([c.startswith("head") for c in self.channels])
        arkit = np.array([c in ARKIT_NAMES for c in self.channels])
        values = values.copy()
        values[:, head] *= head_motion
        values[:, ~head] *= expressiveness
        values[:, arkit] = np.clip(values[:, arkit], 0.0, 1.0)  # blendshape weights; FLAME isn't clipped
        return values


def load_generator(checkpoint=None, device: str = "cpu") -> Generator:
    """The default model (or `checkpoint`) ready to `.generate(audio, ...)`."""
    path = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    if device == "cuda" and not torch.cuda.is_available():
        raise LaliaError("CUDA was requested but no GPU is available")
    model, manifest, extra = load_checkpoint(path, device)
    if tuple(manifest["channels"]) != ARKIT_HEAD_LAYOUT and "Exp1" not in manifest["channels"]:
        log.warning("checkpoint %s uses a custom channel layout", path.name)
    return Generator(model, manifest, extra, device)
