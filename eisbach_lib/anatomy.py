"""The barrier's anatomy: what the weight does, measured on a model and a corpus (claims C1-C4),
and the manipulation checks of the trained grid.

Two entry points compute every scorecard input of C1-C4 and write it to <runs_dir>/anatomy/*.csv (the
tables of layout.ANATOMY_TABLES, each returned under its name):
`barrier_anatomy(cfg)` (the base model and the `finetune` split, before any fine-tuning: notebook 02)
and `training_dynamics(cfg)` (the trained grid's logs and checkpoints: notebook 04). The notebooks
call them and plot what they return; the functions below are their parts, each returning a tidy
DataFrame. Sizes come from the profile's optional `anatomy:` section (config.Anatomy, with its defaults).

Both entry points run with one torch thread (`workers.one_thread`): their loops are thousands of
small forward/backward passes, which a second OpenMP thread barely speeds up alone and slows down
many times over when another process shares the cores (benchmarks/results/anatomy.md).
`barrier_anatomy` prints the same progress lines as training (`progress.Progress`): one counter over
every model pass and clip of its parts, its total from `anatomy_steps`; a part added to it takes
`bar=` and calls `_tick(bar)` once per step, and `anatomy_steps` counts those steps.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats
import soundfile as sf
import torch

from .barrier import barrier_weights, new_tmatched_state, per_sample_loss, temporal_entropy
from .cache import PreEncoded, load_cache
from .config import Anatomy, Profile
from .datasets import prepare_corpus
from .flow import sample_timesteps
from .layout import Layout, is_finished
from .metrics import temporal_flatness
from .probes import _forward, _tick, weights_by_clip
from .progress import Progress
from .runs import base_dir_for, base_model, grid_items, load_run_model, read_log, run_steps
from .workers import one_thread

FLAT_CLASSES = ("sustained",)
CONTRAST_CLASSES = ("plucked", "percussive")
#: the arms of C1's per-sample/batch gradient cosines and of its AdamW update cosines (barrier_anatomy)
GRAD_ARMS = ("eisbach", "eisbach_norm", "eisbach_shuffle", "eisbach_tmatched", "eisbach_grad", "minsnr")
UPDATE_ARMS = ("eisbach", "eisbach_shuffle")  # C1: the claim, and the same weights on the wrong samples


@torch.no_grad()
def entropy_vs_t(model, data: PreEncoded, t_grid: list[float], n_clips: int = 32, lam: float = 0.5,
                 seed: int = 0, batch_size: int = 32, bar: Progress | None = None) -> pd.DataFrame:
    """h and w of the model's output for fixed clips and noise at each t of `t_grid` (claim C4).
    Columns: id, texture, t, h, w. One `bar` step per forward pass."""
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
            _tick(bar)
    return pd.DataFrame(rows)


def clip_flatness(manifest: pd.DataFrame, audio_root: Path, bar: Progress | None = None) -> pd.Series:
    """`metrics.temporal_flatness` of each clip's training audio, indexed like `manifest`. One `bar`
    step per clip."""
    vals = []
    for p in manifest["path"]:
        y, sr = sf.read(Path(audio_root) / p, dtype="float32", always_2d=True)
        vals.append(temporal_flatness(y.mean(axis=1), sr))
        _tick(bar)
    return pd.Series(vals, index=manifest.index, name="flatness")


def _flat_grad(params: list[torch.nn.Parameter]) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])


def grad_cosines(model, data: PreEncoded, arms: list[str], n_batches: int = 4, batch_size: int = 4,
                 lam: float = 0.5, seed: int = 0, timesteps: str = "trunc_logit_normal",
                 bar: Progress | None = None) -> pd.DataFrame:
    """Cosine between weighted and unweighted gradients of the trainable parameters (claim C1).

    per_sample: ∇(w_b·L_b) vs ∇L_b for each sample b (= 1 when w is detached, whatever w is);
    batch:      ∇ mean_b(w_b·L_b) vs ∇ mean_b(L_b) (< 1 whenever the weights differ across samples).
    Columns: arm, kind, batch, sample, cos, w. One `bar` step per backward pass."""
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
                    _tick(bar)
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


def training_mix(samples: pd.DataFrame) -> pd.DataFrame:
    """The effective training mix (a manipulation check): per run and texture class, the share of
    sample rows (n / Σn) and the weighted share of the training signal (Σw / Σw over the run's rows),
    from a per-sample log (`read_log(run, "samples")`, concatenated over runs). Columns: run, arm,
    seed, texture, n, share, weighted_share, ratio (= weighted_share / share)."""
    need = {"run", "arm", "seed", "texture", "w"}
    if not need <= set(samples.columns):
        raise ValueError(f"training_mix: the log lacks columns {sorted(need - set(samples.columns))}")
    g = samples.groupby(["run", "arm", "seed", "texture"], sort=True).agg(n=("w", "size"), w_sum=("w", "sum"))
    g = g.reset_index()
    totals = g.groupby("run")[["n", "w_sum"]].transform("sum")
    g["share"] = g["n"] / totals["n"]
    g["weighted_share"] = g["w_sum"] / totals["w_sum"]
    g["ratio"] = g["weighted_share"] / g["share"]
    return g.drop(columns="w_sum")


def _trainable_state(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters() if p.requires_grad]


def _load_trainable(model, state: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for p, s in zip([p for p in model.parameters() if p.requires_grad], state):
            p.copy_(s)


def _draw_batches(data: PreEncoded, n_steps: int, batch_size: int, timesteps: str,
                  g: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """`n_steps` training batches (clip indices, timesteps, noise) drawn from generator `g`."""
    out = []
    for _ in range(n_steps):
        idx = torch.randperm(len(data), generator=g)[:batch_size]
        out.append((idx, sample_timesteps(len(idx), timesteps, generator=g), torch.randn(data.latents[idx].shape, generator=g)))
    return out


def _updates(model, data: PreEncoded, batches: list, arm: str, theta0: list[torch.Tensor], lr: float,
             betas: tuple[float, float], weight_decay: float, lam: float, shuffle_seed: int,
             bar: Progress | None = None) -> list[torch.Tensor]:
    """The cumulative update Δθ_k = θ_k − θ0 after each AdamW step k of `arm` over `batches`,
    starting from θ0 with a fresh optimiser (so every arm starts from the same state). One `bar`
    step per AdamW step."""
    params = [p for p in model.parameters() if p.requires_grad]
    _load_trainable(model, theta0)
    opt = torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay, eps=1e-8)
    state, shuffle = new_tmatched_state(), torch.Generator().manual_seed(shuffle_seed)
    deltas = []
    for idx, t, noise in batches:
        v, target, mask = _forward(model, data, idx, t, noise)
        w = barrier_weights(v, arm, lam=lam, t=t, mask=mask, generator=shuffle, state=state)
        opt.zero_grad(set_to_none=True)
        (w * per_sample_loss(v, target, mask)).mean().backward()
        opt.step()
        deltas.append(torch.cat([(p.detach() - p0).flatten() for p, p0 in zip(params, theta0)]))
        _tick(bar)
    return deltas


NOISE_FLOOR = "none_other_batches"  # the arm label of the minibatch-noise floor in update_cosines


def update_cosines(model, data: PreEncoded, arms: list[str], n_seqs: int = 3, n_steps: int = 10,
                   batch_size: int = 4, lr: float = 5e-5, betas: tuple[float, float] = (0.9, 0.95),
                   weight_decay: float = 0.0, lam: float = 0.5, seed: int = 0,
                   timesteps: str = "trunc_logit_normal", init: int = 0, bar: Progress | None = None) -> pd.DataFrame:
    """The part of C1 that can fail: does the weighting turn the *update* more than minibatch noise does?

    From the same adapter state θ0 and a fresh AdamW, train `n_steps` on batch sequence A (clips,
    timesteps, noise) once with each arm's weights and once unweighted, and compare the cumulative
    updates Δθ = θ_k − θ0 after every step k: cos(Δθ_arm,A, Δθ_none,A). The reference point is the
    minibatch-noise floor: the unweighted update on an independent batch sequence B from the same
    θ0, cos(Δθ_none,B, Δθ_none,A) (arm label NOISE_FLOOR). A detached per-sample weight keeps each
    *sample's* gradient direction (`grad_cosines`), but the batch gradient Σ_b w_b ∇L_b is a
    re-weighted sum and AdamW divides each coordinate by its running RMS, so the update turns
    somewhat under any reweighting; the claim "step size, not direction" is then a claim that it
    turns little next to what a change of minibatches does. Sequence k is drawn from (seed, k), so
    every adapter init (`init`, a label) sees the same sequences: inits × sequences are crossed.
    Columns: init, arm, seq, step, cos. One `bar` step per AdamW step."""
    theta0 = _trainable_state(model)
    rows = []
    for seq in range(n_seqs):
        seq_a = _draw_batches(data, n_steps, batch_size, timesteps, torch.Generator().manual_seed(seed * 1000 + 2 * seq))
        seq_b = _draw_batches(data, n_steps, batch_size, timesteps, torch.Generator().manual_seed(seed * 1000 + 2 * seq + 1))
        kw = dict(theta0=theta0, lr=lr, betas=betas, weight_decay=weight_decay, lam=lam, shuffle_seed=seed + seq, bar=bar)
        ref = _updates(model, data, seq_a, "none", **kw)
        runs = {NOISE_FLOOR: _updates(model, data, seq_b, "none", **kw)}
        runs.update({arm: _updates(model, data, seq_a, arm, **kw) for arm in arms})
        for arm, deltas in runs.items():
            for k, (da, du) in enumerate(zip(deltas, ref), start=1):
                rows.append({"init": init, "arm": arm, "seq": seq, "step": k,
                             "cos": torch.nn.functional.cosine_similarity(da, du, dim=0).item()})
    _load_trainable(model, theta0)
    model.zero_grad(set_to_none=True)
    return pd.DataFrame(rows)


@torch.no_grad()
def output_distances(cfg: Profile, run_dirs: dict[str, Path], data: PreEncoded, n_clips: int = 16,
                     t_val: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """How far apart the trained models are (manipulation check): every model's velocity output on
    the same inputs (the first `n_clips` of `data`, fixed noise, noise level `t_val`), and the RMS
    distance of every pair relative to the base output's RMS:  D(a, b) = ‖v_a − v_b‖ / ‖v_base‖.

    `run_dirs` maps a label (e.g. the run name) to a finished run folder; the base model is added as
    "base". Columns: a, b, distance (one row per unordered pair, a < b)."""
    from .models import load_base  # heavy: diffusers (.models imports it)

    g = torch.Generator().manual_seed(seed)
    idx = torch.arange(min(n_clips, len(data)))
    noise = torch.randn(data.latents[idx].shape, generator=g)
    t = torch.full((len(idx),), float(t_val))
    outs = {"base": _forward(load_base(base_dir_for(cfg)).eval(), data, idx, t, noise)[0]}
    for name, run_dir in run_dirs.items():
        outs[name] = _forward(load_run_model(cfg, run_dir), data, idx, t, noise)[0]
    scale = outs["base"].pow(2).mean().sqrt().item()
    names = sorted(outs)
    return pd.DataFrame([{"a": a, "b": b, "distance": (outs[a] - outs[b]).pow(2).mean().sqrt().item() / scale}
                         for i, a in enumerate(names) for b in names[i + 1:]])


def _split_data(cfg: Profile, split: str = "finetune") -> PreEncoded:
    return load_cache(prepare_corpus(cfg, progress=False)).split(split)


def anatomy_steps(st: Anatomy, n_data: int, batch_size: int) -> dict[str, int]:
    """The steps of each part of `barrier_anatomy` as its loops count them on the progress counter
    (forward passes, backward passes, AdamW steps, clips), from the anatomy settings `st`, the size
    of the finetune split and the fine-tuning batch size. tests/test_anatomy_progress.py checks
    that the counter ends exactly at their sum."""
    n_clips = min(n_data, st.clips)
    return {"entropy_vs_t": st.t_points * math.ceil(n_clips / 32),
            "weights_by_clip": st.weight_draws * math.ceil(n_data / 32),
            "clip_flatness": n_data,
            "grad_cosines": st.grad_batches * len(GRAD_ARMS) * 2 * (min(batch_size, n_data) + 1),
            "update_cosines": st.update_inits * st.update_seqs * (2 + len(UPDATE_ARMS))
                              * st.update_steps}


def barrier_anatomy(cfg: Profile, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Everything the scorecard needs from the base model before fine-tuning (C1, C2, C4), written to
    <runs_dir>/anatomy/: entropy_vs_t.csv (C4), weights_by_clip.csv (C2, with each clip's
    temporal_flatness), grad_cosines.csv and update_cosines.csv (C1). Returns the tables by name.
    Runs with one torch thread and shows one progress counter over all parts (module docstring)."""
    with one_thread():
        return _barrier_anatomy(cfg, progress)


def _barrier_anatomy(cfg: Profile, progress: bool) -> dict[str, pd.DataFrame]:
    """`barrier_anatomy`'s work, in the caller's thread setting."""
    from .models import add_adapter  # heavy: diffusers (.models imports it)

    st, ft = cfg.anatomy, cfg.finetune
    layout = Layout.of(cfg)
    layout.anatomy.mkdir(parents=True, exist_ok=True)
    data, model, lam, seed = _split_data(cfg), base_model(cfg), ft.lam, cfg.seed
    bar = Progress(total=sum(anatomy_steps(st, len(data), ft.batch_size).values()), desc="barrier anatomy",
                   unit="step", disable=not progress)
    out = {}
    t_grid = np.round(np.linspace(0.05, 0.95, st.t_points), 3).tolist()
    out["entropy_vs_t"] = entropy_vs_t(model, data, t_grid, n_clips=min(len(data), st.clips), lam=lam,
                                       seed=seed, bar=bar).assign(stage="base")
    wbc = weights_by_clip(model, data, n_t=st.weight_draws, lam=lam, seed=seed, timesteps=ft.timesteps,
                          bar=bar)
    wbc["flatness"] = clip_flatness(data.manifest, layout.corpus, bar=bar).to_numpy()
    out["weights_by_clip"] = wbc
    adapted = add_adapter(base_model(cfg), kind=ft.adapter, rank=ft.rank, alpha=ft.alpha, seed=seed)
    out["grad_cosines"] = grad_cosines(adapted, data, list(GRAD_ARMS), n_batches=st.grad_batches,
                                       batch_size=ft.batch_size, lam=lam, seed=seed, timesteps=ft.timesteps,
                                       bar=bar)
    parts = []
    for init in range(st.update_inits):  # several adapter inits, the same batch sequences (crossed)
        model_i = add_adapter(base_model(cfg), kind=ft.adapter, rank=ft.rank, alpha=ft.alpha,
                              seed=seed + init)
        parts.append(update_cosines(model_i, data, list(UPDATE_ARMS), n_seqs=st.update_seqs,
                                    n_steps=st.update_steps, batch_size=ft.batch_size, lr=ft.lr,
                                    betas=ft.betas, weight_decay=ft.weight_decay, lam=lam,
                                    seed=seed, timesteps=ft.timesteps, init=init, bar=bar))
    out["update_cosines"] = pd.concat(parts, ignore_index=True)
    bar.close()
    for name, df in out.items():
        df.to_csv(layout.anatomy_table(name), index=False)
    return out


def training_logs(cfg: Profile) -> pd.DataFrame:
    """The per-sample training logs of every finished run of the grid, with run, arm, seed, adapter."""
    items = [it for it in grid_items(cfg) if is_finished(it["run_dir"])]
    if not items:
        return pd.DataFrame()
    return pd.concat([read_log(it["run_dir"]).assign(run=Path(it["run_dir"]).name, arm=it["arm"], seed=it["seed"],
                                                     adapter=it["adapter"]) for it in items], ignore_index=True)


def training_dynamics(cfg: Profile) -> dict[str, pd.DataFrame]:
    """Everything the scorecard needs from the trained grid (C3, C4 over training, manipulation
    checks), written to <runs_dir>/anatomy/: gradient_mass.csv (C3: each class's share of Σw·L per
    run and training phase), weight_mix.csv (the effective training mix, `training_mix`, with
    shift = weighted share − sample share), entropy_vs_t_checkpoints.csv
    (C4 at every checkpoint of the first seed's `eisbach` run) and output_distances.csv (how far the
    final adapters are from the base and from each other). Returns the tables by name. Runs with
    one torch thread (module docstring)."""
    with one_thread():  # as barrier_anatomy (module docstring)
        return _training_dynamics(cfg)


def _training_dynamics(cfg: Profile) -> dict[str, pd.DataFrame]:
    """`training_dynamics`' work, in the caller's thread setting."""
    st, ft = cfg.anatomy, cfg.finetune
    layout = Layout.of(cfg)
    layout.anatomy.mkdir(parents=True, exist_ok=True)
    log = training_logs(cfg)
    if log.empty:
        raise FileNotFoundError(f"{layout.adapters}: no finished runs (train the grid first)")
    mix = training_mix(log)
    out = {"gradient_mass": gradient_mass(log), "weight_mix": mix.assign(shift=mix["weighted_share"] - mix["share"])}
    data = _split_data(cfg)
    items = [it for it in grid_items(cfg) if is_finished(it["run_dir"])]
    adapter = ft.adapter
    first = next((it for it in items if it["arm"] == "eisbach" and it["adapter"] == adapter), None)
    t_grid = np.round(np.linspace(0.05, 0.95, st.t_points), 3).tolist()
    parts = []
    if first is not None:
        ckpts, final = run_steps(first["run_dir"])  # the run's own record, not the profile
        for step in [*ckpts, final]:
            m = load_run_model(cfg, first["run_dir"], step=None if step == final else step)
            parts.append(entropy_vs_t(m, data, t_grid, n_clips=min(len(data), st.clips), lam=ft.lam,
                                      seed=cfg.seed).assign(stage=f"step {step}", run=first["run_dir"].name))
    out["entropy_vs_t_checkpoints"] = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    finals = {Path(it["run_dir"]).name: it["run_dir"] for it in items if it["adapter"] == adapter}
    out["output_distances"] = output_distances(cfg, finals, _split_data(cfg, "reference"),
                                               n_clips=st.distance_clips, seed=cfg.seed)
    for name, df in out.items():
        df.to_csv(layout.anatomy_table(name), index=False)
    return out


# --------------------------------------------------------------------------------------------
# What the notebooks show (00, 01, 02, 04): tables and curves from the files above

TEXTURE_ORDER = ("sustained", "mixed", "plucked", "percussive")


def texture_order(df: pd.DataFrame) -> list[str]:
    """The texture classes present in `df["texture"]`, flattest first (TEXTURE_ORDER)."""
    present = set(df["texture"])
    return [t for t in TEXTURE_ORDER if t in present]


def corpus_flatness(cfg: Profile, manifest: pd.DataFrame) -> pd.DataFrame:
    """The corpus manifest with each clip's `temporal_flatness` (`clip_flatness`) as column
    `flatness`; id, split, texture and flatness also written to <runs_dir>/corpus/flatness.csv."""
    layout = Layout.of(cfg)
    out = manifest.copy()
    out["flatness"] = clip_flatness(out, layout.corpus)
    out[["id", "split", "texture", "flatness"]].to_csv(layout.corpus_flatness, index=False)
    return out


def flatness_medians(df: pd.DataFrame) -> pd.DataFrame:
    """The median `flatness` per texture class: one column, "median flatness"."""
    return df.groupby("texture")["flatness"].median().to_frame("median flatness")


def loss_by_step(log: pd.DataFrame, by: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """The mean training loss per step (per `by` group and step), with `loss_smooth`: its rolling mean
    over a window of 1/20 of the group's steps (at least 1). Columns: *by, step, loss, loss_smooth."""
    by = list(by)
    smooth = lambda s: s.rolling(max(1, len(s) // 20), min_periods=1).mean()  # noqa: E731
    out = log.groupby([*by, "step"])["loss"].mean().reset_index()
    out["loss_smooth"] = out.groupby(by)["loss"].transform(smooth) if by else smooth(out["loss"])
    return out


def seed_bands(per_step: pd.DataFrame, value: str = "loss_smooth", by: str = "arm", unit: str = "seed",
               level: float = 0.95) -> pd.DataFrame:
    """Per `by` group and step: the mean of `value` over the units (seeds) and its t interval,
    mean ± t_{n−1, (1+level)/2} · sd/√n (n units; a single unit gives lo = hi = mean). The seed is the
    unit of replication, so the band says where a new seed's curve would centre; it is exact arithmetic,
    not a bootstrap (seaborn's bootstrapped band over 48 runs × 200 steps took 40 s of notebook 04)."""
    g = per_step.groupby([by, "step"])[value]
    out = g.agg(mean="mean", sd="std", n="count").reset_index()
    half = scipy.stats.t.ppf((1 + level) / 2, np.maximum(out["n"] - 1, 1)) * out["sd"].fillna(0.0) / np.sqrt(out["n"])
    return out.assign(lo=out["mean"] - half, hi=out["mean"] + half).drop(columns="sd")


def texture_weight_table(wbc: pd.DataFrame) -> pd.DataFrame:
    """Per texture class of `weights_by_clip`: mean weight, mean flatness and clip count (3 decimals)."""
    return wbc.groupby("texture").agg(mean_w=("w", "mean"), mean_flatness=("flatness", "mean"),
                                      clips=("w", "size")).round(3)


def cosine_table(gc: pd.DataFrame) -> pd.DataFrame:
    """`grad_cosines` summarised: mean, min and max cosine per arm, one column group per kind (6 decimals)."""
    return gc.groupby(["arm", "kind"])["cos"].agg(["mean", "min", "max"]).unstack("kind").round(6)


def training_phase(log: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """The training log with `phase`: its steps cut into min(n, distinct steps) equal-width bins (0, 1, ...)."""
    return log.assign(phase=pd.cut(log["step"], bins=min(n, log["step"].nunique()), labels=False))


def flat_share(mass: pd.DataFrame, texture: str = "sustained") -> pd.DataFrame:
    """The share of gradient mass (`gradient_mass`) on one texture class, per run and phase."""
    return mass[mass["texture"] == texture].groupby(["run", "arm", "seed", "phase"], as_index=False)["share"].sum()


def mix_table(mix: pd.DataFrame) -> pd.DataFrame:
    """The effective training mix (`weight_mix`): mean, sd and count of `shift` per arm and texture (4 decimals)."""
    return mix.groupby(["arm", "texture"])["shift"].agg(["mean", "std", "count"]).round(4)


def entropy_stages(cfg: Profile, checkpoints: pd.DataFrame) -> pd.DataFrame:
    """Entropy against noise level at every stage: the base model's anatomy/entropy_vs_t.csv
    followed by the checkpoints' table (`training_dynamics`' entropy_vs_t_checkpoints)."""
    base = pd.read_csv(Layout.of(cfg).anatomy_table("entropy_vs_t"))
    return pd.concat([base, checkpoints], ignore_index=True)


def distance_matrix(dist: pd.DataFrame) -> pd.DataFrame:
    """The symmetric matrix of `output_distances` (columns a, b, distance) over the sorted model
    names, 0 on the diagonal."""
    names = sorted(set(dist["a"]) | set(dist["b"]))
    mat = pd.DataFrame(0.0, index=names, columns=names)
    for a, b, d in dist[["a", "b", "distance"]].itertuples(index=False):
        mat.loc[a, b] = mat.loc[b, a] = d
    return mat
