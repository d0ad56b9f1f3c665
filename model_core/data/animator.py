"""The procedural animator: timed phones + emotion + speaking style -> ARKit-52 + head rotation.

It is the teacher of the default model, so everything the model can learn is here:
- visemes with Cohen-Massaro style coarticulation (each phone pulls each channel toward its
  target with a dominance that decays in time; lip rounding spreads further, so lips anticipate
  /uw w/ across consonants), full lip closure on /p b m/ solved exactly on the bundled head's lip
  gap, /f v/ lower lip rolled under the teeth, jaw opening by vowel height, tongue on /th dh l/;
- 8 emotions with intensity 0..1 (FACS-style resting recipes plus articulation amplitude,
  tension and speed), allowed to change within an utterance;
- per-speaker speaking style (`Style`) drawn from a distribution;
- prosody-driven head motion (nods on stressed syllables scaled by loudness, turns at phrase
  boundaries, slow drift), blinks (more at pauses) and small gaze shifts.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from ..base.head import load_head
from ..base.motion import ARKIT_HEAD_LAYOUT, ARKIT_INDEX, ARKIT_NAMES, Motion
from ..base.signals import HEAD_SMOOTHING_FRAMES, LOUD, gaussian_smooth
from ..base.vocabulary import EMOTIONS, FPS, STYLE_FIELDS
from ..inference.gestures import BROW_RAISE, blink_curve, blink_times, brow_raise_curve
from .tts import VOWELS, Phone

_K = ARKIT_INDEX


def _vec(**w) -> np.ndarray:
    """52-vector from name=weight; `X_` sets both Left and Right."""
    v = np.zeros(52, np.float32)
    for name, val in w.items():
        if name.endswith("_"):
            v[_K[name[:-1] + "Left"]] = val
            v[_K[name[:-1] + "Right"]] = val
        else:
            v[_K[name]] = val
    return v


# ---- visemes: phone -> (target, dominance, spread in s) -------------------------------
# jaw opening follows vowel height (low vowels open most); rounding via pucker/funnel.
_VOWEL_SHAPES = {
    "aa": _vec(jawOpen=0.55, mouthLowerDown_=0.25), "ae": _vec(jawOpen=0.48, mouthStretch_=0.25, mouthLowerDown_=0.2),
    "ah": _vec(jawOpen=0.42, mouthLowerDown_=0.15), "ao": _vec(jawOpen=0.45, mouthFunnel=0.35),
    "eh": _vec(jawOpen=0.33, mouthStretch_=0.2), "er": _vec(jawOpen=0.22, mouthFunnel=0.35, mouthPucker=0.2),
    "ih": _vec(jawOpen=0.22, mouthStretch_=0.25), "iy": _vec(jawOpen=0.13, mouthStretch_=0.4, mouthSmile_=0.12),
    "uh": _vec(jawOpen=0.24, mouthFunnel=0.35, mouthPucker=0.2),
    "uw": _vec(jawOpen=0.14, mouthPucker=0.8, mouthFunnel=0.35),
    "ax": _vec(jawOpen=0.28), "ow": _vec(jawOpen=0.34, mouthFunnel=0.55, mouthPucker=0.3),
}
_DIPHTHONGS = {"aw": ("aa", "uw"), "ay": ("aa", "iy"), "ey": ("eh", "iy"), "oy": ("ao", "iy")}
_CONSONANTS = {
    "p": (_vec(jawOpen=0.06, mouthPress_=0.35, mouthRollLower=0.1, mouthRollUpper=0.1), 6.0),
    "b": (_vec(jawOpen=0.06, mouthPress_=0.25, mouthRollLower=0.08), 6.0),
    "m": (_vec(jawOpen=0.05, mouthPress_=0.3), 6.0),
    "f": (_vec(jawOpen=0.1, mouthRollLower=0.65, mouthUpperUp_=0.2, mouthClose=0.05), 4.0),
    "v": (_vec(jawOpen=0.1, mouthRollLower=0.6, mouthUpperUp_=0.15, mouthClose=0.05), 4.0),
    "th": (_vec(jawOpen=0.14, tongueOut=0.35), 2.5), "dh": (_vec(jawOpen=0.13, tongueOut=0.25), 2.0),
    "t": (_vec(jawOpen=0.14, mouthStretch_=0.1), 1.2), "d": (_vec(jawOpen=0.15, mouthStretch_=0.08), 1.2),
    "n": (_vec(jawOpen=0.14), 1.0), "l": (_vec(jawOpen=0.18, tongueOut=0.08), 1.0),
    "s": (_vec(jawOpen=0.06, mouthStretch_=0.25), 2.0), "z": (_vec(jawOpen=0.07, mouthStretch_=0.2), 1.8),
    "sh": (_vec(jawOpen=0.1, mouthFunnel=0.55, mouthPucker=0.35), 3.0),
    "zh": (_vec(jawOpen=0.1, mouthFunnel=0.5, mouthPucker=0.3), 3.0),
    "ch": (_vec(jawOpen=0.1, mouthFunnel=0.5, mouthPucker=0.35), 3.0),
    "jh": (_vec(jawOpen=0.1, mouthFunnel=0.5, mouthPucker=0.3), 3.0),
    "k": (_vec(jawOpen=0.2), 0.8), "g": (_vec(jawOpen=0.2), 0.8), "ng": (_vec(jawOpen=0.16), 0.8),
    "hh": (_vec(jawOpen=0.25), 0.3), "r": (_vec(jawOpen=0.15, mouthPucker=0.4, mouthFunnel=0.2), 2.0),
    "w": (_vec(jawOpen=0.1, mouthPucker=0.85, mouthFunnel=0.3), 4.0),
    "y": (_vec(jawOpen=0.1, mouthStretch_=0.25), 1.5),
    "sil": (_vec(), 0.6),
}
BILABIALS = frozenset("p b m".split())
_ROUNDING = [_K["mouthPucker"], _K["mouthFunnel"]]

# ---- emotions: FACS-style resting face and articulation/voice changes at intensity 1 ------
_EMOTION_REST = {
    "neutral": _vec(),
    "happy": _vec(mouthSmile_=0.65, cheekSquint_=0.45, eyeSquint_=0.25, mouthDimple_=0.15),  # AU6+12
    "sad": _vec(browInnerUp=0.75, browDown_=0.25, mouthFrown_=0.55, mouthShrugLower=0.25,
                eyeBlink_=0.15, mouthPress_=0.1),                                          # AU1+4+15+17
    "angry": _vec(browDown_=0.8, eyeSquint_=0.35, eyeWide_=0.2, mouthPress_=0.35,
                  noseSneer_=0.3, jawForward=0.1, mouthRollUpper=0.1),                     # AU4+5+7+23
    "surprised": _vec(browInnerUp=0.8, browOuterUp_=0.8, eyeWide_=0.75, jawOpen=0.12),    # AU1+2+5+26
    "fearful": _vec(browInnerUp=0.75, browOuterUp_=0.4, browDown_=0.3, eyeWide_=0.6,
                    mouthStretch_=0.5, mouthFrown_=0.1),                                   # AU1+2+4+5+20
    "disgusted": _vec(noseSneer_=0.7, mouthUpperUp_=0.45, browDown_=0.4, cheekSquint_=0.3,
                      mouthFrown_=0.3, mouthShrugUpper=0.2),                               # AU9+10+15
    "contempt": _vec(mouthDimpleLeft=0.55, mouthSmileLeft=0.35, mouthPressLeft=0.15,
                     eyeSquint_=0.1, browDownRight=0.15),                                  # unilateral AU14
}
# (articulation amplitude, transition tension, head motion amount, head pitch offset (rad),
#  head roll offset (rad))
_EMOTION_DYNAMICS = {
    "neutral": (1.0, 1.0, 1.0, 0.0, 0.0), "happy": (1.12, 1.05, 1.2, -0.03, 0.0),
    "sad": (0.72, 0.8, 0.6, 0.1, 0.0), "angry": (1.25, 1.35, 1.35, 0.05, 0.0),
    "surprised": (1.15, 1.1, 1.1, -0.07, 0.0), "fearful": (0.9, 1.25, 0.8, -0.04, 0.0),
    "disgusted": (0.9, 1.0, 0.9, -0.02, -0.04), "contempt": (0.85, 0.9, 0.7, -0.06, 0.07),
}
# voice changes at intensity 1: pitch, pitch range, speaking rate multipliers
EMOTION_PROSODY = {
    "neutral": (1.0, 1.0, 1.0), "happy": (1.15, 1.35, 1.06), "sad": (0.88, 0.55, 0.82),
    "angry": (1.06, 1.45, 1.12), "surprised": (1.25, 1.6, 1.0), "fearful": (1.2, 0.85, 1.18),
    "disgusted": (0.94, 0.8, 0.9), "contempt": (0.93, 0.7, 0.88),
}


def emotion_prosody(emotion: np.ndarray) -> dict:
    """Voice multipliers for an emotion intensity vector (8,), interpolating from neutral."""
    out = np.ones(3)
    for k, e in enumerate(EMOTIONS):
        out *= 1 + emotion[k] * (np.array(EMOTION_PROSODY[e]) - 1)
    return {"pitch": float(out[0]), "range": float(out[1]), "rate": float(out[2])}


@dataclass
class Style:
    """A speaker's speaking style; `sample` draws one, every field is a corpus label."""
    articulation: float = 1.0   # mouth movement amplitude
    asymmetry: float = 0.0      # >0: the left side moves more
    smile_bias: float = 0.0     # resting smile
    brow_activity: float = 0.5  # brow raises on emphasis
    blink_rate: float = 15.0    # blinks per minute
    head_amount: float = 1.0    # head motion amplitude
    head_rhythm: float = 0.5    # probability of a nod on a stressed syllable
    tempo: float = 1.0          # coarticulation spread (sloppier > 1)

    @staticmethod
    def sample(rng: np.random.Generator) -> "Style":
        return Style(articulation=float(rng.uniform(0.7, 1.3)),
                     asymmetry=float(np.clip(rng.normal(0, 0.12), -0.3, 0.3)),
                     smile_bias=float(rng.uniform(0.0, 0.25) * (rng.random() < 0.6)),
                     brow_activity=float(rng.uniform(0.0, 1.0)),
                     blink_rate=float(rng.uniform(8, 26)),
                     head_amount=float(rng.uniform(0.35, 1.7)),
                     head_rhythm=float(rng.uniform(0.2, 0.9)),
                     tempo=float(rng.uniform(0.8, 1.25)))

    def as_array(self) -> np.ndarray:
        return np.array([getattr(self, f.name) for f in fields(self)], np.float32)

    def as_dict(self) -> dict:
        return asdict(self)


