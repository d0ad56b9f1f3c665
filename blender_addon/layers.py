"""Lalia's layer in a rig's animation, kept apart from the animator's work.

- Each generation's actions remember what made them (the motion at the model's frame rate,
  the audio, the first frame), so a frame range can be regenerated later and protected
  channels carried over.
- A correction layer: an NLA track of the animator's own offsets (blend Add for shape keys,
  Combine for bones), kept above Lalia's tracks, so regenerating replaces only Lalia's layer.
- Per-region strength as F-curve Envelope modifiers on Lalia's curves: non-destructive, and
  they scale about each curve's median, as the core's strength layer does.
"""
from __future__ import annotations

import bpy
import numpy as np

from .model_core.base.motion import Motion
from .model_core.inference.strength import REGIONS

CORRECTIONS = "Lalia corrections"
_STRENGTH_MODIFIER = "Lalia strength"


# ---- what made a generation ---------------------------------------------------------------
def remember(action, motion: Motion, audio: str, frame_start: int, tolerances: dict | None) -> None:
    action["lalia_motion"] = motion.values.ravel().tolist()
    action["lalia_channels"] = "|".join(motion.channels)
    action["lalia_fps"] = float(motion.fps)
    action["lalia_audio"] = audio
    action["lalia_frame_start"] = int(frame_start)
    action["lalia_tolerances"] = dict(tolerances or {})


def recall(action) -> tuple[Motion, str, int, dict | None] | None:
    """(motion, audio, first frame, key tolerances) of a Lalia action, else None."""
    if action is None or "lalia_motion" not in action:
        return None
    channels = tuple(action["lalia_channels"].split("|"))
    values = np.asarray(action["lalia_motion"], np.float32).reshape(-1, len(channels))
    tol = dict(action["lalia_tolerances"]) or None
    return Motion(float(action["lalia_fps"]), channels, values), action["lalia_audio"], \
        int(action["lalia_frame_start"]), tol


def playing_generation(id_data):
    """The Lalia action that plays on id_data: the active action if it is one, else the
    newest unmuted Lalia NLA track's."""
    ad = id_data.animation_data if id_data is not None else None
    if ad is None:
        return None
    if recall(ad.action) is not None:
        return ad.action
    for tr in reversed(list(ad.nla_tracks)):
        if tr.name.startswith("Lalia:") and not tr.mute:
            for st in tr.strips:
                if recall(st.action) is not None:
                    return st.action
    return None


def curves_of(action):
    """An action's F-curves (4.2-4.3 action.fcurves; 4.4+/5.x through its layers)."""
    if getattr(action, "fcurves", None) is not None and len(action.fcurves):
        return list(action.fcurves)
    out = []
    for layer in getattr(action, "layers", []):
        for strip in layer.strips:
            for cb in strip.channelbags:
                out += list(cb.fcurves)
    return out


# ---- protected channels --------------------------------------------------------------------
def protected(data_path: str, regions: set[str], names: set[str]) -> bool:
    """Is this F-curve one the animator protected (a region's shape keys or bone, or a name)?"""
    if any(f'"{n}"' in data_path for n in names):
        return True
    for region in regions:
        if region == "head":
            if data_path.startswith("pose.bones"):
                return True
        elif any(f'key_blocks["{n}"]' in data_path for n in REGIONS[region]):
            return True
    return False


def copy_protected(old_action, new_action, regions: set[str], names: set[str]) -> int:
    """The protected curves of a new generation take the old generation's keys. Returns how many."""
    old = {(fc.data_path, fc.array_index): fc for fc in curves_of(old_action)}
    n = 0
    for fc in curves_of(new_action):
        src = old.get((fc.data_path, fc.array_index))
        if src is None or not protected(fc.data_path, regions, names):
            continue
        while len(fc.keyframe_points):
            fc.keyframe_points.remove(fc.keyframe_points[0], fast=True)
        fc.keyframe_points.add(len(src.keyframe_points))
        for attr in ("co", "handle_left", "handle_right"):
            buf = np.empty(2 * len(src.keyframe_points), np.float64)
            src.keyframe_points.foreach_get(attr, buf)
            fc.keyframe_points.foreach_set(attr, buf)
        for attr in ("interpolation", "handle_left_type", "handle_right_type"):
            buf = np.empty(len(src.keyframe_points), np.int32)
            src.keyframe_points.foreach_get(attr, buf)
            fc.keyframe_points.foreach_set(attr, buf)
        fc.update()
        n += 1
    return n


# ---- the correction layer ------------------------------------------------------------------
def correction_track(id_data):
    ad = id_data.animation_data if id_data is not None else None
    return None if ad is None else next((t for t in ad.nla_tracks if t.name == CORRECTIONS), None)


