"""A restricted unpickler: builds numpy arrays and plain containers, nothing else.

Real datasets (DiffPoseTalk's LMDB values) and FLAME model files are pickles. Unpickling runs
whatever the file names, so they are read with an allow-list: numpy's array reconstruction,
dtypes and scalars, and builtins that cannot execute code. Anything else is refused.
"""
from __future__ import annotations

import io
import pickle

from .errors import LaliaError

ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "bytearray"), ("builtins", "complex"),
    ("collections", "OrderedDict"), ("_codecs", "encode"),
}


class _Restricted(pickle.Unpickler):
    def __init__(self, f, extra_allowed: dict | None):
        super().__init__(f)
        self.extra = extra_allowed or {}

    def find_class(self, module, name):
        if (module, name) in self.extra:
            return self.extra[(module, name)]
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        raise LaliaError(f"refused to load '{module}.{name}' from a pickle: only numpy arrays "
                         "and plain data are allowed")


def safe_loads(data: bytes, what: str = "data", extra_allowed: dict | None = None):
    """Unpickle `data` with the allow-list; `extra_allowed` maps (module, name) to a safe stand-in."""
    try:
        return _Restricted(io.BytesIO(data), extra_allowed).load()
    except LaliaError as e:
        raise LaliaError(f"{what}: {e}") from None
    except Exception as e:  # truncated or not a pickle at all
        raise LaliaError(f"{what} is not a readable pickle ({type(e).__name__}: {e})") from None
