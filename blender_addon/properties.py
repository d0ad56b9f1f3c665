"""Settings at `scene.lalia` (scriptable: every panel control is one of these)."""
import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .model_core.base.vocabulary import EMOTIONS  # one vocabulary: the core's

STYLE_PRESETS = [("AUTO", "Match voice", "The talking identity from the library that best matches the voice"),
                 ("NONE", "Average", "The model's average speaking style")]


def _style_items():
    """The bundled model's presets, read once: a fixed list, not an items callback, because bpy 4.2
    crashes at exit (SpaceType destructor -> bpy_class_free after Python is gone) once any
    EnumProperty with an items callback was registered, even when unregistered again."""
    from . import engine
    items = list(STYLE_PRESETS)
    for name, desc in engine.preset_descriptions().items():
        items.append((name, name.replace("_", " ").title(), desc))
    items.append(("REFERENCE", "From reference", "Style taken from a motion file or an action"))
    return items


class LaliaSettings(bpy.types.PropertyGroup):
    audio_source: EnumProperty(name="Audio", items=[
        ("FILE", "File", "An audio file (wav, flac, ogg, mp3)"),
        ("STRIP", "Sound strip", "The scene's active or first sound strip")], default="FILE")
    audio_path: StringProperty(name="Audio file", subtype="FILE_PATH")
    transcript_text: StringProperty(name="Dialogue text", description="The line's words, when known: the mouth "
                                    "says their aligned phones (left out, with a warning, if they don't fit the audio)")
    transcript_block: PointerProperty(type=bpy.types.Text, name="Dialogue text block",
                                      description="A text datablock holding the line's words (wins over the field)")
    transcript_from_strip_name: BoolProperty(name="Strip names are the dialogue text", default=False,
                                             description="A sound strip without a lalia_transcript property "
                                                         "uses its name as its dialogue text")
    auto_emotion: BoolProperty(name="Auto from voice", default=False,
                               description="Infer the emotion from the voice when all sliders are 0")
    style_preset: EnumProperty(name="Style", items=_style_items())
    style_reference: StringProperty(name="Reference", subtype="FILE_PATH",
                                    description="Motion npz or Live Link Face CSV to copy the style from")
    style_action: StringProperty(name="Reference action",
                                 description="An existing shape-key action on an ARKit rig to copy the style from")
    emotion_reference: StringProperty(name="Emotion reference", subtype="FILE_PATH",
                                      description="Motion npz or Live Link CSV whose emotion is copied "
                                                  "(overrides the sliders)")
    head_motion: FloatProperty(name="Head motion", default=1.0, min=0.0, max=2.0,
                               description="Head movement: still (0), as the style moves it (1), twice as much (2)")
    expressiveness: FloatProperty(name="Expressiveness", default=1.0, min=0.0, max=2.0,
                                  description="Smaller (0) or bigger (2) mouth movements; 1 = as the style is")
    brow_activity: FloatProperty(name="Brow activity", default=1.0, min=0.0, max=2.0,
                                 description="Brow raises on loud syllables: none (0), a typical speaker's (1), "
                                             "twice as high (2)")
    blink_rate: FloatProperty(name="Blink rate", default=1.0, min=0.0, max=2.0,
                              description="Blinks added to the model's own: none (0), about 18 a minute (1), more (2)")
    checkpoint: StringProperty(name="Model", subtype="FILE_PATH",
                               description="A Lalia checkpoint (.safetensors); empty = the bundled default")
    seed: IntProperty(name="Variation seed", default=0, min=0)
    steps: IntProperty(name="Quality (steps)", default=0, min=0, max=500,
                       description="Sampler steps; 0 = the model's default")
    head_bone: StringProperty(name="Head bone", description="Bone that receives head rotation")
    animate_head: BoolProperty(name="Animate head", default=True,
                               description="Key the head bone's rotation (off: face only, e.g. when the "
                                           "game engine moves the head)")
    placement: EnumProperty(name="Place as", items=[
        ("NLA", "New NLA track", "Each generation on its own NLA track; earlier ones are kept, muted"),
        ("ASSIGN", "Active action", "Assign as the active action (the previous one is pushed to the NLA)")],
        default="NLA")
    add_sound: BoolProperty(name="Add sound strip", default=True)
    # editing after generation
    reduce_keys: BoolProperty(name="Reduce keys", default=False,
                              description="Write only the Bézier keys needed to stay within the tolerance "
                                          "of the generated curve (instead of a key on every frame)")
    key_tolerance: FloatProperty(name="Tolerance", default=0.01, min=0.0005, max=0.2, precision=3,
                                 description="Largest difference from the generated curve, in shape-key weight")
    head_tolerance: FloatProperty(name="Head tolerance (°)", default=0.5, min=0.05, max=10.0,
                                  description="Largest difference of the head's rotation from the generated one")
    range_start: IntProperty(name="From", default=1,
                             description="First frame to regenerate (when the timeline has no preview range)")
    range_end: IntProperty(name="To", default=50,
                           description="Last frame to regenerate (when the timeline has no preview range)")
    protect: EnumProperty(name="Protect", options={"ENUM_FLAG"}, default=set(), items=[
        ("mouth", "Mouth", "Jaw, lips and tongue"), ("brows", "Brows", ""), ("eyes", "Eyes", "Blinks and gaze"),
        ("cheeks", "Cheeks", "Cheeks and nose"), ("head", "Head", "Head and neck bones")],
        description="Regeneration leaves these channels as they are")
    protect_names: StringProperty(name="Also protect",
                                  description="Shape keys or bones regeneration leaves as they are, "
                                              "comma-separated (e.g. browInnerUp, jaw)")
    strength_mouth: FloatProperty(name="Mouth", default=1.0, min=0.0, max=3.0)
    strength_brows: FloatProperty(name="Brows", default=1.0, min=0.0, max=3.0)
    strength_eyes: FloatProperty(name="Eyes", default=1.0, min=0.0, max=3.0)
    strength_cheeks: FloatProperty(name="Cheeks", default=1.0, min=0.0, max=3.0)
    strength_head: FloatProperty(name="Head", default=1.0, min=0.0, max=3.0)
    progress: FloatProperty(name="Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    running: BoolProperty(default=False)
    status: StringProperty(default="")


for _e in EMOTIONS:
    LaliaSettings.__annotations__[_e] = FloatProperty(name=_e.title(), default=0.0, min=0.0, max=1.0)


def emotion_dict(settings) -> dict:
    return {e: getattr(settings, e) for e in EMOTIONS if getattr(settings, e) > 0}


def key_tolerances(settings) -> dict | None:
    """The panel's key reduction: None (a key on every frame), or the tolerance per kind of curve.
    A rotation component's tolerance is a quarter of the angle's (in radians), so the turn itself
    stays within the angle."""
    if not settings.reduce_keys:
        return None
    import math
    return {"shape": float(settings.key_tolerance), "rotation": math.radians(settings.head_tolerance) / 4}


def strengths(settings) -> dict[str, float]:
    return {r: getattr(settings, f"strength_{r}") for r in ("mouth", "brows", "eyes", "cheeks", "head")}


def protection(settings) -> tuple[set[str], set[str]]:
    """(protected regions, protected shape-key or bone names)."""
    names = {n.strip() for n in settings.protect_names.split(",") if n.strip()}
    return set(settings.protect), names


def dialogue_text(settings) -> str | None:
    """The panel's dialogue text: the text datablock's, else the one-line field's; None when empty."""
    text = settings.transcript_block.as_string() if settings.transcript_block is not None else \
        settings.transcript_text
    return text if text.strip() else None


def generation_options(settings, style):
    """The panel's settings as the core's GenerationOptions (`style` resolved by the operator:
    a preset name, "auto", "average", a reference file or a Motion)."""
    from .model_core.inference.options import GenerationOptions
    return GenerationOptions(
        emotion=emotion_dict(settings) or None, emotion_from_voice=settings.auto_emotion,
        emotion_reference=bpy.path.abspath(settings.emotion_reference) if settings.emotion_reference else None,
        style=style, steps=settings.steps or None, seed=settings.seed, head_motion=settings.head_motion,
        expressiveness=settings.expressiveness, brow_activity=settings.brow_activity, blink_rate=settings.blink_rate,
        transcript=dialogue_text(settings))


def register():
    from .scene_lines import LaliaStripTarget
    bpy.utils.register_class(LaliaStripTarget)
    LaliaSettings.__annotations__["strip_targets"] = CollectionProperty(type=LaliaStripTarget)
    bpy.utils.register_class(LaliaSettings)
    bpy.types.Scene.lalia = PointerProperty(type=LaliaSettings)


def unregister():
    from .scene_lines import LaliaStripTarget
    del bpy.types.Scene.lalia
    bpy.utils.unregister_class(LaliaSettings)
    bpy.utils.unregister_class(LaliaStripTarget)
