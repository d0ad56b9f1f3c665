"""Evaluation: `python -m model_core eval [--checkpoint CKPT] --corpus DIR`.

Metrics (vertex space on the bundled head, head rotation zeroed; see shared FACTS section 2):
- LVE (mm): per frame, max over lip vertices of the distance to ground truth; mean over frames.
- MOD (mm): mean absolute difference of mouth opening (inner lip gap).
- FDD (mm): per upper-face vertex, std over time of displacement; mean of std(GT) - std(pred).
- Bilabial closure: share of /p b m/ whose lip gap drops below `CLOSED_MM` within the phone.
- BA: head-motion beats (local minima of head angular speed) vs audio onsets,
  mean exp(-d^2 / 2 sigma^2), sigma = 3 frames.
- Emotion fidelity: per emotion, the shift of its characteristic channels against neutral frames,
  predicted vs ground truth.
- Diversity: mean per-frame lip-vertex distance between generations with different seeds.
- Window boundary continuity: mean speed at window boundaries / mean speed inside windows.
The reference figure for LVE is the *animator spread*: the LVE between two renditions of the
same utterance by the procedural animator with different speaking styles and random seeds.

Real speech: the model hears the audio only; pocketsphinx forced alignment of the transcript
gives phone timings used solely to measure bilabial closure and the audio-visual sync offset.
"""
from __future__ import annotations

import json
import logging

import numpy as np

from ..base.assets import SAMPLE_SPEECH
from ..base.head import load_head
from ..base.motion import ARKIT_INDEX
from ..base.signals import frame_energy, peak_position
from ..base.vocabulary import EMOTIONS
from ..data.alignment import align_phones
from ..data.animator import Style, animate
from ..data.tts import VOWELS, Phone
from ..inference.closures import CLOSED_MM

log = logging.getLogger(__name__)
BILABIALS = {"p", "b", "m"}
CHARACTERISTIC = {
    "happy": ["mouthSmileLeft", "mouthSmileRight", "cheekSquintLeft", "cheekSquintRight"],
    "sad": ["browInnerUp", "mouthFrownLeft", "mouthFrownRight"],
    "angry": ["browDownLeft", "browDownRight", "noseSneerLeft", "noseSneerRight"],
    "surprised": ["browOuterUpLeft", "browOuterUpRight", "eyeWideLeft", "eyeWideRight"],
    "fearful": ["eyeWideLeft", "eyeWideRight", "mouthStretchLeft", "mouthStretchRight"],
    "disgusted": ["noseSneerLeft", "noseSneerRight", "mouthUpperUpLeft", "mouthUpperUpRight"],
    "contempt": ["mouthDimpleLeft", "mouthSmileLeft"],
}


class VertexMetrics:
    def __init__(self):
        h = load_head()
        self.h = h
        self.lips = h.lip_vertices
        self.upper = h.upper_face_vertices

    def verts(self, w: np.ndarray, idx) -> np.ndarray:
        """T x 52 weights -> T x |idx| x 3 vertices in mm."""
        t = self.h.targets[:, idx].reshape(52, -1)
        return ((w[:, :52] @ t).reshape(len(w), -1, 3) + self.h.vertices[idx]) * 1000.0

    def gap(self, w: np.ndarray) -> np.ndarray:
        """Inner lip gap (mm) per frame."""
        return self.h.lip_gap(w)

    def lve(self, pred, gt) -> float:
        return float(np.linalg.norm(self.verts(pred, self.lips) - self.verts(gt, self.lips), axis=-1).max(1).mean())

    def mod(self, pred, gt) -> float:
        return float(np.abs(self.gap(pred) - self.gap(gt)).mean())

    def fdd(self, pred, gt) -> float:
        def dyn(w):
            d = self.verts(w, self.upper) - self.h.vertices[self.upper] * 1000.0
            return np.linalg.norm(d, axis=-1).std(0)
        return float((dyn(gt) - dyn(pred)).mean())


def bilabial_closure(gap_mm: np.ndarray, phones, fps: float = 25.0) -> tuple[float, int]:
    """Share of bilabials (phones with symbol p/b/m) during which the lips close."""
    hits, n = 0, 0
    for sym, start, end, *_ in phones:
        if sym not in BILABIALS:
            continue
        a = int(np.floor(start * fps - 0.5))
        b = int(np.ceil(end * fps + 0.5))
        seg = gap_mm[max(0, a): min(len(gap_mm), b + 1)]
        if len(seg) == 0:
            continue
        n += 1
        hits += bool(seg.min() < CLOSED_MM)
    return (hits / n if n else float("nan")), n


