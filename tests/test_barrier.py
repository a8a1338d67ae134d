"""The Eisbach barrier and its arms against cases whose answer is known (docs/design.md §2, §3)."""

import math

import pytest
import torch

from eisbach_lib.barrier import (ARMS, ORACLE_FACTOR, ORACLE_WEIGHTS, barrier_weights, minsnr_weight,
                                 new_tmatched_state, per_sample_loss, temporal_entropy, weighted_loss)
from eisbach_lib.corpus import TEXTURES


def test_arms_are_the_design_list():
    assert ARMS == ("none", "eisbach", "eisbach_norm", "eisbach_shuffle", "eisbach_tmatched", "eisbach_grad", "minsnr",
                    "oracle_texture", "constant")


def test_constant_energy_gives_max_entropy_and_finite_weight():
    v = torch.ones(2, 4, 50)
    assert torch.allclose(temporal_entropy(v), torch.ones(2))
    w = barrier_weights(v, "eisbach", lam=0.5)
    assert torch.isfinite(w).all() and torch.allclose(w, torch.full((2,), 1e-3), rtol=1e-3)


def test_energy_in_one_frame_gives_zero_entropy_and_unit_weight():
    v = torch.zeros(1, 4, 50)
    v[0, :, 17] = 30.0  # energy 900 in one frame: softmax puts ~all mass there
    assert temporal_entropy(v).item() < 1e-3
    assert barrier_weights(v, "eisbach").item() > 0.999


def test_weight_decreases_as_energy_spreads():
    ws = []
    for k in (1, 2, 5, 10, 25, 50):
        v = torch.zeros(1, 4, 50)
        v[0, :, :k] = 5.0
        ws.append(barrier_weights(v, "eisbach").item())
    assert all(a > b for a, b in zip(ws, ws[1:])), ws


def test_mask_excludes_frames_and_normalises_by_valid_length():
    v = torch.ones(1, 4, 40)
    v[0, :, 20:] = 100.0  # huge energy, but in masked-out frames
    mask = torch.zeros(1, 40, dtype=torch.bool)
    mask[0, :20] = True
    assert torch.allclose(temporal_entropy(v, mask), torch.ones(1))  # the valid frames are flat
    assert temporal_entropy(v).item() < 0.9  # without the mask the loud half dominates
    one = torch.zeros(1, 40, dtype=torch.bool)
    one[0, 3] = True
    assert temporal_entropy(v, one).item() == 0.0  # a single valid frame: all mass there


def test_zeros_and_huge_values_give_no_nan():
    for v in (torch.zeros(3, 4, 16), torch.full((3, 4, 16), 1e30), torch.randn(3, 4, 16) * 1e20):
        for arm in ARMS:
            w = barrier_weights(v, arm, t=torch.rand(3), state=new_tmatched_state(),
                                textures=["sustained", "mixed", "plucked"], constant=0.4)
            assert torch.isfinite(w).all(), (arm, w)


def test_eisbach_norm_has_batch_mean_one_and_shuffle_keeps_the_multiset():
    v = torch.randn(8, 4, 30) * torch.linspace(0.1, 3, 30)
    w = barrier_weights(v, "eisbach")
    assert torch.isclose(barrier_weights(v, "eisbach_norm").mean(), torch.tensor(1.0))
    ws = barrier_weights(v, "eisbach_shuffle", generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ws.sort().values, w.sort().values) and not torch.equal(ws, w)


def test_tmatched_is_the_running_bin_mean():
    state = new_tmatched_state()
    v1, v2 = torch.randn(2, 4, 30), torch.randn(2, 4, 30) * torch.linspace(0, 2, 30)
    t = torch.tensor([0.51, 0.52])  # same bin
    w1 = barrier_weights(v1, "eisbach")
    barrier_weights(v1, "eisbach_tmatched", t=t, state=state)
    got = barrier_weights(v2, "eisbach_tmatched", t=t, state=state)
    w2 = barrier_weights(v2, "eisbach")
    assert torch.allclose(got, torch.cat([w1, w2]).mean().expand(2), atol=1e-6)


def test_minsnr_matches_its_derived_formula():
    t = torch.linspace(0.01, 0.99, 99)
    gamma = 5.0
    snr = (1 - t) ** 2 / t**2
    # the Min-SNR x0 loss min(SNR, γ)·||x̂0 − x0||² equals w·||v̂ − v||² since x̂0 − x0 = −t(v̂ − v)
    x0, eps, v_hat = torch.randn(99, 2, 3), torch.randn(99, 2, 3), torch.randn(99, 2, 3)
    xt = (1 - t.view(-1, 1, 1)) * x0 + t.view(-1, 1, 1) * eps
    x0_hat = xt - t.view(-1, 1, 1) * v_hat
    lhs = torch.minimum(snr, torch.tensor(gamma)) * ((x0_hat - x0) ** 2).mean(dim=(1, 2))
    rhs = minsnr_weight(t, gamma) * per_sample_loss(v_hat, eps - x0)
    assert torch.allclose(lhs, rhs, rtol=1e-4, atol=1e-6)
    peak = 1 / (1 + math.sqrt(gamma))
    assert torch.isclose(minsnr_weight(torch.tensor([peak]), gamma), torch.tensor([gamma / (1 + math.sqrt(gamma)) ** 2]))


def _per_sample_grads(arm: str) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    lin = torch.nn.Conv1d(4, 4, 3, padding=1)
    x, target = torch.randn(4, 4, 20), torch.randn(4, 4, 20)
    gw, gu = [], []
    for b in range(4):
        for weighted, out in ((True, gw), (False, gu)):
            lin.zero_grad()
            v = lin(x)
            w = barrier_weights(v, arm) if weighted else torch.ones(4)
            (w * per_sample_loss(v, target))[b].backward()
            out.append(torch.cat([p.grad.flatten() for p in lin.parameters()]))
    return torch.stack(gw), torch.stack(gu)


