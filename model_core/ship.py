"""Turn a training run's checkpoint into the shipped default model.

`python -m model_core ship RUN/final.safetensors --corpus DIR` writes
`model_core/assets/default_model.{safetensors,json}` (float16 weights, optimizer state dropped)
with named style presets: each preset is the mean style-encoder vector over training speakers
whose style parameters are extreme in a described direction.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from .animator import STYLE_FIELDS
from .checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, save_checkpoint
from .dataset import load_split

log = logging.getLogger(__name__)

# name: (description, {style field: +1 high / -1 low})
PRESETS = {
    "calm": ("Small, economical mouth movement and a quiet head", {"articulation": -1, "head_amount": -1}),
    "animated": ("Big articulation, lively head and brows", {"articulation": 1, "head_amount": 1, "brow_activity": 1}),
    "precise": ("Crisp, well-separated mouth shapes", {"articulation": 1, "tempo": -1}),
    "relaxed": ("Loose, blended mouth shapes, little head motion", {"tempo": 1, "head_amount": -1}),
    "nodder": ("Nods on most stressed syllables", {"head_rhythm": 1, "head_amount": 1}),
    "smiley": ("A resting smile while talking", {"smile_bias": 1}),
    "stoic": ("Still brows and head, neutral mouth", {"brow_activity": -1, "head_amount": -1, "smile_bias": -1}),
    "lopsided": ("Talks more with one side of the mouth", {"asymmetry": 1}),
}


@torch.inference_mode()
def style_presets(model, manifest, corpus, per_preset: int = 12) -> tuple[dict, dict]:
    data = load_split(corpus, "train")
    mean = np.array(manifest["norm_mean"], np.float32)
    std = np.array(manifest["norm_std"], np.float32)
    N = model.cfg.window
    # per speaker: style params and the mean style vector over up to 4 clips
    vecs, params = {}, {}
    for t in range(len(data.speaker)):
        spk = int(data.speaker[t])
        a, b = data.offsets[t], data.offsets[t + 1]
        if b - a < N or len(vecs.get(spk, [])) >= 4:
            continue
        clip = (data.motion[a:a + N] - mean) / std
        v = model.style_encoder(torch.from_numpy(clip)[None])[0]
        vecs.setdefault(spk, []).append(v)
        params[spk] = data.style[t]
    spk_ids = sorted(vecs)
    P = np.stack([params[s] for s in spk_ids])
    Z = (P - P.mean(0)) / (P.std(0) + 1e-9)
    V = torch.stack([torch.stack(vecs[s]).mean(0) for s in spk_ids])
    tensors, descriptions = {}, {}
    for name, (desc, dirs) in PRESETS.items():
        score = sum(sign * Z[:, STYLE_FIELDS.index(f)] for f, sign in dirs.items())
        top = np.argsort(-score)[:per_preset]
        tensors[f"preset.{name}"] = V[top].mean(0)
        descriptions[name] = desc
    return tensors, descriptions


def ship(run_checkpoint, corpus, out: Path = DEFAULT_CHECKPOINT, extra_manifest: dict | None = None) -> Path:
    model, manifest, _ = load_checkpoint(run_checkpoint)
    presets, desc = style_presets(model, manifest, corpus)
    manifest = {k: v for k, v in manifest.items() if k not in ("train_state",)}
    manifest["style_presets"] = desc
    manifest.update(extra_manifest or {})
    path = save_checkpoint(out, model, manifest, extra=presets, half=True)
    log.info("shipped %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path
