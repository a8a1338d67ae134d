"""Metrics over the generation grid: per-clip metrics, set metrics, ceilings, then the scorecard.

Files (all under <runs_dir>/metrics/, named in layout.METRICS_TABLES; `write_metrics` returns them as one
`tables.Tables`, the object the scorecard reads):
  clips.parquet                one row per generated clip: manifest columns + PER_CLIP + emb_* +
                               metrics_version (cached by path; rows of another metrics_version are
                               recomputed, never mixed with new ones)
  reference.parquet            the corpus `reference` split as rendered (raw audio): manifest columns
                               + PER_CLIP + emb_* + metrics_version + audio ("raw") + codec ("")
  reference_roundtrip.parquet  the same clips as the outcome metrics read the generations, through the
                               profile's codec: for the embedded codec its log-mel (the pre-encoded
                               latents, `analysis_of` = "log-mel"), for an audio codec the encode →
                               decode round trip (audio = "audio"); every fidelity and set metric
                               compares with it; codec = the codec's cache key, clip length and analysis
  vendi_bandwidth.json         the Vendi kernel bandwidth, fixed once from the reference through the
                               codec (median pairwise distance of its standardised embeddings)
  intra.csv                    run, adapter, arm, seed, step, prompt_id, vendi_intra
  runs.csv                     run, adapter, arm, seed, step, n_clips, vendi_inter, fd_ref, kid_ref
                               (FD and KID to the reference through the codec)
  ceiling.csv                  `ceiling_rows`: what FD / KID / Vendi read when nothing differs
                               (reference half A vs half B) and what the codec alone does (raw vs
                               codec reference)
  structure_validation.csv     `validation.structure_validation(cfg)` (win rates of the structural
                               metrics against bar-shuffles at the profile's clip length)
  readout_validation.csv       the texture readout's validation rows (`readout.validation_rows`; absent
                               when the corpus has no texture labels)
  arm_summary.csv,             `arm_means` and `differences_to_none` (notebook 06 and `evaluate`)
  paired_differences.csv

`evaluate` reads what earlier stages wrote and recomputes none of it: a missing samples manifest or
anatomy table (layout.ANATOMY_TABLES) stops it with the file and the command that writes it
(`check_upstream`).

Embeddings are standardised with the mean and std of the reference through the codec (the domain the
generations live in) before any set metric. The embedded codec's clips are read from their log-mel
(`analysis_of`): no Griffin-Lim phase estimate sits between the model and the metrics, and only the
clips someone listens to are decoded (`generate.decode_clip`).
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .config import Profile
from .datasets import codec_for, fit_length, load_corpus, read_audio, read_manifest
from .files import atomic_write
from .layout import ANATOMY_TABLES, Layout
from .metrics import (AUDIO, LOG_MEL, METRICS_VERSION, analysis_of, fit_standardizer, fit_vendi_bandwidth, frechet_distance, kid,
                      magnitude_table, metrics_table, standardize, vendi_score)
from .readout import fit_readout, sample_latents_for, sample_textures, validation_rows
from .scorecard import build_scorecard, metric_direction, metric_sesoi, outcome_diffs, write_scorecard
from .stats import paired_verdict
from .tables import Tables, final_rows
from .validation import structure_validation
from .workers import one_thread

PER_CLIP = ("motif_recurrence", "novelty_sections", "spectral_contrast", "temporal_flatness")
ROUNDTRIP_SEED = 4321  # base seed of the Griffin-Lim initial phases of the reference round trip
ROUNDTRIP_BATCH = 16


def _emb_cols(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith("emb_")]


def _layout(cfg: Profile) -> Layout:
    """The profile's layout, its metrics folder created."""
    layout = Layout.of(cfg)
    layout.metrics.mkdir(parents=True, exist_ok=True)
    return layout


def _write(df: pd.DataFrame, out: Path) -> None:
    atomic_write(out, lambda tmp: df.to_parquet(tmp, index=False))


def codec_magnitude(codec, latents: np.ndarray) -> np.ndarray:
    """|S| [N, F, T] that latents [N, C, T] imply (`MelCodec.latents_to_magnitude`), on one torch
    thread (it runs inside the metrics workers)."""
    with one_thread():
        return codec.latents_to_magnitude(torch.from_numpy(np.ascontiguousarray(latents))).numpy()


