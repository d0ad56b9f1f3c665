"""Distillation: the progressive target lands where two teacher steps land; guidance and
progressive rounds produce working few-step students."""
import json

import pytest
import torch

from model_core.base.errors import LaliaError
from model_core.model.diffusion import cosine_schedule, ddim_step, spaced_timesteps
from model_core.model.networks import LaliaModel, ModelConfig
from model_core.training.distill import DistillConfig, _guided_x0, _teacher_target, distill, within

CFG = dict(d_model=32, layers=1, heads=2, ffn=64, window=20, prev=4, style_dim=16, style_layers=1,
           vae_hidden=16, content_dim=8, emotion_dim=4, n_identities=3)


def _cond(B, cfg):
    on = torch.ones(B, dtype=torch.bool)
    return dict(audio=torch.randn(B, cfg.window, cfg.audio_dim), prior=torch.randn(B, cfg.window, cfg.motion_dim),
                prev=torch.randn(B, cfg.prev, cfg.motion_dim), has_prev=on,
                emotion=torch.randn(B, cfg.window, cfg.emotion_dim), style=torch.randn(B, cfg.style_dim),
                valid=torch.ones(B, cfg.window, dtype=torch.bool), audio_on=on, emotion_on=on, style_on=on)


@pytest.mark.parametrize("student_steps", [4, 2, 1])
def test_progressive_target_lands_where_two_teacher_steps_land(student_steps):
    torch.manual_seed(0)
    teacher = LaliaModel(ModelConfig(**CFG, guidance_input=True)).eval()
    cfg = teacher.cfg
    B = 4
    cond, scales = _cond(B, cfg), 1 + torch.rand(B, 3)
    ts_t = spaced_timesteps(500, 2 * student_steps)
    ts_s = spaced_timesteps(500, student_steps)
    ab = cosine_schedule(500).alphas_cumprod
    i = torch.arange(B) % student_steps
    x_t = torch.randn(B, cfg.window, cfg.motion_dim)
    with torch.no_grad():
        target = _teacher_target(teacher, x_t, i, cond, scales, cond["prior"], ts_t, ts_s, ab, same_steps=False)
        for b in range(B):
            k = 2 * int(i[b])
            sub = {n: v[b:b + 1] for n, v in cond.items()}
            x, t = x_t[b:b + 1], lambda s: torch.tensor([s])
            x0 = _guided_x0(teacher, x, t(ts_t[k]), sub, scales[b:b + 1], sub["prior"])
            x = ddim_step(x, x0, ab[ts_t[k]], ab[ts_t[k + 1]])
            x0 = _guided_x0(teacher, x, t(ts_t[k + 1]), sub, scales[b:b + 1], sub["prior"])
            if k + 2 >= len(ts_t):  # the last step: the teacher's final x0 is the target
                torch.testing.assert_close(target[b:b + 1], x0, atol=1e-5, rtol=1e-4)
                continue
            two_steps = ddim_step(x, x0, ab[ts_t[k + 1]], ab[ts_t[k + 2]])
            one_step = ddim_step(x_t[b:b + 1], target[b:b + 1], ab[ts_s[int(i[b])]], ab[ts_s[int(i[b]) + 1]])
            torch.testing.assert_close(one_step, two_steps, atol=1e-4, rtol=1e-4)


def test_guided_teacher_target_is_incremental_guidance():
    torch.manual_seed(1)
    teacher = LaliaModel(ModelConfig(**CFG)).eval()
    B = 2
    cond = _cond(B, teacher.cfg)
    x, t = torch.randn(B, 20, 55), torch.tensor([400, 100])
    ones = torch.ones(B, 3)
    with torch.no_grad():
        full = teacher.denoiser(x, t, **cond)
        torch.testing.assert_close(_guided_x0(teacher, x, t, cond, ones, cond["prior"]), full, atol=1e-5, rtol=1e-4)
        w = torch.tensor([[2.0, 1.0, 1.0], [2.0, 1.0, 1.0]])
        off = {**cond, "emotion_on": ~cond["emotion_on"], "style_on": ~cond["style_on"]}
        no_speech = {**off, "audio_on": ~cond["audio_on"]}
        d0, d1 = teacher.denoiser(x, t, **no_speech), teacher.denoiser(x, t, **off)
        # speech scale 2, others 1: D_full + (D_1 - D_0)
        torch.testing.assert_close(_guided_x0(teacher, x, t, cond, w, cond["prior"]), full + d1 - d0,
                                   atol=1e-4, rtol=1e-4)