assert STYLE_FIELDS == tuple(f.name for f in fields(Style)), "the vocabulary's style labels are Style's fields"


def _expand_phones(phones: list[Phone]) -> list[tuple[str, float, float, np.ndarray, float, float]]:
    """Phones -> articulation segments (name, start, end, target, dominance, spread)."""
    segs = []
    for p in phones:
        if p.symbol in _DIPHTHONGS:
            a, b = _DIPHTHONGS[p.symbol]
            mid = p.start + 0.55 * (p.end - p.start)
            segs.append((a, p.start, mid, _VOWEL_SHAPES[a], 1.0, 0.06))
            segs.append((b, mid, p.end, _VOWEL_SHAPES[b] * 0.8, 1.0, 0.06))
        elif p.symbol in _VOWEL_SHAPES:
            segs.append((p.symbol, p.start, p.end, _VOWEL_SHAPES[p.symbol], 1.0, 0.06))
        else:
            target, dom = _CONSONANTS.get(p.symbol, _CONSONANTS["sil"])
            if p.symbol == "sil" and p.end - p.start > 0.25:
                dom = 3.0  # long pauses pull the mouth back to rest
            segs.append((p.symbol, p.start, p.end, target, dom, 0.045))
    return segs


def articulate(phones: list[Phone], n_frames: int, style: Style, tension: np.ndarray,
               fps: float = FPS) -> tuple[np.ndarray, np.ndarray]:
    """Coarticulated mouth weights (T x 52) and the bilabial closure strength (T,)."""
    t = np.arange(n_frames) / fps
    segs = _expand_phones(phones)
    num = np.zeros((n_frames, 52), np.float32)
    den = np.zeros((n_frames, 52), np.float32) + 1e-6
    closure = np.zeros(n_frames, np.float32)
    # tension (from emotion) sharpens transitions; tempo (style) loosens them
    sharp = np.interp(t, t, tension) / style.tempo
    for name, s, e, target, dom, spread in segs:
        c = 0.5 * (s + e)
        half = 0.5 * (e - s)
        d = np.maximum(np.abs(t - c) - half * 0.6, 0.0)  # flat top over the phone's core
        # anticipation (before the phone) reaches further than carry-over
        sp = np.where(t < c, spread * 1.3, spread) / sharp
        base = np.exp(-(d / sp) ** 2)
        w = np.repeat(base[:, None], 52, axis=1) * dom
        if name in ("uw", "w", "ow", "sh", "zh", "ch", "jh", "r"):
            # lip rounding spreads across neighbouring consonants
            sp2 = np.where(t < c, spread * 3.0, spread * 2.0) / sharp
            w[:, _ROUNDING] = np.exp(-(d / sp2) ** 2)[:, None] * dom * 1.5
        num += w * target
        den += w
        if name in BILABIALS:
            inside = (t >= s - 0.5 / fps) & (t <= e + 0.5 / fps)
            inside[int(np.clip(round(c * fps), 0, n_frames - 1))] = True
            closure = np.maximum(closure, inside.astype(np.float32))
            closure = np.maximum(closure, 0.6 * np.exp(-(np.maximum(np.abs(t - c) - half, 0) / 0.03) ** 2))
    return num / den, closure


