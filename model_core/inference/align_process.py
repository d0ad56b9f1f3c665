"""The aligner in a child process that stays alive between lines: a crash or a hang of
pocketsphinx (or espeak-ng) costs one transcript, never the caller (Blender, a batch worker).

The child loads the acoustic model once (~0.3 s), so a warm alignment costs only its decoding
(~0.03 s per second of audio). A request is one JSON header line and the audio as 16-bit PCM on
the child's stdin; the answer is one JSON line on its stdout (the C libraries' own output is
sent to stderr, which goes to a temporary file read back only to explain a death). A child that
died or overran its time is killed and the next request starts a fresh one.

The child runs `sys.executable`, which in Blender 4.2+ is the Python it embeds, with the caller's
`sys.path` handed over in an environment variable: an extension's wheels are on Blender's path,
not on a bare interpreter's. This package's own parent folder goes first, so the child imports
this very copy of model_core (in Blender it lives inside the extension's folder).
"""
from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .aligner import AlignResult, pcm16

log = logging.getLogger(__name__)

PATH_VARIABLE = "LALIA_ALIGNER_SYS_PATH"
_BOOT = (f"import json, os, sys; sys.path[:0] = json.loads(os.environ['{PATH_VARIABLE}']); "
         "from model_core.inference.align_process import serve; serve()")
START_SECONDS = 30.0          # a cold child imports numpy and pocketsphinx and loads the model
SECONDS_PER_AUDIO_SECOND = 1.0  # decoding runs at ~30x real time: this is a hang, not a slow line


class AlignerDied(RuntimeError):
    """The child process crashed, hung or could not start; the message says which."""


def serve() -> None:
    """The child's loop: read a request, align, answer, until stdin closes."""
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # whatever the C libraries print must not corrupt the answers
    from .aligner import PhoneAligner
    aligner = PhoneAligner()
    requests = sys.stdin.buffer
    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    while True:
        header = requests.readline()
        if not header:
            return
        job = json.loads(header)
        pcm = requests.read(2 * int(job["samples"]))
        audio = np.frombuffer(pcm, np.int16).astype(np.float32) / 32767.0
        if job.get("crash"):  # the tests' way to make the child die mid-request
            os.abort()
        result = aligner.align(audio, job["words"])
        answers.write(json.dumps(result.to_json()) + "\n")
        answers.flush()


def _child_path() -> list[str]:
    root = str(Path(__file__).resolve().parents[2])
    return [root] + [p for p in sys.path if p and p != root]


class AlignerProcess:
    """A persistent aligner child, started on first use and restarted after it dies. Thread-safe:
    one request at a time."""

    def __init__(self):
        self._proc: subprocess.Popen | None = None
        self._answers: queue.Queue = queue.Queue()
        self._stderr = None
        self._lock = threading.Lock()
        self.starts = 0  # how many children were started (the tests watch restarts)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _start(self) -> None:
        self._stderr = tempfile.TemporaryFile()
        env = {**os.environ, PATH_VARIABLE: json.dumps(_child_path())}
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform == "win32" else 0
        try:
            proc = subprocess.Popen([sys.executable, "-c", _BOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=self._stderr, env=env, creationflags=flags)
        except OSError as e:
            raise AlignerDied(f"could not start the aligner process ({e})") from e
        answers: queue.Queue = queue.Queue()

        def read(stream=proc.stdout, out=answers):  # one reader per child: its answers, then None at EOF
            for line in stream:
                out.put(line)
            out.put(None)
        threading.Thread(target=read, daemon=True, name="lalia-aligner-reader").start()
        self._proc, self._answers = proc, answers
        self.starts += 1
        self._answer(START_SECONDS)  # {"ready": true}: the model is loaded

    def _answer(self, timeout: float) -> dict:
        try:
            line = self._answers.get(timeout=timeout)
        except queue.Empty:
            self._stop()
            raise AlignerDied(f"the aligner did not answer within {timeout:.0f} s and was stopped")
        if line is None:
            self._proc.wait()
            why = self._why_dead()
            self._stop()
            raise AlignerDied(f"the aligner process died ({why})")
        return json.loads(line)

    def _why_dead(self) -> str:
        code = self._proc.returncode
        tail = ""
        if self._stderr is not None:
            self._stderr.seek(0)
            lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
            tail = lines[-1][:160] if lines else ""
        return f"exit code {code}" + (f": {tail}" if tail else "")

    def _stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        if self._stderr is not None:
            self._stderr.close()
        self._proc, self._stderr = None, None

    def align(self, audio16k: np.ndarray, words: list[str], timeout: float | None = None,
              _crash: bool = False) -> AlignResult:
        """Align `words` to the audio in the child. Raises AlignerDied when the child crashed,
        hung past `timeout` (default: START_SECONDS + SECONDS_PER_AUDIO_SECOND x duration) or
        could not start; the next call starts a fresh child."""
        duration = len(audio16k) / 16000
        timeout = timeout if timeout is not None else START_SECONDS + SECONDS_PER_AUDIO_SECOND * duration
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._stop()
                self._start()
            pcm = pcm16(audio16k)
            header = {"words": list(words), "samples": len(pcm) // 2, "crash": _crash}
            try:
                self._proc.stdin.write((json.dumps(header) + "\n").encode() + pcm)
                self._proc.stdin.flush()
            except OSError:
                pass  # the child is gone: its reader reports the death below
            t0 = time.perf_counter()
            answer = self._answer(timeout)
            log.debug("aligned %d words in %.3f s", len(words), time.perf_counter() - t0)
        return AlignResult(**{k: answer[k] for k in ("score", "pronounced", "skipped", "error")},
                           phones=[tuple(p) for p in answer["phones"]], words=[tuple(w) for w in answer["words"]])

    def close(self) -> None:
        with self._lock:
            self._stop()


_shared: AlignerProcess | None = None
_shared_lock = threading.Lock()


def shared_aligner() -> AlignerProcess:
    """The process-wide aligner child (started on its first request)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = AlignerProcess()
        return _shared
