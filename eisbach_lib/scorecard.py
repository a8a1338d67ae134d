"""The pre-registered claims scorecard: one primary test per claim, its controls and its checks, all
fixed here before any recorded run and computed from the files `anatomy` and `evaluate` write.

The comparison is `eisbach` against `none` with the profile's first adapter at the final step, paired
by seed (same adapter init, data order, timesteps and sampling noise) and prompt, on the PRIMARY
prompt set (held-out reference captions that do not name their texture, generated at CFG 1:
prompts.csv rows with set `primary`; every prompt when the file has no `set` column). Every outcome
goes through one rule, `stats.paired_verdict` (seeds and prompts crossed and random; estimate, 95 %
CI, p, the minimum detectable effect at 80 % power, effect sizes), equivalence first (Lakens et al.):

  equivalent     the 90 % CI lies inside ±sesoi: no effect as large as the smallest effect of
                 interest ("negligible" in the note when the 95 % CI also excludes 0);
  supported      otherwise, the 95 % CI excludes 0 on the claimed side;
  contradicted   otherwise, the 95 % CI excludes 0 on the other side;
  inconclusive   none of these: the MDE column says how large an effect the design could have seen;
  not testable   the claim cannot be tested at this profile, with the reason (too few seeds, a metric
                 that fails its known-answer validation at the clip length, a positive control that
                 failed its gate, a comparison the profile does not train).

Each claim is specified so that it can fail and can succeed (the reason for each threshold is next to
its constant below):
- C1 the barrier turns the AdamW update less than minibatch noise does: per (adapter init, batch
  sequence), r = (1 − cos(Δθ_eisbach, Δθ_none)) / (1 − cos(Δθ_none on sequence B, Δθ_none on A)), the
  turn in units of the minibatch-noise floor, after `anatomy.update_steps` steps; d = r − C1_MAX_TURN,
  direction − (inits × sequences crossed). `eisbach_shuffle` (the same weights on the wrong samples) is
  reported beside it; the per-sample identity (cos = 1 for every detached arm) is a sanity row.
- C2 Spearman ρ(w, temporal flatness) over finetune clips (bootstrap CI over clips), direction −,
  sesoi C2_SESOI.
- C3 the curriculum must emerge: per seed, the slope over training phases of the flat class's share of
  LOSS MASS Σw·L (not gradient mass: per-sample losses, not gradient norms), eisbach − none;
  the seed is the unit; direction −; sesoi C3_SESOI_FRACTION of none's flat share over the phases.
- C4 the weight has noise-level dynamics: the share of the within-clip variance of log w explained by
  the noise level t (`stats.factor_share`, ω²-corrected), bootstrap over clips, against the
  pre-registered minimum C4_MIN_SHARE; the direction (does w rise or fall with t) is in the note.
- C5-C7 go through the gates in order: ≥ MIN_SEEDS seeds; the metric passes its known-answer
  validation at the clip length (C6); the positive control passes its gate (below).
- C8 non-inferiority per seed: FD and KID to the reference through the codec may be worse than `none` by at
  most C8_CEILING_SDS standard deviations of their reference-halves ceiling, inter-prompt Vendi by at
  most its sesoi; supported when all three are non-inferior (p = the largest of the three, an
  intersection-union test), contradicted when any is inferior. A collapsed generator fails it.
- Holm across every primary claim that reaches a verdict (C1-C8, the family named in the note):
  supported/contradicted need Holm p < α; equivalence is an intersection-union test and is not adjusted.
- C9 and C10 are exploratory (reported, not adjusted). C10 is an intersection-union test: the gap at
  the sweet spot exceeds the gap at EACH neighbouring checkpoint; fewer than C10_MIN_CHECKPOINTS
  checkpoints: not testable.

Gates and controls, fixed before any run and directional:
- PC (positive control): `oracle_texture` − none on the texture readout (READOUT: the share of flat
  textures per (seed, prompt) read by `readout.py`'s validated classifier from the generated latents)
  must move the intended way (fewer flat clips, direction −), its 95 % CI excluding 0 and |estimate| ≥
  sesoi. If it does not, C5-C7 read "not testable" and say which part of the gate failed.
- M1 (the fine-tune learned the new conditional): none − base on the readout, CI excluding 0 and
  |estimate| ≥ M1_MIN_SESOI sesoi.
- NC (negative control): `constant` − none must come out equivalent on every outcome and the readout.
- Secondary control rows: oracle − none on temporal flatness and spectral contrast (audio domain).
- MIX (texture mix, role "readout"; added after the first recorded cpu run, so descriptive: not a
  claim, outside Holm and the claim counts): each weighting arm − none on the readout, direction −,
  the readout's sesoi; "not testable" when the positive control failed its gate (then the readout
  cannot be trusted to see a shift); the note gives the estimate as a share of the oracle's move.
- Manipulation checks: the adapters differ (M2), the weighting changes the training mix (M3).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .config import Profile
from . import stats
from .layout import ANATOMY_TABLES, METRICS_TABLES, SCORECARD_CSV, SCORECARD_MD, Layout
from .metrics import fit_standardizer, standardize, vendi_score
from .study import listener_rows as study_listener_rows
from .tables import Tables, final_rows

ARM, BASELINE = "eisbach", "none"
POSITIVE_CONTROL, NEGATIVE_CONTROL = "oracle_texture", "constant"
WEIGHTING_ARMS = ("eisbach", "eisbach_norm", "eisbach_shuffle", "eisbach_tmatched")  # the MIX rows' arms
PRIMARY_SET = "primary"   # prompts.csv `set` of the primary prompts (held-out, texture-free captions at CFG 1)
READOUT = "flat_share"    # per generated clip: its part of the texture readout's flat share (evaluate.readout_columns)
MIN_SEEDS = 3             # a verdict on trained or generated runs needs at least this many seeds
SESOI_FRACTION = 0.2      # smallest effect of interest: 0.2 reference-split SDs of the metric (Cohen's "small")
C1_MAX_TURN = 0.25        # "direction kept": the barrier turns the update by < 1/4 of what new minibatches do
C2_SESOI = 0.1            # |ρ| below 0.1 is a negligible association (Cohen's "small" correlation is 0.1)
C3_SESOI_FRACTION = 0.1   # a curriculum moving the flat loss-mass share by < 1/10 of its level over training is negligible
C4_MIN_SHARE = 0.10       # noise-level dynamics: t explains ≥ 10 % of the within-clip variance of log w
C8_CEILING_SDS = 2.0      # FD/KID margin: 2 SDs of the reference-halves ceiling (a shift real audio rarely shows)
C10_MIN_CHECKPOINTS = 3   # the sweet spot needs a neighbour to compare with on at least one side, and 3 points
M1_MIN_SESOI = 3.0        # the fine-tune must move the readout by at least 3 sesoi (it learned the new mix)
VALIDATION_MIN_WIN = 0.8  # a structure metric is valid when the tune beats its bar-shuffles this often
OUTCOMES = {              # claim: (metric, its `tables.Tables` field, direction)
    "C5": ("vendi_intra", "intra", +1),
    "C6": ("motif_recurrence", "clips", +1),
    "C7": ("spectral_contrast", "clips", +1),
}
SECONDARY = {"C6": ("novelty_sections", "clips", +1)}
CONTROL_METRICS = {"temporal_flatness": -1, "spectral_contrast": +1}  # secondary: what the oracle moves in audio
HOLM_FAMILY = ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8")
VERDICTS = ("supported", "contradicted", "equivalent", "inconclusive", "not testable", "too few votes", "passed",
            "failed", "")


def metric_direction(metric: str) -> int:
    """The side of an arm − none difference the scorecard calls "supported" for `metric`: the texture
    readout −1 (fewer flat clips, the positive control's side), the outcomes' and CONTROL_METRICS'
    own directions, else +1."""
    if metric == READOUT:
        return -1
    outcome = {m: d for m, _, d in (*OUTCOMES.values(), *SECONDARY.values())}
    return outcome.get(metric, CONTROL_METRICS.get(metric, +1))


CLAIMS = {
    "C1": "detached weights change each sample's step size, never its direction",
    "C2": "temporal entropy downweights flat samples, keeps high-contrast ones",
    "C3": "an online curriculum emerges (loss mass moves off flat textures over training)",
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
    if res.get("negligible"):
        note = f"negligible: the 95 % CI excludes 0, but the 90 % CI lies inside ±sesoi. {note}".strip()
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


SET_METRICS = ("vendi_intra", "vendi_inter")  # metrics of a set of clips, not of one clip


def reference_sesoi(reference: pd.DataFrame, metric: str, set_size: int | None = None,
                    bandwidth: float | None = None, n_sets: int = 200, seed: int = 0) -> float:
    """SESOI_FRACTION × the metric's spread on the held-out reference split (nan without spread).

    Per-clip metrics: the SD over reference clips. Set metrics (SET_METRICS: intra-prompt Vendi over a
    prompt's samples, inter-prompt Vendi over the prompts): the SD of the Vendi score of `n_sets` random
    reference sets of `set_size` clips (the grid's samples per prompt, or its number of primary
    prompts), on the standardised embeddings with the run's recorded kernel bandwidth."""
    if metric not in SET_METRICS:
        return _positive(SESOI_FRACTION * float(np.nanstd(reference[metric].to_numpy(dtype=float), ddof=1)))
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


#: the function behind each command that writes anatomy tables (layout.ANATOMY_TABLES), for the notes
PRODUCERS = {"anatomy": "anatomy.barrier_anatomy", "dynamics": "anatomy.training_dynamics"}


def _anatomy_csv(layout: Layout, name: str) -> pd.DataFrame | None:
    """The anatomy table `name` (layout.ANATOMY_TABLES) as a table, or None when the step that writes
    it has not run."""
    f = layout.anatomy_table(name)
    return pd.read_csv(f) if f.exists() else None


def _missing(claim: str, evidence: str, layout: Layout, name: str, what: str = "") -> dict:
    """The row of a claim whose input table `name` is missing, naming its file and the function that
    writes it."""
    file = layout.anatomy_table(name).name + (f" {what}" if what else "")
    return _row(claim, evidence, note=f"missing {file} ({PRODUCERS[ANATOMY_TABLES[name]]})")


def _turn_ratios(u: pd.DataFrame, arm: str) -> pd.DataFrame:
    """Per (init, sequence) at the last step: r = (1 − cos(arm, none)) / (1 − cos(none B, none A)), as
    a crossed table (seed = adapter init, prompt_id = batch sequence) for `stats.paired_verdict`."""
    from .anatomy import NOISE_FLOOR  # heavy: torch

    if "init" not in u:
        u = u.assign(init=0)
    last = u[u["step"] == u["step"].max()]
    key = ["init", "seq"]
    a = last[last["arm"] == arm].set_index(key)["cos"]
    f = last[last["arm"] == NOISE_FLOOR].set_index(key)["cos"]
    j = pd.concat([a.rename("cos"), f.rename("floor")], axis=1).dropna().reset_index()
    r = (1 - j["cos"]) / (1 - j["floor"])
    return pd.DataFrame({"seed": j["init"], "prompt_id": j["seq"], "r": r, "cos": j["cos"], "floor": j["floor"]})


def claim_c1(cfg: Profile, layout: Layout) -> list[dict]:
    """C1: the update's turn against the minibatch-noise floor (primary, can fail both ways) and the
    per-sample identity (sanity)."""
    rows = []
    ev = (f"AdamW update turn 1 − cos(eisbach, none; same batches) in units of the minibatch-noise floor "
          f"1 − cos(none, none; other batches), below {C1_MAX_TURN}")
    u = _anatomy_csv(layout, "update_cosines")
    from .anatomy import NOISE_FLOOR  # heavy: torch

    if u is not None and NOISE_FLOOR in set(u["arm"]):
        r = _turn_ratios(u, ARM)
        res = stats.paired_verdict(r.assign(d=r["r"] - C1_MAX_TURN)[["seed", "prompt_id", "d"]], direction=-1,
                                   alpha=cfg.evaluate.alpha)
        res = {**res, "estimate": res["estimate"] + C1_MAX_TURN, "ci_lo": res["ci_lo"] + C1_MAX_TURN,
               "ci_hi": res["ci_hi"] + C1_MAX_TURN}
        sh = _turn_ratios(u, "eisbach_shuffle")
        note = (f"after {int(u['step'].max())} steps, {r['seed'].nunique()} adapter inits × {r['prompt_id'].nunique()} "
                f"batch sequences; estimate = mean turn ratio (threshold {C1_MAX_TURN}); mean cos eisbach–none "
                f"{r['cos'].mean():.4f}, noise floor cos {r['floor'].mean():.4f}")
        if len(sh):
            note += f"; eisbach_shuffle turn ratio {sh['r'].mean():.3f} (the same weights on the wrong samples)"
        rows.append(_from_test("C1", ev, res, direction=-1, note=note))
    else:
        rows.append(_missing("C1", ev, layout, "update_cosines", "with the noise floor"))
    ev = "per-sample gradient cosine, weighted vs unweighted (detached arms = 1 by construction)"
    g = _anatomy_csv(layout, "grad_cosines")
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


def claim_c2(cfg: Profile, layout: Layout) -> dict:
    ev = "Spearman ρ(w, temporal_flatness) over finetune clips, bootstrap CI over clips"
    w = _anatomy_csv(layout, "weights_by_clip")
    if w is None:
        return _missing("C2", ev, layout, "weights_by_clip")
    alpha, n_boot = cfg.evaluate.alpha, cfg.evaluate.n_boot
    rho, lo, hi, p = stats.spearman_ci(w["w"], w["flatness"], n_boot=n_boot, alpha=alpha)
    _, lo90, hi90, _ = stats.spearman_ci(w["w"], w["flatness"], n_boot=n_boot, alpha=2 * alpha)
    verdict = stats.decide(lo, hi, direction=-1, eq_lo=lo90, eq_hi=hi90, sesoi=C2_SESOI)
    by = w.groupby("texture")["w"].mean().round(3).to_dict() if "texture" in w else {}
    return _row("C2", ev, "primary", -1, str(verdict), f"mean w by texture: {by}", estimate=rho, ci_lo=lo, ci_hi=hi,
                p=p, sesoi=C2_SESOI, n=int(w[["w", "flatness"]].notna().all(axis=1).sum()))


def claim_c3(cfg: Profile, layout: Layout) -> dict:
    ev = "per seed: slope over training phases of the flat class's share of loss mass Σw·L, eisbach − none"
    m = _anatomy_csv(layout, "gradient_mass")
    if m is None:
        return _missing("C3", ev, layout, "gradient_mass")
    flat = m[m["texture"] == "sustained"].groupby(["run", "arm", "seed", "phase"], as_index=False)["share"].sum()
    slopes = stats.trend_slopes(flat, "share", "phase", ["run", "arm", "seed"])
    d = outcome_diffs(slopes, "slope", keys=("seed",))
    if d.empty:
        return _row("C3", ev, note=f"no paired {ARM}/{BASELINE} runs")
    n_phases = max(int(flat["phase"].nunique()), 2)
    level = float(flat[flat["arm"] == BASELINE]["share"].mean())
    sesoi = C3_SESOI_FRACTION * level / (n_phases - 1)  # per phase: a tenth of the level over the whole run
    res = stats.paired_verdict(d, direction=-1, sesoi=sesoi if np.isfinite(sesoi) and sesoi > 0 else None,
                               alpha=cfg.evaluate.alpha)
    shift = outcome_diffs(flat.groupby(["arm", "seed"], as_index=False)["share"].mean(), "share", keys=("seed",))
    return _min_seeds(_from_test("C3", ev, res, direction=-1, note=f"flat share of loss mass (none: {level:.3f}), "
                                 f"eisbach − none averaged over training: {shift['d'].mean():+.4f} (the shift itself, "
                                 f"not its trend); sesoi = {C3_SESOI_FRACTION} × none's share / {n_phases - 1} phases"), d)


def claim_c4(cfg: Profile, layout: Layout) -> dict:
    ev = (f"share of the within-clip variance of log w explained by the noise level t (base model), "
          f"against a minimum of {C4_MIN_SHARE:.0%}")
    e = _anatomy_csv(layout, "entropy_vs_t")
    if e is None:
        return _missing("C4", ev, layout, "entropy_vs_t")
    checkpoints = _anatomy_csv(layout, "entropy_vs_t_checkpoints")
    if checkpoints is not None and len(checkpoints):
        e = pd.concat([e, checkpoints], ignore_index=True)
    e = e.assign(log_w=np.log(e["w"].clip(lower=1e-12)))
    alpha, n_boot = cfg.evaluate.alpha, cfg.evaluate.n_boot
    per_stage = {stage: stats.factor_share_test(g, "log_w", "t", "id", C4_MIN_SHARE, n_boot=n_boot, alpha=alpha)
                 for stage, g in e.groupby("stage", sort=False)}
    res = per_stage.get("base", next(iter(per_stage.values())))
    word = {1: "w rises with t", -1: "w falls with t", 0: "no direction"}
    note = "; ".join(f"{stage}: share {r['estimate']:.3f} [{r['ci_lo']:.3f}, {r['ci_hi']:.3f}], {word[r['direction']]}"
                     for stage, r in per_stage.items())
    return _row("C4", ev, "primary", +1, res["verdict"], note, estimate=res["estimate"], ci_lo=res["ci_lo"],
                ci_hi=res["ci_hi"], p=res["p"], sesoi=C4_MIN_SHARE, n=int(res["n"]))


# --------------------------------------------------------------------------------------------
# C5-C10 and the controls (inputs from evaluate)


def _sesoi_reference(t: Tables) -> pd.DataFrame | None:
    """The reference every sesoi is anchored on: the one read through the codec (the generations'
    domain) when the tables hold it, else the raw one (a metrics folder from before the round trip)."""
    return t.reference if t.reference is not None else t.raw


def _primary(t: Tables, df: pd.DataFrame) -> pd.DataFrame:
    """The rows of `df` on the primary prompt set: its own `set` column when it has one (the base model's
    rows included), else prompts.csv's `set` by prompt_id; all rows for a run from before the prompt
    sets (no `set` anywhere)."""
    if "set" in df:
        return df[df["set"] == PRIMARY_SET]
    p = t.prompts
    if p is None or "set" not in p or "prompt_id" not in df:
        return df
    return df[df["prompt_id"].isin(p.loc[p["set"] == PRIMARY_SET, "prompt_id"])]


def metric_sesoi(t: Tables, cfg: Profile, metric: str) -> float:
    """The sesoi of `metric` for this run (`reference_sesoi` on the evaluation tables' reference, with
    the Vendi bandwidth evaluate recorded, `Tables.bandwidth`, and the profile's seed); nan when the
    tables have no reference or the metric is not in it."""
    ref = _sesoi_reference(t)
    if ref is None or (metric not in SET_METRICS and metric not in ref):
        return np.nan
    if metric == "vendi_intra":
        size = cfg.generate.samples_per_prompt
    else:  # vendi_inter: a set of one (mean) clip per primary prompt
        size = (len(_primary(t, t.prompts)) if t.prompts is not None
                else t.clips["prompt_id"].nunique() if t.clips is not None else None)
    return reference_sesoi(ref, metric, set_size=size, bandwidth=t.bandwidth, seed=cfg.seed)


def _outcome_test(t: Tables, cfg: Profile, claim: str, metric: str, table: str, direction: int, arm: str,
                  role: str, statement: str | None = None, baseline: str = BASELINE) -> dict:
    adapter = cfg.finetune.adapter
    ev = f"{metric}, {arm} − {baseline}, paired by seed and prompt"
    df = getattr(t, table)
    if df is None or metric not in df:
        return _row(claim, ev, role, direction, note=f"no {metric} in the evaluation tables", statement=statement)
    final = _primary(t, final_rows(df, adapter))
    d = _vs_base(final, metric, arm) if baseline == "base" else outcome_diffs(final, metric, arm=arm)
    if d.empty:
        return _row(claim, ev, role, direction, note=f"arm {arm} not generated at this profile", statement=statement)
    sesoi = metric_sesoi(t, cfg, metric)
    res = stats.paired_verdict(d, direction=direction, sesoi=sesoi if np.isfinite(sesoi) else None,
                               alpha=cfg.evaluate.alpha)
    return _min_seeds(_from_test(claim, ev, res, role, direction, statement=statement), d)


def _validity(t: Tables, metric: str) -> str | None:
    """None when `metric` passed its bar-shuffle validation at this profile, else the reason."""
    if metric not in ("motif_recurrence", "novelty_sections"):
        return None
    v = t.structure
    if v is None or metric not in set(v["metric"]):
        return f"{metric} was not validated at this profile's clip length"
    r = v[v["metric"] == metric].iloc[0]
    if float(r["win_rate"]) < VALIDATION_MIN_WIN:
        return (f"{metric} fails its validation at {r.get('seconds', '?')} s: the tune beats its bar-shuffles in "
                f"{float(r['win_rate']):.0%} of {int(r.get('n_tunes', 0))} reference tunes (needs {VALIDATION_MIN_WIN:.0%})")
    return None


def pc_gate(row: dict) -> str | None:
    """The positive control's gate on its readout row: None when it passes, else which part failed.
    Passes when the estimate lies on the intended side (row direction), the 95 % CI excludes 0 and
    |estimate| ≥ sesoi; fixed before any run (a move the wrong way, or smaller than the smallest effect
    of interest, does not show that the design can see the effect the claims are about)."""
    if row["n"] == 0 or not np.isfinite(row["estimate"]):
        return f"no positive control ({POSITIVE_CONTROL}) readout at this profile"
    sign = +1 if row["direction"] == "+" else -1
    est = f"{row['estimate']:+.3g} [{row['ci_lo']:+.3g}, {row['ci_hi']:+.3g}], sesoi {row['sesoi']:.3g}"
    if sign * row["estimate"] <= 0:
        return f"the positive control moved the readout the wrong way ({est})"
    if not (sign * row["ci_lo"] > 0 and sign * row["ci_hi"] > 0):
        return f"the positive control's CI includes 0 ({est})"
    if not abs(row["estimate"]) >= row["sesoi"]:
        return f"the positive control moved the readout by less than its sesoi ({est})"
    return None


def m1_gate(row: dict) -> str | None:
    """M1's gate: None when none − base moved the readout by ≥ M1_MIN_SESOI sesoi with its CI excluding
    0 (either direction: the base model never saw the primary caption style), else why not."""
    if row["n"] == 0 or not np.isfinite(row["estimate"]):
        return "no texture readout of none and base"
    if row["ci_lo"] <= 0 <= row["ci_hi"]:
        return "the fine-tune did not move the readout (CI includes 0)"
    if not abs(row["estimate"]) >= M1_MIN_SESOI * row["sesoi"]:
        return f"the fine-tune moved the readout by {abs(row['estimate']) / row['sesoi']:.2g} sesoi (< {M1_MIN_SESOI:g})"
    return None


def control_rows(t: Tables, cfg: Profile) -> list[dict]:
    """PC: oracle_texture − none on the texture readout (the gate), then on flatness and contrast
    (secondary, audio domain); NC: constant − none on the readout and every outcome metric."""
    rows = [_pc_readout_row(t, cfg)]
    reason = pc_gate(rows[0])
    rows[0]["note"] = (f"gate {'passed' if reason is None else 'failed: ' + reason}. {rows[0]['note']}").strip()
    for metric, direction in CONTROL_METRICS.items():
        rows.append(_outcome_test(t, cfg, "PC", metric, "clips", direction, POSITIVE_CONTROL, "control",
                                  statement=f"positive control (secondary, audio): {POSITIVE_CONTROL} moves {metric}"))
    for metric, table, direction in [(READOUT, "clips", metric_direction(READOUT)), *OUTCOMES.values()]:
        rows.append(_outcome_test(t, cfg, "NC", metric, table, direction, NEGATIVE_CONTROL, "control",
                                  statement=f"negative control: {NEGATIVE_CONTROL} is equivalent to none on {metric}"))
    return rows


def _pc_readout_row(t: Tables, cfg: Profile) -> dict:
    """The positive control's readout row (oracle_texture − none on READOUT), before its gate note."""
    return _outcome_test(t, cfg, "PC", READOUT, "clips", metric_direction(READOUT), POSITIVE_CONTROL, "control",
                         statement=f"positive control: {POSITIVE_CONTROL} makes fewer flat textures (the gate)")


def mix_rows(t: Tables, cfg: Profile, pc: dict | None = None) -> list[dict]:
    """MIX: does the weighting shift the texture mix the model generates? One row per weighting arm
    of the profile (WEIGHTING_ARMS in cfg.finetune.arms and in the clips table): arm − none on
    READOUT through `_outcome_test`, the positive control's pairing, sesoi and direction (−, fewer flat
    clips), so the claim pair's own move is read on the instrument the gate validated, beside the
    oracle's. Role "readout": descriptive, outside the Holm family and the claim counts (the row was
    added after the first recorded run). When the PC gate failed (`pc_gate` on `pc`, the PC readout
    row, computed when not given) the readout is not shown to see a shift, so the verdict is "not
    testable" with the gate's reason; else `paired_verdict`'s own. The note gives the estimate as a
    share of the oracle's move when both are finite."""
    present = set(t.clips["arm"]) if t.clips is not None else set()
    pc = pc if pc is not None else _pc_readout_row(t, cfg)
    reason = pc_gate(pc)
    rows = []
    for arm in (a for a in WEIGHTING_ARMS if a in cfg.finetune.arms and a in present):
        row = _outcome_test(t, cfg, "MIX", READOUT, "clips", metric_direction(READOUT), arm, "readout",
                            statement=f"{arm} shifts the texture mix the model generates (fewer flat textures)")
        if np.isfinite(row["estimate"]) and np.isfinite(pc["estimate"]) and pc["estimate"] != 0:
            row["note"] = (f"{100 * row['estimate'] / pc['estimate']:.0f} % of the oracle's move "
                           f"({pc['estimate']:+.3g}). {row['note']}").strip()
        if reason and row["verdict"] != "not testable":
            row = _not_testable(row, f"the readout could not be trusted to see a shift (positive-control gate "
                                     f"failed: {reason})")
        rows.append(row)
    return rows


def manipulation_rows(t: Tables, cfg: Profile, layout: Layout) -> list[dict]:
    """M1 the fine-tune moves the generations (readout: the gate; flatness and contrast beside it),
    M2 the adapters differ, M3 the training mix changes."""
    rows, alpha = [], cfg.evaluate.alpha
    adapter = cfg.finetune.adapter
    if t.clips is not None and "base" in set(t.clips["arm"]):
        for metric in (READOUT, *CONTROL_METRICS):
            row = _outcome_test(t, cfg, "M1", metric, "clips", +1, BASELINE, "manipulation",
                                statement="the fine-tune moves the generations", baseline="base")
            if metric == READOUT:
                reason = m1_gate(row)
                row["note"] = f"gate {'passed' if reason is None else 'failed: ' + reason}. {row['note']}".strip()
            elif row["verdict"] == "contradicted":  # either direction counts for the secondary rows
                row["verdict"] = "supported"
            rows.append(row)
    dist = _anatomy_csv(layout, "output_distances")
    if dist is not None:
        rows.append(_adapter_distance_row(dist, adapter, alpha))
    mix = _anatomy_csv(layout, "weight_mix")
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


def c8_margins(t: Tables, cfg: Profile) -> dict[str, float]:
    """The pre-registered non-inferiority margins of C8, anchored on the reference, not on `none`:
    FD and KID: C8_CEILING_SDS × the SD of that metric between two halves of the codec
    reference split (ceiling.csv; the sampling noise of real music of this distribution), inter-prompt
    Vendi: its sesoi (`metric_sesoi`). nan where the input is missing."""
    ceil = t.ceiling
    row = ceil[ceil["comparison"].str.contains("(codec)", regex=False) & ceil["comparison"].str.startswith("reference")] \
        if ceil is not None else pd.DataFrame()
    sd = lambda m: float(row[f"{m}_sd"].iloc[0]) if len(row) and f"{m}_sd" in row else np.nan  # noqa: E731
    return {"vendi_inter": metric_sesoi(t, cfg, "vendi_inter"), "fd_ref": C8_CEILING_SDS * sd("fd"),
            "kid_ref": C8_CEILING_SDS * sd("kid")}


def claim_c8(t: Tables, cfg: Profile) -> dict:
    """Non-inferiority per seed on inter-prompt Vendi (+), FD (−) and KID (−) to the reference, each
    against its reference-anchored margin (`c8_margins`); all three non-inferior → supported (an
    intersection-union test: p is the largest of the three), any inferior → contradicted."""
    ev = "inter-prompt Vendi, FD and KID to the reference through the codec, non-inferiority per seed"
    if t.runs is None:
        return _row("C8", ev, note=f"missing {METRICS_TABLES['runs']} (eisbach evaluate)")
    runs = _primary(t, final_rows(t.runs, cfg.finetune.adapter))
    margins = c8_margins(t, cfg)
    parts, notes, verdicts = [], [], []
    for metric, direction in (("vendi_inter", +1), ("fd_ref", -1), ("kid_ref", -1)):
        if metric not in runs or not (np.isfinite(margins[metric]) and margins[metric] > 0):
            notes.append(f"{metric}: not computed or no margin")
            verdicts.append("inconclusive")
            continue
        d = outcome_diffs(runs, metric, keys=("seed",))
        if d.empty:
            continue
        res = stats.noninferiority(d, margin=margins[metric], direction=direction, alpha=cfg.evaluate.alpha)
        parts.append((metric, res, d))
        verdicts.append(res["verdict"])
        notes.append(f"Δ {metric} {res['estimate']:.3g} [{res['ci_lo']:.3g}, {res['ci_hi']:.3g}], margin "
                     f"{'−' if direction > 0 else '+'}{res['margin']:.3g}: {res['verdict']}")
    if not parts:
        return _row("C8", ev, note=f"no paired {ARM}/{BASELINE} runs. " + "; ".join(notes))
    verdict = ("contradicted" if "contradicted" in verdicts else
               "supported" if all(v == "supported" for v in verdicts) else "inconclusive")
    metric, res, d = parts[0]
    row = _from_test("C8", ev, res, note=f"margins: FD, KID {C8_CEILING_SDS:g} SDs of the reference-halves ceiling, "
                     f"Vendi its sesoi; " + "; ".join(notes))
    # p of the verdict's own hypothesis: non-inferiority of all three (the largest one-sided p), or
    # inferiority of one (the smallest p of H0 'harm ≤ margin', 1 − p of the non-inferiority test)
    bad = [1 - r["p"] for _, r, _ in parts if r["verdict"] == "contradicted"]
    row.update(verdict=verdict, p=min(bad) if bad else max(r["p"] for _, r, _ in parts))
    return _min_seeds(row, d)


def claim_c9(t: Tables, cfg: Profile) -> dict:
    ev = "interaction on intra-prompt Vendi: (eisbach−none | DoRA) − (eisbach−none | LoRA), exploratory"
    intra = t.intra
    adapters = set(intra["adapter"]) - {"none"} if intra is not None else set()
    if not {"dora", "lora"} <= adapters:
        return _row("C9", ev, "exploratory", note=f"not tested at this profile (adapters trained: {sorted(adapters)})")
    final = intra[intra["step"] == intra.groupby("run")["step"].transform("max")]
    keys = ["seed", "prompt_id"]
    gd = outcome_diffs(final[final["adapter"] == "dora"], "vendi_intra").set_index(keys)["d"]
    gl = outcome_diffs(final[final["adapter"] == "lora"], "vendi_intra").set_index(keys)["d"]
    j = pd.concat([gd.rename("dora"), gl.rename("lora")], axis=1).dropna().reset_index()
    res = stats.paired_verdict(j.assign(d=j["dora"] - j["lora"]), alpha=cfg.evaluate.alpha)
    return _min_seeds(_from_test("C9", ev, res, "exploratory"), j)


def claim_c10(t: Tables, cfg: Profile) -> dict:
    """C10 as an intersection-union test: the eisbach − none intra-prompt Vendi gap at the sweet spot
    exceeds the gap at each neighbouring checkpoint (d_n = gap(sweet) − gap(n), `paired_verdict`,
    direction +). Supported when every d_n is; contradicted when any neighbour's gap is larger (d_n's
    CI below 0); p = the largest. Fewer than C10_MIN_CHECKPOINTS generated checkpoints: not testable
    (with two, "sweet spot" cannot be told from a gap that simply shrinks or grows)."""
    sweet = cfg.finetune.sweet_spot
    ev = f"intra-prompt Vendi gap (eisbach − none) at step {sweet} minus the gap at each neighbouring checkpoint"
    intra = t.intra
    adapter = cfg.finetune.adapter
    steps = sorted(set(intra[intra["adapter"] == adapter]["step"]) - {0}) if intra is not None else []
    if sweet is None or sweet not in steps or len(steps) < C10_MIN_CHECKPOINTS:
        return _row("C10", ev, "exploratory", note=f"not tested (sweet_spot {sweet}, checkpoints generated {steps}; "
                    f"needs ≥ {C10_MIN_CHECKPOINTS})")
    keys = ["seed", "prompt_id"]
    d = _primary(t, intra[intra["adapter"] == adapter])
    gaps = {s: outcome_diffs(d[d["step"] == s], "vendi_intra").set_index(keys)["d"] for s in steps}
    i = steps.index(sweet)
    tests = []
    for n in [steps[k] for k in (i - 1, i + 1) if 0 <= k < len(steps)]:
        j = pd.concat([gaps[sweet].rename("sweet"), gaps[n].rename("other")], axis=1).dropna().reset_index()
        tests.append((n, stats.paired_verdict(j.assign(d=j["sweet"] - j["other"]), alpha=cfg.evaluate.alpha), j))
    verdicts = [r["verdict"] for _, r, _ in tests]
    verdict = ("supported" if all(v == "supported" for v in verdicts) else
               "contradicted" if "contradicted" in verdicts else "inconclusive")
    n, res, j = min(tests, key=lambda x: x[1]["estimate"])  # the closest competitor is the row's estimate
    note = ("gap by step: " + ", ".join(f"{s}: {gaps[s].mean():.3g}" for s in steps) + "; "
            + "; ".join(f"vs {m}: {r['estimate']:+.3g} [{r['ci_lo']:+.3g}, {r['ci_hi']:+.3g}] {r['verdict']}"
                        for m, r, _ in tests))
    row = _from_test("C10", ev, res, "exploratory", note=note)
    row.update(verdict=verdict, p=max(r["p"] for _, r, _ in tests))
    return _min_seeds(row, j)


def readout_rows(t: Tables) -> list[dict]:
    """The texture readout's validation (`readout.validation_rows`, metrics/readout_validation.csv):
    accuracy on the reference split and the spike-in read-backs, each with its target and whether it
    passed; the readout is the positive control's and M1's instrument, so a failed row says so."""
    rows = []
    v = t.readout
    for r in (v.to_dict("records") if v is not None and len(v) else []):
        ok = bool(r["pass"]) if pd.notna(r.get("pass")) else None
        rows.append(_row("READ", str(r["check"]), "validation", verdict="" if ok is None else "passed" if ok else "failed",
                         statement="the texture readout reads what it should", estimate=float(r["read_back"]),
                         note=". ".join(x for x in ("; ".join(f"{k} {r[k]:.3g}" for k in ("target", "tolerance")
                                                                if pd.notna(r.get(k))),
                                                      str(r["note"]) if pd.notna(r.get("note")) else "") if x),
                         n=int(r.get("n", 0) or 0)))
    return rows


def ceiling_rows(t: Tables) -> list[dict]:
    """What FD and KID read with no model (two halves of the reference, split by source piece) and
    what the codec alone does (raw vs codec reference; also its spectral-contrast
    shift in dB), from `evaluate.ceiling_rows` (metrics/ceiling.csv)."""
    rows = []
    for r in (t.ceiling if t.ceiling is not None else pd.DataFrame()).to_dict("records"):
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


def build_scorecard(cfg: Profile) -> pd.DataFrame:
    """Every claim, control, manipulation check and ceiling as one table (rules: module docstring)."""
    layout = Layout.of(cfg)
    t = Tables.read(layout)
    controls = control_rows(t, cfg)
    pc_reason = pc_gate(controls[0])
    primary = [*claim_c1(cfg, layout), claim_c2(cfg, layout), claim_c3(cfg, layout), claim_c4(cfg, layout)]
    for claim, (metric, table, direction) in OUTCOMES.items():
        row = _outcome_test(t, cfg, claim, metric, table, direction, ARM, "primary")
        if claim in SECONDARY:
            m2, tb2, d2 = SECONDARY[claim]
            sec = _outcome_test(t, cfg, claim, m2, tb2, d2, ARM, "secondary")
            reason2 = _validity(t, m2)
            row["note"] += (f" secondary {m2}: Δ {sec['estimate']:.3g} [{sec['ci_lo']:.3g}, {sec['ci_hi']:.3g}], "
                            f"{'not testable: ' + reason2 if reason2 else sec['verdict']}")
        reason = _validity(t, metric) or (f"positive-control gate failed: {pc_reason}"
                                          if pc_reason and row["verdict"] != "not testable" else None)
        primary.append(_not_testable(row, reason) if reason else row)
    primary.append(claim_c8(t, cfg))
    _holm(primary, cfg.evaluate.alpha)
    rows = primary + [claim_c9(t, cfg), claim_c10(t, cfg)]
    rows += controls + mix_rows(t, cfg, controls[0])
    rows += manipulation_rows(t, cfg, layout) + readout_rows(t) + ceiling_rows(t)
    card = pd.DataFrame(rows, columns=COLUMNS)
    listeners = listener_rows(cfg)
    return pd.concat([card, listeners.reindex(columns=COLUMNS)], ignore_index=True) if len(listeners) else card


def listener_rows(cfg: Profile) -> pd.DataFrame:
    """The listening study's rows (people's judgements, kept apart from the metric verdicts): one per
    comparison and question when votes exist (`study.listener_rows`), role "listeners"."""
    out = study_listener_rows(cfg)
    if not len(out):
        return out
    return out.assign(role=out["role"] if "role" in out.columns else "listeners", mde=np.nan, effect_size=np.nan,
                      sesoi=np.nan)


def _holm(rows: list[dict], alpha: float) -> None:
    """Holm across the primary claims (HOLM_FAMILY rows of role primary) that reach a verdict (not "not
    testable", with a p); a supported/contradicted verdict needs Holm p < α. The family is named in
    each member's note. Equivalence (an intersection-union test) is not adjusted."""
    live = [r for r in rows if r["claim"] in HOLM_FAMILY and r.get("role", "primary") == "primary"
            and r["verdict"] != "not testable" and np.isfinite(r["p"])]
    adj = stats.holm([r["p"] for r in live])
    family = ", ".join(r["claim"] for r in live)
    for r, pa in zip(live, adj):
        r["p_holm"] = float(pa)
        if r["verdict"] in ("supported", "contradicted") and not pa < alpha:
            r["note"] = f"CI excludes 0 but Holm p = {pa:.3g} ≥ α. {r['note']}".strip()
            r["verdict"] = "inconclusive"
        r["note"] = f"{r['note']} [Holm family: {family}]".strip()


def write_scorecard(card: pd.DataFrame, out_dir: Path) -> None:
    """scorecard.csv and scorecard.md in `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    card.to_csv(out_dir / SCORECARD_CSV, index=False)
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
    (out_dir / SCORECARD_MD).write_text("\n".join(lines) + "\n")


def effects_in_sesoi(card: pd.DataFrame, claims: tuple[str, ...] = ("C5", "C6", "C7", "PC", "NC", "M1")) -> pd.DataFrame:
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
