"""Statistics for the claims scorecard (docs/design.md §4).

The one rule every outcome claim goes through (docs/design.md §4, "The rule"):

- `paired_verdict`     estimate, CI, p, MDE, effect sizes and verdict (supported / contradicted /
                       equivalent / inconclusive) of a mean paired difference over a crossed
                       seed × prompt table, a seed-level table or independent rows;
- `noninferiority`     the one-sided test of harm against a pre-registered margin (claim C8);
- `decide`             the verdict from a CI (and the 1 − 2α CI against ±sesoi), equivalence read
                       before significance (Lakens et al. 2018), shared with the listening study;
                       `negligible` flags an equivalent effect whose 1 − α CI also excludes 0;
- `crossed_mean_se`, `verdict_from_se`, `noninferiority_from_se`
                       the vectorised pieces of the two rules above (used by the calibration test,
                       which runs them on thousands of simulated tables at once);
- `trend_slopes`       least-squares slope of a value over time within each unit (claim C3);
- `within_unit_rank_corr`  Spearman ρ of y on x within each unit (claim C4);
- `spearman_ci`        Spearman ρ over independent pairs with a bootstrap CI (claim C2).

Helpers: `paired_differences` (pairing two arms' rows), `holm` (Holm–Bonferroni), `spearman`
(ρ and p on the finite pairs) and `bootstrap_ci` (a percentile-bootstrap CI: descriptive only,
not calibrated for verdicts on few seeds, see benchmarks/results/calibration.md).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.optimize
import scipy.stats


def bootstrap_ci(values: Sequence[float], n_boot: int = 2000, alpha: float = 0.05, seed: int = 0,
                 groups: Sequence | None = None) -> tuple[float, float, float]:
    """(mean, lo, hi): the sample mean and its percentile-bootstrap (1 − alpha) interval.

    Legacy for verdicts: a percentile bootstrap of 3–8 seed values is far too narrow (its interval
    is about [min, max] of the seeds); claims use `paired_verdict`. Still fine for descriptive CIs.

    Without `groups`: resample the values with replacement n_boot times; lo/hi are the alpha/2 and
    1 − alpha/2 quantiles of the resampled means (Efron & Tibshirani 1993).
    With `groups` (one label per value, e.g. the training seed): a two-level cluster bootstrap —
    resample the groups with replacement, then the items within each drawn group with replacement,
    and take the mean of all drawn items (Davison & Hinkley 1997, §3.8). This keeps the
    between-group (e.g. between-seed) variance in the interval. NaN values are dropped; no value
    gives (nan, nan, nan), one value gives (v, v, v).
    """
    x = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(x)
    x = x[keep]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if x.size == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    if groups is None:
        boot = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    else:
        g = np.asarray(groups)[keep]
        members = [x[g == label] for label in pd.unique(g)]
        sizes = np.array([m.size for m in members])
        drawn = rng.integers(0, len(members), size=(n_boot, len(members)))  # groups per replicate
        sums = np.zeros(drawn.shape)
        for i, m in enumerate(members):  # every draw of group i: resample its items, sum them
            slots = drawn == i
            sums[slots] = m[rng.integers(0, m.size, size=(int(slots.sum()), m.size))].sum(axis=1)
        boot = sums.sum(axis=1) / sizes[drawn].sum(axis=1)
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return mean, float(lo), float(hi)


def _pair_keys(df: pd.DataFrame, pair_on: Sequence[str]) -> list[str]:
    """pair_on plus `sample` when the table has a sample column not already in pair_on."""
    keys = list(pair_on)
    if "sample" in df.columns and "sample" not in keys:
        keys.append("sample")
    return keys


def paired_differences(df: pd.DataFrame, metric: str, arm: str, baseline: str = "none",
                       pair_on: Sequence[str] = ("seed", "prompt_id")) -> pd.DataFrame:
    """Rows of `arm` and `baseline` matched on pair_on (+ `sample` if present): diff = arm − baseline.
    The default keys are the generation tables' columns (`seed`, `prompt_id`).

    Returns the key columns, `<metric>_arm`, `<metric>_baseline` and `diff`, one row per key
    present in both arms (rows with the same key within an arm are averaged first; keys missing in
    either arm are dropped: no unpaired value enters a paired statistic).
    """
    keys = _pair_keys(df, pair_on)
    sides = []
    for name, label in ((arm, "arm"), (baseline, "baseline")):
        part = df.loc[df["arm"] == name, keys + [metric]].groupby(keys, as_index=False)[metric].mean()
        sides.append(part.rename(columns={metric: f"{metric}_{label}"}))
    out = sides[0].merge(sides[1], on=keys, how="inner")
    out["diff"] = out[f"{metric}_arm"] - out[f"{metric}_baseline"]
    return out.sort_values(keys).reset_index(drop=True)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (Holm 1979), in the input order.

    Sort ascending p_(1) ≤ … ≤ p_(m); adjusted p_(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j)), so the
    adjusted values are monotone in the raw ones and capped at 1. NaN entries stay NaN and do not
    count towards m.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Spearman's ρ and its two-sided p (scipy.stats.spearmanr) as floats, on the pairs where both
    are finite; fewer than 3 pairs or a constant side gives (nan, nan)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan"), float("nan")
    res = scipy.stats.spearmanr(a, b)
    return float(res.statistic), float(res.pvalue)


# ----------------------------------------------------------------------------- the paired rule (docs/design.md §4)

VERDICTS = ("supported", "contradicted", "equivalent", "inconclusive")


def _complete_block(present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (seeds, prompts) of a complete sub-table of the S × P `present` matrix.

    Greedy: while a cell is missing, drop the seed or the prompt with the largest *fraction* of
    missing cells (a tie drops the prompt: seeds are the scarce unit). It looks only at which cells
    exist, never at their values, so it cannot bias the estimate; it need not find the largest
    complete block, but it keeps every seed and prompt that is complete.
    """
    rows = np.ones(present.shape[0], dtype=bool)
    cols = np.ones(present.shape[1], dtype=bool)
    while rows.any() and cols.any():
        missing = ~present[np.ix_(rows, cols)]
        if not missing.any():
            break
        frac_r, frac_c = missing.mean(axis=1), missing.mean(axis=0)
        if frac_c.max() >= frac_r.max():
            cols[np.flatnonzero(cols)[int(frac_c.argmax())]] = False
        else:
            rows[np.flatnonzero(rows)[int(frac_r.argmax())]] = False
    return rows, cols


