"""`lalia bench-batch`: lines/s of the batch on short lines cut from the bundled sample, beside
the plain loop a script would write (load once, then generate and save each line)."""
from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ..base.assets import SAMPLE_SPEECH
from ..base.audio import load_audio, save_wav


def cut_lines(n: int, folder: Path, seed: int = 0, lo: float = 2.0, hi: float = 6.0) -> Path:
    """`n` lines of `lo`..`hi` s cut at random from the bundled sample (wav files, each with its
    own seed in the manifest); returns the manifest CSV."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wav = load_audio(SAMPLE_SPEECH)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        length = int(rng.uniform(lo, hi) * 16000)
        start = int(rng.integers(0, len(wav) - length))
        name = f"line_{i:05d}.wav"
        save_wav(folder / name, wav[start:start + length])
        rows.append({"id": f"line_{i:05d}", "audio": name, "seed": i % 7})
    manifest = folder / "lines.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, ["id", "audio", "seed"])
        w.writeheader()
        w.writerows(rows)
    return manifest


CONFIGS = ("loop", "batch", "fit", "workers", "fit-workers", "ray")


def bench_batch(n: int, threads: int | None = None, configs=("loop", "batch"), workers: int = 2, seed: int = 0,
                baseline_lines: int | None = None, out_json: str | None = None) -> dict:
    """Time, on `n` lines cut from the sample, in this process at `threads` torch threads
    (default: all cores): `loop` the plain generate-and-save loop (on `baseline_lines`, default
    all, after a warm-up line), each line with the padded 30 s window (`loop`, as before the
    fitted encoder) and with the fitted encoding (`loop_fit`), in turn; `batch` the batch in
    this process with the padded window, `fit` the same with the fitted encoding (encoder_fit,
    `lalia batch`'s default); `workers` / `fit-workers` those in `workers` local processes of one
    thread; `ray` as fit-workers, on Ray actors (`--ray auto`: a local cluster unless one is
    running).
    The batch timings include loading the model (once per process) and starting Ray."""
    import torch

    from ..inference.generator import load_generator
    from ..inference.options import GenerationOptions
    from .lines import read_manifest
    from .run import run_batch
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        raise ValueError(f"unknown bench configs {sorted(unknown)}; choose from {', '.join(CONFIGS)}")
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp(prefix="lalia-bench-batch-"))
    report: dict = {"lines": n, "threads": threads, "cpus": os.cpu_count(), "torch": torch.__version__,
                    "machine": platform.machine(), "load_average_at_start": _load()}
    try:
        manifest = cut_lines(n, tmp / "lines", seed)
        lines = read_manifest(manifest)
        report["audio_seconds"] = round(sum(len(load_audio(ln.audio)) for ln in lines) / 16000, 1)
        if "loop" in configs:
            # the plain generate-and-save loop, each line with the padded 30 s window (as before the
            # fitted encoder) and with the default fitted encoding, in turn, so both see the same load
            k = min(n, baseline_lines or n)
            gen = load_generator()
            gen.generate(str(lines[0].audio))  # warm: the first call pays one-off costs
            gen.generate(str(lines[0].audio), encoder_fit=False)
            for name, fit in (("loop", False), ("loop_fit", True)):
                report[name] = {"lines": k, "workers": 1, "threads": threads, "encoder_fit": fit,
                                "seconds": 0.0, "cpu": 0.0, "encoder": 0.0}
            for ln in lines[:k]:
                for name, fit in (("loop", False), ("loop_fit", True)):
                    r = report[name]
                    t0, cpu0 = time.perf_counter(), time.process_time()
                    g = gen.generate(str(ln.audio), ln.options, encoder_fit=fit)
                    g.motion.save(tmp / name / f"{ln.id}.npz")
                    r["seconds"] += time.perf_counter() - t0
                    r["cpu"] += time.process_time() - cpu0
                    r["encoder"] += g.timings.encoder
            for name in ("loop", "loop_fit"):
                r = report[name]
                dt, cpu, enc = r.pop("seconds"), r.pop("cpu"), r.pop("encoder")
                r.update(seconds=round(dt, 2), cpu_s_per_line=round(cpu / k, 4),
                         projected_lines_per_s_idle=round(k / cpu, 2) if threads == 1 else None,
                         lines_per_s=round(k / dt, 2), s_per_line=round(dt / k, 4), encoder_share=round(enc / dt, 3))
        runs = {"batch": (False, 1, threads), "fit": (True, 1, threads), "workers": (False, workers, 1),
                "fit-workers": (True, workers, 1), "ray": (True, workers, 1)}
        for name in (c for c in CONFIGS if c in configs and c in runs):
            use_fit, w, th = runs[name]
            t0 = time.perf_counter()
            s = run_batch(read_manifest(manifest, GenerationOptions(encoder_fit=use_fit)), tmp / name, workers=w,
                          threads=th, progress=False, ray="auto" if name == "ray" else None)
            dt = time.perf_counter() - t0
            recs = [json.loads(r) for r in (tmp / name / "results.jsonl").read_text().splitlines()]
            enc = sum(r["timings"]["encoder"] for r in recs if r["status"] == "ok")
            work = sum(r["timings"]["total"] for r in recs if r["status"] == "ok")
            cpu = sum(r["timings"].get("cpu", 0.0) for r in recs if r["status"] == "ok") / max(s.ok, 1)
            report[name] = {"lines": n, "workers": w, "threads": th, "encoder_fit": use_fit, "ok": s.ok,
                            "failed": s.failed, "seconds": round(dt, 2), "lines_per_s": round(n / dt, 2),
                            "s_per_line_in_worker": round(work / max(s.ok, 1), 4),
                            "encoder_share_in_worker": round(enc / max(work, 1e-9), 3),
                            # CPU seconds per line: on a busy machine the wall clock measures the
                            # neighbours too; at one thread a line takes its CPU time on an idle
                            # core, so `workers / cpu` projects lines/s on idle cores
                            "cpu_s_per_line": round(cpu, 4),
                            "projected_lines_per_s_idle": round(w / cpu, 2) if cpu and th == 1 else None}
            if name == "ray" and "fit-workers" in report:  # Ray must not change a byte
                report[name]["same_bytes_as_fit_workers"] = all(
                    p.read_bytes() == (tmp / "fit-workers" / p.name).read_bytes() for p in (tmp / name).glob("*.npz"))
        report["load_average_at_end"] = _load()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if out_json:
        Path(out_json).write_text(json.dumps(report, indent=1) + "\n")
    return report


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
