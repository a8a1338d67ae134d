"""The barrier's anatomy: what the weight does, measured on a model and a corpus (claims C1-C4).

Notebook 02 calls these on the base model and the `finetune` split; notebook 04 on training logs.
Each function returns a tidy DataFrame that the notebook plots and writes to
<runs_dir>/anatomy/*.csv for the scorecard.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .barrier import barrier_weights, new_tmatched_state, per_sample_loss, temporal_entropy
from .cache import PreEncoded
from .flow import noise_data, velocity_target

FLAT_CLASSES = ("sustained",)
CONTRAST_CLASSES = ("plucked", "percussive")


def _forward(model, data: PreEncoded, idx: torch.Tensor, t: torch.Tensor, noise: torch.Tensor):
    """(v, target, frame mask) for clips `idx` noised to times t with the given noise."""
    x0 = data.latents[idx]
    xt = noise_data(x0, noise, t)
    v = model(xt, t, data.tokens[idx], data.token_mask[idx], data.seconds[idx])
    return v, velocity_target(x0, noise), data.frame_mask[idx]


@torch.no_grad()
def entropy_vs_t(model, data: PreEncoded, t_grid: list[float], n_clips: int = 32, lam: float = 0.5,
                 seed: int = 0, batch_size: int = 32) -> pd.DataFrame:
    """h and w of the model's output for fixed clips and noise at each t of `t_grid` (claim C4).
    Columns: id, texture, t, h, w."""
    g = torch.Generator().manual_seed(seed)
    idx_all = torch.randperm(len(data), generator=g)[:n_clips]
    noise_all = torch.randn(data.latents[idx_all].shape, generator=g)
    rows = []
    for t_val in t_grid:
        for k in range(0, len(idx_all), batch_size):
            idx, noise = idx_all[k:k + batch_size], noise_all[k:k + batch_size]
            t = torch.full((len(idx),), float(t_val))
            v, _, mask = _forward(model, data, idx, t, noise)
            h = temporal_entropy(v, mask)
            w = barrier_weights(v, "eisbach", lam=lam, mask=mask)
            for i, hh, ww in zip(idx.tolist(), h.tolist(), w.tolist()):
                rows.append({"id": data.manifest.loc[i, "id"], "texture": data.manifest.loc[i].get("texture", ""),
                             "t": float(t_val), "h": hh, "w": ww})
    return pd.DataFrame(rows)


@torch.no_grad()
def weights_by_clip(model, data: PreEncoded, n_t: int = 8, lam: float = 0.5, seed: int = 0,
                    batch_size: int = 32, timesteps: str = "trunc_logit_normal") -> pd.DataFrame:
    """Each clip's mean barrier weight over `n_t` training-distribution timesteps (claim C2).
    Columns: id, texture, h, w (means over t)."""
    from .flow import sample_timesteps

    g = torch.Generator().manual_seed(seed)
    h_sum, w_sum = torch.zeros(len(data)), torch.zeros(len(data))
    for _ in tqdm(range(n_t), desc="weights by clip", leave=False):
        for k in range(0, len(data), batch_size):
            idx = torch.arange(k, min(k + batch_size, len(data)))
            t = sample_timesteps(len(idx), timesteps, generator=g)
            noise = torch.randn(data.latents[idx].shape, generator=g)
            v, _, mask = _forward(model, data, idx, t, noise)
            h_sum[idx] += temporal_entropy(v, mask)
            w_sum[idx] += barrier_weights(v, "eisbach", lam=lam, mask=mask)
    df = data.manifest[["id"]].copy()
    df["texture"] = data.manifest["texture"] if "texture" in data.manifest else ""
    df["h"], df["w"] = (h_sum / n_t).numpy(), (w_sum / n_t).numpy()
    return df


def clip_flatness(manifest: pd.DataFrame, audio_root: Path) -> pd.Series:
    """`metrics.temporal_flatness` of each clip's training audio, indexed like `manifest`."""
    import soundfile as sf

    from .metrics import temporal_flatness

    vals = []
    for p in manifest["path"]:
        y, sr = sf.read(Path(audio_root) / p, dtype="float32", always_2d=True)
        vals.append(temporal_flatness(y.mean(axis=1), sr))
    return pd.Series(vals, index=manifest.index, name="flatness")


