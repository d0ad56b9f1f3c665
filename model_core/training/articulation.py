"""Articulation: the content prior learns to read phones and to hear them.

The lip-sync benchmark on real voices (docs/lipsync_benchmark.md) traced the blur to the
content prior, the speech -> content-code network: on voices unlike the synthetic corpus its
codes smear neighbouring phones together, and the denoiser refines what it is given. This stage
fine-tunes the content prior alone (the AD-VAE, the denoiser and everything else are frozen, so
emotions, styles and the sliders keep their meaning):

- a **phone path**: the prior also reads a per-frame phone track (`ContentPrior`), given with
  `p_phones` probability and replaced by the unknown phone otherwise, so one network serves
  lines with a transcript (exact phones from forced alignment) and lines without;
- a **phone-readout loss**: the audio-only hidden sequence must classify the frame's phone (the
  corpus knows every phone), which makes the audio path phonetic rather than voice-specific;
- its usual losses (content code, rendered motion, lip gap on the bundled head);
- batches drawn in turn from each corpus given (the synthetic one and natural voices).

With `phones_only`, only the phone embedding trains: the audio path is frozen, so generation
without a transcript stays bit-identical (the unknown phone's row is zero) while lines with one
gain the phones.

`python -m model_core articulate CHECKPOINT --corpus DIR [--corpus DIR ...] --out RUN/NAME.safetensors`
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..base.errors import LaliaError
from ..base.phones import UNKNOWN_PHONE
from ..base.vocabulary import PHONES
from ..data.dataset import corpus_samplers
from ..model.checkpoint import load_checkpoint, save_checkpoint
from ..model.networks import LaliaModel
from .train import LossHistory, Objective, TrainConfig, _lr, gradient_step

log = logging.getLogger(__name__)


@dataclass
class ArticulationConfig:
    steps: int = 1500
    batch: int = 32
    lr: float = 5e-4
    warmup: int = 50
    p_phones: float = 0.5   # windows that see their phones (the rest train the audio-only path)
    w_phone: float = 0.2    # the phone-readout loss (cross-entropy, nats)
    phones_only: bool = False  # train the phone embedding alone (audio-only output unchanged)
    seed: int = 0
    threads: int = 0
    max_minutes: float = 0.0


def with_phone_path(model: LaliaModel) -> LaliaModel:
    """The same model with a (zero, so output-preserving) phone path in its content prior."""
    if model.cfg.n_phones == len(PHONES):
        return model
    if model.cfg.n_phones:
        raise LaliaError(f"this model's phone path has {model.cfg.n_phones} phones, Lalia's alphabet "
                         f"{len(PHONES)}")
    cfg = type(model.cfg)(**{**model.cfg.to_dict(), "n_phones": len(PHONES)})
    grown = LaliaModel(cfg)
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("content_prior.phone_") for k in missing), (missing, unexpected)
    return grown.eval()


def phone_readout_loss(model: LaliaModel, b: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy of the audio-only phone readout, its frame accuracy) over valid frames
    with a known phone."""
    known = b["valid"] & (b["phones"] != UNKNOWN_PHONE)
    logits = model.content_prior.phone_logits(b["audio"])[known]
    target = b["phones"][known]
    return F.cross_entropy(logits, target), (logits.argmax(-1) == target).float().mean()


def articulate(checkpoint, corpora: list, out, cfg: ArticulationConfig | None = None, half: bool = False) -> Path:
    """Fine-tune `checkpoint`'s content prior (see the module docstring); everything else is
    copied. Writes the model with `n_phones` set."""
    cfg = cfg or ArticulationConfig()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model, manifest, extra = load_checkpoint(checkpoint)
    model = with_phone_path(model)
    mean = np.array(manifest["norm_mean"], np.float32)
    std = np.array(manifest["norm_std"], np.float32)
    samplers = corpus_samplers(corpora, model.cfg.window, model.cfg.prev, manifest, cfg.seed)
    for corpus, sampler in zip(corpora, samplers):
        if (sampler.d.phones == UNKNOWN_PHONE).all():
            raise LaliaError(f"{corpus} has no phone timings: this stage learns from them")
    tcfg = TrainConfig(**{k: v for k, v in manifest["training"]["config"].items()
                          if k in TrainConfig.__dataclass_fields__})
    objective = Objective(model, tcfg, mean, std, manifest["channels"])
    model.train()
    model.requires_grad_(False)
    model.vae.eval()  # frozen, and deterministic (no dropout) as the codes it gives are targets
    if cfg.phones_only and cfg.w_phone:
        raise LaliaError("phones_only freezes the audio path the phone-readout loss trains: set w_phone to 0")
    prior = model.content_prior
    trained = [prior.phone_embedding.weight] if cfg.phones_only else list(prior.parameters())
    for p in trained:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=0.01)
    sched = TrainConfig(steps=cfg.steps, lr=cfg.lr, warmup=cfg.warmup)
    history = LossHistory("articulate")
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = _lr(step, sched)
        b = samplers[step % len(samplers)].batch(cfg.batch)
        with torch.no_grad():
            mu_c, _, mu_e, _ = model.vae.encode(b["x0"])
        B = len(b["x0"])
        sees = (torch.rand(B) < cfg.p_phones).view(B, 1)
        phones = torch.where(sees, b["phones"], torch.full_like(b["phones"], UNKNOWN_PHONE))
        losses = {"prior": objective.prior_loss(b, mu_c, mu_e, phones)[0]}
        total = losses["prior"]
        if cfg.w_phone:
            losses["phone"], losses["phone_accuracy"] = phone_readout_loss(model, b)
            total = total + cfg.w_phone * losses["phone"]
        gradient_step(opt, total, trained)
        history.add(step, losses)
        if cfg.max_minutes and history.minutes > cfg.max_minutes:
            break
    model.eval()
    record = {"from": Path(checkpoint).name, "corpora": [str(Path(c).name) for c in corpora],
              "config": asdict(cfg), "history": history.rows, "minutes": history.minutes}
    earlier = manifest.get("articulation", [])
    rounds = [*([earlier] if isinstance(earlier, dict) else earlier), record]  # every round, in order
    path = save_checkpoint(out, model, {**manifest, "articulation": rounds}, extra=extra, half=half)
    log.info("articulated model written to %s", path)
    return path
