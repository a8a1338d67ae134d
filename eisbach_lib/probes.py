"""Probes of a model on a corpus that the barrier's anatomy and the `constant` control arm share.

- `weights_by_clip`: each clip's mean `eisbach` weight (and entropy) over training-distribution
  timesteps under a model; anatomy.barrier_anatomy reports it for claim C2;
- `constant_weight`: the `constant` arm's weight (train.py), the finetune split's mean of
  `weights_by_clip` under the base model, cached in <runs_dir>/anatomy/constant_weight.json under a
  key made of the base weights' and the data's content hashes (`base_fingerprint`,
  `data_content_hash`) and the estimate's settings;
- `_forward` (the model's velocity on noised clips) and `_tick` (a step on an optional progress
  counter), which anatomy.py's other probes use too.

Below train.py and anatomy.py, so the training loop no longer imports the anatomy.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pandas as pd
import torch

from .config import Profile
from .barrier import barrier_weights, temporal_entropy
from .cache import PreEncoded
from .files import atomic_text
from .flow import noise_data, sample_timesteps, velocity_target
from .layout import Layout
from .progress import Progress
from .runs import base_dir_for


def _tick(bar: Progress | None, n: int = 1) -> None:
    """Count n steps on the anatomy's progress counter, if there is one."""
    if bar is not None:
        bar.update(n)


def _forward(model, data: PreEncoded, idx: torch.Tensor, t: torch.Tensor, noise: torch.Tensor):
    """(v, target, frame mask) for clips `idx` noised to times t with the given noise."""
    x0 = data.latents[idx]
    xt = noise_data(x0, noise, t)
    v = model(xt, t, data.tokens[idx], data.token_mask[idx], data.seconds[idx])
    return v, velocity_target(x0, noise), data.frame_mask[idx]


@torch.no_grad()
def weights_by_clip(model, data: PreEncoded, n_t: int = 8, lam: float = 0.5, seed: int = 0,
                    batch_size: int = 32, timesteps: str = "trunc_logit_normal",
                    bar: Progress | None = None) -> pd.DataFrame:
    """Each clip's mean barrier weight over `n_t` training-distribution timesteps (claim C2).
    Columns: id, texture, h, w (means over t). One `bar` step per forward pass; without `bar` it
    shows its own counter (`constant_weight` calls it alone)."""
    g = torch.Generator().manual_seed(seed)
    h_sum, w_sum = torch.zeros(len(data)), torch.zeros(len(data))
    own = bar is None
    if own:
        bar = Progress(total=n_t * math.ceil(len(data) / batch_size), desc="weights by clip", unit="batch")
    for _ in range(n_t):
        for k in range(0, len(data), batch_size):
            idx = torch.arange(k, min(k + batch_size, len(data)))
            t = sample_timesteps(len(idx), timesteps, generator=g)
            noise = torch.randn(data.latents[idx].shape, generator=g)
            v, _, mask = _forward(model, data, idx, t, noise)
            h_sum[idx] += temporal_entropy(v, mask)
            w_sum[idx] += barrier_weights(v, "eisbach", lam=lam, mask=mask)
            _tick(bar)
    if own:
        bar.close()
    df = data.manifest[["id"]].copy()
    df["texture"] = data.manifest["texture"] if "texture" in data.manifest else ""
    df["h"], df["w"] = (h_sum / n_t).numpy(), (w_sum / n_t).numpy()
    return df


CONSTANT_N_T = 8  # timesteps per clip in the constant arm's estimate (as notebook 02's weights_by_clip)
BASE_SUBFOLDERS = ("transformer", "duration_embedder")  # the folders models.load_base reads
_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def _file_sha(path: Path) -> str:
    """sha256 of a file's bytes, memoised per process by (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _FILE_HASHES[key] = h.hexdigest()
    return _FILE_HASHES[key]


def base_fingerprint(base: str | Path) -> str:
    """A short hash of what models.load_base reads: every *.safetensors / *.json file in
    `base`/transformer and `base`/duration_embedder (relative path and content). A Stable Audio 3
    directory's VAE and text encoder are not part of it, nor are a base run's checkpoints and logs."""
    base = Path(base)
    files = sorted(p for sub in BASE_SUBFOLDERS if (base / sub).is_dir() for p in (base / sub).rglob("*")
                   if p.is_file() and p.suffix in (".safetensors", ".json"))
    if not files:
        raise FileNotFoundError(f"{base}: no model files (*.safetensors, *.json in {', '.join(BASE_SUBFOLDERS)}) "
                                "to fingerprint")
    blob = "\n".join(f"{p.relative_to(base).as_posix()} {_file_sha(p)}" for p in files)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def data_content_hash(data: PreEncoded) -> str:
    """A short hash of the clip ids and every tensor's bytes (latents change with the codec, ids do not)."""
    h = hashlib.sha256(json.dumps(list(map(str, data.manifest["id"]))).encode())
    for x in (data.latents, data.frame_mask, data.tokens, data.token_mask, data.seconds):
        x = x.detach().cpu().contiguous()
        h.update(str((tuple(x.shape), str(x.dtype))).encode())
        h.update(x.view(torch.uint8).numpy().tobytes() if x.dtype != torch.bool else x.numpy().tobytes())
    return h.hexdigest()[:16]


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_text(path, text)


def constant_weight(cfg: Profile, data: PreEncoded, base_dir: str | Path | None = None, lam: float = 0.5,
                    timesteps: str = "trunc_logit_normal", progress: bool = False) -> dict:
    """The `constant` arm's weight: c = mean over the clips of `data` (the fine-tuning split) of each
    clip's mean `eisbach` weight under the base model over CONSTANT_N_T training-distribution
    timesteps (`weights_by_clip` with seed = the profile seed, on the CPU, float32).

    Computed once per (base weights, data content, λ, timestep distribution, n_t, seed) and cached in
    <runs_dir>/anatomy/constant_weight.json ({key: entry}); returns the entry: weight, key, by_texture,
    n_clips, n_t, lam, timesteps, seed, base, base_hash, data_hash."""
    from .models import load_base  # heavy: diffusers (.models imports it)

    base = base_dir_for(cfg, base_dir)
    seed = cfg.seed
    parts = {"base_hash": base_fingerprint(base), "data_hash": data_content_hash(data), "lam": float(lam),
             "timesteps": str(timesteps), "n_t": CONSTANT_N_T, "seed": seed}
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
    path = Layout.of(cfg).constant_weight
    cache = json.loads(path.read_text()) if path.exists() else {}
    if key in cache:
        return cache[key]
    model = load_base(base).eval()
    wbc = weights_by_clip(model, data, n_t=CONSTANT_N_T, lam=float(lam), seed=seed, timesteps=str(timesteps))
    entry = {"weight": float(wbc["w"].mean()), "key": key, "n_clips": len(wbc), "base": str(base.resolve()), **parts,
             "by_texture": {str(k): float(v) for k, v in wbc.groupby("texture")["w"].mean().items()}}
    if not entry["weight"] > 0:
        raise ValueError(f"constant_weight: the mean eisbach weight of {len(wbc)} clips is {entry['weight']!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    cache = json.loads(path.read_text()) if path.exists() else {}  # another process may have added entries
    cache[key] = entry
    _atomic_write_text(path, json.dumps(cache, indent=2, sort_keys=True))
    if progress:
        print(f"constant arm: w = {entry['weight']:.4f} (mean eisbach weight of {len(wbc)} clips), cached in {path}")
    return entry
