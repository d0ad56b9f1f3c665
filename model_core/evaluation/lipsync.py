"""Lip-sync metrics on real speech: a motion (ARKit channels) against the phones a forced aligner
found in the audio, measured on the bundled head's inner lip gap (mm).

- bilabial closure: share of /p b m/ whose minimum lip gap over the phone, widened by
  `WIDEN_S` each side, is under `CLOSED_MM` (the aligner's boundaries are ~10-20 ms off);
- openness r: Pearson r between each speech phone's mean lip gap and its phonetic openness
  (`OPENNESS`: open vowels high, close vowels lower, bilabials 0); pauses are left out, where
  a face may rest open or closed;
- sync lag (ms): the lag maximising the cross-correlation of the per-frame lip gap with the
  per-frame expected openness (the table laid out by the alignment, pauses 0); > 0 = the
  mouth is late. Both signals are sampled every `LAG_STEP_S` and the peak is refined by a
  parabola, so the lag is not limited to whole 40 ms frames;
- rounding contrast: mean mouthPucker + mouthFunnel on rounded vowels (and /w/) minus on
  spread vowels;
- vowel opening (mm): mean over vowels of the largest lip gap within the vowel.

`clip_stats` keeps the per-phone numbers of one clip; `summarize` pools any number of clips,
every phone weighing the same (and the cross-correlations summed, so short clips don't get a
lag of their own that counts as much as a long one's).
"""
from __future__ import annotations

import numpy as np

from ..base.motion import ARKIT_INDEX, Motion
from ..base.signals import peak_position
from ..data.tts import VOWELS
from ..inference.closures import lip_gap

CLOSED_MM = 1.5     # the benchmark's "lips closed" (stricter than the closure layer's own threshold)
WIDEN_S = 0.02      # each side of a bilabial, for the aligner's boundary error
LAG_STEP_S = 0.01   # the sync lag's sampling step
MAX_LAG_S = 0.2
BILABIALS = frozenset({"p", "b", "m"})
ROUNDED = frozenset({"uw", "uh", "ow", "ao", "er", "w"})
SPREAD = frozenset({"iy", "ih", "ey", "eh", "ae"})
# how far each phone opens the lips, 0..1: vowels by height (diphthongs by their open start);
# "ah" is both the open-mid /ʌ/ and the schwa (the aligner's dictionary has no stress), so it
# sits between them; consonants by how far their place lets the jaw drop, the postalveolars
# with their flared lips above /s z/; bilabials close
OPENNESS = {
    "aa": 1.0, "ae": 0.9, "aw": 0.9, "ay": 0.9, "ao": 0.8, "oy": 0.7, "eh": 0.65, "ah": 0.6, "ow": 0.6,
    "ey": 0.55, "ax": 0.5, "er": 0.45, "ih": 0.4, "uh": 0.4, "iy": 0.3, "uw": 0.3,
    "hh": 0.5, "k": 0.35, "g": 0.35, "sh": 0.35, "zh": 0.35, "ch": 0.35, "jh": 0.35, "ng": 0.3, "l": 0.3,
    "t": 0.3, "d": 0.3, "n": 0.3, "y": 0.25, "r": 0.25, "th": 0.25, "dh": 0.25, "s": 0.2, "z": 0.2,
    "w": 0.15, "f": 0.1, "v": 0.1, "p": 0.0, "b": 0.0, "m": 0.0, "sil": 0.0,
}
SENSITIVITY_WIDEN_S = (0.0, 0.02, 0.04)  # the closure window's widening, for `closure_sensitivity`
METRICS = ("bilabial_closure", "openness_r", "sync_lag_ms", "rounding_contrast", "vowel_opening_mm")


