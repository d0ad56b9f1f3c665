"""Sampling a whole utterance in windows (DiffPoseTalk's long-audio scheme, with overlaps).

The utterance is cut into windows of `window` frames that overlap by OVERLAP frames; each is
conditioned on the last `prev` frames generated before it and cross-faded into its predecessor,
so windows join without a jump. The last window is padded and its padded frames are marked
invalid. Inside a window, the guidance branches a teacher needs run as one batch.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..base.errors import LaliaError
from ..model.diffusion import Schedule, guided_batch

OVERLAP = 10  # frames shared (and cross-faded) by consecutive windows


class Cancelled(LaliaError):
    """Generation was cancelled by the caller; nothing was produced."""


def window_starts(T: int, window: int) -> list[int]:
    """First frame of each sampling window; consecutive windows share OVERLAP frames."""
    O = min(OVERLAP, window // 4)
    return [0] + list(range(window - O, max(T - O, 1), window - O))


def guidance_branches(scales: dict, has_style: bool, guidance_input: bool) -> tuple[list[tuple], list[float]]:
    """The guidance branches a window runs, as (audio_on, emotion_on, style_on) flags, and
    the scales between them: only those a scale differs from 1 needs (all scales 1: the
    fully conditioned branch alone); a guidance-distilled student always runs that one."""
    conds = [  # D_0 .. D_3
        (False, False, False), (True, False, False), (True, True, False), (True, True, True)]
    w = [float(scales.get("audio", 1.0)), float(scales.get("emotion", 1.0)), float(scales.get("style", 1.0))]
    if not has_style:
        conds, w = conds[:3], w[:2]
    if guidance_input:
        return conds[-1:], []
    first = next((i for i, x in enumerate(w) if abs(x - 1.0) > 1e-6), len(w))
    return conds[first:], w[first:]


class WindowSampler:
    """One model's denoiser, a sampler and its timesteps, guidance scales and seed: samples
    an utterance's normalised motion from its conditions."""

    def __init__(self, model, sampler_fn, schedule: Schedule, timesteps: list[int], scales: dict,
                 generator: torch.Generator, device: str = "cpu"):
        self.model, self.cfg = model, model.cfg
        self.sampler_fn, self.schedule, self.timesteps = sampler_fn, schedule, timesteps
        self.scales, self.generator, self.device = scales, generator, device

    def sample(self, feats: torch.Tensor, code: torch.Tensor, priors: tuple[torch.Tensor, torch.Tensor],
               style: torch.Tensor | None, progress: Callable[[float], None] | None = None,
               cancel: Callable[[], bool] | None = None, known: torch.Tensor | None = None,
               span: tuple[int, int] | None = None) -> torch.Tensor:
        """T x C normalised motion for T frames of speech features, emotion codes and the two
        decoupled priors (with the emotion, and neutral). With `known` (T x C, normalised) and
        `span` (a, b), only frames a..b are sampled, starting from the known frames before a as
        context; every other frame is the known one."""
        T, dev = len(feats), self.device
        N, P, C = self.cfg.window, self.cfg.prev, self.cfg.motion_dim
        O = min(OVERLAP, N // 4)
        first, end = span if span is not None else (0, T)
        out = known.clone() if known is not None else torch.zeros(T, C, device=dev)
        starts = [first + s for s in window_starts(end - first, N)]
        ramp = torch.linspace(0, 1, O + 2, device=dev)[1:-1, None]
        ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep
        pad = lambda x, n: torch.cat([x, x[-1:].expand(N - n, -1)]) if n < N else x
        for w, s in enumerate(starts):
            if cancel and cancel():
                raise Cancelled("Generation cancelled")
            n = min(N, end - s)
            a = torch.zeros(N, feats.shape[1], device=dev)
            a[:n] = feats[s:s + n]
            valid = torch.zeros(N, dtype=torch.bool, device=dev)
            valid[:n] = True
            prev = torch.zeros(P, C, device=dev)
            if s > 0:
                ctx = out[max(0, s - P):s]
                prev[P - len(ctx):] = ctx
            window = dict(audio=a, emotion=pad(code[s:s + n], n), priors=[pad(p[s:s + n], n) for p in priors],
                          valid=valid, prev=prev, has_prev=s > 0, style=style)
            x0 = self.sample_window(window)
            if s == first:
                out[s:s + n] = x0[:n]
            else:
                k = min(O, n)
                out[s:s + k] = (1 - ramp[:k]) * out[s:s + k] + ramp[:k] * x0[:k]
                out[s + k:s + n] = x0[k:n]
            if progress:
                progress((w + 1) / len(starts))
        return out

    def sample_window(self, win: dict) -> torch.Tensor:
        """One window through the sampler. A teacher runs incremental guidance over the branches
        it needs; a guidance-distilled student runs one branch with the scales as input."""
        style, scales, dev = win["style"], self.scales, self.device
        conds, w = guidance_branches(scales, style is not None, self.cfg.guidance_input)
        B = len(conds)
        flags = torch.tensor(conds, device=dev)
        style_in = style if style is not None else torch.zeros(self.cfg.style_dim, device=dev)
        # the prior follows the emotion flag: with emotion off it is rendered neutral
        prior = torch.stack([win["priors"][0] if c[1] else win["priors"][1] for c in conds])
        rep = lambda x: x[None].expand(B, *x.shape)
        kwargs = dict(audio=rep(win["audio"]), prior=prior, prev=rep(win["prev"]),
                      has_prev=torch.full((B,), bool(win["has_prev"]), device=dev),
                      emotion=rep(win["emotion"]), style=rep(style_in), valid=rep(win["valid"]),
                      audio_on=flags[:, 0], emotion_on=flags[:, 1], style_on=flags[:, 2])
        if self.cfg.guidance_input:
            g = [float(scales.get(k, 1.0)) for k in ("audio", "emotion", "style")]
            kwargs["guidance"] = torch.tensor([g], device=dev)
        denoise_branches = lambda x, t: self.model.denoiser(x, t, **kwargs)
        denoise = lambda x, t: guided_batch(denoise_branches, x, t, B, w)
        x = torch.randn((1, self.cfg.window, self.cfg.motion_dim), generator=self.generator).to(dev)
        return self.sampler_fn(denoise, x, self.schedule, self.timesteps, generator=self.generator)[0]
