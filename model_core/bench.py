"""`python -m model_core bench [--seconds 60] [--long] [--json]`: speed, in one process, on the
same audio (the bundled real speech, repeated to length).

(a) a DiffPoseTalk-configured sampler: 500 DDPM steps x 3 guidance branches per 4 s window with
    the published denoiser size (8 layers, width 512, 8 heads, FFN 2048), random weights. Its
    speed doesn't depend on training, so a sample of its passes is timed and scaled by the pass
    count (stated in the output). It is given our speech features (its HuBERT isn't available).
(b) the shipped model at its default sampler settings, end to end.
Reported: wall time, real-time factor, the split (audio decoding / speech encoder / sampler /
writing), peak memory, and the ratio (a)/(b) for the sampler.
"""
from __future__ import annotations

import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .networks import Denoiser, ModelConfig


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@torch.inference_mode()
def diffposetalk_sampler_seconds(n_frames: int, sample_passes: int = 6) -> dict:
    cfg = ModelConfig(d_model=512, layers=8, heads=8, ffn=2048, window=100, prev=10, dropout=0.0)
    net = Denoiser(cfg).eval()
    B = 3  # the three guidance branches, batched as in the paper's code
    x = torch.randn(B, cfg.window, cfg.motion_dim)
    kw = dict(audio=torch.randn(B, cfg.window, cfg.audio_dim), prev=torch.zeros(B, cfg.prev, cfg.motion_dim),
              has_prev=torch.ones(B, dtype=torch.bool), emotion=torch.zeros(B, cfg.window, 8),
              style=torch.zeros(B, cfg.style_dim), identity=torch.zeros(B, dtype=torch.long),
              valid=torch.ones(B, cfg.window, dtype=torch.bool), audio_on=torch.ones(B, dtype=torch.bool),
              emotion_on=torch.ones(B, dtype=torch.bool), style_on=torch.ones(B, dtype=torch.bool))
    net(x, torch.zeros(B, dtype=torch.long), **kw)  # warm-up
    t0 = time.perf_counter()
    for i in range(sample_passes):
        net(x, torch.full((B,), 499 - i, dtype=torch.long), **kw)
    per_pass = (time.perf_counter() - t0) / sample_passes
    windows = (n_frames + cfg.window - 1) // cfg.window
    passes = windows * 500
    return {"params_M": round(sum(p.numel() for p in net.parameters()) / 1e6, 1), "windows": windows,
            "passes": passes, "seconds_per_pass": round(per_pass, 4), "sampler_seconds": round(per_pass * passes, 1),
            "method": f"timed {sample_passes} batched 3-branch passes, scaled to {passes} passes"}


def run(seconds: float = 60.0, long: bool = False, generator=None) -> dict:
    from .audio import load_audio, save_wav
    from .evaluate import SAMPLE_SPEECH
    from .generator import load_generator
    base = load_audio(SAMPLE_SPEECH)
    report = {"torch_threads": torch.get_num_threads(), "runs": []}
    lengths = [seconds] + ([600.0] if long else [])
    gen = generator or load_generator()
    with tempfile.TemporaryDirectory() as tmp:
        for length in lengths:
            audio = np.tile(base, int(np.ceil(length * 16000 / len(base))))[: int(length * 16000)]
            wav = save_wav(Path(tmp) / f"speech_{int(length)}s.wav", audio)
            gen.generate(audio[:16000 * 4], steps=1)  # warm-up (weights, caches)
            t0 = time.perf_counter()
            motion = gen.generate(wav)
            t1 = time.perf_counter()
            motion.save(Path(tmp) / "out.npz")
            t2 = time.perf_counter()
            tm = gen.last_timings
            total = t2 - t0
            ours = {"audio_seconds": length, "wall_seconds": round(total, 3),
                    "real_time_factor": round(length / total, 1),
                    "split_seconds": {"audio_decoding": round(tm.audio, 3), "speech_encoder": round(tm.encoder, 3),
                                      "sampler": round(tm.sampler, 3), "writing": round(t2 - t1, 3)},
                    "sampler_share": round(tm.sampler / total, 3), "steps": gen.manifest["sampler"]["steps"],
                    "peak_memory_MB": round(_peak_mb(), 0)}
            dpt = diffposetalk_sampler_seconds(motion.num_frames) if length == seconds else None
            row = {"shipped": ours}
            if dpt:
                row["diffposetalk_config"] = dpt
                row["sampler_speedup_vs_diffposetalk"] = round(dpt["sampler_seconds"] / tm.sampler, 0)
                row["end_to_end_speedup_vs_diffposetalk"] = round(
                    (dpt["sampler_seconds"] + tm.audio + tm.encoder) / total, 0)
            report["runs"].append(row)
    return report


def print_table(report: dict) -> None:
    for row in report["runs"]:
        o = row["shipped"]
        s = o["split_seconds"]
        print(f"{o['audio_seconds']:.0f} s of speech: {o['wall_seconds']:.2f} s end to end "
              f"({o['real_time_factor']}x real time), {o['steps']} sampler steps, peak {o['peak_memory_MB']:.0f} MB")
        print(f"  split: decode {s['audio_decoding']:.3f} s | speech encoder {s['speech_encoder']:.3f} s | "
              f"sampler {s['sampler']:.3f} s ({100 * o['sampler_share']:.0f}%) | writing {s['writing']:.3f} s")
        if "diffposetalk_config" in row:
            d = row["diffposetalk_config"]
            print(f"  DiffPoseTalk-configured sampler ({d['params_M']}M params): {d['sampler_seconds']:.0f} s "
                  f"({d['method']}); sampler speed-up {row['sampler_speedup_vs_diffposetalk']:.0f}x, "
                  f"end to end {row['end_to_end_speedup_vs_diffposetalk']:.0f}x")
