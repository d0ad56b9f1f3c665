"""Markdown tables from the committed measurement reports in docs/*.json.

    python tools/report_tables.py          # prints every table
    python tools/report_tables.py --write  # rewrites them between their markers: the full tables in
                                           # docs/results.md, the headline summary in README.md
"""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EMOTIONS = ("happy", "sad", "angry", "surprised", "fearful", "disgusted", "contempt")


def load(name):
    return json.loads((DOCS / name).read_text())


def table(header, rows) -> list[str]:
    """A markdown table: the header cells, then one row of cells each."""
    line = lambda cells: "| " + " | ".join(map(str, cells)) + " |"
    return [line(header), "|---" * len(header) + "|", *map(line, rows)]


def quality():
    r = load("eval_default.json")
    s, h = r["synthetic_test"], r["real_speech"]
    rows = [
        ("LVE (mm, lip vertices of the bundled head)", s["lve"], ""),
        ("reference: **animator spread** (LVE between two renditions of the same utterance by the "
         "procedural animator with different speaking styles and seeds)", s["animator_spread_lve"], ""),
        ("LVE / animator spread", f"**{s['lve_over_spread']}**", "≤ 1.5"),
        ("MOD (mm)", s["mod"], ""), ("FDD (mm)", s["fdd"], ""),
        (f"lips close on bilabials (synthetic, {s['bilabials']} /p b m/)",
         f"**{s['bilabial_closure_pred']:.1%}** (ground truth {s['bilabial_closure_gt']:.0%})", "≥ 90%"),
        ("sync offset, mouth opening vs vowels (synthetic)", f"{s['sync_offset_ms']:.1f} ms", ""),
        ("beat alignment, head vs audio onsets (pred / ground truth)", f"{s['ba_pred']} / {s['ba_gt']}", ""),
        ("diversity across seeds (mean lip-vertex distance)", f"{s['diversity_mm']} mm", ""),
        ("window-join speed / within-window speed", s["boundary_ratio"], "≈ 1 (no jump)"),
        (f"**real speech** (LibriVox, {h['seconds']} s, {h['clips']} clips): lips close on bilabials "
         f"({h['bilabials']})", f"**{h['bilabial_closure']:.1%}**", "≥ 85%"),
        ("real speech: sync offset (mean of clips; per clip "
         + ", ".join(f"{x:g}" for x in h["sync_offset_ms_per_clip"]) + " ms)", f"**{h['sync_offset_ms']:.0f} ms**",
         "≤ 40 ms"),
        ("real speech: head motion std / mean abs angular acceleration",
         f"{h['head_std_deg']:.2f}° / {h['head_jerk_deg_s2']:.0f} °/s²", "alive, not shaking"),
    ]
    out = [f"Model `{r['checkpoint']}` (sha256 {r['checkpoint_sha256'][:12]}), {r['steps']} sampler steps; "
           f"{s['takes']} test takes ({s['frames']:,} frames).", ""]
    out += table(["metric", "shipped model", "target"], rows)
    es = s["emotion_shift"]
    out += [""] + table(["emotion shift", *EMOTIONS],
                        [["predicted"] + [f"{es[e]['pred']:.2f}" for e in EMOTIONS],
                         ["ground truth"] + [f"{es[e]['gt']:.2f}" for e in EMOTIONS]])
    return "\n".join(out)


def distillation():
    t = load("distillation.json")
    rows = []
    for r in t["rows"]:
        ok = r.get("within_5pct_of_teacher")
        rows.append([r["checkpoint"].replace(".safetensors", ""), r["steps"], f"{r['lve_mm']:.3f}",
                     f"{r['bilabial_closure']:.1%}", f"{r['real_bilabial_closure']:.1%}",
                     f"{r['emotion_bilabial_closure']:.1%}", f"{r['real_sync_offset_ms']:.0f}",
                     f"{r['emotion_recognised']:.0%}", f"{r['sampler_seconds_60s']:.2f}",
                     f"{r['total_seconds_60s']:.2f}", "teacher" if ok is None else ("yes" if ok else "no")])
    out = table(["checkpoint", "steps", "LVE mm", "closure (synthetic)", "closure (real)", "closure (emotions at 1)",
                 "sync offset real ms", "emotion recognised", "sampler s / 60 s", "total s / 60 s", "within 5%"], rows)
    out += ["", f"Shipped: `{t['shipped']}` (rule: {t['rule']})."]
    return "\n".join(out)


