"""Dialogue text -> the words the aligner reads: lower case ASCII words, numbers spelled out.

Scripts are written for actors, not aligners: "Dr. Wu's 3rd try -- at 9:30?! (sighs)". What is
spoken stays, in the form pocketsphinx's dictionary spells it:
- casing and accents go (café -> cafe); curly apostrophes become straight ones, and an
  apostrophe inside a word stays (don't, Wu's), at its edges it goes;
- hyphens and dashes split words (co-op -> co op); other punctuation goes;
- stage directions in brackets, (sighs) [laughs] {beat} <noise>, are not spoken and go;
- numbers are spelled out: cardinals (42 -> forty two), years (1999 -> nineteen ninety nine),
  ordinals (3rd -> third), decimals (2.5 -> two point five), clock times (9:30 -> nine thirty),
  with %, $ and & said as words;
- a few titles (mr, mrs, dr, st) are said in full.
Words of other scripts (Cyrillic, Japanese, ...) can't be read by the English aligner: they are
returned apart so the caller can say so.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10 ** 12, "trillion"), (10 ** 9, "billion"), (10 ** 6, "million"), (1000, "thousand"))
_ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
            "nine": "ninth", "twelve": "twelfth"}
_TITLES = {"mr": "mister", "mrs": "missus", "ms": "miz", "dr": "doctor", "st": "saint", "vs": "versus"}
MAX_DIGITS = 15  # longer digit strings are read digit by digit (a serial number, not a quantity)


def _under_thousand(n: int) -> list[str]:
    out = []
    if n >= 100:
        out += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        out.append(_TENS[n // 10])
        n %= 10
        if n:
            out.append(_ONES[n])
    elif n or not out:
        out.append(_ONES[n])
    return out


def cardinal(n: int) -> list[str]:
    """A whole number >= 0 as words: 1205 -> one thousand two hundred five."""
    if n < 1000:
        return _under_thousand(n)
    for scale, name in _SCALES:
        if n >= scale:
            rest = n % scale
            return cardinal(n // scale) + [name] + (cardinal(rest) if rest else [])
    raise AssertionError("unreachable")


def year(n: int) -> list[str]:
    """A four-digit year read in pairs, as years are said: 1999 -> nineteen ninety nine,
    1905 -> nineteen oh five, 2000 -> two thousand, 2021 -> twenty twenty one."""
    hi, lo = divmod(n, 100)
    if n % 1000 < 10 and n >= 2000:  # 2000-2009: "two thousand (nine)"
        return cardinal(n)
    if lo == 0:
        return _under_thousand(hi) + ["hundred"]
    return _under_thousand(hi) + (["oh"] if lo < 10 else []) + _under_thousand(lo)


def ordinal(n: int) -> list[str]:
    """3 -> third, 21 -> twenty first, 100 -> one hundredth."""
    words = cardinal(n)
    last = words[-1]
    if last in _ORDINAL:
        words[-1] = _ORDINAL[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return words


def _digits(s: str) -> list[str]:
    return [_ONES[int(c)] for c in s]


def _number(token: str) -> list[str]:
    """One numeric token (digits, with , . : or an ordinal suffix) as words."""
    t = token.replace(",", "")
    m = re.fullmatch(r"(\d+)(st|nd|rd|th)", t)
    if m and len(m.group(1)) <= MAX_DIGITS:
        return ordinal(int(m.group(1)))
    m = re.fullmatch(r"(\d{1,2}):(\d\d)", t)
    if m:  # a clock time: 9:30 -> nine thirty, 9:05 -> nine oh five, 9:00 -> nine o'clock
        h, mins = int(m.group(1)), int(m.group(2))
        return cardinal(h) + (["o'clock"] if mins == 0 else (["oh"] if mins < 10 else []) + cardinal(mins))
    m = re.fullmatch(r"(\d*)\.(\d+)", t)
    if m:
        whole = _number(m.group(1)) if m.group(1) else []
        return whole + ["point"] + _digits(m.group(2))
    if not t.isdigit():
        return [w for part in re.findall(r"\d+", t) for w in _number(part)]
    if len(t) > MAX_DIGITS or (t.startswith("0") and len(t) > 1):
        return _digits(t)
    n = int(t)
    if len(t) == 4 and "," not in token and (1100 <= n <= 1999 or 2000 <= n <= 2099):
        return year(n)
    return cardinal(n)


@dataclass
class Words:
    """The words to align, and the tokens of other scripts that were left out."""
    words: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


_BRACKETED = re.compile(r"\([^)]*\)|\[[^\]]*\]|\{[^}]*\}|<[^>]*>")
_TOKEN = re.compile(r"[$]?\d[\d,.:]*(?:st|nd|rd|th)?%?|[^\W\d_]+(?:'[^\W\d_]+)*|\S")


def spoken_words(text: str) -> Words:
    """Dialogue text -> the words as spoken, ready for the aligner (see the module's doc)."""
    t = _BRACKETED.sub(" ", str(text))
    t = t.replace("\u2019", "'").replace("\u2018", "'").replace("\u02bc", "'").replace("`", "'")
    t = re.sub(r"[-\u2010-\u2015_/]", " ", t).replace("&", " and ")
    out = Words()
    for token in _TOKEN.findall(t):
        if token[0] == "$" or token[0].isdigit():
            dollars = token[0] == "$"
            percent = token.endswith("%")
            core = token.strip("$%").rstrip(".,:")
            out.words += _number(core) + (["percent"] if percent else []) + (["dollars"] if dollars else [])
            continue
        if not any(ch.isalpha() for ch in token):
            continue  # punctuation
        # accents off (NFKD, combining marks dropped), then only English letters count
        plain = "".join(ch for ch in unicodedata.normalize("NFKD", token) if not unicodedata.combining(ch)).lower()
        if not re.fullmatch(r"[a-z']+", plain):
            out.unreadable.append(token)
            continue
        word = plain.strip("'")
        if word:
            out.words.append(_TITLES.get(word, word))
    return out