def latent_metrics(cfg: Profile, codec, latents: np.ndarray, n_jobs: int = 2, desc: str = "metrics") -> pd.DataFrame:
    """The per-clip metrics of latents [N, C, T] on the log-mel path (`metrics.magnitude_table`), the
    clips' length being generate.seconds."""
    return magnitude_table(latents, partial(codec_magnitude, codec), int(codec.hop_length),
                           seconds=cfg.generate.seconds, n_jobs=n_jobs, desc=desc)


def clip_metrics(cfg: Profile, samples: pd.DataFrame, n_jobs: int = 2, codec=None) -> pd.DataFrame:
    """Per-clip metrics for every row of the samples manifest (cached in clips.parquet by path), read
    the codec's way (`analysis_of`): from each sample folder's latents.npy on the log-mel path, else
    from the decoded WAV files. Column `analysis` says which.

    A cached row counts only if its metrics_version equals metrics.METRICS_VERSION (a file written
    before versions existed has none) and its analysis is this codec's: other rows are dropped and
    recomputed, with a message. `codec`: default the profile's (`codec_for`)."""
    out = _layout(cfg).metrics_table("clips")
    codec = codec_for(cfg) if codec is None else codec
    analysis = analysis_of(codec)
    done = pd.read_parquet(out) if out.exists() else pd.DataFrame(columns=["path", "metrics_version", "analysis"])
    if "metrics_version" not in done.columns:
        done["metrics_version"] = -1
    if "analysis" not in done.columns:
        done["analysis"] = AUDIO
    stale = (done["metrics_version"] != METRICS_VERSION) | (done["analysis"] != analysis)
    if stale.any():
        print(f"{out}: {int(stale.sum())} cached rows are from metrics version "
              f"{sorted(set(done.loc[stale, 'metrics_version']))} or analysis "
              f"{sorted(set(done.loc[stale, 'analysis']))}, not {METRICS_VERSION} / {analysis}: recomputing them")
        done = done[~stale].reset_index(drop=True)
    todo = samples[~samples["path"].isin(set(done["path"]))]
    if len(todo):
        if analysis == LOG_MEL:
            m = latent_metrics(cfg, codec, sample_latents_for(cfg, todo), n_jobs=n_jobs)
        else:
            runs = Layout.of(cfg).runs
            m = metrics_table([str(runs / p) for p in todo["path"]], sr=None, n_jobs=n_jobs)
        new = pd.concat([todo.reset_index(drop=True), m.drop(columns=["path"], errors="ignore")], axis=1)
        new["metrics_version"] = METRICS_VERSION
        new["analysis"] = analysis
        done = pd.concat([done, new], ignore_index=True) if len(done) else new
        _write(done, out)
    elif stale.any():
        _write(done, out)
    keep = samples[["path"]].merge(done, on="path", how="left", suffixes=("_x", ""))
    return keep[[c for c in keep.columns if not c.endswith("_x")]]


def _reference_manifest(cfg: Profile) -> tuple[Path, pd.DataFrame]:
    layout = Layout.of(cfg)
    corpus, path = layout.corpus, layout.corpus_manifest
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: build the corpus first (eisbach corpus --profile {cfg.name})")
    man = read_manifest(cfg)
    ref = man[man["split"] == "reference"].reset_index(drop=True)
    if len(ref) < 2:
        raise ValueError(f"{path}: the reference split has {len(ref)} clips; the set metrics need at least 2")
    return corpus, ref


def roundtrip_audio(codec, paths: list[str], seconds: float, seed: int = ROUNDTRIP_SEED,
                    batch_size: int = ROUNDTRIP_BATCH) -> np.ndarray:
    """Audio files passed through `codec`: read at codec.sample_rate, cut/padded to `seconds`,
    encoded and decoded in batches exactly as generations are decoded (`codec.decode(latents,
    generator)`, random initial Griffin-Lim phases from torch.Generator().manual_seed(seed + batch
    start)). Returns float32 [N, S] at codec.sample_rate (S = the decoder's length for `seconds`)."""
    sr = int(codec.sample_rate)
    n = int(round(float(seconds) * sr))
    out = []
    with torch.no_grad():
        for k in range(0, len(paths), batch_size):
            audio = np.stack([fit_length(read_audio(p, sr, duration=float(seconds)), n) for p in paths[k:k + batch_size]])
            lat = codec.encode(torch.from_numpy(audio.astype(np.float32)))
            y = codec.decode(lat.float(), generator=torch.Generator().manual_seed(seed + k))
            out.append(y.detach().float().cpu().numpy())
    return np.concatenate(out, axis=0)


