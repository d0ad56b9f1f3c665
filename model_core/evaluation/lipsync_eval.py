"""The real-speech lip-sync benchmark: `python -m model_core eval-lipsync --set DIR --out FILE`.

On every clip of the set (see `data/real_speech.py`) it measures (`lipsync.py`):
- model: the shipped model (or --checkpoint) with default settings, seed 0, hearing the audio only;
- peer: a transcript-free lip-sync tool, as Rhubarb Lip Sync works: pocketsphinx word
  recognition (default en-us language model), the recognised words force-aligned into phones,
  then the corpus's procedural animator places its visemes on them;
- animator: the same animator on the forced alignment of the true transcript, neutral, the
  average speaking style: what the model's teacher would do knowing the words (the upper
  reference);
and, to see where the model's mouth loses detail, the model's intermediate mouths:
- model_no_hold: without the closure layer (`generate(..., hold_closures=False)`);
- model_words_prior: the content prior's neutral decoding (what the face does for the words
  alone before the denoiser; the closure layer holds the lips to it);
- model_average_style: the average talking style instead of the voice-matched identity;
- model_fit: the fitted encoding `lalia batch` uses (`encoder_fit`: Whisper on only the frames
  the line needs, through the fit adapter) instead of the padded 30 s window;
- model_transcript (with --transcript): the model given the clip's transcript (docs/transcript.md).
Metrics are pooled over all clips (every phone weighs the same), over the dev and held-out
speakers apart, per source package, and per clip.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from ..base.motion import Motion
from ..base.signals import frame_energy
from ..base.vocabulary import EMOTIONS, FPS
from ..data.animator import Style, animate
from ..data.tts import Phone
from .lipsync import (
    METRICS,
    clip_stats,
    closure_sensitivity,
    lip_speed,
    openness_r_per_phone_type,
    phone_gap_agreement,
    summarize,
    vowel_openness_r,
)

log = logging.getLogger(__name__)
TARGETS = {"bilabial_closure": ">= 0.95", "openness_r": ">= 0.82", "sync_lag_ms": "|lag| <= 20",
           "rounding_contrast": ">= 0.3", "vowel_opening_mm": "8 .. 15"}


def animator_motion(phones, n_frames: int, audio: np.ndarray, seed: int = 0) -> Motion:
    """The procedural animator on timed phones: neutral, the average style."""
    emotion = np.zeros((n_frames, len(EMOTIONS)), np.float32)
    emotion[:, EMOTIONS.index("neutral")] = 1.0
    ph = [Phone(p[0], p[1], p[2]) for p in phones]
    return animate(ph, n_frames, emotion, Style(), np.random.default_rng(seed), frame_energy(audio, n_frames))


def words_prior(generator, audio: np.ndarray) -> Motion:
    """The content prior's neutral decoding: the words' mouth before the denoiser."""
    import torch

    from ..inference.features import load_features
    with torch.inference_mode():
        _, feats, _, _ = load_features(audio, generator.encoder, generator.fps)
        f = torch.from_numpy(feats).to(generator.device)[None]
        model = generator.model
        prior = model.prior(f, model.neutral_code().expand(1, f.shape[1], -1))[0]
        return Motion(generator.fps, generator.channels, generator.to_values(prior))


class _SameFeatures:
    """The generator's speech encoder, remembering the last clip's features, so all the variants
    run on a clip share one encoding (the encoder is most of a short clip's cost; the features
    don't depend on the settings)."""

    def __init__(self, generator):
        self.generator, self.encoder = generator, generator.encoder
        self.key, self.value = None, None

    def encode(self, audio, n_frames=None, **kw):
        key = (hashlib.sha1(np.ascontiguousarray(audio).tobytes()).hexdigest(), n_frames, tuple(sorted(kw.items())))
        if key != self.key:
            self.key, self.value = key, self.encoder.encode(audio, n_frames, **kw)
        return self.value

    def __enter__(self):
        self.generator._encoder = self
        return self

    def __exit__(self, *exc):
        self.generator._encoder = self.encoder


def peer_phones(clips: list[dict], set_dir: Path, progress=print) -> dict[str, dict]:
    """Recognised words and phones per clip, cached in the set's folder by audio sha256 (the
    recognition is deterministic and the slowest part)."""
    from ..data.alignment import run_isolated
    cache_path = set_dir / "peer_recognition.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    todo = [c for c in clips if c["sha256"] not in cache]
    if todo:
        progress(f"peer: recognising {len(todo)} clips with pocketsphinx (no transcript)")
        res = run_isolated([{"id": c["sha256"], "kind": "recognize", "wav": str(set_dir / "audio" / c["audio"])}
                            for c in todo], timeout_s=3600)
        cache.update(res)
        cache_path.write_text(json.dumps(cache))
    return {c["id"]: cache[c["sha256"]] for c in clips}


def _round(d: dict) -> dict:
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items()}