def animate(phones: list[Phone], n_frames: int, emotion: np.ndarray, style: Style,
            rng: np.random.Generator, energy: np.ndarray | None = None,
            fps: float = FPS) -> Motion:
    """The whole face and head for one utterance.

    emotion: T x 8 intensities (columns in EMOTIONS order), may change over time.
    energy: T loudness (see `frame_energy`), drives nod strength; ones if None.
    """
    T = n_frames
    energy = np.ones(T, np.float32) if energy is None else energy
    emo = np.asarray(emotion, np.float32)
    dyn = np.array([_EMOTION_DYNAMICS[e] for e in EMOTIONS], np.float32)  # 8 x 5
    # multiplicative dynamics interpolate from 1 by intensity; offsets add
    amp = np.prod(1 + emo[:, :, None] * (dyn[None, :, :3] - 1), axis=1)  # T x 3
    offs = emo @ dyn[:, 3:]                                                # T x 2
    rest = emo @ np.stack([_EMOTION_REST[e] for e in EMOTIONS])            # T x 52

    mouth, closure = articulate(phones, T, style, tension=amp[:, 1], fps=fps)
    mouth = mouth * (amp[:, :1] * style.articulation)
    # asymmetry: one side's mouth moves more
    left = np.array(["Left" in n for n in ARKIT_NAMES])
    right = np.array(["Right" in n for n in ARKIT_NAMES])
    mouth[:, left] *= 1 + style.asymmetry
    mouth[:, right] *= 1 - style.asymmetry
    w = mouth + rest
    w += style.smile_bias * _vec(mouthSmile_=1.0, cheekSquint_=0.4)

    # brows rise on emphasis, by style
    nods, brow = _prosody_events(phones, T, energy, style, rng, fps)
    for name, height in BROW_RAISE.items():
        w[:, _K[name]] += height * style.brow_activity * brow

    w = _add_blinks_and_gaze(w, phones, style, rng, fps)
    w = np.clip(w, 0.0, 1.0)
    w = _close_lips(w, closure)

    head = _head_motion(phones, T, nods, style, amp[:, 2], offs, rng, fps)
    return Motion(fps, ARKIT_HEAD_LAYOUT, np.concatenate([w, head], axis=1).astype(np.float32))


