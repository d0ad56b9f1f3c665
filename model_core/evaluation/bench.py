"""`python -m model_core bench [--seconds 60] [--long] [--json]`: speed, in one process, on the
same audio (the bundled real speech, repeated to length).

(a) a DiffPoseTalk-configured sampler: 500 DDPM steps x 3 guidance branches per 4 s window with
    the published denoiser size (8 layers, width 512, 8 heads, FFN 2048), random weights. Its
    speed doesn't depend on training, so a sample of its passes is timed and scaled by the pass
    count (stated in the output). It is given our speech features (its HuBERT isn't available).
(b) our teacher (the guided model before distillation) at its default sampler settings.
(c) the shipped default (the distilled student), end to end.
Reported per run: wall time, real-time factor, the split (audio decoding / speech encoder /
sampler / writing), peak memory during the run, and the ratios (a)/(c) and (b)/(c).
`--long` adds 10 minutes of audio through (c), to show memory and time growing linearly.
Also timed: the speech encoder under the options a CPU offers (batching, inference mode,
threads, reduced precision), with how close each one's features are to the shipped setting's.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from ..base.assets import ASSET_DIR
from ..model.networks import Denoiser, ModelConfig

TEACHER_CHECKPOINT = ASSET_DIR / "teacher_model.safetensors"


class PeakMemory:
    """Peak resident memory (MB) of this process while the block runs (sampled every 10 ms)."""

    def __enter__(self):
        self.peak, self._stop = _rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def _rss_mb() -> float:
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except OSError:  # not Linux: the process's peak so far
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@torch.inference_mode()
def diffposetalk_sampler_seconds(n_frames: int, sample_passes: int = 6) -> dict:
    cfg = ModelConfig(d_model=512, layers=8, heads=8, ffn=2048, window=100, prev=10, dropout=0.0)
    net = Denoiser(cfg).eval()
    B = 3  # the three guidance branches, batched as in the paper's code
    x = torch.randn(B, cfg.window, cfg.motion_dim)
    on = torch.ones(B, dtype=torch.bool)
    kw = dict(audio=torch.randn(B, cfg.window, cfg.audio_dim), prior=torch.zeros(B, cfg.window, cfg.motion_dim),
              prev=torch.zeros(B, cfg.prev, cfg.motion_dim), has_prev=on,
              emotion=torch.zeros(B, cfg.window, cfg.emotion_dim),
              style=torch.zeros(B, cfg.style_dim), valid=torch.ones(B, cfg.window, dtype=torch.bool),
              audio_on=on, emotion_on=on, style_on=on)
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


def time_generation(gen, wav: Path, length: float, out_dir: Path) -> dict:
    """One end-to-end run: decode, encode, sample, write an npz."""
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        result = gen.generate(wav)
        t1 = time.perf_counter()
        result.motion.save(out_dir / "out.npz")
        t2 = time.perf_counter()
    tm = result.timings
    total = t2 - t0
    return {"audio_seconds": length, "wall_seconds": round(total, 3), "real_time_factor": round(length / total, 1),
            "split_seconds": {"audio_decoding": round(tm.audio, 3), "speech_encoder": round(tm.encoder, 3),
                              "sampler": round(tm.sampler, 3), "writing": round(t2 - t1, 3)},
            "sampler_share": round(tm.sampler / total, 3), "steps": gen.manifest["sampler"]["steps"],
            "distilled": any(r["kind"] != "adapt" for r in gen.manifest.get("distillation", [])),
            "peak_memory_MB": round(mem.peak, 0),
            "frames": result.motion.num_frames}


@contextlib.contextmanager
def _inference_bf16():
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        yield


def speech_encoder_options(encoder, audio: np.ndarray, repeats: int = 3) -> list[dict]:
    """The speech encoder's core (log-mel + Whisper encoder over the 30 s windows of `audio`)
    under the options a CPU offers, each the median of `repeats` runs, with the cosine
    similarity of its features to the shipped setting's. The first row is what ships."""
    import copy

    from ..model.speech_encoder import SAMPLE_RATE, WINDOW_SECONDS, log_mel, plan_windows
    win = int(WINDOW_SECONDS * SAMPLE_RATE)
    starts, _ = plan_windows(audio, win)
    x = torch.from_numpy(np.stack([np.pad(audio[s:s + win], (0, win - len(audio[s:s + win]))) for s in starts]))
    fp32 = encoder.model
    int8 = torch.ao.quantization.quantize_dynamic(copy.deepcopy(fp32), {torch.nn.Linear}, dtype=torch.qint8)

    def windows(model, batched=False):
        if batched:
            return model(log_mel(x))
        return torch.cat([model(log_mel(x[i:i + 1])) for i in range(len(x))])

    options = [  # (what, model, context, batched, threads)
        ("one window at a time, inference mode, float32 (shipped)", fp32, torch.inference_mode, False, None),
        ("windows batched", fp32, torch.inference_mode, True, None),
        ("no_grad instead of inference mode", fp32, torch.no_grad, False, None),
        ("1 torch thread", fp32, torch.inference_mode, False, 1),
        ("int8 dynamic quantisation of the linear layers", int8, torch.inference_mode, False, None),
        ("bfloat16 autocast", fp32, _inference_bf16, False, None)]
    threads, rows, reference = torch.get_num_threads(), [], None
    for what, model, context, batched, n_threads in options:
        torch.set_num_threads(n_threads or threads)
        times = []
        try:
            for _ in range(repeats + 1):  # the first run warms up
                t0 = time.perf_counter()
                with context():
                    f = windows(model, batched).float()
                times.append(time.perf_counter() - t0)
        finally:
            torch.set_num_threads(threads)
        reference = f if reference is None else reference
        cos = torch.nn.functional.cosine_similarity(f.flatten(0, 1), reference.flatten(0, 1), dim=-1)
        rows.append({"option": what, "seconds": round(float(np.median(times[1:])), 3),
                     "feature_cosine_mean": round(float(cos.mean()), 4),
                     "feature_cosine_min": round(float(cos.min()), 4)})
    return rows


