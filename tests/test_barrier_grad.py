"""Claim C1 on a real (tiny) DiT with a DoRA adapter: a detached weight rescales each sample's gradient
without turning it (cosine 1), while `eisbach_grad` adds the barrier's own gradient (cosine < 1)."""

import pytest
import torch

from eisbach_lib.config import Model
from eisbach_lib.barrier import barrier_weights, new_tmatched_state, per_sample_loss
from eisbach_lib.flow import noise_data, velocity_target
from eisbach_lib.models import add_adapter, build_base

B, C, T, L, D = 4, 8, 24, 5, 16


def setup():
    model = add_adapter(build_base(Model(embed_dim=32, depth=1, num_heads=2, ff_mult=2.0), C, D, seed=0),
                        "dora", rank=4, alpha=4, seed=0)
    with torch.no_grad():  # a trained-looking adapter, so that its gradients are generic
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(n)))
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(B, C, T, generator=g), torch.randn(B, C, T, generator=g)
    x0[0, :, ::4] *= 6.0  # one sample with strong temporal contrast, so that weights differ across samples
    t = torch.tensor([0.2, 0.4, 0.6, 0.8])
    cond = (torch.randn(B, L, D, generator=g), torch.ones(B, L, dtype=torch.bool), torch.full((B,), 4.0))
    return model, x0, noise, t, cond


def sample_grads(model, x0, noise, t, cond, arm):
    """Per sample b: the adapter gradient of w_b·L_b (arm's weight) and of L_b (unweighted)."""
    params = [p for p in model.parameters() if p.requires_grad]
    out = []
    for b in range(B):
        pair = []
        for weighted in (True, False):
            model.zero_grad(set_to_none=True)
            v = model(noise_data(x0, noise, t), t, *cond)
            loss_b = per_sample_loss(v, velocity_target(x0, noise))
            w = barrier_weights(v, arm, t=t, generator=torch.Generator().manual_seed(0),
                                state=new_tmatched_state()) if weighted else torch.ones(B)
            (w * loss_b)[b].backward()
            pair.append(torch.cat([p.grad.flatten() for p in params]).double())
        out.append(pair)
    return out


@pytest.mark.parametrize("arm", ["eisbach", "eisbach_norm", "eisbach_shuffle", "eisbach_tmatched", "minsnr"])
def test_detached_arms_keep_each_sample_direction(arm):
    model, x0, noise, t, cond = setup()
    for g_w, g_u in sample_grads(model, x0, noise, t, cond, arm):
        cos = torch.nn.functional.cosine_similarity(g_w, g_u, dim=0).item()
        assert abs(cos - 1.0) < 1e-5, cos


def test_eisbach_grad_turns_the_direction():
    model, x0, noise, t, cond = setup()
    cosines = [torch.nn.functional.cosine_similarity(g_w, g_u, dim=0).item()
               for g_w, g_u in sample_grads(model, x0, noise, t, cond, "eisbach_grad")]
    assert min(cosines) < 1 - 1e-3, cosines


def test_detached_weights_still_change_the_batch_direction():
    """Detached per-sample weights keep each sample's direction but reweight the batch gradient."""
    model, x0, noise, t, cond = setup()
    params = [p for p in model.parameters() if p.requires_grad]
    grads = []
    for arm in ("eisbach", "none"):
        model.zero_grad(set_to_none=True)
        v = model(noise_data(x0, noise, t), t, *cond)
        w = barrier_weights(v, arm)
        (w * per_sample_loss(v, velocity_target(x0, noise))).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in params]).double())
    assert torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0).item() < 1 - 1e-6
