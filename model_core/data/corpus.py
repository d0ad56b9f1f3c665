"""The synthetic talking-face corpus: build it, and read it back.

A sample is a *take*: one speaker says several sentences (up to 28 s, so a take fits one
Whisper window), with pauses, each sentence in an emotion that may change mid-sentence. Audio is
16 kHz, motion 25 fps (ARKit-52 + head rotation), and every take carries its labels: speaker,
style parameters, per-frame emotion, phone timings, text.

Splits hold out whole voices and whole sentences: a voice (synthesizer voice + variant) and a
sentence each belong to exactly one of train/val/test, chosen by a stable hash.

Layout of a corpus folder:
    manifest.json                 seed, counts, speakers, channel layout, statistics
    {train,val,test}/shard_NNNN.npz   takes, concatenated (no pickle; nested labels as JSON text)
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..base.errors import LaliaError
from ..base.motion import ARKIT_HEAD_LAYOUT
from ..base.signals import frame_energy
from ..base.vocabulary import EMOTIONS, FPS, STYLE_FIELDS
from .animator import Style, animate, emotion_prosody
from .sentences import load_sentences
from .tts import ESPEAK_LANGS, ESPEAK_VARIANTS, FLITE_VOICES, SAMPLE_RATE, Phone, synthesize

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
HOP = int(SAMPLE_RATE / FPS)  # 640 audio samples per motion frame
MAX_TAKE_SECONDS = 28.0
TAKES_PER_SHARD = 64


def stable_split(key: str, salt: str, val: float = 0.1, test: float = 0.1) -> str:
    h = int(hashlib.sha1(f"{salt}:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if h < test else "val" if h < test + val else "train"


@dataclass
class Speaker:
    id: int
    voice: dict
    style: Style

    @property
    def voice_key(self) -> str:
        return f"{self.voice['engine']}:{self.voice['name']}"

    @property
    def split(self) -> str:
        if self.voice["engine"] == "flite":  # three voices: hold one out for test
            return {"slt": "train", "awb": "train", "rms": "test"}[self.voice["name"]]
        return stable_split(self.voice["name"], "voice")

    def as_dict(self) -> dict:
        return {"id": self.id, "voice": self.voice, "style": self.style.as_dict(),
                "split": self.split}


def make_speakers(seed: int, n: int = 400) -> list[Speaker]:
    """Speakers = voice x variant x rate x pitch x range (espeak) or flite voice x tempo x f0,
    each with a speaking style drawn from `Style.sample`."""
    rng = np.random.default_rng([seed, 1])
    speakers = []
    for i in range(n):
        if rng.random() < 0.3:
            name = FLITE_VOICES[int(rng.integers(len(FLITE_VOICES)))]
            base_f0 = {"slt": 175.0, "awb": 110.0, "rms": 105.0}[name]
            voice = {"engine": "flite", "name": name, "stretch": float(rng.uniform(0.85, 1.2)),
                     "f0": float(base_f0 * rng.uniform(0.85, 1.15)), "f0_std": float(rng.uniform(10, 30))}
        else:
            lang = ESPEAK_LANGS[int(rng.integers(len(ESPEAK_LANGS)))]
            var = ESPEAK_VARIANTS[int(rng.integers(len(ESPEAK_VARIANTS)))]
            voice = {"engine": "espeak", "name": f"{lang}+{var}", "rate": int(rng.uniform(135, 200)),
                     "pitch": int(rng.uniform(25, 75)), "range": int(rng.uniform(25, 80))}
        speakers.append(Speaker(i, voice, Style.sample(rng)))
    return speakers


@dataclass
class Take:
    audio: np.ndarray      # float32, exactly T * HOP samples
    motion: np.ndarray     # T x 55 float32 (ARKIT_HEAD_LAYOUT)
    emotion: np.ndarray    # T x 8 float32
    phones: list           # [(symbol, start, end, stressed)]
    texts: list            # sentences in order
    speaker: int

    @property
    def num_frames(self) -> int:
        return len(self.motion)


def _emotion_plan(rng) -> tuple[np.ndarray, np.ndarray | None]:
    """Start emotion (8,) and, for some sentences, a second one it turns into."""
    def one():
        e = np.zeros(8, np.float32)
        k = 0 if rng.random() < 0.3 else int(rng.integers(1, 8))
        e[k] = 1.0 if k == 0 else rng.uniform(0.25, 1.0)
        return e
    first = one()
    return first, (one() if rng.random() < 0.2 else None)


def make_take(speaker: Speaker, sentences: list[str], rng: np.random.Generator,
              augment: bool = True) -> Take | None:
    """Synthesize and animate one take; unspeakable sentences are skipped with a log line."""
    pieces, phones, texts, emo_segments = [], [], [], []
    t0 = 0.0
    target = rng.uniform(10.0, MAX_TAKE_SECONDS - 1)
    prev = None
    for text in sentences:
        emo, turn = _emotion_plan(rng)
        if prev is not None and rng.random() < 0.3:
            emo = prev
        try:
            utt = synthesize(text, speaker.voice, emotion_prosody(emo))
        except LaliaError as e:
            log.info("skipped sentence %r for %s: %s", text, speaker.voice_key, e)
            continue
        pause = rng.uniform(0.15, 0.7) if pieces else rng.uniform(0.05, 0.4)
        if t0 + pause + utt.duration > MAX_TAKE_SECONDS:
            break
        pieces.append(np.zeros(int(pause * SAMPLE_RATE), np.float32))
        t0 += pause
        pieces.append(utt.audio)
        phones += [Phone(p.symbol, p.start + t0, p.end + t0, p.stressed) for p in utt.phones]
        # the emotion turns at a word-ish boundary in the middle of the sentence
        mid = t0 + utt.duration * rng.uniform(0.35, 0.65) if turn is not None else None
        emo_segments.append((t0, t0 + utt.duration, emo, turn, mid))
        texts.append(text)
        t0 += utt.duration
        prev = turn if turn is not None else emo
        if t0 >= target:
            break
    if not texts:
        return None
    pieces.append(np.zeros(int(rng.uniform(0.1, 0.5) * SAMPLE_RATE), np.float32))
    audio = np.concatenate(pieces)
    T = int(round(len(audio) / HOP))
    audio = np.pad(audio, (0, max(0, T * HOP - len(audio))))[: T * HOP]
    emotion = _emotion_track(emo_segments, T)
    motion = animate(phones, T, emotion, speaker.style, rng, frame_energy(audio, T))
    if augment:
        audio = _augment(audio, rng)
    assert len(audio) == motion.num_frames * HOP
    return Take(audio.astype(np.float32), motion.values, emotion,
                [(p.symbol, round(float(p.start), 4), round(float(p.end), 4), bool(p.stressed)) for p in phones],
                texts, speaker.id)


def _emotion_track(segments, T) -> np.ndarray:
    """Per-frame emotion: each sentence's emotion held through the following pause, blended
    over 0.4 s at changes."""
    t = np.arange(T) / FPS
    track = np.zeros((T, 8), np.float32)
    track[:, 0] = 1.0
    for j, (s, e, emo, turn, mid) in enumerate(segments):
        end = segments[j + 1][0] if j + 1 < len(segments) else t[-1] + 1
        sel = (t >= (0 if j == 0 else s)) & (t < end)
        track[sel] = emo
        if turn is not None:
            track[(t >= mid) & (t < end)] = turn
    k = int(0.4 * FPS)
    kernel = np.ones(k) / k
    pad = np.pad(track, ((k, k), (0, 0)), mode="edge")
    return np.stack([np.convolve(pad[:, c], kernel, "same")[k:-k] for c in range(8)], 1)


def _augment(audio: np.ndarray, rng) -> np.ndarray:
    """Optional room reverb and background noise, so the model hears imperfect audio."""
    out = audio
    if rng.random() < 0.25:
        rt = rng.uniform(0.15, 0.5)
        n = int(rt * SAMPLE_RATE)
        ir = rng.normal(0, 1, n) * np.exp(-6.9 * np.arange(n) / n)
        ir[0] = 1.0 / rng.uniform(0.05, 0.3)
        wet = np.convolve(out, ir)[: len(out)]
        out = wet / (np.abs(wet).max() + 1e-9) * np.abs(audio).max()
    if rng.random() < 0.3:
        snr = rng.uniform(15, 40)
        p = np.mean(out ** 2) + 1e-12
        out = out + rng.normal(0, np.sqrt(p / 10 ** (snr / 10)), len(out))
    return out.astype(np.float32)


# ---- building ---------------------------------------------------------------------------
_job_input: dict = {}  # each worker's speakers and sentences by split, set once as it starts


def _set_job_input(by_split: dict, sent_split: dict) -> None:
    _job_input.update(speakers=by_split, sentences=sent_split)


def _take_job(args):
    index, seed, split = args
    speakers, sentences = _job_input["speakers"][split], _job_input["sentences"][split]
    rng = np.random.default_rng([seed, 2, index])
    spk = speakers[int(rng.integers(len(speakers)))]
    picks = [sentences[int(i)] for i in rng.choice(len(sentences), size=12, replace=False)]
    return split, make_take(spk, picks, rng)


def build_corpus(out: Path, hours: float, seed: int = 0, workers: int | None = None,
                 progress=None) -> dict:
    """Build `hours` of corpus into `out`. Deterministic in (seed, hours)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise LaliaError(f"{out} is not empty; choose a new folder (nothing is overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    speakers = make_speakers(seed)
    sentences = load_sentences()
    by_split = {s: [sp for sp in speakers if sp.split == s] for s in SPLITS}
    sent_split = {s: [x for x in sentences if stable_split(x, "sentence", 0.05, 0.05) == s] for s in SPLITS}
    share = {"train": 0.8, "val": 0.1, "test": 0.1}
    goal = {s: hours * 3600 * share[s] for s in SPLITS}
    got = {s: 0.0 for s in SPLITS}
    writers = {s: _ShardWriter(out / s) for s in SPLITS}
    start = time.time()
    workers = workers or mp.cpu_count()
    ctx = mp.get_context("fork")

    # take i's split depends on i alone (8 train : 1 val : 1 test), so the corpus does not
    # depend on the order in which workers finish
    pattern = ["train"] * 8 + ["val", "test"]

    done = lambda: all(got[s] >= goal[s] for s in SPLITS)

    # One take per worker process: espeak-ng's state then depends on the take alone. The
    # speakers and sentences reach the workers once, as they start (forked), and jobs go out
    # in bounded batches of small tuples: an unbounded job stream with large arguments filled
    # the pipe to the workers and could deadlock the pool's shutdown.
    batch = 4 * workers
    with ctx.Pool(workers, initializer=_set_job_input, initargs=(by_split, sent_split),
                  maxtasksperchild=1) as pool:
        first = 1
        while not done():
            jobs = [(i, seed, pattern[i % 10]) for i in range(first, first + batch)]
            first += batch
            for split, take in pool.imap(_take_job, jobs, chunksize=1):
                if take is None or got[split] >= goal[split] or done():
                    continue
                writers[split].add(take)
                got[split] += len(take.audio) / SAMPLE_RATE
                if progress:
                    progress(sum(got.values()) / (hours * 3600))
        pool.terminate()
    stats = {s: writers[s].close() for s in SPLITS}
    elapsed = time.time() - start
    manifest = {
        "format": "lalia-corpus", "version": 1, "seed": seed, "hours_requested": hours,
        "fps": FPS, "sample_rate": SAMPLE_RATE, "channels": list(ARKIT_HEAD_LAYOUT),
        "emotions": list(EMOTIONS), "style_fields": list(STYLE_FIELDS),
        "speakers": [s.as_dict() for s in speakers], "splits": stats,
        "build_seconds": round(elapsed, 1), "workers": workers,
        "text_source": "Debian package fortunes (/usr/share/games/fortunes)",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    log.info("corpus: %.2f h in %.0f s (%d workers)", sum(got.values()) / 3600, elapsed, workers)
    return manifest


class _ShardWriter:
    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.buf: list[Take] = []
        self.n_shards = 0
        self.stats = {"takes": 0, "seconds": 0.0, "speakers": set(), "sentences": set(),
                      "phones": {}, "emotion_seconds": np.zeros(8)}

    def add(self, take: Take):
        self.buf.append(take)
        st = self.stats
        st["takes"] += 1
        st["seconds"] += len(take.audio) / SAMPLE_RATE
        st["speakers"].add(take.speaker)
        st["sentences"].update(take.texts)
        for p in take.phones:
            st["phones"][p[0]] = st["phones"].get(p[0], 0) + 1
        st["emotion_seconds"] += take.emotion.sum(0) / FPS
        if len(self.buf) >= TAKES_PER_SHARD:
            self.flush()

    def flush(self):
        if not self.buf:
            return
        write_shard(self.folder / f"shard_{self.n_shards:04d}.npz", self.buf)
        self.n_shards += 1
        self.buf = []

    def close(self) -> dict:
        self.flush()
        st = self.stats
        return {"takes": st["takes"], "hours": round(st["seconds"] / 3600, 3),
                "speakers": len(st["speakers"]), "sentences": len(st["sentences"]),
                "phone_counts": dict(sorted(st["phones"].items())), "shards": self.n_shards,
                "emotion_hours": {e: round(float(h) / 3600, 3) for e, h in zip(EMOTIONS, st["emotion_seconds"])}}


def write_shard(path: Path, takes: list[Take]) -> None:
    frames = np.cumsum([0] + [t.num_frames for t in takes])
    np.savez(path,
             audio=np.concatenate([np.clip(t.audio, -1, 1) * 32767 for t in takes]).astype(np.int16),
             motion=np.concatenate([t.motion for t in takes]).astype(np.float16),
             emotion=np.concatenate([t.emotion for t in takes]).astype(np.float16),
             frame_offsets=frames.astype(np.int64),
             speaker=np.array([t.speaker for t in takes], np.int32),
             labels=np.array(json.dumps([{"texts": t.texts, "phones": t.phones} for t in takes])))


# ---- reading ----------------------------------------------------------------------------
@dataclass
class CorpusTake:
    audio: np.ndarray
    motion: np.ndarray
    emotion: np.ndarray
    speaker: int
    style: np.ndarray
    texts: list
    phones: list


class Corpus:
    """Read-only access to a built corpus folder."""

    def __init__(self, root):
        self.root = Path(root)
        mf = self.root / "manifest.json"
        if not mf.is_file():
            raise LaliaError(f"{self.root} is not a Lalia corpus (no manifest.json); build one "
                             "with `python -m model_core corpus build`")
        self.manifest = json.loads(mf.read_text())
        # imported real datasets have no style labels: zeros
        self.styles = {s["id"]: np.array([s["style"].get(f, 0.0) for f in STYLE_FIELDS], np.float32)
                       for s in self.manifest["speakers"]}
        self.channels = tuple(self.manifest.get("channels", ARKIT_HEAD_LAYOUT))

    def shards(self, split: str) -> list[Path]:
        return sorted((self.root / split).glob("shard_*.npz"))

    def takes(self, split: str):
        for shard in self.shards(split):
            with np.load(shard, allow_pickle=False) as d:
                off = d["frame_offsets"]
                labels = json.loads(str(d["labels"]))
                audio, motion, emotion = d["audio"], d["motion"], d["emotion"]
                for i in range(len(off) - 1):
                    a, b = off[i], off[i + 1]
                    yield CorpusTake(audio[a * HOP: b * HOP].astype(np.float32) / 32767,
                                     motion[a:b].astype(np.float32), emotion[a:b].astype(np.float32),
                                     int(d["speaker"][i]), self.styles[int(d["speaker"][i])],
                                     labels[i]["texts"], labels[i]["phones"])