def run(seconds: float = 60.0, long: bool = False, student=None, teacher=None) -> dict:
    from ..base.assets import SAMPLE_SPEECH
    from ..base.audio import load_audio, save_wav
    from ..inference.generator import load_generator
    base = load_audio(SAMPLE_SPEECH)
    report = {"torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    student = student or load_generator()
    teacher = teacher or (load_generator(TEACHER_CHECKPOINT) if TEACHER_CHECKPOINT.exists() else None)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wavs = {}
        for length in [seconds] + ([600.0] if long else []):
            audio = np.tile(base, int(np.ceil(length * 16000 / len(base))))[: int(length * 16000)]
            wavs[length] = save_wav(tmp / f"speech_{int(length)}s.wav", audio)
        for g in (student, teacher):  # warm-up: weights, caches, thread pools
            if g is not None:
                g.encoder  # noqa: B018 (loads the speech encoder)
                g.generate(base[:16000 * 4], steps=1)
        shipped = time_generation(student, wavs[seconds], seconds, tmp)
        report["shipped"] = shipped
        dpt = diffposetalk_sampler_seconds(shipped["frames"])
        report["diffposetalk_config"] = dpt
        s = shipped["split_seconds"]
        report["speedup_a_over_c"] = {
            "sampler": round(dpt["sampler_seconds"] / max(s["sampler"], 1e-9), 0),
            "end_to_end": round((dpt["sampler_seconds"] + s["audio_decoding"] + s["speech_encoder"])
                                / shipped["wall_seconds"], 0)}
        if teacher is not None:
            t = time_generation(teacher, wavs[seconds], seconds, tmp)
            report["teacher"] = t
            report["speedup_b_over_c"] = {
                "sampler": round(t["split_seconds"]["sampler"] / max(s["sampler"], 1e-9), 1),
                "end_to_end": round(t["wall_seconds"] / shipped["wall_seconds"], 2)}
        if long:
            report["shipped_long"] = time_generation(student, wavs[600.0], 600.0, tmp)
            r = report["shipped_long"]["wall_seconds"] / shipped["wall_seconds"]
            report["long_over_short_time"] = round(r, 2)  # linear growth: ~10 for 600 s vs 60 s
        # last: its extra model copies would count in the runs' peak memory (the process's)
        report["speech_encoder_options"] = speech_encoder_options(
            student.encoder, np.tile(base, int(np.ceil(seconds * 16000 / len(base))))[: int(seconds * 16000)])
    return report


def print_table(report: dict) -> None:
    def line(label, o):
        s = o["split_seconds"]
        print(f"{label}: {o['audio_seconds']:.0f} s of speech in {o['wall_seconds']:.2f} s "
              f"({o['real_time_factor']}x real time), {o['steps']} step(s), peak {o['peak_memory_MB']:.0f} MB")
        print(f"    decode {s['audio_decoding']:.3f} s | speech encoder {s['speech_encoder']:.3f} s | "
              f"sampler {s['sampler']:.3f} s ({100 * o['sampler_share']:.0f}%) | writing {s['writing']:.3f} s")
    d = report["diffposetalk_config"]
    print(f"(a) DiffPoseTalk-configured sampler ({d['params_M']}M params, 500 DDPM steps x 3 branches): "
          f"{d['sampler_seconds']:.0f} s ({d['method']})")
    if "teacher" in report:
        line("(b) teacher", report["teacher"])
    line("(c) shipped", report["shipped"])
    a = report["speedup_a_over_c"]
    print(f"(a)/(c): sampler {a['sampler']:.0f}x, end to end {a['end_to_end']:.0f}x")
    if "speedup_b_over_c" in report:
        b = report["speedup_b_over_c"]
        print(f"(b)/(c): sampler {b['sampler']}x, end to end {b['end_to_end']}x")
    for row in report.get("speech_encoder_options", []):
        print(f"speech encoder, {row['option']}: {row['seconds']:.3f} s "
              f"(features' cosine to shipped: mean {row['feature_cosine_mean']}, min {row['feature_cosine_min']})")
    if "shipped_long" in report:
        line("(c) shipped, 10 min", report["shipped_long"])
        print(f"10 min / 1 min time: {report['long_over_short_time']} (10 = linear)")
