#!/usr/bin/env python3
"""A close-up strip of the mouth on a real clip: the bundled head rendered with Blender's
Workbench (bpy) at the clip's bilabial frames (/p b m/, mid-phone) and open-vowel frames
(/aa ae ao aw ay/), one row per system: the shipped model from the audio alone, with the
clip's transcript, optionally under an emotion at intensity 1 (`--emotion`), and the procedural
animator on the reference alignment (the upper reference).

The head is the add-on's own (`lalia.add_demo_head` in the built extension, installed as users
install it: tools/blender_session.py); the motions come from this checkout's model_core.

Usage: python tools/mouth_strip.py EXTENSION_ZIP --set REALSPEECH_DIR --clip ID [--emotion NAME] --out PNG
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OPEN_VOWELS = ("aa", "ae", "ao", "aw", "ay")
CELL = (150, 110)


def pick_frames(phones, n_frames, fps=25.0, each=4):
    """Mid-phone frames of up to `each` bilabials and `each` open vowels, in time order."""
    def mids(symbols):
        out = [(int(round((a + b) / 2 * fps)), s) for s, a, b in phones if s in symbols]
        step = max(1, len(out) // each)
        return [(f, s) for f, s in out[::step][:each] if f < n_frames]
    return sorted(mids(("p", "b", "m")) + mids(OPEN_VOWELS))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("zip", help="the built extension (make addon-lean: build/lalia-*-nowheels.zip)")
    ap.add_argument("--set", required=True)
    ap.add_argument("--clip", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--emotion", help="add a row: the audio alone under this emotion at intensity 1")
    a = ap.parse_args()
    from blender_session import install_lalia
    bpy, _ = install_lalia(a.zip)
    from bl_ext.user_default.lalia import preview
    from PIL import Image, ImageDraw

    from model_core import load_generator
    from model_core.base.head import load_head
    from model_core.base.motion import ARKIT_NAMES
    from model_core.data.real_speech import MANIFEST_IN_REPO, load_set
    from model_core.evaluation.lipsync_eval import _frames, animator_motion
    clip = next(c for c in load_set(Path(a.set), MANIFEST_IN_REPO) if c["id"] == a.clip)
    gen = load_generator()
    audio_only = gen.generate(clip["audio16k"], seed=0)
    with_text = gen.generate(clip["audio16k"], seed=0, transcript=clip["transcript"])
    rows = [("audio only", audio_only.motion),
            ("with transcript" + ("" if with_text.info["transcript"]["used"] else " (NOT USED)"), with_text.motion),
            *([(f"{a.emotion}, audio only", gen.generate(clip["audio16k"], seed=0, emotion={a.emotion: 1.0}).motion)]
              if a.emotion else []),
            ("animator (reference)", animator_motion(clip["phones"], _frames(clip), clip["audio16k"]))]
    frames = pick_frames(clip["phones"], len(audio_only.motion.values))

    scene = bpy.context.scene
    bpy.ops.lalia.add_demo_head()
    obj = bpy.context.active_object
    preview.frame_face(scene, obj, crop=0.085, focus="mouth")
    r = scene.render
    r.resolution_x, r.resolution_y = CELL
    head = load_head()
    tmp = Path(a.out).with_suffix(".tmp.png")
    label_w, head_h = 130, 34
    sheet = Image.new("RGB", (label_w + CELL[0] * len(frames), head_h + CELL[1] * len(rows)), (24, 24, 28))
    draw = ImageDraw.Draw(sheet)
    keys = obj.data.shape_keys.key_blocks
    for j, (f, sym) in enumerate(frames):
        kind = "bilabial" if sym in ("p", "b", "m") else "open vowel"
        draw.text((label_w + j * CELL[0] + 6, 4), f"/{sym}/ {kind}", fill=(255, 220, 120) if kind == "bilabial"
                  else (140, 200, 255))
        draw.text((label_w + j * CELL[0] + 6, 18), f"frame {f} ({f / 25:.2f} s)", fill=(200, 200, 200))
    for i, (name, motion) in enumerate(rows):
        draw.text((6, head_h + i * CELL[1] + CELL[1] // 2 - 6), name, fill=(255, 255, 255))
        gaps = head.lip_gap(motion.values[:, :52])
        for j, (f, _) in enumerate(frames):
            w = motion.values[min(f, len(motion.values) - 1), :52]
            for k, n in enumerate(ARKIT_NAMES):
                keys[n].value = float(w[k])
            r.filepath = str(tmp)
            bpy.ops.render.render(write_still=True)
            cell = Image.open(tmp).convert("RGB")
            ImageDraw.Draw(cell).text((4, CELL[1] - 14), f"gap {gaps[min(f, len(gaps) - 1)]:.1f} mm",
                                      fill=(255, 255, 255))
            sheet.paste(cell, (label_w + j * CELL[0], head_h + i * CELL[1]))
    tmp.unlink(missing_ok=True)
    sheet.quantize(colors=64).save(a.out, optimize=True)
    print(f"{a.out}: {clip['id']} ({clip['speaker']}), frames {frames}")


if __name__ == "__main__":
    main()
