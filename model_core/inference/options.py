"""What a generation is asked for, and what it gives back.

`GenerationOptions` is the one description of a generation beside its audio: the Python API,
the CLI and the Blender panel all build one. `Generation` is the result: the motion and what
was decided along the way (matched identities, gains, timings), returned to the caller rather
than kept on a generator that other threads share.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from ..base.errors import LaliaError
from ..base.motion import Motion
from ..base.vocabulary import EMOTIONS


@dataclass(frozen=True, eq=False)
class GenerationOptions:
    """Everything but the audio. Defaults are the shipped model's defaults.

    emotion: {'happy': 0.7, ...}, an (8,) vector, or a T x 8 curve (per frame at 25 fps);
        mixed through the learned emotion prototypes into an emotion code.
    emotion_from_voice: infer the emotion curve from the audio (used when no emotion given).
    emotion_reference: a Motion or motion file whose emotion code is copied (overrides the rest).
    style: None/"auto" (the identity that best matches the voice), "average", a preset name,
        reference motion (npz/csv/Motion) or a style vector.
    steps, sampler, guidance: the sampler (None: the model's defaults).
    seed: the variation seed (noise, blinks and brow flashes).
    head_motion, expressiveness, brow_activity: style sliders, 0..2 (1 = as the style is),
        each moving the style along its fitted direction; head_motion and brow_activity also
        scale the head movement and the brow raises by their value times the style's own
        amount (a preset's or the matched identity's; see `amplitude.py`), and brow_activity
        sets the height of the eyebrow flashes on loud syllables (`gestures.py`).
    blink_rate: 0..2 x the usual blink rate of the blink layer (see `gestures.py`).
    match_reference: with a motion reference as the style, give the generated head, mouth and
        brows the reference's amount of movement (the denoiser alone follows it only in part).
    hold_closures: close the lips wherever the words' neutral mouth closes them briefly, so no
        emotion opens a /p b m/ (see `closures.py`); off gives the model's mouth alone.
    strength: {region: multiplier} for "mouth", "brows", "eyes", "cheeks", "head" (0..3, 1 =
        as generated): a last layer over the finished motion, on top of the sliders
        (`strength.py`).
    keep, frames: regenerate only frames [a, b) of `keep` (this audio's motion at the model's
        fps, e.g. an earlier generation): every other frame of the result is `keep`'s, bit for
        bit, and the new frames are sampled from the kept frames before them and blended into
        the kept frames after them (`ranges.py`). The other options (a new seed, emotion or
        style) then apply to the range alone.
    transcript: the line's dialogue text, when known. It is force-aligned to the audio
        (`transcript.py`); a usable alignment gives the closure layer the aligned /p b m/ and,
        for models with a phone path, the content prior the per-frame phones. Text that does
        not fit the audio (another line, another language) is left out with a warning in
        `Generation.info["warnings"]`; None, "" or whitespace: the audio alone.
    encoder_fit: encode audio shorter than 30 s from only the frames it needs (rounded up to a
        second), not a zero-padded 30 s window, and pass the features through the fit adapter
        that maps them to the padded window's (`SpeechEncoder.encode(fit=True)`): a short line's
        encoder cost follows its length. Off by default here (the padded window the models were
        trained on, bit for bit); `lalia batch` turns it on (docs/batch.md has the cost and the
        measured difference on the real-speech benchmark).
    """
    emotion: Any = None
    emotion_from_voice: bool = False
    emotion_reference: Any = None
    style: Any = None
    steps: int | None = None
    seed: int = 0
    sampler: str | None = None
    guidance: dict | None = None
    head_motion: float = 1.0
    expressiveness: float = 1.0
    brow_activity: float = 1.0
    blink_rate: float = 1.0
    match_reference: bool = True
    hold_closures: bool = True
    strength: dict | None = None
    keep: Motion | None = None
    frames: tuple[int, int] | None = None
    transcript: str | None = None
    encoder_fit: bool = False

    def replace(self, **changes) -> GenerationOptions:
        """A copy with some options changed; unknown names are an error, not ignored."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise LaliaError(f"Unknown generation option(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)


def parse_emotion(text) -> dict | None:
    """'happy=0.6;sad=0.2' (a manifest's emotion column, a sound strip's lalia_emotion; or a
    JSON object in JSONL) -> {'happy': 0.6, 'sad': 0.2}; None for nothing."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    items = text.items() if isinstance(text, dict) else \
        [p.split("=", 1) if "=" in p else (p, None) for p in re.split(r"[;,]", str(text)) if p.strip()]
    out = {}
    for name, value in items:
        name = str(name).strip()
        if name not in EMOTIONS:
            raise LaliaError(f"unknown emotion {name!r}; choose from {', '.join(EMOTIONS)}")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise LaliaError(f"emotion {name!r} needs an intensity between 0 and 1 (e.g. {name}=0.6)")
        if not 0.0 <= v <= 1.0:
            raise LaliaError(f"emotion {name}={v:g}: intensity must be between 0 and 1")
        out[name] = v
    return out


@dataclass
class Timings:
    """Seconds spent loading audio, encoding speech and sampling (the priors included)."""
    audio: float = 0.0
    encoder: float = 0.0
    sampler: float = 0.0
    extra: dict = field(default_factory=dict)


@dataclass
class Generation:
    """A generation's result: the motion, what was decided (matched identities, the emotion
    mix, the gains of the amplitude layer) and how long each stage took."""
    motion: Motion
    info: dict = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)
