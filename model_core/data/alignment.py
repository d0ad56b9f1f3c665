"""Phone timings of real speech with pocketsphinx, for measuring lip sync (build time).

- `align_phones`: forced alignment of a known transcript, with the runtime's aligner
  (`inference/aligner.py`, which the optional transcript of a generation uses too) and the few
  words of the real-speech transcripts its dictionary lacks. Used to *measure* lip sync.
- `recognize_phones`: what a transcript-free lip-sync tool can do (the peer of the lip-sync
  benchmark, in the manner of Rhubarb Lip Sync): word recognition with pocketsphinx's default
  en-us language model, then the recognised words force-aligned into phones.
- `run_isolated`: either of them in a child process. pocketsphinx can crash the interpreter
  (a hyp() after a failed alignment segfaults), and a crash must cost one clip, not a build.
"""
from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..inference.aligner import PhoneAligner, pcm16

_FILLER_WORD = re.compile(r"^(<s>|</s>|<sil>|\[.*\]|\+.*\+)$")
# words of the real-speech transcripts the en-us dictionary lacks (CMUdict-style pronunciations)
EXTRA_WORDS = {"aligner": "AH L AY N ER", "poofy": "P UW F IY", "pooty": "P UW T IY", "puddy": "P AH D IY",
               "plat": "P L AE T", "overwatch": "OW V ER W AA CH"}


@functools.lru_cache(maxsize=1)
def _aligner() -> PhoneAligner:
    """The measuring aligner: the dictionary plus `EXTRA_WORDS`, and no guessed pronunciations
    (a benchmark clip whose words it lacks is dropped, not aligned to a guess)."""
    return PhoneAligner(EXTRA_WORDS, g2p=False)


def align_phones(audio16k: np.ndarray, text: str) -> list[tuple]:
    """Forced alignment: [(phone, start, end)] in seconds, ARPAbet lower case, "sil" for
    pauses; [] when the words can't be aligned."""
    result = _aligner().align(audio16k, text.split())
    return [] if result.error or result.skipped else result.phones


def out_of_vocabulary(words: list[str]) -> list[str]:
    """The words the aligner's dictionary lacks (alignment would refuse them)."""
    return [w for w in words if not _aligner().known(w)]


def recognize_words(audio16k: np.ndarray) -> str:
    """pocketsphinx word recognition with its default en-us language model and dictionary (the
    peer gets no help with the transcripts' rare words); fillers dropped."""
    from pocketsphinx import Decoder
    d = Decoder(samprate=16000, loglevel="FATAL")
    d.start_utt()
    d.process_raw(pcm16(audio16k), full_utt=True)
    d.end_utt()
    words = [re.sub(r"\(\d+\)$", "", s.word) for s in d.seg()]
    return " ".join(w for w in words if not _FILLER_WORD.match(w))


def recognize_phones(audio16k: np.ndarray) -> tuple[str, list[tuple]]:
    """(recognised words, their phones): the transcript-free route to phone timings."""
    words = recognize_words(audio16k)
    if not words:
        return "", [("sil", 0.0, len(audio16k) / 16000)]
    return words, align_phones(audio16k, words)


# ---- isolation -------------------------------------------------------------------------

def _worker(job_path: str) -> None:
    """Child process: run every job of the JSON list, one result line per job, flushed, so a
    crash loses only the job it happened in."""
    from ..base.audio import load_audio
    jobs = json.loads(Path(job_path).read_text())
    for job in jobs:
        audio = load_audio(job["wav"])
        if job["kind"] == "align":
            res = {"phones": align_phones(audio, job["text"])}
        else:
            words, phones = recognize_phones(audio)
            res = {"words": words, "phones": phones}
        sys.stdout.write(json.dumps({"id": job["id"], **res}) + "\n")
        sys.stdout.flush()


def run_isolated(jobs: list[dict], timeout_s: float = 600.0) -> dict[str, dict]:
    """Run jobs ({"id", "kind": "align"|"recognize", "wav", "text"}) in child processes.
    Returns {id: result}; a job that crashed its process gets {"error": ...} and the
    rest go on in a fresh process."""
    results: dict[str, dict] = {}
    pending = list(jobs)
    while pending:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(pending, f)
        cmd = [sys.executable, "-c", "import sys; from model_core.data.alignment import _worker; _worker(sys.argv[1])",
               f.name]
        root = str(Path(__file__).resolve().parents[2])
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=root)
        Path(f.name).unlink(missing_ok=True)
        done = 0
        for line in proc.stdout.splitlines():
            r = json.loads(line)
            results[r.pop("id")] = r
            done += 1
        if done < len(pending):
            crashed = pending[done]
            tail = proc.stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
            results[crashed["id"]] = {"error": f"pocketsphinx process died: {tail[0][:200]}"}
            done += 1
        pending = pending[done:]
    return results
