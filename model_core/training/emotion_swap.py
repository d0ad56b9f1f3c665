"""Emotion swap: the denoiser learns that the emotion slider, not the voice, sets the emotion.

In the corpus every take's voice was synthesized with its emotion (surprised speech is higher
and wider in pitch, `animator.EMOTION_PROSODY`), so the denoiser only ever saw an emotion code
with a voice that matched it. An animator who pushes the surprised slider on a calm recording
asks for a pair it never saw, and on real speech it answered with mouth movement the words
don't explain: the emotional prior it is given keeps the words (openness r 0.573 against
neutral's 0.574 on the lip-sync benchmark's tuning clips), its output under surprised did not
(0.516 against 0.570; docs/lipsync_benchmark.md, round 4).

This stage fine-tunes the denoiser alone on such pairs. A share of the windows (`p_swap`) get
another emotion than their voice's, held over the window, and the procedural animator re-renders
their mouth and jaw for it from the take's phone timings (`WindowSampler.swap_emotion`): the
exact mouth those words take under that emotion. The loss is, per window:
- mouth and jaw channels of swapped windows: the re-rendered motion; with `all_mouths`, those of
  the other windows too: the corpus's own. The distilled student learnt its mouth from the
  teacher, which blurs rounding and vowels on real voices; the animator's mouth doesn't;
- everything else (the other channels, and the unswapped windows' mouth without `all_mouths`):
  what the model gave before this stage, from the same noise and conditions, so blinks, brows
  and head motion stay as they were.
The AD-VAE, content prior, emotion prototypes and style encoder are frozen, so the codes and
sliders keep their meaning.

`python -m model_core swap-emotions CHECKPOINT --corpus DIR [--corpus DIR ...] --out RUN/NAME.safetensors`
"""
from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..data.dataset import corpus_samplers
from ..model.checkpoint import load_checkpoint, save_checkpoint
from ..model.diffusion import cosine_schedule, spaced_timesteps
from .train import LossHistory, TrainConfig, _lr, _masked_mse, denoiser_conditions, gradient_step

log = logging.getLogger(__name__)


@dataclass
class EmotionSwapConfig:
    steps: int = 1200
    batch: int = 16
    lr: float = 3e-4
    warmup: int = 20
    p_swap: float = 0.7      # windows given another emotion than their voice's
    w_mouth: float = 5.0     # weight of the mouth taught from the animator (swapped) or the corpus
    all_mouths: bool = True  # unswapped windows' mouth from the corpus too (not the model's own)
    seed: int = 0
    threads: int = 0
    max_minutes: float = 0.0


def emotion_swap(checkpoint, corpora: list, out, cfg: EmotionSwapConfig | None = None, half: bool = False) -> Path:
    """Fine-tune `checkpoint`'s denoiser on emotion-swapped windows (module docstring), batches
    drawn from each of `corpora` in turn; the rest of the model is copied. The round is
    recorded in the manifest's `emotion_swap` list."""
    cfg = cfg or EmotionSwapConfig()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model, manifest, extra = load_checkpoint(checkpoint)
    before = copy.deepcopy(model).eval()
    ids = {int(s): i for i, s in enumerate(manifest.get("identities", []))}
    samplers = corpus_samplers(corpora, model.cfg.window, model.cfg.prev, manifest, cfg.seed, ids, cfg.p_swap)
    mouth = torch.from_numpy(samplers[0].mouth)
    # a model that samples with classifier-free guidance keeps it: its windows see the
    # conditions dropped as in training, so every guidance branch learns the swap
    keeps_guidance = not manifest.get("guidance_fixed", False) and not model.cfg.guidance_input
    scales = manifest["sampler"].get("guidance", {})
    guidance = (torch.tensor([float(scales.get(k, 1.0)) for k in ("audio", "emotion", "style")])
                if model.cfg.guidance_input else None)
    schedule = cosine_schedule(model.cfg.num_train_steps)
    timesteps = torch.tensor(spaced_timesteps(model.cfg.num_train_steps, int(manifest["sampler"]["steps"])))
    tcfg = TrainConfig()
    model.requires_grad_(False)
    trained = list(model.denoiser.parameters())
    for p in trained:
        p.requires_grad_(True)
    model.train()
    model.vae.eval()
    opt = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=0.0)
    sched = TrainConfig(steps=cfg.steps, lr=cfg.lr, warmup=cfg.warmup)
    history = LossHistory("emotion-swap")
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = _lr(step, sched)
        b = samplers[step % len(samplers)].batch(cfg.batch)
        B = len(b["x0"])
        with torch.no_grad():
            # a swapped window's code is its slider code, as at generation
            swapped = b["swapped"].view(B, 1, 1)
            mu_e = torch.where(swapped, model.vae.emotion_code(b["emotion"]), model.vae.encode(b["x0"])[2])
            cond = denoiser_conditions(model, b, tcfg, mu_e=mu_e, c_hat=model.content_prior(b["audio"]),
                                       style=model.style_encoder(b["ref"], b["ref_valid"]), dropout=keeps_guidance)
            t = timesteps[torch.randint(0, len(timesteps), (B,))]
            x_t = schedule.add_noise(b["x0"], torch.randn_like(b["x0"]), t)
            g = None if guidance is None else guidance.expand(B, -1)
            target = before.denoiser(x_t, t, guidance=g, **cond)
            # the re-rendered mouth is the target only where the emotion is really conditioned on
            taught = (swapped | cfg.all_mouths) & cond["emotion_on"].view(B, 1, 1) & mouth.view(1, 1, -1)
            target = torch.where(taught, b["x0"], target)
        pred = model.denoiser(x_t, t, guidance=g, **cond)
        valid = b["valid"].unsqueeze(-1).float()
        weight = 1.0 + (cfg.w_mouth - 1.0) * taught.float()
        loss = _masked_mse(pred * weight.sqrt(), target * weight.sqrt(), valid)
        gradient_step(opt, loss, trained)
        with torch.no_grad():
            on_mouth = taught.expand_as(pred) * valid
            mouth_err = (((pred - target) ** 2) * on_mouth).sum() / on_mouth.sum().clamp(min=1)
        history.add(step, {"loss": loss, "swapped_mouth": mouth_err})
        if cfg.max_minutes and history.minutes > cfg.max_minutes:
            break
    model.eval()
    record = {"from": Path(checkpoint).name, "corpora": [Path(c).name for c in corpora], "config": asdict(cfg),
              "history": history.rows, "minutes": history.minutes}
    path = save_checkpoint(out, model, {**manifest, "emotion_swap": [*manifest.get("emotion_swap", []), record]},
                           extra=extra, half=half)
    log.info("emotion-swapped model written to %s", path)
    return path