def crossed_table(diffs: pd.DataFrame, value: str = "d", seed: str = "seed",
                  prompt: str = "prompt_id") -> tuple[np.ndarray, list, list, str]:
    """(table [S, P], seed labels, prompt labels, note): the complete table paired_verdict analyses.

    - rows whose `value` is NaN/inf are dropped (so are rows with a missing seed or prompt label,
      by the groupby); rows sharing a (seed, prompt) cell are averaged
      (several samples of a prompt count once: the prompt is the unit, not the clip);
    - without a `seed` column the table has one pseudo-seed (S = 1); without a `prompt` column one
      pseudo-prompt (P = 1), except that with neither column every row is its own unit (S = 1,
      P = rows: independent units such as clips);
    - missing cells: the table is cut to a complete seed × prompt block (`_complete_block`); the
      note names what was dropped, so the reader sees it.
    """
    if value not in diffs.columns:
        raise KeyError(f"paired_verdict: the differences table has no column {value!r} (columns: {list(diffs.columns)})")
    df = diffs.loc[np.isfinite(pd.to_numeric(diffs[value], errors="coerce").to_numpy(dtype=np.float64))].copy()
    df[value] = df[value].astype(np.float64)
    notes = []
    if len(df) < len(diffs):
        notes.append(f"{len(diffs) - len(df)} non-finite rows dropped")
    has_seed, has_prompt = seed in df.columns, prompt in df.columns
    s_key = df[seed] if has_seed else pd.Series(0, index=df.index)
    p_key = df[prompt] if has_prompt else (pd.Series(0, index=df.index) if has_seed else pd.Series(np.arange(len(df)), index=df.index))
    wide = df.groupby([s_key.rename("_s"), p_key.rename("_p")])[value].mean().unstack("_p")
    if wide.size == 0:
        return np.zeros((0, 0)), [], [], "; ".join(notes + ["no finite differences"])
    rows, cols = _complete_block(wide.notna().to_numpy())
    if not rows.all() or not cols.all():
        lost_s = [x for x, k in zip(wide.index, rows) if not k]
        lost_p = [x for x, k in zip(wide.columns, cols) if not k]
        notes.append(f"incomplete seed × prompt table: dropped seeds {lost_s} and prompts {lost_p} "
                     f"to keep a complete {int(rows.sum())} × {int(cols.sum())} block")
    wide = wide.loc[rows, cols]
    return wide.to_numpy(dtype=np.float64), list(wide.index), list(wide.columns), "; ".join(notes)


