"""The control measurements (model_core.evaluation.controls) and the committed reports of the shipped
model: they must describe the weights that ship (sha256) and they are checked against the
targets of the issues they answer."""
import json
from pathlib import Path

import numpy as np
import pytest

from model_core.base.motion import ARKIT_NAMES
from model_core.base.vocabulary import EMOTIONS
from model_core.data.corpus import Corpus
from model_core.evaluation.controls import CLIP, EmotionClassifier, _blinks_per_minute, clip_features
from model_core.model.checkpoint import DEFAULT_CHECKPOINT, weights_sha256

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_emotion_classifier_learns_corpus_emotions(tiny_corpus):
    clf = EmotionClassifier(Corpus(tiny_corpus))
    assert clf.train_accuracy > 0.7 and sum(clf.counts) >= 10
    take = next(iter(Corpus(tiny_corpus).takes("train")))
    p = clf.predict_proba(clip_features(take.motion))
    assert p.shape == (len(take.motion) // CLIP, 8) and np.allclose(p.sum(1), 1, atol=1e-5)


def test_blink_counter():
    v = np.zeros((25 * 60, 55), np.float32)
    for s in range(0, 25 * 60, 125):  # one blink every 5 s
        v[s:s + 4, ARKIT_NAMES.index("eyeBlinkLeft")] = 1.0
    assert _blinks_per_minute(v) == pytest.approx(12.0)


def _report(name, sha256=None):
    p = DOCS / name
    assert p.exists(), f"{p} missing: run `make model` (or the eval commands in the README)"
    r = json.loads(p.read_text())
    assert r["checkpoint_sha256"] == (sha256 or weights_sha256()), f"{name} was measured on other weights: re-run it"
    return r


def test_quality_report_is_for_the_shipped_model_and_meets_the_targets():
    r = _report("eval_default.json")
    syn, real = r["synthetic_test"], r["real_speech"]
    assert syn["lve_over_spread"] <= 1.5                       # issue 3
    assert syn["bilabial_closure_pred"] >= 0.90
    assert real["bilabial_closure"] >= 0.85 and abs(real["sync_offset_ms"]) <= 40
    assert 0.5 < real["head_std_deg"] < 10 and real["head_jerk_deg_s2"] < 1000  # alive, not shaking
    assert syn["boundary_ratio"] < 1.5


def test_distillation_table_ships_the_fewest_step_fastest_student_within_five_percent():
    """The table picked the student that ships; when it was adapted to a new AD-VAE afterwards
    (`make disentangle`), the one it was adapted from."""
    from model_core.model.checkpoint import read_manifest
    from model_core.training.distill import preference, within
    last = read_manifest(DEFAULT_CHECKPOINT)["distillation"][-1]
    t = _report("distillation.json", last["teacher_sha256"] if last["kind"] == "adapt" else None)
    rows = {row["checkpoint"]: row for row in t["rows"]}
    teacher, students = t["rows"][0], t["rows"][1:]
    assert len(students) >= 4 and {r["steps"] for r in students} >= {8, 4, 2, 1}
    for row in students:
        assert row["within_5pct_of_teacher"] == within(row, teacher)
    good = [r for r in students if r["within_5pct_of_teacher"]]
    if good:  # the fewest steps, then the fastest sampler, then the lowest LVE
        assert preference(rows[t["shipped"]]) == min(preference(r) for r in good)
    else:  # no student kept the lip sync and emotion within 5%: the teacher stays the default
        assert t["shipped"] == teacher["checkpoint"]


def test_controls_report_is_for_the_shipped_model():
    """The measured controls against issue 7's targets. Not met, and reported in the README
    rather than asserted: style-follows-reference r >= 0.8 for head motion, which is above the
    corpus's own ceiling (the same speaker's other take)."""
    r = _report("controls_default.json")
    words = r["emotion_keeps_words"]
    for e in EMOTIONS[1:]:
        assert words[e]["corr_drop_pct"] <= 5.0, e              # issue 7: emotion keeps the words
        assert words[e]["closure_drop_pct"] <= 5.0, e
        assert r["emotion_recognised"][e] >= 0.9, e             # recognisable at intensity 1
        conf = r["emotion_confidence_by_intensity"][e]
        assert all(b >= a for a, b in zip(conf, conf[1:])), e   # and more so as intensity rises
    # the closure layer is what keeps the words under surprise (the model alone drops 12%)
    assert words["surprised"]["model_alone"]["closure_drop_pct"] > words["surprised"]["closure_drop_pct"]
    sliders = r["sliders"]
    for name in ("head_motion", "expressiveness", "brow_activity", "blink_rate"):
        assert sliders[name]["monotonic"], name                 # each slider moves its property
    head = sliders["head_motion"]["values"]
    assert head[0] < 0.05 * head[2] and head[4] > 1.8 * head[2]  # 0: a still head; 2: twice the movement
    for name in ("brow_activity", "blink_rate"):  # at 1, about the corpus's own amount
        assert 0.5 < sliders[name]["values"][2] / sliders[name]["corpus"] < 2.0, name
    # the same words with each held-out speaker's take as the reference: head motion,
    # articulation and brow raises follow the reference's (r >= 0.8), about as much of it
    # (slope near 1)
    same = r["style_follows_reference"]["same_words"]
    shipped, alone = same["shipped"], same["model_alone"]
    for name in ("head_motion", "articulation", "brow_activity"):
        assert shipped[f"{name}_r"] >= 0.8, name
        assert 0.7 <= shipped[f"{name}_slope"] <= 1.3, name
    assert shipped["head_motion_r"] > alone["head_motion_r"] + 0.5     # the denoiser alone: not at all
    assert shipped["articulation_slope"] > 2 * alone["articulation_slope"]  # alone: too little of it
    # a speaker's other take (its own emotions): followed about as far as the corpus allows
    other = r["style_follows_reference"]["other_take"]
    assert other["shipped"]["articulation_r"] >= 0.8
    assert other["shipped"]["head_motion_r"] >= 0.9 * other["corpus_ceiling"]["head_motion_r"]
    # every preset does what its description says, by at least a third of its speakers' own difference
    presets = r["presets"]["presets"]
    assert len(presets) >= 6 and all(p["as_described"] for p in presets.values()), presets
    assert sum(len(p["described"]) for p in presets.values()) >= 10
    sw = r["vae_swap"]  # AD-VAE codes swapped between clips swap the emotion and keep the words
    assert sw["emotion_of_b_recognised"] >= 0.9 and sw["mouth_corr_with_a"] >= 0.95
