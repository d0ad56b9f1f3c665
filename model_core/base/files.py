"""Writing files safely: the output path is checked before any work, and every file is written
whole or not at all (a temp file in the same folder, then `os.replace`).

`os.replace` within one folder is atomic on POSIX and Windows, so a reader (or a crash, or a
full disk midway) sees either the old file or the new one, never half of one, and a failed
write leaves the old file untouched.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import Iterator

from .errors import LaliaError


def _existing_ancestor(path: Path) -> Path:
    p = path.parent
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output_path(path, what: str = "output file") -> Path:
    """Refuse an output path that can't take a file, before any work is done on it: a folder, a
    device or other special file, a path under a regular file, a folder we can't create files in
    (probed by creating one: permission bits say nothing for root or on /proc). Creates nothing
    that stays."""
    path = Path(os.path.expanduser(str(path)))
    if not path.name or str(path).endswith(os.sep):
        raise LaliaError(f"The {what} '{path}' names a folder; give a file name, e.g. {path / 'out.npz'}")
    if path.exists() or path.is_symlink():
        try:
            st = path.stat()
        except OSError as e:
            raise LaliaError(f"The {what} '{path}' can't be used ({e.strerror}); choose another path") from None
        if stat.S_ISDIR(st.st_mode):
            raise LaliaError(f"The {what} '{path}' is a folder; give a file name inside it, "
                             f"e.g. {path / 'out'}{path.suffix or '.npz'}")
        if not stat.S_ISREG(st.st_mode):
            raise LaliaError(f"The {what} '{path}' is not a regular file (a device, pipe or socket); "
                             "choose a normal file path")
    folder = _existing_ancestor(path)
    if not folder.is_dir():
        raise LaliaError(f"The {what} '{path}' can't be created: '{folder}' is a file, not a folder")
    probe = folder / f".lalia-probe-{secrets.token_hex(4)}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as e:
        raise LaliaError(f"Can't write the {what} '{path}': the folder '{folder}' is not writable "
                         f"({e.strerror}); choose another folder") from None
    os.unlink(probe)
    return path


@contextlib.contextmanager
def atomic_write(path, what: str = "output file") -> Iterator[Path]:
    """`with atomic_write(p) as tmp: serializer(tmp)` -> `p` appears whole, or not at all.

    The temp file sits beside `p` (same filesystem, so the rename is atomic) and keeps `p`'s
    suffix (numpy adds `.npz` to names that lack it). On any error it is removed and the error
    passes on; an existing `p` is only ever replaced by a complete file."""
    path = check_output_path(path, what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LaliaError(f"Can't create the folder for the {what} '{path}' ({e.strerror})") from None
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.part{path.suffix}")
    # created here with the usual permissions (umask applies), so the final file has them too
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # on disk before the rename, so a crash can't leave it empty
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):  # a full disk, a vanished folder: the user can act on it
            raise LaliaError(f"Writing the {what} '{path}' failed ({e.strerror or e}); "
                             "nothing was written") from e
        raise


def write_bytes_atomic(path, data: bytes, what: str = "output file") -> Path:
    with atomic_write(path, what) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path, text: str, what: str = "output file") -> Path:
    with atomic_write(path, what) as tmp:
        tmp.write_text(text)
    return Path(path)
