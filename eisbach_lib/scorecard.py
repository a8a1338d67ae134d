"""The pre-registered claims scorecard (DESIGN.md §6): one primary metric per claim, fixed here
before any run, computed from the files the notebooks and `evaluate` write.

Comparison: arm `eisbach` against `none`, with the profile's first adapter, at the final step,
paired by seed (same adapter init, data order and sampling noise) and prompt. For each claim:
the estimate (mean paired difference, or a correlation), its 95 % bootstrap CI, a p-value
(Wilcoxon signed-rank on per-prompt paired differences; per-seed where the metric is per run),
Holm-adjusted across C5–C8, and a verdict:
  supported     the CI excludes 0 in the claimed direction, Holm p < α (C5–C8) and C8 holds;
  contradicted  the CI excludes 0 in the other direction (and Holm p < α for C5–C8);
  inconclusive  otherwise, with fewer than MIN_SEEDS seeds, or not testable at this profile
                (the note says why).
Special rules, fixed in advance: C1 compares per-sample cosines with 1; C4 claims only that the
weight has noise-level dynamics (any direction), so it is never `contradicted`, only `supported`
or `inconclusive`; C8 is a non-inferiority test with a margin of 10 % of the baseline's value,
per seed (inter-prompt Vendi and FD are one number per run): `contradicted` as soon as either CI
lies wholly on the worse side of 0 (checked first, even inside the margin), `supported` when both
CIs stay inside the margins; C8 is a guard, not a claim of the paper's direction, and takes no Holm
requirement (with ≤ 5 seeds a per-seed Wilcoxon p cannot reach 0.05: its minimum is 2/2^n).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from . import stats
from .stats import bootstrap_ci, holm

ARM, BASELINE = "eisbach", "none"
C8_MARGIN = 0.10
MIN_SEEDS = 3  # a verdict on generated or trained runs needs at least this many independent seeds
CLAIMS = {
    "C1": "detached weights change each sample's step size, never its direction",
    "C2": "temporal entropy downweights flat samples, keeps high-contrast ones",
    "C3": "an online curriculum emerges (less gradient mass on flat textures)",
    "C4": "the weight has noise-level dynamics",
    "C5": "higher textural diversity (intra-prompt Vendi)",
    "C6": "stronger thematic development (motif recurrence)",
    "C7": "clearer acoustic differentiation (spectral contrast)",
    "C8": "not mode collapse (inter-prompt Vendi, FD to reference no worse)",
    "C9": "DoRA synergy (eisbach−none gap larger with DoRA than with LoRA)",
    "C10": "the recipe's step count is the sweet spot",
}


def _row(claim: str, evidence: str, est=np.nan, lo=np.nan, hi=np.nan, p=np.nan, n=0, direction=+1,
         verdict: str | None = None, note: str = "") -> dict:
    if verdict is None:
        verdict = stats.verdict(lo, hi, direction) if n > 0 else "inconclusive"
    return {"claim": claim, "statement": CLAIMS[claim], "evidence": evidence, "direction": "+" if direction > 0 else "−",
            "estimate": est, "ci_lo": lo, "ci_hi": hi, "p": p, "p_holm": np.nan, "n": n, "verdict": verdict, "note": note}


def _wilcoxon(d: np.ndarray) -> float:
    d = np.asarray(d, dtype=float)
    return stats.wilcoxon_p(d[np.isfinite(d)])


def paired_diff(df: pd.DataFrame, value: str, keys: list[str], arm: str = ARM, baseline: str = BASELINE) -> pd.DataFrame:
    """Rows matched on `keys` (e.g. seed, prompt_id) with d = value(arm) − value(baseline): the
    values of a key (several samples of a prompt) are averaged first, so a prompt is one pair."""
    j = stats.paired_differences(df.drop(columns="sample", errors="ignore"), value, arm, baseline, pair_on=keys)
    j = j.rename(columns={f"{value}_arm": "a", f"{value}_baseline": "b", "diff": "d"})
    return j.dropna(subset=["a", "b"]).reset_index(drop=True)


def _paired_row(claim: str, evidence: str, df: pd.DataFrame, value: str, keys: list[str], cfg: dict,
                direction: int = +1, note: str = "") -> dict:
    j = paired_diff(df, value, keys)
    if j.empty:
        return _row(claim, evidence, note=f"no paired {ARM}/{BASELINE} data. {note}".strip())
    groups = j["seed"].to_numpy() if "seed" in j and "prompt_id" in keys else None
    mean, lo, hi = bootstrap_ci(j["d"].to_numpy(), n_boot=cfg["evaluate"]["n_boot"], seed=0, groups=groups)
    per_unit = j.groupby("prompt_id")["d"].mean() if "prompt_id" in keys else j["d"]
    base = float(j["b"].mean())
    row = _row(claim, evidence, mean, lo, hi, _wilcoxon(per_unit.to_numpy()), len(j), direction,
               note=f"{BASELINE} mean {base:.4g}. {note}".strip())
    return _min_seeds(row, j)


def _min_seeds(row: dict, j: pd.DataFrame) -> dict:
    """Downgrade a decisive verdict to inconclusive when fewer than MIN_SEEDS seeds were paired."""
    n_seeds = j["seed"].nunique() if "seed" in j else 0
    if row["verdict"] != "inconclusive" and n_seeds < MIN_SEEDS:
        row["verdict"] = "inconclusive"
        row["note"] += f" (only {n_seeds} seeds; a verdict needs {MIN_SEEDS})"
    return row


def _rho_row(claim: str, evidence: str, x: np.ndarray, y: np.ndarray, cfg: dict, direction: int, note: str = "") -> dict:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 4:
        return _row(claim, evidence, note="too few points")
    rho, p = spearmanr(x, y)
    rng = np.random.default_rng(0)
    boots = []
    for _ in range(int(cfg["evaluate"]["n_boot"])):
        i = rng.integers(0, len(x), len(x))
        r = spearmanr(x[i], y[i])[0]
        if np.isfinite(r):
            boots.append(r)
    lo, hi = np.percentile(boots, [2.5, 97.5]) if boots else (np.nan, np.nan)
    return _row(claim, evidence, float(rho), float(lo), float(hi), float(p), len(x), direction, note=note)


def claim_c1(cfg: dict, adir: Path) -> dict:
    f = adir / "grad_cosines.csv"
    if not f.exists():
        return _row("C1", "per-sample gradient cosine", note=f"missing {f.name} (notebook 02)")
    g = pd.read_csv(f)
    ps = g[(g["kind"] == "per_sample") & g["arm"].isin(["eisbach", "eisbach_norm", "eisbach_shuffle", "eisbach_tmatched"])]
    bt = g[(g["kind"] == "batch") & (g["arm"] == ARM)]
    gr = g[(g["kind"] == "per_sample") & (g["arm"] == "eisbach_grad")]
    mean, lo, hi = bootstrap_ci(ps["cos"].to_numpy(), n_boot=cfg["evaluate"]["n_boot"], seed=0)
    worst = float(ps["cos"].min())
    verdict = "supported" if worst >= 1 - 1e-4 else ("contradicted" if worst < 0.99 else "inconclusive")
    note = (f"min per-sample cos (detached arms) {worst:.6f}; batch-gradient cos ({ARM}) mean "
            f"{bt['cos'].mean():.4f} (min {bt['cos'].min():.4f}): the batch direction does change; "
            f"eisbach_grad per-sample cos mean {gr['cos'].mean():.4f}")
    return _row("C1", "per-sample gradient cosine, weighted vs unweighted", mean, lo, hi, np.nan, len(ps), +1, verdict, note)


def claim_c2(cfg: dict, adir: Path) -> dict:
    f = adir / "weights_by_clip.csv"
    if not f.exists():
        return _row("C2", "Spearman ρ(w, temporal_flatness)", note=f"missing {f.name} (notebook 02)")
    w = pd.read_csv(f)
    by = w.groupby("texture")["w"].mean().round(3).to_dict() if "texture" in w else {}
    return _rho_row("C2", "Spearman ρ(w, temporal_flatness) over finetune clips", w["w"].to_numpy(),
                    w["flatness"].to_numpy(), cfg, -1, note=f"mean w by texture: {by}")


def claim_c3(cfg: dict, adir: Path) -> dict:
    f = adir / "gradient_mass.csv"
    if not f.exists():
        return _row("C3", "flat-class share of gradient mass", note=f"missing {f.name} (notebook 04)")
    m = pd.read_csv(f)
    flat = m[m["texture"] == "sustained"].groupby(["run", "arm", "seed", "phase"])["share"].sum().reset_index()
    return _paired_row("C3", "flat (sustained) share of gradient mass Σw·L, eisbach − none, paired by seed and phase",
                       flat, "share", ["seed", "phase"], cfg, -1)


def claim_c4(cfg: dict, adir: Path) -> dict:
    f = adir / "entropy_vs_t.csv"
    if not f.exists():
        return _row("C4", "Spearman ρ(t, h)", note=f"missing {f.name} (notebook 02)")
    e = pd.read_csv(f)
    if "stage" in e:
        e = e[e["stage"] == e["stage"].iloc[0]]
    r = _rho_row("C4", "Spearman ρ(t, h) of the base model's output", e["t"].to_numpy(), e["h"].to_numpy(), cfg, +1)
    excl = r["n"] > 0 and (r["ci_lo"] > 0 or r["ci_hi"] < 0)
    r["verdict"] = "supported" if excl else "inconclusive"
    r["note"] = "any direction counts (pre-registered); " + r["note"]
    return r


def _final(df: pd.DataFrame, cfg: dict, adapter: str) -> pd.DataFrame:
    return df[(df["adapter"] == adapter) & (df["step"] == int(cfg["finetune"]["steps"]))]


def build_scorecard(cfg: dict) -> pd.DataFrame:
    """All ten claims as one table (see the module docstring for the rules)."""
    runs_dir = Path(cfg["runs_dir"])
    adir, mdir = runs_dir / "anatomy", runs_dir / "metrics"
    adapter = cfg["finetune"]["adapters"][0]
    rows = [claim_c1(cfg, adir), claim_c2(cfg, adir), claim_c3(cfg, adir), claim_c4(cfg, adir)]
    clips = pd.read_parquet(mdir / "clips.parquet") if (mdir / "clips.parquet").exists() else None
    intra = pd.read_csv(mdir / "intra.csv") if (mdir / "intra.csv").exists() else None
    runs = pd.read_csv(mdir / "runs.csv") if (mdir / "runs.csv").exists() else None
    if clips is None or intra is None or runs is None:
        for c in ("C5", "C6", "C7", "C8", "C9", "C10"):
            rows.append(_row(c, "generated-clip metrics", note="missing metrics files (eisbach evaluate)"))
        return pd.DataFrame(rows)
    keys = ["seed", "prompt_id"]
    rows.append(_paired_row("C5", "intra-prompt Vendi score", _final(intra, cfg, adapter), "vendi_intra", keys, cfg))
    c6 = _paired_row("C6", "motif_recurrence", _final(clips, cfg, adapter), "motif_recurrence", keys, cfg)
    nov = _paired_row("C6", "novelty_sections", _final(clips, cfg, adapter), "novelty_sections", keys, cfg)
    c6["note"] += f" secondary novelty_sections Δ {nov['estimate']:.3g} [{nov['ci_lo']:.3g}, {nov['ci_hi']:.3g}]"
    rows.append(c6)
    rows.append(_paired_row("C7", "spectral_contrast (dB)", _final(clips, cfg, adapter), "spectral_contrast", keys, cfg))
    rows.append(claim_c8(cfg, _final(runs, cfg, adapter)))
    idx = [i for i, r in enumerate(rows) if r["claim"] in ("C5", "C6", "C7", "C8")]
    ps = np.array([rows[i]["p"] for i in idx], dtype=float)
    adj = holm(np.nan_to_num(ps, nan=1.0))
    guard_ok = rows[idx[-1]]["verdict"] != "contradicted"
    for i, pa in zip(idx, adj):
        rows[i]["p_holm"] = float(pa)
        if rows[i]["claim"] == "C8":
            continue
        if rows[i]["verdict"] != "inconclusive" and pa >= cfg["evaluate"]["alpha"]:
            rows[i]["note"] += f" (CI excludes 0 but Holm p = {pa:.3g} ≥ α)"
            rows[i]["verdict"] = "inconclusive"
        if rows[i]["verdict"] == "supported" and not guard_ok:
            rows[i]["verdict"] = "inconclusive"
            rows[i]["note"] += " (C8 guard fails)"
    rows.append(claim_c9(cfg, intra))
    rows.append(claim_c10(cfg, intra, adapter))
    return pd.DataFrame(rows)


def claim_c8(cfg: dict, runs: pd.DataFrame) -> dict:
    """Non-inferiority: supported if the CI of Δ inter-prompt Vendi stays above −10 % of none's and
    the CI of Δ FD stays below +10 % of none's; contradicted if either CI lies wholly on the worse side."""
    v = _paired_row("C8", "inter-prompt Vendi", runs, "vendi_inter", ["seed"], cfg)
    f = _paired_row("C8", "FD to reference", runs, "fd_ref", ["seed"], cfg, direction=-1)
    if v["n"] == 0:
        return v
    jv, jf = paired_diff(runs, "vendi_inter", ["seed"]), paired_diff(runs, "fd_ref", ["seed"])
    mv, mf = C8_MARGIN * jv["b"].mean(), C8_MARGIN * jf["b"].mean()
    if jv["seed"].nunique() < MIN_SEEDS:
        verdict = "inconclusive"
    elif v["ci_hi"] < 0 or f["ci_lo"] > 0:
        verdict = "contradicted"
    elif v["ci_lo"] > -mv and f["ci_hi"] < mf:
        verdict = "supported"
    else:
        verdict = "inconclusive"
    note = (f"Δ inter-prompt Vendi {v['estimate']:.3g} [{v['ci_lo']:.3g}, {v['ci_hi']:.3g}] (margin −{mv:.3g}); "
            f"Δ FD {f['estimate']:.3g} [{f['ci_lo']:.3g}, {f['ci_hi']:.3g}] (margin +{mf:.3g})")
    return {**v, "evidence": "inter-prompt Vendi and FD to reference (non-inferiority, per seed)",
            "verdict": verdict, "note": note}


