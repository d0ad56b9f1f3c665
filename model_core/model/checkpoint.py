"""Checkpoints: safetensors weights + a JSON manifest. No pickle, ever.

`NAME.safetensors` holds the tensors (model weights, style presets); `NAME.json` holds what a
reader needs to use them: format version, motion layout, fps, window, normalisation statistics,
model config, sampler defaults, emotion and style axes, training provenance.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ..base.assets import DEFAULT_MODEL
from ..base.errors import LaliaError
from ..base.files import atomic_write
from .manifest import validate_manifest, validate_tensors
from .networks import LaliaModel

log = logging.getLogger(__name__)
FORMAT = "lalia-checkpoint"
FORMAT_VERSION = 2  # 2: AD-VAE emotion codes, content prior, identity library
DEFAULT_CHECKPOINT = DEFAULT_MODEL
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
    """Write weights (optionally float16) and manifest, each whole or not at all.

    The manifest is checked against the schema and the weights for NaN first, so a diverged run
    or a bad manifest never replaces a good checkpoint. Both files are written to temp files and
    renamed only after both are complete (the manifest first, then the weights)."""
    from safetensors.torch import save_file
    path = Path(path)
    tensors = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in model.state_dict().items()}
    for k, v in (extra or {}).items():
        tensors[k] = v.detach().cpu().contiguous()
    manifest = {**manifest, "format": FORMAT, "format_version": FORMAT_VERSION,
                "model": model.cfg.to_dict()}
    validate_manifest(json.loads(json.dumps(manifest)), manifest_path(path))
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise LaliaError(f"Not saving {path}: the model has NaN/infinite values in {', '.join(bad[:3])} "
                         "(training diverged: lower the learning rate); the previous checkpoint is kept")
    text = json.dumps(manifest, indent=1)
    with atomic_write(path, "checkpoint") as wtmp, atomic_write(manifest_path(path), "checkpoint manifest") as mtmp:
        save_file(tensors, str(wtmp))
        mtmp.write_text(text)
    return path


def read_manifest(path) -> dict:
    """The manifest beside checkpoint `path`, checked against the schema (see manifest.py)."""
    path = Path(path)
    mp = manifest_path(path)
    if not path.is_file():
        raise LaliaError(f"Checkpoint not found: {path}")
    if not mp.is_file():
        raise LaliaError(f"Checkpoint {path.name} has no manifest: expected {mp.name} beside it")
    try:
        manifest = json.loads(mp.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise LaliaError(f"Checkpoint manifest {mp} is not valid JSON: {str(e)[:100]}") from None
    if not isinstance(manifest, dict):
        raise LaliaError(f"Checkpoint manifest {mp} must be a JSON object, got {type(manifest).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise LaliaError(f"Checkpoint manifest {mp} lacks {missing}")
    if manifest["format"] != FORMAT:
        raise LaliaError(f"{mp} is not a Lalia checkpoint (format {manifest['format']!r:.60})")
    if manifest["format_version"] != FORMAT_VERSION:
        raise LaliaError(f"{mp} has checkpoint format version {manifest['format_version']!r:.20}; this "
                         f"Lalia reads version {FORMAT_VERSION}. Update Lalia or re-export the model.")
    validate_manifest(manifest, mp)
    return manifest


def load_checkpoint(path=None, device: str = "cpu") -> tuple[LaliaModel, dict, dict]:
    """-> (model in eval mode, manifest, extra tensors such as style presets).

    The manifest is validated before the model is built (sizes are capped, so nothing huge is
    allocated), the tensors before they are loaded (each present, right shape, finite)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    path = Path(path) if path else DEFAULT_CHECKPOINT
    if not path.is_file() and not path.suffix:
        path = path.with_suffix(".safetensors")
    manifest = read_manifest(path)
    cfg = validate_manifest(manifest, manifest_path(path))
    try:
        tensors = load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise LaliaError(f"Checkpoint {path} is corrupt or truncated: {str(e)[:200]}") from None
    model = LaliaModel(cfg)
    own = model.state_dict()
    validate_tensors(own, tensors, manifest, cfg, path)
    extra = {k: v for k, v in tensors.items() if k not in own}
    model.load_state_dict({k: tensors[k].float() for k in own})
    return model.eval().to(device), manifest, extra
