"""`lalia export`: every line of a finished batch (or a list of motion npz files) -> an FBX of a
face rig, written by Blender in the background, and a Live Link Face CSV; resumable as the batch is.

The FBX is made by the add-on's own code (rig mapping, keys, FBX export) in a child process with
the bpy module (the add-on's headless_export.py): bpy never loads into this process, and a Blender crash costs
the line it was on; a fresh Blender takes the next line. With --workers N, N such children export
lines side by side, each driven by a thread here; every FBX depends only on its own line, so the
files are the same bytes whatever N is. The CSV is written here, from the motion.
Every file is written whole (a temp file, then a rename), and only then is the line's record
appended to export.jsonl, so a killed export resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from ..base.errors import LaliaError
from ..base.files import write_bytes_atomic
from ..base.motion import ARKIT_NAMES, Motion
from .lines import file_sha256
from .render import csv_bytes
from .run import RESULTS, Journal, LineCounts, Progress, exclusive, remove_stale_parts, still_done

EXPORTS = "export.jsonl"
EXPORT_FORMATS = ("fbx", "csv")
PRESETS = ("unity", "unreal")
# bump when the files written for the same motion and rig change
EXPORT_VERSION = 1
CHILD_SCRIPT = "headless_export.py"  # in the add-on's folder: Blender stays out of model_core
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ExportLine:
    id: str
    npz: Path | None
    error: str | None = None   # set: reported failed, never exported


@dataclass
class Rig:
    """What the FBX holds: a .blend and the face object in it, or the bundled head (blend None)."""
    blend: Path | None = None
    object: str | None = None
    head_bone: str | None = None
    preset: str = "unity"
    fps: float | None = None

    def check(self) -> None:
        """The rig's own problems, before any line is touched."""
        if self.preset not in PRESETS:
            raise LaliaError(f"Unknown preset '{self.preset}': use {' or '.join(PRESETS)}")
        if self.fps is not None and not 1 <= self.fps <= 240:
            raise LaliaError(f"--fps {self.fps:g}: give a frame rate between 1 and 240")
        if self.blend is None:
            if self.object:
                raise LaliaError("--object names an object in --rig FILE.blend; give the file too")
            return
        if not self.blend.is_file():
            raise LaliaError(f"Rig file not found: {self.blend}")
        if self.blend.suffix.lower() != ".blend":
            raise LaliaError(f"--rig {self.blend.name}: give a Blender file (.blend) holding the face rig")
        if not self.object:
            raise LaliaError("--rig needs --object NAME: the face mesh in it (or the armature deforming it)")

    def identity(self) -> dict:
        """What decides the FBX besides the motion: the rig file's bytes (or the bundled head's)."""
        from ..base.head import HEAD_PATH
        blend = file_sha256(self.blend) if self.blend else f"bundled head {file_sha256(HEAD_PATH)}"
        return {"rig": blend, "object": self.object, "head_bone": self.head_bone, "preset": self.preset,
                "fps": self.fps}


# ---- the lines ---------------------------------------------------------------------------
def read_sources(sources: list[str]) -> tuple[list[ExportLine], Path | None]:
    """A finished batch's --out folder (the lines of its results.jsonl, in manifest order) or
    motion npz files; returns the lines and the batch folder (None for files)."""
    paths = [Path(s) for s in sources]
    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        if not (folder / RESULTS).is_file():
            raise LaliaError(f"{folder} has no {RESULTS}: give a finished batch's --out folder, or motion npz files")
        records = sorted(Journal(folder / RESULTS).records.values(), key=lambda r: (r.get("index", 0), r["id"]))
        return [_batch_line(r, folder) for r in records], folder
    lines, seen = [], set()
    for p in paths:
        if p.is_dir():
            raise LaliaError(f"{p} is a folder: give one batch folder, or npz files (not both)")
        line = ExportLine(p.stem, p)
        if p.suffix.lower() != ".npz":
            line.error = f"{p.name} is not a motion npz"
        elif not p.is_file():
            line.error = f"motion file not found: {p}"
        elif p.stem in seen:
            line.error = f"a second file named {p.stem}.npz: the outputs would overwrite the first's"
        seen.add(p.stem)
        lines.append(line)
    if not lines:
        raise LaliaError("nothing to export: give a batch folder or npz files")
    return lines, None