def claim_c9(cfg: dict, intra: pd.DataFrame) -> dict:
    adapters = set(intra["adapter"]) - {"none"}
    if not {"dora", "lora"} <= adapters:
        return _row("C9", "interaction: (eisbach−none | DoRA) − (eisbach−none | LoRA), intra-prompt Vendi",
                    note=f"not tested at this profile (adapters trained: {sorted(adapters)})")
    keys = ["seed", "prompt_id"]
    final = intra[intra["step"] == int(cfg["finetune"]["steps"])]
    gd = paired_diff(final[final["adapter"] == "dora"], "vendi_intra", keys).set_index(keys)["d"]
    gl = paired_diff(final[final["adapter"] == "lora"], "vendi_intra", keys).set_index(keys)["d"]
    j = pd.concat([gd.rename("dora"), gl.rename("lora")], axis=1).dropna().reset_index()
    j["d"] = j["dora"] - j["lora"]
    mean, lo, hi = bootstrap_ci(j["d"].to_numpy(), n_boot=cfg["evaluate"]["n_boot"], seed=0, groups=j["seed"].to_numpy())
    return _min_seeds(_row("C9", "interaction on intra-prompt Vendi, paired by seed and prompt", mean, lo, hi,
                           _wilcoxon(j.groupby("prompt_id")["d"].mean().to_numpy()), len(j), +1), j)