def _mean_squares(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(MS_seed, MS_prompt, MS_resid) of a complete two-way table y[..., S, P], one value per cell.

    MS_seed = P·Σ_s(ȳ_s· − ȳ)²/(S−1), MS_prompt = S·Σ_p(ȳ_·p − ȳ)²/(P−1),
    MS_resid = Σ(y − ȳ_s· − ȳ_·p + ȳ)²/((S−1)(P−1)). Under d = δ + a_s + b_p + e_sp:
    E[MS_seed] = P·σa² + σe², E[MS_prompt] = S·σb² + σe², E[MS_resid] = σe².
    """
    S, P = y.shape[-2:]
    grand = y.mean(axis=(-2, -1))[..., None]
    row, col = y.mean(axis=-1), y.mean(axis=-2)
    ms_s = P * ((row - grand) ** 2).sum(axis=-1) / (S - 1)
    ms_p = S * ((col - grand) ** 2).sum(axis=-1) / (P - 1)
    resid = y - row[..., :, None] - col[..., None, :] + grand[..., None]
    ms_e = (resid**2).sum(axis=(-2, -1)) / ((S - 1) * (P - 1))
    return ms_s, ms_p, ms_e


def crossed_mean_se(table: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(estimate, se, df) of the grand mean of complete tables y[..., S, P] (vectorised over ...).

    Model: d_sp = δ + a_s + b_p + e_sp with seeds and prompts random and crossed, so
    Var(ȳ) = σa²/S + σb²/P + σe²/(S·P). The estimate is ȳ. With S ≤ P (seeds the scarcer factor):

        se² = [MS_seed + max(MS_prompt − MS_resid, 0)] / (S·P),   df = S − 1.

    Reasoning: MS_seed/(S·P) is the squared SE of the seed-level t-test (the S seed means as the
    units); it estimates σa²/S + σe²/(S·P) but misses the between-prompt term σb²/P that all seed
    means share. (MS_prompt − MS_resid)/(S·P) estimates exactly that term, truncated at 0. The
    seed term is never truncated and the df stay those of the seed term, S − 1 (the smallest df
    of the parts, the conservative Welch/Mickey–Brown choice). Calibration (tests/test_calibration.py,
    benchmarks/results/calibration.md): the textbook unbiased estimator
    (MS_seed + MS_prompt − MS_resid)/(S·P) with Satterthwaite df is liberal at 3 seeds (up to 7 %
    decisive under no effect when seed variance dominates and prompt variance is not small: the
    df estimate grows exactly when MS_seed is small by chance), and truncating the seed term at
    MS_resid leaks up to 5.6 %; this rule stays ≤ 5 % at 3, 5 and 8 seeds in every variance
    structure simulated, with normal or t3 components, 3 of 16 prompts 3× noisier and missing
    cells (tests/test_calibration.py), and an effect of its expected reported MDE is found
    71–82 % of the time. The price: with 3 seeds and little seed variance it is conservative
    (t with 2 df), which the reported MDE states honestly.
    With S > P the roles swap (prompts are the base factor, df = P − 1).

    Single-factor tables: S = 1 or P = 1 → a one-sample t-test over the S·P values (seeds, prompts
    or independent rows), df = S·P − 1. One value in all → se = nan, df = 0.
    """
    y = np.asarray(table, dtype=np.float64)
    S, P = y.shape[-2:]
    est = y.mean(axis=(-2, -1)) if S * P else np.full(y.shape[:-2], np.nan)
    if S * P < 2:
        return est, np.full(est.shape, np.nan), 0
    if S == 1 or P == 1:
        u = y.reshape(y.shape[:-2] + (S * P,))
        return est, u.std(axis=-1, ddof=1) / np.sqrt(S * P), S * P - 1
    ms_s, ms_p, ms_e = _mean_squares(y)
    base, other, df = (ms_s, ms_p, S - 1) if S <= P else (ms_p, ms_s, P - 1)
    return est, np.sqrt((base + np.maximum(other - ms_e, 0.0)) / (S * P)), df


@lru_cache(maxsize=256)
def _mde_factor_scalar(df: float, alpha: float, power: float) -> float:
    """k with P(T_df(ncp = k) > t_{1−α/2, df}) = power: the noncentral-t power equation."""
    if not df >= 1:
        return float("nan")
    crit = float(scipy.stats.t.ppf(1 - alpha / 2, df))
    if df > 1e4:
        return float(scipy.stats.norm.ppf(1 - alpha / 2) + scipy.stats.norm.ppf(power))
    f = lambda k: float(scipy.stats.nct.sf(crit, df, k)) - power  # noqa: E731
    hi = crit + 2 * float(scipy.stats.norm.ppf(power)) + 1.0
    while f(hi) < 0:
        hi *= 2
    return float(scipy.optimize.brentq(f, 0.0, hi, xtol=1e-8))


def mde_factor(df, alpha: float = 0.05, power: float = 0.8) -> np.ndarray | float:
    """MDE / SE: the true effect, in SE units, that a two-sided t-test at `alpha` with `df` degrees
    of freedom detects with probability `power`, from the noncentral t: P(T_df,k > t_{1−α/2,df}) = power
    (the opposite tail, < 0.1 %, ignored). For large df this is the textbook z_{1−α/2} + z_power
    (2.80 at 5 %, 80 %); (t_{1−α/2,df} + t_{power,df}) would understate it at 2 df (5.36 vs 5.65
    here, only ~64 % power at 3 seeds in simulation). Vectorised over df; df < 1 gives nan."""
    d = np.asarray(df, dtype=np.float64)
    out = np.full(d.shape, np.nan)
    ok = d >= 1
    for value in np.unique(d[ok]):  # df takes few distinct values (one per design)
        out[d == value] = _mde_factor_scalar(float(value), float(alpha), float(power))
    return float(out) if out.ndim == 0 else out


def _ratio(x, se) -> np.ndarray:
    """x / se, with se = 0 mapped to ±inf by the sign of x (and 0 when x = 0)."""
    x, se = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(se, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = x / se
    return np.where(se == 0, np.where(x > 0, np.inf, np.where(x < 0, -np.inf, 0.0)), r)


def decide(ci_lo, ci_hi, direction: int = +1, eq_lo=None, eq_hi=None, sesoi: float | None = None):
    """The verdict rule shared by every claim (and the listening study); vectorised. Equivalence is
    read before significance: the four outcomes of Lakens, Scheel & Isager (2018, AMPPS 1(2), Fig. 1).

    - 'equivalent'   a sesoi > 0 is given and the equivalence interval [eq_lo, eq_hi] lies inside
                     (−sesoi, +sesoi): the two one-sided tests (TOST) at α when it is the
                     (1 − 2α) CI (Schuirmann 1987); without eq_lo/eq_hi the (1 − α) CI is used (a
                     stricter TOST at α/2). This wins whatever the p-value: an effect shown to lie
                     inside ±sesoi is negligible even when the (1 − α) CI also excludes 0 (then it is
                     "established but negligible", `negligible` below);
    - 'supported'    otherwise, the (1 − α) CI [ci_lo, ci_hi] excludes 0 on the claimed side
                     (direction +1: ci_lo > 0; −1: ci_hi < 0);
    - 'contradicted' otherwise, it excludes 0 on the other side;
    - 'inconclusive' otherwise, including a non-finite CI.
    Without a sesoi this is the plain significance rule (supported / contradicted / inconclusive).
    Scalars in → str out; arrays in → array of str.
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction}")
    lo, hi = np.asarray(ci_lo, dtype=np.float64), np.asarray(ci_hi, dtype=np.float64)
    ok = np.isfinite(lo) & np.isfinite(hi)
    sup = ok & ((lo > 0) if direction == 1 else (hi < 0))
    con = ok & ((hi < 0) if direction == 1 else (lo > 0))
    eq = _equivalent(lo, hi, eq_lo, eq_hi, sesoi)
    out = np.select([eq, sup, con], ["equivalent", "supported", "contradicted"], "inconclusive")
    return str(out) if out.ndim == 0 else out


def _equivalent(lo: np.ndarray, hi: np.ndarray, eq_lo=None, eq_hi=None, sesoi: float | None = None) -> np.ndarray:
    """True where the equivalence interval ([eq_lo, eq_hi], else [lo, hi]) lies inside (−sesoi, sesoi);
    all False without a finite sesoi. A sesoi ≤ 0 is an error."""
    if sesoi is None or not np.isfinite(sesoi):
        return np.zeros(np.broadcast(lo, hi).shape, dtype=bool)
    if sesoi <= 0:
        raise ValueError(f"sesoi must be > 0, got {sesoi}")
    elo = lo if eq_lo is None else np.asarray(eq_lo, dtype=np.float64)
    ehi = hi if eq_hi is None else np.asarray(eq_hi, dtype=np.float64)
    return np.isfinite(elo) & np.isfinite(ehi) & (elo > -sesoi) & (ehi < sesoi)


def negligible(ci_lo, ci_hi, eq_lo=None, eq_hi=None, sesoi: float | None = None):
    """True where `decide` says 'equivalent' and the (1 − α) CI [ci_lo, ci_hi] also excludes 0: an
    effect that is established but lies inside ±sesoi (Lakens et al. 2018, outcome "statistically
    different from zero and statistically equivalent"). Vectorised; scalars in → bool out."""
    lo, hi = np.asarray(ci_lo, dtype=np.float64), np.asarray(ci_hi, dtype=np.float64)
    out = _equivalent(lo, hi, eq_lo, eq_hi, sesoi) & np.isfinite(lo) & np.isfinite(hi) & ((lo > 0) | (hi < 0))
    return bool(out) if out.ndim == 0 else out


def verdict_from_se(estimate, se, df, direction: int = +1, sesoi: float | None = None,
                    alpha: float = 0.05) -> dict:
    """t-based inference from (estimate, se, df); vectorised, every value an array.

    ci = estimate ± t_{1−α/2,df}·se; p = 2·P(T_df > |estimate/se|); mde = mde_factor(df, α)·se;
    with sesoi: p_equiv = max(P(T_df > (est + sesoi)/se), P(T_df < (est − sesoi)/se)) (TOST) and
    the (1 − 2α) CI for `decide` (equivalence first: Lakens et al. 2018); `negligible` is True
    where the verdict is 'equivalent' and the (1 − α) CI excludes 0 (all False without a sesoi).
    se = 0 gives a zero-width CI (p 1 if the estimate is 0, else 0); se nan or df < 1 gives nan
    CI, p and mde, and the verdict 'inconclusive'.
    """
    est = np.asarray(estimate, dtype=np.float64)
    se = np.asarray(se, dtype=np.float64)
    dfa = np.asarray(df, dtype=np.float64)
    valid = np.isfinite(se) & (dfa >= 1)
    dfv = np.where(valid, dfa, np.nan)
    crit = scipy.stats.t.ppf(1 - alpha / 2, dfv)
    lo, hi = est - crit * se, est + crit * se
    p = 2 * scipy.stats.t.sf(np.abs(_ratio(est, se)), dfv)
    mde = mde_factor(dfv, alpha) * se
    out = {"ci_lo": lo, "ci_hi": hi, "p": p, "mde": mde, "p_equiv": np.full(np.broadcast(est, se).shape, np.nan)}
    eq_lo = eq_hi = None
    if sesoi is not None and np.isfinite(sesoi):
        crit2 = scipy.stats.t.ppf(1 - alpha, dfv)
        eq_lo, eq_hi = est - crit2 * se, est + crit2 * se
        p_low = scipy.stats.t.sf(_ratio(est + sesoi, se), dfv)   # H0: δ ≤ −sesoi
        p_high = scipy.stats.t.cdf(_ratio(est - sesoi, se), dfv)  # H0: δ ≥ +sesoi
        out["p_equiv"] = np.maximum(p_low, p_high)
    out["verdict"] = decide(lo, hi, direction, eq_lo, eq_hi, sesoi)
    out["negligible"] = np.asarray(negligible(lo, hi, eq_lo, eq_hi, sesoi))
    return out


def _sd(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if x.size >= 2 else float("nan")


def _es(est: float, sd: float) -> float:
    """estimate / sd; nan for nan sd; ±inf (0 when est = 0) for sd = 0."""
    if not np.isfinite(sd):
        return float("nan")
    return float(_ratio(est, sd))


def paired_verdict(diffs: pd.DataFrame, direction: int = +1, sesoi: float | None = None,
                   alpha: float = 0.05, value: str = "d") -> dict:
    """The one paired-effect rule every outcome claim uses (docs/design.md §4).

    diffs: one row per (seed, prompt_id) with `value` = metric(arm) − metric(baseline). Seeds and
    prompts are both random (the claim is about new seeds and new prompts) and crossed.
    Also: no `prompt_id` column or one prompt → a seed-level one-sample t over the seeds; no `seed`
    column or one seed → a one-sample t over the rows (prompts, or independent units such as clips;
    with one seed the seed-to-seed variation is *not* in the CI: require enough seeds upstream).
    Table preparation (NaN rows, averaging of duplicate cells, cut to a complete block for missing
    cells): `crossed_table`. Variance and df: `crossed_mean_se` (the seed-level t-test plus the
    between-prompt component the seed means share, df = S − 1; why: calibrated at 3 seeds in every
    variance structure simulated, where the Satterthwaite/ANOVA alternative is not). Inference and
    verdict: `verdict_from_se` / `decide`.

    Returns floats/ints/str: estimate, ci_lo, ci_hi (two-sided 1 − α), p (two-sided), df, se,
    mde (|effect| detected with 80 % power at α, two-sided, for this design and this SE),
    es_seed (estimate / SD of the per-seed mean differences; nan below 2 seeds), es_prompt
    (estimate / SD of the per-prompt mean differences; nan below 2 prompts), n_seeds, n_prompts,
    n (cells used), sesoi (echo, nan if none), p_equiv (TOST p against ±sesoi; nan without sesoi),
    verdict ('supported' | 'contradicted' | 'equivalent' | 'inconclusive', see `decide`:
    equivalence before significance, Lakens et al. 2018), negligible (bool: 'equivalent' and the
    (1 − α) CI excludes 0, an established but negligible effect; False without a sesoi), method,
    note (rows or cells dropped; "negligible: …" when negligible). With fewer than 2 units of the
    factor carrying the variance (e.g. one seed and one prompt) the CI, p and mde are nan and the
    verdict 'inconclusive'.
    """
    table, seeds, prompts, note = crossed_table(diffs, value)
    has_seed, has_prompt = "seed" in diffs.columns, "prompt_id" in diffs.columns
    S, P = table.shape
    est, se, df = crossed_mean_se(table.reshape(S, P))
    est, se = float(est), float(se)
    res = verdict_from_se(est, se, df, direction, sesoi, alpha)
    if S >= 2 and P >= 2:
        method = (f"crossed seed × prompt: seed-level t + between-prompt component, df = S − 1 = {df}" if S <= P else
                  f"crossed seed × prompt: prompt-level t + between-seed component, df = P − 1 = {df}")
    elif S >= 2:
        method = "seed-level one-sample t over seeds"
    elif has_prompt and P >= 2:
        method = "one-sample t over prompts (one seed: seed variation not in the CI)" if has_seed else \
                 "one-sample t over prompts"
    else:
        method = "one-sample t over rows"
    if S * P < 2:
        note = "; ".join(x for x in (note, "fewer than 2 units: no CI") if x)
    is_negligible = bool(res["negligible"])
    if is_negligible:
        note = "; ".join(x for x in (f"negligible: the {1 - alpha:.0%} CI excludes 0 but the {1 - 2 * alpha:.0%} CI "
                                     f"lies inside ±sesoi = ±{sesoi:.3g}", note) if x)
    seed_means = table.mean(axis=1) if S and has_seed else np.array([])
    prompt_means = table.mean(axis=0) if P and has_prompt else np.array([])
    return {"estimate": est, "ci_lo": float(res["ci_lo"]), "ci_hi": float(res["ci_hi"]), "p": float(res["p"]),
            "df": float(df) if S * P >= 2 else float("nan"), "se": se, "mde": float(res["mde"]),
            "es_seed": _es(est, _sd(seed_means)), "es_prompt": _es(est, _sd(prompt_means)),
            "n_seeds": int(S) if has_seed else 0, "n_prompts": int(P) if has_prompt else 0, "n": int(S * P),
            "sesoi": float(sesoi) if sesoi is not None else float("nan"), "p_equiv": float(res["p_equiv"]),
            "verdict": str(res["verdict"]), "negligible": is_negligible, "method": method, "note": note}


def noninferiority_from_se(estimate, se, df, margin: float, direction: int = +1, alpha: float = 0.05) -> dict:
    """One-sided test of harm against `margin` > 0; vectorised (see `noninferiority`).

    With direction +1 (higher is better) harm is d < 0: H0 'harm ≥ margin' is δ ≤ −margin,
    t = (estimate + margin)/se, p = P(T_df > t). In general t = (direction·estimate + margin)/se.
    ci = estimate ± t_{1−α,df}·se (the 1 − 2α CI, whose harm-side bound is the one-sided 1 − α bound).
    'supported' (non-inferior): the harm-side bound is inside the margin (direction +1: ci_lo > −margin);
    'contradicted' (inferior): the whole CI is beyond the margin (direction +1: ci_hi < −margin);
    else 'inconclusive'. mde: the smallest margin this design shows non-inferiority for with 80 %
    power when the truth is no difference, mde_factor(df, 2α)·se (a one-sided test at α).
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction}")
    if not (np.isfinite(margin) and margin > 0):
        raise ValueError(f"the non-inferiority margin must be a finite number > 0, got {margin}")
    est = np.asarray(estimate, dtype=np.float64)
    se = np.asarray(se, dtype=np.float64)
    dfa = np.asarray(df, dtype=np.float64)
    dfv = np.where(np.isfinite(se) & (dfa >= 1), dfa, np.nan)
    crit = scipy.stats.t.ppf(1 - alpha, dfv)
    lo, hi = est - crit * se, est + crit * se
    ok = np.isfinite(lo) & np.isfinite(hi)
    good_bound, bad_bound = (lo, hi) if direction == 1 else (-hi, -lo)  # in "benefit" units: d·direction
    verdict_ = np.select([ok & (good_bound > -margin), ok & (bad_bound < -margin)],
                         ["supported", "contradicted"], "inconclusive")
    p = scipy.stats.t.sf(_ratio(direction * est + margin, se), dfv)
    return {"ci_lo": lo, "ci_hi": hi, "p": p, "mde": mde_factor(dfv, 2 * alpha) * se,
            "verdict": str(verdict_) if verdict_.ndim == 0 else verdict_}


def noninferiority(diffs: pd.DataFrame, margin: float, direction: int = +1, alpha: float = 0.05,
                   value: str = "d") -> dict:
    """Non-inferiority of the arm against the baseline (claim C8): is the harm below `margin`?

    Same table, estimate, SE and df as `paired_verdict` (crossed, seed-level or rows), then the
    one-sided test of H0 'harm ≥ margin' at α (`noninferiority_from_se`). direction +1: higher is
    better (harm = a drop, e.g. inter-prompt Vendi); −1: lower is better (harm = a rise, e.g. FD).
    The margin is pre-registered, in the units of `value`, > 0.

    Returns: estimate, ci_lo, ci_hi (the 1 − 2α CI used), p (one-sided, H0: harm ≥ margin), margin,
    mde (the smallest margin provable with 80 % power if the truth is no difference), verdict
    ('supported' = non-inferior, 'contradicted' = inferior by more than the margin, 'inconclusive'),
    and se, df, n_seeds, n_prompts, n, method, note from `paired_verdict`.
    """
    base = paired_verdict(diffs, direction, None, alpha, value)
    res = noninferiority_from_se(base["estimate"], base["se"], base["df"], margin, direction, alpha)
    return {"estimate": base["estimate"], "ci_lo": float(res["ci_lo"]), "ci_hi": float(res["ci_hi"]),
            "p": float(res["p"]), "margin": float(margin), "mde": float(res["mde"]), "verdict": str(res["verdict"]),
            "se": base["se"], "df": base["df"], "n_seeds": base["n_seeds"], "n_prompts": base["n_prompts"],
            "n": base["n"], "method": base["method"], "note": base["note"]}


def spearman_ci(x: Sequence[float], y: Sequence[float], n_boot: int = 2000, alpha: float = 0.05,
                seed: int = 0) -> tuple[float, float, float, float]:
    """(ρ, lo, hi, p): Spearman's ρ over independent pairs (e.g. clips, claim C2), its percentile
    bootstrap (1 − α) CI resampling the pairs, and scipy's two-sided p. The pairs are the units, so
    the plain bootstrap is the right resampling here (unlike seeds, there are hundreds of them).
    Fewer than 4 finite pairs → all nan."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 4:
        return (float("nan"),) * 4
    rho, p = spearman(a, b)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(n_boot, a.size))
    ra = scipy.stats.rankdata(a[idx], axis=1)
    rb = scipy.stats.rankdata(b[idx], axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        boots = (ra * rb).sum(axis=1) / np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    boots = boots[np.isfinite(boots)]
    if boots.size == 0:
        return rho, float("nan"), float("nan"), p
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return rho, float(lo), float(hi), p


# ----------------------------------------------------------------------------- per-unit summaries (C3, C4)


def _units(unit: str | Sequence[str]) -> list[str]:
    return [unit] if isinstance(unit, str) else list(unit)


def trend_slopes(df: pd.DataFrame, value: str, time: str, unit: str | Sequence[str]) -> pd.DataFrame:
    """Least-squares slope of `value` on `time` within each unit (e.g. per run), claim C3.

    slope = Σ(t − t̄)(y − ȳ) / Σ(t − t̄)² over the unit's rows with both finite; nan when the unit
    has fewer than 2 distinct times. One row per unit: the unit column(s), slope, n (rows used).
    The per-unit slopes (or their arm − baseline differences per seed) then go to paired_verdict.
    """
    keys = _units(unit)
    rows = []
    for key, part in df.groupby(keys, sort=True):
        t = part[time].to_numpy(dtype=np.float64)
        y = part[value].to_numpy(dtype=np.float64)
        ok = np.isfinite(t) & np.isfinite(y)
        t, y = t[ok], y[ok]
        tc = t - t.mean() if t.size else t
        sxx = float((tc**2).sum())
        slope = float((tc * (y - y.mean())).sum() / sxx) if t.size >= 2 and sxx > 0 else float("nan")
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))), "slope": slope, "n": int(t.size)})
    return pd.DataFrame(rows, columns=keys + ["slope", "n"])