def _codec_key(codec) -> str:
    return str(getattr(codec, "cache_key", repr(codec)))


def _cached(out: Path, paths: pd.Series, codec_key: str) -> pd.DataFrame | None:
    """The cached reference table if it holds exactly these clip paths, in order, of this metrics
    version and codec (key), else None."""
    if not out.exists():
        return None
    df = pd.read_parquet(out)
    ok = ("path" in df.columns and df["path"].tolist() == paths.tolist()
          and "metrics_version" in df.columns and "codec" in df.columns
          and (df["metrics_version"] == METRICS_VERSION).all() and (df["codec"] == codec_key).all())
    if not ok:
        print(f"{out}: cached with another metrics version, codec or clip set: recomputing")
    return df if ok else None


def reference_metrics(cfg: Profile, n_jobs: int = 2, roundtrip: bool = True, codec=None) -> pd.DataFrame:
    """Per-clip metrics of the corpus `reference` split: through the profile's codec as the generations
    are read (default; its log-mel for the embedded codec, `analysis_of`, else the encode → decode
    round trip; cached in reference_roundtrip.parquet) or as rendered (roundtrip=False;
    reference.parquet), so fidelity compares like with like (the Griffin-Lim round trip alone moved
    spectral contrast by 5.2 dB; the log-mel reading by 31.9 dB).
    The codec call also (re)writes vendi_bandwidth.json (`vendi_bandwidth`, a few ms)."""
    corpus, ref = _reference_manifest(cfg)
    layout = _layout(cfg)
    if not roundtrip:
        out = layout.metrics_table("raw")
        df = _cached(out, ref["path"], "")
        if df is None:
            m = metrics_table([str(corpus / p) for p in ref["path"]], sr=None, n_jobs=n_jobs)
            df = pd.concat([ref, m], axis=1).assign(metrics_version=METRICS_VERSION, audio="raw", codec="")
            _write(df, out)
        return df
    if codec is None:
        codec = codec_for(cfg)
    seconds, analysis = cfg.generate.seconds, analysis_of(codec)
    key, out = f"{_codec_key(codec)} seconds={seconds} analysis={analysis}", layout.metrics_table("reference")
    df = _cached(out, ref["path"], key)
    if df is None:
        t0 = time.perf_counter()
        if analysis == LOG_MEL:
            m = latent_metrics(cfg, codec, reference_latents(cfg, ref, codec), n_jobs=n_jobs, desc="reference metrics")
            print(f"reference through the codec: {len(ref)} clips read from their log-mel, {time.perf_counter() - t0:.1f} s")
        else:
            audio = roundtrip_audio(codec, [str(corpus / p) for p in ref["path"]], seconds)
            t1 = time.perf_counter()
            m = metrics_table(list(audio), sr=int(codec.sample_rate), n_jobs=n_jobs)
            print(f"reference round trip: {len(ref)} clips, codec {t1 - t0:.1f} s, metrics {time.perf_counter() - t1:.1f} s")
        df = pd.concat([ref, m], axis=1).assign(metrics_version=METRICS_VERSION, audio=analysis, codec=key)
        _write(df, out)
    vendi_bandwidth(cfg, df)  # (re)written with the reference it is fitted on: a few ms
    return df


def reference_latents(cfg: Profile, ref: pd.DataFrame, codec) -> np.ndarray:
    """The latents [N, C, T] of the reference clips `ref` (by id, in its order) from the pre-encoded
    corpus cache, cut to the generated clips' length (codec.frames(generate.seconds)): the
    reference's log-mel, which the log-mel path reads as it reads the generated one."""
    pe = load_corpus(cfg).split("reference")
    row = {str(i): k for k, i in enumerate(pe.manifest["id"].astype(str))}
    missing = [i for i in ref["id"].astype(str) if i not in row]
    if missing:
        raise ValueError(f"the pre-encoded cache has no latents for {len(missing)} reference clips, e.g. {missing[0]}")
    n = codec.frames(cfg.generate.seconds)
    lat = pe.latents.numpy()[[row[i] for i in ref["id"].astype(str)]]
    if lat.shape[-1] < n:
        raise ValueError(f"the corpus clips ({lat.shape[-1]} frames) are shorter than generate.seconds ({n} frames)")
    return lat[..., :n]


