"""A dialogue manifest (CSV, JSONL or a folder of audio) -> `Line`s, each with its options and
the hash of everything that decides its motion."""
from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..base.errors import LaliaError
from ..inference.options import GenerationOptions, parse_emotion

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
FORMATS = ("npz", "csv")
# manifest columns beside audio/id/character/transcript/emotion/style/seed/format that map onto
# GenerationOptions as numbers
NUMBER_COLUMNS = {"steps": int, "head_motion": float, "expressiveness": float, "brow_activity": float,
                  "blink_rate": float}
KNOWN_COLUMNS = {"audio", "id", "character", "transcript", "emotion", "style", "seed", "format"} | set(NUMBER_COLUMNS)
# letters and digits of any script, _ . -, and / between folder names; no part starts with a dot
# (hidden files, and the driver's temp files are .STEM.HEX.partSUFFIX)
_SAFE_ID = re.compile(r"^[^\W.][\w.\-]*(/[^\W.][\w.\-]*)*$")


@dataclass
class Line:
    """One line of dialogue: where it came from, its audio and options, or why it can't run."""
    index: int                       # position in the manifest (0-based), the results' order
    id: str
    audio: Path | None = None
    character: str | None = None
    transcript: str | None = None
    options: GenerationOptions | None = None
    formats: tuple[str, ...] = ("npz",)
    error: str | None = None         # set: the line is reported failed and never run
    warnings: list[str] = field(default_factory=list)
    style_file: Path | None = None   # a reference-motion style: hashed with the inputs