def test_rounds_make_working_students(tmp_path, tiny_corpus, sample_audio, train_config):
    from model_core.inference.generator import Generator
    from model_core.model.checkpoint import load_checkpoint
    from model_core.training.train import train
    teacher = train(train_config(tiny_corpus, 2))
    dc = DistillConfig(steps=2, batch=4, threads=1)
    g = distill(teacher, tiny_corpus, tmp_path / "g2.safetensors", 2, guidance=True, cfg=dc)
    with pytest.raises(LaliaError, match="not a guidance-distilled student"):
        distill(g, tiny_corpus, tmp_path / "bad.safetensors", 2, guidance=True, cfg=dc)
    s1 = distill(g, tiny_corpus, tmp_path / "s1.safetensors", 1, cfg=dc)
    model, manifest, extra = load_checkpoint(s1)
    assert model.cfg.guidance_input and manifest["sampler"]["steps"] == 1
    assert [r["kind"] for r in manifest["distillation"]] == ["guidance", "progressive"]
    m = Generator(model, manifest, extra).generate(sample_audio[: 3 * 16000], guidance={"audio": 1.5}).motion
    assert m.values.shape == (75, 55) and torch.isfinite(torch.from_numpy(m.values)).all()
    json.dumps(manifest)  # the manifest stays plain JSON


def test_progressive_round_at_guidance_one(tmp_path, tiny_corpus, sample_audio, train_config):
    """Straight from the guided teacher: the student halves the steps of its one fully
    conditioned branch and refuses guidance scales it was never taught."""
    from model_core.inference.generator import Generator
    from model_core.model.checkpoint import load_checkpoint
    from model_core.training.train import train
    teacher = train(train_config(tiny_corpus, 2, "fixed"))
    dc = DistillConfig(steps=2, batch=4, threads=1)
    s1 = distill(teacher, tiny_corpus, tmp_path / "s1.safetensors", 1, cfg=dc)
    model, manifest, extra = load_checkpoint(s1)
    assert not model.cfg.guidance_input and manifest["guidance_fixed"] and manifest["sampler"]["steps"] == 1
    assert manifest["distillation"][-1]["teacher_steps"] == 2
    with pytest.raises(LaliaError, match="no guidance to distil"):
        distill(s1, tiny_corpus, tmp_path / "bad.safetensors", 1, guidance=True, cfg=dc)
    with pytest.raises(LaliaError, match="fewer layers than the teacher's 1"):
        distill(s1, tiny_corpus, tmp_path / "bad.safetensors", 1, layers=2, cfg=dc)
    gen = Generator(model, manifest, extra)
    m = gen.generate(sample_audio[: 3 * 16000]).motion
    assert m.values.shape == (75, 55) and torch.isfinite(torch.from_numpy(m.values)).all()
    with pytest.raises(LaliaError, match="distilled at guidance 1"):
        gen.generate(sample_audio[: 3 * 16000], guidance={"audio": 1.5}).motion


def test_within_five_percent_rule():
    ref = {"lve_mm": 3.0, "bilabial_closure": 0.9, "real_bilabial_closure": 0.9, "emotion_recognised": 0.9,
           "emotion_bilabial_closure": 0.9}
    assert within(dict(ref, lve_mm=3.14), ref) and not within(dict(ref, lve_mm=3.2), ref)
    assert within(dict(ref, bilabial_closure=0.86), ref) and not within(dict(ref, emotion_recognised=0.85), ref)
    assert not within(dict(ref, emotion_bilabial_closure=0.85), ref)


def test_depth_round_starts_from_evenly_spaced_teacher_layers():
    """A 2-layer student of a 4-layer teacher starts as its layers 0 and 3, the rest copied."""
    from model_core.model.networks import LaliaModel, ModelConfig
    from model_core.training.distill import _depth_init
    small = dict(d_model=32, heads=2, ffn=64, style_dim=16, vae_hidden=32, n_identities=3)
    teacher, student = LaliaModel(ModelConfig(layers=4, **small)), LaliaModel(ModelConfig(layers=2, **small))
    _depth_init(student, teacher)
    t, s = teacher.state_dict(), student.state_dict()
    for k, v in s.items():
        if k.startswith("denoiser.decoder.layers."):
            j, rest = k[len("denoiser.decoder.layers."):].split(".", 1)
            torch.testing.assert_close(v, t[f"denoiser.decoder.layers.{[0, 3][int(j)]}.{rest}"])
        else:
            torch.testing.assert_close(v, t[k])
