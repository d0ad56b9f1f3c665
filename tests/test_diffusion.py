import torch

from model_core.model.diffusion import (
    cosine_schedule,
    ddim_step,
    guided_batch,
    sample_ddim,
    sample_ddpm,
    spaced_timesteps,
)


def test_cosine_schedule_is_monotone_from_clean_to_noise():
    s = cosine_schedule(500)
    ab = s.alphas_cumprod
    assert ab[0] > 0.99 and ab[-1] < 1e-3 and (ab[1:] < ab[:-1]).all()


def test_spaced_timesteps():
    ts = spaced_timesteps(500, 8)
    assert len(ts) == 8 and ts[0] == 499 and ts == sorted(ts, reverse=True) and ts[-1] >= 0
    assert spaced_timesteps(500, 1) == [499]


def test_samplers_recover_x0_with_a_perfect_denoiser():
    s = cosine_schedule(500)
    x0 = torch.randn(2, 10, 3)
    oracle = lambda x, t: x0
    g = torch.Generator().manual_seed(0)
    for sampler in (sample_ddim, sample_ddpm):
        out = sampler(oracle, torch.randn(2, 10, 3, generator=g), s, spaced_timesteps(500, 10), generator=g)
        torch.testing.assert_close(out, x0)


def test_ddim_is_deterministic_and_ddpm_is_not():
    s = cosine_schedule(100)
    den = lambda x, t: 0.5 * x  # a smooth, imperfect denoiser
    x = torch.randn(1, 5, 2)
    ts = spaced_timesteps(100, 5)
    a = sample_ddim(den, x, s, ts)
    b = sample_ddim(den, x, s, ts)
    torch.testing.assert_close(a, b)
    c = sample_ddpm(den, x, s, ts, generator=torch.Generator().manual_seed(1))
    d = sample_ddpm(den, x, s, ts, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(c, d)


def test_incremental_guidance():
    """The branches run as one batch, branch-major, and combine as DiffPoseTalk's guidance."""
    seen = {}

    def denoise_branches(x, t):  # the three branches predict 0, 1 and 3
        seen["x"], seen["t"] = x.shape, t.shape
        return x + torch.tensor([0.0, 1.0, 3.0]).repeat_interleave(len(x) // 3).view(-1, 1)
    x, t = torch.zeros(2, 1), torch.tensor([5, 5])
    assert torch.equal(guided_batch(denoise_branches, x, t, 3, [1.0, 1.0]), torch.full((2, 1), 3.0))  # the full branch
    assert seen == {"x": (6, 1), "t": (6,)}
    # D0 + 2 (D1 - D0) + 3 (D2 - D1) = 0 + 2 + 6
    assert torch.equal(guided_batch(denoise_branches, x, t, 3, [2.0, 3.0]), torch.full((2, 1), 8.0))


def test_ddim_step():
    """Deterministic DDIM lands on x0 at alpha_bar 1 and keeps the noise direction."""
    x0, eps = torch.randn(4), torch.randn(4)
    ab, ab_next = torch.tensor(0.3), torch.tensor(0.8)
    x = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    torch.testing.assert_close(ddim_step(x, x0, ab, ab_next), ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps)
    torch.testing.assert_close(ddim_step(x, x0, ab, torch.tensor(1.0)), x0)
    noisy = ddim_step(x, x0, ab, ab_next, eta=1.0, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(noisy, ddim_step(x, x0, ab, ab_next))
