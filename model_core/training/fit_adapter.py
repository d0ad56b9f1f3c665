"""The fitted encoder's adapter: teach a small network to turn the features of a line encoded on
its own (`SpeechEncoder.encode(fit=True)`: only the mel frames the line needs) into the features
of the same line in Whisper's zero-padded 30 s window, the input every Lalia model was trained on.

A short line then costs what its length costs (docs/batch.md: 0.08 s instead of 0.62 s for the
encoder) and the model downstream sees what it knows. The alternative, retraining every network
that reads speech features (content prior, denoiser, identity and voice-emotion heads) on fitted
features, would change what the controls report measures; the adapter leaves the model as it is.

1. `encoding_pairs`: random stretches of 1-29 s (most of them 2-7 s, as dialogue lines are) from
   the takes of the given corpora, each encoded both ways. Kept in `RUN/pairs_{split}.npz`.
2. `train_adapter`: mean squared error between the adapted fitted features and the padded-window
   ones, per feature dimension standardised so that no dimension dominates.

`python -m model_core fit-adapter --corpus DIR [--corpus DIR ...] --run RUN --out FILE`
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..base.errors import LaliaError
from ..base.vocabulary import SAMPLE_RATE
from ..data.corpus import HOP, Corpus
from ..model.speech_encoder import FitAdapter, SpeechEncoder, fit_positions, save_fit_adapter
from .train import LossHistory, gradient_step

log = logging.getLogger(__name__)



@dataclass
class FitAdapterConfig:
    clips_train: int = 1500
    clips_val: int = 150
    steps: int = 3000
    batch: int = 16
    lr: float = 1e-3
    hidden: int = 256
    kernel: int = 5
    seed: int = 0


def _clip_seconds(rng: np.random.Generator) -> float:
    """A line's length: mostly 2-7 s, some up to 15 s, a few near the window's 30 s."""
    u = rng.random()
    if u < 0.6:
        return float(rng.uniform(1.0, 7.0))
    if u < 0.9:
        return float(rng.uniform(7.0, 15.0))
    return float(rng.uniform(15.0, 29.5))


def _takes(corpora: list, split: str) -> list[np.ndarray]:
    """Every take's audio (int16) in the corpora's `split`."""
    takes = []
    for root in corpora:
        corpus = Corpus(root)
        for shard in corpus.shards(split):
            with np.load(shard, allow_pickle=False) as d:
                off, audio = d["frame_offsets"], d["audio"]
                takes += [audio[a * HOP:b * HOP] for a, b in zip(off[:-1], off[1:])]
    if not takes:
        raise LaliaError(f"no {split} takes in {[str(c) for c in corpora]}")
    return takes


def encoding_pairs(corpora: list, split: str, n: int, seed: int, encoder: SpeechEncoder,
                   progress=None) -> dict[str, np.ndarray]:
    """`n` random stretches of the corpora's takes, each encoded fitted and in the padded window.
    -> {"fit", "full"}: concatenated frames (float16), "offsets": frame offsets, "samples": each
    stretch's length in samples."""
    rng = np.random.default_rng(seed)
    takes = _takes(corpora, split)
    fit, full, offsets, samples = [], [], [0], []
    for i in range(n):
        take = takes[rng.integers(len(takes))]
        size = min(len(take), int(_clip_seconds(rng) * SAMPLE_RATE))
        start = int(rng.integers(0, len(take) - size + 1))
        audio = take[start:start + size].astype(np.float32) / 32767
        fit.append(encoder.encode(audio, fit=True).astype(np.float16))
        full.append(encoder.encode(audio).astype(np.float16))
        offsets.append(offsets[-1] + len(fit[-1]))
        samples.append(size)
        if progress and (i + 1) % 50 == 0:
            progress(i + 1, n)
    return {"fit": np.concatenate(fit), "full": np.concatenate(full), "offsets": np.array(offsets),
            "samples": np.array(samples)}


def _cached_pairs(run: Path, corpora: list, split: str, n: int, seed: int, encoder, progress) -> dict:
    """`encoding_pairs`, kept in `run` and reused while the corpora, split, count and seed match."""
    path = run / f"pairs_{split}.npz"
    key = json.dumps({"corpora": [Path(c).name for c in corpora], "split": split, "n": n, "seed": seed})
    if path.is_file():
        with np.load(path, allow_pickle=False) as d:
            if "key" in d and str(d["key"]) == key:
                return {k: d[k] for k in d.files if k != "key"}
    pairs = encoding_pairs(corpora, split, n, seed, encoder, progress)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, key=np.array(key), **pairs)
    tmp.replace(path)
    return pairs


