"""The Eisbach log-barrier and its control arms (docs/design.md §2, §3).

Given the DiT output v [B, C, T] (the tensor the loss uses) and an optional frame mask [B, T]:

    e[b, t] = mean_c v[b, c, t]²                       frame energy (float32)
    p[b, :] = softmax_t(e[b, :])   over valid frames    temporal belief distribution
    h[b]    = −Σ_t p log p / log(T_valid) ∈ [0, 1]      normalised entropy
    w[b]    = (1 − h[b] + 1e−6) ** λ                    log w = λ·log(1 − h): the log-barrier

Flat energy (h → 1) is damped towards w = 1e−6**λ (1e−3 for λ = 0.5); one sharp frame (h → 0)
keeps w → 1. The weight scales each sample's loss, L_batch = mean_b(w[b]·L[b]), and is detached
(it changes step sizes, not directions) in every arm except `eisbach_grad`.

Two control arms do not read v at all:

- `oracle_texture` (positive control): w from the clip's texture label, ORACLE_WEIGHTS. It is the
  shift the paper attributes to the barrier (less weight on temporally flat material, full weight
  on material with temporal contrast) made perfectly and strongly. If this arm moves no outcome,
  the design cannot see the effect the barrier is meant to have.
- `constant` (negative control): w = c for every sample, c = the mean `eisbach` weight of the
  fine-tuning split under the base model (computed and cached by train.py). AdamW's update is
  invariant to a constant scale of the loss (up to its ε), so this arm must come out equivalent
  to `none`: it checks the verdict rule on real data and separates "a smaller average weight"
  from "a different weight per sample".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

ARMS: tuple[str, ...] = (
    "none",              # w = 1: the unweighted baseline
    "eisbach",           # the paper's method, detached
    "eisbach_norm",      # w / mean_batch(w): the same relative weights at the unweighted average step
    "eisbach_shuffle",   # w permuted within the batch: same weight distribution, wrong samples
    "eisbach_tmatched",  # running mean of w in the sample's noise-level bin: noise-level reweighting only
    "eisbach_grad",      # w not detached: adds the barrier's own gradient
    "minsnr",            # Min-SNR-γ (γ = 5) for the rectified-flow velocity loss
    "oracle_texture",    # positive control: w from the texture label (ORACLE_WEIGHTS)
    "constant",          # negative control: one constant w for every sample (the split's mean eisbach weight)
)
# The oracle's weight per texture class of the chamber corpus (corpus.TEXTURES), monotone in how
# temporally flat the class is. On the 350 finetune clips of the cpu profile, with the codec's
# latents at the true velocity target (v = ε − x0), the eisbach weight per class is sustained 0.39 <
# mixed 0.47 < plucked 0.57 < percussive 0.70: sustained is the flat class, plucked and percussive
# the contrast classes (as anatomy.FLAT_CLASSES / CONTRAST_CLASSES), mixed (sustained lines with
# attacks) in between. The oracle keeps that order but is about 5x stronger than eisbach's ratio
# (0.39/0.70 ≈ 0.55 → ORACLE_FACTOR = 0.1): on a balanced corpus the weighted share of sustained
# clips drops from 25 % to 0.1/(0.1 + 0.32 + 2) ≈ 4 % (eisbach at the target: ≈ 18 %), the intended
# shift, big enough to be seen. Mixed gets the geometric middle √0.1 ≈ 0.32. Not 0: every clip
# still trains a little, so the arm changes the mix without removing a quarter of the data.
ORACLE_FACTOR = 0.1


def oracle_weights(factor: float = ORACLE_FACTOR) -> dict[str, float]:
    """The oracle's weight per texture class for a flat-class `factor` in (0, 1]: sustained `factor`,
    mixed √factor, plucked and percussive 1 (factor 1 is the unweighted arm: the dose-response's 0)."""
    if not 0 < factor <= 1:
        raise ValueError(f"the oracle factor must lie in (0, 1], got {factor}")
    return {"sustained": factor, "mixed": factor ** 0.5, "plucked": 1.0, "percussive": 1.0}


ORACLE_WEIGHTS: dict[str, float] = oracle_weights(ORACLE_FACTOR)
EPS = 1e-6
T_BINS = 20
MINSNR_GAMMA = 5.0


def temporal_entropy(v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Normalised entropy h[b] ∈ [0, 1] of softmax_t(mean_c v²) over the valid frames.

    Energies are clamped to the float32 range so huge inputs give no NaN; a sample with a single
    valid frame has h = 0 (all mass in one frame). Differentiable (used as is by `eisbach_grad`),
    with finite gradients also where frames are masked.
    """
    e = v.float().pow(2).mean(dim=1)  # [B, T]
    e = torch.nan_to_num(e, nan=0.0, posinf=torch.finfo(torch.float32).max)
    if mask is None:
        mask = torch.ones_like(e, dtype=torch.bool)
    mask = mask.to(torch.bool)
    log_p = torch.log_softmax(e.masked_fill(~mask, float("-inf")), dim=-1)
    plogp = log_p.exp() * log_p.masked_fill(~mask, 0.0)  # masked frames: 0 · 0, so no 0 · ∞ = NaN gradient
    n_valid = mask.sum(dim=-1).to(e.dtype)
    h = -plogp.sum(dim=-1) / torch.log(n_valid.clamp_min(2.0))
    return torch.where(n_valid > 1, h, torch.zeros_like(h)).clamp(0.0, 1.0)


def eisbach_weight(h: torch.Tensor, lam: float = 0.5) -> torch.Tensor:
    """w = (1 − h + 1e−6) ** λ."""
    return (1.0 - h + EPS) ** lam


def minsnr_weight(t: torch.Tensor, gamma: float = MINSNR_GAMMA) -> torch.Tensor:
    """Min-SNR-γ (Hang et al. 2023) written for the rectified-flow velocity loss.

    With x_t = (1 − t)x0 + tε, SNR(t) = (1 − t)²/t². Min-SNR weights the x0-prediction loss by
    min(SNR, γ). The model's x0 estimate is x̂0 = x_t − t·v̂, so ||x̂0 − x0||² = t²·||v̂ − v||²; the
    same weight on the velocity loss is therefore
        w(t) = min(SNR(t), γ)·t² = min((1 − t)², γ·t²).
    (Equivalently, via ε̂ = x_t + (1 − t)v̂, the ε-loss form min(SNR, γ)/SNR·(1 − t)² gives the
    same w.) It vanishes at t = 0 and t = 1 and peaks at t = 1/(1 + √γ), w = γ/(1 + √γ)².
    """
    t = t.float()
    return torch.minimum((1 - t) ** 2, gamma * t**2)


def new_tmatched_state(bins: int = T_BINS) -> dict[str, torch.Tensor]:
    """Running per-noise-bin sums and counts of the eisbach weight (saved with checkpoints)."""
    return {"sum": torch.zeros(bins, dtype=torch.float64), "count": torch.zeros(bins, dtype=torch.float64)}


def tmatched_weight(w: torch.Tensor, t: torch.Tensor, state: dict[str, torch.Tensor]) -> torch.Tensor:
    """Add this batch's w to its t-bins (bin = ⌊t·bins⌋), return each sample's bin's running mean."""
    bins = state["sum"].numel()
    idx = (t.detach().float().cpu() * bins).long().clamp(0, bins - 1)
    state["sum"].index_add_(0, idx, w.detach().double().cpu())
    state["count"].index_add_(0, idx, torch.ones_like(idx, dtype=torch.float64))
    return (state["sum"][idx] / state["count"][idx]).to(w)


def oracle_weight(textures: Sequence[str], factor: float = ORACLE_FACTOR) -> torch.Tensor:
    """w[b] = oracle_weights(factor)[texture[b]] (float32, CPU); an unknown label raises, naming it."""
    weights = oracle_weights(factor)
    unknown = sorted({str(x) for x in textures} - set(weights))
    if unknown:
        raise ValueError(f"oracle_texture: no oracle weight for texture {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(weights)} (the chamber corpus's classes)")
    return torch.tensor([weights[str(x)] for x in textures], dtype=torch.float32)


def barrier_weights(
    v: torch.Tensor,
    arm: str = "eisbach",
    lam: float = 0.5,
    t: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    state: dict[str, torch.Tensor] | None = None,
    *,
    textures: Sequence[str] | None = None,
    constant: float | None = None,
    oracle_factor: float = ORACLE_FACTOR,
) -> torch.Tensor:
    """Per-sample loss weights w [B] for one arm of the ablation (see ARMS and docs/design.md §3).

    `t` [B] is needed by `eisbach_tmatched` and `minsnr`; `state` (from `new_tmatched_state`)
    carries `eisbach_tmatched`'s running bin means across steps; `generator` drives
    `eisbach_shuffle`'s permutation (a CPU generator, separate from the data/noise streams).
    `textures` (one label per sample) is needed by `oracle_texture`, `constant` (the value, > 0)
    by `constant`; both arms ignore v except for its batch size and device. `oracle_factor` is the
    oracle's flat-class weight (`oracle_weights`; the dose-response varies it).
    """
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; known: {', '.join(ARMS)}")
    b = v.shape[0]
    if arm == "none":
        return torch.ones(b, device=v.device)
    if arm == "oracle_texture":
        if textures is None or len(textures) != b:
            raise ValueError(f"arm 'oracle_texture' needs one texture label per sample ({b}), "
                             f"got {None if textures is None else len(textures)}")
        return oracle_weight(textures, oracle_factor).to(v.device)
    if arm == "constant":
        if constant is None or not float(constant) > 0:
            raise ValueError(f"arm 'constant' needs its weight constant > 0, got {constant!r}")
        return torch.full((b,), float(constant), device=v.device)
    if arm in ("minsnr", "eisbach_tmatched") and t is None:
        raise ValueError(f"arm {arm!r} needs the timesteps t")
    if arm == "minsnr":
        return minsnr_weight(t).to(v.device)
    if arm == "eisbach_grad":
        return eisbach_weight(temporal_entropy(v, mask), lam)
    with torch.no_grad():
        w = eisbach_weight(temporal_entropy(v, mask), lam)
        if arm == "eisbach_norm":
            w = w / w.mean()
        elif arm == "eisbach_shuffle":
            w = w[torch.randperm(b, generator=generator).to(w.device)]
        elif arm == "eisbach_tmatched":
            w = tmatched_weight(w, t, state if state is not None else new_tmatched_state())
    return w


def per_sample_loss(v: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """L[b] = mean over valid (c, t) of (v − target)²."""
    se = (v.float() - target.float()).pow(2)
    if mask is None:
        return se.mean(dim=(1, 2))
    m = mask.to(se.dtype)[:, None, :]
    return (se * m).sum(dim=(1, 2)) / (m.sum(dim=(1, 2)) * se.shape[1]).clamp_min(1.0)


def weighted_loss(w: torch.Tensor, per_sample: torch.Tensor) -> torch.Tensor:
    """The batch loss mean_b(w[b]·L[b])."""
    return (w * per_sample).mean()


__all__ = ["ARMS", "ORACLE_FACTOR", "ORACLE_WEIGHTS", "oracle_weights", "temporal_entropy", "barrier_weights", "per_sample_loss",
           "weighted_loss", "minsnr_weight", "new_tmatched_state", "eisbach_weight"]
