"""The checkpoint manifest's schema, and the tensors a manifest implies.

A checkpoint is checked whole before a model is built from it: every field's type and range
(so an absurd size is refused before anything is allocated), the fields' agreement with each
other, then every tensor present with the shape the config implies, and all of them finite.
Each problem is a LaliaError naming the field and what to do; nothing is repaired.
"""
from __future__ import annotations

import math
from dataclasses import fields

import torch

from ..base.errors import LaliaError
from .networks import ModelConfig

# sizes a model may have: generous over the shipped (d_model 192, 2 layers) and the teacher, far
# below what would exhaust a machine; a manifest beyond them is damaged or not meant for Lalia
SIZE_CAPS = {
    "motion_dim": (1, 1024), "audio_dim": (1, 4096), "d_model": (2, 2048), "layers": (1, 48),
    "heads": (1, 64), "ffn": (1, 16384), "window": (4, 1024), "prev": (0, 1024), "audio_band": (0, 1024),
    "style_dim": (4, 2048), "style_layers": (1, 48), "n_emotions": (1, 64), "n_identities": (0, 100000),
    "n_style_fields": (1, 256), "content_dim": (1, 1024), "emotion_dim": (1, 1024), "vae_hidden": (1, 4096),
    "num_train_steps": (1, 100000), "n_phones": (0, 1024),
}
MAX_PARAMETERS = 200_000_000  # 800 MB in float32; the shipped model has about 5 M
MAX_FPS = 1000.0
GUIDANCE_KEYS = ("audio", "emotion", "style")
MAX_GUIDANCE = 100.0


def _where(path) -> str:
    return f"Checkpoint manifest {path}"


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _names(value, field: str, where: str) -> list[str]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(c, str) and c.strip() for c in value)):
        raise LaliaError(f"{where}: '{field}' must be a non-empty list of names")
    if len(set(value)) != len(value):
        raise LaliaError(f"{where}: '{field}' names a channel or emotion twice")
    return value


def model_config(manifest: dict, where: str) -> ModelConfig:
    """The manifest's `model` section as a ModelConfig, every size within SIZE_CAPS."""
    m = manifest["model"]
    if not isinstance(m, dict):
        raise LaliaError(f"{where}: 'model' must be an object of model settings")
    known = {f.name: f for f in fields(ModelConfig)}
    unknown = sorted(set(m) - set(known))
    if unknown:
        raise LaliaError(f"{where}: unknown model settings {unknown}; this checkpoint needs a newer Lalia")
    for k, v in m.items():
        if k in SIZE_CAPS:
            lo, hi = SIZE_CAPS[k]
            if not _is_int(v) or not lo <= v <= hi:
                raise LaliaError(f"{where}: model setting '{k}' is {v!r}; it must be a whole number in "
                                 f"{lo}..{hi}. The manifest is damaged: re-export the model")
        elif k == "guidance_input" and not isinstance(v, bool):
            raise LaliaError(f"{where}: model setting 'guidance_input' must be true or false, got {v!r}")
        elif k == "dropout" and not (_is_number(v) and 0.0 <= v < 1.0):
            raise LaliaError(f"{where}: model setting 'dropout' must be a number in [0, 1), got {v!r}")
    cfg = ModelConfig(**m)
    if cfg.d_model % cfg.heads or cfg.d_model % 2:
        raise LaliaError(f"{where}: d_model {cfg.d_model} must be even and divisible by heads {cfg.heads}")
    if cfg.style_dim % 4:
        raise LaliaError(f"{where}: style_dim {cfg.style_dim} must be divisible by 4 (the style encoder's heads)")
    if cfg.prev > cfg.window:
        raise LaliaError(f"{where}: prev ({cfg.prev}) can't exceed window ({cfg.window})")
    n = parameter_count(cfg)
    if n > MAX_PARAMETERS:
        raise LaliaError(f"{where}: the model settings describe {n / 1e6:.0f} M parameters (Lalia's models have "
                         f"a few million; the limit is {MAX_PARAMETERS / 1e6:.0f} M). The manifest is damaged")
    return cfg


def parameter_count(cfg: ModelConfig) -> int:
    """Parameters of the model `cfg` describes, counted on the meta device (no memory used)."""
    from .networks import LaliaModel
    with torch.device("meta"):
        return sum(p.numel() for p in LaliaModel(cfg).state_dict().values())


def validate_manifest(manifest, path) -> ModelConfig:
    """Check a manifest's fields (after format/version) -> its ModelConfig. Allocates nothing."""
    from .diffusion import SAMPLERS
    where = _where(path)
    cfg = model_config(manifest, where)
    from .speech_encoder import FEATURE_DIM
    if cfg.audio_dim != FEATURE_DIM:
        raise LaliaError(f"{where}: audio_dim is {cfg.audio_dim}; Lalia's speech encoder gives {FEATURE_DIM}")
    channels = _names(manifest["channels"], "channels", where)
    if len(channels) != cfg.motion_dim:
        raise LaliaError(f"{where}: {len(channels)} channels but the model has motion_dim {cfg.motion_dim}")
    fps = manifest["fps"]
    if not _is_number(fps) or not 0 < fps <= MAX_FPS:
        raise LaliaError(f"{where}: 'fps' must be a number in (0, {MAX_FPS:g}], got {fps!r}")
    for k in ("window", "prev"):  # copies of the model's, kept for readers; they must agree
        if k in manifest and manifest[k] != getattr(cfg, k):
            raise LaliaError(f"{where}: '{k}' is {manifest[k]!r} but the model's is {getattr(cfg, k)}")
    for k in ("norm_mean", "norm_std"):
        v = manifest[k]
        if not isinstance(v, list) or not all(_is_number(x) for x in v):
            raise LaliaError(f"{where}: normalisation statistics '{k}' must be a list of finite numbers")
        if len(v) != len(channels):
            raise LaliaError(f"{where}: '{k}' has {len(v)} values for {len(channels)} channels")
    if not all(x > 0 for x in manifest["norm_std"]):
        raise LaliaError(f"{where}: every 'norm_std' value must be positive (motion is divided by it)")
    emotions = _names(manifest["emotions"], "emotions", where)
    if "neutral" not in emotions:
        raise LaliaError(f"{where}: 'emotions' must include 'neutral' (the no-emotion setting), got {emotions}")
    if len(emotions) != cfg.n_emotions:
        raise LaliaError(f"{where}: {len(emotions)} emotions but the model has n_emotions {cfg.n_emotions}")
    _check_sampler(manifest["sampler"], cfg, SAMPLERS, where)
    _check_style_space(manifest, where)
    return cfg