def _batch_line(rec: dict, folder: Path) -> ExportLine:
    npz = (rec.get("outputs") or {}).get("npz")
    if rec.get("status") not in ("ok", "skipped"):
        return ExportLine(rec["id"], None, f"the batch failed this line: {rec.get('error') or rec.get('status')}")
    if not npz:
        return ExportLine(rec["id"], None, "the batch wrote no npz for this line (--format csv); rerun it with npz")
    return ExportLine(rec["id"], folder / npz["path"])


def parse_export_formats(text: str) -> tuple[str, ...]:
    t = str(text or "both").strip().lower()
    fmts = EXPORT_FORMATS if t == "both" else tuple(dict.fromkeys(f.strip() for f in t.split(",") if f.strip()))
    if not fmts or any(f not in EXPORT_FORMATS for f in fmts):
        raise LaliaError(f"--format {text!r}: use fbx, csv or both")
    return fmts


# ---- Blender in a child process ----------------------------------------------------------
class BlenderChild:
    """One background Blender (the bpy module in a child Python) that exports line after line.
    If it dies, the line it held fails and the next line starts a fresh one; one that dies at
    every start stops the export."""
    MAX_CRASHES = 3  # in a row

    def __init__(self, rig: Rig, addon: Path):
        self.cfg = {"addon": str(addon), "rig": str(rig.blend.resolve()) if rig.blend else None,
                    "object": rig.object, "head_bone": rig.head_bone, "preset": rig.preset.upper()}
        self.fps = rig.fps  # None: each motion's own
        self.proc, self.crashes, self.starts = None, 0, []
        self.info: dict = {}
        self._log = tempfile.TemporaryFile(mode="w+b")

    def _start(self) -> None:
        t0 = time.perf_counter()
        # the FBX exporter numbers objects by hash() of their names: a fixed seed gives every child
        # the same numbers, so the FBX's bytes don't depend on which child wrote it
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONHASHSEED": "0"}
        script = Path(self.cfg["addon"]) / CHILD_SCRIPT
        self.proc = subprocess.Popen([sys.executable, str(script), json.dumps(self.cfg)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log, env=env, text=True, bufsize=1)
        ready = self._reply()
        if ready is None:
            raise LaliaError(f"Blender (the bpy module) could not start: {self._died()}")
        if not ready.get("ready"):
            self.close()
            raise LaliaError(ready.get("error") or "Blender could not open the rig")
        self.starts.append(time.perf_counter() - t0)
        self.info = ready

    def _reply(self) -> dict | None:
        raw = self.proc.stdout.readline()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return {"ok": False, "error": f"Blender answered something unexpected: {raw[:120]!r}"}

    def _died(self) -> str:
        rc = self.proc.wait()
        self.proc = None
        try:
            how = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}"
        except ValueError:  # a signal number Python has no name for
            how = f"killed by signal {-rc}"
        self._log.seek(0)
        tail = [ln for ln in self._log.read().decode("utf-8", "replace").splitlines() if ln.strip()][-1:]
        return f"it quit ({how})" + (f"; its last words: {tail[0][:200]}" if tail else "")

    def ready(self) -> None:
        if self.proc is None:
            self._start()

    def export(self, task: dict) -> dict:
        self.ready()
        try:
            self.proc.stdin.write(json.dumps(task) + "\n")
            self.proc.stdin.flush()
            reply = self._reply()
        except (BrokenPipeError, OSError):
            reply = None
        if reply is not None:
            self.crashes = 0
            return reply
        self.crashes += 1
        why = self._died()
        if self.crashes >= self.MAX_CRASHES:
            raise LaliaError(f"Blender crashed on {self.crashes} lines in a row ({why}); "
                             "the lines done are kept, rerun to resume")
        return {"ok": False, "error": f"Blender crashed on this line ({why}); a fresh Blender takes the next line"}

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        self._log.close()