def standardizer(reference: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the reference embeddings (the reference through the codec in `evaluate`)."""
    return fit_standardizer(reference[_emb_cols(reference)].to_numpy())


def vendi_bandwidth(cfg: Profile, reference: pd.DataFrame) -> float:
    """The Vendi bandwidth of the run: median pairwise distance of the standardised reference
    embeddings (`metrics.fit_vendi_bandwidth`), written to <runs_dir>/metrics/vendi_bandwidth.json
    with how it was fixed. Deterministic from the reference, so `set_metrics(clips, reference)`
    without a bandwidth computes the same value."""
    mean, std = standardizer(reference)
    z = standardize(reference[_emb_cols(reference)].to_numpy(), mean, std)
    sigma = fit_vendi_bandwidth(z)
    info = {"bandwidth": sigma, "rule": "median pairwise Euclidean distance of the standardised reference embeddings",
            "reference": str(reference["audio"].iloc[0]) if "audio" in reference.columns else "unknown",
            "n_reference": int(len(reference)), "dim": int(z.shape[1]), "metrics_version": METRICS_VERSION}
    _layout(cfg).vendi_bandwidth.write_text(json.dumps(info, indent=2))
    return sigma


def set_metrics(clips: pd.DataFrame, reference: pd.DataFrame,
                bandwidth: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Intra-prompt Vendi (per run, step, prompt) and, per run, step and prompt set (`set`, when the
    clips have it: FD to the reference must not pool card and unconditional clips with the primary
    ones), inter-prompt Vendi (of the prompt-mean embeddings), FD and KID to the reference, on
    embeddings standardised with the reference's mean and std. `bandwidth` None: fit it on the
    reference (as `vendi_bandwidth`)."""
    cols = _emb_cols(reference)
    mean, std = fit_standardizer(reference[cols].to_numpy())
    ref_z = standardize(reference[cols].to_numpy(), mean, std)
    sigma = fit_vendi_bandwidth(ref_z) if bandwidth is None else float(bandwidth)
    z = standardize(clips[cols].to_numpy(), mean, std)
    keys = ["run", "adapter", "arm", "seed", "step"] + (["set"] if "set" in clips else [])  # per prompt set
    intra, runs = [], []
    for key, g in clips.groupby(keys, sort=False):
        zg = z[g.index.to_numpy()]
        for pid, gp in g.groupby("prompt_id"):
            intra.append({**dict(zip(keys, key)), "prompt_id": pid,
                          "vendi_intra": vendi_score(z[gp.index.to_numpy()], bandwidth=sigma)})
        prompt_means = np.stack([z[gp.index.to_numpy()].mean(0) for _, gp in g.groupby("prompt_id")])
        runs.append({**dict(zip(keys, key)), "n_clips": len(g), "vendi_inter": vendi_score(prompt_means, bandwidth=sigma),
                     "fd_ref": frechet_distance(zg, ref_z), "kid_ref": kid(zg, ref_z)})
    return pd.DataFrame(intra), pd.DataFrame(runs)


def _halves(reference: pd.DataFrame, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of two halves of the reference, split by source piece when the column exists
    (clips of one piece share material: splitting them would make the halves look too alike)."""
    groups = reference["source_piece"].to_numpy() if "source_piece" in reference.columns else np.arange(len(reference))
    uniq = rng.permutation(np.unique(groups))
    a = np.isin(groups, uniq[: len(uniq) // 2])
    return np.flatnonzero(a), np.flatnonzero(~a)


def ceiling_rows(raw: pd.DataFrame, roundtrip: pd.DataFrame, bandwidth: float | None = None,
                 n_splits: int = 20, seed: int = 0) -> pd.DataFrame:
    """The scorecard's ceiling rows: what the fidelity and diversity metrics read when nothing
    but sampling differs, and what the codec alone does. Embeddings standardised with the
    reference through the codec; Vendi bandwidth as `set_metrics`.

    Rows (column `comparison`), each with n_a, n_b, fd, kid, vendi_a, vendi_b, contrast_diff_db,
    flatness_diff and, for the half splits, the sd of each over `n_splits` random splits:
      reference A vs B (codec)  halves of the reference through the codec (its log-mel, or the audio
                                round trip), split by source piece, mean over the splits: the floor
                                FD / KID of two samples of one distribution;
      reference A vs B (raw)    the same on the raw reference;
      raw vs codec reference    the same clips as rendered and through the codec: FD, KID, and the mean
                                paired difference (codec − raw) of spectral contrast (dB) and temporal
                                flatness: how far the codec's side of the comparison sits from the audio.
    `raw` and `roundtrip` must list the same clips in the same order (rows matched by position)."""
    if len(raw) != len(roundtrip):
        raise ValueError(f"ceiling_rows: raw has {len(raw)} clips, roundtrip {len(roundtrip)}; they must match")
    cols = _emb_cols(roundtrip)
    mean, std = fit_standardizer(roundtrip[cols].to_numpy())
    z_rt, z_raw = standardize(roundtrip[cols].to_numpy(), mean, std), standardize(raw[cols].to_numpy(), mean, std)
    sigma = fit_vendi_bandwidth(z_rt) if bandwidth is None else float(bandwidth)
    rows = []
    for name, z, df in (("reference A vs B (codec)", z_rt, roundtrip), ("reference A vs B (raw)", z_raw, raw)):
        rng = np.random.default_rng(seed)
        vals = []
        for _ in range(n_splits):
            a, b = _halves(df, rng)
            vals.append({"n_a": len(a), "n_b": len(b), "fd": frechet_distance(z[a], z[b]), "kid": kid(z[a], z[b]),
                         "vendi_a": vendi_score(z[a], bandwidth=sigma), "vendi_b": vendi_score(z[b], bandwidth=sigma),
                         "contrast_diff_db": float(df["spectral_contrast"].iloc[b].mean() - df["spectral_contrast"].iloc[a].mean()),
                         "flatness_diff": float(df["temporal_flatness"].iloc[b].mean() - df["temporal_flatness"].iloc[a].mean())})
        v = pd.DataFrame(vals)
        rows.append({"comparison": name, **v.mean().to_dict(), **{f"{c}_sd": float(v[c].std()) for c in
                                                                   ("fd", "kid", "vendi_a", "vendi_b", "contrast_diff_db")},
                     "n_splits": n_splits})
    rows.append({"comparison": "raw vs codec reference", "n_a": len(raw), "n_b": len(roundtrip),
                 "fd": frechet_distance(z_raw, z_rt), "kid": kid(z_raw, z_rt),
                 "vendi_a": vendi_score(z_raw, bandwidth=sigma), "vendi_b": vendi_score(z_rt, bandwidth=sigma),
                 "contrast_diff_db": float((roundtrip["spectral_contrast"].to_numpy() - raw["spectral_contrast"].to_numpy()).mean()),
                 "flatness_diff": float((roundtrip["temporal_flatness"].to_numpy() - raw["temporal_flatness"].to_numpy()).mean()),
                 "n_splits": 0})
    return pd.DataFrame(rows)


READOUT = "flat_share"  # per clip: its contribution to the texture readout's flat share (PACC)


def readout_columns(cfg: Profile, samples: pd.DataFrame, reference: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.DataFrame]:
    """The texture readout (`readout.py`) of every generated clip (by `path`) and every reference clip
    (by `id`), and the readout's validation rows. Each clip's value is (p_flat − a)/(b − a), its
    contribution to the probabilistic adjusted count: the mean over any set of clips (a seed and
    prompt's samples, an arm) is that set's PACC flat share (`Readout.flat_share`), so paired
    differences and their sesoi live on the flat-share scale. Read from the latents the model made
    (latents.npy), never from decoded audio. A corpus without texture labels has no readout: empty
    results and a message; so does a readout that cannot tell flat clips apart (a corpus too small)."""
    try:
        readout = fit_readout(cfg)
        if not readout.b - readout.a > 1e-9:
            raise ValueError(f"the readout does not separate flat clips (out of fold: flat read {readout.b:.3f}, "
                             f"non-flat {readout.a:.3f}); too few or too alike base clips")
        validation = validation_rows(cfg, readout)
    except ValueError as e:  # no texture labels (musiccaps, a folder), or a corpus too small to learn them
        print(f"texture readout: none ({e})")
        return pd.Series(dtype=float), pd.Series(dtype=float), pd.DataFrame()
    gen = sample_textures(cfg, samples, readout)
    ref = load_corpus(cfg).split("reference")
    ref_p = readout.p_flat(readout.predict_proba(ref.latents.numpy()))
    ref_values = pd.Series(readout.clip_shares(ref_p), index=ref.manifest["id"].to_numpy())
    return (pd.Series(readout.clip_shares(gen["p_flat"]), index=gen["path"].to_numpy()),
            ref_values.reindex(reference["id"]).set_axis(reference.index), validation)


def write_metrics(cfg: Profile, n_jobs: int = 2, codec=None) -> Tables:
    """Every metrics file of the module docstring: per-clip metrics of the generations, the raw
    and codec reference, the Vendi bandwidth, intra.csv, runs.csv, ceiling.csv,
    readout_validation.csv and structure_validation.csv. Returns them as one `tables.Tables` (with
    the prompt table generate wrote and the bandwidth), the same tables `Tables.read` reads back from
    the files. Safe to re-run: cached files are reused. `codec`: default the profile's (`codec_for`)."""
    layout = _layout(cfg)
    samples = pd.read_csv(layout.samples_manifest, keep_default_na=False)
    clips = clip_metrics(cfg, samples, n_jobs=n_jobs, codec=codec).reset_index(drop=True)
    reference = reference_metrics(cfg, n_jobs=n_jobs, codec=codec)
    raw = reference_metrics(cfg, n_jobs=n_jobs, roundtrip=False)
    gen_read, ref_read, readout_validation = readout_columns(cfg, samples, reference)
    if len(gen_read):  # kept beside the cached metrics: recomputed from the latents on every call (seconds)
        clips[READOUT] = clips["path"].map(gen_read).to_numpy()
        reference = reference.assign(**{READOUT: ref_read.to_numpy()})
        _write(reference, layout.metrics_table("reference"))
        _write(clips, layout.metrics_table("clips"))
    if len(readout_validation):
        readout_validation.to_csv(layout.metrics_table("readout"), index=False)
    else:  # no readout this time: no validation rows from an earlier one either
        layout.metrics_table("readout").unlink(missing_ok=True)
    sigma = vendi_bandwidth(cfg, reference)
    intra, runs = set_metrics(clips, reference, bandwidth=sigma)
    intra.to_csv(layout.metrics_table("intra"), index=False)
    runs.to_csv(layout.metrics_table("runs"), index=False)
    ceiling = ceiling_rows(raw, reference, bandwidth=sigma)
    ceiling.to_csv(layout.metrics_table("ceiling"), index=False)
    structure = structure_validation(cfg)  # cached in layout.metrics_table("structure")
    prompts = pd.read_csv(layout.prompts, keep_default_na=False) if layout.prompts.exists() else None
    return Tables(clips=clips, reference=reference, raw=raw, intra=intra, runs=runs, ceiling=ceiling,
                  structure=structure, readout=readout_validation if len(readout_validation) else None,
                  prompts=prompts, bandwidth=sigma)


def upstream_inputs(cfg: Profile) -> list[tuple[Path, str]]:
    """What `evaluate` reads from the stages before it, besides the corpus, each with the `eisbach`
    command that writes it, in the order the commands run: the samples manifest (generate) and
    every anatomy table (layout.ANATOMY_TABLES: anatomy, then dynamics)."""
    layout = Layout.of(cfg)
    return [(layout.samples_manifest, "generate"), *((layout.anatomy_table(name), command)
                                                      for name, command in ANATOMY_TABLES.items())]


def check_upstream(cfg: Profile) -> None:
    """FileNotFoundError when a table of `upstream_inputs` is missing, naming the files and the
    command that writes them (e.g. `eisbach anatomy --profile smoke`). Nothing is recomputed here:
    the anatomy measures the base model and the dynamics reads every run's checkpoints, which are
    their own commands' work (and their notebooks', 02 and 04)."""
    missing: dict[str, list[Path]] = {}
    for path, command in upstream_inputs(cfg):
        if not path.exists():
            missing.setdefault(command, []).append(path)
    if missing:
        parts = [f"{paths[0]}{''.join(', ' + p.name for p in paths[1:])} (run `eisbach {command} --profile {cfg.name}`)"
                 for command, paths in missing.items()]
        raise FileNotFoundError("evaluate reads what earlier stages write, and this is missing: " + "; ".join(parts))


def evaluate(cfg: Profile, n_jobs: int = 2) -> pd.DataFrame:
    """The whole scorecard from the command line, no notebook needed: after `check_upstream` (the
    samples and the anatomy and dynamics tables must be there: `eisbach generate`, `eisbach anatomy`,
    `eisbach dynamics`), `write_metrics`, `arm_means` and `differences_to_none`, then the scorecard
    (returned, and written to <figures_dir>/scorecard.csv and .md)."""
    check_upstream(cfg)
    layout = Layout.of(cfg)
    tables = write_metrics(cfg, n_jobs=n_jobs)
    arm_means(cfg, tables)  # metrics/arm_summary.csv and paired_differences.csv, as notebook 06 writes them
    differences_to_none(cfg, tables)
    card = build_scorecard(cfg)
    write_scorecard(card, layout.figures)
    return card


# --------------------------------------------------------------------------------------------
# The summaries notebook 06 plots (also written by `evaluate`)


def final_tables(cfg: Profile, tables: Tables, prompt_set: str = "primary") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(clips, intra) of `write_metrics`: each run of the profile's first adapter at its own final step
    (as the scorecard reads them), on one prompt set (`set`; every row for tables without one)."""
    def pick(df: pd.DataFrame) -> pd.DataFrame:
        df = final_rows(df, cfg.finetune.adapter, base=False)
        return df[df["set"] == prompt_set] if "set" in df else df

    return pick(tables.clips), pick(tables.intra)


def arm_means(cfg: Profile, tables: Tables) -> pd.DataFrame:
    """Each arm's mean of every PER_CLIP metric and of vendi_intra at the final step, with its 95 % CI
    treating seeds and prompts as crossed random factors (`stats.paired_verdict` on the metric
    itself). Columns metric, arm, mean, lo, hi, seeds; also written to metrics/arm_summary.csv."""
    fc, fi = final_tables(cfg, tables)
    rows = []
    for metric, table in [*((m, fc) for m in (*PER_CLIP, READOUT) if m in fc), ("vendi_intra", fi)]:
        for arm, part in table.groupby("arm"):
            cells = part.groupby(["seed", "prompt_id"], as_index=False)[metric].mean().rename(columns={metric: "d"})
            r = paired_verdict(cells)
            rows.append({"metric": metric, "arm": arm, "mean": r["estimate"], "lo": r["ci_lo"], "hi": r["ci_hi"],
                         "seeds": r["n_seeds"]})
    summary = pd.DataFrame(rows)
    summary.to_csv(_layout(cfg).arm_summary, index=False)
    return summary


def differences_to_none(cfg: Profile, tables: Tables) -> pd.DataFrame:
    """Every arm but `none` against `none` at the final step, paired by seed and prompt, for every
    PER_CLIP metric and vendi_intra: difference, 95 % CI, MDE, the reference sesoi and the verdict
    (`stats.paired_verdict`, as the scorecard decides), read in the direction the scorecard gives the
    metric (`scorecard.metric_direction`: fewer flat clips, less flatness, more contrast, Vendi and
    recurrence count as "supported"). Also written to metrics/paired_differences.csv."""
    fc, fi = final_tables(cfg, tables)
    metrics = [*((m, fc) for m in (*PER_CLIP, READOUT) if m in fc), ("vendi_intra", fi)]
    sesois = {metric: metric_sesoi(tables, cfg, metric) for metric, _ in metrics}
    rows = []
    for arm in [a for a in cfg.finetune.arms if a != "none"]:
        for metric, table in metrics:
            d = outcome_diffs(table, metric, arm=arm)
            if d.empty:
                continue
            sesoi = sesois[metric]
            r = paired_verdict(d, direction=metric_direction(metric), sesoi=sesoi if np.isfinite(sesoi) else None)
            rows.append({"arm": arm, "metric": metric, "diff": r["estimate"], "lo": r["ci_lo"], "hi": r["ci_hi"],
                         "mde": r["mde"], "sesoi": sesoi, "verdict": r["verdict"], "seeds": r["n_seeds"],
                         "prompts": r["n_prompts"]})
    diffs = pd.DataFrame(rows)
    diffs.to_csv(_layout(cfg).paired_differences, index=False)
    return diffs


def vendi_by_step(intra: pd.DataFrame) -> pd.DataFrame:
    """Mean intra-prompt Vendi per arm, seed and step of the fine-tuned runs (the base left out), on the
    primary prompt set (the one every checkpoint generates) when the table has sets."""
    intra = intra[intra["set"] == "primary"] if "set" in intra.columns else intra
    return intra[intra["arm"] != "base"].groupby(["arm", "seed", "step"])["vendi_intra"].mean().reset_index()
