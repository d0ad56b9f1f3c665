"""Disentangling a trained model's AD-VAE: a fixed emotion judge in the code-swap loss.

Joint training (`train.py`) let the AD-VAE's content code carry the clip's emotion too, and
the decoder followed it over the emotion code. The swap loss was met by re-encoding alone: a
swapped clip need only re-encode to the swapped-in code, which the decoder can hide in
features nothing else looks at. The swap test (`controls_eval`) showed it: content of clip A
with the emotion code of clip B decoded to A's emotion every time.

The fix works as a GAN's discriminator does, except that this one is trained first and then
frozen, so the decoder cannot fool it by moving it:

1. `train_judge`: a small convolutional emotion judge over motion windows learns the corpus's
   emotion labels (soft: the window's mean intensities).
2. `disentangle`: the AD-VAE and the content prior are fine-tuned with their training losses
   plus two more on swapped codes, decode(content A, emotion B):
   - the judge must believe it as it believes B (KL divergence of its softmaxes);
   - its mouth must move as A's does (the lip gap about its window mean: the words).
   The emotion prototypes (slider -> code) stay fixed, so the codes the denoiser is
   conditioned on keep their meaning. Nothing else is trained.

The denoiser then sees a different prior; `distill --adapt NEW` teaches it (and any student)
to give, from the new prior, what it gave from the old one (see `distill.py`).

`python -m model_core disentangle CHECKPOINT --corpus DIR --out RUN/disentangled.safetensors`
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..base.errors import LaliaError
from ..data.dataset import WindowSampler, load_split
from ..model.checkpoint import load_checkpoint, save_checkpoint
from ..model.networks import ConvStack
from .train import LossHistory, Objective, TrainConfig, _lr, _masked_mse, gradient_step, loss_weights, window_emotion

log = logging.getLogger(__name__)


@dataclass
class DisentangleConfig:
    judge_steps: int = 600
    judge_batch: int = 64
    steps: int = 800
    batch: int = 32
    lr: float = 3e-4
    warmup: int = 50
    w_judge: float = 1.0      # the swapped clip shows B's emotion to the judge
    w_keep_words: float = 0.5  # ... and A's mouth movement
    seed: int = 0
    threads: int = 0
    max_minutes: float = 0.0


class EmotionJudge(nn.Module):
    """Motion window (B x T x C, normalised) -> emotion logits (B x 8), pooled over valid frames."""

    def __init__(self, motion_dim: int, n_emotions: int = 8, hidden: int = 64):
        super().__init__()
        self.net = ConvStack(motion_dim, hidden, hidden, layers=3, kernel=9)
        self.out = nn.Linear(hidden, n_emotions)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        m = valid.float().unsqueeze(-1)
        h = (self.net(x) * m).sum(1) / m.sum(1).clamp(min=1)
        return self.out(h)


def _emotion_target(b: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(B x 8 soft target: the window's mean intensities, normalised; B mask of labelled windows)."""
    mean = window_emotion(b["emotion"], b["valid"])
    known = b["emotion_known"] & (mean.sum(-1) > 1e-6)
    return mean / mean.sum(-1, keepdim=True).clamp(min=1e-6), known


def _soft_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * F.log_softmax(logits, -1)).sum(-1).mean()


def train_judge(train: WindowSampler, val: WindowSampler, motion_dim: int,
                cfg: DisentangleConfig) -> tuple[EmotionJudge, dict]:
    """The judge, trained on labelled windows and frozen; with its held-out accuracy (the
    argmax of its belief against the argmax of the labels, on 8 validation batches)."""
    judge = EmotionJudge(motion_dim)
    opt = torch.optim.AdamW(judge.parameters(), lr=1e-3, weight_decay=0.01)
    for step in range(cfg.judge_steps):
        b = train.batch(cfg.judge_batch)
        target, known = _emotion_target(b)
        loss = _soft_ce(judge(b["x0"], b["valid"])[known], target[known])
        gradient_step(opt, loss, judge.parameters(), max_norm=None)
        if (step + 1) % 100 == 0:
            log.info("judge step %d loss %.4f", step + 1, float(loss.detach()))
    judge.eval().requires_grad_(False)
    hits = []
    for _ in range(8):
        b = val.batch(cfg.judge_batch)
        target, known = _emotion_target(b)
        hits.append((judge(b["x0"], b["valid"]).argmax(-1) == target.argmax(-1))[known].float())
    return judge, {"val_accuracy": round(float(torch.cat(hits).mean()), 3), "steps": cfg.judge_steps}


