"""Checkpoints: safetensors weights + a JSON manifest. No pickle, ever.

`NAME.safetensors` holds the tensors (model weights, style presets); `NAME.json` holds what a
reader needs to use them: format version, motion layout, fps, window, normalisation statistics,
model config, sampler defaults, emotion and style axes, training provenance.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..base.assets import ASSET_DIR
from ..base.errors import LaliaError
from .networks import LaliaModel, ModelConfig

log = logging.getLogger(__name__)
FORMAT = "lalia-checkpoint"
FORMAT_VERSION = 2  # 2: AD-VAE emotion codes, content prior, identity library
DEFAULT_CHECKPOINT = ASSET_DIR / "default_model.safetensors"
REQUIRED_KEYS = ("format", "format_version", "channels", "fps", "model", "norm_mean", "norm_std",
                 "emotions", "sampler")


def weights_sha256(path=None) -> str:
    """sha256 of a checkpoint's weights file (reports name the model they measured)."""
    import hashlib
    return hashlib.sha256(Path(path or DEFAULT_CHECKPOINT).read_bytes()).hexdigest()


def manifest_path(weights: Path) -> Path:
    return Path(weights).with_suffix(".json")


def save_checkpoint(path, model: LaliaModel, manifest: dict, extra: dict | None = None,
                    half: bool = False) -> Path:
    """Write weights (optionally float16) and manifest atomically (temp file + rename)."""
    from safetensors.torch import save_file
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in model.state_dict().items()}
    for k, v in (extra or {}).items():
        tensors[k] = v.detach().cpu().contiguous()
    manifest = {**manifest, "format": FORMAT, "format_version": FORMAT_VERSION,
                "model": model.cfg.to_dict()}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)
    mtmp = manifest_path(path).with_suffix(".json.tmp")
    mtmp.write_text(json.dumps(manifest, indent=1))
    mtmp.replace(manifest_path(path))
    return path


def read_manifest(path) -> dict:
    path = Path(path)
    mp = manifest_path(path)
    if not path.is_file():
        raise LaliaError(f"Checkpoint not found: {path}")
    if not mp.is_file():
        raise LaliaError(f"Checkpoint {path.name} has no manifest: expected {mp.name} beside it")
    try:
        manifest = json.loads(mp.read_text())
    except json.JSONDecodeError as e:
        raise LaliaError(f"Checkpoint manifest {mp} is not valid JSON: {e}") from e
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise LaliaError(f"Checkpoint manifest {mp} lacks {missing}")
    if manifest["format"] != FORMAT:
        raise LaliaError(f"{mp} is not a Lalia checkpoint (format {manifest['format']!r})")
    if manifest["format_version"] != FORMAT_VERSION:
        raise LaliaError(f"{mp} has checkpoint format version {manifest['format_version']}; this "
                         f"Lalia reads version {FORMAT_VERSION}. Update Lalia or re-export the model.")
    return manifest


def load_checkpoint(path=None, device: str = "cpu") -> tuple[LaliaModel, dict, dict]:
    """-> (model in eval mode, manifest, extra tensors such as style presets)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    path = Path(path) if path else DEFAULT_CHECKPOINT
    if not path.is_file() and not path.suffix:
        path = path.with_suffix(".safetensors")
    manifest = read_manifest(path)
    try:
        tensors = load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as e:
        raise LaliaError(f"Checkpoint {path} is corrupt or truncated: {e}") from e
    try:
        cfg = ModelConfig(**manifest["model"])
    except TypeError as e:
        raise LaliaError(f"Checkpoint {path}: unknown model settings in manifest ({e})") from e
    model = LaliaModel(cfg)
    own = model.state_dict()
    state = {k: v for k, v in tensors.items() if k in own}
    extra = {k: v for k, v in tensors.items() if k not in own}
    missing = [k for k in own if k not in state]
    bad = [k for k in state if state[k].shape != own[k].shape]
    if missing or bad:
        raise LaliaError(f"Checkpoint {path} does not match its manifest: "
                         f"{len(missing)} tensors missing {missing[:2]}, {len(bad)} of wrong shape {bad[:2]}")
    model.load_state_dict({k: v.float() for k, v in state.items()})
    for k in ("norm_mean", "norm_std"):
        if len(manifest[k]) != cfg.motion_dim or not np.all(np.isfinite(manifest[k])):
            raise LaliaError(f"Checkpoint {path}: normalisation statistics '{k}' are missing or invalid")
    return model.eval().to(device), manifest, extra