def _close_lips(w: np.ndarray, closure: np.ndarray) -> np.ndarray:
    """On bilabials, raise mouthClose until the bundled head's lips touch (gap 0)."""
    g0, dg = load_head().lip_gap_model()
    k = _K["mouthClose"]
    gap = g0 + w @ dg  # mm, positive = open
    need = np.clip(gap / -dg[k], 0.0, 1.0)  # mouthClose that removes this gap
    w = w.copy()
    w[:, k] = np.clip(w[:, k] + closure * need, 0.0, 1.0)
    # a sealed mouth presses a little
    for side in ("Left", "Right"):
        j = _K["mouthPress" + side]
        w[:, j] = np.clip(w[:, j] + 0.15 * closure, 0, 1)
    return w


def _prosody_events(phones, T, energy, style, rng, fps):
    """Nod impulses (pitch) on stressed syllables and brow raises on loud emphasis."""
    nods = np.zeros(T, np.float32)
    brow = np.zeros(T, np.float32)
    for p in phones:
        if not (p.stressed and p.symbol in VOWELS):
            continue
        i = int(min(T - 1, p.start * fps))
        loud = float(energy[i: i + 3].mean()) if i < T else 1.0
        if rng.random() < style.head_rhythm:
            nods[i] += loud * rng.uniform(0.6, 1.2)
        if loud > LOUD and rng.random() < 0.5:
            brow[i] += 1.0
    # a nod: the head dips and comes back over ~0.35 s
    kt = np.arange(0, int(0.5 * fps)) / fps
    kernel = (kt / 0.12) * np.exp(1 - kt / 0.12)
    nod_curve = np.convolve(nods, kernel)[:T]
    return nod_curve, brow_raise_curve(brow, fps)


