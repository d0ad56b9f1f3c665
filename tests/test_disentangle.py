"""Disentangling the AD-VAE with a fixed emotion judge, then adapting the denoisers to it: on a
tiny model (what each step trains and keeps), and on the shipped model (its decoder renders
the emotion code and keeps the words)."""
import itertools

import numpy as np
import pytest
import torch
from corpus_cli import doctored_corpus

from model_core.base.errors import LaliaError


def _changed(a: torch.nn.Module, b: torch.nn.Module) -> set[str]:
    sb = b.state_dict()
    return {k for k, v in a.state_dict().items() if not torch.equal(v, sb[k])}


def test_disentangle_trains_the_vae_only_and_adapt_moves_the_denoiser(tmp_path, tiny_corpus, train_config,
                                                                      sample_audio):
    from model_core.inference.generator import Generator
    from model_core.model.checkpoint import load_checkpoint
    from model_core.training.disentangle import DisentangleConfig, disentangle
    from model_core.training.distill import DistillConfig, distill
    from model_core.training.train import train
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
    m = Generator(model, am, extra).generate(sample_audio[: 3 * 16000], emotion={"happy": 1.0}).motion
    assert m.values.shape == (75, 55) and np.isfinite(m.values).all()
    with pytest.raises(LaliaError, match="no guidance or depth option"):
        distill(teacher, tiny_corpus, tmp_path / "bad.safetensors", 2, cfg=dc, adapt=out, guidance=True)


def test_disentangle_refuses_a_corpus_without_emotion_labels(tmp_path, tiny_corpus, train_config):
    """Real data comes without emotion labels (zeros): the judge could learn nothing, so the
    stage says so instead of training on an empty loss."""
    from model_core.training.disentangle import disentangle
    from model_core.training.train import train
    teacher = train(train_config(tiny_corpus, 1))
    bare = doctored_corpus(tiny_corpus, tmp_path / "bare",
                           lambda arrays: arrays.update(emotion=np.zeros_like(arrays["emotion"])))
    with pytest.raises(LaliaError, match="no emotion labels"):
        disentangle(teacher, bare, tmp_path / "d.safetensors")
    assert not (tmp_path / "d.safetensors").exists()


def test_swap_losses_need_the_emotion_code():
    """A decoder that ignores the emotion code shows the judge clip A's emotion, not B's: the
    judge loss is what a decoder that renders the code can lower."""
    from model_core.model.networks import LaliaModel, ModelConfig
    from model_core.training.disentangle import EmotionJudge, swap_losses
    from model_core.training.train import Objective, TrainConfig
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
def test_shipped_vae_swaps_the_emotion_and_keeps_the_words(generator, tiny_corpus):
    """The shipped AD-VAE on corpus windows of different emotions: the content code of clip A
    decoded with the emotion code of clip B makes B's expression (its mean over the window on
    the channels the corpus's emotions use is nearer B's reconstruction than A's), and the lip
    gap still follows A's words. Before the emotion-judge stage, every swap kept A's expression."""
    from model_core.data.animator import _EMOTION_REST
    from model_core.data.corpus import Corpus
    from model_core.evaluation.controls import clear_emotion_windows
    from model_core.inference.amplitude import lip_gap
    corpus = Corpus(tiny_corpus)
    clips, labels = clear_emotion_windows(itertools.chain(*(corpus.takes(s) for s in ("train", "val", "test"))),
                                          hop=50)
    vae = generator.model.vae
    mu_c, _, mu_e, _ = vae.encode((torch.from_numpy(clips) - generator.mean) / generator.std)
    perm = np.random.default_rng(0).permutation(len(clips))
    pairs = [(a, b) for a, b in zip(range(len(clips)), perm) if labels[a] != labels[b]]
    assert len(pairs) >= 10 and len(set(labels)) >= 3
    a, b = torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])
    decode = lambda c, e: (vae.decode(c, e) * generator.std + generator.mean).numpy()
    swapped, own_a, own_b = decode(mu_c[a], mu_e[b]), decode(mu_c[a], mu_e[a]), decode(mu_c[b], mu_e[b])
    face = np.flatnonzero(np.any([v != 0 for v in _EMOTION_REST.values()], axis=0))
    expression = lambda v: v[..., face].mean(1)
    nearer_b = np.linalg.norm(expression(swapped) - expression(own_b), axis=1) < \
        np.linalg.norm(expression(swapped) - expression(own_a), axis=1)
    assert nearer_b.mean() >= 0.9
    r = [np.corrcoef(lip_gap(swapped[j], generator.channels), lip_gap(clips[int(a[j])], generator.channels))[0, 1]
         for j in range(len(pairs))]
    assert np.median(r) >= 0.9
