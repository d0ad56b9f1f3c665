"""Turn a training run's checkpoint into the shipped default model.

`python -m model_core ship RUN/final.safetensors --corpus DIR` writes
`model_core/assets/default_model.{safetensors,json}` (float16 weights, optimizer state dropped)
with named style presets (each the mean style-encoder vector over training speakers whose style
parameters are extreme in a described direction) and the style sliders' directions.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..base.vocabulary import STYLE_FIELDS
from ..data.dataset import load_split
from ..model.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, save_checkpoint

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


# the extra tensors that describe the style space (derived from the style encoder and the corpus)
STYLE_EXTRAS = ("preset.", "slider.", "identity_styles", "amounts.")
# amounts the denoiser hardly follows from a style vector (docs/controls_default.json: the model
# alone's head motion doesn't correlate with the reference's, and its presets' head motion, brow
# raises and mouth sides hardly differ), which the generator's amplitude layer sets instead:
# name -> (the speaker style field a preset or identity has an amount of, and how it is given
# relative to the mean training speaker: "ratio" for a scale, "offset" for a shift)
AMOUNTS = {"head_motion": ("head_amount", "ratio"), "brow_activity": ("brow_activity", "ratio"),
           "asymmetry": ("asymmetry", "offset")}
# style slider -> the speaker style field it moves (blink rate sets the generator's blink layer)
SLIDERS = {"head_motion": "head_amount", "expressiveness": "articulation", "brow_activity": "brow_activity"}


@torch.inference_mode()
def speaker_styles(model, manifest, corpus, clips_per_speaker: int = 4
                   ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Per training speaker: the mean style-encoder vector over a few 4 s clips, and the
    speaker's style parameters (corpus labels). -> (S x style_dim, S x fields, speaker ids)."""
    data = load_split(corpus, "train")
    mean = np.array(manifest["norm_mean"], np.float32)
    std = np.array(manifest["norm_std"], np.float32)
    N = model.cfg.window
    vecs, params = {}, {}
    for t in range(len(data.speaker)):
        spk = int(data.speaker[t])
        a, b = data.offsets[t], data.offsets[t + 1]
        if b - a < N or len(vecs.get(spk, [])) >= clips_per_speaker:
            continue
        clip = (data.motion[a:a + N] - mean) / std
        vecs.setdefault(spk, []).append(model.style_encoder(torch.from_numpy(clip)[None])[0])
        params[spk] = data.style[t]
    spk_ids = sorted(vecs)
    V = torch.stack([torch.stack(vecs[s]).mean(0) for s in spk_ids]).numpy()
    return V, np.stack([params[s] for s in spk_ids]), spk_ids


def identity_styles(V: np.ndarray, speakers: list[int], identities: list) -> torch.Tensor:
    """The style each library identity stands for: its speaker's mean style vector (the fixed
    point of training's pull of the identity toward that speaker's style codes). The trained
    embeddings stay the keys the voice is matched against; these are the values it returns.
    An identity without clips here gets the mean style."""
    return per_identity(torch.from_numpy(V.astype(np.float32)), speakers, identities,
                        torch.from_numpy(V.mean(0).astype(np.float32)))


def per_identity(by_speaker: torch.Tensor, speakers: list[int], identities: list, missing: torch.Tensor
                 ) -> torch.Tensor:
    """Rows of `by_speaker` (one per entry of `speakers`) in library order; `missing` for an
    identity whose speaker has no row."""
    row = {int(s): i for i, s in enumerate(speakers)}
    return torch.stack([by_speaker[row[int(s)]] if int(s) in row else missing for s in identities])


def style_amounts(P: np.ndarray, rows) -> torch.Tensor:
    """The AMOUNTS of the speakers at `rows` of P (their mean), relative to the mean training
    speaker's: a ratio of 1 or an offset of 0 is the average speaker."""
    out = []
    for field, kind in AMOUNTS.values():
        x = P[:, STYLE_FIELDS.index(field)]
        out.append(x[rows].mean() / x.mean() if kind == "ratio" else x[rows].mean() - x.mean())
    return torch.tensor(out, dtype=torch.float32)


