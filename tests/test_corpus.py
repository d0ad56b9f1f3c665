import json

import numpy as np
import pytest
from corpus_cli import build_corpus_cli

from model_core.base.errors import LaliaError
from model_core.base.head import load_head
from model_core.base.signals import frame_energy
from model_core.base.vocabulary import EMOTIONS
from model_core.data.animator import Style, animate, emotion_prosody
from model_core.data.corpus import HOP, Corpus, Speaker, build_corpus, make_speakers, make_take, stable_split
from model_core.data.sentences import load_sentences
from model_core.data.tts import PHONE_SET, synthesize

ESPEAK = {"engine": "espeak", "name": "en-us+m3", "rate": 160, "pitch": 50, "range": 50}
FLITE = {"engine": "flite", "name": "slt", "stretch": 1.0, "f0": 170.0, "f0_std": 20.0}


@pytest.mark.parametrize("voice", [ESPEAK, FLITE])
def test_synthesizers_give_timed_phones_covering_the_audio(voice):
    u = synthesize("Peter bought a big map of the moon.", voice)
    assert u.duration > 1.0
    assert all(p.symbol in PHONE_SET for p in u.phones)
    assert u.phones[0].start == 0.0 and abs(u.phones[-1].end - u.duration) < 0.05
    assert all(a.end <= b.start + 1e-6 for a, b in zip(u.phones, u.phones[1:]))
    syms = [p.symbol for p in u.phones]
    assert syms.count("p") + syms.count("b") + syms.count("m") >= 5


def test_bad_speech_input_is_an_error_not_a_crash():
    with pytest.raises(LaliaError):
        synthesize("", ESPEAK)
    with pytest.raises(LaliaError):
        synthesize("!!! ???", ESPEAK)
    with pytest.raises(LaliaError):
        synthesize("Hello there.", {**ESPEAK, "name": "xx-nonexistent"})


def test_emotion_changes_the_voice():
    text = "I cannot believe what happened to the garden this morning."
    sad = synthesize(text, ESPEAK, emotion_prosody(np.eye(8)[EMOTIONS.index("sad")]))
    angry = synthesize(text, ESPEAK, emotion_prosody(np.eye(8)[EMOTIONS.index("angry")]))
    assert sad.duration > angry.duration * 1.2  # sad speech is slower


def _animate(text, emotion="neutral", seed=0):
    u = synthesize(text, ESPEAK)
    T = int(round(len(u.audio) / HOP))
    e = np.tile(np.eye(8, dtype=np.float32)[EMOTIONS.index(emotion)], (T, 1))
    return u, animate(u.phones, T, e, Style(), np.random.default_rng(seed), frame_energy(u.audio, T))


def test_lips_close_on_bilabials_and_open_on_vowels():
    u, m = _animate("Peter bought a big map of my pet moose.")
    gap = load_head().lip_gap(m.values)
    for p in u.phones:
        frames = range(int(p.start * 25 - 0.5), int(np.ceil(p.end * 25 + 0.5)) + 1)
        seg = gap[[f for f in frames if 0 <= f < len(gap)]]
        if p.symbol in ("p", "b", "m"):
            assert seg.min() < 1.0, f"lips open on /{p.symbol}/ at {p.start:.2f}s"
        if p.symbol in ("aa", "ao", "ae") and p.end - p.start > 0.06:
            assert seg.max() > 6.0, f"mouth closed on /{p.symbol}/ at {p.start:.2f}s"


def test_labiodentals_tuck_the_lower_lip():
    u, m = _animate("Five very fine vases.")
    roll = m.channel("mouthRollLower")
    f_frames = [int((p.start + p.end) / 2 * 25) for p in u.phones if p.symbol in ("f", "v")]
    assert np.mean(roll[f_frames]) > 0.3


@pytest.mark.parametrize("emotion,channels", [
    ("happy", ["mouthSmileLeft", "cheekSquintLeft"]), ("sad", ["browInnerUp", "mouthFrownLeft"]),
    ("angry", ["browDownLeft", "noseSneerLeft"]), ("surprised", ["eyeWideLeft", "browOuterUpLeft"]),
    ("fearful", ["eyeWideLeft", "mouthStretchLeft"]), ("disgusted", ["noseSneerLeft", "mouthUpperUpLeft"]),
    ("contempt", ["mouthDimpleLeft"])])
def test_each_emotion_moves_its_facs_channels(emotion, channels):
    text = "We will meet again on the other side of the hill."
    _, neutral = _animate(text)
    _, emo = _animate(text, emotion)
    for c in channels:
        assert emo.channel(c).mean() > neutral.channel(c).mean() + 0.15, c


def test_head_moves_and_blinks_happen():
    _, m = _animate("This is a longer sentence, so that the speaker has time to move and to blink. "
                    "And then, after a pause, another one follows.")
    head = m.values[:, 52:55]
    assert np.degrees(head.std(0)).max() > 0.3
    assert np.abs(np.degrees(head)).max() < 25
    assert (m.channel("eyeBlinkLeft") > 0.8).sum() >= 1


def test_corpus_is_consistent_and_deterministic(tiny_corpus, tmp_path):
    c = Corpus(tiny_corpus)
    n = 0
    for split in ("train", "val", "test"):
        for take in c.takes(split):
            n += 1
            assert len(take.audio) == len(take.motion) * HOP  # audio and motion agree exactly
            assert take.motion.shape[1] == 55 and take.emotion.shape == (len(take.motion), 8)
            assert take.phones[-1][2] <= len(take.audio) / 16000 + 1e-3
    assert n >= 3
    m = c.manifest
    # whole voices and whole sentences are held out
    voices = {s: {json.dumps(sp["voice"]["name"]) for sp in m["speakers"] if sp["split"] == s}
              for s in ("train", "test")}
    assert not voices["train"] & voices["test"]
    texts = {s: {t for take in c.takes(s) for t in take.texts} for s in ("train", "val", "test")}
    assert not (texts["train"] & texts["test"]) and not (texts["train"] & texts["val"])
    # determinism: the same seed gives the same first shard, with any number of workers
    again = tmp_path / "again"
    build_corpus_cli(again, hours=0.035, seed=7, workers=1)
    a = np.load(sorted((tiny_corpus / "train").glob("*.npz"))[0])
    b = np.load(sorted((again / "train").glob("*.npz"))[0])
    assert np.array_equal(a["audio"], b["audio"]) and np.array_equal(a["motion"], b["motion"])


def test_build_refuses_to_overwrite(tiny_corpus):
    with pytest.raises(LaliaError):
        build_corpus(tiny_corpus, hours=0.01, seed=0)


def test_unspeakable_sentences_are_skipped_not_fatal(caplog):
    spk = Speaker(0, ESPEAK, Style())
    take = make_take(spk, ["", "Hello there, how are you today?", "###"], np.random.default_rng(0))
    assert take is not None and take.texts == ["Hello there, how are you today?"]
    assert len(take.audio) == len(take.motion) * HOP


def test_sentence_source_is_real_and_varied():
    s = load_sentences()
    assert len(s) > 5000
    assert sum(x.endswith("?") for x in s) > 300 and sum(x.endswith("!") for x in s) > 300
    lengths = [len(x.split()) for x in s]
    assert min(lengths) <= 4 and max(lengths) >= 25


def test_speakers_cover_both_synthesizers():
    sp = make_speakers(0)
    engines = {s.voice["engine"] for s in sp}
    assert engines == {"espeak", "flite"}
    assert len({s.voice_key for s in sp}) > 100
    assert {s.split for s in sp} == {"train", "val", "test"}
    assert stable_split("x", "voice") == stable_split("x", "voice")
