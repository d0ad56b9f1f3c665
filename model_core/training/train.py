"""Training: `python -m model_core train CONFIG.toml` (single process, or torchrun for DDP).

Read top to bottom: config -> data -> model -> loop (loss, step, log, validate, checkpoint).
Resumable: `RUN/last.safetensors` holds weights and optimizer state, `RUN/last.json` the step.
Multi-GPU / multi-process: launch with `torchrun --nproc_per_node K -m model_core train CONFIG`;
each rank draws its own batches, gradients are averaged by DistributedDataParallel (NCCL on
GPU, gloo on CPU). Mixed precision (bf16 autocast) on CUDA.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..base.errors import LaliaError
from ..base.head import load_head
from ..base.motion import ARKIT_HEAD_LAYOUT, ARKIT_NAMES
from ..base.vocabulary import EMOTIONS, STYLE_FIELDS
from ..data.dataset import WindowSampler, load_split
from ..model.checkpoint import save_checkpoint
from ..model.diffusion import cosine_schedule
from ..model.networks import LaliaModel, ModelConfig, info_nce, nt_xent, reverse_gradient

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    corpus: str = "corpus"
    run_dir: str = "runs/default"
    steps: int = 4000
    batch: int = 32
    lr: float = 3e-4
    warmup: int = 200
    weight_decay: float = 0.01
    seed: int = 0
    log_every: int = 50
    val_every: int = 500
    ckpt_every: int = 250
    max_minutes: float = 0.0        # stop (and save) after this wall time; 0 = no limit
    threads: int = 0                # torch CPU threads; 0 = default
    init_from: str = ""             # fine-tune: start from this checkpoint's weights (new parts fresh)
    # classifier-free guidance dropout (DiffPoseTalk: 45% full, 45% no style, 10% nothing)
    p_drop_audio: float = 0.1
    p_drop_style: float = 0.45
    p_drop_emotion: float = 0.2
    p_identity: float = 0.3         # style condition from the speaker's identity embedding
    p_emotion_from_labels: float = 0.5  # emotion code from the labels (else from the motion)
    # loss weights: the denoiser
    w_vertex: float = 1.0
    w_lip_gap: float = 0.5
    w_velocity: float = 0.5
    w_smooth: float = 0.1
    w_head: float = 1.0
    w_boundary: float = 0.5
    # the controls: style encoder, identities, AD-VAE, content prior, voice emotion
    w_style: float = 0.1
    w_style_properties: float = 0.0  # style parameters read out of the style vector (labelled corpora)
    w_identity: float = 0.2
    w_vae: float = 1.0
    w_vae_kl: float = 1e-3
    w_content_nce: float = 0.2
    w_emotion_code: float = 1.0
    w_emotion_nce: float = 0.1
    w_adversary: float = 0.2
    w_swap: float = 0.5
    w_prior: float = 1.0
    w_voice_emotion: float = 0.5
    model: dict = field(default_factory=dict)


def load_config(path) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        raise LaliaError(f"Training config not found: {path}")
    raw = tomllib.loads(path.read_text())
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(raw) - known
    if unknown:
        raise LaliaError(f"{path}: unknown settings {sorted(unknown)}")
    cfg = TrainConfig(**raw)
    # relative paths in the config are relative to the repository (the config's parent's parent)
    return cfg


def motion_stats(motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = motion.mean(0)
    std = np.maximum(motion.std(0), 0.02)  # channels that barely move don't blow up
    return mean.astype(np.float32), std.astype(np.float32)


class VertexBasis(nn.Module):
    """ARKit weights -> displacements of the lip region and landmarks of the bundled head (mm),
    and the inner lip gap (mm), which is affine in the weights."""

    def __init__(self):
        super().__init__()
        head = load_head()
        idx = np.unique(np.concatenate([head.lip_vertices, list(head.landmarks.values())]))
        basis = head.targets[:, idx, :].reshape(52, -1) * 1000.0
        self.register_buffer("basis", torch.from_numpy(basis.astype(np.float32)), persistent=False)
        self.gap0, dg = head.lip_gap_model()
        self.register_buffer("gap_basis", torch.from_numpy(dg), persistent=False)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return (w @ self.basis).unflatten(-1, (-1, 3))

    def gap(self, w: torch.Tensor) -> torch.Tensor:
        return self.gap0 + w @ self.gap_basis


def _masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the frames where mask (B x T x 1) is 1."""
    return (((a - b) ** 2) * mask).sum() / (mask.sum() * a.shape[-1]).clamp(min=1)