def add_correction_layer(id_data, frames: tuple[int, int], slot_for) -> object:
    """An NLA track of offsets above Lalia's: blend Add (shape keys) or Combine (bones, so
    rotations compose), over `frames` (first, last). `slot_for(action, id_data)` gives a new
    action's slot and F-curves (the rig module's). Returns the corrections action (existing or new)."""
    tr = correction_track(id_data)
    if tr is not None:
        return tr.strips[0].action
    ad = id_data.animation_data or id_data.animation_data_create()
    kind = "face" if isinstance(id_data, bpy.types.Key) else "head"
    action = bpy.data.actions.new(f"{CORRECTIONS} [{kind}]")
    action.use_fake_user = True  # the animator's work: kept even while no strip uses it
    # the strip spans the generation from the start, so keys the animator adds anywhere in it count
    action.use_frame_range = True
    action.frame_start, action.frame_end = frames
    slot, _ = slot_for(action, id_data)
    tr = ad.nla_tracks.new()
    tr.name = CORRECTIONS
    strip = tr.strips.new(action.name, frames[0], action)
    if slot is not None and hasattr(strip, "action_slot"):
        strip.action_slot = slot
    strip.blend_type = "ADD" if kind == "face" else "COMBINE"
    strip.use_sync_length = True  # leaving tweak mode grows the strip to cover new keys
    return action


def correction_fcurve(id_data, data_path: str, index: int = 0):
    """The correction layer's F-curve for a property (made if needed), for scripts that key
    corrections without entering tweak mode."""
    tr = correction_track(id_data)
    if tr is None:
        raise ValueError("no correction layer: add one first (lalia.add_correction_layer)")
    strip = tr.strips[0]
    action = strip.action
    if hasattr(action, "layers") and getattr(strip, "action_slot", None) is not None:
        layer = action.layers[0] if action.layers else action.layers.new("Layer")
        kstrip = layer.strips[0] if layer.strips else layer.strips.new(type="KEYFRAME")
        fcurves = kstrip.channelbag(strip.action_slot, ensure=True).fcurves
    else:
        fcurves = action.fcurves
    return fcurves.find(data_path, index=index) or fcurves.new(data_path, index=index)


def keep_corrections_on_top(id_data) -> None:
    """New Lalia tracks go on top of the stack; the correction track must stay above them, so
    it is rebuilt at the top with the same strip settings (NLA tracks can't be moved by script)."""
    ad = id_data.animation_data if id_data is not None else None
    tr = correction_track(id_data)
    if tr is None or list(ad.nla_tracks)[-1] == tr:
        return
    old = tr.strips[0]
    settings = {k: getattr(old, k) for k in ("blend_type", "extrapolation", "influence", "mute")}
    slot = getattr(old, "action_slot", None)
    action, start = old.action, int(old.frame_start)
    ad.nla_tracks.remove(tr)
    tr = ad.nla_tracks.new()
    tr.name = CORRECTIONS
    strip = tr.strips.new(action.name, start, action)
    if slot is not None and hasattr(strip, "action_slot"):
        strip.action_slot = slot
    for k, v in settings.items():
        setattr(strip, k, v)


# ---- per-region strength ---------------------------------------------------------------------
def region_of(data_path: str) -> str | None:
    if data_path.startswith("pose.bones"):
        return "head"
    for region, names in REGIONS.items():
        if any(f'key_blocks["{n}"]' in data_path for n in names):
            return region
    return None


def set_strengths(action, strengths: dict[str, float]) -> int:
    """Envelope modifiers value -> m + k (value - m) on each region's curves (m: 0 for shape
    keys, the curve's median for the head, as the core scales the head about its median pose);
    a multiplier of 1 removes the modifier. Returns how many curves carry one.

    An Envelope maps the band [reference + default_min, reference + default_max] onto its
    control point's [min, max]. The point keeps its defaults (-1, 1), and the band is chosen to
    give the scaling above: writing a control point's values runs the modifier's update on the
    point itself, which has crashed bpy 4.5."""
    n = 0
    for fc in curves_of(action):
        region = region_of(fc.data_path)
        k = strengths.get(region, 1.0) if region else 1.0
        mod = next((m for m in fc.modifiers if m.type == "ENVELOPE" and m.name == _STRENGTH_MODIFIER), None)
        if mod is not None:
            fc.modifiers.remove(mod)
        # a unit quaternion's w is ~1 whatever the turn: only the axis parts scale the angle
        if abs(k - 1.0) < 1e-9 or (fc.data_path.endswith("rotation_quaternion") and fc.array_index == 0):
            continue
        values = np.empty(2 * len(fc.keyframe_points), np.float64)
        fc.keyframe_points.foreach_get("co", values)
        m = float(np.median(values[1::2])) if region == "head" else 0.0
        k = max(k, 1e-4)  # 0 would need an infinitely wide band; 1e-4 is still for any rig
        mod = fc.modifiers.new("ENVELOPE")
        mod.name = _STRENGTH_MODIFIER
        # with the point at (-1, 1): value -> -1 + 2 (value - ref - lo) / (hi - lo); hi - lo = 2 / k
        # and ref + lo = m - (1 + m) / k give m + k (value - m)
        mod.reference_value = 0.0
        mod.default_min = m - (1.0 + m) / k
        mod.default_max = mod.default_min + 2.0 / k
        mod.control_points.add(values[0] if len(values) else 0.0)
        n += 1
    return n
