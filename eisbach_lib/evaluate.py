"""Metrics over the generation grid: per-clip metrics, set metrics, then the scorecard.

Files (all under <runs_dir>/metrics/): clips.parquet (one row per generated clip: manifest
columns + motif_recurrence, novelty_sections, spectral_contrast, temporal_flatness, emb_*),
reference.parquet (the same for the corpus `reference` split), intra.csv (intra-prompt Vendi per
run/step/prompt), runs.csv (inter-prompt Vendi and Fréchet distance to the reference per run/step).
Per-clip metrics are cached by path, so re-running only computes new clips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import fit_standardizer, frechet_distance, metrics_table, standardize, vendi_score

PER_CLIP = ("motif_recurrence", "novelty_sections", "spectral_contrast", "temporal_flatness")


def _emb_cols(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith("emb_")]


def clip_metrics(cfg: dict, samples: pd.DataFrame, n_jobs: int = 2) -> pd.DataFrame:
    """Per-clip metrics for every row of the samples manifest (cached in clips.parquet by path)."""
    out = Path(cfg["runs_dir"]) / "metrics" / "clips.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    done = pd.read_parquet(out) if out.exists() else pd.DataFrame(columns=["path"])
    todo = samples[~samples["path"].isin(set(done["path"]))]
    if len(todo):
        paths = [str(Path(cfg["runs_dir"]) / p) for p in todo["path"]]
        m = metrics_table(paths, sr=None, n_jobs=n_jobs).drop(columns=["path"], errors="ignore")
        new = pd.concat([todo.reset_index(drop=True), m.reset_index(drop=True)], axis=1)
        done = pd.concat([done, new], ignore_index=True) if len(done) else new
        done.to_parquet(out.with_suffix(".tmp"), index=False)
        out.with_suffix(".tmp").replace(out)
    keep = samples[["path"]].merge(done, on="path", how="left", suffixes=("_x", ""))
    return keep[[c for c in keep.columns if not c.endswith("_x")]]


def reference_metrics(cfg: dict, n_jobs: int = 2) -> pd.DataFrame:
    """Per-clip metrics of the corpus `reference` split (cached in reference.parquet)."""
    out = Path(cfg["runs_dir"]) / "metrics" / "reference.parquet"
    if out.exists():
        return pd.read_parquet(out)
    corpus = Path(cfg["runs_dir"]) / "corpus"
    man = pd.read_csv(corpus / "manifest.csv", keep_default_na=False)
    ref = man[man["split"] == "reference"].reset_index(drop=True)
    m = metrics_table([str(corpus / p) for p in ref["path"]], sr=None, n_jobs=n_jobs).drop(columns=["path"], errors="ignore")
    df = pd.concat([ref, m], axis=1)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(out, index=False)
    return df


def set_metrics(clips: pd.DataFrame, reference: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Intra-prompt Vendi (per run, step, prompt) and inter-prompt Vendi + FD to the reference
    (per run, step), on embeddings standardised with the reference split's mean and std."""
    cols = _emb_cols(reference)
    mean, std = fit_standardizer(reference[cols].to_numpy())
    ref_z = standardize(reference[cols].to_numpy(), mean, std)
    z = standardize(clips[cols].to_numpy(), mean, std)
    keys = ["run", "adapter", "arm", "seed", "step"]
    intra, runs = [], []
    for key, g in clips.groupby(keys, sort=False):
        zg = z[g.index.to_numpy()]
        for pid, gp in g.groupby("prompt_id"):
            intra.append({**dict(zip(keys, key)), "prompt_id": pid,
                          "vendi_intra": vendi_score(z[gp.index.to_numpy()])})
        prompt_means = np.stack([z[gp.index.to_numpy()].mean(0) for _, gp in g.groupby("prompt_id")])
        runs.append({**dict(zip(keys, key)), "vendi_inter": vendi_score(prompt_means),
                     "fd_ref": frechet_distance(zg, ref_z)})
    return pd.DataFrame(intra), pd.DataFrame(runs)


def evaluate(cfg: dict, n_jobs: int = 2) -> pd.DataFrame:
    """Metrics for every generated clip, the set metrics, and the scorecard (returned, and written
    to <figures_dir>/scorecard.csv and .md)."""
    from .scorecard import build_scorecard, write_scorecard

    mdir = Path(cfg["runs_dir"]) / "metrics"
    samples = pd.read_csv(Path(cfg["runs_dir"]) / "samples" / "manifest.csv", keep_default_na=False)
    clips = clip_metrics(cfg, samples, n_jobs=n_jobs).reset_index(drop=True)
    reference = reference_metrics(cfg, n_jobs=n_jobs)
    intra, runs = set_metrics(clips, reference)
    intra.to_csv(mdir / "intra.csv", index=False)
    runs.to_csv(mdir / "runs.csv", index=False)
    card = build_scorecard(cfg)
    write_scorecard(card, Path(cfg["figures_dir"]))
    return card
