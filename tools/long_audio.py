"""Time and peak memory of generating motion for long audio, end to end (decode, speech encoder,
sampler, post-processing, writing the npz).

    python tools/long_audio.py --minutes 60 [--threads 2] [--out docs/long_audio.json]

The audio is model_core/assets/sample_speech.flac tiled to the length, written as a 16-bit WAV
(so decoding is measured too). Peak memory is the process's maximum resident set (ru_maxrss),
measured in a fresh process per length so one run's peak doesn't hide another's.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def one(minutes: float, threads: int) -> dict:
    import numpy as np
    import soundfile as sf
    import torch

    from model_core.base.assets import SAMPLE_SPEECH
    from model_core.base.audio import load_audio
    from model_core.inference.generator import load_generator
    torch.set_num_threads(threads)
    speech = load_audio(SAMPLE_SPEECH)
    n = int(minutes * 60 * 16000)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        sf.write(wav, np.resize(speech, n), 16000, subtype="PCM_16")
        del speech
        base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        gen = load_generator()
        t0 = time.perf_counter()
        motion = gen.generate(str(wav), seed=0)
        t1 = time.perf_counter()
        motion.save(Path(tmp) / "out.npz")
        t2 = time.perf_counter()
    return {"audio_minutes": minutes, "threads": threads, "wall_seconds": round(t2 - t0, 1),
            "split_seconds": {"audio_decoding": round(gen.last_timings.audio, 1),
                              "speech_encoder": round(gen.last_timings.encoder, 1),
                              "sampler": round(gen.last_timings.sampler, 1), "writing": round(t2 - t1, 1)},
            "real_time_factor": round(minutes * 60 / (t2 - t0), 1), "frames": motion.num_frames,
            "finite": bool(np.isfinite(motion.values).all()),
            "peak_memory_MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "memory_before_model_MB": round(base_mb)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, nargs="+", default=[60.0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.minutes[0], a.threads)))
        return 0
    rows = []
    for m in a.minutes:  # a fresh process each: ru_maxrss is a high-water mark
        r = subprocess.run([sys.executable, __file__, "--one", "--minutes", str(m), "--threads", str(a.threads)],
                           capture_output=True, text=True, check=True)
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    if a.out:
        from model_core.base.files import write_text_atomic
        write_text_atomic(a.out, json.dumps({"cpu": "2 shared cores (nice)", "runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
