"""The shipped default model through the public API (load_generator) and the CLI."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model_core.base.errors import LaliaError
from model_core.base.motion import ARKIT_HEAD_LAYOUT, Motion

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clip(sample_audio):
    return sample_audio[: 12 * 16000]  # 12 s: three 4 s windows


def test_generate_shape_range_and_determinism(generator, clip):
    m = generator.generate(clip, seed=3).motion
    assert m.fps == 25.0 and m.channels == ARKIT_HEAD_LAYOUT and m.values.shape == (300, 55)
    assert np.isfinite(m.values).all()
    assert m.values[:, :52].min() >= 0 and m.values[:, :52].max() <= 1
    assert np.abs(np.degrees(m.values[:, 52:])).max() < 30
    again = generator.generate(clip, seed=3).motion
    np.testing.assert_array_equal(m.values, again.values)
    other = generator.generate(clip, seed=4).motion
    assert np.abs(other.values - m.values).mean() > 1e-3


def test_mouth_follows_speech(generator, clip):
    m = generator.generate(clip).motion
    jaw = m.channel("jawOpen")
    assert jaw.max() > 0.2 and jaw.std() > 0.05


def test_window_boundaries_do_not_jump(generator, clip):
    from model_core.evaluation.evaluate import _joins, boundary_ratio
    m = generator.generate(clip).motion
    assert boundary_ratio(m.values, _joins(generator, m.num_frames)) < 1.5


def test_regenerating_a_range_keeps_every_other_frame_and_joins_smoothly(generator, clip):
    """A new seed, or an emotion for the range only, changes frames [a, b) alone: the rest is the
    kept motion bit for bit, and the joins move about as fast as the motion inside the range."""
    from model_core.inference.ranges import JOIN_FRAMES
    base = generator.generate(clip, seed=0).motion
    # blinks are fast by design and land anywhere: the joins are measured on the other channels
    face = [i for i, c in enumerate(base.channels[:52]) if not c.startswith("eye")]
    speed = lambda v: np.linalg.norm(np.diff(v[:, face], axis=0), axis=1)
    for (a, b), change in (((60, 190), dict(seed=7)), ((120, 260), dict(seed=0, emotion={"happy": 1.0}))):
        new = generator.generate(clip, keep=base, frames=(a, b), **change).motion
        outside = np.ones(base.num_frames, bool)
        outside[a:b] = False
        assert np.array_equal(new.values[outside], base.values[outside])
        inner = slice(a + JOIN_FRAMES, b - JOIN_FRAMES)
        assert np.abs(new.values[inner] - base.values[inner]).mean() > 1e-3
        s = speed(new.values)
        joins = np.r_[s[a - 1:a + JOIN_FRAMES], s[b - JOIN_FRAMES - 1:b]]
        inside = s[a + JOIN_FRAMES:b - JOIN_FRAMES - 1]
        # a join crossfades the kept motion into the changed rendition over JOIN_FRAMES, which adds
        # their difference / JOIN_FRAMES to the speed there (an emotion's onset and release)
        changed = generator.generate(clip, **change).motion.values
        ramp = np.mean([np.linalg.norm(changed[f, face] - base.values[f, face]) for f in (a, b - 1)]) / JOIN_FRAMES
        assert joins.mean() < 1.3 * inside.mean() + ramp, (a, b, change)
        # and no jump: the frames at each seam step no further than the fastest motion inside
        assert max(s[a - 1], s[a], s[b - 2], s[b - 1]) <= inside.max(), (a, b, change)
    happy = generator.generate(clip, keep=base, frames=(120, 260), seed=0, emotion={"happy": 1.0}).motion
    smile = [base.channels.index(c) for c in ("mouthSmileLeft", "mouthSmileRight")]
    assert happy.values[150:230, smile].mean() > base.values[150:230, smile].mean() + 0.05
    for bad, msg in ((dict(frames=(10, 20)), "both"), (dict(keep=base, frames=(20, 10)), "start < end"),
                     (dict(keep=base.resample(30.0), frames=(0, 10)), "25 fps")):
        with pytest.raises(LaliaError, match=msg):
            generator.generate(clip, **bad)


def test_silence_and_noise_give_a_calm_face(generator):
    rng = np.random.default_rng(0)
    for audio in (np.zeros(5 * 16000, np.float32), rng.normal(0, 0.01, 5 * 16000).astype(np.float32)):
        m = generator.generate(audio).motion
        assert m.channel("jawOpen").mean() < 0.12
        jitter = np.abs(np.diff(m.values[:, :52], axis=0)).mean()
        assert jitter < 0.02


def test_emotion_sliders_change_the_face(generator, clip):
    neutral = generator.generate(clip, emotion={"neutral": 1.0}).motion
    happy = generator.generate(clip, emotion={"happy": 1.0}).motion
    smile = lambda m: (m.channel("mouthSmileLeft") + m.channel("mouthSmileRight")).mean()
    assert smile(happy) > smile(neutral) + 0.2
    sad = generator.generate(clip, emotion={"sad": 1.0}).motion
    assert sad.channel("browInnerUp").mean() > neutral.channel("browInnerUp").mean() + 0.2


def test_emotion_curve_over_time(generator, clip):
    curve = np.zeros((300, 8), np.float32)
    curve[:150, 0] = 1.0
    curve[150:, 1] = 1.0  # neutral, then happy
    m = generator.generate(clip, emotion=curve).motion
    smile = m.channel("mouthSmileLeft")
    assert smile[180:].mean() > smile[:120].mean() + 0.2


def test_style_presets_reference_and_identity_match(generator, clip, tmp_path):
    assert len(generator.conditions.presets) >= 6
    base = generator.generate(clip, seed=0, style="average").motion
    styled = generator.generate(clip, seed=0, style="animated").motion
    assert np.abs(styled.values - base.values).mean() > 1e-3
    ref = tmp_path / "ref.npz"
    styled.save(ref)
    from_ref = generator.generate(clip, seed=0, style=str(ref)).motion
    assert from_ref.values.shape == base.values.shape
    # no style given: the voice is matched to the identity library
    result = generator.generate(clip, seed=0)
    auto, ids = result.motion, result.info["identities"]
    assert len(ids) == 3 and abs(sum(i["weight"] for i in ids) - 1) < 1e-3
    assert all(i["speaker"] in generator.manifest["identities"] for i in ids)
    # the match returns the matched identities' styles (same seed: any change is the style's)
    lib = generator.conditions.identity_styles
    assert lib is not None and len(lib) == len(generator.manifest["identities"])
    matched = sum(i["weight"] * lib[i["library_index"]] for i in ids)
    spread = (lib - lib.mean(0)).norm(dim=1).mean()
    assert (matched - lib.mean(0)).norm() > 0.2 * spread
    assert np.abs(auto.values - base.values).mean() > 1e-4


def test_presets_and_identities_bring_their_speakers_amounts(generator, clip):
    """The denoiser hardly follows head motion, brow raises or mouth sides from a style vector;
    a preset (or the identity the voice matches) brings its speakers' amounts, which the
    amplitude layer sets: "calm" and "stoic" keep the head quieter than "animated", "stoic"
    the brows stiller, and "lopsided" talks with one side."""
    from model_core.evaluation.controls import MEASURES
    from model_core.evaluation.evaluate import VertexMetrics
    from model_core.inference.amplitude import side_asymmetry
    vm = VertexMetrics()
    runs, info = {}, {}
    for style in ("average", "calm", "animated", "stoic", "lopsided"):
        result = generator.generate(clip, seed=0, style=style)
        runs[style], info[style] = result.motion.values, result.info
    head = {k: MEASURES["head_motion"][1](v, vm) for k, v in runs.items()}
    brows = {k: MEASURES["brow_activity"][1](v, vm) for k, v in runs.items()}
    assert info["average"]["head_gain"] == 1.0 and info["average"]["asymmetry"] == 0.0
    assert head["calm"] < 0.7 * head["average"] < 0.7 * head["animated"]
    assert head["stoic"] < 0.7 * head["average"] and brows["stoic"] < 0.4 * brows["average"]
    for style in ("calm", "animated", "stoic"):  # the gains are the preset's amounts
        amounts = dict(zip(generator.conditions.amount_names, generator.conditions.preset_amounts[style].tolist()))
        assert info[style]["head_gain"] == round(amounts["head_motion"], 3)
        assert info[style]["brow_gain"] == round(amounts["brow_activity"], 3)
    asymmetry = {k: side_asymmetry(runs[k], generator.channels) for k in ("lopsided", "average")}
    assert asymmetry["lopsided"] > asymmetry["average"] + 0.15
    # no style: the matched identities' amounts, by their match weights
    info = generator.generate(clip, seed=0).info
    ids = info["identities"]
    expected = sum(i["weight"] * generator.conditions.identity_amounts[i["library_index"], 0].item() for i in ids)
    assert abs(info["head_gain"] - expected) < 2e-3


def _spoken(text: str):
    """A sentence through espeak-ng: (timed phones, frames at 25 fps), to animate as a reference."""
    from model_core.data.tts import synthesize
    u = synthesize(text, {"engine": "espeak", "name": "en-us", "rate": 160, "pitch": 50, "range": 50},
                   {"pitch": 1.0, "range": 1.0, "rate": 1.0})
    return u.phones, int(u.duration * 25)


def test_emotion_from_reference_motion(generator, clip):
    """The AD-VAE's emotion code of a happy reference makes the face happy."""
    from model_core.data.animator import Style, animate
    phones, T = _spoken("What a lovely morning it is.")
    happy = animate(phones, T, np.tile(np.eye(8)[1], (T, 1)), Style(), np.random.default_rng(0))
    neutral = generator.generate(clip, emotion={"neutral": 1.0}).motion
    copied = generator.generate(clip, emotion_reference=happy).motion
    smile = lambda m: (m.channel("mouthSmileLeft") + m.channel("mouthSmileRight")).mean()
    assert smile(copied) > smile(neutral) + 0.2


