#!/usr/bin/env python3
"""The transcript gate on the real-speech benchmark: how often a clip's own transcript aligns and
is used, and how often another clip's transcript (a wrong one) is caught.

    python tools/transcript_study.py --set realspeech --split tune    # the clips the thresholds were chosen on
    python tools/transcript_study.py --set realspeech --split report  # the others (docs/transcript.md)

The split is by speaker: TUNE_SPEAKERS choose the thresholds, every other speaker (the held-out
ones included) is only reported. A clip's wrong transcript is the next clip's (of the same
speaker group, another text), so a one-word clip gets another single word and a sentence
another sentence. With --lipsync it also measures the shipped model's lip sync on the split
(`evaluation/lipsync.py`, against the clips' reference alignments): audio only, and with the
clip's transcript. Prints a summary and, with --out, writes every clip's numbers.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TUNE_SPEAKERS = ("asterisk-allison", "klettres-en", "commonvoice-en", "mfa-plat-chat-speaker")


def split_clips(clips: list[dict], split: str) -> list[dict]:
    tune = [c for c in clips if c["speaker"] in TUNE_SPEAKERS]
    return tune if split == "tune" else [c for c in clips if c["speaker"] not in TUNE_SPEAKERS]


def wrong_text(clips: list[dict], i: int) -> str:
    """Another sentence: the next clip's transcript (cyclically) of the same kind (single word or
    not) sharing under half its words with this one (near-duplicate prompts, "to increase the
    volume" for "to decrease the volume", are not another sentence)."""
    mine = set(clips[i]["aligned_words"].split())
    n = len(clips)
    for k in range(1, n):
        c = clips[(i + k) % n]
        theirs = set(c["aligned_words"].split())
        if (len(theirs) == 1) == (len(mine) == 1) and len(mine & theirs) < 0.5 * len(mine | theirs):
            return c["transcript"]
    raise ValueError("no other transcript")


def study(clips: list[dict]) -> list[dict]:
    from model_core.base.vocabulary import FPS
    from model_core.inference.transcript import align_transcript
    rows = []
    for i, c in enumerate(clips):
        wav = c["audio16k"]
        T = max(1, int(round(len(wav) / 16000 * FPS)))
        right = align_transcript(wav, c["transcript"], T)
        wrong = align_transcript(wav, wrong_text(clips, i), T)
        rows.append({"id": c["id"], "speaker": c["speaker"], "split": c["split"],
                     "words": len(c["aligned_words"].split()), "seconds": c["duration_s"],
                     "right": right.info(), "wrong": wrong.info()})
    return rows


def summary(rows: list[dict]) -> dict:
    def part(rs):
        right = [r["right"] for r in rs]
        wrong = [r["wrong"] for r in rs]
        cov = [x["coverage"] for x in right if x["coverage"] is not None]
        score = [x["score"] for x in right if x["score"] is not None]
        return {"clips": len(rs), "aligned": sum(x["coverage"] is not None for x in right),
                "used": sum(x["used"] for x in right), "wrong_caught": sum(not x["used"] for x in wrong),
                "coverage_median": round(float(np.median(cov)), 3) if cov else None,
                "coverage_min": round(float(np.min(cov)), 3) if cov else None,
                "score_median": round(float(np.median(score)), 1) if score else None,
                "score_min": round(float(np.min(score)), 1) if score else None,
                "not_used": {r["id"]: r["right"].get("warning") for r in rs if not r["right"]["used"]}}
    return {"all": part(rows), "sentences": part([r for r in rows if r["words"] > 1]),
            "single_words": part([r for r in rows if r["words"] == 1])}


def lipsync(clips: list[dict]) -> dict:
    """The five lip-sync metrics pooled over the clips: audio only vs with the transcript."""
    from model_core.evaluation.lipsync import clip_stats, summarize
    from model_core.inference.generator import load_generator
    gen = load_generator()
    stats = {"audio_only": [], "transcript": []}
    for c in clips:
        stats["audio_only"].append(clip_stats(gen.generate(c["audio16k"], seed=0).motion, c["phones"]))
        stats["transcript"].append(clip_stats(gen.generate(c["audio16k"], seed=0, transcript=c["transcript"]).motion,
                                              c["phones"]))
    rnd = lambda d: {k: round(v, 3) if isinstance(v, float) else v for k, v in d.items()}
    return {name: rnd(summarize(s)) for name, s in stats.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", required=True, help="the built real-speech set (python -m model_core realspeech build)")
    ap.add_argument("--split", choices=("tune", "report"), required=True)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--lipsync", action="store_true", help="also measure lip sync, audio only vs with the transcript")
    a = ap.parse_args()
    from model_core.data.real_speech import load_set
    clips = split_clips(load_set(Path(a.set), Path(a.set) / "manifest.json"), a.split)
    rows = study(clips)
    result = {"split": a.split, "tune_speakers": TUNE_SPEAKERS, "summary": summary(rows)}
    if a.lipsync:
        import torch
        torch.set_num_threads(2)
        result["lipsync"] = lipsync(clips)
        print(json.dumps(result["lipsync"], indent=1))
    result["clips"] = rows
    print(json.dumps(result["summary"], indent=1))
    if a.out:
        a.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