def loss_weights(cfg: TrainConfig) -> dict[str, float]:
    """Each training loss's weight in the total."""
    return {"x0": 1.0, "vertex": cfg.w_vertex, "lip_gap": cfg.w_lip_gap, "velocity": cfg.w_velocity,
            "smooth": cfg.w_smooth, "head": cfg.w_head, "boundary": cfg.w_boundary,
            "style": cfg.w_style, "style_properties": cfg.w_style_properties,
            "identity": cfg.w_identity, "vae": cfg.w_vae,
            "vae_kl": cfg.w_vae_kl, "content_nce": cfg.w_content_nce,
            "emotion_code": cfg.w_emotion_code, "emotion_nce": cfg.w_emotion_nce,
            "adversary": cfg.w_adversary, "swap": cfg.w_swap, "prior": cfg.w_prior,
            "voice_emotion": cfg.w_voice_emotion}


def _kl(mu: torch.Tensor, logvar: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp())
    return (kl * mask).sum() / (mask.sum() * mu.shape[-1]).clamp(min=1)


def window_emotion(emotion: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """B x 8: each window's mean emotion intensities over its valid frames."""
    m = valid.float().unsqueeze(-1)
    return (emotion * m).sum(1) / m.sum(1).clamp(min=1)


def _window_labels(emotion: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """One contrastive class per window: its dominant emotion x intensity (3 bins)."""
    mean = window_emotion(emotion, valid)
    k = mean.argmax(-1)
    level = (mean.max(-1).values * 3).clamp(max=2.99).long()
    return k * 3 + level


def denoiser_conditions(m: LaliaModel, b: dict, cfg: TrainConfig, *, mu_e: torch.Tensor,
                        c_hat: torch.Tensor, style: torch.Tensor, dropout: bool = True) -> dict:
    """The denoiser's conditions for a batch (everything but x_t and t), as at inference.

    Emotion code: from the labels' prototypes or from the motion's AD-VAE code (detached). The
    decoupled prior is rendered with it (neutral when emotion is off). Style: the reference
    clip's style vector or the speaker's identity embedding. With `dropout`, conditions are
    dropped for classifier-free guidance (speech 10%; style and emotion on top); without it all
    are on but style, which stays off for half the batch (students learn both cases)."""
    B = len(b["x0"])
    r = torch.rand(B, 5, device=b["x0"].device)
    if dropout:
        audio_on = r[:, 0] >= cfg.p_drop_audio
        style_on = audio_on & (r[:, 1] >= cfg.p_drop_style)
        emotion_on = audio_on & (r[:, 2] >= cfg.p_drop_emotion)
    else:
        audio_on = emotion_on = torch.ones(B, dtype=torch.bool, device=r.device)
        style_on = r[:, 1] >= 0.5
    from_labels = b["emotion_known"] & (r[:, 3] < cfg.p_emotion_from_labels)
    code = torch.where(from_labels.view(B, 1, 1), m.vae.emotion_code(b["emotion"]), mu_e).detach()
    prior_code = torch.where(emotion_on.view(B, 1, 1), code, m.neutral_code().detach().expand_as(code))
    ids = b["identity"]
    use_id = (ids >= 0) & (r[:, 4] < cfg.p_identity)
    cond_style = torch.where(use_id.view(B, 1), m.identities.embeddings[ids.clamp(min=0)], style)
    return dict(audio=b["audio"], prior=m.vae.decode(c_hat, prior_code).detach(), prev=b["prev"],
                has_prev=b["has_prev"], emotion=code, style=cond_style, valid=b["valid"],
                audio_on=audio_on, emotion_on=emotion_on, style_on=style_on)


class Objective(nn.Module):
    """One training step's losses (a module so DistributedDataParallel can wrap it)."""

    def __init__(self, model: LaliaModel, cfg: TrainConfig, mean, std, channels=ARKIT_HEAD_LAYOUT,
                 style_params: np.ndarray | None = None):
        super().__init__()
        self.model, self.cfg = model, cfg
        # z-scores for the speakers' style parameters (fields without spread, e.g. real data: off)
        sp = np.zeros((1, model.cfg.n_style_fields), np.float32) if style_params is None else style_params
        self.register_buffer("style_mean", torch.from_numpy(sp.mean(0).astype(np.float32)), persistent=False)
        sd = sp.std(0).astype(np.float32)
        self.register_buffer("style_std", torch.from_numpy(np.maximum(sd, 1e-6)), persistent=False)
        self.register_buffer("style_known", torch.from_numpy(sd > 1e-6), persistent=False)
        self.schedule = cosine_schedule(model.cfg.num_train_steps)
        self.register_buffer("mean", torch.from_numpy(mean), persistent=False)
        self.register_buffer("std", torch.from_numpy(std), persistent=False)
        # the vertex and lip-gap losses need the bundled head's ARKit targets; FLAME skips them
        self.vertices = VertexBasis() if tuple(channels[:52]) == ARKIT_NAMES else None
        self.head_idx = [channels.index(n) for n in ("headPitch", "headYaw", "headRoll")]

    def arkit_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised motion -> its 52 ARKit blendshape weights."""
        return x[..., :52] * self.std[:52] + self.mean[:52]

    def face_losses(self, pred: torch.Tensor, x0: torch.Tensor, vm: torch.Tensor) -> dict:
        """Vertex (mm^2 / 10) and lip gap (mm^2 / 10, closed lips weighted 5x) on the bundled head."""
        if self.vertices is None:
            zero = pred.sum() * 0
            return {"vertex": zero, "lip_gap": zero}
        w_pred, w_true = self.arkit_weights(pred), self.arkit_weights(x0)
        dv = (self.vertices(w_pred) - self.vertices(w_true)).norm(dim=-1)
        gap_p, gap_t = self.vertices.gap(w_pred), self.vertices.gap(w_true)
        closed = 1.0 + 4.0 * (gap_t < 2.0).float()
        n = vm.sum().clamp(min=1)
        return {"vertex": ((dv ** 2).mean(-1, keepdim=True) * vm).sum() / n / 10.0,
                "lip_gap": (((gap_p - gap_t) ** 2 * closed).unsqueeze(-1) * vm).sum() / n / 10.0}

    def vae_losses(self, b: dict) -> tuple[dict, torch.Tensor, torch.Tensor]:
        """ExpTalk's AD-VAE: reconstruction + KL, content contrasted with the speech, emotion
        codes pulled to the label prototypes and contrasted by emotion x intensity, an
        adversary that must not read emotion from content, and swapped codes that must
        re-encode to what was swapped in. Returns (losses, content means, emotion means)."""
        vae, x0, valid = self.model.vae, b["x0"], b["valid"]
        vm = valid.unsqueeze(-1).float()
        mu_c, lv_c, mu_e, lv_e = vae.encode(x0)
        c = mu_c + torch.randn_like(mu_c) * (0.5 * lv_c).exp()
        e = mu_e + torch.randn_like(mu_e) * (0.5 * lv_e).exp()
        recon = vae.decode(c, e)
        out = {"vae": _masked_mse(recon, x0, vm) + self.face_losses(recon, x0, vm)["lip_gap"],
               "vae_kl": _kl(mu_c, lv_c, vm) + _kl(mu_e, lv_e, vm)}
        # content <-> speech (per frame, InfoNCE over random valid frames of the batch)
        speech = F.avg_pool1d(b["audio"].transpose(1, 2), 5, 1, 2).transpose(1, 2)
        frames = valid.nonzero()
        pick = frames[torch.randperm(len(frames), device=frames.device)[:256]]
        out["content_nce"] = info_nce(vae.content_head(mu_c[pick[:, 0], pick[:, 1]]),
                                      vae.speech_head(speech[pick[:, 0], pick[:, 1]]))
        # emotion codes: at the prototypes of their labels, and grouped by emotion x intensity
        known = (b["emotion_known"].view(-1, 1, 1).float() * vm)
        out["emotion_code"] = _masked_mse(mu_e, vae.emotion_code(b["emotion"]), known)
        pooled = (mu_e * vm).sum(1) / vm.sum(1).clamp(min=1)
        lab = b["emotion_known"]
        out["emotion_nce"] = nt_xent(pooled[lab], _window_labels(b["emotion"], valid)[lab]) if lab.sum() > 1 \
            else pooled.sum() * 0
        adv = torch.sigmoid(vae.adversary(reverse_gradient(mu_c)))
        out["adversary"] = _masked_mse(adv, b["emotion"], known)
        # swap: content of clip i with the emotion of clip i+1 must re-encode to both
        perm = torch.roll(torch.arange(len(x0), device=x0.device), 1)
        both = vm * vm[perm]
        mu_c2, _, mu_e2, _ = vae.encode(vae.decode(mu_c, mu_e[perm]))
        out["swap"] = _masked_mse(mu_c2, mu_c.detach(), both) + _masked_mse(mu_e2, mu_e[perm].detach(), both)
        return out, mu_c, mu_e

    def prior_loss(self, b: dict, mu_c: torch.Tensor, mu_e: torch.Tensor, phones: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoupled prior (speech -> content code, rendered with the clip's emotion code)
        against the AD-VAE's codes and the motion; `phones`: the track the prior reads, for
        models with a phone path. Returns (loss, predicted content codes)."""
        vm = b["valid"].unsqueeze(-1).float()
        c_hat = self.model.content_prior(b["audio"], phones)
        rendered = self.model.vae.decode(c_hat, mu_e.detach())
        loss = _masked_mse(c_hat, mu_c.detach(), vm) + _masked_mse(rendered, b["x0"], vm) + \
            self.face_losses(rendered, b["x0"], vm)["lip_gap"]
        return loss, c_hat

    def forward(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg, m = self.cfg, self.model
        x0, valid = b["x0"], b["valid"]
        B = x0.shape[0]
        dev = x0.device
        vm = valid.unsqueeze(-1).float()
        losses, mu_c, mu_e = self.vae_losses(b)
        losses["prior"], c_hat = self.prior_loss(b, mu_c, mu_e)
        style = m.style_encoder(b["ref"], b["ref_valid"])
        cond = denoiser_conditions(m, b, cfg, mu_e=mu_e, c_hat=c_hat, style=style)

        t = torch.randint(0, self.schedule.num_steps, (B,), device=dev)
        x_t = self.schedule.add_noise(x0, torch.randn_like(x0), t)
        pred = m.denoiser(x_t, t, **cond)
        losses["x0"] = _masked_mse(pred, x0, vm)
        losses.update(self.face_losses(pred, x0, vm))
        vel_m = (valid[:, 1:] & valid[:, :-1]).unsqueeze(-1).float()
        vp, vt = pred[:, 1:] - pred[:, :-1], x0[:, 1:] - x0[:, :-1]
        losses["velocity"] = _masked_mse(vp, vt, vel_m)
        acc_m = (valid[:, 2:] & valid[:, :-2]).unsqueeze(-1).float()
        losses["smooth"] = _masked_mse(vp[:, 1:] - vp[:, :-1], vt[:, 1:] - vt[:, :-1], acc_m)
        h = self.head_idx
        losses["head"] = _masked_mse(pred[..., h], x0[..., h], vm) + _masked_mse(vp[..., h], vt[..., h], vel_m)
        # window boundary: the step from the last previous frame to the first frame
        hp = b["has_prev"].float().view(B, 1)
        step_p, step_t = pred[:, 0] - b["prev"][:, -1], x0[:, 0] - b["prev"][:, -1]
        losses["boundary"] = (((step_p - step_t) ** 2) * hp).sum() / (hp.sum() * x0.shape[-1]).clamp(min=1)

        # style encoder (NT-Xent over speakers); identities sit in the style space and are
        # matched from the audio contrastively (DiffusionTalker)
        losses["style"] = nt_xent(style, b["speaker"])
        z = (b["style_params"] - self.style_mean) / self.style_std
        losses["style_properties"] = _masked_mse(m.style_properties(style)[:, self.style_known],
                                                 z[:, self.style_known], torch.ones_like(z[:, :1]))
        ids = b["identity"]
        known_id = ids >= 0
        if known_id.any():
            q = m.identities.audio_embedding(b["audio"], valid)[known_id]
            losses["identity"] = F.cross_entropy(m.identities.logits(q), ids[known_id]) + \
                F.mse_loss(m.identities.embeddings[ids[known_id]], style[known_id].detach())
        else:
            losses["identity"] = style.sum() * 0
        ve = m.voice_emotion(b["audio"])
        losses["voice_emotion"] = _masked_mse(ve, b["emotion"], b["emotion_known"].view(B, 1, 1).float() * vm)
        weights = loss_weights(cfg)
        losses["total"] = sum(weights[k] * v for k, v in losses.items())
        return losses


def _init_weights(model: LaliaModel, path) -> None:
    """Fine-tuning: copy a checkpoint's weights where names and shapes match; report the rest."""
    from safetensors.torch import load_file

    from ..model.checkpoint import read_manifest
    read_manifest(path)  # a Lalia checkpoint of this format, or a clear error
    own = model.state_dict()
    same = {k: v.float() for k, v in load_file(str(path)).items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(same, strict=False)
    fresh = sorted({k.split(".")[0] + "." + k.split(".")[1] for k in own if k not in same})
    log.info("initialised from %s: %d tensors copied, fresh: %s", path, len(same), fresh or "none")


def gradient_step(opt: torch.optim.Optimizer, loss: torch.Tensor, params, max_norm: float | None = 1.0) -> None:
    """One optimiser step on `loss`, its gradient norm over `params` clipped to `max_norm` (None: not)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if max_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, max_norm)
    opt.step()


class LossHistory:
    """Running means of named losses: every `every` steps a row (step, minutes since `start`,
    each mean) goes to `rows` and to the log, under `name`."""

    def __init__(self, name: str, every: int = 50, start: float | None = None):
        self.name, self.every, self.rows, self._sums = name, every, [], {}
        self.start = time.time() if start is None else start

    @property
    def minutes(self) -> float:
        return round((time.time() - self.start) / 60, 2)

    def add(self, step: int, losses: dict) -> None:
        for k, v in losses.items():
            self._sums[k] = self._sums.get(k, 0.0) + float(v.detach())
        if (step + 1) % self.every == 0:
            avg = {k: round(v / self.every, 5) for k, v in self._sums.items()}
            self.rows.append({"step": step + 1, "minutes": self.minutes, **avg})
            log.info("%s step %d %s", self.name, step + 1, " ".join(f"{k}={v:.4f}" for k, v in avg.items()))
            self._sums = {}


def _lr(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def _optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"optim.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return out


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def train(config_path, resume: bool = True) -> Path:
    cfg = load_config(config_path)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = int(os.environ.get("RANK", "0"))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if distributed:
        backend = "nccl" if device == "cuda" else "gloo"
        torch.distributed.init_process_group(backend)
        if device == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)
    run = Path(cfg.run_dir)
    from ..base.files import check_output_path
    check_output_path(run / "last.safetensors", "checkpoint")  # before any work: not after the first hour
    run.mkdir(parents=True, exist_ok=True)

    # ---- data
    train_data = load_split(cfg.corpus, "train")
    val_data = load_split(cfg.corpus, "val")
    mean, std = motion_stats(train_data.motion)
    channels = train_data.channels or ARKIT_HEAD_LAYOUT
    speakers = np.unique(train_data.speaker)
    mcfg = ModelConfig(**{**cfg.model, "n_identities": len(speakers), "motion_dim": train_data.motion.shape[1]})
    identities = {int(s): i for i, s in enumerate(speakers)}  # speaker id -> library index
    sampler = WindowSampler(train_data, mcfg.window, mcfg.prev, mean, std, identities, seed=cfg.seed + rank)
    val_sampler = WindowSampler(val_data, mcfg.window, mcfg.prev, mean, std, seed=1234)
    val_batches = [val_sampler.batch(cfg.batch) for _ in range(4)]

    # ---- model
    model = LaliaModel(mcfg).to(device)
    if cfg.init_from:
        _init_weights(model, cfg.init_from)
    objective = Objective(model, cfg, mean, std, channels, style_params=train_data.style).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step = 0
    history: list[dict] = []
    last = run / "last.safetensors"
    if resume and last.exists():
        from safetensors.torch import load_file
        tensors = load_file(str(last), device=device)
        model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("optim.")})
        _restore_optimizer(opt, {k: v for k, v in tensors.items() if k.startswith("optim.")})
        state = json.loads((run / "last.json").read_text())
        step, history = state["train_state"]["step"], state["train_state"]["history"]
        log.info("resumed %s at step %d", run, step)
    net = objective
    if distributed:
        net = nn.parallel.DistributedDataParallel(objective, find_unused_parameters=True)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("model %.2fM parameters on %s; %d train frames", n_params / 1e6, device, len(train_data.motion))

    def manifest(extra_state: dict | None = None) -> dict:
        return {
            "channels": list(channels), "fps": 25.0, "window": mcfg.window, "prev": mcfg.prev,
            "norm_mean": mean.tolist(), "norm_std": std.tolist(), "emotions": list(EMOTIONS),
            "style_fields": list(STYLE_FIELDS),
            "identities": [int(x) for x in speakers],  # library index -> corpus speaker id
            "sampler": {"name": "ddim", "steps": 8, "guidance": {"audio": 1.0, "emotion": 1.0, "style": 1.0}},
            "speech_encoder": "whisper-tiny.en encoder (final layer), 25 fps",
            "training": {"corpus": str(cfg.corpus), "corpus_manifest": _corpus_summary(cfg.corpus),
                         "config": {k: getattr(cfg, k) for k in TrainConfig.__dataclass_fields__},
                         "device": device, "world_size": int(os.environ.get("WORLD_SIZE", "1")),
                         "parameters": n_params},
            **(extra_state or {}),
        }

    def save(path):
        if rank == 0:
            save_checkpoint(path, model, manifest({"train_state": {"step": step, "history": history}}),
                            extra=_optimizer_tensors(opt))

    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    start = time.time()
    running: dict[str, float] = {}
    model.train()
    while step < cfg.steps:
        for g in opt.param_groups:
            g["lr"] = _lr(step, cfg)
        batch = {k: v.to(device) for k, v in sampler.batch(cfg.batch).items()}
        with amp:
            losses = net(batch)
        gradient_step(opt, losses["total"], model.parameters())
        step += 1
        for k, v in losses.items():
            running[k] = running.get(k, 0.0) + float(v.detach())
        if step % cfg.log_every == 0 and rank == 0:
            avg = {k: round(v / cfg.log_every, 5) for k, v in running.items()}
            history.append({"step": step, "minutes": round((time.time() - start) / 60, 2), **avg})
            log.info("step %d %s", step, " ".join(f"{k}={v:.4f}" for k, v in avg.items()))
            running = {}
        if step % cfg.val_every == 0 and rank == 0:
            val = validate(objective, val_batches, device)
            history.append({"step": step, "val": val})
            log.info("step %d validation %s", step, val)
        if step % cfg.ckpt_every == 0:
            save(last)
        if cfg.max_minutes and (time.time() - start) / 60 > cfg.max_minutes:
            log.info("time budget reached at step %d", step)
            break
    save(last)
    if rank == 0:
        val = validate(objective, val_batches, device)
        history.append({"step": step, "val": val, "minutes": round((time.time() - start) / 60, 2)})
        save_checkpoint(run / "final.safetensors", model, manifest({"history": history}))
    if distributed:
        torch.distributed.destroy_process_group()
    return run / "final.safetensors"


@torch.no_grad()
def validate(objective: Objective, batches, device) -> dict:
    """Denoising losses on fixed validation windows at three noise levels."""
    objective.eval()
    g = torch.Generator(device="cpu").manual_seed(0)
    out: dict[str, float] = {}
    for b in batches:
        b = {k: v.to(device) for k, v in b.items()}
        torch.manual_seed(int(torch.randint(0, 10 ** 6, (1,), generator=g)))
        losses = objective(b)
        for k in ("x0", "vertex", "lip_gap", "vae", "prior", "total"):
            out[k] = out.get(k, 0.0) + float(losses[k]) / len(batches)
    objective.train()
    return {k: round(v, 5) for k, v in out.items()}


def _corpus_summary(root) -> dict:
    p = Path(root) / "manifest.json"
    if not p.exists():
        return {}
    m = json.loads(p.read_text())
    return {"seed": m.get("seed"), "source": m.get("source", "synthetic"),
            "hours": {s: st["hours"] for s, st in m["splits"].items()},
            "speakers": len(m["speakers"]), "text_source": m.get("text_source")}
