"""Statistics for the claims scorecard (DESIGN.md section 6).

The evaluation table is long: one row per generated clip with at least the columns `arm`,
`seed`, `prompt` (optionally `sample`) and one column per metric. Arms are compared with the
`none` baseline *paired by seed and prompt* (same adapter init, data order and sampling noise):

- `bootstrap_ci`       percentile bootstrap of a mean, optionally two-level (clusters, then items);
- `arm_summary`        per-arm mean with a 95% CI over seeds and prompts;
- `paired_differences` arm − baseline on rows matched on seed + prompt (+ sample);
- `paired_test`        mean paired difference with its CI, a Wilcoxon signed-rank p-value on the
                       per-prompt differences, Cohen's d_z;
- `holm`               Holm–Bonferroni adjustment across the claims C5–C8;
- `verdict`            supported / contradicted / inconclusive;
- `spearman`           ρ and p, nan-safe (claim C2).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import scipy.stats


def bootstrap_ci(values: Sequence[float], n_boot: int = 2000, alpha: float = 0.05, seed: int = 0,
                 groups: Sequence | None = None) -> tuple[float, float, float]:
    """(mean, lo, hi): the sample mean and its percentile-bootstrap (1 − alpha) interval.

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
                       pair_on: Sequence[str] = ("seed", "prompt")) -> pd.DataFrame:
    """Rows of `arm` and `baseline` matched on pair_on (+ `sample` if present): diff = arm − baseline.

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


def wilcoxon_p(d: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p (zero_method='wilcox'); all-zero → 1, fewer than 1 pair → nan."""
    if d.size == 0:
        return float("nan")
    if np.all(d == 0):
        return 1.0
    return float(scipy.stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def _cohens_dz(d: np.ndarray) -> float:
    """d_z = mean(d) / sd(d) (ddof=1); 0 when all d are 0, ±inf when sd = 0 ≠ mean, nan for < 2."""
    if d.size < 2:
        return float("nan")
    mean, sd = d.mean(), d.std(ddof=1)
    if sd == 0:
        return 0.0 if mean == 0 else float(np.sign(mean) * np.inf)
    return float(mean / sd)


def paired_test(df: pd.DataFrame, metric: str, arm: str, baseline: str = "none",
                pair_on: Sequence[str] = ("seed", "prompt"), unit: str = "prompt", cluster: str | None = "seed",
                n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> dict:
    """Paired comparison of `arm` with `baseline` on one metric.

    - mean_diff, ci_lo, ci_hi: mean of the matched differences (`paired_differences`) with its
      percentile-bootstrap CI; two-level over `cluster` (default the training seed: seeds, then
      the pairs within a seed) when that column exists and has ≥ 2 levels, else over pairs.
    - p_wilcoxon: Wilcoxon signed-rank (zero_method='wilcox', two-sided) on the per-`unit`
      differences: the differences are first averaged over seeds/samples within each prompt, so
      each prompt is one independent observation (seeds share prompts, so pairs are not
      independent). All-zero differences give p = 1.
    - effect_size: Cohen's d_z = mean / sd of the same per-prompt differences.
    - n: number of per-prompt differences (the Wilcoxon sample size); n_pairs: matched rows.
    """
    pairs = paired_differences(df, metric, arm, baseline, pair_on)
    d = pairs["diff"].to_numpy(dtype=np.float64)
    groups = None
    if cluster is not None and cluster in pairs.columns and pairs[cluster].nunique() >= 2:
        groups = pairs[cluster].to_numpy()
    mean_diff, lo, hi = bootstrap_ci(d, n_boot=n_boot, alpha=alpha, seed=seed, groups=groups)
    per_unit = pairs.groupby(unit)["diff"].mean().to_numpy(dtype=np.float64) if len(pairs) else np.array([])
    per_unit = per_unit[np.isfinite(per_unit)]
    return {"mean_diff": mean_diff, "ci_lo": lo, "ci_hi": hi, "p_wilcoxon": wilcoxon_p(per_unit),
            "effect_size": _cohens_dz(per_unit), "n": int(per_unit.size), "n_pairs": int(len(pairs))}


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


def verdict(ci_lo: float, ci_hi: float, direction: int = +1, guard_ok: bool = True) -> str:
    """The pre-registered rule for one claim from the CI of (arm − none).

    'supported'    the CI excludes 0 on the claimed side (direction +1: lo > 0; −1: hi < 0) and the
                   C8 no-mode-collapse guard holds (guard_ok);
    'contradicted' the CI excludes 0 on the other side;
    'inconclusive' otherwise: the CI contains 0, is not finite, or the claimed side holds but the
                   guard fails.
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction}")
    if not (np.isfinite(ci_lo) and np.isfinite(ci_hi)):
        return "inconclusive"
    lo, hi = sorted((direction * ci_lo, direction * ci_hi))
    if lo > 0:
        return "supported" if guard_ok else "inconclusive"
    if hi < 0:
        return "contradicted"
    return "inconclusive"


def arm_summary(df: pd.DataFrame, metric: str, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05,
                cluster: str | None = "seed") -> pd.DataFrame:
    """Per arm: mean of `metric` and its (1 − alpha) bootstrap CI over seeds and prompts.

    Two-level bootstrap (seeds, then the clips within a seed) when `cluster` is a column with ≥ 2
    levels for that arm, else a plain bootstrap over clips. Columns: arm, mean, ci_lo, ci_hi,
    n (clips), n_clusters.
    """
    rows = []
    for arm, part in df.groupby("arm", sort=True):
        groups = None
        n_clusters = 1
        if cluster is not None and cluster in part.columns:
            n_clusters = int(part[cluster].nunique())
            if n_clusters >= 2:
                groups = part[cluster].to_numpy()
        mean, lo, hi = bootstrap_ci(part[metric].to_numpy(), n_boot=n_boot, alpha=alpha, seed=seed, groups=groups)
        rows.append({"arm": arm, "mean": mean, "ci_lo": lo, "ci_hi": hi, "n": int(part[metric].notna().sum()),
                     "n_clusters": n_clusters})
    return pd.DataFrame(rows, columns=["arm", "mean", "ci_lo", "ci_hi", "n", "n_clusters"])


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
