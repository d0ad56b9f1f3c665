"""The networks, in one file with one config.

- `Denoiser` (DiffPoseTalk's layout): one conditioning token (timestep + style/identity), `prev`
  previous-frame tokens and `window` current-frame tokens in a transformer decoder that predicts
  x0. Motion tokens cross-attend to the speech features through an alignment mask (frame i sees
  speech frames i-band..i+band). Each current-frame token also carries the *decoupled prior*
  (below) and the per-frame emotion code. Every condition has a learned null used when it is
  dropped (classifier-free guidance). A distilled student also takes the guidance scales.
- `StyleEncoder` (DiffPoseTalk): ~4 s of motion -> a style vector, with per-frame positions.
- `EmotionVAE` (ExpTalk's adaptive disentanglement VAE): a motion window -> a per-frame *content
  code* (what the face does for the words) and a slow per-frame *emotion code* (what it does for
  the emotion); a decoder renders any pairing of the two. `prototypes` maps the 8 emotion
  slider intensities to an emotion code (one learned direction per emotion).
- `ContentPrior`: speech features -> content code. Decoding (content prior, emotion code) gives
  the decoupled prior motion that the diffusion model refines (ExpTalk's refined alignment).
- `IdentityLibrary` (DiffusionTalker): one learnable talking-identity embedding per training
  speaker, living in the style space, and an audio encoder trained contrastively against them,
  so unseen audio can be matched to a fitting identity.
- `VoiceEmotion`: speech -> per-frame emotion intensities ("auto from voice").
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
    n_identities: int = 0      # talking identities in the library (training speakers)
    n_style_fields: int = 8    # speaker style parameters read out of the style vector (training)
    content_dim: int = 32      # AD-VAE content code per frame
    emotion_dim: int = 16      # AD-VAE emotion code per frame
    vae_hidden: int = 128
    n_phones: int = 0          # phone alphabet size of the content prior's phone path (0: none)
    guidance_input: bool = False  # a guidance-distilled student takes the guidance scales
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


class ConvStack(nn.Module):
    """Linear in, residual temporal convolutions (B x T x C in and out), linear out."""

    def __init__(self, d_in: int, hidden: int, d_out: int, layers: int = 3, kernel: int = 5):
        super().__init__()
        self.inp = nn.Linear(d_in, hidden)
        self.convs = nn.ModuleList(nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
        self.out = nn.Linear(hidden, d_out)

    def features(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """The hidden sequence before `out`; `extra` (B x T x hidden) is added after `inp`."""
        h = self.inp(x) if extra is None else self.inp(x) + extra
        for conv, norm in zip(self.convs, self.norms):
            h = h + conv(F.gelu(norm(h)).transpose(1, 2)).transpose(1, 2)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


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


class EmotionVAE(nn.Module):
    """ExpTalk's adaptive disentanglement VAE over motion windows (normalised, B x T x C).

    The emotion branch is smoothed over ~1 s before its code, so it cannot carry the fast mouth
    movements of speech: those must go through the content code. Emotion may still change
    within an utterance. The training losses that make the split hold (contrastive to speech
    for content, to labels for emotion, an adversary and code swapping) are in `train.py`.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        H, Dc, De = cfg.vae_hidden, cfg.content_dim, cfg.emotion_dim
        self.enc = ConvStack(cfg.motion_dim, H, H)
        self.to_content = nn.Linear(H, 2 * Dc)
        self.emotion_ctx = nn.Conv1d(H, H, 25, padding=12, groups=H)
        self.to_emotion = nn.Linear(H, 2 * De)
        self.dec = ConvStack(Dc + De, H, cfg.motion_dim)
        self.prototypes = nn.Linear(cfg.n_emotions, De)  # slider intensities -> emotion code
        # training heads: content <-> speech contrast, and the adversary that tries to read the
        # emotion from the content code (it must fail: content carries no emotion)
        self.content_head = nn.Linear(Dc, 64)
        self.speech_head = nn.Linear(cfg.audio_dim, 64)
        self.adversary = nn.Sequential(nn.Linear(Dc, 64), nn.GELU(), nn.Linear(64, cfg.n_emotions))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """-> (content mean, content log-variance, emotion mean, emotion log-variance)."""
        h = self.enc(x)
        mu_c, lv_c = self.to_content(h).chunk(2, -1)
        he = self.emotion_ctx(h.transpose(1, 2)).transpose(1, 2) / 25.0
        mu_e, lv_e = self.to_emotion(he).chunk(2, -1)
        return mu_c, lv_c.clamp(-8, 4), mu_e, lv_e.clamp(-8, 4)

    def decode(self, content: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        return self.dec(torch.cat([content, emotion], -1))

    def emotion_code(self, intensities: torch.Tensor) -> torch.Tensor:
        """Emotion sliders (... x 8, 0..1, several at once) -> emotion code (... x De)."""
        return self.prototypes(intensities)


class ContentPrior(nn.Module):
    """Speech features (B x T x A) -> content codes (B x T x Dc), ±6 frames of context.

    With `n_phones`, it also reads a per-frame phone track (B x T indices, `n_phones` = unknown)
    when the words are known: the content code is what the face does for the words, so exact
    phones enter here, and emotion, style and the denoiser stay as they were. The phone
    embedding starts at zero (a model gains the path without changing its output) and the
    unknown phone's row stays zero, so an audio-only call is the same network. `phone_logits`
    reads the phones back out of the audio-only hidden sequence (the auxiliary loss that makes
    the audio path phonetic).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.net = ConvStack(cfg.audio_dim, cfg.vae_hidden, cfg.content_dim)
        if cfg.n_phones:
            self.phone_embedding = nn.Embedding(cfg.n_phones + 1, cfg.vae_hidden, padding_idx=cfg.n_phones)
            nn.init.zeros_(self.phone_embedding.weight)
            self.phone_head = nn.Linear(cfg.vae_hidden, cfg.n_phones)

    def hidden(self, audio: torch.Tensor, phones: torch.Tensor | None = None) -> torch.Tensor:
        extra = None if phones is None or not hasattr(self, "phone_embedding") else self.phone_embedding(phones)
        return self.net.features(audio, extra)

    def forward(self, audio: torch.Tensor, phones: torch.Tensor | None = None) -> torch.Tensor:
        return self.net.out(self.hidden(audio, phones))

    def phone_logits(self, audio: torch.Tensor) -> torch.Tensor:
        return self.phone_head(self.hidden(audio))


class IdentityLibrary(nn.Module):
    """DiffusionTalker's talking identities: one embedding per training speaker, in the style
    space (so presets, references and identities condition the denoiser the same way), and an
    audio encoder matched to them contrastively."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embeddings = nn.Parameter(torch.randn(max(cfg.n_identities, 1), cfg.style_dim) * 0.02)
        self.audio = ConvStack(cfg.audio_dim, cfg.vae_hidden, cfg.style_dim, layers=2)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(0.1)))

    def audio_embedding(self, audio: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        h = self.audio(audio)
        if valid is None:
            return h.mean(1)
        m = valid.float().unsqueeze(-1)
        return (h * m).sum(1) / m.sum(1).clamp(min=1)

    def logits(self, query: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of audio embeddings to every identity, over the temperature."""
        return F.normalize(query, dim=-1) @ F.normalize(self.embeddings, dim=-1).t() / self.log_temperature.exp()

    def match(self, audio: torch.Tensor, top_k: int = 3, values: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Audio (1 x T x A) -> (style vector, top identity indices, their weights). The
        embeddings are the keys; `values` (one style per identity) what a match returns,
        the embeddings themselves when not given."""
        logits = self.logits(self.audio_embedding(audio))[0]
        w, idx = logits.topk(min(top_k, len(logits)))
        w = torch.softmax(w, 0)
        return (w[:, None] * (self.embeddings if values is None else values)[idx]).sum(0), idx, w


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
        # a frame token sees: noisy motion, the padded-frame indicator, the decoupled prior
        self.motion_in = nn.Linear(cfg.motion_dim + 1, d)
        self.prior_in = nn.Linear(cfg.motion_dim, d)
        self.audio_in = nn.Linear(cfg.audio_dim, d)
        self.emotion_in = nn.Linear(cfg.emotion_dim, d)
        self.style_in = nn.Linear(cfg.style_dim, d)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.null_audio = nn.Parameter(torch.zeros(d))
        self.null_style = nn.Parameter(torch.zeros(d))
        self.null_emotion = nn.Parameter(torch.zeros(d))
        self.null_prev = nn.Parameter(torch.zeros(cfg.prev, d))
        if cfg.guidance_input:  # zero-initialised: a fresh student starts as its teacher
            self.guidance_mlp = nn.Sequential(nn.Linear(3, d), nn.SiLU(), nn.Linear(d, d))
            nn.init.zeros_(self.guidance_mlp[-1].weight)
            nn.init.zeros_(self.guidance_mlp[-1].bias)
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

    def forward(self, x_t, t, *, audio, prior, prev, has_prev, emotion, style, valid,
                audio_on, emotion_on, style_on, guidance=None):
        """
        x_t: B x N x C noisy motion (normalised); t: B timesteps
        audio: B x N x A speech features; prior: B x N x C decoupled prior (normalised)
        prev: B x P x C previous frames (normalised); emotion: B x N x De emotion codes
        style: B x S style (or identity) vectors; valid: B x N bool
        has_prev, audio_on, emotion_on, style_on: B bool (False = use the learned null; the
        prior is speech-driven, so it is off with the speech)
        guidance: B x 3 guidance scales (audio, emotion, style), students only
        Returns the x0 prediction, B x N x C.
        """
        B, N, _ = x_t.shape
        d = self.cfg.d_model
        on = lambda flag: flag.view(B, 1, 1).to(x_t.dtype)
        cond = self.time_mlp(timestep_embedding(t, d))
        if self.cfg.guidance_input:
            cond = cond + self.guidance_mlp(guidance.to(x_t.dtype))
        s = self.style_in(style).unsqueeze(1)
        cond = cond.unsqueeze(1) + on(style_on) * s + (1 - on(style_on)) * self.null_style
        pad_flag = (~valid).to(x_t.dtype).unsqueeze(-1)
        prev_tok = self.motion_in(torch.cat([prev, torch.zeros_like(prev[..., :1])], -1))
        prev_tok = on(has_prev) * prev_tok + (1 - on(has_prev)) * self.null_prev
        cur = self.motion_in(torch.cat([x_t, pad_flag], -1)) + on(audio_on) * self.prior_in(prior)
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
    """Everything a checkpoint holds."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.denoiser = Denoiser(cfg)
        self.style_encoder = StyleEncoder(cfg)
        self.vae = EmotionVAE(cfg)
        self.content_prior = ContentPrior(cfg)
        self.identities = IdentityLibrary(cfg)
        self.voice_emotion = VoiceEmotion(cfg)
        # a linear readout of the speakers' style parameters (head amount, blink rate, ...) from
        # the style vector: trained so the style space encodes them; the sliders move along it
        self.style_properties = nn.Linear(cfg.style_dim, cfg.n_style_fields)

    def prior(self, audio: torch.Tensor, emotion_code: torch.Tensor, phones: torch.Tensor | None = None
              ) -> torch.Tensor:
        """The decoupled prior: the VAE's rendering of the speech's content code with the given
        emotion code (both B x T x .); `phones` (B x T, models with a phone path) when known."""
        return self.vae.decode(self.content_prior(audio, phones), emotion_code)

    def neutral_code(self) -> torch.Tensor:
        """The emotion code of the 'neutral' slider at 1 (used when emotion is dropped)."""
        one_hot = torch.zeros(self.cfg.n_emotions, device=self.vae.prototypes.weight.device)
        one_hot[0] = 1.0
        return self.vae.emotion_code(one_hot)


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


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP): row i of `a` and row i of `b` are the positive pair."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.t() / temperature
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.scale * g, None


def reverse_gradient(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity forward, negated gradient backward (Ganin & Lempitsky's adversarial layer)."""
    return _ReverseGrad.apply(x, scale)
