"""The networks: the x0-predicting motion denoiser, the style encoder and the voice-emotion head.

Denoiser token sequence (DiffPoseTalk's layout): one conditioning token (timestep + style +
identity), `prev` previous-frame tokens, `window` current-frame tokens. Motion tokens cross-attend
to the speech features through an alignment mask: frame i sees speech frames i-band..i+band only;
the conditioning token sees all of them. Emotion (8 intensities per frame, continuous, may change
over time) is added to each current-frame token. Every condition has a learned "null" value used
when it is dropped (classifier-free guidance).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ModelConfig:
    motion_dim: int = 55
    audio_dim: int = 384
    d_model: int = 192
    layers: int = 4
    heads: int = 4
    ffn: int = 768
    window: int = 100          # current frames per window (4 s at 25 fps)
    prev: int = 10             # previous-frame context
    audio_band: int = 2        # alignment mask half-width, frames
    style_dim: int = 128
    style_layers: int = 2
    n_emotions: int = 8
    n_identities: int = 0      # learnable talking-identity embeddings (0 = none)
    dropout: float = 0.1
    num_train_steps: int = 500

    def to_dict(self) -> dict:
        return asdict(self)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], -1)


def sinusoidal_positions(n: int, dim: int) -> torch.Tensor:
    return timestep_embedding(torch.arange(n), dim)


class StyleEncoder(nn.Module):
    """Motion clip (B x T x C, any T) -> style vector (B x style_dim).

    A small transformer encoder with a positional encoding per frame (so it sees order and
    rhythm), mean-pooled over valid frames. Trained with NT-Xent: two clips of one speaker are a
    positive pair.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.style_dim
        self.inp = nn.Linear(cfg.motion_dim, d)
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, cfg.dropout, batch_first=True, norm_first=True)
        self.enc = nn.TransformerEncoder(layer, cfg.style_layers, enable_nested_tensor=False)
        self.register_buffer("pos", sinusoidal_positions(1024, d), persistent=False)
        self.out = nn.Linear(d, d)

    def forward(self, motion: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        T = motion.shape[1]
        h = self.inp(motion) + self.pos[:T]
        pad = None if valid is None else ~valid
        h = self.enc(h, src_key_padding_mask=pad)
        if valid is None:
            pooled = h.mean(1)
        else:
            m = valid.float().unsqueeze(-1)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1)
        return self.out(pooled)


class VoiceEmotion(nn.Module):
    """Speech features (B x T x A) -> per-frame emotion intensities (B x T x 8) in 0..1.
    Temporal context from a wide depthwise convolution (prosody lives over ~1 s)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.proj = nn.Linear(cfg.audio_dim, 128)
        self.ctx = nn.Conv1d(128, 128, 25, padding=12, groups=128)
        self.head = nn.Sequential(nn.GELU(), nn.Linear(128, 64), nn.GELU(), nn.Linear(64, cfg.n_emotions))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        h = self.proj(audio)
        h = h + self.ctx(h.transpose(1, 2)).transpose(1, 2)
        return torch.sigmoid(self.head(h))


class Denoiser(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.motion_in = nn.Linear(cfg.motion_dim + 1, d)  # + padded-frame indicator
        self.audio_in = nn.Linear(cfg.audio_dim, d)
        self.emotion_in = nn.Linear(cfg.n_emotions, d)
        self.style_in = nn.Linear(cfg.style_dim, d)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.null_audio = nn.Parameter(torch.zeros(d))
        self.null_style = nn.Parameter(torch.zeros(d))
        self.null_emotion = nn.Parameter(torch.zeros(d))
        self.null_prev = nn.Parameter(torch.zeros(cfg.prev, d))
        self.identity = nn.Embedding(cfg.n_identities + 1, d)  # index 0 = no identity
        self.pos = nn.Parameter(torch.randn(1 + cfg.prev + cfg.window, d) * 0.02)
        self.kind = nn.Parameter(torch.randn(3, d) * 0.02)  # cond / prev / current
        layer = nn.TransformerDecoderLayer(d, cfg.heads, cfg.ffn, cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, cfg.layers)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cfg.motion_dim)
        self.register_buffer("mem_mask", self._alignment_mask(cfg), persistent=False)

    @staticmethod
    def _alignment_mask(cfg: ModelConfig) -> torch.Tensor:
        """Boolean [tokens, 1 + window] mask, True = blocked. Memory token 0 is a learned
        'no speech' token every query may see (so no row is empty)."""
        L, N, P = 1 + cfg.prev + cfg.window, cfg.window, cfg.prev
        mask = torch.ones(L, 1 + N, dtype=torch.bool)
        mask[:, 0] = False
        mask[0, :] = False  # the conditioning token sees all speech
        i = torch.arange(N)
        near = (i[:, None] - i[None, :]).abs() <= cfg.audio_band
        mask[1 + P:, 1:] = ~near
        return mask

    def forward(self, x_t, t, *, audio, prev, has_prev, emotion, style, identity, valid,
                audio_on, emotion_on, style_on):
        """
        x_t: B x N x C noisy motion (normalised); t: B timesteps
        audio: B x N x A speech features; prev: B x P x C previous frames (normalised)
        emotion: B x N x 8; style: B x S; identity: B (0 = none); valid: B x N bool
        has_prev, audio_on, emotion_on, style_on: B bool (False = use the learned null)
        Returns the x0 prediction, B x N x C.
        """
        B, N, _ = x_t.shape
        d = self.cfg.d_model
        on = lambda flag: flag.view(B, 1, 1).to(x_t.dtype)
        cond = self.time_mlp(timestep_embedding(t, d)) + self.identity(identity)
        s = self.style_in(style).unsqueeze(1)
        cond = cond.unsqueeze(1) + on(style_on) * s + (1 - on(style_on)) * self.null_style
        pad_flag = (~valid).to(x_t.dtype).unsqueeze(-1)
        prev_tok = self.motion_in(torch.cat([prev, torch.zeros_like(prev[..., :1])], -1))
        prev_tok = on(has_prev) * prev_tok + (1 - on(has_prev)) * self.null_prev
        cur = self.motion_in(torch.cat([x_t, pad_flag], -1))
        emo = self.emotion_in(emotion)
        cur = cur + on(emotion_on) * emo + (1 - on(emotion_on)) * self.null_emotion
        tokens = torch.cat([cond + self.kind[0], prev_tok + self.kind[1], cur + self.kind[2]], 1)
        tokens = tokens + self.pos[: tokens.shape[1]]
        a = self.audio_in(audio)
        a = on(audio_on) * a + (1 - on(audio_on)) * self.null_audio
        memory = torch.cat([self.null_audio.expand(B, 1, d), a], 1)
        L = tokens.shape[1]
        h = self.decoder(tokens, memory, memory_mask=self.mem_mask[:L, : N + 1])
        return self.out(self.norm(h[:, 1 + self.cfg.prev:]))


class LaliaModel(nn.Module):
    """Everything a checkpoint holds: denoiser, style encoder, voice-emotion head."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.denoiser = Denoiser(cfg)
        self.style_encoder = StyleEncoder(cfg)
        self.voice_emotion = VoiceEmotion(cfg)


def nt_xent(z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """NT-Xent (SimCLR) over a batch: rows with equal labels are positives, others negatives."""
    z = F.normalize(z, dim=-1)
    sim = z @ z.t() / temperature
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, -1e9)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    has_pos = pos.any(1)
    if not has_pos.any():
        return z.sum() * 0
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    loss = -(log_prob * pos).sum(1) / pos.sum(1).clamp(min=1)
    return loss[has_pos].mean()