def find_addon(addon: str | None) -> Path:
    """The add-on's folder: --addon, else blender_addon/ beside model_core (a source checkout)."""
    folder = Path(addon) if addon else ROOT / "blender_addon"
    if not (folder / "rig.py").is_file() or not (folder / CHILD_SCRIPT).is_file():
        raise LaliaError(f"export runs the add-on's code, and {folder} doesn't hold it: run from a source checkout, "
                         "or give --addon with the Lalia extension's folder (the zip unpacked)")
    return folder


# ---- the export --------------------------------------------------------------------------
@dataclass
class ExportSummary(LineCounts):
    blender_starts: list = field(default_factory=list)   # seconds from spawn to a loaded rig, per start
    line_seconds: list = field(default_factory=list)     # seconds in Blender per exported line
    workers: int = 0                                     # Blender children exporting side by side

    def text(self) -> str:
        lines = [f"{self.total} lines: {self.ok} exported, {self.failed} failed, {self.skipped} skipped (done and "
                 f"unchanged) in {self.seconds:.1f} s"]
        if self.blender_starts:
            per = sum(self.line_seconds) / len(self.line_seconds) if self.line_seconds else 0.0
            lines.append(f"  Blender: {len(self.blender_starts)} start(s), {self.workers} side by side, "
                         f"{self.blender_starts[0]:.2f} s to open the rig; {per:.2f} s per line in Blender")
        return "\n".join(lines + self.failure_lines(EXPORTS))


def run_export(lines: list[ExportLine], out: Path, rig: Rig, *, formats=EXPORT_FORMATS, addon: str | None = None,
               workers: int = 1, force: bool = False, progress: bool = True, stream=None) -> ExportSummary:
    """workers: Blender children exporting side by side (never more than the lines to export)."""
    rig.check()
    if workers < 1:
        raise LaliaError(f"--workers {workers}: give 1 or more (the Blender processes exporting side by side)")
    folder = find_addon(addon) if "fbx" in formats else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with exclusive(out, "export"):
        return _export(lines, out, rig, tuple(formats), folder, workers, force, progress, stream)


def _export(lines, out, rig, formats, addon, workers, force, progress, stream) -> ExportSummary:
    t0 = time.perf_counter()
    remove_stale_parts(out)
    journal = Journal(out / EXPORTS)
    order = [ln.id for ln in lines]
    journal.compact(order)
    summary = ExportSummary(total=len(lines))
    bar = Progress(len(lines), progress, stream)
    rig_id = rig.identity() if "fbx" in formats else None
    todo: list[tuple[ExportLine, dict]] = []
    children: list[BlenderChild | None] = []

    def finish(rec: dict) -> None:  # called from this thread only: the journal, bar and counts are not thread-safe
        journal.append(rec)
        summary.count(rec)
        if rec["status"] == "ok" and (rec.get("timings") or {}).get("blender") is not None:
            summary.line_seconds.append(rec["timings"]["blender"])
        bar.update(rec["status"])

    try:
        for ln in lines:
            rec = {"id": ln.id, "npz": str(ln.npz) if ln.npz else None, "formats": list(formats), "error": None,
                   "warnings": []}
            if ln.error is None:
                try:
                    rec["npz_sha256"] = file_sha256(ln.npz)
                except OSError as e:
                    ln.error = f"can't read {ln.npz}: {e.strerror or e}"
            if ln.error is not None:
                finish({**rec, "status": "failed", "error": ln.error})
                continue
            rec["input_hash"] = hashlib.sha256(json.dumps(
                {"npz": rec["npz_sha256"], "rig": rig_id, "formats": formats, "writer": EXPORT_VERSION},
                sort_keys=True).encode()).hexdigest()
            done = None if force else still_done(journal.records.get(ln.id), rec["input_hash"], formats, out)
            if done is not None:
                finish({**rec, **done, "status": "skipped", "reason": "done and unchanged"})
                continue
            todo.append((ln, rec))
        if todo:
            children = [BlenderChild(rig, addon) if "fbx" in formats else None
                        for _ in range(min(workers, len(todo)))]
            summary.workers = len(children)
            _export_lines(todo, out, formats, children, finish)
    finally:
        bar.close()
        for child in filter(None, children):
            summary.blender_starts += child.starts
            child.close()
        # the lines finish in any order with several children; the summary lists them as given
        rank = {k: i for i, k in enumerate(order)}
        summary.failures.sort(key=lambda f: rank[f[0]])
        summary.seconds = time.perf_counter() - t0
        journal.compact(order)
    return summary