def within_unit_rank_corr(df: pd.DataFrame, x: str, y: str, unit: str | Sequence[str]) -> pd.DataFrame:
    """Spearman ρ of `y` on `x` within each unit (e.g. h against t within each clip), claim C4.

    One row per unit: the unit column(s), rho (`spearman`: nan for < 3 finite pairs or a constant
    side), n (finite pairs). The mean per-unit ρ is then tested with paired_verdict over the units
    as independent rows (a within-unit test: it sees dependence that pooling across units hides).
    """
    keys = _units(unit)
    rows = []
    for key, part in df.groupby(keys, sort=True):
        a, b = part[x].to_numpy(dtype=np.float64), part[y].to_numpy(dtype=np.float64)
        rho, _ = spearman(a, b)
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))), "rho": rho,
                     "n": int((np.isfinite(a) & np.isfinite(b)).sum())})
    return pd.DataFrame(rows, columns=keys + ["rho", "n"])


def factor_share(table: np.ndarray) -> float:
    """The share of the within-unit variance of y explained by a factor common to all units (claim C4).

    `table` Y[u, k]: unit u (e.g. a clip) at level k of the factor (e.g. noise level t), complete.
    Two-way decomposition without replication, y_uk = μ + a_u + b_k + e_uk: with R = Y − row means,
    SS_within = Σ R², SS_factor = U·Σ_k b̂_k² (b̂ = column means of R), SS_e = SS_within − SS_factor,
    MS_e = SS_e / ((U − 1)(K − 1)). The share is bias-corrected like ω² (Hays 1963):

        share = (SS_factor − (K − 1)·MS_e) / SS_within,

    so it is ≈ 0, not ≈ 1/U, when the factor explains nothing; it can fall slightly below 0 by chance.
    nan for fewer than 2 units or levels or no within-unit variance."""
    Y = np.asarray(table, dtype=np.float64)
    U, K = Y.shape
    R = Y - Y.mean(axis=1, keepdims=True)
    ss_within = float((R**2).sum())
    if U < 2 or K < 2 or not ss_within > 0:
        return float("nan")
    ss_factor = U * float((R.mean(axis=0) ** 2).sum())
    ms_e = (ss_within - ss_factor) / ((U - 1) * (K - 1))
    return (ss_factor - (K - 1) * ms_e) / ss_within