def _gap_and_rounding(motion: Motion) -> tuple[np.ndarray, np.ndarray]:
    gap = lip_gap(motion.values, motion.channels)
    if gap is None:
        raise ValueError("lip-sync metrics need a motion whose channels start with the 52 ARKit blendshapes")
    v = motion.values
    return gap, v[:, ARKIT_INDEX["mouthPucker"]] + v[:, ARKIT_INDEX["mouthFunnel"]]


def expected_openness(phones, duration_s: float, step_s: float = LAG_STEP_S) -> np.ndarray:
    """The table's openness laid out in time by the alignment, sampled every `step_s`."""
    n = int(np.ceil(duration_s / step_s))
    out = np.zeros(n)
    for sym, start, end, *_ in phones:
        a, b = int(round(start / step_s)), int(round(end / step_s))
        out[max(0, a):min(n, b)] = OPENNESS.get(sym, 0.3)
    return out


def _xcorr(gap_fine: np.ndarray, expect: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum over t of z(gap)[t + lag] * z(expect)[t] for lag in -k..k, and the number of terms."""
    n = min(len(gap_fine), len(expect))
    g, e = gap_fine[:n], expect[:n]
    g = (g - g.mean()) / (g.std() + 1e-9)
    e = (e - e.mean()) / (e.std() + 1e-9)
    sums, counts = np.zeros(2 * k + 1), np.zeros(2 * k + 1)
    for i, lag in enumerate(range(-k, k + 1)):
        if lag >= 0:
            prod = g[lag:] * e[:n - lag]
        else:
            prod = g[:n + lag] * e[-lag:]
        sums[i], counts[i] = prod.sum(), len(prod)
    return sums, counts


def clip_stats(motion: Motion, phones) -> dict:
    """The per-phone measurements of one clip (pool them with `summarize`)."""
    gap, rounding = _gap_and_rounding(motion)
    fps = motion.fps
    T = len(gap)
    t = np.arange(T) / fps
    bil_min, sym_open, gap_mean, rnd, spr, vmax, vowel_open, speech = [], [], [], [], [], [], [], []
    for sym, start, end, *_ in phones:
        if sym in BILABIALS:
            mins = []
            for widen in (WIDEN_S,) + SENSITIVITY_WIDEN_S:
                a, b = start - widen, end + widen
                inside = gap[(t >= a) & (t <= b)]
                ends = np.interp([a, b], t, gap)  # the gap at the window's edges, between frames
                mins.append(float(min(inside.min() if len(inside) else np.inf, ends.min())))
            bil_min.append(mins)
        sel = (t >= start) & (t < end)
        if not sel.any():  # a phone shorter than a frame: the frame nearest its middle
            sel = np.zeros(T, bool)
            sel[int(np.clip(round(0.5 * (start + end) * fps), 0, T - 1))] = True
        if sym != "sil":
            sym_open.append(OPENNESS.get(sym, 0.3))
            gap_mean.append(float(gap[sel].mean()))
            speech.append(sym)
        if sym in ROUNDED:
            rnd.append(float(rounding[sel].mean()))
        elif sym in SPREAD:
            spr.append(float(rounding[sel].mean()))
        if sym in VOWELS:
            vmax.append(float(gap[sel].max()))
            vowel_open.append(OPENNESS.get(sym, 0.3))
    # the lag: both signals on a fine grid; the gap interpolated linearly between frames
    dur = T / fps
    fine_t = np.arange(int(np.ceil(dur / LAG_STEP_S))) * LAG_STEP_S
    k = int(round(MAX_LAG_S / LAG_STEP_S))
    sums, counts = _xcorr(np.interp(fine_t, t, gap), expected_openness(phones, dur), k)
    # bilabial_min: per bilabial, the minimum gap with WIDEN_S, then each SENSITIVITY_WIDEN_S
    return {"bilabial_min": bil_min, "openness": sym_open, "gap_mean": gap_mean, "phones": speech,
            "rounded": rnd, "spread": spr,
            "vowel_max": vmax, "vowel_openness": vowel_open, "xcorr_sum": sums, "xcorr_n": counts,
            "speed_sum": float(np.abs(np.diff(gap)).sum() * fps), "speed_n": max(0, T - 1)}


def peak_lag_ms(sums: np.ndarray, counts: np.ndarray) -> float:
    """The lag (ms) at the peak of the mean cross-correlation, refined by a parabola."""
    corr = sums / np.maximum(counts, 1)
    k = (len(corr) - 1) // 2
    return float((peak_position(corr) - k) * LAG_STEP_S * 1000.0)


def _pearson(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or x.std() < 1e-9 or y.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def summarize(stats: list[dict]) -> dict:
    """The five metrics over the pooled phones of `stats` (each from `clip_stats`)."""
    cat = lambda key: [x for s in stats for x in s[key]]
    closed = [m[0] < CLOSED_MM for m in cat("bilabial_min")]
    rnd, spr, vmax = cat("rounded"), cat("spread"), cat("vowel_max")
    sums = np.sum([s["xcorr_sum"] for s in stats], axis=0)
    counts = np.sum([s["xcorr_n"] for s in stats], axis=0)
    nan = float("nan")
    return {
        "bilabial_closure": float(np.mean(closed)) if closed else nan,
        "openness_r": _pearson(cat("openness"), cat("gap_mean")),
        "sync_lag_ms": peak_lag_ms(sums, counts),
        "rounding_contrast": float(np.mean(rnd) - np.mean(spr)) if rnd and spr else nan,
        "vowel_opening_mm": float(np.mean(vmax)) if vmax else nan,
        "bilabials": len(closed), "phones": len(cat("openness")), "vowels": len(vmax),
    }


def closure_sensitivity(stats: list[dict], thresholds=(1.0, 1.5, 2.0)) -> dict:
    """Bilabial closure at other thresholds (mm) and window widenings (ms), pooled."""
    mins = np.array([m[1:] for s in stats for m in s["bilabial_min"]]).reshape(-1, len(SENSITIVITY_WIDEN_S))
    return {f"{thr:g}mm_{1000 * w:.0f}ms": float((mins[:, j] < thr).mean()) if len(mins) else float("nan")
            for thr in thresholds for j, w in enumerate(SENSITIVITY_WIDEN_S)}


def vowel_openness_r(stats: list[dict]) -> float:
    """Openness r over the vowels alone (each vowel's largest gap against the table)."""
    return _pearson([x for s in stats for x in s["vowel_openness"]], [x for s in stats for x in s["vowel_max"]])


def openness_r_per_phone_type(stats: list[dict]) -> float:
    """Openness r over phone *types*: each phone symbol's mean lip gap over all its occurrences
    against the table. A reading of "the mean lip gap per phone" that averages away the
    token-to-token spread: it says how well a system's mouth for each phone agrees with the
    table, not whether each occurrence opens on time (the procedural animator on the true
    phones scores lower here than the model; docs/lipsync_benchmark.md)."""
    syms = np.array([x for s in stats for x in s["phones"]])
    gaps = np.array([x for s in stats for x in s["gap_mean"]])
    types = sorted(set(syms.tolist()))
    return _pearson([OPENNESS.get(t, 0.3) for t in types], [gaps[syms == t].mean() for t in types])


def lip_speed(stats: list[dict]) -> float:
    """Mean |d gap / dt| (mm/s) over all frames: how much the lips move at all."""
    return sum(s["speed_sum"] for s in stats) / max(1, sum(s["speed_n"] for s in stats))


def phone_gap_agreement(stats: list[dict], reference: list[dict]) -> float:
    """Pearson r of the per-phone mean lip gaps of two renditions of the same clips (same phones)."""
    return _pearson([x for s in stats for x in s["gap_mean"]], [x for s in reference for x in s["gap_mean"]])


def measure(motion: Motion, phones) -> dict:
    """The five metrics of one clip."""
    return summarize([clip_stats(motion, phones)])
