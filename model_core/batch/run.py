"""The driver: lines -> work for the workers -> motion files and results.jsonl, resumable.

Only the driver writes: workers return their files' bytes, the driver writes each file
atomically and then appends the line's record to results.jsonl (flushed and fsynced), so a
killed run leaves whole files and whole records, and a rerun redoes exactly the lines without
a record whose input hash and output hashes still match.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..base.errors import LaliaError
from ..base.files import write_bytes_atomic as atomic_write_bytes
from ..base.files import write_text_atomic as atomic_write_text
from .lines import Line, file_sha256, input_hash, options_record

RESULTS = "results.jsonl"


# ---- the results journal -----------------------------------------------------------------
class Journal:
    """results.jsonl: one JSON record per line, appended as lines finish (each record one
    write, flushed and fsynced) and compacted to one record per id, in manifest order, at
    the start and end of a run. A record cut short by a kill is ignored when read."""

    def __init__(self, path: Path):
        self.path = path
        self.records: dict[str, dict] = {}
        if path.is_file():
            for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue  # the torn last record of a killed run
                if isinstance(rec, dict) and "id" in rec:
                    self.records[rec["id"]] = rec
        self._file = None

    def compact(self, order: list[str]) -> None:
        """Rewrite atomically: the manifest's ids in order, then ids from earlier manifests."""
        rank = {k: i for i, k in enumerate(order)}
        recs = sorted(self.records.values(), key=lambda r: (rank.get(r["id"], len(rank)), r["id"]))
        self.close()
        atomic_write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in recs))

    def append(self, rec: dict) -> None:
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write(json.dumps(rec, sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.records[rec["id"]] = rec

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


# ---- progress ----------------------------------------------------------------------------
class Progress:
    """tqdm when it is installed, else one stderr line: lines done of total, lines/s, ETA."""

    def __init__(self, total: int, enabled: bool = True, stream=None):
        self.total, self.done, self.t0 = total, 0, time.perf_counter()
        self.counts = {"ok": 0, "failed": 0, "skipped": 0}
        self.enabled, self.stream = enabled, stream or sys.stderr
        self._bar, self._last = None, 0.0
        if enabled:
            try:
                from tqdm import tqdm
                self._bar = tqdm(total=total, unit="line", file=self.stream, dynamic_ncols=True, smoothing=0.1)
            except ImportError:
                pass

    def update(self, status: str) -> None:
        self.done += 1
        self.counts[status] += 1
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix(self.counts, refresh=False)
            self._bar.update(1)
            return
        now = time.perf_counter()
        if now - self._last < 0.5 and self.done < self.total:
            return
        self._last = now
        elapsed = now - self.t0
        worked = self.done - self.counts["skipped"]  # skipped lines cost nothing: not in the rate
        rate = worked / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        self.stream.write(f"\rbatch {self.done}/{self.total} lines  {rate:.2f} lines/s  ETA {_clock(eta)}  "
                          f"ok {self.counts['ok']} failed {self.counts['failed']} skipped {self.counts['skipped']}  ")
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _clock(s: float) -> str:
    if s == float("inf"):
        return "--:--"
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


# ---- the batch ---------------------------------------------------------------------------
@dataclass
class LineCounts:
    """What a run over lines did (the batch's and the export's summaries): counts, time, and each
    failed line's reason."""
    total: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    failures: list = field(default_factory=list)

    def count(self, rec: dict) -> None:
        """One line's record: its status counted, and a failure's reason kept."""
        setattr(self, rec["status"], getattr(self, rec["status"]) + 1)
        if rec["status"] == "failed":
            self.failures.append((rec["id"], rec["error"]))

    def failure_lines(self, journal: str) -> list[str]:
        """The first 20 failures, one line each, and where the rest are."""
        lines = [f"  failed {i}: {why}" for i, why in self.failures[:20]]
        if len(self.failures) > 20:
            lines.append(f"  ... and {len(self.failures) - 20} more ({journal} has them all)")
        return lines


@dataclass
class Summary(LineCounts):
    audio_seconds: float = 0.0   # of the lines rendered in this run
    workers: str = ""

    @property
    def rendered_per_second(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def text(self) -> str:
        lines = [f"{self.total} lines: {self.ok} ok, {self.failed} failed, {self.skipped} skipped (done and "
                 f"unchanged) in {self.seconds:.1f} s; {self.rendered_per_second:.2f} lines/s rendered "
                 f"({self.audio_seconds:.0f} s of audio) on {self.workers}"]
        return "\n".join(lines + self.failure_lines("results.jsonl"))


def run_batch(lines: list[Line], out: Path, *, workers: int = 1, ray: str | None = None,
              checkpoint: str | None = None, threads: int = 1, send_audio: bool | None = None,
              progress: bool = True, force: bool = False, stream=None) -> Summary:
    """Render every line not already done into `out`; see the module docstring.

    workers: local processes (1: this process). ray: None, 'auto' (the running cluster, else a
    local one) or a cluster address; with Ray, `workers` is the number of actors (0: one per
    `threads` CPUs of the cluster). send_audio: the driver sends each line's audio bytes to
    the workers (default with Ray, which may run where the paths don't exist)."""
    from ..model.checkpoint import weights_sha256
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with exclusive(out):
        return _run(lines, out, workers, ray, checkpoint, threads, send_audio, progress, force, stream,
                    weights_sha256(checkpoint), _fit_adapter_sha256())


def _fit_adapter_sha256() -> str:
    """The fit adapter's bytes decide fitted lines' motion as much as the model's weights do."""
    from ..model.checkpoint import weights_sha256
    from ..model.speech_encoder import FIT_ADAPTER_PATH
    return weights_sha256(FIT_ADAPTER_PATH) if FIT_ADAPTER_PATH.is_file() else "none"


@contextmanager
def exclusive(out: Path, what: str = "batch"):
    """One batch (or export) per output folder at a time: two would append to one journal and
    write the same files. The lock goes with the process, so a killed run leaves none behind."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    with open(out / f".{what}.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise LaliaError(f"another {what} is writing to {out}; wait for it or choose another --out")
        yield


def remove_stale_parts(out: Path) -> None:
    """Temp files of a run killed mid-write (base/files.py names them .STEM.HEX.partSUFFIX)."""
    for stale in out.rglob(".*.part*"):
        if stale.is_file() and ".part" in stale.name:
            stale.unlink()


def _run(lines, out, workers, ray, checkpoint, threads, send_audio, progress, force, stream, model,
         fit_adapter) -> Summary:
    t0 = time.perf_counter()
    remove_stale_parts(out)
    journal = Journal(out / RESULTS)
    journal.compact([ln.id for ln in lines])
    summary = Summary(total=len(lines))
    bar = Progress(len(lines), progress, stream)
    tasks: list[tuple[Line, dict, dict]] = []

    def finish(rec: dict) -> None:
        journal.append(rec)
        summary.count(rec)
        bar.update(rec["status"])

    for ln in lines:
        rec = _record(ln)
        if ln.error is None:
            try:
                rec["audio_sha256"] = file_sha256(ln.audio)
                style_sha = file_sha256(ln.style_file) if ln.style_file else None
                weights = f"{model}+fit:{fit_adapter}" if ln.options.encoder_fit else model
                rec["input_hash"] = input_hash(rec["audio_sha256"], ln.options, weights, threads, style_sha)
            except OSError as e:
                ln.error = f"can't read {ln.audio}: {e}"
        if ln.error is not None:
            finish({**rec, "status": "failed", "error": ln.error})
            continue
        done = None if force else still_done(journal.records.get(ln.id), rec["input_hash"], ln.formats, out)
        if done is not None:
            finish({**rec, **done, "status": "skipped", "reason": "done and unchanged"})
            continue
        task = {"id": ln.id, "options": ln.options, "formats": ln.formats, "audio": str(ln.audio),
                "suffix": ln.audio.suffix}
        tasks.append((ln, task, rec))

    send = (ray is not None) if send_audio is None else send_audio
    try:
        if tasks:
            executor = _executor(workers, ray, checkpoint, threads)
            summary.workers = executor.describe
            for (ln, _, rec), res in executor.map(tasks, send):
                finish(_written(ln, rec, res, out, summary))
        else:
            summary.workers = "nothing to render"
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - t0
        journal.compact([ln.id for ln in lines])
    return summary


def _record(ln: Line) -> dict:
    return {"id": ln.id, "index": ln.index, "audio": str(ln.audio) if ln.audio else None, "character": ln.character,
            "transcript": ln.transcript, "options": options_record(ln.options) if ln.options else None,
            "formats": list(ln.formats), "warnings": list(ln.warnings), "error": None}


def still_done(prev: dict | None, ihash: str, formats, out: Path) -> dict | None:
    """The previous record, if it rendered these inputs and every output is still as written."""
    if not prev or prev.get("status") not in ("ok", "skipped") or prev.get("input_hash") != ihash:
        return None
    outs = prev.get("outputs") or {}
    for fmt in formats:
        o = outs.get(fmt)
        if not o or not (out / o["path"]).is_file() or file_sha256(out / o["path"]) != o["sha256"]:
            return None
    return {k: prev[k] for k in ("duration_s", "frames", "timings", "outputs", "worker", "warnings", "transcript_used")
            if k in prev}


def _written(ln: Line, rec: dict, res: dict, out: Path, summary: Summary) -> dict:
    """A worker's result -> files on disk and the line's record."""
    rec = {**rec, "timings": res.get("timings"), "worker": res.get("worker")}
    if not res.get("ok"):
        return {**rec, "status": "failed", "error": res.get("error") or "unknown error"}
    outputs = {}
    try:
        for fmt, data in res["outputs"].items():
            rel = f"{ln.id}.{fmt}"
            atomic_write_bytes(out / rel, data)
            outputs[fmt] = {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    except OSError as e:
        return {**rec, "status": "failed", "error": f"can't write the output: {e}"}
    summary.audio_seconds += res["duration_s"]
    return {**rec, "status": "ok", "duration_s": res["duration_s"], "frames": res["frames"], "outputs": outputs,
            "transcript_used": res.get("transcript_used"), "warnings": rec["warnings"] + res.get("warnings", [])}


# ---- executors: one process, local processes, Ray ----------------------------------------
class _InProcess:
    def __init__(self, checkpoint, threads):
        self.checkpoint, self.threads = checkpoint, threads
        self.describe = f"1 process, {threads} thread(s)"

    def map(self, tasks, send: bool) -> Iterator:
        import torch

        from .render import init_worker, render
        before = torch.get_num_threads()  # the caller's setting, given back when the batch ends
        init_worker(self.checkpoint, self.threads)
        try:
            for item in tasks:
                try:
                    yield item, render(_payload(item[1], send))
                except OSError as e:
                    yield item, {"ok": False, "error": f"can't read the audio: {e}"}
        finally:
            torch.set_num_threads(before)


class _LocalPool:
    """Local worker processes (spawn: a clean interpreter each, no forked torch state), each
    loading the model once; results come back as they finish. A worker that dies (killed, out
    of memory) fails the lines it held and the pool is started afresh, a few times at most."""
    RESTARTS = 3

    def __init__(self, workers, checkpoint, threads):
        self.workers, self.checkpoint, self.threads = workers, checkpoint, threads
        self.restarts = 0
        self.pool = self._start()
        self.describe = f"{workers} local processes, {threads} thread(s) each"

    def _start(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from .render import init_worker
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=init_worker, initargs=(self.checkpoint, self.threads, True))

    def _restart(self, why: Exception):
        if self.restarts >= self.RESTARTS:
            raise LaliaError(f"the worker processes keep dying ({why}); rerun to resume, or try --workers 1")
        self.restarts += 1
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._start()

    def map(self, tasks, send: bool) -> Iterator:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        from .render import render
        pending, queue = {}, iter(tasks)
        try:
            while True:
                while len(pending) < 4 * self.workers:  # bounded: sent audio bytes stay few
                    item = next(queue, None)
                    if item is None:
                        break
                    try:
                        payload = _payload(item[1], send)
                    except OSError as e:
                        yield item, {"ok": False, "error": f"can't read the audio: {e}"}
                        continue
                    try:
                        pending[self.pool.submit(render, payload)] = item
                    except BrokenProcessPool as e:
                        self._restart(e)
                        pending[self.pool.submit(render, payload)] = item
                if not pending:
                    return
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    item = pending.pop(fut)
                    try:
                        res = fut.result()
                    except Exception as e:  # the worker process died (killed, out of memory)
                        res = {"ok": False, "error": f"worker failed: {type(e).__name__}: {e}"}
                    yield item, res
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _payload(task: dict, send: bool) -> dict:
    if not send:
        return task
    return {**task, "audio_bytes": Path(task["audio"]).read_bytes()}


def _executor(workers: int, ray: str | None, checkpoint, threads):
    if ray is not None:
        from .cluster import RayPool
        return RayPool(ray, workers, checkpoint, threads)
    if workers <= 1:
        return _InProcess(checkpoint, threads)
    return _LocalPool(workers, checkpoint, threads)
