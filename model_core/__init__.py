"""Lalia inference and training core: speech in, facial motion out. Never imports bpy."""
from .base.errors import LaliaError

__version__ = "0.1.0"


def load_generator(checkpoint=None, device="cpu"):
    """Load the default (or a given) checkpoint and return a ready `Generator`."""
    from .inference.generator import load_generator as _load
    return _load(checkpoint, device=device)


__all__ = ["LaliaError", "load_generator", "__version__"]
