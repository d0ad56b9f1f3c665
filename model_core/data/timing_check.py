"""Check each synthesizer's phone timings against a pocketsphinx alignment of its own audio.

`python -m model_core voices check-timings [--sentences 20] [--out docs/voices.json] [--write-offsets]`

For every engine (espeak-ng, flite, Kokoro, Piper) it speaks the same sentences, force-aligns the
audio to the words with pocketsphinx (`alignment.align_phones`, the aligner that measures lip sync
on real speech), and pairs each phone onset of the alignment with the engine's onset of the same
phone after the same phone (the nearest within 200 ms). The offset is engine onset - pocketsphinx
onset: its median is the engine's constant lateness; its spread (quartiles) says how far single
boundaries wander.

The engines' timings are measured as `synthesize` gives them, i.e. with the offsets of
`tts_offsets.json` already taken out, so a run reports the residual; `raw` = residual + applied.
`--write-offsets` stores each engine's raw median (rounded to the ms) as its new offset; a second run
then reports what is left (the residual), which is how docs/voices.json was made.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from ..base.vocabulary import SAMPLE_RATE
from .tts import OFFSETS_FILE, engine_offset, synthesize

ENGINES = ("espeak", "flite", "kokoro", "piper")
# a few voices per engine, taken in turn (the held-out Kokoro voices are not among them)
CHECK_VOICES = {
    "espeak": [{"engine": "espeak", "name": n, "rate": 170, "pitch": 50, "range": 50}
               for n in ("en-us+m3", "en+f2", "en-gb-x-rp+m1")],
    "flite": [{"engine": "flite", "name": n, "stretch": 1.0, "f0": f0, "f0_std": 20.0}
              for n, f0 in (("slt", 175.0), ("awb", 110.0), ("rms", 105.0))],
    "kokoro": [{"engine": "kokoro", "name": n, "speed": 1.0}
               for n in ("af_bella", "am_michael", "bf_emma", "bm_george")],
    "piper": [{"engine": "piper", "name": "joe"}],
}
MATCH_WINDOW = 0.2


def check_sentences(n: int, seed: int = 7) -> list[str]:
    """n sentences of 6-16 words whose every word the aligner's dictionary knows."""
    from .alignment import out_of_vocabulary
    from .real_speech import normalize_text
    from .sentences import load_sentences
    pool = [s for s in load_sentences() if 6 <= len(s.split()) <= 16]
    rng = np.random.default_rng(seed)
    picks = [pool[i] for i in rng.choice(len(pool), size=min(len(pool), 6 * n), replace=False)]
    words = sorted({w for s in picks for w in normalize_text(s).split()})
    oov = set(out_of_vocabulary(words))
    return [s for s in picks if not set(normalize_text(s).split()) & oov][:n]


def onset_offsets(engine_phones: list[tuple], reference: list[tuple]) -> list[float]:
    """engine onset - reference onset (s) for each reference phone whose (previous, this) pair the
    engine also has within MATCH_WINDOW; silences are not boundaries of interest."""
    eng = [(p[0], float(p[1])) for p in engine_phones]
    pairs: dict[tuple, list[float]] = {}
    for prev, cur in zip(eng, eng[1:]):
        pairs.setdefault((prev[0], cur[0]), []).append(cur[1])
    out = []
    for prev, cur in zip(reference, reference[1:]):
        if cur[0] == "sil" or prev[0] == cur[0]:
            continue
        cands = pairs.get((prev[0], cur[0]), [])
        if not cands:
            continue
        best = min(cands, key=lambda t: abs(t - cur[1]))
        if abs(best - cur[1]) <= MATCH_WINDOW:
            out.append(best - float(cur[1]))
    return out


def measure(engines=ENGINES, n_sentences: int = 20, progress=print) -> dict:
    import soundfile as sf

    from .alignment import run_isolated
    from .real_speech import normalize_text
    sentences = check_sentences(n_sentences)
    report = {"sentences": len(sentences), "aligner": "pocketsphinx en-us forced alignment (alignment.align_phones)",
              "match": f"same (previous, this) phone pair, nearest onset within {int(MATCH_WINDOW * 1000)} ms",
              "engines": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in engines:
            voices = CHECK_VOICES[engine]
            jobs, phones = [], {}
            for i, text in enumerate(sentences):
                utt = synthesize(text, voices[i % len(voices)])
                wav = Path(tmp) / f"{engine}_{i}.wav"
                sf.write(wav, utt.audio, SAMPLE_RATE, subtype="PCM_16")
                jobs.append({"id": str(i), "kind": "align", "wav": str(wav), "text": normalize_text(text)})
                phones[str(i)] = [(p.symbol, p.start, p.end) for p in utt.phones]
            res = run_isolated(jobs)
            diffs = []
            for k, r in res.items():
                if r.get("phones"):
                    diffs += onset_offsets(phones[k], r["phones"])
            d = np.array(diffs) * 1000
            applied = engine_offset(engine) * 1000
            q1, med, q3 = np.percentile(d, [25, 50, 75]) if len(d) else (np.nan,) * 3
            report["engines"][engine] = {
                "voices": [v["name"] for v in voices], "aligned": sum(bool(r.get("phones")) for r in res.values()),
                "boundaries": len(d), "residual_median_ms": round(float(med), 1),
                "residual_iqr_ms": [round(float(q1), 1), round(float(q3), 1)],
                "residual_mad_ms": round(float(np.median(np.abs(d - med))), 1) if len(d) else None,
                "applied_offset_ms": round(applied, 1), "raw_median_ms": round(float(med) + applied, 1)}
            progress(f"{engine}: {report['engines'][engine]}")
    return report


def write_offsets(report: dict) -> dict:
    """Store each measured engine's raw median as its offset (seconds, ms resolution)."""
    cur = json.loads(OFFSETS_FILE.read_text())
    cur.setdefault("measured_raw_median_ms", {})
    for engine, r in report["engines"].items():
        cur["offset_s"][engine] = round(r["raw_median_ms"]) / 1000
        cur["measured_raw_median_ms"][engine] = r["raw_median_ms"]
    cur["note"] = ("How late each engine's phone timings sit against pocketsphinx forced alignment of its own "
                   "audio (median onset difference); synthesize() subtracts it. Written by "
                   "`python -m model_core voices check-timings --write-offsets` (docs/voices.md).")
    OFFSETS_FILE.write_text(json.dumps(cur, indent=1) + "\n")
    return cur
