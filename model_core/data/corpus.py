"""The synthetic talking-face corpus: build it, and read it back.

A sample is a *take*: one speaker says several sentences (up to 28 s, so a take fits one
Whisper window), with pauses, each sentence in an emotion that may change mid-sentence. Audio is
16 kHz, motion 25 fps (ARKit-52 + head rotation), and every take carries its labels: speaker,
style parameters, per-frame emotion, phone timings, text.

Splits hold out whole voices and whole sentences: a voice (synthesizer voice + variant) and a
sentence each belong to exactly one of train/val/test, chosen by a stable hash. Voice families
(`voices`): espeak-ng and flite (the default, as before), and the natural voices Kokoro-82M and Piper
(`neural_tts.py`); three Kokoro voices (`KOKORO_HELD_OUT`) never enter any split: they make the
held-out neural-TTS benchmark (`neural_benchmark.py`).

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
from .augment import augment as augment_audio
from .sentences import load_sentences
from .tts import ESPEAK_LANGS, ESPEAK_VARIANTS, FLITE_VOICES, SAMPLE_RATE, Phone, synthesize

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
HOP = int(SAMPLE_RATE / FPS)  # 640 audio samples per motion frame
MAX_TAKE_SECONDS = 28.0
TAKES_PER_SHARD = 64
FAMILIES = ("espeak", "flite", "kokoro", "piper")
# whole Kokoro voices kept out of every split, for the neural-TTS benchmark (one US woman, one US man,
# one British man, all of which the voice hash would otherwise put in train)
KOKORO_HELD_OUT = ("af_nova", "am_onyx", "bm_fable")


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
        engine = self.voice["engine"]
        if engine == "flite":  # three voices: hold one out for test
            return {"slt": "train", "awb": "train", "rms": "test"}[self.voice["name"]]
        if engine == "piper":  # one voice: it cannot be held out of itself
            return "train"
        if engine == "kokoro":  # a blend belongs where its most held-out part does
            parts = [n for n, _ in self.voice.get("blend") or [[self.voice["name"], 1.0]]]
            if any(n in KOKORO_HELD_OUT for n in parts):
                return "heldout"
            order = ("train", "val", "test")
            return max((stable_split(n, "voice") for n in parts), key=order.index)
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


def make_kokoro_speakers(seed: int, n: int = 150, first_id: int = 1000) -> list[Speaker]:
    """Kokoro speakers: one English voice or (a quarter of them) a blend of two training voices, at
    a speed of 0.8-1.25, each with a speaking style. The held-out voices are never drawn."""
    from .neural_tts import KOKORO_ENGLISH
    rng = np.random.default_rng([seed, 5])
    pool = [v for v in KOKORO_ENGLISH if v not in KOKORO_HELD_OUT]
    train = [v for v in pool if stable_split(v, "voice") == "train"]
    speakers = []
    for i in range(n):
        voice = {"engine": "kokoro", "speed": round(float(rng.uniform(0.8, 1.25)), 3)}
        if rng.random() < 0.25:
            a, b = (train[int(j)] for j in rng.choice(len(train), 2, replace=False))
            w = round(float(rng.uniform(0.3, 0.7)), 2)
            voice.update(name=f"{a}+{b}", blend=[[a, w], [b, round(1 - w, 2)]])
        else:
            voice["name"] = pool[int(rng.integers(len(pool)))]
        speakers.append(Speaker(first_id + i, voice, Style.sample(rng)))
    return speakers


def make_piper_speakers(seed: int, n: int = 40, first_id: int = 2000) -> list[Speaker]:
    """Piper speakers: the one voice at several tempos and amounts of prosody noise."""
    rng = np.random.default_rng([seed, 6])
    return [Speaker(first_id + i, {"engine": "piper", "name": "joe",
                                   "length_scale": round(float(rng.uniform(0.85, 1.2)), 3),
                                   "noise_scale": round(float(rng.uniform(0.5, 0.8)), 3),
                                   "noise_w": round(float(rng.uniform(0.6, 1.0)), 3)}, Style.sample(rng))
            for i in range(n)]


def parse_voices(spec: str | None) -> dict[str, float] | None:
    """"espeak,flite,kokoro" or "kokoro=0.7,piper=0.3" -> {family: share of takes}; None = the default
    (espeak-ng and flite speakers drawn as before)."""
    if not spec:
        return None
    mix = {}
    for part in spec.split(","):
        name, _, w = part.strip().partition("=")
        if name not in FAMILIES:
            raise LaliaError(f"unknown voice family {name!r}; choose from {', '.join(FAMILIES)}")
        try:
            mix[name] = float(w) if w else 1.0
        except ValueError:
            raise LaliaError(f"voice family weight {w!r} is not a number") from None
        if mix[name] <= 0:
            raise LaliaError(f"voice family {name} needs a positive weight")
    total = sum(mix.values())
    return {k: v / total for k, v in mix.items()}


def corpus_speakers(seed: int, mix: dict[str, float] | None) -> list[Speaker]:
    """Every speaker of a build: the espeak-ng/flite pool (ids 0-399), Kokoro (1000+), Piper (2000+)."""
    classic = make_speakers(seed)
    if mix is None:
        return classic
    out = [s for s in classic if s.voice["engine"] in mix]
    if "kokoro" in mix:
        out += make_kokoro_speakers(seed)
    if "piper" in mix:
        out += make_piper_speakers(seed)
    return out


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
              augment: str = "basic") -> Take | None:
    """Synthesize and animate one take; unspeakable sentences are skipped with a log line.
    `augment`: the damage profile of `augment.py` ("none", "basic", "full")."""
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
    audio = augment_audio(audio, rng, augment)
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


# ---- building ---------------------------------------------------------------------------
_job_input: dict = {}  # each worker's speakers and sentences by split, set once as it starts


def _set_job_input(by_split: dict, sent_split: dict, mix: dict | None, augment: str) -> None:
    _job_input.update(speakers=by_split, sentences=sent_split, mix=mix, augment=augment)


def _pick_speaker(speakers: list[Speaker], mix: dict | None, rng) -> Speaker:
    """Uniform over the split's speakers (the default), or a family by its share first."""
    if mix is None:
        return speakers[int(rng.integers(len(speakers)))]
    present = [f for f in mix if any(s.voice["engine"] == f for s in speakers)]
    w = np.array([mix[f] for f in present])
    family = present[int(rng.choice(len(present), p=w / w.sum()))]
    mine = [s for s in speakers if s.voice["engine"] == family]
    return mine[int(rng.integers(len(mine)))]


