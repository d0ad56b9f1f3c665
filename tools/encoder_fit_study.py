"""How far do the cheaper ways of encoding short lines move the features and the motion?

On the bundled sample's five lines (3-7 s, their transcripts aligned by pocketsphinx), compares
the shipped encoding (each line zero-padded to Whisper's 30 s window) with:
- fit: the encoder run on only the frames the line needs, rounded up (`encoder_fit`);
- pack: several lines back to back in one 30 s window with silence between, features cut back out;
- seed: the shipped encoding with another seed, for scale (what a rerun with seed 1 changes).
Per mode: encoder seconds per line (1 torch thread), feature cosine to the shipped features,
and of the generated motion: lip-gap correlation and mean absolute difference to the shipped
motion, bilabial closure and sync offset. `python tools/encoder_fit_study.py --out docs/encoder_fit.json`
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

import model_core.model.speech_encoder as se
from model_core.base.audio import load_audio
from model_core.evaluation import evaluate as ev
from model_core.inference.generator import load_generator


class Given:
    """An encoder stand-in that hands the generator features computed elsewhere."""
    feats = None

    def encode(self, wav, n_frames, fit=False):
        return self.feats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    gen = load_generator()
    enc = gen.encoder
    wav = load_audio(ev.SAMPLE_SPEECH)
    segs = json.loads(ev.SAMPLE_SPEECH.with_suffix(".json").read_text())
    clips = [wav[int(s["start_s"] * 16000): int(s["start_s"] * 16000) + int(s["duration_s"] * 16000)] for s in segs]
    phones = [ev.align_phones(c, s["text"]) for c, s in zip(clips, segs)]
    vm = ev.VertexMetrics()
    nfr = lambda c: max(1, int(round(len(c) / 16000 * 25)))

    def timed(fn):
        fn()
        t0 = time.perf_counter()
        for _ in range(3):
            fn()
        return (time.perf_counter() - t0) / 3

    def motions(feats, seed=0):
        gen._encoder = Given()
        out = []
        for c, f in zip(clips, feats):
            gen._encoder.feats = f
            out.append(gen.generate(c, seed=seed).motion.values)
        gen._encoder = enc
        return out

    def speech_metrics(ms):
        closed, n_bil, offsets = 0.0, 0, []
        for m, ph in zip(ms, phones):
            gap = vm.gap(m)
            c, n = ev.bilabial_closure(gap, ph)
            closed, n_bil = closed + c * n, n_bil + n
            offsets.append(ev.sync_offset_ms(gap, ph))
        return {"bilabial_closure": round(closed / max(n_bil, 1), 3),
                "sync_offset_ms": round(float(np.mean(offsets)), 1)}

    def cosines(a, b):
        return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)

    base_feats = [enc.encode(c, nfr(c)) for c in clips]
    base = motions(base_feats)
    report = {"clips": [round(len(c) / 16000, 2) for c in clips], "load_average": list(os.getloadavg()),
              "modes": {"shipped": {"encoder_s_per_line": round(np.mean([timed(lambda c=c: enc.encode(c, nfr(c)))
                                                                        for c in clips]), 4), **speech_metrics(base)}}}

    def compare(name, feats, seconds, ms=None):
        ms = ms if ms is not None else motions(feats)
        corr = [float(np.corrcoef(vm.gap(x), vm.gap(y))[0, 1]) for x, y in zip(base, ms)]
        row = {"encoder_s_per_line": round(seconds, 4) if seconds is not None else None}
        if feats is not None:
            cs = [cosines(x, y) for x, y in zip(base_feats, feats)]
            row.update(feature_cosine=round(float(np.mean(np.concatenate(cs))), 4),
                       feature_cosine_min=round(float(min(c.min() for c in cs)), 4))
        row.update(lip_gap_corr=round(float(np.mean(corr)), 4), lip_gap_corr_min=round(min(corr), 4),
                   lip_gap_mae_mm=round(float(np.mean([np.abs(vm.gap(x) - vm.gap(y)).mean()
                                                       for x, y in zip(base, ms)])), 3),
                   motion_mae=round(float(np.mean([np.abs(x - y).mean() for x, y in zip(base, ms)])), 5),
                   **speech_metrics(ms))
        report["modes"][name] = row
        print(name, row, flush=True)

    compare("seed_1_for_scale", None, None, motions(base_feats, seed=1))
    default_round = se.FIT_ROUND
    for r in (2, 50, 100, 200):
        se.FIT_ROUND = r
        feats = [enc.encode(c, nfr(c), fit=True) for c in clips]
        t = np.mean([timed(lambda c=c: enc.encode(c, nfr(c), fit=True)) for c in clips])
        compare(f"fit_round_{r * 10}ms" + (" (encoder_fit)" if r == default_round else ""), feats, t)
    se.FIT_ROUND = default_round
    for gap_s in (0.5, 1.0, 2.0):
        gap = int(gap_s * 16000) // 640 * 640  # whole feature frames, so features cut back out aligned
        feats, spent, i = [None] * len(clips), 0.0, 0
        while i < len(clips):
            parts, offsets, pos, j = [], [], 0, i
            while j < len(clips):
                size = -(-len(clips[j]) // 640) * 640
                if pos + size > 480000:
                    break
                offsets.append(pos)
                parts += [np.pad(clips[j], (0, size - len(clips[j]))), np.zeros(gap, np.float32)]
                pos, j = pos + size + gap, j + 1
            packed = np.concatenate(parts)[:480000]
            t0 = time.perf_counter()
            f = enc.encode(packed, len(packed) // 640)
            spent += time.perf_counter() - t0
            for k, o in zip(range(i, j), offsets):
                feats[k] = f[o // 640: o // 640 + nfr(clips[k])]
            i = j
        compare(f"pack_gap_{gap_s}s", feats, spent / len(clips))
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(report, fh, indent=1)
            fh.write("\n")


if __name__ == "__main__":
    main()
