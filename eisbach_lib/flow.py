"""Rectified flow: noising, velocity target, timestep samplers and minibatch OT coupling.

Convention (as in Stability AI's stable-audio-3 training code): t = 0 is data, t = 1 is noise,
    x_t = (1 − t)·x0 + t·ε,        target v = dx_t/dt = ε − x0.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.special import logit, ndtr

TIMESTEP_KINDS = ("uniform", "logit_normal", "trunc_logit_normal")
LEFT_TRUNC = 0.075  # stable-audio-3's left truncation of the logit-normal before the flip


def _bcast(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """t [B] -> [B, 1, ..., 1] to broadcast against x [B, ...]."""
    return t.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)


def noise_data(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 − t)·x0 + t·noise, with t [B] broadcast over the other axes."""
    tb = _bcast(t, x0)
    return (1 - tb) * x0 + tb * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The rectified-flow velocity target v = noise − x0."""
    return noise - x0


def trunc_logit_normal_cdf(t: np.ndarray, left_trunc: float = LEFT_TRUNC) -> np.ndarray:
    """Analytic CDF of `sample_timesteps(kind="trunc_logit_normal")` (see its docstring):
    F(t) = Φ(logit((1 − a)·t)) / Φ(logit(1 − a)) for t in (0, 1), a = left_trunc."""
    t = np.clip(np.asarray(t, dtype=np.float64), 1e-12, 1 - 1e-12)
    return ndtr(logit((1 - left_trunc) * t)) / ndtr(logit(1 - left_trunc))


def sample_timesteps(n: int, kind: str = "trunc_logit_normal", generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw n training timesteps t in (0, 1).

    uniform:            t ~ U(0, 1)
    logit_normal:       t = sigmoid(z), z ~ N(0, 1)
    trunc_logit_normal: stable-audio-3's sampler (`truncated_logistic_normal_rescaled`, then
        flipped `t = 1 − r`). With a = 0.075 it draws s = sigmoid(z) from the logit-normal
        restricted to s > a by inverse-CDF sampling, z = Φ⁻¹(Φ(logit a) + (1 − Φ(logit a))·u),
        u ~ U(0, 1); rescales r = (s − a)/(1 − a) and flips t = 1 − r = (1 − s)/(1 − a).
        Since 1 − s = sigmoid(−z) and −z is N(0, 1) truncated to −z < logit(1 − a):
            t = sigmoid(y)/(1 − a),  y ~ N(0, 1) truncated to y < logit(1 − a) ≈ 2.51,
        i.e. a logit-normal with its top 7.5 % of values (sigmoid(y) > 0.925) cut off, stretched
        back onto (0, 1). CDF: `trunc_logit_normal_cdf`. Its mass sits a little above t = 0.5
        (median ≈ 0.54), and t never reaches 1 exactly.
    """
    if kind == "uniform":
        return torch.rand(n, generator=generator)
    if kind == "logit_normal":
        return torch.sigmoid(torch.randn(n, generator=generator))
    if kind == "trunc_logit_normal":
        a = LEFT_TRUNC
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        lower = torch.special.ndtr(torch.tensor(math.log(a / (1 - a)), dtype=torch.float64))
        z = torch.special.ndtri(lower + (1 - lower) * u)
        s = torch.sigmoid(z)
        t = 1 - (s - a) / (1 - a)
        return t.clamp(1e-6, 1 - 1e-6).float()
    raise ValueError(f"unknown timestep kind {kind!r}; known: {', '.join(TIMESTEP_KINDS)}")


def pairwise_sq_dist(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """C[i, j] = ||x0_i − noise_j||² over the flattened samples (float32)."""
    a = x0.reshape(x0.shape[0], -1).float()
    b = noise.reshape(noise.shape[0], -1).float()
    return (a * a).sum(1, keepdim=True) + (b * b).sum(1)[None] - 2.0 * a @ b.T


def ot_couple(x0: torch.Tensor, noise: torch.Tensor, method: str = "exact", iters: int = 20) -> torch.Tensor:
    """Minibatch OT coupling (MelodyFlow §2.5.2, as in stable-audio-3): `noise` reordered so that
    the pairs (x0_i, noise_i) have a small total squared distance Σ_i ||x0_i − noise_σ(i)||².

    exact:    the optimal permutation (Hungarian algorithm, scipy's linear_sum_assignment).
    sinkhorn: stable-audio-3's approximation: log P = −C / mean(C), `iters` alternating row and
              column log-normalisations, then a greedy row-by-row argmax over unused columns.
    """
    if x0.shape[0] != noise.shape[0]:
        raise ValueError(f"ot_couple: batch sizes differ ({x0.shape[0]} vs {noise.shape[0]})")
    if x0.shape[0] < 2:
        return noise
    with torch.no_grad():
        cost = pairwise_sq_dist(x0, noise)
        if method == "exact":
            _, cols = linear_sum_assignment(cost.cpu().double().numpy())
            perm = torch.as_tensor(cols, device=noise.device)
        elif method == "sinkhorn":
            log_p = -cost / cost.mean().clamp_min(1e-12)
            for _ in range(iters):
                log_p = log_p - torch.logsumexp(log_p, dim=1, keepdim=True)
                log_p = log_p - torch.logsumexp(log_p, dim=0, keepdim=True)
            p = log_p.exp()
            perm = torch.empty(p.shape[0], dtype=torch.long, device=noise.device)
            used = torch.zeros(p.shape[0], dtype=torch.bool, device=noise.device)
            for i in range(p.shape[0]):
                row = p[i].masked_fill(used, -1.0)
                perm[i] = row.argmax()
                used[perm[i]] = True
        else:
            raise ValueError(f"unknown OT method {method!r}; use exact or sinkhorn")
    return noise[perm]