def controls():
    r = load("controls_default.json")
    w, rec, conf = r["emotion_keeps_words"], r["emotion_recognised"], r["emotion_confidence_by_intensity"]
    out = [f"{w['takes']} held-out takes, {w['bilabials']} bilabials; neutral closes "
           f"{w['neutral']['bilabial_closure']:.1%} "
           f"({w['neutral']['model_alone']['bilabial_closure']:.1%} from the model "
           "alone, without the closure layer).", ""]
    out += table(["emotion at intensity 1", "closure", "closure drop", "drop, model alone", "mouth corr. with neutral",
                  "corr. drop", "recognised", "confidence at 0.25 / 0.5 / 0.75 / 1"],
                 [[e, f"{w[e]['bilabial_closure']:.1%}", f"**{w[e]['closure_drop_pct']:+.1f}%**",
                   f"{w[e]['model_alone']['closure_drop_pct']:+.1f}%", f"{w[e]['mouth_corr_with_neutral']:.3f}",
                   f"{w[e]['corr_drop_pct']:+.1f}%", f"{rec[e]:.0%}", " / ".join(f"{x:.2f}" for x in conf[e])]
                  for e in EMOTIONS])
    same, other = r["style_follows_reference"]["same_words"], r["style_follows_reference"]["other_take"]
    shipped, alone, label = same["shipped"], same["model_alone"], same["with_speaker_style"]
    out += ["", f"Style follows the reference: {same['speakers']} held-out speakers, each one's first take the "
            f"reference for the same {same['clips']} held-out clips' words (neutral); target r ≥ 0.8. The slope is "
            "the generated amplitude per unit of the reference's (1: as much movement as the reference); the last "
            "column correlates with the speaker's labelled style instead (head amount, articulation, "
            "brow activity).", ""]
    names = ("head_motion", "articulation", "brow_activity")
    labelled = lambda row: " / ".join(str(row[f"{n}_r"]) for n in names)
    out += table(["", "head motion r", "slope", "articulation r", "slope", "brow raise r", "slope",
                  "r with the labelled style"],
                 [["shipped (head, mouth and brow movement matched to the reference)"]
                  + [x for n in names for x in (f"**{shipped[f'{n}_r']}**", shipped[f"{n}_slope"])]
                  + [labelled(label["shipped"])],
                  ["the model alone"] + [x for n in names for x in (alone[f"{n}_r"], alone[f"{n}_slope"])]
                  + [labelled(label["model_alone"])],
                  ["the reference itself"] + [""] * 6 + [labelled(label["reference_itself"])]])
    ceiling = other["corpus_ceiling"]
    out += ["", f"The same with each speaker's second take's words and emotions ({other['speakers']} speakers): "
            f"head motion r {other['shipped']['head_motion_r']} (model alone {other['model_alone']['head_motion_r']}), "
            f"articulation r {other['shipped']['articulation_r']} ({other['model_alone']['articulation_r']}), "
            f"brow raise r {other['shipped']['brow_activity_r']} ({other['model_alone']['brow_activity_r']}); "
            f"the corpus's own ceiling there, the second take's real motion: {ceiling['head_motion_r']}, "
            f"{ceiling['articulation_r']} and {ceiling['brow_activity_r']}."]
    pr = r["presets"]
    rows = []
    for name, p in pr["presets"].items():
        for m, d in p["described"].items():
            rows.append([name, f"{d['direction']}: {pr['measures'][m]}",
                         f"{d['value']:g} (average {pr['average'][m]:g})",
                         f"{d['change']:+.0%}" if m != "asymmetry" else f"{d['change']:+.3f}",
                         f"{d['speakers_change']:+.0%}" if m != "asymmetry" else f"{d['speakers_change']:+.3f}",
                         "yes" if d["as_described"] else "**no**"])
    out += ["", f"Presets against the average style ({pr['takes']} held-out takes, neutral): each property its "
            "description names, beside its speakers' own difference (their style labels); as described when it "
            f"moves the described way by at least {pr['min_share_of_speakers_change']:.0%} of that.", ""]
    out += table(["preset", "property", "measured", "change", "its speakers", "as described"], rows)
    out += [""] + table(["slider (0 → 2 in 5 steps)", "measured", "curve", "monotonic",
                         "corpus motion (40 held-out takes)"],
                        [[name, v["measure"], " → ".join(f"{x:g}" for x in v["values"]),
                          "yes" if v["monotonic"] else "**no**", f"{v['corpus']:g}"]
                         for name, v in r["sliders"].items()])
    sw, ids = r["vae_swap"], r["identity_retrieval"]
    out += ["", f"AD-VAE code swap ({sw['pairs']} pairs, content of A + emotion of B): B's emotion recognised in "
            f"{sw['emotion_of_b_recognised']:.0%}, mouth correlation with A {sw['mouth_corr_with_a']}. "
            f"Identity library: the voice finds its own speaker among {ids['library']} in "
            f"{ids['top1']:.0%} of {ids['clips']} clips (top-5 {ids['top5']:.0%}). Emotion classifier: "
            f"train accuracy {r['classifier']['train_accuracy']:.0%}."]
    return "\n".join(out)