def test_style_sliders_move_their_property(generator, clip):
    from model_core.evaluation.controls import SLIDER_MEASURES
    from model_core.evaluation.evaluate import VertexMetrics
    vm = VertexMetrics()
    for name in ("head_motion", "expressiveness", "brow_activity"):
        measure = SLIDER_MEASURES[name][1]
        low, mid, high = (measure(generator.generate(clip, seed=0, style="average", **{name: v}).motion.values, vm)
                          for v in (0.0, 1.0, 2.0))
        assert low < mid < high, (name, low, mid, high)


def test_head_motion_slider_scales_the_head_and_a_reference_sets_its_amount(generator, clip):
    """0 keeps the head still, 2 moves it twice as much; a motion reference's head movement
    (RMS frame-to-frame rotation) is what the generated head gets, unless matching is off."""
    from model_core.data.animator import Style, animate
    from model_core.inference.amplitude import head_activity
    still = generator.generate(clip, seed=0, head_motion=0.0).motion.values[:, 52:]
    assert np.degrees(still.std(0)).max() < 1e-4
    act = {v: head_activity(generator.generate(clip, seed=0, head_motion=v).motion.values, ARKIT_HEAD_LAYOUT)
           for v in (1.0, 2.0)}
    assert 1.7 < act[2.0] / act[1.0] < 2.3  # (the style also moves along the head direction)
    phones, T = _spoken("Well, I never thought we would see the harbour again, did you?")
    neutral = np.tile(np.eye(8)[0], (T, 1))
    for amount in (0.35, 1.7):
        ref = animate(phones, T, neutral, Style(head_amount=amount), np.random.default_rng(1))
        target = head_activity(ref.values, ref.channels)
        matched = generator.generate(clip, seed=0, style=ref).motion
        assert abs(head_activity(matched.values, ARKIT_HEAD_LAYOUT) / target - 1) < 0.02, amount
        info = generator.generate(clip, seed=0, style=ref, match_reference=False).info
        assert info["head_gain"] == 1.0 and info["articulation_gain"] == 1.0


