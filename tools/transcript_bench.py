#!/usr/bin/env python3
"""Time a 4 s line with its text, warm: alignment (in the aligner's child, overlapped with the
speech encoder) plus generation, on the torch threads given (default 2).

    python tools/transcript_bench.py [--threads 2] [--repeats 5]

Prints the median wall time of generate(audio, transcript=text) after two warm-up runs, the same
without the text (interleaved), the alignment's own time, and the machine's load average (the
aligner's child competes with torch's threads for the cores).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    from model_core.base.assets import SAMPLE_SPEECH
    from model_core.base.audio import load_audio
    from model_core.inference.generator import load_generator
    # "he might even have been made amiable himself"
    seg = json.loads(SAMPLE_SPEECH.with_suffix(".json").read_text())[4]
    start = int(seg["start_s"] * 16000)
    wav = load_audio(SAMPLE_SPEECH)[start:start + 4 * 16000]  # 3.29 s of speech and a pause: a 4 s line
    gen = load_generator()

    def timed(**kw):
        t = time.perf_counter()
        g = gen.generate(wav, **kw)
        return time.perf_counter() - t, g
    for _ in range(2):
        timed(transcript=seg["text"])
    with_text, audio_only = [], []
    for _ in range(a.repeats):  # interleaved, so a change in the machine's load hits both alike
        with_text.append(timed(transcript=seg["text"]))
        audio_only.append(timed()[0])
    info = with_text[-1][1].info["transcript"]
    print(json.dumps({"line_s": len(wav) / 16000, "torch_threads": a.threads, "used": info["used"],
                      "with_transcript_s": round(statistics.median(t for t, _ in with_text), 3),
                      "audio_only_s": round(statistics.median(audio_only), 3),
                      "alignment_s": round(statistics.median(g.timings.extra["alignment"] for _, g in with_text), 3),
                      "encoder_s": round(statistics.median(g.timings.encoder for _, g in with_text), 3),
                      "load_average_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}, indent=1))


if __name__ == "__main__":
    main()