def parse_formats(text, default: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(text, (list, tuple)):  # JSONL: ["npz", "csv"]
        text = ",".join(map(str, text))
    if text is None or not str(text).strip():
        return default
    t = str(text).strip().lower()
    fmts = FORMATS if t == "both" else tuple(f.strip() for f in re.split(r"[;,+ ]", t) if f.strip())
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise LaliaError(f"format {text!r}: use npz, csv or both")
    return tuple(dict.fromkeys(fmts))


def read_manifest(source, base: GenerationOptions | None = None, formats: tuple[str, ...] = ("npz",)) -> list[Line]:
    """Lines from a CSV or JSONL manifest, or every audio file in a folder (id = the file's stem).
    Relative audio (and style file) paths resolve against the manifest's folder. A line that
    can't run carries its `error`; only an unreadable manifest raises."""
    source = Path(source)
    base = base or GenerationOptions()
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
        if not files:
            raise LaliaError(f"{source}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
        rows = [{"audio": str(p.relative_to(source))} for p in files]
        root = source
    elif source.is_file():
        root = source.parent
        rows = _read_rows(source)
    else:
        raise LaliaError(f"Manifest not found: {source}")
    lines = [_line(i, row, root, base, formats) for i, row in enumerate(rows)]
    seen: dict[str, int] = {}
    for ln in lines:  # two lines writing one file would overwrite each other: the later fails
        if ln.id in seen and ln.error is None:
            ln.error = f"duplicate id {ln.id!r} (line {seen[ln.id] + 1} has it too)"
        seen.setdefault(ln.id, ln.index)
    return lines


def _read_rows(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8-sig")
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        for n, raw in enumerate(text.splitlines(), 1):
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            try:
                row = json.loads(raw)
                if not isinstance(row, dict):
                    raise ValueError("not an object")
            except ValueError as e:
                row = {"_error": f"line {n} is not a JSON object ({e})", "id": f"line{n}"}
            rows.append(row)
        return rows
    if suffix in (".csv", ".tsv", ".txt"):
        reader = csv.DictReader((r for r in text.splitlines() if r.strip() and not r.startswith("#")),
                                delimiter="\t" if suffix == ".tsv" else ",")
        if not reader.fieldnames or "audio" not in [f.strip().lower() for f in reader.fieldnames]:
            raise LaliaError(f"{path}: the CSV needs a header with an 'audio' column")
        return [{(k or "").strip().lower(): (v.strip() if isinstance(v, str) else v) for k, v in row.items()}
                for row in reader]
    raise LaliaError(f"{path}: a manifest is .csv, .tsv or .jsonl (or a folder of audio files)")


def _line(index: int, row: dict, root: Path, base: GenerationOptions, formats) -> Line:
    audio = row.get("audio")
    ident = str(row.get("id") or "").strip() or (Path(str(audio)).stem if audio else f"line{index + 1}")
    ln = Line(index, ident, character=_text(row.get("character")), transcript=_text(row.get("transcript")))
    try:
        if row.get("_error"):
            raise LaliaError(row["_error"])
        if not _SAFE_ID.match(ident) or ".." in ident.split("/"):
            raise LaliaError(f"id {ident!r} can't name a file: use letters, digits, . _ - and / for folders "
                             "(not starting with a dot)")
        if not audio or not str(audio).strip():
            raise LaliaError("no audio path")
        ln.audio = _resolve(str(audio).strip(), root)
        if not ln.audio.is_file():
            raise LaliaError(f"audio file not found: {ln.audio}")
        changes: dict = {}
        if "emotion" in row:
            emotion = parse_emotion(row["emotion"])
            if emotion is not None:
                changes["emotion"] = emotion
        style = _text(row.get("style"))
        if style:
            path = _resolve(style, root)
            if path.suffix.lower() in (".npz", ".csv", ".json") or path.exists():
                if not path.is_file():
                    raise LaliaError(f"style reference not found: {path}")
                ln.style_file, style = path, str(path)
            changes["style"] = style
        if ln.transcript is not None:
            changes["transcript"] = ln.transcript
        if _text(row.get("seed")) is not None:
            changes["seed"] = _number(row["seed"], int, "seed")
        for name, kind in NUMBER_COLUMNS.items():
            if _text(row.get(name)) is not None:
                changes[name] = _number(row[name], kind, name)
        ln.options = base.replace(**changes)
        ln.formats = parse_formats(row.get("format"), formats)
        unknown = sorted(k for k in row if k not in KNOWN_COLUMNS and not str(k).startswith("_") and k)
        if unknown:
            ln.warnings.append(f"columns ignored: {', '.join(unknown)}")
    except LaliaError as e:
        ln.error = str(e)
    return ln


def _resolve(path: str, root: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else (root / p)


def _text(v):
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def _number(v, kind, name):
    try:
        x = float(v)
        if kind is int:
            if x != int(x):
                raise ValueError
            return int(x)
        return x
    except (TypeError, ValueError):
        raise LaliaError(f"{name} {v!r} is not {'a whole number' if kind is int else 'a number'}")


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def options_record(options: GenerationOptions) -> dict:
    """The options as plain JSON (sorted emotion mix; arrays as lists)."""
    import dataclasses
    out = {}
    for f in dataclasses.fields(options):
        v = getattr(options, f.name)
        if isinstance(v, dict):
            v = {k: v[k] for k in sorted(v)}
        elif hasattr(v, "tolist"):
            v = v.tolist()
        out[f.name] = v
    return out


def input_hash(audio_sha256: str, options: GenerationOptions, model: str, threads: int,
               style_sha256: str | None = None) -> str:
    """sha256 over everything that decides a line's motion bytes: the audio's bytes, the options,
    the model's weights, a reference style's bytes and the torch threads (they change the float
    rounding). A rerun with the same hash and intact outputs has nothing to do."""
    opts = options_record(options)
    if style_sha256:  # a style file counts by its bytes, not where the project folder sits
        opts["style"] = None
    record = {"audio": audio_sha256, "options": opts, "model": model, "threads": threads,
              "style_file": style_sha256, "writer": WRITER_VERSION}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


# bump when the bytes written for the same motion change (file layout, CSV number format)
WRITER_VERSION = 1