@pytest.mark.parametrize("arm", ["eisbach", "eisbach_norm"])
def test_detached_arms_keep_each_samples_gradient_direction(arm):
    gw, gu = _per_sample_grads(arm)
    cos = torch.nn.functional.cosine_similarity(gw, gu, dim=1)
    assert torch.allclose(cos, torch.ones(4), atol=1e-5)


def test_eisbach_grad_changes_the_direction():
    gw, gu = _per_sample_grads("eisbach_grad")
    cos = torch.nn.functional.cosine_similarity(gw, gu, dim=1)
    assert (cos < 1 - 1e-4).any(), cos


def test_weighted_loss_is_the_weighted_mean():
    L = torch.tensor([1.0, 2.0, 3.0, 4.0])
    w = torch.tensor([1.0, 0.5, 0.0, 0.25])
    assert weighted_loss(w, L).item() == pytest.approx((1 + 1 + 0 + 1) / 4)
    m = torch.ones(1, 6, dtype=torch.bool)
    m[0, 3:] = False
    v, tg = torch.zeros(1, 2, 6), torch.zeros(1, 2, 6)
    v[0, :, 3:] = 10.0  # errors only in masked frames
    assert per_sample_loss(v, tg, m).item() == 0.0


def test_entropy_gradient_is_finite_with_masked_frames():
    """eisbach_grad differentiates h: padded (masked) frames must not turn the gradient into NaN."""
    v = torch.randn(3, 4, 10, requires_grad=True)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[0, 6:] = False
    mask[2, 1:] = False  # a single valid frame
    barrier_weights(v, "eisbach_grad", mask=mask).sum().backward()
    assert torch.isfinite(v.grad).all()
    assert v.grad[0, :, 6:].abs().max() == 0 and v.grad[0, :, :6].abs().max() > 0


# -- the control arms --------------------------------------------------------------------------


def test_oracle_weights_per_class():
    """Every corpus texture has a weight; flat (sustained) < mixed < contrast (plucked = percussive = 1)."""
    assert set(ORACLE_WEIGHTS) == set(TEXTURES)
    textures = ["percussive", "sustained", "mixed", "plucked", "sustained"]
    v = torch.randn(5, 4, 30)
    w = barrier_weights(v, "oracle_texture", textures=textures)
    expected = torch.tensor([1.0, ORACLE_FACTOR, ORACLE_FACTOR ** 0.5, 1.0, ORACLE_FACTOR])
    assert torch.allclose(w, expected)
    assert 0 < ORACLE_FACTOR < ORACLE_WEIGHTS["mixed"] < 1
    # the label decides, not v: the same labels on other outputs give the same weights
    assert torch.equal(w, barrier_weights(v * 100 + 3, "oracle_texture", textures=textures))


def test_oracle_needs_known_labels_one_per_sample():
    v = torch.randn(2, 4, 10)
    with pytest.raises(ValueError, match="'drone'"):
        barrier_weights(v, "oracle_texture", textures=["sustained", "drone"])
    with pytest.raises(ValueError, match="one texture label per sample"):
        barrier_weights(v, "oracle_texture", textures=["sustained"])
    with pytest.raises(ValueError, match="one texture label per sample"):
        barrier_weights(v, "oracle_texture")


def test_constant_is_the_same_for_every_sample():
    v = torch.randn(6, 4, 20) * torch.linspace(0.1, 5, 20)
    w = barrier_weights(v, "constant", constant=0.37)
    assert torch.equal(w, torch.full((6,), 0.37))
    assert torch.equal(w, barrier_weights(torch.zeros(6, 4, 20), "constant", constant=0.37))
    for bad in (None, 0.0, -1.0):
        with pytest.raises(ValueError, match="constant"):
            barrier_weights(v, "constant", constant=bad)


def test_constant_weight_moves_adamw_like_no_weight():
    """The negative control's premise: AdamW (ε ≪ gradient scale) takes the same steps from a loss
    scaled by a constant as from the unscaled loss; a per-sample weight does not."""
    def run(weights):
        torch.manual_seed(0)
        lin = torch.nn.Linear(4, 4)
        opt = torch.optim.AdamW(lin.parameters(), lr=1e-2, weight_decay=0.0, eps=1e-12)
        g = torch.Generator().manual_seed(1)
        for _ in range(20):
            x, y = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
            loss = (weights * (lin(x) - y).pow(2).mean(dim=1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return lin.weight.detach().clone()
    ones = run(torch.ones(8))
    assert torch.allclose(run(torch.full((8,), 0.37)), ones, atol=1e-5)
    assert not torch.allclose(run(torch.linspace(0.1, 1.0, 8)), ones, atol=1e-3)


def test_the_oracle_factor_sets_the_dose_and_factor_one_is_the_unweighted_arm():
    from eisbach_lib.barrier import oracle_weights

    tex = ["sustained", "mixed", "plucked", "percussive"]
    v = torch.randn(4, 3, 8)
    w = barrier_weights(v, "oracle_texture", textures=tex, oracle_factor=0.3)
    assert torch.allclose(w, torch.tensor([0.3, 0.3 ** 0.5, 1.0, 1.0]))
    assert torch.equal(barrier_weights(v, "oracle_texture", textures=tex, oracle_factor=1.0), barrier_weights(v, "none"))
    assert oracle_weights()["sustained"] == 0.1
    with pytest.raises(ValueError, match="oracle factor"):
        oracle_weights(0.0)