def _take_job(args):
    index, seed, split = args
    speakers, sentences = _job_input["speakers"][split], _job_input["sentences"][split]
    rng = np.random.default_rng([seed, 2, index])
    spk = _pick_speaker(speakers, _job_input["mix"], rng)
    picks = [sentences[int(i)] for i in rng.choice(len(sentences), size=12, replace=False)]
    return split, make_take(spk, picks, rng, _job_input["augment"])


def build_corpus(out: Path, hours: float, seed: int = 0, workers: int | None = None,
                 progress=None, voices: str | None = None, augment: str = "basic") -> dict:
    """Build `hours` of corpus into `out`. Deterministic in (seed, hours, voices, augment).
    voices: the voice families and their shares of takes (`parse_voices`); augment: the damage
    profile of `augment.py`."""
    from .augment import PROFILES
    mix = parse_voices(voices)
    if mix and "piper" in mix:
        log.warning("Piper's joe voice is fine-tuned from lessac, whose data is licensed for research only: "
                    "keep this corpus out of weights you ship (docs/voices.md)")
    if augment not in PROFILES:
        raise LaliaError(f"unknown augmentation profile {augment!r}; choose one of {', '.join(PROFILES)}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise LaliaError(f"{out} is not empty; choose a new folder (nothing is overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    speakers = corpus_speakers(seed, mix)
    sentences = load_sentences()
    by_split = {s: [sp for sp in speakers if sp.split == s] for s in SPLITS}
    sent_split = {s: [x for x in sentences if stable_split(x, "sentence", 0.05, 0.05) == s] for s in SPLITS}
    share = {"train": 0.8, "val": 0.1, "test": 0.1}
    goal = {s: hours * 3600 * share[s] for s in SPLITS}
    got = {s: 0.0 for s in SPLITS}
    engine_of = {sp.id: sp.voice["engine"] for sp in speakers}
    family_s: dict = {s: {} for s in SPLITS}  # seconds per voice family and split
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
    with ctx.Pool(workers, initializer=_set_job_input, initargs=(by_split, sent_split, mix, augment),
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
                fam = family_s[split]
                fam[engine_of[take.speaker]] = fam.get(engine_of[take.speaker], 0.0) + len(take.audio) / SAMPLE_RATE
                if progress:
                    progress(sum(got.values()) / (hours * 3600))
                if done():  # the batch's other takes would be thrown away: don't wait for them
                    break
        pool.terminate()
    stats = {s: writers[s].close() for s in SPLITS}
    elapsed = time.time() - start
    manifest = {
        "format": "lalia-corpus", "version": 1, "seed": seed, "hours_requested": hours,
        "fps": FPS, "sample_rate": SAMPLE_RATE, "channels": list(ARKIT_HEAD_LAYOUT),
        "emotions": list(EMOTIONS), "style_fields": list(STYLE_FIELDS),
        "speakers": [s.as_dict() for s in speakers], "splits": stats,
        "voices": mix or {"espeak": None, "flite": None}, "augment": augment,
        "held_out_voices": [f"kokoro:{v}" for v in KOKORO_HELD_OUT] if mix and "kokoro" in mix else [],
        "family_hours": {s: {f: round(v / 3600, 3) for f, v in sorted(fam.items())} for s, fam in family_s.items()},
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
