"""train.weighted_step, the paper's step: arm none is the plain mean loss, a constant weight scales the gradient,
and the barrier weight is detached (its own gradient only in eisbach_grad)."""

import copy

import pytest
import torch

from eisbach_lib.config import Finetune
from eisbach_lib.barrier import barrier_weights, per_sample_loss
from eisbach_lib.flow import noise_data, velocity_target
from eisbach_lib.train import ArmInputs, BatchOrder, draw_batch, make_generators, weighted_step
from helpers import synth

HP = Finetune(steps=1, batch_size=4, lr=1e-3, cond_dropout=0.3, arms=("none",), seeds=(0,), oracle_factor=0.1)


class FrameGain(torch.nn.Module):
    """v[b, c, f] = x_t[b, c, f]·g[f] + tokens' mean: a model whose temporal entropy depends on its parameter."""

    def __init__(self, frames: int):
        super().__init__()
        self.g = torch.nn.Parameter(torch.linspace(0.5, 2.0, frames))

    def forward(self, x_t, t, tokens, token_mask, seconds):
        return x_t * self.g + tokens.mean() * 0.01


def run_step(arm: ArmInputs, seed: int = 0):
    """weighted_step on a fresh model and a drawn batch; returns (the model before the step, the batch, the
    gradient the step applied, its StepOut); the model after the step is left in `run_step.after`."""
    data = synth(10, seed=2)
    model = FrameGain(data.latents.shape[2])
    before = copy.deepcopy(model)
    gens = make_generators(seed)
    batch = draw_batch(data, BatchOrder(len(data), gens["data"]), gens, HP)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    out = weighted_step(model, batch, arm, opt, gens=gens, tmatched={}, grad_clip=None)
    run_step.after = model
    return before, batch, model.g.grad.clone(), out


def manual_loss(model, batch, weight=None):
    """mean_b w[b]·L[b], written out; `weight(v)` gives w (None: 1)."""
    v = model(noise_data(batch.x0, batch.noise, batch.t), batch.t, batch.tokens, batch.token_mask, batch.seconds)
    per_sample = per_sample_loss(v, velocity_target(batch.x0, batch.noise), batch.frame_mask)
    w = torch.ones_like(per_sample) if weight is None else weight(v)
    return (w * per_sample).mean(), per_sample


def grad_of(model, loss):
    (g,) = torch.autograd.grad(loss, [model.g])
    return g


def test_arm_none_is_the_plain_mean_loss():
    before, batch, grad, out = run_step(ArmInputs("none"))
    loss, per_sample = manual_loss(before, batch)
    torch.testing.assert_close(grad, grad_of(before, per_sample.mean()))
    torch.testing.assert_close(out.loss, per_sample.detach())
    assert torch.equal(out.w, torch.ones(4))


def test_the_step_updates_the_model():
    before, _, grad, _ = run_step(ArmInputs("none"))
    assert grad.abs().max() > 0
    torch.testing.assert_close(run_step.after.g.detach(), before.g.detach() - 0.1 * grad)  # SGD: g ← g − lr·∇


@pytest.mark.parametrize("c", [0.25, 3.0])
def test_a_constant_weight_scales_the_gradient(c):
    _, _, grad_none, _ = run_step(ArmInputs("none"))
    _, _, grad_c, out = run_step(ArmInputs("constant", constant=c))
    torch.testing.assert_close(grad_c, c * grad_none)
    assert torch.equal(out.w, torch.full((4,), c))


def test_the_barrier_weight_is_detached():
    lam = 0.5
    before, batch, grad, out = run_step(ArmInputs("eisbach", lam=lam))
    eisbach = lambda v: barrier_weights(v, "eisbach", lam=lam, mask=batch.frame_mask)  # noqa: E731
    loss, _ = manual_loss(before, batch, lambda v: eisbach(v).detach())
    torch.testing.assert_close(grad, grad_of(before, loss))
    assert not torch.equal(out.w, torch.ones(4))  # the weights do differ from 1
    # eisbach_grad keeps the barrier's own gradient: a different step, so the test above can tell them apart
    before_g, batch_g, grad_g, _ = run_step(ArmInputs("eisbach_grad", lam=lam))
    loss_g, _ = manual_loss(before_g, batch_g, lambda v: barrier_weights(v, "eisbach_grad", lam=lam, mask=batch_g.frame_mask))
    torch.testing.assert_close(grad_g, grad_of(before_g, loss_g))
    assert not torch.allclose(grad_g, grad, rtol=1e-3, atol=0)
