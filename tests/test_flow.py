"""Rectified flow, timestep samplers and OT coupling against known answers."""

import itertools

import numpy as np
import pytest
import torch
from scipy import stats

from eisbach_lib.flow import (LEFT_TRUNC, noise_data, ot_couple, pairwise_sq_dist, sample_timesteps,
                              trunc_logit_normal_cdf, velocity_target)


def reference_trunc_logit_normal(n: int, seed: int) -> np.ndarray:
    """stable-audio-3's procedure step by step (sample, CDF, truncate, icdf, rescale, flip)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    lower = stats.norm.cdf(np.log(LEFT_TRUNC / (1 - LEFT_TRUNC)))
    s = 1 / (1 + np.exp(-stats.norm.ppf(lower + (1 - lower) * stats.norm.cdf(z))))
    return 1 - (s - LEFT_TRUNC) / (1 - LEFT_TRUNC)


def test_noise_and_target_are_rectified_flow():
    x0, eps = torch.randn(3, 2, 5), torch.randn(3, 2, 5)
    t = torch.tensor([0.0, 0.5, 1.0])
    xt = noise_data(x0, eps, t)
    assert torch.allclose(xt[0], x0[0]) and torch.allclose(xt[2], eps[2])
    assert torch.allclose(xt[1], 0.5 * x0[1] + 0.5 * eps[1])
    # the target is the time derivative of x_t
    dt = 1e-3
    fd = (noise_data(x0, eps, t[1:2].expand(3) + dt) - noise_data(x0, eps, t[1:2].expand(3))) / dt
    assert torch.allclose(fd, velocity_target(x0, eps), atol=1e-3)


def test_trunc_logit_normal_matches_reference_distribution():
    g = torch.Generator().manual_seed(0)
    t = sample_timesteps(100_000, "trunc_logit_normal", generator=g).double().numpy()
    # against the analytic CDF derived in the docstring
    assert stats.kstest(t, lambda x: trunc_logit_normal_cdf(x)).pvalue > 0.01
    # against the reference procedure (two-sample)
    assert stats.ks_2samp(t, reference_trunc_logit_normal(100_000, 1)).pvalue > 0.01
    # the truncated tail is excluded: before the flip, s = 1 − (1 − a)·t must stay above a
    s = 1 - (1 - LEFT_TRUNC) * t
    assert s.min() > LEFT_TRUNC - 1e-6 and t.max() < 1.0 and t.min() > 0.0
    # and it is not the untruncated logit-normal
    ln = sample_timesteps(100_000, "logit_normal", generator=g).numpy()
    assert stats.ks_2samp(t, ln).pvalue < 1e-6


@pytest.mark.parametrize("kind", ["uniform", "logit_normal", "trunc_logit_normal"])
def test_timesteps_deterministic_and_in_range(kind):
    a = sample_timesteps(1000, kind, generator=torch.Generator().manual_seed(3))
    b = sample_timesteps(1000, kind, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
    with pytest.raises(ValueError, match="unknown timestep kind"):
        sample_timesteps(2, "cosine")


def test_exact_ot_is_the_minimum_over_all_permutations():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        x0, eps = torch.randn(5, 3, 4, generator=g), torch.randn(5, 3, 4, generator=g)
        cost = pairwise_sq_dist(x0, eps)
        best = min(sum(cost[i, p[i]] for i in range(5)) for p in itertools.permutations(range(5)))
        coupled = ot_couple(x0, eps, "exact")
        got = ((x0 - coupled) ** 2).sum()
        assert torch.isclose(got, best, rtol=1e-4)
        # a permutation of the noise, not new noise
        assert sorted(coupled.flatten().tolist()) == sorted(eps.flatten().tolist())


def test_sinkhorn_never_worse_than_identity_on_average():
    g = torch.Generator().manual_seed(1)
    ident, sink = [], []
    for _ in range(200):
        x0 = torch.randn(8, 4, 6, generator=g) + torch.randn(8, 1, 1, generator=g)
        eps = torch.randn(8, 4, 6, generator=g)
        ident.append(((x0 - eps) ** 2).sum().item())
        sink.append(((x0 - ot_couple(x0, eps, "sinkhorn")) ** 2).sum().item())
    assert np.mean(sink) <= np.mean(ident)
    c = ot_couple(x0, eps, "sinkhorn")
    assert sorted(c.flatten().tolist()) == sorted(eps.flatten().tolist())