def swap_losses(objective: Objective, judge: EmotionJudge, b: dict, mu_c: torch.Tensor,
                mu_e: torch.Tensor) -> dict:
    """decode(content of clip i, emotion of clip i+1): the judge must believe it as it believes
    clip i+1; its lip gap, about the window's mean, must follow clip i's (mm^2 / 10)."""
    x0, valid = b["x0"], b["valid"]
    perm = torch.roll(torch.arange(len(x0), device=x0.device), 1)
    both = valid & valid[perm]
    swapped = objective.model.vae.decode(mu_c, mu_e[perm])
    believed = F.softmax(judge(x0[perm], valid[perm]), -1)
    out = {"judge": F.kl_div(F.log_softmax(judge(swapped, both), -1), believed, reduction="batchmean")}
    if objective.vertices is None:
        out["keep_words"] = swapped.sum() * 0
        return out
    m = both.float()

    def gap_about_mean(x):
        g = objective.vertices.gap(objective.arkit_weights(x))
        return g - (g * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1)
    out["keep_words"] = _masked_mse(gap_about_mean(swapped).unsqueeze(-1), gap_about_mean(x0).unsqueeze(-1),
                                    m.unsqueeze(-1)) / 10.0
    return out


def disentangle(checkpoint, corpus, out, cfg: DisentangleConfig | None = None) -> Path:
    """Fine-tune `checkpoint`'s AD-VAE and content prior (see the module docstring); everything
    else is copied. Writes the model and, beside it, the judge's weights."""
    cfg = cfg or DisentangleConfig()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model, manifest, extra = load_checkpoint(checkpoint)
    mean = np.array(manifest["norm_mean"], np.float32)
    std = np.array(manifest["norm_std"], np.float32)
    train_data, val_data = load_split(corpus, "train"), load_split(corpus, "val")
    if not train_data.emotion.any() or not val_data.emotion.any():
        raise LaliaError(f"{corpus} has no emotion labels (in its train or val split): the emotion judge "
                         "learns from them, so this stage needs a labelled corpus")
    ids = {int(s): i for i, s in enumerate(manifest.get("identities", []))}
    sampler = WindowSampler(train_data, model.cfg.window, model.cfg.prev, mean, std, ids, seed=cfg.seed)
    val = WindowSampler(val_data, model.cfg.window, model.cfg.prev, mean, std, seed=1234)
    start = time.time()
    judge, judge_report = train_judge(sampler, val, model.cfg.motion_dim, cfg)
    log.info("emotion judge: held-out accuracy %.3f", judge_report["val_accuracy"])

    tcfg = TrainConfig(**{k: v for k, v in manifest["training"]["config"].items()
                          if k in TrainConfig.__dataclass_fields__})
    objective = Objective(model, tcfg, mean, std, manifest["channels"])
    model.train()
    model.requires_grad_(False)
    trained = [p for n, p in model.named_parameters()
               if (n.startswith("vae.") and not n.startswith("vae.prototypes")) or n.startswith("content_prior.")]
    for p in trained:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=0.01)
    weights = {**loss_weights(tcfg), "judge": cfg.w_judge, "keep_words": cfg.w_keep_words}
    sched = TrainConfig(steps=cfg.steps, lr=cfg.lr, warmup=cfg.warmup)
    history = LossHistory("disentangle", start=start)
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = _lr(step, sched)
        b = sampler.batch(cfg.batch)
        losses, mu_c, mu_e = objective.vae_losses(b)
        losses["prior"], _ = objective.prior_loss(b, mu_c, mu_e)
        losses.update(swap_losses(objective, judge, b, mu_c, mu_e))
        total = sum(weights[k] * v for k, v in losses.items())
        gradient_step(opt, total, trained)
        history.add(step, losses)
        if cfg.max_minutes and history.minutes > cfg.max_minutes:
            break
    model.eval()
    out = Path(out)
    record = {"from": Path(checkpoint).name, "config": asdict(cfg), "judge": judge_report,
              "history": history.rows, "minutes": history.minutes}
    path = save_checkpoint(out, model, {**manifest, "disentangled": record}, extra=extra)
    from safetensors.torch import save_file

    from ..base.files import atomic_write
    with atomic_write(out.with_name(out.stem + "_judge.safetensors"), "judge checkpoint") as tmp:
        save_file({k: v.contiguous() for k, v in judge.state_dict().items()}, str(tmp))
    log.info("disentangled model written to %s", path)
    return path
