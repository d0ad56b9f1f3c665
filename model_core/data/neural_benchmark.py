"""The held-out neural-TTS lip-sync set: `python -m model_core voices benchmark --out DIR`.

The three Kokoro voices no corpus uses (`corpus.KOKORO_HELD_OUT`) read sentences no corpus trains on
(the sentence hash's test split, which only test takes use), about `minutes` each, one sentence per
clip. The folder has the layout `realspeech build` makes (DIR/audio/*.wav, 16 kHz 16-bit, and
DIR/manifest.json with each clip's sha256 and its pocketsphinx forced alignment, the timings that
measure), so `python -m model_core eval-lipsync --set DIR --manifest DIR/manifest.json` runs on it.
Kokoro's own phone timings are kept beside (`engine_phones`), for comparison only.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from ..base.errors import LaliaError
from ..base.vocabulary import SAMPLE_RATE
from .corpus import KOKORO_HELD_OUT, stable_split
from .real_speech import format_phones, normalize_text, set_summary

LICENCE = "Apache-2.0 (Kokoro-82M weights and voice packs); text: Debian fortunes"


def benchmark_sentences(seed: int = 11) -> list[str]:
    """Test-split sentences of 5-18 words the aligner's dictionary fully knows, in a seeded order."""
    from .alignment import out_of_vocabulary
    from .sentences import load_sentences
    pool = [s for s in load_sentences() if stable_split(s, "sentence", 0.05, 0.05) == "test"
            and 5 <= len(s.split()) <= 18]
    pool = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]
    oov = set(out_of_vocabulary(sorted({w for s in pool for w in normalize_text(s).split()})))
    return [s for s in pool if not set(normalize_text(s).split()) & oov]


def build(out: Path, minutes: float = 2.0, voices=KOKORO_HELD_OUT, progress=print) -> dict:
    import soundfile as sf

    from .alignment import run_isolated
    from .tts import synthesize
    out = Path(out)
    if (out / "manifest.json").exists():
        raise LaliaError(f"{out} already holds a clip set; choose a new folder (nothing is overwritten)")
    (out / "audio").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sentences = benchmark_sentences()
    per_voice = max(1, len(sentences) // len(voices))
    chosen = []
    for v, name in enumerate(voices):
        seconds = 0.0
        # each voice reads its own sentences: no sentence twice in the set
        for k, text in enumerate(sentences[v * per_voice:(v + 1) * per_voice]):
            if seconds >= minutes * 60:
                break
            try:
                utt = synthesize(text, {"engine": "kokoro", "name": name, "speed": 1.0})
            except LaliaError as e:
                progress(f"skipped {text!r} ({name}): {e}")
                continue
            pcm = (np.clip(utt.audio, -1, 1) * 32767).astype(np.int16)
            cid = f"kokoro-{name}/{k:03d}"
            wav = out / "audio" / f"{cid.replace('/', '__')}.wav"
            sf.write(wav, pcm, SAMPLE_RATE, subtype="PCM_16")
            chosen.append({"id": cid, "speaker": f"kokoro-{name}", "text": text, "wav": wav,
                           "duration_s": round(len(pcm) / SAMPLE_RATE, 3),
                           "sha256": hashlib.sha256(pcm.tobytes()).hexdigest(),
                           "engine_phones": [(p.symbol, p.start, p.end) for p in utt.phones]})
            seconds += len(pcm) / SAMPLE_RATE
        progress(f"{name}: {seconds / 60:.1f} min")
    res = run_isolated([{"id": c["id"], "kind": "align", "wav": str(c["wav"]), "text": normalize_text(c["text"])}
                        for c in chosen])
    clips, dropped = [], {}
    for c in chosen:
        phones = res.get(c["id"], {}).get("phones") or []
        if not any(p[0] != "sil" for p in phones):
            dropped[c["id"]] = res.get(c["id"], {}).get("error", "alignment failed")
            c["wav"].unlink(missing_ok=True)
            continue
        clips.append({"id": c["id"], "source": {"package": "kokoro (held-out voice)", "version": "0.9.4",
                                                "path": f"kokoro.js/voices/{c['speaker'][7:]}.bin"},
                      "speaker": c["speaker"], "licence": LICENCE, "split": "heldout",
                      "transcript": c["text"], "aligned_words": normalize_text(c["text"]),
                      "duration_s": c["duration_s"], "sha256": c["sha256"], "audio": c["wav"].name,
                      "phones": format_phones(phones), "engine_phones": format_phones(c["engine_phones"])})
    speakers = sorted({c["speaker"] for c in clips})
    manifest = {
        **set_summary("Held-out neural-TTS voices (Kokoro-82M voices no corpus uses) reading sentences no corpus "
                      "trains on. Rebuild: python -m model_core voices benchmark --out DIR (after make voices)",
                      clips, lambda s: f"Kokoro-82M voice {s[7:]}, speed 1.0, held out of every corpus split"),
        "held_out_speakers": speakers,
        "dropped": {"count": len(dropped), "clips": dropped},
        "build_seconds": round(time.perf_counter() - t0, 1),
        "clips": clips,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