def test_a_reference_sets_how_much_the_mouth_moves(generator, clip):
    """A reference speaker who articulates little or much (the corpus's articulation label)
    gets the generated lips opening and closing about as fast as the reference's (RMS
    frame-to-frame lip-gap change; clipping and the held closures keep it from exact), closer
    than the model alone gets."""
    from model_core.data.animator import Style, animate
    from model_core.inference.amplitude import articulation_activity
    phones, T = _spoken("Well, I never thought we would see the harbour again, did you?")
    neutral = np.tile(np.eye(8)[0], (T, 1))
    for amount in (0.7, 1.3):
        ref = animate(phones, T, neutral, Style(articulation=amount), np.random.default_rng(1))
        target = articulation_activity(ref.values, ref.channels)
        run = lambda match: generator.generate(clip, seed=0, style=ref, match_reference=match).motion.values
        off = {match: abs(articulation_activity(run(match), ARKIT_HEAD_LAYOUT) / target - 1) for match in (True, False)}
        assert off[True] < 0.1 and off[True] < off[False], (amount, off)


def test_a_reference_sets_how_high_the_brows_rise(generator, clip, tiny_corpus):
    """Corpus takes with the stillest and the liveliest brows as references: the generated brows
    rise about as high on average as the reference's, closer than without matching. (Brows that
    never move say nothing: a rig without brow animation reads the same, so the gain stays 1.)"""
    from model_core.data.corpus import Corpus
    from model_core.inference.amplitude import brow_raise
    takes = sorted((t for split in ("train", "test") for t in Corpus(tiny_corpus).takes(split)
                    if brow_raise(t.motion, ARKIT_HEAD_LAYOUT) > 1e-4),
                   key=lambda t: brow_raise(t.motion, ARKIT_HEAD_LAYOUT))
    got = {}
    for name, take in (("stillest", takes[0]), ("liveliest", takes[-1])):
        ref = Motion(25.0, ARKIT_HEAD_LAYOUT, take.motion)
        target = brow_raise(ref.values, ref.channels)
        got[name] = {match: brow_raise(generator.generate(clip, seed=0, style=ref, match_reference=match).motion.values,
                                       ARKIT_HEAD_LAYOUT) / target for match in (True, False)}
    for name, g in got.items():
        assert abs(g[True] - 1) < 0.15 and abs(g[True] - 1) < abs(g[False] - 1), got


