"""The loaded model, shared by the operators (loaded once, on first use)."""
from __future__ import annotations

import threading

_lock = threading.Lock()
_generators: dict = {}
# what the last finished Generate reported (info, timings), set on the main thread; the
# status line and the Blender benchmark read it
last_generation: dict = {}


def generator(checkpoint: str | None = None):
    """The model (the bundled default, or a checkpoint file), loaded once per file."""
    with _lock:
        if checkpoint not in _generators:
            from .model_core.inference.generator import load_generator
            _generators[checkpoint] = load_generator(checkpoint)
        return _generators[checkpoint]


def preset_descriptions() -> dict:
    """Style presets of the default model (read from its manifest, without loading torch)."""
    try:
        from .model_core.model.checkpoint import DEFAULT_CHECKPOINT, read_manifest
        return dict(read_manifest(DEFAULT_CHECKPOINT).get("style_presets", {}))
    except Exception:  # a broken install shows no presets; Generate reports the real error
        return {}
