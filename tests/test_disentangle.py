"""Disentangling the AD-VAE with a fixed emotion judge, then adapting the denoisers to it: on a
tiny model (what each step trains and keeps), and on the shipped model (its decoder renders
the emotion code and keeps the words)."""
import numpy as np
import pytest
import torch

from model_core.errors import LaliaError


def _changed(a: torch.nn.Module, b: torch.nn.Module) -> set[str]:
    sb = b.state_dict()
    return {k for k, v in a.state_dict().items() if not torch.equal(v, sb[k])}


def test_disentangle_trains_the_vae_only_and_adapt_moves_the_denoiser(tmp_path, tiny_corpus, train_config,
                                                                      sample_audio):
    from model_core.checkpoint import load_checkpoint
    from model_core.disentangle import DisentangleConfig, disentangle
    from model_core.distill import DistillConfig, distill
    from model_core.generator import Generator
    from model_core.train import train
    teacher = train(train_config(tiny_corpus, 2))
    out = disentangle(teacher, tiny_corpus, tmp_path / "d.safetensors",
                      DisentangleConfig(judge_steps=3, judge_batch=4, steps=3, batch=4, threads=1))
    before, _, _ = load_checkpoint(teacher)
    after, manifest, _ = load_checkpoint(out)
    changed = _changed(before, after)
    assert changed and all(k.startswith(("vae.", "content_prior.")) for k in changed)
    assert not any(k.startswith("vae.prototypes") for k in changed)  # slider codes keep their meaning
    rec = manifest["disentangled"]
    assert rec["config"]["steps"] == 3 and 0.0 <= rec["judge"]["val_accuracy"] <= 1.0
    assert (tmp_path / "d_judge.safetensors").is_file()

    dc = DistillConfig(steps=2, batch=4, threads=1)
    adapted = distill(teacher, tiny_corpus, tmp_path / "a.safetensors", 2, cfg=dc, adapt=out, half=True)
    model, am, extra = load_checkpoint(adapted)
    assert am["distillation"][-1]["kind"] == "adapt" and am["distillation"][-1]["teacher_steps"] == 2
    assert not am["guidance_fixed"]  # a teacher sampling with guidance keeps it
    for k, v in model.state_dict().items():
        if k.startswith(("vae.", "content_prior.")):  # the new AD-VAE, stored in float16
            torch.testing.assert_close(v, after.state_dict()[k].half().float())
    assert any(k.startswith("denoiser.") for k in _changed(model, before))
    m = Generator(model, am, extra).generate(sample_audio[: 3 * 16000], emotion={"happy": 1.0})
    assert m.values.shape == (75, 55) and np.isfinite(m.values).all()
    with pytest.raises(LaliaError, match="takes no other option"):
        distill(teacher, tiny_corpus, tmp_path / "bad.safetensors", 2, cfg=dc, adapt=out, guidance=True)


def test_swap_losses_need_the_emotion_code():
    """A decoder that ignores the emotion code shows the judge clip A's emotion, not B's: the
    judge loss is what a decoder that renders the code can lower."""
    from model_core.disentangle import EmotionJudge, swap_losses
    from model_core.networks import LaliaModel, ModelConfig
    from model_core.train import Objective, TrainConfig
    torch.manual_seed(0)
    model = LaliaModel(ModelConfig(d_model=32, layers=1, heads=2, ffn=64, style_dim=16, vae_hidden=16,
                                   n_identities=2))
    C = model.cfg.motion_dim
    obj = Objective(model, TrainConfig(), np.zeros(C, np.float32), np.ones(C, np.float32))
    judge = EmotionJudge(C).requires_grad_(False)
    b = {"x0": torch.randn(4, 20, C), "valid": torch.ones(4, 20, dtype=torch.bool)}
    mu_c, _, mu_e, _ = model.vae.encode(b["x0"])
    losses = swap_losses(obj, judge, b, mu_c, mu_e)
    assert set(losses) == {"judge", "keep_words"} and all(torch.isfinite(v) for v in losses.values())
    losses["judge"].backward()
    assert model.vae.dec.inp.weight.grad.abs().sum() > 0  # the decoder learns from the judge
    assert all(p.grad is None for p in judge.parameters())  # the judge stays as trained


@torch.inference_mode()
def test_shipped_decoder_renders_the_emotion_code_and_keeps_the_words(generator, sample_audio):
    """The shipped AD-VAE: the content prior of real speech decoded with the happy code smiles
    more than with the neutral code, the angry code frowns more, and the mouth's opening
    follows the same words under each (lip gap r >= 0.9)."""
    from model_core.amplitude import lip_gap
    from model_core.motion import ARKIT_NAMES
    f = torch.from_numpy(generator.features(sample_audio[: 8 * 16000])[1])[None]
    vae = generator.model.vae
    c = generator.model.content_prior(f)

    def render(emotion):
        one_hot = torch.zeros(8)
        one_hot[generator.manifest["emotions"].index(emotion)] = 1.0
        x = vae.decode(c, vae.emotion_code(one_hot).expand(1, c.shape[1], -1))[0]
        return generator.to_values(x)
    neutral, happy, angry = render("neutral"), render("happy"), render("angry")
    col = ARKIT_NAMES.index
    smile = lambda v: v[:, [col("mouthSmileLeft"), col("mouthSmileRight")]].mean()
    frown = lambda v: v[:, [col("browDownLeft"), col("browDownRight")]].mean()
    assert smile(happy) > smile(neutral) + 0.1
    assert frown(angry) > frown(neutral) + 0.1
    channels = generator.channels
    for v in (happy, angry):
        assert np.corrcoef(lip_gap(v, channels), lip_gap(neutral, channels))[0, 1] >= 0.9