def test_blink_rate_sets_the_blink_layer(generator, sample_audio):
    """Blinks at about the corpus's rate, more with the slider, none added at 0; the rest of
    the face is untouched."""
    from model_core.evaluation.controls import _blinks_per_minute
    audio = np.tile(sample_audio, 3)[: 60 * 16000]
    runs = {v: generator.generate(audio, seed=0, blink_rate=v).motion for v in (0.0, 1.0, 2.0)}
    rate = {v: _blinks_per_minute(m.values) for v, m in runs.items()}
    assert rate[0.0] < 6 and 10 < rate[1.0] < 28 < rate[2.0] + 10  # the corpus: 18 a minute (8 to 29)
    assert rate[0.0] < rate[1.0] < rate[2.0]
    lids = [runs[1.0].channels.index(c) for c in ("eyeBlinkLeft", "eyeBlinkRight")]
    rest = np.ones(len(runs[1.0].channels), bool)
    rest[lids] = False
    np.testing.assert_array_equal(runs[1.0].values[:, rest], runs[0.0].values[:, rest])


@pytest.mark.parametrize("kwargs,msg", [
    (dict(emotion={"joyful": 1.0}), "Unknown emotion"), (dict(emotion={"happy": 1.5}), "between 0 and 1"),
    (dict(style="no-such-style"), "neither a preset"), (dict(head_motion=3.0), "between 0 and 2"),
    (dict(blink_rate=-1.0), "between 0 and 2"), (dict(emotion_reference="/nonexistent.npz"), "not found"),
    (dict(sampler="euler"), "Unknown sampler")])
def test_bad_settings_are_clear_errors(generator, clip, kwargs, msg):
    with pytest.raises(LaliaError, match=msg):
        generator.generate(clip[:16000], **kwargs)


def test_bad_audio_is_a_clear_error(generator, tmp_path):
    with pytest.raises(LaliaError, match="not found"):
        generator.generate(tmp_path / "missing.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(LaliaError, match="empty"):
        generator.generate(tmp_path / "empty.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF0000WAVEjunkjunk")
    with pytest.raises(LaliaError):
        generator.generate(tmp_path / "junk.wav")


@pytest.mark.parametrize("fmt", ["npz", "csv", "json"])
def test_cli_generate(tmp_path, fmt, sample_audio):
    from model_core.base.audio import save_wav
    wav = save_wav(tmp_path / "in.wav", sample_audio[: 3 * 16000])
    out = tmp_path / f"out.{fmt}"
    res = subprocess.run([sys.executable, "-m", "model_core", "generate", str(wav), "--out", str(out),
                          "--emotion", "happy=0.7", "--emotion", "sad=0.2", "--steps", "2", "--seed", "1"],
                         capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                         timeout=300)
    assert res.returncode == 0, res.stderr[-1500:]
    m = Motion.load(out)
    assert m.num_frames == 75 and "jawOpen" in m.channels


def test_cli_passes_every_control(tmp_path, generator, sample_audio):
    """The CLI's sliders and switches reach the generator: its file equals the API's output."""
    from model_core.base.audio import save_wav
    clip = sample_audio[: 4 * 16000]
    wav = save_wav(tmp_path / "in.wav", clip)
    out = tmp_path / "out.npz"
    res = subprocess.run([sys.executable, "-m", "model_core", "generate", str(wav), "--out", str(out),
                          "--emotion", "surprised=1", "--head-motion", "0", "--expressiveness", "1.5",
                          "--brow-activity", "2", "--blink-rate", "0", "--no-closure-hold"],
                         capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                         timeout=300)
    assert res.returncode == 0, res.stderr[-1500:]
    from model_core.base.audio import load_audio
    expected = generator.generate(load_audio(wav), emotion={"surprised": 1.0}, head_motion=0.0, expressiveness=1.5,
                                  brow_activity=2.0, blink_rate=0.0, hold_closures=False).motion
    np.testing.assert_allclose(Motion.load(out).values, expected.values, atol=1e-5)


def test_cli_reports_user_errors_without_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "model_core", "generate", str(tmp_path / "x.wav"), "--out",
                          str(tmp_path / "o.npz")], capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert res.returncode == 2 and "error: Audio file not found" in res.stderr and "Traceback" not in res.stderr