def claim_c10(cfg: dict, intra: pd.DataFrame, adapter: str) -> dict:
    sweet = cfg["finetune"].get("sweet_spot")
    steps = sorted(set(intra[intra["adapter"] == adapter]["step"]) - {0})
    if sweet is None or sweet not in steps or len(steps) < 2:
        return _row("C10", "eisbach−none gap at the sweet spot minus the best other checkpoint",
                    note=f"not tested (sweet_spot {sweet}, checkpoints generated {steps})")
    keys = ["seed", "prompt_id"]
    d = intra[intra["adapter"] == adapter]
    gaps = {s: paired_diff(d[d["step"] == s], "vendi_intra", keys).set_index(keys)["d"] for s in steps}
    other = pd.concat([gaps[s] for s in steps if s != sweet], axis=1).max(axis=1)
    j = pd.concat([gaps[sweet].rename("sweet"), other.rename("other")], axis=1).dropna().reset_index()
    j["d"] = j["sweet"] - j["other"]
    mean, lo, hi = bootstrap_ci(j["d"].to_numpy(), n_boot=cfg["evaluate"]["n_boot"], seed=0, groups=j["seed"].to_numpy())
    note = "gap by step: " + ", ".join(f"{s}: {gaps[s].mean():.3g}" for s in steps)
    return _min_seeds(_row("C10", f"intra-prompt Vendi gap at step {sweet} minus the best other checkpoint", mean,
                           lo, hi, _wilcoxon(j.groupby("prompt_id")["d"].mean().to_numpy()), len(j), +1, note=note), j)


def write_scorecard(card: pd.DataFrame, out_dir: Path) -> None:
    """scorecard.csv and scorecard.md in `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    card.to_csv(out_dir / "scorecard.csv", index=False)
    fmt = lambda x: "" if pd.isna(x) else f"{x:.4g}"  # noqa: E731
    lines = ["| claim | statement | primary evidence | estimate [95% CI] | p | n | verdict | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in card.itertuples():
        ci = f"{fmt(r.estimate)} [{fmt(r.ci_lo)}, {fmt(r.ci_hi)}]" if pd.notna(r.estimate) else ""
        p = fmt(r.p) + (f" (Holm {fmt(r.p_holm)})" if pd.notna(r.p_holm) else "")
        lines.append(f"| {r.claim} | {r.statement} | {r.evidence} | {ci} | {p} | {r.n} | **{r.verdict}** | {r.note} |")
    (out_dir / "scorecard.md").write_text("\n".join(lines) + "\n")
