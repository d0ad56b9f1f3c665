"""The emotion-swap stage: windows given another emotion than their voice's get the animator's
mouth for it, and only the denoiser trains on them."""
import numpy as np
import torch

from model_core.base.vocabulary import EMOTIONS


def _constant_emotion_spans(data, length=60):
    """(take, start, stop) spans of `length` frames inside a take where the emotion is constant."""
    for take in range(len(data.offsets) - 1):
        a, b = data.offsets[take], data.offsets[take + 1]
        for s in range(0, b - a - length, length):
            emo = data.emotion[a + s:a + s + length]
            if np.abs(emo - emo[0]).max() < 1e-6:
                yield take, s, s + length
                break


def test_the_reanimated_mouth_is_the_takes_own_under_its_own_emotion(tiny_corpus):
    from model_core.data.dataset import load_split, reanimated_mouth
    data = load_split(tiny_corpus, "train")
    mouth = np.array([c.startswith(("jaw", "mouth")) for c in data.channels])
    spans = list(_constant_emotion_spans(data))
    assert len(spans) >= 3
    jaw = list(data.channels).index("jawOpen")
    for take, s, e in spans:
        a = data.offsets[take]
        own = data.emotion[a + s]
        again = reanimated_mouth(data.take_phones[take], data.style[take], s, e, own, data.channels)
        # the same mouth as the corpus stored (float16), context and all
        np.testing.assert_allclose(again[:, mouth], data.motion[a + s:a + e][:, mouth], atol=2e-3)
        surprised = np.eye(len(EMOTIONS), dtype=np.float32)[EMOTIONS.index("surprised")]
        if own.argmax() != EMOTIONS.index("surprised"):
            other = reanimated_mouth(data.take_phones[take], data.style[take], s, e, surprised, data.channels)
            assert other[:, jaw].mean() > again[:, jaw].mean() + 0.02  # surprise drops the jaw


def test_swapped_windows_carry_the_animators_mouth_and_the_new_emotion(tiny_corpus):
    from model_core.data.dataset import WindowSampler, load_split, reanimated_mouth
    data = load_split(tiny_corpus, "train")
    C = data.motion.shape[1]
    mean, std = np.zeros(C, np.float32), np.ones(C, np.float32)
    changed = 0
    for seed in range(12):  # one window from each pair of samplers: the swap draws from the rng
        plain = WindowSampler(data, 50, 10, mean, std, seed=seed)
        swapping = WindowSampler(data, 50, 10, mean, std, seed=seed, swap_emotions=1.0)
        mouth = swapping.mouth
        spk = int(plain.speakers[0])
        a, b = plain.example(spk), swapping.example(spk)
        assert b["swapped"] and not a["swapped"]
        # the same window: the rest of the face, the voice, the previous frames but the mouth
        np.testing.assert_array_equal(a["x0"][:, ~mouth], b["x0"][:, ~mouth])
        np.testing.assert_array_equal(a["prev"][:, ~mouth], b["prev"][:, ~mouth])
        np.testing.assert_array_equal(a["audio"], b["audio"])
        n = int(a["valid"].sum())
        new = b["emotion"][0]
        assert np.allclose(b["emotion"], new) and 0.4 <= new.max() <= 1.0
        assert new.argmax() != a["emotion"][0].argmax()  # another emotion than the voice's
        changed += not np.allclose(a["x0"][:n, mouth], b["x0"][:n, mouth], atol=1e-3)
    assert changed >= 8  # a swap moves the mouth (a mild emotion's change can be tiny)
    assert mouth.sum() >= 20 and not mouth[list(data.channels).index("eyeBlinkLeft")]

    # in place: the mouth of the window and of its previous frames, re-rendered under the emotion
    take, start, n, P = 0, 40, 50, 10
    a0 = data.offsets[take]
    x = data.motion[a0 + start:a0 + start + n].copy()
    prev = data.motion[a0 + start - P:a0 + start].copy()
    emotion = swapping.swap_emotion(take, start, n, True, x, prev)
    want = reanimated_mouth(data.take_phones[take], data.style[take], start - P, start + n, emotion,
                            data.channels)
    np.testing.assert_allclose(x[:, mouth], want[P:, mouth], atol=1e-6)
    np.testing.assert_allclose(prev[:, mouth], want[:P, mouth], atol=1e-6)
    np.testing.assert_array_equal(x[:, ~mouth], data.motion[a0 + start:a0 + start + n][:, ~mouth])


def test_emotion_swap_trains_the_denoiser_only(tmp_path, tiny_corpus, train_config):
    from model_core.model.checkpoint import load_checkpoint
    from model_core.training.emotion_swap import EmotionSwapConfig, emotion_swap
    from model_core.training.train import train
    model = train(train_config(tiny_corpus, 1))
    out = emotion_swap(model, [tiny_corpus], tmp_path / "s.safetensors",
                       EmotionSwapConfig(steps=4, batch=4, threads=1))
    before, _, _ = load_checkpoint(model)
    after, manifest, _ = load_checkpoint(out)
    own = before.state_dict()
    changed = {k for k, v in after.state_dict().items() if not torch.equal(v, own[k])}
    assert changed and all(k.startswith("denoiser.") for k in changed)
    rec = manifest["emotion_swap"][-1]
    assert len(manifest["emotion_swap"]) == 1 and rec["config"]["steps"] == 4 and rec["corpora"] == ["c"]
    assert rec["history"] == [] or rec["history"][-1]["step"] <= 4


def test_the_shipped_model_went_through_the_emotion_swap():
    """`make emotion-swap` is the shipped student's last training stage: its denoiser, after
    the content prior's articulation rounds, on the synthetic corpus and both Kokoro folders."""
    from model_core.model.checkpoint import DEFAULT_CHECKPOINT, read_manifest
    manifest = read_manifest(DEFAULT_CHECKPOINT)
    (rec,) = manifest["emotion_swap"]
    assert rec["corpora"] == ["articulation", "natural", "natural2"]
    assert rec["config"]["all_mouths"] and rec["config"]["p_swap"] == 0.7
    assert rec["history"][-1]["step"] == rec["config"]["steps"] == 1200
    assert rec["history"][-1]["swapped_mouth"] < rec["history"][0]["swapped_mouth"]
