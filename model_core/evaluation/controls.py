"""Do the controls mean what they say? `python -m model_core eval-controls --corpus DIR`.

- Emotion keeps the words: at intensity 1 for each emotion, bilabial closure and the
  correlation of mouth opening with the neutral rendition (same audio and seed), against the
  neutral rendition's own closure and its correlation with another seed; closure also from
  the model alone (without `closures.keep_closures`).
- Emotion is recognisable: an emotion classifier trained on the corpus's motion (train split,
  clips of 2 s) names the generated emotion on held-out takes; its confidence over intensity.
- Style follows the reference: across held-out speakers, head-motion, articulation and brow
  raise amplitude of motion generated with one take of each speaker as the style reference,
  correlated with the reference's own amplitudes: for the same words for every speaker, and
  for the speaker's other take (beside the corpus's own ceiling there); as shipped, and from
  the model alone (no head or mouth matching).
- Sliders: each style slider from 0 to 2 in 5 steps, its property measured on the output, and
  on the corpus motion of 40 held-out takes.
- Presets: each preset's described properties (its head motion, articulation, brows, smile,
  mouth sides) against the average style's.
- AD-VAE swap: content codes of one clip with the emotion codes of another decode to the
  second clip's emotion (classifier) and the first clip's mouth (lip-gap correlation).
- Identity library: how often a clip of a training speaker is matched to that speaker.
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from ..base.motion import ARKIT_NAMES
from ..base.vocabulary import EMOTIONS
from ..data.corpus import Corpus
from ..inference.amplitude import brow_raise, side_asymmetry
from .evaluate import VertexMetrics, bilabial_closure

log = logging.getLogger(__name__)
CLIP = 50  # frames per classifier clip (2 s)
SLIDER_STEPS = (0.0, 0.5, 1.0, 1.5, 2.0)


def clip_features(w: np.ndarray) -> np.ndarray:
    """T x 52 weights -> per 2 s clip: mean and std of each channel (n_clips x 104)."""
    n = len(w) // CLIP
    c = w[: n * CLIP, :52].reshape(n, CLIP, 52)
    return np.concatenate([c.mean(1), c.std(1)], 1)


class EmotionClassifier:
    """Multinomial logistic regression on clip statistics, trained on corpus motion clips whose
    emotion is clear (one emotion above 0.5 for the whole clip, or neutral)."""

    def __init__(self, corpus: Corpus, split: str = "train", max_takes: int = 400, seed: int = 0):
        X, y = [], []
        for i, take in enumerate(corpus.takes(split)):
            if i >= max_takes:
                break
            f = clip_features(take.motion)
            n = len(f)
            e = take.emotion[: n * CLIP].reshape(n, CLIP, 8)
            lo = e.min(1)  # the emotion held through the clip
            for j in range(n):
                k = int(np.argmax(lo[j]))
                if lo[j, k] > (0.9 if k == 0 else 0.5):
                    X.append(f[j])
                    y.append(k)
        X, y = np.array(X, np.float32), np.array(y)
        self.mu, self.sd = X.mean(0), X.std(0) + 1e-4
        Xt = torch.from_numpy((X - self.mu) / self.sd)
        yt = torch.from_numpy(y)
        torch.manual_seed(seed)
        lin = torch.nn.Linear(X.shape[1], 8)
        opt = torch.optim.LBFGS(lin.parameters(), max_iter=300, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(lin(Xt), yt) + 1e-3 * lin.weight.pow(2).sum()
            loss.backward()
            return loss
        opt.step(closure)
        self.lin = lin
        self.train_accuracy = float((self.predict_proba(X, normalised=True).argmax(1) == y).mean())
        self.counts = np.bincount(y, minlength=8).tolist()

    def predict_proba(self, feats: np.ndarray, normalised: bool = False) -> np.ndarray:
        x = feats if normalised else (feats - self.mu) / self.sd
        with torch.no_grad():
            return torch.softmax(self.lin(torch.from_numpy(np.asarray(x, np.float32))), -1).numpy()


def emotion_renditions(gen, test_takes, clf: EmotionClassifier, vm: VertexMetrics, seed: int = 0) -> dict:
    """Each emotion at intensity 1 on each take: the share of 2 s clips the classifier assigns
    to it ('recognised'), and the bilabials during which the lips close ('closed' of
    'bilabials')."""
    out = {}
    for k, e in enumerate(EMOTIONS):
        hits, closed, n = [], 0.0, 0
        for t in test_takes:
            v = gen.generate(t.audio, emotion={e: 1.0}, seed=seed).motion.values
            hits.append(clf.predict_proba(clip_features(v)).argmax(1) == k)
            share, nb = bilabial_closure(vm.gap(v[: len(t.motion)]), t.phones)
            closed, n = closed + (share * nb if nb else 0.0), n + nb
        out[e] = {"recognised": round(float(np.concatenate(hits).mean()), 3), "closed": closed, "bilabials": n}
    return out


def _amplitudes(values: np.ndarray, vm: VertexMetrics) -> tuple[float, float, float]:
    """(head-motion amplitude: mean std of the head angles in degrees, articulation: std of
    the lip gap in mm, brow activity: mean brow raise above rest)."""
    return (float(np.degrees(values[:, 52:55]).std(0).mean()), float(vm.gap(values).std()),
            brow_raise(values, ARKIT_NAMES))


def _blinks_per_minute(values: np.ndarray, fps: float = 25.0) -> float:
    b = values[:, ARKIT_NAMES.index("eyeBlinkLeft")] > 0.5
    onsets = b & ~np.concatenate([[False], b[:-1]])  # a blink already on at frame 0 counts too
    return float(onsets.sum() / (len(b) / fps / 60))


def _smile(values: np.ndarray) -> float:
    return float(values[:, [ARKIT_NAMES.index("mouthSmileLeft"), ARKIT_NAMES.index("mouthSmileRight")]].mean())


# what the style controls are measured by on generated motion (the sliders are the first four)
MEASURES = {
    "head_motion": ("head angle std (deg)", lambda v, vm: _amplitudes(v, vm)[0]),
    "expressiveness": ("lip gap std (mm)", lambda v, vm: _amplitudes(v, vm)[1]),
    "brow_activity": ("mean brow raise above rest", lambda v, vm: brow_raise(v, ARKIT_NAMES)),
    "blink_rate": ("blinks per minute", lambda v, vm: _blinks_per_minute(v)),
    "smile": ("mean smile weight", lambda v, vm: _smile(v)),
    "asymmetry": ("left minus right mouth movement, over both", lambda v, vm: side_asymmetry(v, ARKIT_NAMES)),
}
SLIDER_MEASURES = {k: MEASURES[k] for k in ("head_motion", "expressiveness", "brow_activity", "blink_rate")}
# a preset's described speaker style field -> the measure that shows it (tempo and nod rhythm
# have none here); a preset is as described when each moves from the average style's the
# described way by at least PRESET_MIN_SHARE of its speakers' own difference (both as a share
# of the average's value; for asymmetry, which is about 0 on average, as a difference)
PRESET_MEASURES = {"articulation": "expressiveness", "head_amount": "head_motion",
                   "brow_activity": "brow_activity", "smile_bias": "smile", "asymmetry": "asymmetry"}
PRESET_MIN_SHARE = 1 / 3


def evaluate_controls(gen, corpus_root, takes: int = 8, seed: int = 0) -> dict:
    corpus = Corpus(corpus_root)
    vm = VertexMetrics()
    clf = EmotionClassifier(corpus)
    test = [t for _, t in zip(range(takes), corpus.takes("test"))]
    report = {"classifier": {"train_accuracy": round(clf.train_accuracy, 3), "train_clips": clf.counts}}

    # ---- emotion keeps the words, and is recognisable
    words, recog = {}, {}
    intensity_curve = {e: [] for e in EMOTIONS[1:]}
    n_bil = 0
    for take in test:
        audio = take.audio
        neutral = gen.generate(audio, emotion={"neutral": 1.0}, seed=seed).motion.values
        neutral2 = gen.generate(audio, emotion={"neutral": 1.0}, seed=seed + 1).motion.values
        T = min(len(neutral), len(take.motion))
        g0, g1 = vm.gap(neutral[:T]), vm.gap(neutral2[:T])
        c0, nb = bilabial_closure(g0, take.phones)
        n_bil += nb
        base_corr = float(np.corrcoef(g0, g1)[0, 1])
        alone_gap = lambda e: vm.gap(gen.generate(audio, emotion={e: 1.0}, seed=seed,
                                                  hold_closures=False).motion.values[:T])
        alone = lambda e: bilabial_closure(alone_gap(e), take.phones)[0] * nb
        words.setdefault("neutral", []).append((c0 * nb, base_corr, nb, alone("neutral")))
        recog.setdefault("neutral", []).append(clf.predict_proba(clip_features(neutral)).argmax(1) == 0)
        for k, e in enumerate(EMOTIONS[1:], start=1):
            for level in (0.25, 0.5, 0.75, 1.0):
                v = gen.generate(audio, emotion={e: level}, seed=seed).motion.values
                p = clf.predict_proba(clip_features(v))
                intensity_curve[e].append((level, float(p[:, k].mean())))
                if level == 1.0:
                    g = vm.gap(v[:T])
                    c, _ = bilabial_closure(g, take.phones)
                    words.setdefault(e, []).append((c * nb, float(np.corrcoef(g, g0)[0, 1]), nb, alone(e)))
                    recog.setdefault(e, []).append(p.argmax(1) == k)
    out_words = {}
    for e, rows in words.items():
        nb = max(sum(r[2] for r in rows), 1)
        out_words[e] = {"bilabial_closure": round(sum(r[0] for r in rows) / nb, 3),
                        "mouth_corr_with_neutral": round(float(np.mean([r[1] for r in rows])), 3),
                        "model_alone": {"bilabial_closure": round(sum(r[3] for r in rows) / nb, 3)}}
    drop = lambda a, b: round(100 * (1 - a / max(b, 1e-9)), 1)
    base = out_words["neutral"]
    for e in EMOTIONS[1:]:
        w = out_words[e]
        w["closure_drop_pct"] = drop(w["bilabial_closure"], base["bilabial_closure"])
        w["corr_drop_pct"] = drop(w["mouth_corr_with_neutral"], base["mouth_corr_with_neutral"])
        w["model_alone"]["closure_drop_pct"] = drop(w["model_alone"]["bilabial_closure"],
                                                    base["model_alone"]["bilabial_closure"])
    out_words["neutral"]["note"] = "mouth_corr_with_neutral here: neutral vs neutral with another seed"
    report["emotion_keeps_words"] = {"takes": len(test), "bilabials": n_bil, **out_words}
    report["emotion_recognised"] = {e: round(float(np.concatenate(v).mean()), 3) for e, v in recog.items()}
    curve = {}
    for e, pts in intensity_curve.items():
        curve[e] = [round(float(np.mean([p for lv, p in pts if lv == level])), 3) for level in (0.25, 0.5, 0.75, 1.0)]
    report["emotion_confidence_by_intensity"] = {"levels": [0.25, 0.5, 0.75, 1.0], **curve}

    # ---- style follows the reference (held-out speakers)
    report["style_follows_reference"] = _style_follows_reference(gen, corpus, vm, seed)

    # ---- sliders, beside the corpus's own amount (40 held-out takes: speakers vary a lot)
    held_out = [t for _, t in zip(range(40), corpus.takes("test"))]
    sliders = {}
    for name, (what, measure) in SLIDER_MEASURES.items():
        vals = []
        for level in SLIDER_STEPS:
            run = lambda t: gen.generate(t.audio, seed=seed, style="average", **{name: level}).motion.values
            vals.append(float(np.mean([measure(run(t), vm) for t in test[:4]])))
        d = np.diff(vals)
        corpus_value = float(np.mean([measure(t.motion, vm) for t in held_out]))
        sliders[name] = {"measure": what, "levels": list(SLIDER_STEPS), "values": [float(f"{x:.4g}") for x in vals],
                         "monotonic": bool(np.all(d > 0)), "corpus": float(f"{corpus_value:.4g}")}
    report["sliders"] = sliders

    report["presets"] = _presets(gen, corpus, test[:4], vm, seed)

    # ---- the AD-VAE's swap test and the identity library
    report["vae_swap"] = _swap_test(gen, corpus, clf, vm)
    report["identity_retrieval"] = _identity_retrieval(gen, corpus)
    return report


def _style_follows_reference(gen, corpus: Corpus, vm: VertexMetrics, seed: int, words: int = 3) -> dict:
    """Across held-out speakers, the amplitudes (head-angle spread, lip-gap spread, brow raise)
    of motion generated with one take as the style reference, correlated with the reference's
    own, as shipped (head, mouth and brows matched to the reference) and from the model alone.

    - same words: every speaker's first take is the reference for the same `words` held-out
      clips' audio (none a reference), all neutral, so only the reference differs between
      speakers. Also the slope (generated amplitude per unit of the reference's: 1 gives the
      reference's amount of movement) and the correlation with the speaker's labelled style
      (head amount, articulation, brow activity), beside the reference's own (one take shows
      its speaker's style this well).
    - other take: a speaker's second take's audio and emotions with the first as the
      reference, beside the ceiling the corpus sets: the first take against the second's real
      motion (one speaker's takes differ by their emotions and phrasing, so even the speaker's
      own motion doesn't reach r = 1)."""
    from ..base.motion import ARKIT_HEAD_LAYOUT, Motion
    from ..base.vocabulary import STYLE_FIELDS
    by_speaker: dict[int, list] = {}
    for take in corpus.takes("test"):
        by_speaker.setdefault(take.speaker, []).append(take)
    speakers = sorted(by_speaker)
    reference = {s: Motion(25.0, ARKIT_HEAD_LAYOUT, by_speaker[s][0].motion) for s in speakers}
    ref_amp = np.array([_amplitudes(by_speaker[s][0].motion, vm) for s in speakers])

    def amplitudes(audios, emotions, spk, **kw) -> np.ndarray:
        return np.mean([_amplitudes(gen.generate(a, emotion=e, style=reference[spk], seed=seed, **kw).motion.values, vm)
                        for a, e in zip(audios, emotions)], axis=0)

    def follow(ref: np.ndarray, out: np.ndarray, slope: bool = True) -> dict:
        row = {}
        for j, name in enumerate(("head_motion", "articulation", "brow_activity")):
            row[f"{name}_r"] = round(float(np.corrcoef(ref[:, j], out[:, j])[0, 1]), 3)
            if slope:
                row[f"{name}_slope"] = round(float(np.polyfit(ref[:, j], out[:, j], 1)[0]), 3)
        return row

    # same words: second takes, so no reference is among them
    clips = [by_speaker[s][1] for s in speakers if len(by_speaker[s]) >= 2][:words]
    audios, neutral = [t.audio for t in clips], [{"neutral": 1.0}] * len(clips)
    shipped = np.array([amplitudes(audios, neutral, s) for s in speakers])
    alone = np.array([amplitudes(audios, neutral, s, match_reference=False) for s in speakers])
    labelled = ("head_amount", "articulation", "brow_activity")
    label = np.array([[corpus.styles[s][STYLE_FIELDS.index(f)] for f in labelled]
                      for s in speakers])
    same_words = {"speakers": len(speakers), "clips": len(clips),
                  "shipped": follow(ref_amp, shipped), "model_alone": follow(ref_amp, alone),
                  "with_speaker_style": {"shipped": follow(label, shipped, False),
                                         "model_alone": follow(label, alone, False),
                                         "reference_itself": follow(label, ref_amp, False)}}

    # other take
    two = [i for i, s in enumerate(speakers) if len(by_speaker[s]) >= 2]
    second = {s: by_speaker[s][1] for s in (speakers[i] for i in two)}
    shipped = np.array([amplitudes([t.audio], [t.emotion], s) for s, t in second.items()])
    alone = np.array([amplitudes([t.audio], [t.emotion], s, match_reference=False) for s, t in second.items()])
    real = np.array([_amplitudes(t.motion, vm) for t in second.values()])
    other_take = {"speakers": len(two), "shipped": follow(ref_amp[two], shipped, False),
                  "model_alone": follow(ref_amp[two], alone, False),
                  "corpus_ceiling": {**follow(ref_amp[two], real, False),
                                     "note": "the reference take against the same speaker's other take"}}
    return {"same_words": same_words, "other_take": other_take}


def _presets(gen, corpus: Corpus, takes, vm: VertexMetrics, seed: int) -> dict:
    """Each shipped preset against the average style (neutral, on `takes`): how every property
    its description names, where one measures it, changed, beside its speakers' own change
    (their style labels against the mean training speaker's)."""
    from ..base.vocabulary import STYLE_FIELDS
    from ..training.ship import PRESETS, preset_speakers
    P = np.stack([corpus.styles[s["id"]] for s in corpus.manifest["speakers"] if s["split"] == "train"])

    def measured(style) -> dict:
        runs = [gen.generate(t.audio, emotion={"neutral": 1.0}, style=style, seed=seed).motion.values for t in takes]
        return {m: float(np.mean([MEASURES[m][1](v, vm) for v in runs])) for m in PRESET_MEASURES.values()}
    average = measured("average")
    out = {"takes": len(takes), "min_share_of_speakers_change": round(PRESET_MIN_SHARE, 3),
           "measures": {m: MEASURES[m][0] for m in PRESET_MEASURES.values()},
           "average": {m: float(f"{x:.4g}") for m, x in average.items()}, "presets": {}}
    def change(x: float, base: float, m: str) -> float:
        return x - base if m == "asymmetry" else x / base - 1.0
    for name in sorted(gen.conditions.presets):
        values = measured(name)
        dirs = PRESETS.get(name, ("", {}))[1]
        top = preset_speakers(P, dirs)
        described = {}
        for field, sign in dirs.items():
            m = PRESET_MEASURES.get(field)
            if m is None:
                continue
            label = P[:, STYLE_FIELDS.index(field)]
            ours, speakers = change(values[m], average[m], m), change(label[top].mean(), label.mean(), m)
            described[m] = {"direction": "up" if sign > 0 else "down", "value": float(f"{values[m]:.4g}"),
                            "change": round(float(ours), 3), "speakers_change": round(float(speakers), 3),
                            "as_described": bool(sign * ours >= PRESET_MIN_SHARE * abs(speakers))}
        out["presets"][name] = {"description": gen.conditions.preset_descriptions.get(name, ""), "described": described,
                                "as_described": all(d["as_described"] for d in described.values())}
    return out


def clear_emotion_windows(takes, length: int = 100, hop: int = 100, limit: int | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Motion windows (N x length x C) whose emotion holds throughout (neutral above 0.9, any
    other above 0.6), with that emotion's index; stops after the take that reaches `limit`."""
    clips, labels = [], []
    for take in takes:
        for s in range(0, len(take.emotion) - length, hop):
            lo = take.emotion[s:s + length].min(0)
            k = int(np.argmax(lo))
            if lo[k] > (0.9 if k == 0 else 0.6):
                clips.append(take.motion[s:s + length])
                labels.append(k)
        if limit and len(clips) >= limit:
            break
    return np.stack(clips), np.array(labels)


@torch.inference_mode()
def _swap_test(gen, corpus: Corpus, clf: EmotionClassifier, vm: VertexMetrics, n: int = 60) -> dict:
    """Pairs of test clips with different clear emotions: decode(content A, emotion B)."""
    clips, labels = clear_emotion_windows(corpus.takes("test"), limit=2 * n)
    x = (torch.from_numpy(clips) - gen.mean) / gen.std
    mu_c, _, mu_e, _ = gen.model.vae.encode(x)
    perm = np.random.default_rng(0).permutation(len(x))
    pairs = [(a, b) for a, b in zip(range(len(x)), perm) if labels[a] != labels[b]][:n]
    a, b = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    swapped = gen.model.vae.decode(mu_c[a], mu_e[b]) * gen.std + gen.mean
    recon = gen.model.vae.decode(mu_c, mu_e) * gen.std + gen.mean
    hit, corr = [], []
    for j in range(len(a)):
        v = swapped[j].numpy()
        hit.append(clf.predict_proba(clip_features(v)).mean(0).argmax() == labels[b[j]])
        corr.append(np.corrcoef(vm.gap(v), vm.gap(clips[a[j]]))[0, 1])
    rec = np.mean([np.corrcoef(vm.gap(recon[j].numpy()), vm.gap(clips[j]))[0, 1] for j in range(len(x))])
    return {"pairs": len(a), "emotion_of_b_recognised": round(float(np.mean(hit)), 3),
            "mouth_corr_with_a": round(float(np.mean(corr)), 3),
            "reconstruction_mouth_corr": round(float(rec), 3)}


@torch.inference_mode()
def _identity_retrieval(gen, corpus: Corpus, takes: int = 120) -> dict:
    """Top-1 / top-5 match of training speakers' clips (4 s from each take) to their identity."""
    ids = {s: i for i, s in enumerate(gen.manifest.get("identities", []))}
    if not ids:
        return {}
    from ..model.speech_encoder import SpeechEncoder
    enc = gen.encoder if isinstance(gen.encoder, SpeechEncoder) else SpeechEncoder()
    top1, top5 = [], []
    for j, take in enumerate(corpus.takes("train")):
        if j >= takes:
            break
        f = torch.from_numpy(enc.encode(take.audio[: 16000 * 8]))[None]
        logits = gen.model.identities.logits(gen.model.identities.audio_embedding(f))[0]
        rank = (logits > logits[ids[take.speaker]]).sum().item()
        top1.append(rank == 0)
        top5.append(rank < 5)
    return {"clips": len(top1), "library": len(ids), "top1": round(float(np.mean(top1)), 3),
            "top5": round(float(np.mean(top5)), 3)}