def speed():
    r, b = load("bench.json"), load("bench_blender.json")
    d = r["diffposetalk_config"]
    rows = [("(a) DiffPoseTalk-configured sampler", f"{d['params_M']}M params, 500 DDPM × 3 branches",
             "", "", f"{d['sampler_seconds']:.0f}", "", "")]
    for label, key in (("(b) teacher", "teacher"), ("(c) shipped", "shipped"), ("(c) shipped, 10 min", "shipped_long")):
        if key in r:
            o, sp = r[key], r[key]["split_seconds"]
            rows.append((label, f"{o['steps']} step(s), {o['audio_seconds']:.0f} s of speech",
                         f"**{o['wall_seconds']:.2f}**", f"{o['real_time_factor']}×",
                         f"{sp['sampler']:.2f} ({o['sampler_share']:.0%})",
                         f"{sp['audio_decoding']:.3f} / {sp['speech_encoder']:.2f} / {sp['writing']:.3f}",
                         f"{o['peak_memory_MB']:.0f}"))
    out = [f"`python -m model_core bench --long` on this machine ({r['cpu_count']} cores, "
           f"{r['torch_threads']} torch threads; `docs/bench.json`):", ""]
    out += table(["run", "what", "wall s", "real time", "sampler s (share)", "decode / encoder / writing s",
                  "peak MB"], rows)
    a = r["speedup_a_over_c"]
    out += ["", f"(a)/(c): sampler **{a['sampler']:.0f}×**, end to end {a['end_to_end']:.0f}× "
            f"((a) is timed over {d['method'].split(',')[0].replace('timed ', '')} and scaled to its "
            f"{d['passes']:,} passes)."]
    if "speedup_b_over_c" in r:
        speedup = r["speedup_b_over_c"]
        out[-1] += f" (b)/(c): sampler {speedup['sampler']}×, end to end {speedup['end_to_end']}×."
    if "long_over_short_time" in r:
        out[-1] += f" 10 min takes {r['long_over_short_time']}× the time of 1 min (10 = linear)."
    if "speech_encoder_options" in r:
        out += ["", "The speech encoder (log-mel + Whisper tiny.en over the two 30 s windows of the 60 s) under "
                "the options a CPU offers; the first row ships:", ""]
        out += table(["option", "seconds", "feature cosine to shipped (mean / min)"],
                     [[o["option"], f"{o['seconds']:.3f}",
                       f"{o['feature_cosine_mean']:.4f} / {o['feature_cosine_min']:.4f}"]
                      for o in r["speech_encoder_options"]])
    ms = b["model_split"]
    out += ["", f"In Blender {b['blender']} (`tools/bench_blender.py`, `docs/bench_blender.json`): Generate from "
            f"audio for {b['audio_seconds']:.0f} s at {b['scene_fps']} fps takes **{b['operator_seconds']:.2f} s**: "
            f"the model {b['model_seconds']:.2f} s (decode {ms['audio_decoding']:.3f}, encoder "
            f"{ms['speech_encoder']:.2f}, sampler {ms['sampler']:.2f}), keyframes for {b['frames_keyed']:,} frames, "
            f"NLA track and sound strip {b['keyframes_and_scene_seconds']:.2f} s."]
    return "\n".join(out)