def sync_offset_ms(gap_mm: np.ndarray, phones, fps: float = 25.0, max_ms: float = 200) -> float:
    """Lag (ms) that best aligns mouth opening with vowel presence; > 0 = mouth late.
    Sub-frame precision by parabolic interpolation of the correlation peak."""
    T = len(gap_mm)
    vowel = np.zeros(T)
    for sym, start, end, *_ in phones:
        if sym in VOWELS:
            vowel[int(start * fps): int(np.ceil(end * fps))] = 1.0
    g = (gap_mm - gap_mm.mean()) / (gap_mm.std() + 1e-9)
    v = (vowel - vowel.mean()) / (vowel.std() + 1e-9)
    K = int(max_ms / 1000 * fps)
    lags = np.arange(-K, K + 1)
    corr = np.array([np.mean(g[max(0, k):T + min(0, k)] * v[max(0, -k):T - max(0, k)]) for k in lags])
    return float((lags[0] + peak_position(corr)) / fps * 1000)


def _audio_onsets(audio: np.ndarray, T: int, fps: float = 25.0) -> np.ndarray:
    e = frame_energy(audio, T)
    flux = np.maximum(np.diff(np.log(e + 1e-3), prepend=0), 0)
    thr = flux.mean() + flux.std()
    return np.array([i for i in range(1, T - 1) if flux[i] > thr and flux[i] >= flux[i - 1] and flux[i] >= flux[i + 1]])


def beat_alignment(head: np.ndarray, audio: np.ndarray, sigma: float = 3.0) -> float:
    speed = np.linalg.norm(np.diff(head, axis=0), axis=1)
    beats = np.array([i for i in range(1, len(speed) - 1) if speed[i] < speed[i - 1] and speed[i] < speed[i + 1]])
    onsets = _audio_onsets(audio, len(head))
    if len(beats) == 0 or len(onsets) == 0:
        return float("nan")
    d = np.abs(beats[:, None] - onsets[None, :]).min(1)
    return float(np.mean(np.exp(-d ** 2 / (2 * sigma ** 2))))


def head_liveliness(head: np.ndarray, fps: float = 25.0) -> dict:
    deg = np.degrees(head)
    acc = np.diff(deg, 2, axis=0) * fps * fps
    return {"head_std_deg": float(deg.std(0).mean()), "head_jerk_deg_s2": float(np.abs(acc).mean())}


def boundary_ratio(values: np.ndarray, joins) -> float:
    """Mean speed across the frames where windows join / mean speed elsewhere.
    `joins`: frame indices j where frame j-1 and frame j come from different windows
    (or an int window length: joins at its multiples)."""
    speed = np.linalg.norm(np.diff(values, axis=0), axis=1)
    if isinstance(joins, int):
        joins = range(joins, len(values), joins)
    at = [j - 1 for j in joins if 0 < j < len(values)]
    if not at:
        return float("nan")
    inside = np.delete(speed, at)
    return float(speed[at].mean() / (inside.mean() + 1e-9))


def emotion_shift(w: np.ndarray, emotion: np.ndarray) -> dict:
    """Per emotion: mean of its characteristic channels where it dominates (> 0.5) minus
    neutral frames."""
    out = {}
    neutral = emotion[:, 0] > 0.9
    for k, e in enumerate(EMOTIONS[1:], start=1):
        sel = emotion[:, k] > 0.5
        if sel.sum() < 10 or neutral.sum() < 10:
            continue
        ch = [ARKIT_INDEX[c] for c in CHARACTERISTIC[e]]
        out[e] = float(w[sel][:, ch].mean() - w[neutral][:, ch].mean())
    return out


