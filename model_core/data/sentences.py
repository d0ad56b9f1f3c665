"""English sentences from a real, varied text source a registry ships: Debian's `fortunes`
(quotations, jokes, literature, science, proverbs; thousands of questions and exclamations)."""
from __future__ import annotations

import functools
import re
from pathlib import Path

from ..base.errors import LaliaError

FORTUNE_DIRS = (Path("/usr/share/games/fortunes"), Path("/usr/share/fortunes"))
_SENTENCE = re.compile(r"[A-Z][A-Za-z ,;'\-]+[.!?]")


@functools.lru_cache(maxsize=1)
def load_sentences(min_words: int = 3, max_words: int = 28) -> tuple[str, ...]:
    """Distinct speakable sentences, sorted (deterministic)."""
    root = next((d for d in FORTUNE_DIRS if d.is_dir()), None)
    if root is None:
        raise LaliaError("No sentence source: install Debian's fortunes (`apt-get install fortunes`)")
    out = set()
    for f in sorted(root.iterdir()):
        if f.suffix or not f.is_file():  # skip the .dat indexes and .u8 links
            continue
        for rec in f.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            rec = " ".join(rec.split())
            for s in re.split(r"(?<=[.!?])\s+", rec):
                words = s.split()
                if (_SENTENCE.fullmatch(s) and min_words <= len(words) <= max_words
                        and "--" not in s and sum(w.isupper() and len(w) > 1 for w in words) == 0):
                    out.add(s)
    if len(out) < 1000:
        raise LaliaError(f"Only {len(out)} sentences found under {root}; is `fortunes` complete?")
    return tuple(sorted(out))