def _add_blinks_and_gaze(w, phones, style, rng, fps):
    T = len(w)
    dur = T / fps
    pauses = [(p.start, p.end) for p in phones if p.symbol == "sil"]
    blink = blink_curve(blink_times(dur, style.blink_rate, pauses, rng), T, fps)
    for side in ("Left", "Right"):
        j = _K["eyeBlink" + side]
        w[:, j] = w[:, j] + (1.0 - w[:, j]) * blink
    # gaze: small saccades every 1-3 s, held in between
    gx, gy = np.zeros(T), np.zeros(T)
    tcur, x, y = 0.0, 0.0, 0.0
    while tcur < dur:
        i = int(tcur * fps)
        gx[i:], gy[i:] = x, y
        x, y = rng.normal(0, 0.12), rng.normal(0, 0.08)
        tcur += rng.uniform(0.8, 3.0)
    gx, gy = gaussian_smooth(gx, 0.8), gaussian_smooth(gy, 0.8)
    # +x = look to the character's left: left eye looks out, right eye looks in
    w[:, _K["eyeLookOutLeft"]] += np.clip(gx, 0, None)
    w[:, _K["eyeLookInRight"]] += np.clip(gx, 0, None)
    w[:, _K["eyeLookInLeft"]] += np.clip(-gx, 0, None)
    w[:, _K["eyeLookOutRight"]] += np.clip(-gx, 0, None)
    for side in ("Left", "Right"):
        w[:, _K["eyeLookUp" + side]] += np.clip(gy, 0, None)
        w[:, _K["eyeLookDown" + side]] += np.clip(-gy, 0, None) + 0.5 * blink
    return w


def _head_motion(phones, T, nods, style, amount, offsets, rng, fps):
    """headPitch, headYaw, headRoll in radians (pitch > 0 looks down)."""
    t = np.arange(T) / fps
    drift = np.zeros((T, 3))
    for axis, scale in enumerate((0.025, 0.04, 0.015)):
        for f in rng.uniform(0.05, 0.35, size=3):
            drift[:, axis] += scale / 2 * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    # turns at phrase boundaries: a new yaw/roll target after each pause, eased in
    turn = np.zeros((T, 2))
    for p in phones:
        if p.symbol == "sil" and p.end - p.start > 0.15 and p.start > 0.1:
            turn[int(p.start * fps):] = rng.normal(0, [0.06, 0.025])
    turn = gaussian_smooth(turn, 0.25 * fps)
    head = drift
    head[:, 0] += 0.06 * nods
    head[:, 1:] += turn
    head *= (style.head_amount * amount)[:, None]
    head[:, 0] += offsets[:, 0]
    head[:, 2] += offsets[:, 1]
    return gaussian_smooth(head, HEAD_SMOOTHING_FRAMES).astype(np.float32)
