"""Helpers that several test modules share: tiny training data and profiles, and a tiny listening study.

No test module imports another test module: what two of them need lives here (or, as a fixture, in
conftest.py). A test module imports this one as `from helpers import ...`, the way conftest.py
imports runs_guard and series_run: tests/ has no __init__.py, so pytest's default import mode
("prepend", rootdir-based) puts tests/ itself at the front of sys.path when it loads conftest.py and
each test module; no test file edits sys.path.

- `smoke_at`: the smoke profile with its runs in a temporary folder (and dotted overrides).
- `synth`, `tiny_cfg`, C/T/L/D: a tiny pre-encoded corpus and the profile of a 1-block DiT on the CPU
  (test_train, test_train_step, test_anatomy_progress, test_distributed and its worker processes).
- `tiny_samples`, `page_csv`, `prefer`: a samples manifest of short synthetic WAVs and the CSV the
  study page downloads (test_listen_study, test_cli_docs, test_listen_browser).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
import yaml

from eisbach_lib.cache import PreEncoded
from eisbach_lib.config import CONFIGS, Profile, from_mapping, load_profile
from eisbach_lib.study_design import PAGE_COLUMNS

# ------------------------------------------------------------------------------------ tiny training

#: latent channels, latent frames, text tokens, text width of `synth`'s corpus
C, T, L, D = 8, 24, 6, 16


def synth(n: int, split: str = "finetune", seed: int = 0) -> PreEncoded:
    """A tiny corpus: random latents with some padded frames, variable-length token masks, textures."""
    g = torch.Generator().manual_seed(seed)
    frame_mask = torch.ones(n, T, dtype=torch.bool)
    frame_mask[::3, T - 5:] = False
    token_mask = torch.zeros(n, L, dtype=torch.bool)
    for i in range(n):
        token_mask[i, : 2 + i % 4] = True
    manifest = pd.DataFrame({"id": [f"{split}_{i:03d}" for i in range(n)], "split": split, "caption": "c",
                             "texture": [("sustained", "plucked", "percussive")[i % 3] for i in range(n)]})
    return PreEncoded(torch.randn(n, C, T, generator=g), frame_mask, torch.randn(n, L, D, generator=g), token_mask,
                      torch.full((n,), 4.0), manifest)


def smoke_at(runs_dir: Path, overrides: dict | None = None, path: Path | None = None) -> Profile:
    """The smoke profile with its runs (and figures) under `runs_dir`; `overrides` (dotted keys) on top;
    `path` the file it says it came from (default configs/smoke.yaml)."""
    where = {"runs_dir": str(runs_dir), "figures_dir": str(Path(runs_dir) / "figures")}
    if path is None:
        return load_profile("smoke", {**where, **(overrides or {})})
    return from_mapping(yaml.safe_load((CONFIGS / "smoke.yaml").read_text()), path, {**where, **(overrides or {})})


def tiny_cfg(runs_dir: Path, overrides: dict | None = None) -> Profile:
    """The smoke profile with a 1-block, 32-wide DiT trained for a few steps on `synth` data, its runs
    under `runs_dir`; `overrides` (dotted keys) on top."""
    return load_profile("smoke", {
        "name": "test", "runs_dir": str(runs_dir), "figures_dir": str(Path(runs_dir) / "figures"), "device": "cpu",
        "model": {"base_dir": None, "embed_dim": 32, "depth": 1, "num_heads": 2, "ff_mult": 2.0,
                  "num_memory_tokens": 0, "patch_size": 1},
        "pretrain": {"steps": 6, "batch_size": 4, "lr": 1e-3, "cond_dropout": 0.2, "checkpoints": [3]},
        "finetune": {"steps": 8, "batch_size": 4, "lr": 1e-3, "betas": [0.9, 0.95], "adapters": ["dora"], "rank": 4,
                     "alpha": 4, "arms": ["none", "eisbach", "eisbach_shuffle"], "seeds": [0, 1], "lam": 0.5,
                     "timesteps": "trunc_logit_normal", "ot": "exact", "cond_dropout": 0.3, "checkpoints": [3, 6],
                     "log_every": 1},
        **(overrides or {})})


# ------------------------------------------------------------------------------- a tiny listening study


def tiny_samples(runs, arms=("none", "eisbach"), seeds=(0, 1), prompts=(0, 1, 2), samples=(0,), seconds=1.0,
                 sr=16000, step=20):
    """A samples manifest with short synthetic WAVs under `runs` (paths relative to it, as generate writes)."""
    rows = []
    for arm in arms:
        for seed in seeds:
            run = f"dora_{arm}_s{seed}"
            for p in prompts:
                for s in samples:
                    rel = f"samples/{run}/step_final/p{p:02d}_s{s}.wav"
                    path = Path(runs) / rel
                    path.parent.mkdir(parents=True, exist_ok=True)
                    t = np.arange(int(seconds * sr)) / sr
                    y = 0.2 * np.sin(2 * np.pi * (220 * (1 + p) + 5 * seed + 3 * s) * t) * (1 + 0.3 * np.sin(4 * np.pi * t))
                    sf.write(path, y.astype(np.float32), sr, subtype="FLOAT")
                    rows.append({"run": run, "adapter": "dora", "arm": arm, "seed": seed, "step": step, "prompt_id": p,
                                 "caption": f"caption {p}", "sample": s, "path": rel})
    m = pd.DataFrame(rows)
    m.to_csv(Path(runs) / "samples" / "manifest.csv", index=False)
    return m


def page_csv(path, doc, rater, choose, study_id=None):
    """A CSV as the page downloads it: `choose(trial_row, question) -> (choice, clip_at_a)`."""
    rows = []
    for p in doc["pairs"].to_dict("records"):
        choice, at_a = choose(p, p["question"])
        rows.append({"study_id": study_id or doc["study_id"], "rater": rater, "pair_id": p["pair_id"],
                     "question": p["question"], "choice": choice, "clip_at_a": at_a,
                     "timestamp": "2026-12-01T07:00:00.000Z"})
    pd.DataFrame(rows, columns=list(PAGE_COLUMNS)).to_csv(path, index=False)
    return path


def prefer(arm):
    """A page answer that prefers `arm`'s clip (clip 1 at A), else the other arm (anchor: the original)."""
    def choose(p, q):
        first = p["arm_a"] if p["page_first"] == "a" else p["arm_b"]
        if p["is_catch"]:
            return ("A" if first == p["arm_a"] else "B"), 1
        return ("A" if first == arm else "B"), 1
    return choose
