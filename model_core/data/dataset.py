"""Training data: speech features cached beside a corpus, and random training windows.

`cache_features(corpus)` runs the speech encoder once over every take and writes
`features/{split}/shard_NNNN.npz` (float16, 25 fps, aligned with the motion). `WindowSampler`
draws DiffPoseTalk-style training examples: a window of `window` frames, its `prev` ground-truth
previous frames, a style reference clip from another take of the same speaker, the per-frame
emotion, random truncation with padded frames marked invalid. With `swap_emotions`, some
windows get another emotion than the one their voice was synthesized with, and the animator
re-renders their mouth for it (`reanimated_mouth`): what the sliders do to real speech.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np
import torch

from ..base.errors import LaliaError
from ..base.phones import UNKNOWN_PHONE, phone_track
from ..base.vocabulary import EMOTIONS, FPS, STYLE_FIELDS
from .animator import Style, animate
from .corpus import HOP, Corpus
from .tts import Phone

log = logging.getLogger(__name__)


def cache_features(corpus_root, encoder=None, splits=("train", "val", "test"), progress=None) -> None:
    from ..model.speech_encoder import SpeechEncoder
    corpus = Corpus(corpus_root)
    encoder = encoder or SpeechEncoder()
    for split in splits:
        out_dir = corpus.root / "features" / split
        out_dir.mkdir(parents=True, exist_ok=True)
        for shard in corpus.shards(split):
            out = out_dir / shard.name
            if out.exists():
                continue
            with np.load(shard, allow_pickle=False) as d:
                off, audio = d["frame_offsets"], d["audio"]
            feats = [encoder.encode(audio[a * HOP:b * HOP].astype(np.float32) / 32767, n_frames=b - a)
                     for a, b in zip(off[:-1], off[1:])]
            tmp = out.with_suffix(".tmp.npz")
            np.savez(tmp, features=np.concatenate(feats).astype(np.float16), frame_offsets=off)
            tmp.replace(out)
            if progress:
                progress(split, shard.name)


@dataclass
class SplitData:
    motion: np.ndarray     # F x C float32 (all takes concatenated)
    features: np.ndarray   # F x A float16
    emotion: np.ndarray    # F x 8 float32
    offsets: np.ndarray    # takes + 1
    speaker: np.ndarray    # per take
    style: np.ndarray      # per take style parameters
    channels: tuple = ()   # motion channel names
    phones: np.ndarray | None = None  # F phone indices (base/phones.py; UNKNOWN_PHONE where none)
    take_phones: list | None = None   # per take: its timed phones, (symbol, start s, end s, stressed)


def load_split(corpus_root, split: str) -> SplitData:
    corpus = Corpus(corpus_root)
    mot, fea, emo, spk, sty, pho, timed, offs = [], [], [], [], [], [], [], [0]
    for shard in corpus.shards(split):
        fpath = corpus.root / "features" / split / shard.name
        if not fpath.exists():
            raise LaliaError(f"No cached speech features for {shard}; run "
                             f"`python -m model_core features {corpus.root}` first")
        with np.load(shard, allow_pickle=False) as d, np.load(fpath, allow_pickle=False) as f:
            if not np.array_equal(d["frame_offsets"], f["frame_offsets"]):
                raise LaliaError(f"{fpath} does not match {shard}: rebuild the feature cache")
            mot.append(d["motion"].astype(np.float32))
            emo.append(d["emotion"].astype(np.float32))
            fea.append(f["features"])
            lens = np.diff(d["frame_offsets"])
            labels = json.loads(str(d["labels"])) if "labels" in d else [{}] * len(lens)
            pho += [phone_track(lab.get("phones", []), int(n)).astype(np.int16) for lab, n in zip(labels, lens)]
            timed += [[tuple(p) for p in lab.get("phones", [])] for lab in labels]
            offs += list(offs[-1] + np.cumsum(lens))
            spk += d["speaker"].tolist()
            sty += [corpus.styles[int(s)] for s in d["speaker"]]
    if not mot:
        raise LaliaError(f"Corpus {corpus.root} has no '{split}' shards")
    return SplitData(np.concatenate(mot), np.concatenate(fea), np.concatenate(emo),
                     np.array(offs), np.array(spk), np.array(sty), corpus.channels, np.concatenate(pho), timed)


# how far the animator's coarticulation reaches: a re-rendered span is drawn with this much
# context each side, so it matches the take's own rendering inside the span
REANIMATE_CONTEXT_S = 1.0


def reanimated_mouth(phones: list, style: np.ndarray, start: int, stop: int, emotion: np.ndarray,
                     channels, fps: float = FPS) -> np.ndarray:
    """The animator's motion for frames [start, stop) of a take with timed `phones` (as stored in
    a corpus shard's labels) and style parameters `style` (STYLE_FIELDS order), under the
    constant emotion intensities `emotion` (8,): (stop - start) x len(channels). Only the mouth
    and jaw are the words' and the emotion's alone; the rest (blinks, gaze, head, brows) is drawn
    at random, as in any take."""
    margin = int(round(REANIMATE_CONTEXT_S * fps))
    t0 = (start - margin) / fps
    t1 = (stop + margin) / fps
    n = stop - start + 2 * margin
    # phones cut at the context's edges (the animator's prosody reads frames inside it)
    near = [Phone(p[0], max(p[1] - t0, 0.0), min(p[2] - t0, n / fps), bool(p[3]) if len(p) > 3 else False)
            for p in phones if p[2] > t0 and p[1] < t1]
    motion = animate(near, n, np.tile(np.asarray(emotion, np.float32), (n, 1)),
                     Style(**dict(zip(STYLE_FIELDS, map(float, style)))), np.random.default_rng(0), fps=fps)
    return motion.select(channels).values[margin:margin + stop - start]


class WindowSampler:
    """Random training windows from one split, batches of speaker pairs (for NT-Xent)."""

    def __init__(self, data: SplitData, window: int, prev: int, mean: np.ndarray, std: np.ndarray,
                 identities: dict[int, int] | None = None, seed: int = 0, swap_emotions: float = 0.0):
        """`swap_emotions`: the share of windows given another emotion (`swap_emotion`)."""
        self.d, self.N, self.P = data, window, prev
        self.swap_emotions = swap_emotions
        if swap_emotions and not (data.take_phones and any(data.take_phones)):
            raise LaliaError("swapping emotions re-renders the mouth from the takes' phone timings; this corpus "
                             "has none")
        self.mouth = np.array([c.startswith(("jaw", "mouth")) for c in data.channels])
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)
        self.rng = np.random.default_rng(seed)
        self.identities = identities or {}
        self.by_speaker: dict[int, list[int]] = {}
        for i, s in enumerate(data.speaker):
            self.by_speaker.setdefault(int(s), []).append(i)
        self.speakers = np.array(sorted(self.by_speaker))

    def _crop(self, take: int, length: int, allow_start: bool):
        a, b = self.d.offsets[take], self.d.offsets[take + 1]
        T = b - a
        if allow_start and (self.rng.random() < 0.15 or T - length <= self.P):
            return a, a, False  # a take's first window: no previous frames
        lo, hi = a + self.P, max(a + self.P, b - length)
        s = int(self.rng.integers(lo, hi + 1))
        return s, a, True

    def example(self, speaker: int):
        takes = self.by_speaker[speaker]
        take = takes[int(self.rng.integers(len(takes)))]
        s, a, has_prev = self._crop(take, self.N, True)
        end = self.d.offsets[take + 1]
        n = min(self.N, end - s)
        if self.rng.random() < 0.1:  # random truncation teaches endings
            n = int(self.rng.integers(max(8, n // 5), n + 1))
        norm = lambda m: (m - self.mean) / self.std
        x = np.zeros((self.N, self.mean.size), np.float32)
        x[:n] = norm(self.d.motion[s:s + n])
        audio = np.zeros((self.N, self.d.features.shape[1]), np.float32)
        audio[:n] = self.d.features[s:s + n]
        emotion = np.zeros((self.N, 8), np.float32)
        emotion[:n] = self.d.emotion[s:s + n]
        emotion[n:] = emotion[max(n - 1, 0)]
        valid = np.zeros(self.N, bool)
        valid[:n] = True
        phones = np.full(self.N, UNKNOWN_PHONE, np.int64)
        if self.d.phones is not None:
            phones[:n] = self.d.phones[s:s + n]
        prev = norm(self.d.motion[s - self.P:s]) if has_prev else np.zeros((self.P, x.shape[1]), np.float32)
        swapped = bool(self.swap_emotions) and self.rng.random() < self.swap_emotions
        if swapped:
            emotion[:] = self.swap_emotion(take, s - a, n, has_prev, x, prev)
        # style reference: another take of this speaker when there is one (no leakage)
        other = [t for t in takes if t != take] or [take]
        rt = other[int(self.rng.integers(len(other)))]
        ra, rb = self.d.offsets[rt], self.d.offsets[rt + 1]
        rs = int(self.rng.integers(ra, max(ra, rb - self.N) + 1))
        ref = np.zeros((self.N, x.shape[1]), np.float32)
        rn = min(self.N, rb - rs)
        ref[:rn] = norm(self.d.motion[rs:rs + rn])
        ref_valid = np.zeros(self.N, bool)
        ref_valid[:rn] = True
        return dict(x0=x, audio=audio, emotion=emotion, emotion_known=bool(emotion[:n].sum() > 0),
                    valid=valid, phones=phones, prev=prev, swapped=swapped,
                    has_prev=has_prev, ref=ref, ref_valid=ref_valid, speaker=speaker,
                    identity=self.identities.get(speaker, -1), style_params=self.d.style[take])

    def swap_emotion(self, take: int, start: int, n: int, has_prev: bool, x: np.ndarray,
                     prev: np.ndarray) -> np.ndarray:
        """Give frames [start, start + n) of `take` (and their previous frames) another emotion
        than their voice's: one of the eight at a random intensity, held over the window. The
        animator re-renders the mouth and jaw for it, in place in `x` and `prev`; the rest of
        the face keeps the take's. Returns the emotion intensities (8,)."""
        own = int(np.argmax(self.d.emotion[self.d.offsets[take] + start]))
        k = int(self.rng.choice([e for e in range(len(EMOTIONS)) if e != own]))
        emotion = np.zeros(len(EMOTIONS), np.float32)
        emotion[k] = 1.0 if EMOTIONS[k] == "neutral" else self.rng.uniform(0.4, 1.0)
        first = start - self.P if has_prev else start
        mouth = reanimated_mouth(self.d.take_phones[take], self.d.style[take], first, start + n, emotion,
                                 self.d.channels)[:, self.mouth]
        norm = lambda v, cols: (v - self.mean[cols]) / self.std[cols]
        x[:n, self.mouth] = norm(mouth[len(mouth) - n:], self.mouth)
        if has_prev:
            prev[:, self.mouth] = norm(mouth[:self.P], self.mouth)
        return emotion

    def batch(self, size: int) -> dict[str, torch.Tensor]:
        spk = self.rng.choice(self.speakers, size=max(1, size // 2), replace=len(self.speakers) < size // 2)
        items = [self.example(int(s)) for s in spk for _ in range(2)][:size]
        out = {}
        for k in items[0]:
            v = np.stack([np.asarray(it[k]) for it in items])
            out[k] = torch.from_numpy(v)
        return out


def corpus_samplers(corpora: list, window: int, prev: int, manifest: dict, seed: int = 0,
                    identities: dict[int, int] | None = None, swap_emotions: float = 0.0) -> list[WindowSampler]:
    """A `WindowSampler` over each corpus's train split, normalised with the model's statistics
    (its `manifest`), seeded `seed`, `seed + 1`, ...; a corpus whose motion channels differ from
    the model's is refused."""
    mean = np.array(manifest["norm_mean"], np.float32)
    std = np.array(manifest["norm_std"], np.float32)
    samplers = []
    for i, corpus in enumerate(corpora):
        data = load_split(corpus, "train")
        if data.channels and tuple(data.channels) != tuple(manifest["channels"]):
            raise LaliaError(f"{corpus}'s motion channels differ from the model's")
        samplers.append(WindowSampler(data, window, prev, mean, std, identities, seed=seed + i,
                                      swap_emotions=swap_emotions))
    return samplers
