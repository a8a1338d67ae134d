"""The pre-registered claims scorecard: one primary test per claim, its controls and its checks, all
fixed here before any recorded run and computed from the files `anatomy` and `evaluate` write.

The comparison is `eisbach` against `none` with the profile's first adapter at the final step, paired
by seed (same adapter init, data order, timesteps and sampling noise) and prompt. Every outcome goes
through one rule, `stats.paired_verdict` (seeds and prompts crossed and random; estimate, 95 % CI, p,
the minimum detectable effect at 80 % power, effect sizes) and ends in one of

  supported      the CI excludes 0 on the claimed side;
  contradicted   the CI excludes 0 on the other side;
  equivalent     the 90 % CI lies inside ±sesoi (two one-sided tests): no effect as large as the
                 smallest effect of interest;
  inconclusive   none of these: the MDE column says how large an effect the design could have seen;
  not testable   the claim cannot be tested at this profile, with the reason (too few seeds, a metric
                 that fails its known-answer validation at the clip length, a positive control that
                 did not move, a comparison the profile does not train).

Rules fixed in advance:
- Smallest effects of interest (sesoi): SESOI_FRACTION (0.2, Cohen's "small") of the metric's
  between-clip standard deviation on the held-out `reference` split (for the set metric intra-prompt
  Vendi: of its standard deviation over random reference sets of the grid's size). The scale comes
  from audio no arm was trained on, so it is fixed before any generation.
- C1 is tested where it can fail: the cosine between the eisbach and the unweighted AdamW update
  after `anatomy.update_steps` steps on the same batches must exceed C1_MIN_COS (0.99, 8°); the
  per-sample identity (cos = 1 for every detached arm) is a sanity row.
- C2 Spearman ρ(w, temporal flatness) over finetune clips (bootstrap CI over clips), direction −.
- C3 the curriculum must emerge: per seed, the slope over training phases of the flat class's share
  of gradient mass Σw·L, eisbach minus none; the seed is the unit; direction −.
- C4 the within-clip Spearman ρ of h against t (every clip at every noise level with the same noise),
  tested over clips on the base model; either direction counts, so C4 is never contradicted.
- C5-C7 go through the gates in order: ≥ MIN_SEEDS seeds; the metric passes its known-answer
  validation at the clip length (the tune beats its bar-shuffles in ≥ VALIDATION_MIN_WIN of the
  reference tunes, C6 only); the positive control `oracle_texture` moved the generations' temporal
  flatness or spectral contrast beyond its MDE (CI excluding 0 and |estimate| ≥ MDE). Holm across C5-C7 (supported/contradicted need
  Holm p < α); equivalence is an intersection-union test and needs no adjustment.
- C8 is a non-inferiority test outside the Holm family: inter-prompt Vendi, FD and KID to the
  round-tripped reference may be worse than `none` by at most C8_MARGIN (10 %) of none's value,
  per seed; supported when all three are non-inferior, contradicted when any is inferior.
- C9 and C10 are exploratory (reported, not adjusted, no claim rests on them); C10 compares the
  sweet-spot checkpoint with the mean of the other checkpoints (no maximum: that is biased).
- Controls: `oracle_texture` − none (positive: must move), `constant` − none (negative: must come
  out equivalent on every outcome). Manipulation checks: the fine-tune moves the generations (none −
  base), the adapters differ (eisbach–none output distance relative to the seed-to-seed distance of
  none), the weighting changes the training mix (flat class's share of Σw minus its sample share).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .layout import Layout

ARM, BASELINE = "eisbach", "none"
POSITIVE_CONTROL, NEGATIVE_CONTROL = "oracle_texture", "constant"
MIN_SEEDS = 3             # a verdict on trained or generated runs needs at least this many seeds
C1_MIN_COS = 0.99         # "the direction is kept": update cosine above cos(8.1°)
SESOI_FRACTION = 0.2      # smallest effect of interest: 0.2 reference-split SDs of the metric
C8_MARGIN = 0.10          # non-inferiority margin: 10 % of none's value
VALIDATION_MIN_WIN = 0.8  # a structure metric is valid when the tune beats its bar-shuffles this often
OUTCOMES = {              # claim: (metric, table, direction)
    "C5": ("vendi_intra", "intra", +1),
    "C6": ("motif_recurrence", "clips", +1),
    "C7": ("spectral_contrast", "clips", +1),
}
SECONDARY = {"C6": ("novelty_sections", "clips", +1)}
CONTROL_METRICS = {"temporal_flatness": -1, "spectral_contrast": +1}  # what the positive control must move
HOLM_FAMILY = ("C5", "C6", "C7")
VERDICTS = ("supported", "contradicted", "equivalent", "inconclusive", "not testable", "too few votes", "")
CLAIMS = {
    "C1": "detached weights change each sample's step size, never its direction",
    "C2": "temporal entropy downweights flat samples, keeps high-contrast ones",
    "C3": "an online curriculum emerges (gradient mass moves off flat textures over training)",
    "C4": "the weight has noise-level dynamics",
    "C5": "higher textural diversity (intra-prompt Vendi)",
    "C6": "stronger thematic development (motif recurrence)",
    "C7": "clearer acoustic differentiation (spectral contrast)",
    "C8": "not mode collapse (inter-prompt Vendi, FD and KID to the reference no worse)",
    "C9": "DoRA synergy (eisbach−none gap larger with DoRA than with LoRA)",
    "C10": "the recipe's step count is the sweet spot",
}
COLUMNS = ["claim", "role", "statement", "evidence", "direction", "estimate", "ci_lo", "ci_hi", "p", "p_holm", "mde",
           "effect_size", "sesoi", "n", "verdict", "note"]


# --------------------------------------------------------------------------------------------
# rows


def _row(claim: str, evidence: str, role: str = "primary", direction: int = +1, verdict: str = "not testable",
         note: str = "", statement: str | None = None, **values) -> dict:
    """One scorecard row; numbers not given are NaN."""
    row = {c: np.nan for c in COLUMNS}
    row.update({"claim": claim, "role": role, "statement": statement if statement is not None else CLAIMS.get(claim, ""),
                "evidence": evidence, "direction": "+" if direction > 0 else "−", "n": 0, "verdict": verdict,
                "note": note})
    row.update(values)
    return row


def _from_test(claim: str, evidence: str, res: dict, role: str = "primary", direction: int = +1, note: str = "",
               statement: str | None = None) -> dict:
    """A row from a `stats.paired_verdict` / `stats.noninferiority` result."""
    es = res.get("es_prompt") if np.isfinite(res.get("es_prompt", np.nan)) else res.get("es_seed", np.nan)
    return _row(claim, evidence, role, direction, res["verdict"], note, statement, estimate=res["estimate"],
                ci_lo=res["ci_lo"], ci_hi=res["ci_hi"], p=res["p"], mde=res.get("mde", np.nan), effect_size=es,
                sesoi=res.get("sesoi", res.get("margin", np.nan)), n=int(res.get("n", 0)))


def _not_testable(row: dict, reason: str) -> dict:
    row["note"] = f"{reason}. {row['note']}".strip()
    row["verdict"] = "not testable"
    return row


def _min_seeds(row: dict, diffs: pd.DataFrame) -> dict:
    n_seeds = diffs["seed"].nunique() if "seed" in diffs else 0
    if n_seeds < MIN_SEEDS and row["verdict"] != "not testable":
        return _not_testable(row, f"only {n_seeds} seeds (a verdict needs {MIN_SEEDS})")
    return row


# --------------------------------------------------------------------------------------------
# paired differences


def outcome_diffs(df: pd.DataFrame, value: str, arm: str = ARM, baseline: str = BASELINE,
                  keys: tuple[str, ...] = ("seed", "prompt_id")) -> pd.DataFrame:
    """Rows matched on `keys` with d = value(arm) − value(baseline); several samples of a (seed,
    prompt) are averaged first, so each prompt of each seed is one cell of the crossed design."""
    j = stats.paired_differences(df.drop(columns="sample", errors="ignore"), value, arm, baseline, pair_on=keys)
    return j.rename(columns={"diff": "d"}).dropna(subset=["d"]).reset_index(drop=True)


def _vs_base(clips: pd.DataFrame, value: str, arm: str = BASELINE) -> pd.DataFrame:
    """d = value(arm, seed, prompt) − value(base, prompt): the base model is generated once, with the
    same prompts and initial noise, so every seed of `arm` pairs with it by prompt."""
    a = clips[clips["arm"] == arm].groupby(["seed", "prompt_id"], as_index=False)[value].mean()
    b = clips[clips["arm"] == "base"].groupby("prompt_id")[value].mean().rename("b")
    j = a.merge(b, left_on="prompt_id", right_index=True)
    return j.assign(d=j[value] - j["b"])[["seed", "prompt_id", "d"]]


# --------------------------------------------------------------------------------------------
# smallest effects of interest, from the reference split


def reference_sesoi(reference: pd.DataFrame, metric: str, set_size: int | None = None,
                    bandwidth: float | None = None, n_sets: int = 200, seed: int = 0) -> float:
    """SESOI_FRACTION × the metric's spread on the held-out reference split (nan without spread).

    Per-clip metrics: the SD over reference clips. `vendi_intra` (a set metric): the SD of the Vendi
    score of `n_sets` random reference sets of `set_size` clips (the grid's samples per prompt), on
    the standardised embeddings with the run's recorded kernel bandwidth."""
    if metric != "vendi_intra":
        return _positive(SESOI_FRACTION * float(np.nanstd(reference[metric].to_numpy(dtype=float), ddof=1)))
    from .metrics import fit_standardizer, standardize, vendi_score

    cols = [c for c in reference.columns if c.startswith("emb_")]
    X = reference[cols].to_numpy(dtype=float)
    Z = standardize(X, *fit_standardizer(X))
    rng = np.random.default_rng(seed)
    k = min(int(set_size or 2), len(Z))
    kw = {"bandwidth": bandwidth} if bandwidth is not None else {}
    scores = [vendi_score(Z[rng.choice(len(Z), k, replace=False)], **kw) for _ in range(n_sets)]
    return _positive(SESOI_FRACTION * float(np.std(scores, ddof=1)))


def _positive(x: float) -> float:
    """x when it is a usable sesoi (finite, > 0), else nan: a metric that does not vary over the
    reference (e.g. a count that is 0 everywhere) has no scale, so no equivalence test is made."""
    return x if np.isfinite(x) and x > 0 else float("nan")


# --------------------------------------------------------------------------------------------
# C1-C4: the mechanism (inputs from anatomy.barrier_anatomy and anatomy.training_dynamics)


def _anatomy_csv(adir: Path, name: str) -> pd.DataFrame | None:
    """<runs_dir>/anatomy/<name> as a table, or None when the step that writes it has not run."""
    f = adir / name
    return pd.read_csv(f) if f.exists() else None


def _missing(claim: str, evidence: str, name: str, producer: str) -> dict:
    """The row of a claim whose input file `name` is missing, naming the function that writes it."""
    return _row(claim, evidence, note=f"missing {name} ({producer})")


def claim_c1(cfg: dict, adir: Path) -> list[dict]:
    """C1: the AdamW update cosine (primary, can fail) and the per-sample identity (sanity)."""
    rows = []
    ev = f"cosine of the eisbach vs unweighted AdamW update from the same state over the same batches (> {C1_MIN_COS})"
    u = _anatomy_csv(adir, "update_cosines.csv")
    if u is not None:
        u = u[u["arm"] == ARM]
        last = u[u["step"] == u["step"].max()]
        res = stats.paired_verdict(pd.DataFrame({"d": last["cos"].to_numpy() - C1_MIN_COS}), direction=+1,
                                   alpha=cfg["evaluate"]["alpha"])
        first = u[u["step"] == 1]["cos"]
        row = _from_test("C1", ev, res, note=f"after {int(u['step'].max())} steps, {len(last)} batch sequences; "
                         f"estimate = mean cos − {C1_MIN_COS}; mean cos {last['cos'].mean():.4f} "
                         f"(first step {first.mean():.4f})")
        rows.append(row)
    else:
        rows.append(_missing("C1", ev, "update_cosines.csv", "anatomy.barrier_anatomy"))
    ev = "per-sample gradient cosine, weighted vs unweighted (detached arms = 1 by construction)"
    g = _anatomy_csv(adir, "grad_cosines.csv")
    if g is not None:
        ps = g[(g["kind"] == "per_sample") & g["arm"].isin(["eisbach", "eisbach_norm", "eisbach_shuffle", "eisbach_tmatched"])]
        bt = g[(g["kind"] == "batch") & (g["arm"] == ARM)]
        gr = g[(g["kind"] == "per_sample") & (g["arm"] == "eisbach_grad")]
        worst = float(ps["cos"].min())
        rows.append(_row("C1", ev, "sanity", +1, "supported" if worst >= 1 - 1e-4 else "contradicted",
                         f"batch-gradient cos ({ARM}) mean {bt['cos'].mean():.4f} (min {bt['cos'].min():.4f}); "
                         f"eisbach_grad per-sample cos mean {gr['cos'].mean():.4f}",
                         estimate=worst, n=len(ps)))
    return rows


def claim_c2(cfg: dict, adir: Path) -> dict:
    ev = "Spearman ρ(w, temporal_flatness) over finetune clips, bootstrap CI over clips"
    w = _anatomy_csv(adir, "weights_by_clip.csv")
    if w is None:
        return _missing("C2", ev, "weights_by_clip.csv", "anatomy.barrier_anatomy")
    rho, lo, hi, p = stats.spearman_ci(w["w"], w["flatness"], n_boot=cfg["evaluate"]["n_boot"])
    by = w.groupby("texture")["w"].mean().round(3).to_dict() if "texture" in w else {}
    return _row("C2", ev, "primary", -1, stats.decide(lo, hi, direction=-1), f"mean w by texture: {by}",
                estimate=rho, ci_lo=lo, ci_hi=hi, p=p, n=int(w[["w", "flatness"]].notna().all(axis=1).sum()))


def claim_c3(cfg: dict, adir: Path) -> dict:
    ev = "per seed: slope over training phases of the flat class's share of Σw·L, eisbach − none"
    m = _anatomy_csv(adir, "gradient_mass.csv")
    if m is None:
        return _missing("C3", ev, "gradient_mass.csv", "anatomy.training_dynamics")
    flat = m[m["texture"] == "sustained"].groupby(["run", "arm", "seed", "phase"], as_index=False)["share"].sum()
    slopes = stats.trend_slopes(flat, "share", "phase", ["run", "arm", "seed"])
    d = outcome_diffs(slopes, "slope", keys=("seed",))
    if d.empty:
        return _row("C3", ev, note=f"no paired {ARM}/{BASELINE} runs")
    res = stats.paired_verdict(d, direction=-1, alpha=cfg["evaluate"]["alpha"])
    level = outcome_diffs(flat.groupby(["arm", "seed"], as_index=False)["share"].mean(), "share", keys=("seed",))
    return _min_seeds(_from_test("C3", ev, res, direction=-1, note=f"flat share of gradient mass, eisbach − none, "
                                 f"averaged over training: {level['d'].mean():+.4f} (the shift itself, not its trend)"), d)


def claim_c4(cfg: dict, adir: Path) -> dict:
    ev = "within-clip Spearman ρ(t, h) of the base model's output, mean over clips (either direction)"
    e = _anatomy_csv(adir, "entropy_vs_t.csv")
    if e is None:
        return _missing("C4", ev, "entropy_vs_t.csv", "anatomy.barrier_anatomy")
    note = []
    checkpoints = _anatomy_csv(adir, "entropy_vs_t_checkpoints.csv")
    if checkpoints is not None:
        e = pd.concat([e, checkpoints], ignore_index=True)
    per_stage = {}
    for stage, g in e.groupby("stage", sort=False):
        r = stats.within_unit_rank_corr(g, "t", "h", "id")
        per_stage[stage] = (r, stats.paired_verdict(pd.DataFrame({"d": r["rho"].to_numpy()}), alpha=cfg["evaluate"]["alpha"]))
    r, res = per_stage.get("base", next(iter(per_stage.values())))
    for stage, (rs, rr) in per_stage.items():
        note.append(f"{stage}: ρ {rr['estimate']:+.3f} [{rr['ci_lo']:+.3f}, {rr['ci_hi']:+.3f}], SD across clips "
                    f"{rs['rho'].std(ddof=1):.3f}")
    res = {**res, "verdict": "supported" if res["verdict"] in ("supported", "contradicted") else "inconclusive"}
    return _from_test("C4", ev, res, note="; ".join(note))


# --------------------------------------------------------------------------------------------
# C5-C10 and the controls (inputs from evaluate)


def _final(df: pd.DataFrame, cfg: dict, adapter: str) -> pd.DataFrame:
    """The profile's adapter at each run's own final step (a run trained with `--steps` ends where its
    record says), and the base model (step 0)."""
    last = df.groupby("run")["step"].transform("max") if "run" in df else df["step"]
    return df[((df["adapter"] == adapter) & (df["step"] == last)) | (df["arm"] == "base")]


def _tables(mdir: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for name, fname in (("clips", "clips.parquet"), ("intra", "intra.csv"), ("runs", "runs.csv"),
                        ("reference", "reference.parquet"), ("reference", "reference_roundtrip.parquet"),
                        ("validation", "structure_validation.csv"), ("ceilings", "ceiling.csv")):
        f = mdir / fname  # the round-tripped reference (the generations' domain) wins over the raw one
        if f.exists():
            out[name] = pd.read_parquet(f) if f.suffix == ".parquet" else pd.read_csv(f)
    return out


def metric_sesoi(t: dict, cfg: dict, metric: str, mdir: Path) -> float:
    """The sesoi of `metric` for this run (`reference_sesoi` on the evaluation tables' reference, with
    the Vendi bandwidth recorded in <mdir>/vendi_bandwidth.json and the profile's seed); nan when the
    tables have no reference or the metric is not in it."""
    if "reference" not in t or (metric != "vendi_intra" and metric not in t["reference"]):
        return np.nan
    bw = None
    f = mdir / "vendi_bandwidth.json"
    if f.exists():
        import json

        bw = float(json.loads(f.read_text())["bandwidth"])
    return reference_sesoi(t["reference"], metric, set_size=cfg["generate"]["samples_per_prompt"], bandwidth=bw,
                           seed=int(cfg["seed"]))


def _outcome_test(t: dict, cfg: dict, mdir: Path, claim: str, metric: str, table: str, direction: int, arm: str,
                  role: str, statement: str | None = None) -> dict:
    adapter = cfg["finetune"]["adapters"][0]
    ev = f"{metric}, {arm} − {BASELINE}, paired by seed and prompt"
    if table not in t or metric not in t[table]:
        return _row(claim, ev, role, direction, note=f"no {metric} in the evaluation tables", statement=statement)
    d = outcome_diffs(_final(t[table], cfg, adapter), metric, arm=arm)
    if d.empty:
        return _row(claim, ev, role, direction, note=f"arm {arm} not generated at this profile", statement=statement)
    sesoi = metric_sesoi(t, cfg, metric, mdir)
    res = stats.paired_verdict(d, direction=direction, sesoi=sesoi if np.isfinite(sesoi) else None,
                               alpha=cfg["evaluate"]["alpha"])
    return _min_seeds(_from_test(claim, ev, res, role, direction, statement=statement), d)


def _validity(t: dict, metric: str) -> str | None:
    """None when `metric` passed its bar-shuffle validation at this profile, else the reason."""
    if metric not in ("motif_recurrence", "novelty_sections"):
        return None
    v = t.get("validation")
    if v is None or metric not in set(v["metric"]):
        return f"{metric} was not validated at this profile's clip length"
    r = v[v["metric"] == metric].iloc[0]
    if float(r["win_rate"]) < VALIDATION_MIN_WIN:
        return (f"{metric} fails its validation at {r.get('seconds', '?')} s: the tune beats its bar-shuffles in "
                f"{float(r['win_rate']):.0%} of {int(r.get('n_tunes', 0))} reference tunes (needs {VALIDATION_MIN_WIN:.0%})")
    return None


def control_rows(t: dict, cfg: dict, mdir: Path) -> list[dict]:
    """The positive control (oracle_texture must move flatness/contrast) and the negative control
    (constant must be equivalent to none on every outcome metric)."""
    rows = []
    for metric, direction in CONTROL_METRICS.items():
        table = "clips"
        rows.append(_outcome_test(t, cfg, mdir, "PC", metric, table, direction, POSITIVE_CONTROL, "control",
                                  statement=f"positive control: {POSITIVE_CONTROL} moves {metric}"))
    for claim, (metric, table, direction) in OUTCOMES.items():
        rows.append(_outcome_test(t, cfg, mdir, "NC", metric, table, direction, NEGATIVE_CONTROL, "control",
                                  statement=f"negative control: {NEGATIVE_CONTROL} is equivalent to none on {metric}"))
    return rows


def _positive_control_moved(rows: list[dict]) -> str | None:
    """None when the positive control moved at least one of its metrics beyond that metric's MDE
    (|estimate| ≥ MDE and the CI excluding 0: the issue's "moves ... beyond their MDE"), else why not."""
    pc = [r for r in rows if r["claim"] == "PC"]
    if not pc or all(r["n"] == 0 for r in pc):
        return f"no positive control ({POSITIVE_CONTROL}) at this profile"
    if any(r["verdict"] in ("supported", "contradicted") and abs(r["estimate"]) >= r["mde"] for r in pc):
        return None
    moves = "; ".join(f"{r['evidence'].split(',')[0]} {r['estimate']:+.3g} (MDE {r['mde']:.3g})" for r in pc if r["n"])
    return f"the positive control ({POSITIVE_CONTROL}) did not move flatness or contrast beyond their MDE ({moves})"


def manipulation_rows(t: dict, cfg: dict, adir: Path) -> list[dict]:
    """M1 the fine-tune moves the generations, M2 the adapters differ, M3 the training mix changes."""
    rows, alpha = [], cfg["evaluate"]["alpha"]
    adapter = cfg["finetune"]["adapters"][0]
    if "clips" in t and "base" in set(t["clips"]["arm"]):
        for metric in CONTROL_METRICS:
            d = _vs_base(_final(t["clips"], cfg, adapter), metric)
            if len(d):
                res = stats.paired_verdict(d, alpha=alpha)
                res["verdict"] = "supported" if res["verdict"] in ("supported", "contradicted") else res["verdict"]
                rows.append(_from_test("M1", f"{metric}, none (final) − base model, paired by prompt and noise", res,
                                       "manipulation", statement="the fine-tune moves the generations"))
    dist = _anatomy_csv(adir, "output_distances.csv")
    if dist is not None:
        rows.append(_adapter_distance_row(dist, adapter, alpha))
    mix = _anatomy_csv(adir, "weight_mix.csv")
    if mix is not None:
        flat = mix[mix["texture"] == "sustained"]
        for arm in (ARM, POSITIVE_CONTROL):
            part = flat[flat["arm"] == arm]
            if len(part):
                res = stats.paired_verdict(part[["seed"]].assign(d=part["shift"].to_numpy()), direction=-1, alpha=alpha)
                rows.append(_from_test("M3", f"{arm}: flat class's share of Σw minus its share of samples, per seed",
                                       res, "manipulation", -1, statement="the weighting changes the training mix"))
    return rows


def _adapter_distance_row(dist: pd.DataFrame, adapter: str, alpha: float) -> dict:
    """M2: per seed, r_s = D(eisbach_s, none_s) / mean over s' ≠ s of D(none_s, none_s'): how far the
    weighting moves the adapter in units of how far a change of seed moves it (paired runs share
    init and data order, so r = 0 would mean the weight changed nothing). Passes when r's CI excludes
    0; its size is the reading (r ≪ 1: the arms train nearly the same adapter)."""
    d = {(a, b): x for a, b, x in dist[["a", "b", "distance"]].itertuples(index=False)}
    D = lambda a, b: d.get((a, b), d.get((b, a), np.nan))  # noqa: E731
    runs = sorted(set(dist["a"]) | set(dist["b"]))
    none = {int(r.rsplit("_s", 1)[1]): r for r in runs if r.startswith(f"{adapter}_{BASELINE}_s")}
    rows = []
    for s, rn in none.items():
        re = f"{adapter}_{ARM}_s{s}"
        others = [D(rn, none[o]) for o in none if o != s]
        if re in runs and others:
            rows.append({"seed": s, "d": D(re, rn) / np.mean(others), "abs": D(re, rn), "base": D(rn, "base")})
    ev = "output distance eisbach–none (same seed) / none seed-to-seed distance"
    if not rows:
        return _row("M2", ev, "manipulation", statement="the adapters differ", note="needs ≥ 2 seeds of none and eisbach")
    df = pd.DataFrame(rows)
    res = stats.paired_verdict(df[["seed", "d"]], alpha=alpha)
    return _from_test("M2", ev, res, "manipulation", statement="the adapters differ",
                      note=f"relative output distance eisbach–none {df['abs'].mean():.4f}, none–base "
                           f"{df['base'].mean():.4f} (RMS, in units of the base output's RMS)")


def claim_c8(t: dict, cfg: dict) -> dict:
    """Non-inferiority per seed on inter-prompt Vendi (+), FD (−) and KID (−) to the reference."""
    ev = "inter-prompt Vendi, FD and KID to the round-tripped reference, non-inferiority per seed"
    if "runs" not in t:
        return _row("C8", ev, note="missing runs.csv (eisbach evaluate)")
    runs = _final(t["runs"], cfg, cfg["finetune"]["adapters"][0])
    parts, notes, verdicts = [], [], []
    for metric, direction in (("vendi_inter", +1), ("fd_ref", -1), ("kid_ref", -1)):
        if metric not in runs:
            notes.append(f"{metric}: not computed")
            continue
        d = outcome_diffs(runs, metric, keys=("seed",))
        if d.empty:
            continue
        base = runs[runs["arm"] == BASELINE][metric].mean()
        res = stats.noninferiority(d, margin=C8_MARGIN * abs(base), direction=direction, alpha=cfg["evaluate"]["alpha"])
        parts.append((metric, res, d))
        verdicts.append(res["verdict"])
        notes.append(f"Δ {metric} {res['estimate']:.3g} [{res['ci_lo']:.3g}, {res['ci_hi']:.3g}], margin "
                     f"{'−' if direction > 0 else '+'}{res['margin']:.3g} ({BASELINE} {base:.3g}): {res['verdict']}")
    if not parts:
        return _row("C8", ev, note=f"no paired {ARM}/{BASELINE} runs")
    verdict = ("contradicted" if "contradicted" in verdicts else
               "supported" if all(v == "supported" for v in verdicts) else "inconclusive")
    metric, res, d = parts[0]
    row = _from_test("C8", ev, res, note="; ".join(notes))
    row["verdict"] = verdict
    return _min_seeds(row, d)


def claim_c9(t: dict, cfg: dict) -> dict:
    ev = "interaction on intra-prompt Vendi: (eisbach−none | DoRA) − (eisbach−none | LoRA), exploratory"
    intra = t.get("intra")
    adapters = set(intra["adapter"]) - {"none"} if intra is not None else set()
    if not {"dora", "lora"} <= adapters:
        return _row("C9", ev, "exploratory", note=f"not tested at this profile (adapters trained: {sorted(adapters)})")
    final = intra[intra["step"] == intra.groupby("run")["step"].transform("max")]
    keys = ["seed", "prompt_id"]
    gd = outcome_diffs(final[final["adapter"] == "dora"], "vendi_intra").set_index(keys)["d"]
    gl = outcome_diffs(final[final["adapter"] == "lora"], "vendi_intra").set_index(keys)["d"]
    j = pd.concat([gd.rename("dora"), gl.rename("lora")], axis=1).dropna().reset_index()
    res = stats.paired_verdict(j.assign(d=j["dora"] - j["lora"]), alpha=cfg["evaluate"]["alpha"])
    return _min_seeds(_from_test("C9", ev, res, "exploratory"), j)


def claim_c10(t: dict, cfg: dict) -> dict:
    sweet = cfg["finetune"].get("sweet_spot")
    ev = f"intra-prompt Vendi gap (eisbach − none) at step {sweet} minus its mean over the other checkpoints, exploratory"
    intra = t.get("intra")
    adapter = cfg["finetune"]["adapters"][0]
    steps = sorted(set(intra[intra["adapter"] == adapter]["step"]) - {0}) if intra is not None else []
    if sweet is None or sweet not in steps or len(steps) < 2:
        return _row("C10", ev, "exploratory", note=f"not tested (sweet_spot {sweet}, checkpoints generated {steps})")
    keys = ["seed", "prompt_id"]
    d = intra[intra["adapter"] == adapter]
    gaps = {s: outcome_diffs(d[d["step"] == s], "vendi_intra").set_index(keys)["d"] for s in steps}
    other = pd.concat([gaps[s] for s in steps if s != sweet], axis=1).mean(axis=1)
    j = pd.concat([gaps[sweet].rename("sweet"), other.rename("other")], axis=1).dropna().reset_index()
    res = stats.paired_verdict(j.assign(d=j["sweet"] - j["other"]), alpha=cfg["evaluate"]["alpha"])
    note = "gap by step: " + ", ".join(f"{s}: {gaps[s].mean():.3g}" for s in steps)
    return _min_seeds(_from_test("C10", ev, res, "exploratory", note=note), j)


def ceiling_rows(t: dict) -> list[dict]:
    """What FD and KID read with no model (two halves of the reference, split by source piece) and
    what the codec round trip alone does (raw vs round-tripped reference; also its spectral-contrast
    shift in dB), from `evaluate.ceiling_rows` (metrics/ceiling.csv)."""
    rows = []
    for r in t.get("ceilings", pd.DataFrame()).to_dict("records"):
        for metric in ("fd", "kid", "contrast_diff_db"):
            if metric == "contrast_diff_db" and not r["comparison"].startswith("raw"):
                continue
            sd = r.get(f"{metric}_sd", np.nan)
            rows.append(_row("CEIL", f"{metric}: {r['comparison']}", "ceiling", verdict="", estimate=float(r[metric]),
                             statement="ceiling: what the metric reads without any model",
                             note=(f"SD over {int(r['n_splits'])} splits {sd:.3g}; " if pd.notna(sd) and r.get("n_splits") else "")
                             + f"{int(r['n_a'])} vs {int(r['n_b'])} clips", n=int(r["n_a"])))
    return rows


# --------------------------------------------------------------------------------------------
# the whole card


def build_scorecard(cfg: dict) -> pd.DataFrame:
    """Every claim, control, manipulation check and ceiling as one table (rules: module docstring)."""
    layout = Layout.of(cfg)
    adir, mdir = layout.anatomy, layout.metrics
    rows = [*claim_c1(cfg, adir), claim_c2(cfg, adir), claim_c3(cfg, adir), claim_c4(cfg, adir)]
    t = _tables(mdir)
    controls = control_rows(t, cfg, mdir)
    pc_reason = _positive_control_moved(controls)
    outcomes = []
    for claim, (metric, table, direction) in OUTCOMES.items():
        row = _outcome_test(t, cfg, mdir, claim, metric, table, direction, ARM, "primary")
        if claim in SECONDARY:
            m2, tb2, d2 = SECONDARY[claim]
            sec = _outcome_test(t, cfg, mdir, claim, m2, tb2, d2, ARM, "secondary")
            reason2 = _validity(t, m2)
            row["note"] += (f" secondary {m2}: Δ {sec['estimate']:.3g} [{sec['ci_lo']:.3g}, {sec['ci_hi']:.3g}], "
                            f"{'not testable: ' + reason2 if reason2 else sec['verdict']}")
        reason = _validity(t, metric) or (pc_reason if row["verdict"] != "not testable" else None)
        outcomes.append(_not_testable(row, reason) if reason else row)
    _holm(outcomes, cfg["evaluate"]["alpha"])
    rows += outcomes
    rows += [claim_c8(t, cfg), claim_c9(t, cfg), claim_c10(t, cfg)]
    rows += controls + manipulation_rows(t, cfg, adir) + ceiling_rows(t)
    card = pd.DataFrame(rows, columns=COLUMNS)
    listeners = listener_rows(cfg)
    return pd.concat([card, listeners.reindex(columns=COLUMNS)], ignore_index=True) if len(listeners) else card


def listener_rows(cfg: dict) -> pd.DataFrame:
    """The listening study's rows (people's judgements, kept apart from the metric verdicts): one per
    comparison and question when votes exist (`study.listener_rows`), role "listeners"."""
    from .study import listener_rows as rows

    out = rows(cfg)
    return out.assign(role="listeners", mde=np.nan, effect_size=np.nan, sesoi=np.nan) if len(out) else out


def _holm(rows: list[dict], alpha: float) -> None:
    """Holm across the testable primary outcome claims; a decisive verdict needs Holm p < α."""
    live = [r for r in rows if r["claim"] in HOLM_FAMILY and r["verdict"] != "not testable"]
    adj = stats.holm([r["p"] for r in live])
    for r, pa in zip(live, adj):
        r["p_holm"] = float(pa)
        if r["verdict"] in ("supported", "contradicted") and not pa < alpha:
            r["note"] = f"CI excludes 0 but Holm p = {pa:.3g} ≥ α. {r['note']}".strip()
            r["verdict"] = "inconclusive"


def write_scorecard(card: pd.DataFrame, out_dir: Path) -> None:
    """scorecard.csv and scorecard.md in `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    card.to_csv(out_dir / "scorecard.csv", index=False)
    fmt = lambda x: "" if pd.isna(x) else f"{x:.4g}"  # noqa: E731
    cell = lambda x: str(x).replace("|", "\\|")  # noqa: E731  (a '|' inside a cell would end it)
    lines = ["| claim | role | statement | evidence | estimate [95% CI] | p | MDE | effect size | sesoi | n | verdict | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in card.itertuples():
        ci = f"{fmt(r.estimate)} [{fmt(r.ci_lo)}, {fmt(r.ci_hi)}]" if pd.notna(r.ci_lo) else fmt(r.estimate)
        p = fmt(r.p) + (f" (Holm {fmt(r.p_holm)})" if pd.notna(r.p_holm) else "")
        verdict = f"**{r.verdict}**" if r.verdict else ""
        lines.append(f"| {r.claim} | {r.role} | {cell(r.statement)} | {cell(r.evidence)} | {ci} | {p} | {fmt(r.mde)} | "
                     f"{fmt(r.effect_size)} | {fmt(r.sesoi)} | {r.n} | {verdict} | {cell(r.note)} |")
    (out_dir / "scorecard.md").write_text("\n".join(lines) + "\n")


def effects_in_sesoi(card: pd.DataFrame, claims: tuple[str, ...] = ("C5", "C6", "C7", "PC", "NC")) -> pd.DataFrame:
    """The rows of `claims` that have a positive sesoi and a CI, in units of their sesoi: effect
    (estimate / sesoi), err_lo and err_hi (the CI's distances below and above it), mde, and a label
    "claim evidence-head: verdict"."""
    rows = card[card["claim"].isin(list(claims)) & card["sesoi"].gt(0) & card["ci_lo"].notna()].reset_index(drop=True)
    s = rows["sesoi"].to_numpy()
    return pd.DataFrame({
        "label": [f"{c} {e.split(',')[0]}: {v}" for c, e, v in rows[["claim", "evidence", "verdict"]].itertuples(index=False)],
        "effect": rows["estimate"] / s, "err_lo": (rows["estimate"] - rows["ci_lo"]) / s,
        "err_hi": (rows["ci_hi"] - rows["estimate"]) / s, "mde": rows["mde"] / s})


def verdict_counts(card: pd.DataFrame) -> pd.Series:
    """How many claims (primary and exploratory rows, one per claim) have each verdict."""
    return card[card["role"].isin(["primary", "exploratory"])].drop_duplicates("claim")["verdict"].value_counts()
