"""Diffusion schedules, samplers and guidance, as small functions over a denoiser callable.

A *denoiser* is any callable `denoise(x_t, t) -> x0` that predicts the clean sample from a noisy
one at integer timesteps `t` (a tensor of shape [B]). Schedules don't know models and samplers
don't know networks: the generator wires them together.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Schedule:
    """alpha_bar(t) for t = 0..N-1 (t=0 is the least noisy step)."""
    alphas_cumprod: torch.Tensor

    @property
    def num_steps(self) -> int:
        return len(self.alphas_cumprod)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """q(x_t | x0): sqrt(ab) x0 + sqrt(1 - ab) noise."""
        ab = self.alphas_cumprod.to(x0.device)[t].view(-1, *([1] * (x0.dim() - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def cosine_schedule(num_steps: int = 500, s: float = 0.008) -> Schedule:
    """Nichol & Dhariwal (2021) cosine schedule, betas clipped at 0.999."""
    f = lambda t: math.cos((t / num_steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = [min(1 - f(i + 1) / f(i), 0.999) for i in range(num_steps)]
    return Schedule(torch.cumprod(1 - torch.tensor(betas, dtype=torch.float64), 0).float())


def spaced_timesteps(num_train_steps: int, steps: int) -> list[int]:
    """`steps` timesteps from noisiest to cleanest, evenly spaced (DDIM 'trailing' spacing)."""
    steps = max(1, min(steps, num_train_steps))
    return [int(round(num_train_steps - 1 - i * num_train_steps / steps)) for i in range(steps)]


def _eps_from_x0(x_t, x0, ab):
    return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()


def _sample(denoise: Denoiser, x: torch.Tensor, schedule: Schedule, timesteps: Sequence[int], step) -> torch.Tensor:
    """The loop every sampler shares: predict x0 at each timestep, then `step(x, x0, ab, ab_next)`
    moves x to the next timestep. Returns the last x0 prediction."""
    ab_all = schedule.alphas_cumprod.to(x.device)
    for i, t in enumerate(timesteps):
        x0 = denoise(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
        if i + 1 == len(timesteps):
            return x0
        x = step(x, x0, ab_all[t], ab_all[timesteps[i + 1]])
    return x


def ddim_step(x: torch.Tensor, x0: torch.Tensor, ab: torch.Tensor, ab_next: torch.Tensor, eta: float = 0.0,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """One DDIM step (Song et al. 2021): from x at alpha_bar `ab` to `ab_next`, given the x0
    prediction. eta=0 is deterministic (the sampler's and distillation's step); eta=1 matches
    DDPM's variance."""
    eps = _eps_from_x0(x, x0, ab)
    if eta == 0:
        return ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps
    sigma = eta * ((1 - ab_next) / (1 - ab) * (1 - ab / ab_next)).clamp(min=0).sqrt()
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return ab_next.sqrt() * x0 + (1 - ab_next - sigma ** 2).clamp(min=0).sqrt() * eps + sigma * noise


def sample_ddim(denoise: Denoiser, x: torch.Tensor, schedule: Schedule, timesteps: Sequence[int],
                generator: torch.Generator | None = None, eta: float = 0.0) -> torch.Tensor:
    """DDIM (Song et al. 2021) over the given timesteps; eta=0 is deterministic.

    x: pure noise at timesteps[0]. Returns the final x0 prediction.
    """
    step = lambda x, x0, ab, ab_next: ddim_step(x, x0, ab, ab_next, eta, generator)
    return _sample(denoise, x, schedule, timesteps, step)


def sample_ddpm(denoise: Denoiser, x: torch.Tensor, schedule: Schedule, timesteps: Sequence[int],
                generator: torch.Generator | None = None) -> torch.Tensor:
    """DDPM ancestral sampling (Ho et al. 2020) with the posterior q(x_{t'} | x_t, x0) between
    consecutive given timesteps (all N steps reproduce DiffPoseTalk's sampler)."""
    def step(x, x0, ab, ab_prev):
        alpha = ab / ab_prev  # the effective one-step alpha between the two timesteps
        mean = (ab_prev.sqrt() * (1 - alpha) / (1 - ab)) * x0 + (alpha.sqrt() * (1 - ab_prev) / (1 - ab)) * x
        var = (1 - ab_prev) / (1 - ab) * (1 - alpha)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return mean + var.clamp(min=0).sqrt() * noise
    return _sample(denoise, x, schedule, timesteps, step)


SAMPLERS = {"ddim": sample_ddim, "ddpm": sample_ddpm}


def guided_batch(denoise_branches: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
                 t: torch.Tensor, n_branches: int, scales) -> torch.Tensor:
    """Incremental classifier-free guidance (DiffPoseTalk's form) with its branches in one batch.

    The branches D_0 .. D_k add the conditions one at a time (D_0 unconditional, D_k fully
    conditioned; n_branches = k + 1). x and t are repeated branch-major, so `denoise_branches`
    sees n_branches x B examples and holds its conditions in the same order; its output is split
    back into the branches and combined by `combine_incremental`. One branch (all scales 1, or a
    guidance-distilled student) is just that branch.
    """
    preds = denoise_branches(torch.cat([x] * n_branches), torch.cat([t] * n_branches))
    return combine_incremental(preds.chunk(n_branches), scales)


def combine_incremental(preds: Sequence[torch.Tensor], scales) -> torch.Tensor:
    """D_0 + sum_i scales[i] * (D_{i+1} - D_i). Each scale a float, or a tensor that
    broadcasts against the predictions (per-example scales)."""
    out = preds[0]
    for i, w in enumerate(scales):
        out = out + w * (preds[i + 1] - preds[i])
    return out
