"""Samplers for rectified-flow models: `model_fn(x [B, C, T], t [B]) -> predicted velocity`.

Reproduces the behaviour of stable-audio-3's `sample_discrete_euler` and `sample_flow_pingpong`
and of diffusers' `logsnr_sigma_schedule` (Stable Audio 3 pipeline). Classifier-free guidance is
not here: `generate.sample_latents` builds the guided `model_fn`, v = v_u + s·(v_c − v_u), with the
conditional and unconditional halves in one batched forward pass.
"""

from __future__ import annotations

from typing import Callable

import torch

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def rf_schedule(steps: int, logsnr_min: float = -6.0, logsnr_max: float = 2.0) -> torch.Tensor:
    """steps + 1 times from 1 down to 0, uniform in log-SNR.

    u_i = 1 − i/steps, λ_i = λ_max − u_i·(λ_max − λ_min), t_i = sigmoid(−λ_i), where λ is the
    log signal-to-noise amplitude ratio log((1 − t)/t) of x_t = (1 − t)x0 + tε (as in SA3);
    then t_0 is pinned to exactly 1 (pure noise) and the last point to exactly 0.
    """
    if steps < 1:
        raise ValueError(f"rf_schedule: steps must be >= 1, got {steps}")
    u = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    t = torch.sigmoid(-(logsnr_max - u * (logsnr_max - logsnr_min)))
    t[0], t[-1] = 1.0, 0.0
    return t.float()


def sample_euler(model_fn: ModelFn, noise: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    """Deterministic Euler on dx/dt = v: x ← x + (t_{i+1} − t_i)·v(x, t_i), from t_0 = 1 to 0."""
    x = noise
    ones = torch.ones(x.shape[0], device=x.device, dtype=x.dtype)
    for i in range(len(ts) - 1):
        v = model_fn(x, ts[i] * ones)
        x = x + (ts[i + 1] - ts[i]).to(x.dtype) * v
    return x


def sample_pingpong(model_fn: ModelFn, noise: torch.Tensor, ts: torch.Tensor,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Ping-pong sampling: denoise to x̂0 = x − t_i·v(x, t_i), then re-noise to the next level,
    x ← (1 − t_{i+1})·x̂0 + t_{i+1}·ε_i with fresh ε_i (from `generator`); the last step returns x̂0."""
    x = noise
    ones = torch.ones(x.shape[0], device=x.device, dtype=x.dtype)
    for i in range(len(ts) - 1):
        t, t_next = ts[i].to(x.dtype), ts[i + 1].to(x.dtype)
        x0_hat = x - t * model_fn(x, t * ones)
        if float(t_next) == 0.0:
            return x0_hat
        eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
        x = (1 - t_next) * x0_hat + t_next * eps
    return x
