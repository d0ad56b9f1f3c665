"""The worker side: one generator per process, a line's audio and options in, its motion
files' bytes out. The same code runs in the driver (one process), in local worker processes
and in Ray actors, so every path writes the same bytes."""
from __future__ import annotations

import io
import logging
import os
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from ..base.motion import Motion, write_live_link_csv

_STATE: dict = {}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so the same motion always gives the same npz bytes


def init_worker(checkpoint: str | None, threads: int, orphan_exit: bool = False) -> None:
    """Load the model once per process. The torch thread count is fixed because it changes the
    float rounding: the same line gives the same bytes only at the same `threads`.
    `orphan_exit`: a local worker process ends itself when its driver is gone (a driver killed
    with -9 can't stop its pool, and the workers would wait for lines forever)."""
    if orphan_exit:
        _exit_with_parent()
    import torch
    torch.set_num_threads(int(threads))
    if _STATE.get("key") == (checkpoint, int(threads)):
        return  # this process already holds that model (a driver running several batches)
    from ..inference.generator import load_generator
    _STATE["generator"] = load_generator(checkpoint)
    _STATE["key"] = (checkpoint, int(threads))


def _exit_with_parent() -> None:
    import threading
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)
    threading.Thread(target=watch, name="lalia-orphan-watch", daemon=True).start()


def npz_bytes(motion: Motion) -> bytes:
    """The motion as Motion.save's npz (fps, channels, values), without np.savez's timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for key, val in (("fps", np.float32(motion.fps)), ("channels", np.array(motion.channels)),
                         ("values", motion.values)):
            npy = io.BytesIO()
            np.lib.format.write_array(npy, np.asanyarray(val), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, npy.getvalue())
    return buf.getvalue()


def csv_bytes(motion: Motion) -> bytes:
    """The motion as a Live Link Face CSV (`write_live_link_csv`)."""
    with tempfile.TemporaryDirectory(prefix="lalia-csv-") as d:
        path = Path(d) / "m.csv"
        write_live_link_csv(motion, path)
        return path.read_bytes()


ENCODERS = {"npz": npz_bytes, "csv": csv_bytes}


class _Collect(logging.Handler):
    """Warnings the core logs while a line renders become the line's warnings."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def render(task: dict) -> dict:
    """task: id, options, formats, and audio (a path) or audio_bytes + suffix (sent by the driver).
    Returns ok, duration, timings, warnings and outputs {format: bytes}, or ok False and the error.
    Never raises for a line's own problems: one bad line must not stop the batch."""
    import warnings

    from ..base.audio import load_audio
    from ..base.errors import LaliaError
    t0, cpu0 = time.perf_counter(), time.process_time()
    collect = _Collect()
    logging.getLogger("model_core").addHandler(collect)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t_audio = time.perf_counter()
            if task.get("audio_bytes") is not None:
                with tempfile.TemporaryDirectory(prefix="lalia-audio-") as d:
                    path = Path(d) / ("audio" + task.get("suffix", ".wav"))
                    path.write_bytes(task["audio_bytes"])
                    notes = audio_notes(path)
                    wav = load_audio(path)
            else:
                notes = audio_notes(task["audio"])
                wav = load_audio(task["audio"])
            t_audio = time.perf_counter() - t_audio
            notes += signal_notes(wav)
            gen = _STATE["generator"].generate(wav, task["options"])
            outputs = {fmt: ENCODERS[fmt](gen.motion) for fmt in task["formats"]}
        t = gen.timings
        return {"ok": True, "duration_s": round(len(wav) / 16000, 3), "frames": gen.motion.num_frames,
                "timings": {"audio": round(t_audio, 4), "encoder": round(t.encoder, 4), "sampler": round(t.sampler, 4),
                            "total": round(time.perf_counter() - t0, 4),
                            "cpu": round(time.process_time() - cpu0, 4)},
                "warnings": notes + collect.messages + [str(w.message) for w in caught],
                "transcript_used": gen.info["transcript"]["used"] if "transcript" in gen.info else None,
                "outputs": outputs, "worker": f"{os.uname().nodename}:{os.getpid()}"}
    except Exception as e:  # a line's unexpected failure is still that line's, reported with its type
        why = str(e) if isinstance(e, LaliaError) else f"{type(e).__name__}: {e}"
        return {"ok": False, "error": why, "timings": {"total": round(time.perf_counter() - t0, 4)}}
    finally:
        logging.getLogger("model_core").removeHandler(collect)


def audio_notes(path) -> list[str]:
    """What the decoder will do to the file (resample, downmix), worth a line's warning."""
    try:
        import soundfile as sf
        info = sf.info(str(path))
    except Exception:
        return []
    notes = []
    if info.samplerate != 16000:
        notes.append(f"resampled from {info.samplerate} Hz to 16 kHz")
    if info.channels > 1:
        notes.append(f"{info.channels} channels mixed to mono")
    return notes


def signal_notes(wav: np.ndarray) -> list[str]:
    """Audio a director would want to hear about: clipping, near-silence, long lines."""
    notes = []
    peak = float(np.abs(wav).max()) if len(wav) else 0.0
    if peak >= 0.999:
        notes.append("audio clips (peak at full scale)")
    if peak < 0.01:
        notes.append("audio is nearly silent (peak below -40 dBFS)")
    if len(wav) > 30 * 16000:
        notes.append(f"line is {len(wav) / 16000:.0f} s long (encoded in overlapping 30 s windows)")
    return notes