def _joins(generator, T: int) -> list[int]:
    from ..inference.windows import OVERLAP, window_starts
    starts = window_starts(T, generator.cfg.window)[1:]
    return sorted(set(starts) | {s + min(OVERLAP, generator.cfg.window // 4) for s in starts})


def evaluate_corpus(generator, corpus_root, max_takes: int = 24, steps: int | None = None,
                    seeds=(0, 1)) -> dict:
    """Metrics on the held-out test split (voices and sentences unseen in training)."""
    from ..data.corpus import Corpus
    vm = VertexMetrics()
    corpus = Corpus(corpus_root)
    rows, spread, closure_p, closure_gt, n_bil = [], [], [], [], 0
    emo_all_p, emo_all_g, emo_all_e = [], [], []
    for i, take in enumerate(corpus.takes("test")):
        if i >= max_takes:
            break
        # the average style: each take has its own speaker's style, which the audio doesn't tell
        preds = [generator.generate(take.audio, emotion=take.emotion, steps=steps, seed=s,
                                    style="average").motion.values
                 for s in seeds]
        pred, gt = preds[0], take.motion
        T = min(len(pred), len(gt))
        pred, gt = pred[:T], gt[:T]
        # the animator spread: same phones, another speaking style and random seed
        rng = np.random.default_rng(1000 + i)
        phones = [Phone(p[0], p[1], p[2], p[3]) for p in take.phones]
        other = animate(phones, T, take.emotion[:T], Style.sample(rng), rng, frame_energy(take.audio, T)).values
        spread.append(vm.lve(other, gt))
        gp, gg = vm.gap(pred), vm.gap(gt)
        cp, nb = bilabial_closure(gp, take.phones)
        cg, _ = bilabial_closure(gg, take.phones)
        if nb:
            closure_p.append(cp * nb)
            closure_gt.append(cg * nb)
            n_bil += nb
        rows.append({"lve": vm.lve(pred, gt), "mod": vm.mod(pred, gt), "fdd": vm.fdd(pred, gt),
                     "ba_pred": beat_alignment(pred[:, 52:55], take.audio),
                     "ba_gt": beat_alignment(gt[:, 52:55], take.audio),
                     "diversity_mm": float(np.linalg.norm(vm.verts(preds[0][:T], vm.lips)
                                                          - vm.verts(preds[1][:T], vm.lips), axis=-1).mean())
                     if len(preds) > 1 else float("nan"),
                     "boundary_ratio": boundary_ratio(pred, _joins(generator, len(pred))),
                     "sync_offset_ms": sync_offset_ms(gp, take.phones)})
        emo_all_p.append(pred[:, :52])
        emo_all_g.append(gt[:, :52])
        emo_all_e.append(take.emotion[:T])
    if not rows:
        from ..base.errors import LaliaError
        raise LaliaError(f"{corpus_root} has no test takes")
    sp, sg = emotion_shift(np.concatenate(emo_all_p), np.concatenate(emo_all_e)), \
        emotion_shift(np.concatenate(emo_all_g), np.concatenate(emo_all_e))
    mean = {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}
    return {
        "takes": len(rows), "frames": int(sum(len(x) for x in emo_all_p)),
        **{k: round(v, 3) for k, v in mean.items()},
        "animator_spread_lve": round(float(np.mean(spread)), 3),
        "lve_over_spread": round(mean["lve"] / float(np.mean(spread)), 3),
        "bilabials": n_bil,
        "bilabial_closure_pred": round(sum(closure_p) / max(n_bil, 1), 3),
        "bilabial_closure_gt": round(sum(closure_gt) / max(n_bil, 1), 3),
        "emotion_shift": {e: {"pred": round(sp.get(e, float("nan")), 3), "gt": round(sg.get(e, float("nan")), 3)}
                          for e in sg},
    }


# ---- real speech ----------------------------------------------------------------------

def evaluate_real_speech(generator, steps: int | None = None) -> dict:
    """Bilabial closure and sync offset on the bundled LibriVox recordings (public domain)."""
    from ..base.audio import load_audio
    segments = json.loads(SAMPLE_SPEECH.with_suffix(".json").read_text())
    audio = load_audio(SAMPLE_SPEECH)
    vm = VertexMetrics()
    closures, offsets, n_bil, heads = [], [], 0, []
    for seg in segments:
        a = int(seg["start_s"] * 16000)
        clip = audio[a: a + int(seg["duration_s"] * 16000)]
        phones = align_phones(clip, seg["text"])
        m = generator.generate(clip, steps=steps, seed=0).motion
        gap = vm.gap(m.values)
        c, nb = bilabial_closure(gap, phones)
        if nb:
            closures.append(c * nb)
            n_bil += nb
        offsets.append(sync_offset_ms(gap, phones))
        heads.append(m.values[:, 52:55])
    live = head_liveliness(np.concatenate(heads))
    return {"clips": len(segments), "seconds": round(len(audio) / 16000, 1), "bilabials": n_bil,
            "bilabial_closure": round(sum(closures) / max(n_bil, 1), 3),
            "sync_offset_ms": round(float(np.mean(offsets)), 1),
            "sync_offset_ms_per_clip": [round(o, 1) for o in offsets],
            **{k: round(v, 3) for k, v in live.items()}}