def summary():
    """The README's headline numbers, one row each, with where the full table is."""
    q, c = load("eval_default.json"), load("controls_default.json")
    b, bb = load("bench.json"), load("bench_blender.json")
    s = q["synthetic_test"]
    words = c["emotion_keeps_words"]
    worst = max(EMOTIONS, key=lambda e: words[e]["closure_drop_pct"])
    same = c["style_follows_reference"]["same_words"]["shipped"]
    rows = [
        ("lips close on /p b m/, held-out synthetic voices", f"{s['bilabial_closure_pred']:.1%}"),
        ("lip vertex error (LVE) / the animator's own spread", f"{s['lve']} mm / {s['animator_spread_lve']} mm"),
        ("largest closure drop under an emotion at intensity 1",
         f"{words[worst]['closure_drop_pct']:+.1f}% ({worst})" if words[worst]["closure_drop_pct"] > 0 else "none"),
        ("emotions recognised at intensity 1", f"{min(c['emotion_recognised'].values()):.0%}"),
        ("style follows a reference (same words): head / articulation / brows r",
         f"{same['head_motion_r']} / {same['articulation_r']} / {same['brow_activity_r']}"),
        ("60 s of speech, end to end on 2 CPU cores", f"{b['shipped']['wall_seconds']:.2f} s "
         f"({b['shipped']['real_time_factor']}× real time)"),
        (f"Generate in Blender {bb['blender']}, 60 s at {bb['scene_fps']} fps", f"{bb['operator_seconds']:.2f} s"),
    ]
    return "\n".join(table(["measure (shipped default model)", "value"], rows))


def lipsync():
    """Lip sync on real voices (docs/lipsync_real.json, `make lipsync-bench`): the shipped model, the
    word-recognition peer and the animator on the true alignment, against the issue's targets."""
    r = load("lipsync_real.json")
    st = r["set"]
    cols = ("bilabial_closure", "openness_r", "sync_lag_ms", "rounding_contrast", "vowel_opening_mm")
    fmt = {"bilabial_closure": "{:.1%}", "openness_r": "{:.3f}", "sync_lag_ms": "{:+.0f}",
           "rounding_contrast": "{:.3f}", "vowel_opening_mm": "{:.1f}"}
    names = {"model": "**shipped model** (no transcript)", "model_transcript": "shipped model with the transcript",
             "peer": "peer: pocketsphinx word recognition + visemes",
             "animator": "animator on the true alignment (upper reference)"}
    # openness r per phone token, and in brackets per phone type (docs/lipsync_benchmark.md, round 3)
    def cell(k, c):
        text = fmt[c].format(r["all"][k][c])
        return text + f" ({r['diagnostics'][k]['openness_r_per_phone_type']:.3f})" if c == "openness_r" else text
    rows = [[names[k]] + [cell(k, c) for c in cols] for k in names if k in r["all"]]
    rows.append(["target"] + [r["targets"][c].replace("|lag| <= 20", "within ±20").replace(">=", "≥")
                              for c in cols])
    out = [f"{st['clips']} real clips, {st['minutes']:.1f} min, {st['speakers']} speakers from registry packages "
           f"({r['all']['model']['bilabials']} /p b m/, {r['all']['model']['phones']:,} phones):", ""]
    header = ["system", "closure", "openness r (per type)", "lag ms", "rounding", "vowel opening mm"]
    return "\n".join(out + table(header, rows))


TABLES = {"quality": quality, "distillation": distillation, "controls": controls, "speed": speed}
WHERE = {**{name: "docs/results.md" for name in TABLES}, "summary": "README.md", "lipsync": "README.md"}
TABLES["summary"] = summary
TABLES["lipsync"] = lipsync


def write_between_markers(path: Path, name: str, text: str) -> None:
    doc = path.read_text()
    pattern = re.compile(rf"(<!-- {name} -->\n)(?:.*?\n)?(<!-- /{name} -->)", re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{path.name} has no <!-- {name} --> ... <!-- /{name} --> markers")
    path.write_text(pattern.sub(lambda m: m.group(1) + text + "\n" + m.group(2), doc))


if __name__ == "__main__":
    for name, f in TABLES.items():
        if "--write" in sys.argv:
            write_between_markers(ROOT / WHERE[name], name, f())
        else:
            print(f"<!-- {name} -->\n{f()}\n<!-- /{name} -->\n")
