"""Few-step students: guidance distillation, then progressive distillation.

1. Guidance distillation (Meng et al. 2023, "On Distillation of Guided Diffusion Models"): the
   student takes the guidance scales (speech, emotion, style) as inputs and learns, in one
   branch, the teacher's incrementally guided x0 prediction at the teacher's own timesteps; the
   scales are drawn at random from `GUIDANCE_RANGES` so any setting works afterwards.
2. Progressive distillation (Salimans & Ho 2022): a student with half the steps learns, from
   each of its timesteps t, the x0 that makes one DDIM step land where two DDIM steps of its
   teacher land (at the last step: the teacher's final x0). Repeated: 8 -> 4 -> 2 -> 1.
3. Depth distillation (as DistilBERT, Sanh et al. 2019, shrinks BERT): a student with fewer
   denoiser layers, initialised from evenly spaced layers of its teacher, learns the teacher's
   x0 at the same timesteps. At one step the denoiser is the whole sampler, so this is what is
   left to make it faster.
4. Adaptation to a new AD-VAE (after `disentangle.py` fine-tuned it): the student is the
   teacher with the new AD-VAE and content prior, and learns, from the new prior, the x0 the
   teacher gives from its old one, at the teacher's own timesteps.

Each round starts from its teacher's weights and trains the denoiser only (the AD-VAE, content
prior, style encoder and identities are the teacher's; an adaptation round's AD-VAE and content
prior are the new ones). Timesteps nest: `spaced_timesteps(N, k)`
is every other entry of `spaced_timesteps(N, 2k)`.

`python -m model_core distill TEACHER --corpus DIR --out RUN/student.safetensors --steps K
[--guidance | --layers L]`; `make distill` runs the rounds, `pick-student` measures them.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..base.errors import LaliaError
from ..data.dataset import WindowSampler, load_split
from ..model.checkpoint import load_checkpoint, save_checkpoint, weights_sha256
from ..model.diffusion import cosine_schedule, ddim_step, guided_batch, spaced_timesteps
from ..model.networks import LaliaModel
from .train import TrainConfig, _lr, denoiser_conditions, gradient_step

log = logging.getLogger(__name__)
# guidance scales a student learns to take (speech, emotion, style)
GUIDANCE_RANGES = {"audio": (1.0, 2.0), "emotion": (1.0, 2.0), "style": (1.0, 2.0)}


@dataclass
class DistillConfig:
    steps: int = 400          # optimisation steps for the round
    batch: int = 16           # a guided teacher runs 4 branches per example
    lr: float = 1e-4
    warmup: int = 20
    seed: int = 0
    threads: int = 0
    max_minutes: float = 0.0


def _guided_x0(model: LaliaModel, x, t, cond: dict, scales: torch.Tensor, prior_neutral) -> torch.Tensor:
    """A teacher's x0 at (x, t) under per-example guidance scales (B x 3). A student takes the
    scales as input; a guided teacher runs DiffPoseTalk's incremental guidance over its
    branches (nothing, + speech, + emotion, + style) in one batch, with the neutral prior in
    the branches without emotion, as the generator does."""
    den = model.denoiser
    if den.cfg.guidance_input:
        return den(x, t, guidance=scales, **cond)
    if scales is None:  # guidance fixed at 1: the fully conditioned branch alone
        return den(x, t, **cond)
    B = len(x)
    on = torch.ones(B, dtype=torch.bool, device=x.device)
    flags = [(~on, ~on, ~on), (on, ~on, ~on), (on, on, ~on), (on, on, cond["style_on"])]
    kw = {k: torch.cat([v] * 4) for k, v in cond.items() if k not in ("audio_on", "emotion_on", "style_on", "prior")}
    kw["prior"] = torch.cat([prior_neutral, prior_neutral, cond["prior"], cond["prior"]])
    for j, name in enumerate(("audio_on", "emotion_on", "style_on")):
        kw[name] = torch.cat([f[j] for f in flags])
    return guided_batch(lambda xs, ts: den(xs, ts, **kw), x, t, 4, scales.view(B, 3, 1, 1).unbind(1))


def _depth_init(student: LaliaModel, teacher: LaliaModel) -> None:
    """Copy the teacher into a shallower student: decoder layer j <- evenly spaced teacher layer."""
    n, L = student.cfg.layers, teacher.cfg.layers
    pick = np.round(np.linspace(0, L - 1, n)).astype(int)
    state = {}
    for k, v in teacher.state_dict().items():
        if k.startswith("denoiser.decoder.layers."):
            i, rest = k[len("denoiser.decoder.layers."):].split(".", 1)
            for j in np.flatnonzero(pick == int(i)):
                state[f"denoiser.decoder.layers.{j}.{rest}"] = v
        else:
            state[k] = v
    missing = student.load_state_dict(state, strict=False).missing_keys
    assert all(k.startswith("denoiser.guidance_mlp") for k in missing), missing


def distill(teacher_path, corpus, out, steps: int, guidance: bool = False,
            cfg: DistillConfig | None = None, init=None, layers: int | None = None, adapt=None,
            half: bool = False) -> Path:
    """One round. guidance=True: a guidance-conditioned student at the teacher's `steps`;
    `layers` fewer than the teacher's: a shallower student at the teacher's `steps` (depth);
    else a student with `steps` steps from a teacher sampling with 2 x `steps`: with the
    guidance scales as inputs when the teacher takes them, else at guidance 1 (the generator's
    default, where a teacher runs one branch), and the student keeps guidance fixed at 1.
    `init`: start the student from this checkpoint (an earlier student of the same round, to
    train it on) instead of from the teacher. `adapt`: a checkpoint whose AD-VAE and content
    prior the student takes (an adaptation round, at the teacher's `steps`). `half`: write
    float16 weights, as shipped."""
    cfg = cfg or DistillConfig()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    teacher, manifest, extra = load_checkpoint(teacher_path)
    if guidance and teacher.cfg.guidance_input:
        raise LaliaError("guidance distillation needs a guided teacher, not a guidance-distilled student")
    fixed = manifest.get("guidance_fixed", False) or not (guidance or teacher.cfg.guidance_input)
    if guidance and fixed:
        raise LaliaError("this teacher was distilled at guidance 1; it has no guidance to distil")
    depth = layers is not None and layers != teacher.cfg.layers
    if adapt is not None and (guidance or depth):
        raise LaliaError("an adaptation round keeps the teacher's shape and guidance; it takes no guidance or "
                         "depth option")
    # a teacher that samples with classifier-free guidance keeps it: its adaptation sees the
    # conditions dropped as in training, so every guidance branch learns the new prior
    keeps_guidance = adapt is not None and not manifest.get("guidance_fixed", False) and not teacher.cfg.guidance_input
    if depth and (guidance or not 1 <= layers < teacher.cfg.layers):
        raise LaliaError(f"a depth round needs fewer layers than the teacher's {teacher.cfg.layers}, "
                         "and no guidance round at the same time")
    scfg = copy.deepcopy(teacher.cfg)
    scfg.guidance_input = guidance or teacher.cfg.guidance_input
    scfg.layers = layers if depth else teacher.cfg.layers
    student = LaliaModel(scfg)
    _depth_init(student, teacher)
    if init is not None:
        start_model = load_checkpoint(init)[0]
        if start_model.cfg.__dict__ != scfg.__dict__:
            raise LaliaError(f"{init} is not a student of this teacher's shape; cannot start from it")
        student.load_state_dict(start_model.state_dict())
    if adapt is not None:
        _take_vae(student, adapt)
    teacher.eval()
    student.train()
    for name, p in student.named_parameters():
        p.requires_grad_(name.startswith("denoiser."))
    same_steps = guidance or depth or adapt is not None  # the student learns the teacher's own x0
    teacher_steps = steps if same_steps else 2 * steps
    ts_teacher = spaced_timesteps(teacher.cfg.num_train_steps, teacher_steps)
    ts_student = spaced_timesteps(teacher.cfg.num_train_steps, steps)
    assert ts_teacher[:: teacher_steps // steps] == ts_student
    schedule = cosine_schedule(teacher.cfg.num_train_steps)
    ab = schedule.alphas_cumprod

    data = load_split(corpus, "train")
    mean = np.array(manifest["norm_mean"], np.float32)
    std = np.array(manifest["norm_std"], np.float32)
    ids = {int(s): i for i, s in enumerate(manifest.get("identities", []))}
    sampler = WindowSampler(data, scfg.window, scfg.prev, mean, std, ids, seed=cfg.seed)
    tcfg = TrainConfig()
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.0)
    lo = torch.tensor([GUIDANCE_RANGES[k][0] for k in ("audio", "emotion", "style")])
    hi = torch.tensor([GUIDANCE_RANGES[k][1] for k in ("audio", "emotion", "style")])
    kind = "guidance" if guidance else "depth" if depth else "adapt" if adapt is not None else "progressive"
    history, start, running = [], time.time(), 0.0
    sched_cfg = TrainConfig(steps=cfg.steps, lr=cfg.lr, warmup=cfg.warmup)
    for it in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = _lr(it, sched_cfg)
        b = sampler.batch(cfg.batch)
        B = len(b["x0"])
        with torch.no_grad():
            mu_e = teacher.vae.encode(b["x0"])[2]
            c_hat = teacher.content_prior(b["audio"])
            cond = denoiser_conditions(teacher, b, tcfg, mu_e=mu_e, c_hat=c_hat,
                                       style=teacher.style_encoder(b["ref"], b["ref_valid"]),
                                       dropout=keeps_guidance)
            prior_neutral = teacher.vae.decode(c_hat, teacher.neutral_code().expand_as(cond["emotion"]))
            scales = None if fixed else lo + (hi - lo) * torch.rand(B, 3)
            i = torch.randint(0, len(ts_student), (B,))
            t = torch.tensor(ts_student)[i]
            x_t = schedule.add_noise(b["x0"], torch.randn_like(b["x0"]), t)
            target = _teacher_target(teacher, x_t, i, cond, scales, prior_neutral, ts_teacher, ts_student, ab,
                                     same_steps)
            if adapt is not None:  # the same conditions, but the prior from the student's AD-VAE
                code = torch.where(cond["emotion_on"].view(B, 1, 1), cond["emotion"],
                                   student.neutral_code().expand_as(cond["emotion"]))
                cond["prior"] = student.prior(b["audio"], code)
        pred = student.denoiser(x_t, t, guidance=scales, **cond)
        vm = b["valid"].unsqueeze(-1).float()
        loss = (((pred - target) ** 2) * vm).sum() / (vm.sum() * pred.shape[-1])
        gradient_step(opt, loss, student.parameters())
        running += float(loss.detach())
        if (it + 1) % 25 == 0:
            history.append({"step": it + 1, "loss": round(running / 25, 5),
                            "minutes": round((time.time() - start) / 60, 2)})
            log.info("distill %s step %d loss %.5f", kind, it + 1, running / 25)
            running = 0.0
        if cfg.max_minutes and (time.time() - start) / 60 > cfg.max_minutes:
            break
    rounds = list(manifest.get("distillation", []))
    rounds.append({"kind": kind, "teacher": Path(teacher_path).name, "teacher_sha256": weights_sha256(teacher_path),
                   "layers": scfg.layers,
                   "init": Path(init).name if init else None, "adapt": Path(adapt).name if adapt else None,
                   "teacher_steps": teacher_steps, "student_steps": steps,
                   "guidance_ranges": "as trained" if keeps_guidance else "fixed at 1" if fixed else GUIDANCE_RANGES,
                   "config": cfg.__dict__, "history": history,
                   "minutes": round((time.time() - start) / 60, 2)})
    sampler_defaults = dict(manifest["sampler"], steps=steps)
    new_manifest = {**manifest, "sampler": sampler_defaults, "distillation": rounds,
                    "guidance_fixed": fixed and not keeps_guidance}
    path = save_checkpoint(out, student.eval(), new_manifest, extra=extra, half=half)
    log.info("student written to %s", path)
    return path


def _take_vae(student: LaliaModel, path) -> None:
    """The AD-VAE and content prior of checkpoint `path` into `student` (same shapes)."""
    donor = load_checkpoint(path)[0]
    try:
        student.vae.load_state_dict(donor.vae.state_dict())
        student.content_prior.load_state_dict(donor.content_prior.state_dict())
    except RuntimeError as e:
        raise LaliaError(f"{path}: its AD-VAE does not fit this model ({str(e)[:200]})") from e


def _teacher_target(teacher, x_t, i, cond, scales, prior_neutral, ts_teacher, ts_student, ab, same_steps):
    """The x0 a student must predict at its i-th timestep: the teacher's own x0 (guidance and
    depth rounds, at the teacher's steps), or the x0 that takes one DDIM step to the student's
    next timestep exactly where two teacher steps go (progressive round; at the student's last
    step, the teacher's final x0)."""
    tt = torch.tensor(ts_teacher)
    k = i * (len(ts_teacher) // len(ts_student))
    col = lambda v: v.view(-1, 1, 1)
    x0 = _guided_x0(teacher, x_t, tt[k], cond, scales, prior_neutral)
    if same_steps:
        return x0
    a_t, a_mid = col(ab[tt[k]]), col(ab[tt[k + 1]])
    x_mid = ddim_step(x_t, x0, a_t, a_mid)
    x0_mid = _guided_x0(teacher, x_mid, tt[k + 1], cond, scales, prior_neutral)
    last = k + 2 >= len(ts_teacher)
    a_next = col(ab[tt[(k + 2).clamp(max=len(ts_teacher) - 1)]])
    x_next = ddim_step(x_mid, x0_mid, a_mid, a_next)
    # solve DDIM(x_t, x0~, t -> t_next) = x_next for x0~
    ratio = ((1 - a_next) / (1 - a_t)).sqrt()
    solved = (x_next - ratio * x_t) / (a_next.sqrt() - ratio * a_t.sqrt())
    return torch.where(col(last), x0_mid, solved)


# ---- choosing the shipped student -------------------------------------------------------
HIGHER_IS_BETTER = ("bilabial_closure", "real_bilabial_closure", "emotion_recognised", "emotion_bilabial_closure")
LOWER_IS_BETTER = ("lve_mm",)


def quality(gen, corpus, takes: int = 16) -> dict:
    """Lip sync (synthetic LVE and bilabial closure, real-speech closure and sync offset),
    emotion (recognition at intensity 1, and lip closure while each non-neutral emotion is at
    1) and sampler speed of one checkpoint."""
    from ..data.corpus import Corpus
    from ..evaluation.controls import EmotionClassifier, emotion_renditions
    from ..evaluation.evaluate import VertexMetrics, evaluate_corpus, evaluate_real_speech
    syn = evaluate_corpus(gen, corpus, max_takes=takes, seeds=(0,))
    real = evaluate_real_speech(gen)
    c = Corpus(corpus)
    emo = emotion_renditions(gen, [t for _, t in zip(range(4), c.takes("test"))], EmotionClassifier(c),
                             VertexMetrics())
    others = [emo[e] for e in emo if e != "neutral"]
    t0 = time.perf_counter()
    timings = gen.generate(np.zeros(60 * 16000, np.float32) + 1e-3).timings
    return {"steps": gen.manifest["sampler"]["steps"], "lve_mm": syn["lve"],
            "bilabial_closure": syn["bilabial_closure_pred"], "sync_offset_ms": syn["sync_offset_ms"],
            "real_bilabial_closure": real["bilabial_closure"], "real_sync_offset_ms": real["sync_offset_ms"],
            "emotion_recognised": round(float(np.mean([r["recognised"] for r in emo.values()])), 3),
            "emotion_bilabial_closure": round(sum(r["closed"] for r in others)
                                              / max(1, sum(r["bilabials"] for r in others)), 3),
            "sampler_seconds_60s": round(timings.sampler, 3),
            "total_seconds_60s": round(time.perf_counter() - t0, 3)}


def within(row: dict, ref: dict, tolerance: float = 0.05) -> bool:
    """Lip-sync and emotion metrics no more than `tolerance` worse than the reference's."""
    return (all(row[k] >= (1 - tolerance) * ref[k] for k in HIGHER_IS_BETTER)
            and all(row[k] <= (1 + tolerance) * ref[k] for k in LOWER_IS_BETTER))


def _style_space(teacher_path) -> dict:
    """The teacher's description of the style space (presets, slider directions, identity
    styles, the presets' and identities' amounts). Students share its frozen style encoder and
    identity library, so a teacher re-shipped after distillation passes its description on to them."""
    from .ship import STYLE_EXTRAS
    return {k: v for k, v in load_checkpoint(teacher_path)[2].items() if k.startswith(STYLE_EXTRAS)}


def pick_student(teacher_path, student_paths, corpus, table_path, out=None) -> dict:
    """Measure the teacher and each student; ship the student with the fewest steps (then the
    fastest sampler) whose metrics stay within 5% of the teacher's (float16, as the default)."""
    from ..inference.generator import Generator
    style_space = _style_space(teacher_path)
    rows = []
    for path in [teacher_path, *student_paths]:
        model, manifest, extra = load_checkpoint(path)
        gen = Generator(model, manifest, {**extra, **style_space})
        row = {"checkpoint": Path(path).name, **quality(gen, corpus)}
        rows.append(row)
        log.info("%s", row)
    return ship_choice(rows, teacher_path, student_paths, table_path, out, style_space)


def preference(row: dict) -> tuple:
    """How students within 5% of the teacher are ordered: fewest steps, then the fastest sampler
    (to 0.1 s: closer than that is timing noise, as between two students of one shape), then the
    lowest LVE."""
    return row["steps"], round(row["sampler_seconds_60s"], 1), row["lve_mm"]


def ship_choice(rows: list[dict], teacher_path, student_paths, table_path, out=None,
                style_space: dict | None = None) -> dict:
    """From measured rows (teacher first, then the students in order): ship the fewest-step
    (then fastest) student within 5% of the teacher, or the teacher when none is, and write
    the table."""
    from ..model.checkpoint import DEFAULT_CHECKPOINT
    style_space = _style_space(teacher_path) if style_space is None else style_space
    teacher = rows[0]
    for row in rows[1:]:
        row["within_5pct_of_teacher"] = within(row, teacher)
    ok = [(preference(r), str(p)) for r, p in zip(rows[1:], student_paths) if r["within_5pct_of_teacher"]]
    chosen = min(ok)[1] if ok else None
    table = {"rule": "fewest steps (then the fastest sampler to 0.1 s, then the lowest LVE) with LVE, bilabial "
                     "closure (synthetic, real, and under the 7 emotions at intensity 1) and emotion recognition "
                     "within 5% of the teacher's; the teacher itself when no student is",
             "rows": rows, "shipped": Path(chosen or teacher_path).name}
    model, manifest, extra = load_checkpoint(chosen or teacher_path)
    shipped = save_checkpoint(out or DEFAULT_CHECKPOINT, model, {**manifest, "distillation_table": rows},
                              extra={**extra, **style_space}, half=True)
    table["checkpoint_sha256"] = weights_sha256(shipped)
    from ..base.files import write_text_atomic
    write_text_atomic(table_path, __import__("json").dumps(table, indent=1), "table")
    return table