def factor_share_test(df: pd.DataFrame, value: str, factor: str, unit: str, minimum: float, n_boot: int = 2000,
                      alpha: float = 0.05, seed: int = 0) -> dict:
    """Is the share of within-unit variance of `value` explained by `factor` (`factor_share`) above a
    pre-registered `minimum`? Units are resampled (percentile bootstrap, (1 − α) CI); only units seen
    at every level are used. 'supported': ci_lo > minimum; 'contradicted': ci_hi < minimum; else
    'inconclusive'. p: two-sided bootstrap p of share = minimum, 2·min(P*(s ≤ m), P*(s ≥ m)) (floored
    at 1/n_boot). direction: the sign of Spearman ρ between the factor's levels and their effects b̂_k
    (+1 when `value` rises with the factor). Returns estimate, ci_lo, ci_hi, p, minimum, direction, n."""
    wide = df.pivot_table(index=unit, columns=factor, values=value, aggfunc="mean").dropna()
    Y = wide.to_numpy(dtype=np.float64)
    est = factor_share(Y)
    rng = np.random.default_rng(seed)
    boots = np.array([factor_share(Y[rng.integers(0, len(Y), len(Y))]) for _ in range(n_boot)]) if len(Y) >= 2 else np.array([])
    boots = boots[np.isfinite(boots)]
    if boots.size == 0 or not np.isfinite(est):
        return {"estimate": est, "ci_lo": np.nan, "ci_hi": np.nan, "p": np.nan, "minimum": minimum, "direction": 0,
                "n": len(Y), "verdict": "inconclusive"}
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    p = max(2 * min((boots <= minimum).mean(), (boots >= minimum).mean()), 1 / boots.size)
    effects = (Y - Y.mean(axis=1, keepdims=True)).mean(axis=0)
    rho, _ = spearman(wide.columns.to_numpy(dtype=np.float64), effects)
    verdict_ = "supported" if lo > minimum else "contradicted" if hi < minimum else "inconclusive"
    return {"estimate": float(est), "ci_lo": float(lo), "ci_hi": float(hi), "p": float(min(p, 1.0)), "minimum": minimum,
            "direction": int(np.sign(rho)) if np.isfinite(rho) else 0, "n": len(Y), "verdict": verdict_}