def _export_lines(todo, out: Path, formats, children: list, finish) -> None:
    """Every line in `todo` through `_export_line`, one thread per child (the children are
    processes: the threads only wait for them), each line taken by the next free child; `finish`
    gets each record as its line ends. A rig that can't be used, or a child that keeps crashing,
    stops the export: the lines in hand end, the lines not begun are dropped (a rerun does them)."""
    free: queue.SimpleQueue = queue.SimpleQueue()
    for child in children:
        free.put(child)

    def one(ln: ExportLine, rec: dict) -> dict:
        child = free.get()  # never waits: as many threads as children
        try:
            return _export_line(ln, rec, out, formats, child)
        finally:
            free.put(child)

    pool = ThreadPoolExecutor(len(children), thread_name_prefix="blender")
    try:
        for fut in as_completed([pool.submit(one, ln, rec) for ln, rec in todo]):
            finish(fut.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _export_line(ln: ExportLine, rec: dict, out: Path, formats, child: BlenderChild | None) -> dict:
    """One line: the motion read and checked here (a damaged file never reaches Blender), the FBX
    from Blender, then the CSV; the record lists each file's sha256."""
    t0 = time.perf_counter()
    try:
        motion = Motion.read(ln.npz)
    except LaliaError as e:
        return {**rec, "status": "failed", "error": str(e)}
    outputs, timings = {}, {}
    if "fbx" in formats:
        child.ready()  # a rig that can't be used stops the export here (not a failure of each line)
    try:
        if "fbx" in formats:
            res = child.export({"id": ln.id, "npz": str(ln.npz.resolve()), "fbx": str((out / f"{ln.id}.fbx").resolve()),
                                "fps": child.fps})
            timings["blender"] = res.get("seconds")
            if not res.get("ok"):
                return {**rec, "status": "failed", "error": res.get("error") or "unknown error", "timings": timings}
            outputs["fbx"] = _output(out, f"{ln.id}.fbx")
            rec.update(fps=res["fps"], keys=res["keys"], fbx_frames=res["fbx_frames"])
        if "csv" in formats:
            if not any(c in motion.channels for c in ARKIT_NAMES):
                return {**rec, "status": "failed", "timings": timings,
                        "error": "the motion has no ARKit channels (a FLAME motion?): Live Link CSV holds ARKit "
                                 "curves; export --format fbx"}
            write_bytes_atomic(out / f"{ln.id}.csv", csv_bytes(motion), "Live Link CSV")
            outputs["csv"] = _output(out, f"{ln.id}.csv")
    except LaliaError as e:
        return {**rec, "status": "failed", "error": str(e), "timings": timings}
    timings["total"] = round(time.perf_counter() - t0, 4)
    return {**rec, "status": "ok", "outputs": outputs, "timings": timings, "frames": motion.num_frames,
            "duration_s": round(motion.duration, 3)}


def _output(out: Path, rel: str) -> dict:
    path = out / rel
    return {"path": rel, "sha256": file_sha256(path), "bytes": path.stat().st_size}