def evaluate_lipsync(generator, set_dir, manifest=None, emotions: bool = False, progress=print,
                     transcript: bool = False) -> dict:
    from ..data.real_speech import MANIFEST_IN_REPO, load_set
    set_dir = Path(set_dir)
    clips = load_set(set_dir, manifest or MANIFEST_IN_REPO)
    t0 = time.perf_counter()
    peer = peer_phones(clips, set_dir, progress)
    timings = {"peer_recognition_s": round(time.perf_counter() - t0, 1)}
    systems = {
        "model": lambda c: generator.generate(c["audio16k"], seed=0).motion,
        "peer": lambda c: animator_motion(peer[c["id"]].get("phones") or [("sil", 0.0, c["duration_s"])],
                                          _frames(c), c["audio16k"]),
        "animator": lambda c: animator_motion(c["phones"], _frames(c), c["audio16k"]),
        "model_no_hold": lambda c: generator.generate(c["audio16k"], seed=0, hold_closures=False).motion,
        "model_words_prior": lambda c: words_prior(generator, c["audio16k"]),
        "model_average_style": lambda c: generator.generate(c["audio16k"], seed=0, style="average").motion,
        "model_fit": lambda c: generator.generate(c["audio16k"], seed=0, encoder_fit=True).motion,
    }
    if transcript:
        systems["model_transcript"] = lambda c: generator.generate(c["audio16k"], seed=0,
                                                                   transcript=c["transcript"]).motion
    if emotions:
        for e in EMOTIONS[1:]:
            systems[f"model_{e}"] = (lambda e: lambda c: generator.generate(c["audio16k"], seed=0,
                                                                            emotion={e: 1.0}).motion)(e)
        # the emotions that open the jaw, without the closure layer: what the layer holds
        for e in ("surprised", "disgusted"):
            systems[f"model_{e}_no_hold"] = (lambda e: lambda c: generator.generate(
                c["audio16k"], seed=0, emotion={e: 1.0}, hold_closures=False).motion)(e)
    stats = {name: [] for name in systems}
    seconds = {name: 0.0 for name in systems}
    with _SameFeatures(generator):
        for i, c in enumerate(clips):
            for name, fn in systems.items():
                t = time.perf_counter()
                motion = fn(c)
                seconds[name] += time.perf_counter() - t
                stats[name].append(clip_stats(motion, c["phones"]))
            if (i + 1) % 20 == 0:
                progress(f"{i + 1}/{len(clips)} clips")
    # the first model run of a clip pays for its speech features; the variants reuse them
    timings.update({f"{k}_s": round(v, 1) for k, v in seconds.items()})

    def pooled(sel) -> dict:
        idx = [i for i, c in enumerate(clips) if sel(c)]
        return {name: _round(summarize([s[i] for i in idx])) for name, s in stats.items()} if idx else {}

    def diagnostics(name: str) -> dict:
        return {"closure_at": _round(closure_sensitivity(stats[name])),
                "vowel_openness_r": round(vowel_openness_r(stats[name]), 3),
                "openness_r_per_phone_type": round(openness_r_per_phone_type(stats[name]), 3),
                "phone_gap_r_vs_animator": round(phone_gap_agreement(stats[name], stats["animator"]), 3),
                "lip_speed_mm_s": round(lip_speed(stats[name]), 1)}
    speakers = sorted({c["speaker"] for c in clips})
    sources = sorted({c["source"]["package"] for c in clips})
    per_clip = []
    for i, c in enumerate(clips):
        per_clip.append({"id": c["id"], "speaker": c["speaker"], "split": c["split"], "seconds": c["duration_s"],
                         "peer_words": peer[c["id"]].get("words", ""),
                         **{name: {k: v for k, v in _round(summarize([stats[name][i]])).items()
                                   if k in METRICS or k == "bilabials"} for name in ("model", "peer", "animator")}})
    return {
        "set": {"clips": len(clips), "minutes": round(sum(c["duration_s"] for c in clips) / 60, 2),
                "speakers": len(speakers), "sources": sources},
        "targets": TARGETS,
        "all": pooled(lambda c: True),
        "dev": pooled(lambda c: c["split"] == "dev"),
        "heldout": pooled(lambda c: c["split"] == "heldout"),
        "per_source": {s: pooled(lambda c, s=s: c["source"]["package"] == s) for s in sources},
        "diagnostics": {name: diagnostics(name) for name in stats},
        "per_speaker": {s: {k: v for k, v in pooled(lambda c, s=s: c["speaker"] == s).items()
                            if k in ("model", "peer", "animator")} for s in speakers},
        "timings": timings,
        "per_clip": per_clip,
    }


def _frames(c: dict) -> int:
    # the generator's frame count for this audio
    return max(1, int(round(len(c["audio16k"]) / 16000 * FPS)))


def table(report: dict, split: str = "all", names=("model", "peer", "animator")) -> str:
    """A markdown table of the pooled metrics."""
    rows = ["| system | closure | openness r | lag (ms) | rounding | vowel opening (mm) | bilabials | phones |",
            "|---|---|---|---|---|---|---|---|"]
    for n in names:
        m = report[split].get(n)
        if m:
            rows.append(f"| {n} | {m['bilabial_closure']:.3f} | {m['openness_r']:.3f} | {m['sync_lag_ms']:.0f} | "
                        f"{m['rounding_contrast']:.3f} | {m['vowel_opening_mm']:.1f} | {m['bilabials']} | "
                        f"{m['phones']} |")
    return "\n".join(rows)
