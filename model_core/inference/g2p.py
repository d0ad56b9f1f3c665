"""Pronunciations of words the aligner's dictionary lacks (names, made-up words), from espeak-ng.

espeak-ng's letter-to-sound rules give IPA phonemes for any English spelling; `ipa_to_phones`
maps them to the shared ARPAbet alphabet. The library comes from the `espeakng-loader` wheel
(libespeak-ng and its data for Windows, macOS and Linux, which the add-on zips carry), else from
the system (Debian's libespeak-ng1). Without either, `pronounce` returns None and the caller
skips the word.

espeak-ng keeps global state and must be initialised once per process: this runs in the
aligner's child process (`align_process.py`), never in Blender's.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading

from ..base.phones import ipa_to_phones

log = logging.getLogger(__name__)

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000   # return an error instead of exiting the process
_CHARS_UTF8 = 1
_PHONEMES_IPA = 0x02
_SEPARATOR = ord("_") << 8       # between phoneme names (bits 8-23 of the phoneme mode)


def _library() -> tuple[ctypes.CDLL, bytes | None] | None:
    """libespeak-ng and its data folder: the wheel's, else the system's (its own data path)."""
    try:
        import espeakng_loader
        return ctypes.CDLL(espeakng_loader.get_library_path()), espeakng_loader.get_data_path().encode()
    except (ImportError, OSError, RuntimeError) as e:
        log.debug("espeakng-loader unusable (%s); trying the system's espeak-ng", e)
    path = ctypes.util.find_library("espeak-ng")
    try:
        return (ctypes.CDLL(path), None) if path else None
    except OSError:
        return None


class Pronouncer:
    """espeak-ng's English (US) letter-to-sound rules, loaded on first use."""

    def __init__(self, voice: str = "en-us"):
        self.voice = voice
        self._lib = None
        self._failed = False
        self._lock = threading.Lock()

    def _load(self) -> ctypes.CDLL | None:
        if self._lib is None and not self._failed:
            found = _library()
            if found is not None:
                lib, data = found
                lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
                lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
                lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
                lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
                ok = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT) > 0
                if ok and lib.espeak_SetVoiceByName(self.voice.encode()) == 0:
                    self._lib = lib
            self._failed = self._lib is None
            if self._failed:
                log.info("espeak-ng is not available: words outside the aligner's dictionary are skipped")
        return self._lib

    @property
    def available(self) -> bool:
        with self._lock:
            return self._load() is not None

    def pronounce(self, word: str) -> list[str] | None:
        """A word's phones (ARPAbet, lower case), or None when espeak-ng is missing or gives none."""
        with self._lock:
            lib = self._load()
            if lib is None:
                return None
            buf = ctypes.create_string_buffer(word.encode("utf-8"))
            ptr = ctypes.c_void_p(ctypes.addressof(buf))
            ipa = []
            while ptr.value:  # espeak moves the pointer clause by clause, NULL at the end
                out = lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, _PHONEMES_IPA | _SEPARATOR)
                if out is None:
                    break
                ipa.append(out.decode("utf-8", "replace"))
        phones = [p for chunk in ipa for p in ipa_to_phones(chunk)]
        return phones or None