def _flat_grad(params: list[torch.nn.Parameter]) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])


def grad_cosines(model, data: PreEncoded, arms: list[str], n_batches: int = 4, batch_size: int = 4,
                 lam: float = 0.5, seed: int = 0, timesteps: str = "trunc_logit_normal") -> pd.DataFrame:
    """Cosine between weighted and unweighted gradients of the trainable parameters (claim C1).

    per_sample: ∇(w_b·L_b) vs ∇L_b for each sample b (= 1 when w is detached, whatever w is);
    batch:      ∇ mean_b(w_b·L_b) vs ∇ mean_b(L_b) (< 1 whenever the weights differ across samples).
    Columns: arm, kind, batch, sample, cos, w."""
    from .flow import sample_timesteps

    params = [p for p in model.parameters() if p.requires_grad]
    g = torch.Generator().manual_seed(seed)
    rows = []
    for bi in range(n_batches):
        idx = torch.randperm(len(data), generator=g)[:batch_size]
        t = sample_timesteps(len(idx), timesteps, generator=g)
        noise = torch.randn(data.latents[idx].shape, generator=g)
        for arm in arms:
            state = new_tmatched_state()
            grads: dict[tuple[str, int], torch.Tensor] = {}
            for weighted in (True, False):
                for b in [*range(len(idx)), -1]:  # each sample, then the whole batch (-1)
                    model.zero_grad(set_to_none=True)
                    v, target, mask = _forward(model, data, idx, t, noise)
                    L = per_sample_loss(v, target, mask)
                    w = barrier_weights(v, arm, lam=lam, t=t, mask=mask, state=state,
                                        generator=torch.Generator().manual_seed(bi)) if weighted else torch.ones_like(L)
                    loss = (w * L).mean() if b == -1 else (w * L)[b]
                    loss.backward()
                    grads[("w" if weighted else "u", b)] = _flat_grad(params).clone()
                    if weighted and b == -1:
                        w_batch = w.detach()
            for b in [*range(len(idx)), -1]:
                cos = torch.nn.functional.cosine_similarity(grads[("w", b)], grads[("u", b)], dim=0).item()
                rows.append({"arm": arm, "kind": "batch" if b == -1 else "per_sample", "batch": bi,
                             "sample": b, "cos": cos, "w": float("nan") if b == -1 else float(w_batch[b])})
    model.zero_grad(set_to_none=True)
    return pd.DataFrame(rows)


def gradient_mass(log: pd.DataFrame, n_bins: int = 5) -> pd.DataFrame:
    """Share of the gradient mass Σ w·L on each texture class over training (claim C3).

    `log` is the per-sample training log of one or more runs (columns run, arm, seed, step,
    texture, w, loss). Steps are cut into `n_bins` equal phases. Columns: run, arm, seed, phase,
    texture, share (shares sum to 1 within run and phase), share_unweighted (the same with w = 1)."""
    df = log.copy()
    df["mass"] = df["w"] * df["loss"]
    max_step = df["step"].max()
    df["phase"] = np.minimum((df["step"] * n_bins) // (max_step + 1), n_bins - 1)
    keys = ["run", "arm", "seed", "phase"]
    grp = df.groupby([*keys, "texture"])[["mass", "loss"]].sum().reset_index()
    tot = grp.groupby(keys)[["mass", "loss"]].transform("sum")
    grp["share"] = grp["mass"] / tot["mass"]
    grp["share_unweighted"] = grp["loss"] / tot["loss"]
    return grp.drop(columns=["mass", "loss"])


def flat_share_change(mass: pd.DataFrame) -> pd.DataFrame:
    """Per run: the flat (sustained) classes' share of gradient mass minus their share of the
    unweighted loss, averaged over phases. Negative = the weighting moves mass away from flat clips."""
    flat = mass[mass["texture"].isin(FLAT_CLASSES)]
    per = flat.groupby(["run", "arm", "seed", "phase"])[["share", "share_unweighted"]].sum().reset_index()
    per["delta"] = per["share"] - per["share_unweighted"]
    return per.groupby(["run", "arm", "seed"])["delta"].mean().reset_index()