def _check_sampler(s, cfg: ModelConfig, samplers, where: str) -> None:
    if not isinstance(s, dict):
        raise LaliaError(f"{where}: 'sampler' must be an object with name, steps and guidance")
    if not isinstance(s.get("name"), str) or s["name"] not in samplers:
        raise LaliaError(f"{where}: sampler name {s.get('name')!r} is not one of {', '.join(samplers)}")
    steps = s.get("steps")
    if not _is_int(steps) or not 1 <= steps <= cfg.num_train_steps:
        raise LaliaError(f"{where}: sampler steps must be a whole number in 1..{cfg.num_train_steps}, got {steps!r}")
    g = s.get("guidance", {})
    if not isinstance(g, dict) or not all(k in GUIDANCE_KEYS and _is_number(v) and 0 <= v <= MAX_GUIDANCE
                                          for k, v in g.items()):
        raise LaliaError(f"{where}: sampler guidance must map {', '.join(GUIDANCE_KEYS)} to numbers in "
                         f"0..{MAX_GUIDANCE:g}, got {g!r:.120}")


def _check_style_space(manifest: dict, where: str) -> None:
    """The optional style-space sections the generator reads."""
    presets = manifest.get("style_presets", {})
    if not isinstance(presets, dict) or not all(isinstance(v, str) for v in presets.values()):
        raise LaliaError(f"{where}: 'style_presets' must map preset names to descriptions")
    sliders = manifest.get("style_sliders", {})
    if not isinstance(sliders, dict) or not all(
            isinstance(v, dict) and _is_number(v.get("half_range")) for v in sliders.values()):
        raise LaliaError(f"{where}: 'style_sliders' must map slider names to objects with a numeric half_range")
    amounts = manifest.get("style_amounts", [])
    if not isinstance(amounts, list) or not all(isinstance(a, str) for a in amounts):
        raise LaliaError(f"{where}: 'style_amounts' must be a list of names")
    if "guidance_fixed" in manifest and not isinstance(manifest["guidance_fixed"], bool):
        raise LaliaError(f"{where}: 'guidance_fixed' must be true or false")
    ids = manifest.get("identities", [])
    if not isinstance(ids, list):
        raise LaliaError(f"{where}: 'identities' must be a list of speaker ids")


def expected_extras(manifest: dict, cfg: ModelConfig, extra: dict) -> dict[str, tuple]:
    """Shape of each style-space tensor the manifest (or the tensors present) imply."""
    n_amounts = len(manifest.get("style_amounts", []))
    shapes = {}
    for name in manifest.get("style_presets", {}):
        shapes[f"preset.{name}"] = (cfg.style_dim,)
    for name in manifest.get("style_sliders", {}):
        shapes[f"slider.{name}"] = (cfg.style_dim,)
    for k in extra:
        if k.startswith(("preset.", "slider.")):
            shapes[k] = (cfg.style_dim,)
        elif k == "identity_styles":
            shapes[k] = (cfg.n_identities, cfg.style_dim)
        elif k == "amounts.identity":
            shapes[k] = (cfg.n_identities, n_amounts)
        elif k.startswith("amounts.preset."):
            shapes[k] = (n_amounts,)
        elif k.startswith("amounts."):
            raise LaliaError(f"unknown amounts tensor '{k}'")
    return shapes


def validate_tensors(own: dict, tensors: dict, manifest: dict, cfg: ModelConfig, path) -> None:
    """Every tensor the model and the manifest imply, present with its shape; all finite."""
    expected = {k: tuple(v.shape) for k, v in own.items()}
    try:
        expected.update(expected_extras(manifest, cfg, tensors))
    except LaliaError as e:
        raise LaliaError(f"Checkpoint {path}: {e}") from None
    missing = [k for k in expected if k not in tensors]
    bad = [f"{k} is {tuple(tensors[k].shape)}, expected {s}" for k, s in expected.items()
           if k in tensors and tuple(tensors[k].shape) != s]
    if missing or bad:
        raise LaliaError(f"Checkpoint {path} does not match its manifest: {len(missing)} tensors missing "
                         f"{missing[:3]}, {len(bad)} of wrong shape {bad[:3]}. Re-export the model or use "
                         "the manifest written with these weights")
    not_float = [k for k in expected if not tensors[k].is_floating_point()]
    if not_float:
        raise LaliaError(f"Checkpoint {path}: tensors {not_float[:3]} are not floating point")
    nonfinite = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if nonfinite:
        raise LaliaError(f"Checkpoint {path} has NaN/infinite weights in {len(nonfinite)} tensors "
                         f"({', '.join(nonfinite[:3])}); the training run diverged or the file is damaged: "
                         "use an earlier checkpoint")
