"""The generator: audio -> Motion, through the speech encoder and the diffusion sampler.

Per utterance: speech features -> the content prior's codes -> the AD-VAE decodes them with the
emotion code (from the sliders, a curve, the voice or a reference) into the decoupled prior;
the style comes from a preset, a reference, or the identity library matched to the voice, moved
by the style sliders. Then the audio is cut into windows of `window` frames that overlap by
OVERLAP frames; each window is conditioned on the last `prev` frames generated before it
(DiffPoseTalk) and cross-faded into its predecessor, so windows join without a jump. The last
window is padded and its padded frames are marked invalid. After sampling, plain code keeps
the lips closed where the words close them (`closures.py`), smooths and scales the head, the
mouth and the brow raises (`amplitude.py`) and adds blinks and eyebrow flashes (`gestures.py`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..base.errors import LaliaError
from ..base.motion import ARKIT_NAMES, Motion
from ..model.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from ..model.diffusion import SAMPLERS, cosine_schedule, guided, spaced_timesteps
from .amplitude import (
    articulation_activity,
    brow_raise,
    head_activity,
    reference_gain,
    scale_articulation,
    scale_brow_raises,
    scale_head,
    shift_sides,
    smooth_head,
)
from .closures import keep_closures
from .gestures import add_blinks, add_brow_raises

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
        # style sliders: a direction in style space per unit of the property, and the
        # property's half range over the training speakers (slider 0..2, 1 = unchanged)
        self.slider_directions = {k.split(".", 1)[1]: v.float().to(device) for k, v in extra.items()
                                  if k.startswith("slider.")}
        self.slider_info = manifest.get("style_sliders", {})
        # the style each identity stands for (set by `ship`); else the embeddings themselves
        self.identity_styles = extra["identity_styles"].float().to(device) if "identity_styles" in extra else None
        # the amounts (`ship.AMOUNTS`: head motion, brow activity, mouth sides) each preset and
        # identity stands for; the denoiser hardly follows them, so the amplitude layer sets them
        self.amount_names = tuple(manifest.get("style_amounts", ()))
        self.preset_amounts = {k.split(".", 2)[2]: v.float().cpu() for k, v in extra.items()
                               if k.startswith("amounts.preset.")}
        self.identity_amounts = extra["amounts.identity"].float().cpu() if "amounts.identity" in extra else None
        self._encoder = encoder
        self.last_timings = Timings()
        self.last_info: dict = {}

    @property
    def encoder(self):
        if self._encoder is None:
            from ..model.speech_encoder import SpeechEncoder
            self._encoder = SpeechEncoder(device=self.device)
        return self._encoder

    # ---- conditions -------------------------------------------------------------------
    def average_style(self) -> torch.Tensor | None:
        """The mean talking identity: a central style the sliders can move from."""
        if self.identity_styles is not None:
            return self.identity_styles.mean(0)
        return self.model.identities.embeddings.mean(0) if self.cfg.n_identities else None

    def style_vector(self, style, feats: torch.Tensor | None = None) -> tuple[torch.Tensor | None, dict]:
        """The style condition and the amounts it stands for. Style: None or "auto" (match the
        audio to the identity library), "average" (the mean identity), a preset name, a motion
        file (npz/csv/json), a Motion, or a raw vector. The vector is None for "no style
        condition" (models without identities); the amounts ({"head_motion": 0.4, ...}, relative
        to the average speaker) are those of a preset or of the matched identities, else empty."""
        if isinstance(style, str) and style.lower() in ("average", "none", ""):
            return self.average_style(), {}
        if style is None or (isinstance(style, str) and style.lower() == "auto"):
            if feats is None or self.cfg.n_identities == 0:
                return None, {}
            vec, idx, w = self.model.identities.match(feats[None], values=self.identity_styles)
            ids = self.manifest.get("identities", [])
            self.last_info["identities"] = [
                {"library_index": int(i), "speaker": ids[int(i)] if int(i) < len(ids) else None,
                 "weight": round(float(x), 3)} for i, x in zip(idx, w)]
            amounts = ((w.cpu()[:, None] * self.identity_amounts[idx.cpu()]).sum(0)
                       if self.identity_amounts is not None else None)
            return vec, self._amounts(amounts)
        if isinstance(style, str) and style in self.presets:
            return self.presets[style], self._amounts(self.preset_amounts.get(style))
        reference = self.style_reference(style)
        if reference is not None:
            return self.style_from_motion(reference), {}
        v = torch.as_tensor(np.asarray(style, np.float32), device=self.device)
        if v.shape != (self.cfg.style_dim,):
            raise LaliaError(f"A style vector must have {self.cfg.style_dim} values")
        return v, {}

    def _amounts(self, values: torch.Tensor | None) -> dict:
        return {} if values is None else {k: float(v) for k, v in zip(self.amount_names, values)}

    def style_reference(self, style) -> Motion | None:
        """The reference motion a style names (a Motion or a motion file), else None."""
        if isinstance(style, Motion):
            return style
        if isinstance(style, str) and (style in self.presets or style.lower() in ("auto", "average", "none", "")):
            return None
        if isinstance(style, (str, Path)):
            p = Path(style)
            if not p.exists():
                raise LaliaError(f"Style '{style}' is neither a preset ({', '.join(sorted(self.presets)) or 'none'}), "
                                 f"'auto', 'average', nor an existing motion file")
            return Motion.load(p)
        return None

    def _reference_clips(self, motion: Motion, what: str) -> list[torch.Tensor]:
        """Normalised 4 s clips of a reference motion (any fps, any ARKit subset)."""
        m = motion.resample(self.fps).select(self.channels)
        x = (torch.from_numpy(m.values).to(self.device) - self.mean) / self.std
        if len(x) < 25:
            raise LaliaError(f"A {what} reference needs at least 1 s of motion")
        N = self.cfg.window
        return [x[s:s + N] for s in range(0, max(1, len(x) - N + 1), N)]

    @torch.inference_mode()
    def style_from_motion(self, motion: Motion) -> torch.Tensor:
        """Style vector from reference motion: the mean over its 4 s clips."""
        return torch.stack([self.model.style_encoder(c[None])[0]
                            for c in self._reference_clips(motion, "style")]).mean(0)

    @torch.inference_mode()
    def emotion_from_motion(self, motion: Motion) -> torch.Tensor:
        """Emotion code of reference motion (the AD-VAE's emotion encoder, averaged)."""
        codes = [self.model.vae.encode(c[None])[2][0] for c in self._reference_clips(motion, "emotion")]
        return torch.cat(codes).mean(0)

    def apply_style_sliders(self, style: torch.Tensor | None, sliders: dict) -> torch.Tensor | None:
        """Move a style vector along the fitted property directions. A slider at 1 leaves the
        property as it is; 0 and 2 move it by half its range over the training speakers."""
        moves = {k: float(v) for k, v in sliders.items() if abs(float(v) - 1.0) > 1e-6}
        for k, v in sliders.items():
            if not 0.0 <= float(v) <= 2.0:
                raise LaliaError(f"{k} must be between 0 and 2, got {v}")
        if not moves:
            return style
        if style is None:
            raise LaliaError("This model has no style space to move in; leave the style sliders at 1")
        for k, v in moves.items():
            if k not in self.slider_directions:
                raise LaliaError(f"This model has no '{k}' slider (it has: "
                                 f"{', '.join(sorted(self.slider_directions)) or 'none'})")
            style = style + (v - 1.0) * self.slider_info[k]["half_range"] * self.slider_directions[k]
        return style

    # ---- generation -------------------------------------------------------------------
    def features(self, audio) -> tuple[np.ndarray, np.ndarray]:
        from ..base.audio import load_audio
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
    def generate(self, audio, emotion=None, emotion_from_voice: bool = False, emotion_reference=None,
                 style=None, steps: int | None = None, seed: int = 0, sampler: str | None = None,
                 guidance: dict | None = None, head_motion: float = 1.0, expressiveness: float = 1.0,
                 brow_activity: float = 1.0, blink_rate: float = 1.0, match_reference: bool = True,
                 hold_closures: bool = True, progress: Callable[[float], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> Motion:
        """Audio (path or 16 kHz float array) -> Motion at 25 fps (52 ARKit + head rotation).

        emotion: {'happy': 0.7, ...}, an (8,) vector, or a T x 8 curve (per frame at 25 fps);
            mixed through the learned emotion prototypes into an emotion code.
        emotion_from_voice: infer the emotion curve from the audio (used when no emotion given).
        emotion_reference: a Motion or motion file whose emotion code is copied (overrides the rest).
        style: None/"auto" (the identity that best matches the voice), "average", a preset name,
            reference motion (npz/csv/Motion) or a style vector.
        head_motion, expressiveness, brow_activity: style sliders, 0..2 (1 = as the style is),
            each moving the style along its fitted direction; head_motion and brow_activity also
            scale the head movement and the brow raises by their value times the style's own
            amount (a preset's or the matched identity's; see `amplitude.py`), and brow_activity
            sets the height of the eyebrow flashes on loud syllables (`gestures.py`).
        blink_rate: 0..2 x the usual blink rate of the blink layer (see `gestures.py`).
        match_reference: with a motion reference as the style, give the generated head, mouth and
            brows the reference's amount of movement (the denoiser alone follows it only in part).
        hold_closures: close the lips wherever the words' neutral mouth closes them briefly, so no
            emotion opens a /p b m/ (see `closures.py`); off gives the model's mouth alone.
        """
        self.last_timings, self.last_info = Timings(), {}
        wav, feats = self.features(audio)
        T = len(feats)
        dev = self.device
        f = torch.from_numpy(feats).to(dev)
        code = self._emotion_codes(emotion, emotion_from_voice, emotion_reference, f, T)
        if not 0.0 <= float(blink_rate) <= 2.0:
            raise LaliaError(f"blink_rate must be between 0 and 2, got {blink_rate}")
        reference = self.style_reference(style)
        style_vec, amounts = self.style_vector(style if reference is None else reference, f)
        style_vec = self.apply_style_sliders(style_vec, dict(
            head_motion=head_motion, expressiveness=expressiveness, brow_activity=brow_activity))
        defaults = self.manifest["sampler"]
        steps = int(steps or defaults["steps"])
        sampler_fn = SAMPLERS.get(sampler or defaults["name"])
        if sampler_fn is None:
            raise LaliaError(f"Unknown sampler '{sampler}'; choose from {', '.join(SAMPLERS)}")
        scales = {**defaults.get("guidance", {}), **(guidance or {})}
        if self.manifest.get("guidance_fixed") and any(abs(float(v) - 1.0) > 1e-6 for v in scales.values()):
            raise LaliaError("This model was distilled at guidance 1 and has no guidance scales; use the "
                             "teacher (or a guidance-distilled student) for other scales")
        timesteps = spaced_timesteps(self.cfg.num_train_steps, steps)
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        t0 = time.perf_counter()  # "sampler" time includes the priors
        # the decoupled priors: with the emotion code, and neutral (the no-emotion guidance
        # branch's prior, and the words' own mouth that `keep_closures` holds the lips to)
        c_hat = self.model.content_prior(f[None])
        priors = (self.model.vae.decode(c_hat, code[None])[0],
                  self.model.vae.decode(c_hat, self.model.neutral_code().expand(1, T, -1))[0])
        N, P, C = self.cfg.window, self.cfg.prev, self.cfg.motion_dim
        O = min(OVERLAP, N // 4)
        out = torch.zeros(T, C, device=dev)
        # windows overlap by O frames; each is conditioned on the P frames before it and
        # cross-faded into the previous one over the overlap (no jump at window boundaries)
        starts = self.window_starts(T)
        ramp = torch.linspace(0, 1, O + 2, device=dev)[1:-1, None]
        ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep
        pad = lambda x, n: torch.cat([x, x[-1:].expand(N - n, -1)]) if n < N else x
        for w, s in enumerate(starts):
            if cancel and cancel():
                raise Cancelled("Generation cancelled")
            n = min(N, T - s)
            a = torch.zeros(N, f.shape[1], device=dev)
            a[:n] = f[s:s + n]
            valid = torch.zeros(N, dtype=torch.bool, device=dev)
            valid[:n] = True
            prev = torch.zeros(P, C, device=dev)
            if s > 0:
                ctx = out[max(0, s - P):s]
                prev[P - len(ctx):] = ctx
            window = dict(audio=a, emotion=pad(code[s:s + n], n), priors=[pad(p[s:s + n], n) for p in priors],
                          valid=valid, prev=prev, has_prev=s > 0, style=style_vec)
            x0 = self._sample_window(sampler_fn, timesteps, scales, gen, window)
            if s == 0:
                out[:n] = x0[:n]
            else:
                k = min(O, n)
                out[s:s + k] = (1 - ramp[:k]) * out[s:s + k] + ramp[:k] * x0[:k]
                out[s + k:s + n] = x0[k:n]
            if progress:
                progress((w + 1) / len(starts))
        self.last_timings.sampler = time.perf_counter() - t0
        values = self.to_values(out)
        smooth_head(values, self.channels)
        head_gain = float(head_motion) * amounts.get("head_motion", 1.0)
        brow_gain = float(brow_activity) * amounts.get("brow_activity", 1.0)
        mouth_gain = 1.0
        if reference is not None and match_reference:
            ref = reference.resample(self.fps)
            head_gain *= reference_gain(head_activity(ref.values, ref.channels), head_activity(values, self.channels))
            mouth_gain = reference_gain(articulation_activity(ref.values, ref.channels),
                                        articulation_activity(values, self.channels))
            # the brows' raises are mostly the gesture layer's: measure them as they'd be at 1
            at_one = add_brow_raises(values.copy(), self.channels, wav, self.fps, seed, 1.0)
            brow_gain *= reference_gain(brow_raise(ref.values, ref.channels), brow_raise(at_one, self.channels))
        asymmetry = amounts.get("asymmetry", 0.0)
        self.last_info.update(head_gain=round(head_gain, 3), articulation_gain=round(mouth_gain, 3),
                              brow_gain=round(brow_gain, 3), asymmetry=round(asymmetry, 3))

        def shape_mouth(v: np.ndarray) -> np.ndarray:
            return shift_sides(scale_articulation(v, self.channels, mouth_gain), self.channels, asymmetry)
        shape_mouth(values)
        if hold_closures:  # after any change to the mouth; the words' mouth moves as much as the rest
            keep_closures(values, shape_mouth(self.to_values(priors[1])), self.channels)
        scale_brow_raises(scale_head(values, self.channels, head_gain), self.channels, brow_gain)
        add_brow_raises(values, self.channels, wav, self.fps, seed, brow_gain)
        return Motion(self.fps, self.channels, add_blinks(values, self.channels, wav, self.fps, seed, blink_rate))

    def to_values(self, x: torch.Tensor) -> np.ndarray:
        """Normalised motion -> channel values; blendshape weights clipped to 0..1 (FLAME isn't)."""
        values = (x * self.std + self.mean).cpu().numpy()
        arkit = np.array([c in ARKIT_NAMES for c in self.channels])
        values[:, arkit] = np.clip(values[:, arkit], 0.0, 1.0)
        return values

    def window_starts(self, T: int) -> list[int]:
        """First frame of each sampling window; consecutive windows share OVERLAP frames."""
        N, O = self.cfg.window, min(OVERLAP, self.cfg.window // 4)
        return [0] + list(range(N - O, max(T - O, 1), N - O))

    def emotion_curve(self, emotion, from_voice: bool, feats: torch.Tensor, T: int) -> torch.Tensor:
        """T x 8 slider intensities: given (vector, dict or curve), from the voice, or neutral."""
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

    def _emotion_codes(self, emotion, from_voice, reference, feats, T) -> torch.Tensor:
        """T x De emotion codes for the denoiser and the decoupled prior."""
        if reference is not None:
            ref = reference if isinstance(reference, Motion) else Motion.load(reference)
            return self.emotion_from_motion(ref).expand(T, -1)
        curve = self.emotion_curve(emotion, from_voice, feats, T)
        self.last_info["emotion_mean"] = dict(zip(self.emotions, np.round(curve.mean(0).cpu().numpy(), 3).tolist()))
        return self.model.vae.emotion_code(curve)

    def _branches(self, scales: dict, has_style: bool) -> tuple[list[tuple], list[float]]:
        """The guidance branches a window runs, as (audio_on, emotion_on, style_on) flags, and
        the scales between them: only those a scale differs from 1 needs (all scales 1: the
        fully conditioned branch alone); a guidance-distilled student always runs that one."""
        conds = [  # D_0 .. D_3
            (False, False, False), (True, False, False), (True, True, False), (True, True, True)]
        w = [float(scales.get("audio", 1.0)), float(scales.get("emotion", 1.0)), float(scales.get("style", 1.0))]
        if not has_style:
            conds, w = conds[:3], w[:2]
        if self.cfg.guidance_input:
            return conds[-1:], []
        first = next((i for i, x in enumerate(w) if abs(x - 1.0) > 1e-6), len(w))
        return conds[first:], w[first:]

    def _sample_window(self, sampler_fn, timesteps, scales, gen, win: dict):
        """One window through the sampler. A teacher runs incremental guidance over the branches
        it needs; a guidance-distilled student runs one branch with the scales as input."""
        style = win["style"]
        student = self.cfg.guidance_input
        conds, w = self._branches(scales, style is not None)
        B = len(conds)
        dev = self.device
        flags = torch.tensor(conds, device=dev)
        style_in = style if style is not None else torch.zeros(self.cfg.style_dim, device=dev)
        # the prior follows the emotion flag: with emotion off it is rendered neutral
        prior = torch.stack([win["priors"][0] if c[1] else win["priors"][1] for c in conds])
        rep = lambda x: x[None].expand(B, *x.shape)
        kwargs = dict(audio=rep(win["audio"]), prior=prior, prev=rep(win["prev"]),
                      has_prev=torch.full((B,), bool(win["has_prev"]), device=dev),
                      emotion=rep(win["emotion"]), style=rep(style_in), valid=rep(win["valid"]),
                      audio_on=flags[:, 0], emotion_on=flags[:, 1], style_on=flags[:, 2])
        if student:
            g = [float(scales.get(k, 1.0)) for k in ("audio", "emotion", "style")]
            kwargs["guidance"] = torch.tensor([g], device=dev)

        def branches(x, t):
            d = self.model.denoiser(x.expand(B, -1, -1), t.expand(B), **kwargs)
            return list(d.unbind(0))

        combine = guided(branches, w)  # with a single branch this is just that branch
        denoise = lambda x, t: combine(x, t)[None]
        x = torch.randn((1, self.cfg.window, self.cfg.motion_dim), generator=gen).to(dev)
        x0 = sampler_fn(denoise, x, self.schedule, timesteps, generator=gen)
        return x0[0]


def load_generator(checkpoint=None, device: str = "cpu") -> Generator:
    """The default model (or `checkpoint`) ready to `.generate(audio, ...)`."""
    path = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    if device == "cuda" and not torch.cuda.is_available():
        raise LaliaError("CUDA was requested but no GPU is available")
    model, manifest, extra = load_checkpoint(path, device)
    return Generator(model, manifest, extra, device)