def _batch(pairs: dict, idx: np.ndarray, scale: np.ndarray) -> tuple[torch.Tensor, ...]:
    """Clips `idx` padded to the longest: (fit features, positions, standardised target, mask)."""
    off = pairs["offsets"]
    T = int(max(off[i + 1] - off[i] for i in idx))
    B = len(idx)
    x = np.zeros((B, T, pairs["fit"].shape[1]), np.float32)
    pos = np.zeros((B, T, FitAdapter.N_POS), np.float32)
    y = np.zeros_like(x)
    mask = np.zeros((B, T), bool)
    for j, i in enumerate(idx):
        a, b = off[i], off[i + 1]
        x[j, :b - a] = pairs["fit"][a:b]
        y[j, :b - a] = pairs["full"][a:b] / scale
        pos[j, :b - a] = fit_positions(int(pairs["samples"][i]), b - a)
        mask[j, :b - a] = True
    return torch.from_numpy(x), torch.from_numpy(pos), torch.from_numpy(y), torch.from_numpy(mask)


def _error(adapter: FitAdapter, pairs: dict, scale: np.ndarray) -> dict:
    """Standardised MSE and mean cosine to the padded-window features, adapted and raw, averaged
    over stretches (a short line counts as much as a long one)."""
    out = {"mse": [], "mse_raw": [], "cos": [], "cos_raw": []}
    off = pairs["offsets"]
    adapter.eval()
    with torch.no_grad():
        for i in range(len(off) - 1):
            x, pos, y, _ = _batch(pairs, np.array([i]), scale)
            a = adapter(x, pos)
            s = torch.from_numpy(scale)
            for key, v in (("", a), ("_raw", x)):
                out["mse" + key].append(float(((v / s - y) ** 2).mean()))
                out["cos" + key].append(float(torch.cosine_similarity(v, y * s, dim=-1).mean()))
    adapter.train()
    return {k: round(float(np.mean(v)), 5) for k, v in out.items()}


def train_adapter(corpora: list, run, out, cfg: FitAdapterConfig | None = None, progress=None) -> Path:
    """Encode the pairs (or reuse them from `run`), train the adapter, write it to `out` and the
    report (config, validation error, loss history) to `run/report.json`."""
    cfg = cfg or FitAdapterConfig()
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    encoder = SpeechEncoder(adapter=None)  # the raw fitted features are the input
    t0 = time.time()
    train = _cached_pairs(run, corpora, "train", cfg.clips_train, cfg.seed, encoder, progress)
    val = _cached_pairs(run, corpora, "val", cfg.clips_val, cfg.seed + 1, encoder, progress)
    encode_minutes = (time.time() - t0) / 60
    scale = train["full"].astype(np.float32).std(0) + 1e-3
    adapter = FitAdapter(hidden=cfg.hidden, kernel=cfg.kernel)
    adapter.scale.copy_(torch.from_numpy(scale))
    adapter.train()
    opt = torch.optim.AdamW(adapter.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps, pct_start=0.05)
    rng = np.random.default_rng(cfg.seed)
    history = LossHistory("fit-adapter")
    n = len(train["samples"])
    s = torch.from_numpy(scale)
    for step in range(cfg.steps):
        x, pos, y, mask = _batch(train, rng.choice(n, cfg.batch, replace=False), scale)
        loss = (((adapter(x, pos) / s - y) ** 2).mean(-1) * mask).sum() / mask.sum()
        gradient_step(opt, loss, list(adapter.parameters()))
        sched.step()
        history.add(step, {"mse": loss})
    report = {"config": asdict(cfg), "corpora": [str(Path(c).name) for c in corpora],
              "encode_minutes": round(encode_minutes, 1), "train_minutes": round(history.minutes, 1),
              "val": _error(adapter, val, scale), "history": history.rows}
    path = save_fit_adapter(out, adapter.eval(), {k: v for k, v in report.items() if k != "history"})
    (run / "report.json").write_text(json.dumps(report, indent=1))
    log.info("fit adapter written to %s: val %s", path, report["val"])
    return path
