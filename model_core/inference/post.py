"""The post-sampling layers, in order, over the sampled channel values.

Plain code after the sampler keeps the lips closed where the words close them (`closures.py`),
smooths and scales the head, the mouth and the brow raises (`amplitude.py`) and adds blinks and
eyebrow flashes (`gestures.py`): what a few-step sampler averages away or the denoiser follows
only in part.
"""
from __future__ import annotations

import numpy as np

from ..base.motion import Motion
from ..base.signals import SPEECH_ENERGY, frame_energy
from .amplitude import (
    articulation_activity,
    brow_raise,
    head_activity,
    reference_gain,
    scale_articulation,
    scale_brow_raises,
    scale_head,
    shift_sides,
    smooth_head,
)
from .closures import keep_closures
from .gestures import add_blinks, add_brow_raises
from .options import GenerationOptions


def apply_post_layers(values: np.ndarray, words_mouth: np.ndarray, channels: tuple[str, ...], fps: float,
                      wav: np.ndarray, options: GenerationOptions, amounts: dict, reference: Motion | None,
                      info: dict, closures: list[tuple[int, int]] | None = None) -> np.ndarray:
    """The sampled values (T x C, changed in place) through the layers. `words_mouth` is the
    neutral prior's values: what the face does for the words alone, whose closures are held.
    `amounts` are the style's own (a preset's or the matched identities'); with a `reference`
    (and options.match_reference) the head, mouth and brows get its amount of movement.
    `closures`: the aligned bilabials' (start, end) frames when a transcript is used, held
    instead of the words' mouth's own closures. The gains chosen go into `info`."""
    seed = options.seed
    smooth_head(values, channels)
    head_gain = float(options.head_motion) * amounts.get("head_motion", 1.0)
    brow_gain = float(options.brow_activity) * amounts.get("brow_activity", 1.0)
    mouth_gain = 1.0
    if reference is not None and options.match_reference:
        ref = reference.resample(fps)
        head_gain *= reference_gain(head_activity(ref.values, ref.channels), head_activity(values, channels))
        mouth_gain = reference_gain(articulation_activity(ref.values, ref.channels),
                                    articulation_activity(values, channels))
        # the brows' raises are mostly the gesture layer's: measure them as they'd be at 1
        at_one = add_brow_raises(values.copy(), channels, wav, fps, seed, 1.0)
        brow_gain *= reference_gain(brow_raise(ref.values, ref.channels), brow_raise(at_one, channels))
    asymmetry = amounts.get("asymmetry", 0.0)
    info.update(head_gain=round(head_gain, 3), articulation_gain=round(mouth_gain, 3),
                brow_gain=round(brow_gain, 3), asymmetry=round(asymmetry, 3))

    def shape_mouth(v: np.ndarray) -> np.ndarray:
        return shift_sides(scale_articulation(v, channels, mouth_gain), channels, asymmetry)
    shape_mouth(values)
    if options.hold_closures:  # after any change to the mouth; the words' mouth moves as much as the rest
        keep_closures(values, shape_mouth(words_mouth), channels, closures,
                      speech=frame_energy(wav, len(values), fps=fps) >= SPEECH_ENERGY)
    scale_brow_raises(scale_head(values, channels, head_gain), channels, brow_gain)
    add_brow_raises(values, channels, wav, fps, seed, brow_gain)
    return add_blinks(values, channels, wav, fps, seed, options.blink_rate)
