"""A restricted unpickler: builds numpy arrays and plain containers, nothing else.

Real datasets (DiffPoseTalk's LMDB values) and FLAME model files are pickles. Unpickling runs
whatever the file names, so they are read with an allow-list: numpy's array reconstruction,
dtypes and scalars, and builtins that cannot execute code. Anything else is refused.

A caller can admit more classes as *inert stand-ins* (`StateRecord` subclasses): objects that
only record the state the pickle hands them (FLAME's chumpy arrays and scipy sparse matrices are
read this way, with neither package imported). Old (Python 2) pickles reach such classes
through `copyreg._reconstructor`, which is replaced by a version that builds stand-ins only.
"""
from __future__ import annotations

import _compat_pickle
import io
import pickle

from ..base.errors import LaliaError

ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "complex"),
    ("collections", "OrderedDict"), ("_codecs", "encode"),
}


def _bytearray(*args):
    """bytearray from data only: `bytearray(10**12)` in a pickle would allocate a terabyte."""
    if args and isinstance(args[0], int):
        raise LaliaError("refused a pickled bytearray of a given size (only bytearrays of data are allowed)")
    return bytearray(*args)


class StateRecord:
    """An inert stand-in for a pickled class: keeps the state it is given, runs nothing."""

    def __init__(self, *args):
        self.args = args
        self.state = None

    def __setstate__(self, state):
        self.state = state


def _reconstructor(cls, base, state):
    """copyreg._reconstructor restricted to stand-ins on `object` (old pickles' NEWOBJ)."""
    if not (isinstance(cls, type) and issubclass(cls, StateRecord)) or base is not object:
        raise LaliaError("refused a pickled object that is not an allowed stand-in")
    obj = cls.__new__(cls)
    StateRecord.__init__(obj)
    if state is not None:
        obj.__setstate__(state)
    return obj


class _Restricted(pickle.Unpickler):
    def __init__(self, f, extra_allowed: dict | None, encoding: str):
        super().__init__(f, encoding=encoding)
        self.extra = extra_allowed or {}

    def find_class(self, module, name):
        # Python 2 names (__builtin__, copy_reg, ...) -> Python 3, as pickle itself maps them
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) in self.extra:
            return self.extra[(module, name)]
        if (module, name) == ("builtins", "bytearray"):
            return _bytearray
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        if self.extra and (module, name) == ("copyreg", "_reconstructor"):
            return _reconstructor
        if self.extra and (module, name) == ("builtins", "object"):
            return object
        raise LaliaError(f"refused to load '{module}.{name}' from a pickle: only numpy arrays "
                         "and plain data are allowed")


def safe_loads(data: bytes, what: str = "data", extra_allowed: dict | None = None,
               encoding: str = "ASCII"):
    """Unpickle `data` with the allow-list; `extra_allowed` maps (module, name) to a safe
    stand-in (a `StateRecord` subclass). Python 2 pickles holding numpy arrays need
    encoding='latin1'."""
    try:
        return _Restricted(io.BytesIO(data), extra_allowed, encoding).load()
    except LaliaError as e:
        raise LaliaError(f"{what}: {e}") from None
    except RecursionError:
        raise LaliaError(f"{what} is nested too deeply to be a data file") from None
    except Exception as e:  # truncated or not a pickle at all
        raise LaliaError(f"{what} is not a readable pickle ({type(e).__name__}: {e})") from None