def identity_amounts(P: np.ndarray, speakers: list[int], identities: list) -> torch.Tensor:
    """Each library identity's AMOUNTS (its speaker's; the average's for one without clips here)."""
    average = torch.tensor([1.0 if kind == "ratio" else 0.0 for _, kind in AMOUNTS.values()])
    return per_identity(torch.stack([style_amounts(P, [i]) for i in range(len(P))]), speakers, identities, average)


def preset_speakers(P: np.ndarray, dirs: dict, per_preset: int = 12) -> np.ndarray:
    """Rows of P (speakers' style fields) most extreme in a preset's directions ({field: +-1},
    summed z-scores)."""
    Z = (P - P.mean(0)) / (P.std(0) + 1e-9)
    score = sum(sign * Z[:, STYLE_FIELDS.index(f)] for f, sign in dirs.items())
    return np.argsort(-score)[:per_preset]


def style_presets(V: np.ndarray, P: np.ndarray, per_preset: int = 12) -> tuple[dict, dict]:
    """Each preset: the mean style vector of the speakers most extreme in its direction, and
    their mean AMOUNTS."""
    tensors, descriptions = {}, {}
    for name, (desc, dirs) in PRESETS.items():
        top = preset_speakers(P, dirs, per_preset)
        tensors[f"preset.{name}"] = torch.from_numpy(V[top].mean(0))
        tensors[f"amounts.preset.{name}"] = style_amounts(P, top)
        descriptions[name] = desc
    return tensors, descriptions


def slider_directions(V: np.ndarray, P: np.ndarray, ridge: float = 1.0) -> tuple[dict, dict]:
    """Per slider: the direction in style space along which its property rises by one unit.

    The direction is the regression of the style vector on the property over the training
    speakers, Cov(v, y) / Var(y): how the style of a speaker with one unit more of the property
    looks on average. It stays among styles the denoiser has seen, where the minimum-norm
    direction of a property predictor (w / |w|^2) changes little the denoiser responds to.
    Also stored: half the property's range over the speakers (a slider at 0 or 2 moves that
    far) and the R^2 of a ridge predictor of the property from the style (how linearly the
    style space encodes it)."""
    Vc = V - V.mean(0)
    tensors, info = {}, {}
    for slider, field in SLIDERS.items():
        y = P[:, STYLE_FIELDS.index(field)]
        yc = y - y.mean()
        w = np.linalg.solve(Vc.T @ Vc + ridge * np.eye(V.shape[1]), Vc.T @ yc)
        r2 = 1 - ((yc - Vc @ w) ** 2).sum() / (yc ** 2).sum()
        tensors[f"slider.{slider}"] = torch.from_numpy((Vc.T @ yc / (yc @ yc)).astype(np.float32))
        info[slider] = {"field": field, "half_range": round(float(np.ptp(y) / 2), 4), "fit_r2": round(float(r2), 3)}
    return tensors, info


def ship(run_checkpoint, corpus, out: Path = DEFAULT_CHECKPOINT, extra_manifest: dict | None = None) -> Path:
    model, manifest, extra = load_checkpoint(run_checkpoint)
    V, P, speakers = speaker_styles(model, manifest, corpus)
    presets, desc = style_presets(V, P)
    sliders, slider_info = slider_directions(V, P)
    manifest = {k: v for k, v in manifest.items() if k not in ("train_state",)}
    manifest["style_presets"] = desc
    manifest["style_sliders"] = slider_info
    manifest["style_amounts"] = list(AMOUNTS)
    manifest.update(extra_manifest or {})
    kept = {k: v for k, v in extra.items() if not k.startswith(STYLE_EXTRAS + ("optim.",))}
    ids = manifest.get("identities", [])
    styles = {"identity_styles": identity_styles(V, speakers, ids),
              "amounts.identity": identity_amounts(P, speakers, ids)}
    path = save_checkpoint(out, model, manifest, extra={**kept, **presets, **sliders, **styles}, half=True)
    log.info("shipped %s (%.1f MB); slider fits %s", path, path.stat().st_size / 1e6, slider_info)
    return path
