"""Statistics of the scorecard against simulated data and hand-computed answers (docs/design.md §4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import scipy.stats

from eisbach_lib.stats import (bootstrap_ci, crossed_mean_se, crossed_table, decide, holm, mde_factor, negligible,
                               noninferiority, noninferiority_from_se, paired_differences, paired_verdict, spearman,
                               trend_slopes, verdict_from_se, within_unit_rank_corr)


# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_covers_true_mean_at_about_nominal_rate():
    rng = np.random.default_rng(123)
    true_mean, hits = 2.0, 0
    for i in range(200):
        x = rng.normal(true_mean, 1.5, size=30)
        mean, lo, hi = bootstrap_ci(x, n_boot=1000, seed=i)
        assert lo <= mean <= hi and mean == pytest.approx(x.mean())
        hits += lo <= true_mean <= hi
    coverage = hits / 200
    print("95% percentile-bootstrap coverage over 200 simulated samples of n=30:", coverage)
    assert 0.88 <= coverage <= 0.99


def test_bootstrap_ci_narrows_with_n_and_is_reproducible():
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=20), rng.normal(size=2000)
    _, lo_s, hi_s = bootstrap_ci(small)
    _, lo_l, hi_l = bootstrap_ci(large)
    assert hi_l - lo_l < (hi_s - lo_s) / 4
    assert bootstrap_ci(small, seed=7) == bootstrap_ci(small, seed=7)
    assert bootstrap_ci([np.nan, 1.0, np.nan]) == (1.0, 1.0, 1.0)
    assert all(np.isnan(bootstrap_ci([])))


def test_cluster_bootstrap_keeps_between_group_variance():
    """Items within a seed share a large seed effect: the two-level CI must be much wider than the
    naive one that treats all 300 clips as independent, and cover the true mean about as often
    as nominal (checked over 100 simulated experiments)."""
    rng = np.random.default_rng(5)
    widths_naive, widths_cluster, hits = [], [], 0
    for i in range(100):
        seeds = np.repeat(np.arange(6), 50)
        x = rng.normal(0.0, 1.0, 6)[seeds] + rng.normal(0.0, 0.3, seeds.size)
        _, lo_n, hi_n = bootstrap_ci(x, n_boot=500, seed=i)
        _, lo_c, hi_c = bootstrap_ci(x, n_boot=500, seed=i, groups=seeds)
        widths_naive.append(hi_n - lo_n)
        widths_cluster.append(hi_c - lo_c)
        hits += lo_c <= 0.0 <= hi_c
    print("mean CI width naive:", np.mean(widths_naive), "cluster:", np.mean(widths_cluster), "cluster coverage:", hits / 100)
    assert np.mean(widths_cluster) > 3 * np.mean(widths_naive)
    assert hits / 100 >= 0.75  # 6 clusters: the percentile bootstrap is a little narrow, never naive-narrow


# ----------------------------------------------------------------------------- Holm


def test_holm_matches_hand_computed_example():
    # sorted p: 0.01, 0.02, 0.03, 0.04 with m = 4 → 4·0.01 = 0.04, 3·0.02 = 0.06, 2·0.03 = 0.06, 1·0.04 = 0.04 → monotone 0.06
    p = [0.03, 0.01, 0.04, 0.02]
    assert np.allclose(holm(p), [0.06, 0.04, 0.06, 0.06])
    # caps at 1 and keeps NaN out of m: m = 3 here
    adj = holm([0.5, np.nan, 0.001, 0.4])
    assert np.allclose(adj[[0, 2, 3]], [0.8, 0.003, 0.8]) and np.isnan(adj[1])
    assert np.allclose(holm([0.9, 0.8]), [1.0, 1.0])  # 2·0.8 = 1.6 → 1, then max(1, 0.9) = 1
    assert holm([]).size == 0


def test_holm_is_monotone_and_never_below_raw():
    p = np.random.default_rng(1).uniform(size=12)
    adj = holm(p)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0)
    assert np.all(adj >= p) and np.all(adj <= 1.0)


# ----------------------------------------------------------------------------- paired differences


def _experiment(shift: float, n_prompts: int = 12, n_seeds: int = 3, seed: int = 0, noise: float = 0.5) -> pd.DataFrame:
    """Long table: arms none/eisbach × seeds × prompts, with prompt and seed effects shared by both
    arms (what pairing removes) and eisbach = none + shift + noise."""
    rng = np.random.default_rng(seed)
    prompt_effect = rng.normal(0.0, 2.0, n_prompts)
    seed_effect = rng.normal(0.0, 1.0, n_seeds)
    rows = []
    for s in range(n_seeds):
        for p in range(n_prompts):
            base = 10.0 + prompt_effect[p] + seed_effect[s]
            rows.append({"arm": "none", "seed": s, "prompt_id": f"p{p}", "score": base + rng.normal(0.0, noise)})
            rows.append({"arm": "eisbach", "seed": s, "prompt_id": f"p{p}", "score": base + shift + rng.normal(0.0, noise)})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)  # order must not matter


def test_paired_differences_match_on_seed_and_prompt():
    df = _experiment(1.0)
    pairs = paired_differences(df, "score", "eisbach")
    assert len(pairs) == 36
    row = pairs.iloc[0]
    none = df[(df.arm == "none") & (df.seed == row.seed) & (df.prompt_id == row.prompt_id)].score.item()
    eis = df[(df.arm == "eisbach") & (df.seed == row.seed) & (df.prompt_id == row.prompt_id)].score.item()
    assert row["diff"] == pytest.approx(eis - none)
    # an unpaired row is dropped, and a `sample` column joins the key
    extra = pd.DataFrame([{"arm": "eisbach", "seed": 9, "prompt_id": "p0", "score": 100.0}])
    assert len(paired_differences(pd.concat([df, extra]), "score", "eisbach")) == 36
    with_samples = pd.concat([df.assign(sample=0), df.assign(sample=1, score=df.score + 1.0)])
    assert len(paired_differences(with_samples, "score", "eisbach")) == 72


# ----------------------------------------------------------------------------- Spearman


def test_spearman_is_nan_safe():
    x = np.arange(10.0)
    rho, p = spearman(x, x**3)
    assert rho == pytest.approx(1.0) and p < 1e-6
    rho, _ = spearman(x, -x)
    assert rho == pytest.approx(-1.0)
    rho, _ = spearman([1.0, np.nan, 3.0, 4.0, 5.0], [2.0, 1.0, np.nan, 8.0, 9.0])
    assert rho == pytest.approx(1.0)  # pairs with a NaN are dropped: (1,2), (4,8), (5,9)
    assert all(np.isnan(spearman([1.0, 2.0], [3.0, 4.0])))
    assert all(np.isnan(spearman([1.0, 1.0, 1.0], [3.0, 4.0, 5.0])))
    assert isinstance(spearman(x, x)[0], float)


# ----------------------------------------------------------------------------- paired_verdict (docs/design.md §4)


def _long(table: np.ndarray, seeds=None, prompts=None) -> pd.DataFrame:
    """A seed × prompt table as the long diffs frame paired_verdict takes."""
    S, P = table.shape
    seeds = list(range(S)) if seeds is None else seeds
    prompts = [f"p{j}" for j in range(P)] if prompts is None else prompts
    return pd.DataFrame([{"seed": seeds[i], "prompt_id": prompts[j], "d": table[i, j]} for i in range(S) for j in range(P)])


def _known_table(a: float = 2.0, b: float = 1.0, k: float = 1.0, mu: float = 1.0) -> np.ndarray:
    """y = μ + a·(−1, 0, 1)_s + b·(−1, 0, 1)_p + k·I with I = [[1, −1, 0], [−1, 1, 0], [0, 0, 0]] (row and
    column sums 0), so by hand: MS_seed = 3·(2a²)/2 = 3a², MS_prompt = 3b², MS_resid = 4k²/4 = k²."""
    r = a * np.array([-1.0, 0.0, 1.0])
    c = b * np.array([-1.0, 0.0, 1.0])
    inter = k * np.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    return mu + r[:, None] + c[None, :] + inter


def test_paired_verdict_known_answer_on_a_balanced_table():
    # MS_seed = 12, MS_prompt = 3, MS_resid = 1 → se² = (12 + max(3 − 1, 0)) / 9 = 14/9, df = S − 1 = 2
    res = paired_verdict(_long(_known_table()))
    t975 = 4.302652729911275  # t_{0.975, 2}
    assert res["estimate"] == pytest.approx(1.0)
    assert res["se"] == pytest.approx(np.sqrt(14 / 9)) and res["df"] == 2.0
    assert res["ci_lo"] == pytest.approx(1 - t975 * np.sqrt(14 / 9)) and res["ci_hi"] == pytest.approx(1 + t975 * np.sqrt(14 / 9))
    # df = 2: P(T > t) = (1 − t/√(t² + 2))/2
    t = 1 / np.sqrt(14 / 9)
    assert res["p"] == pytest.approx(1 - t / np.sqrt(t * t + 2))
    # seed means (−1, 1, 3): SD 2; prompt means (0, 1, 2): SD 1
    assert res["es_seed"] == pytest.approx(0.5) and res["es_prompt"] == pytest.approx(1.0)
    assert (res["n_seeds"], res["n_prompts"], res["n"]) == (3, 3, 9)
    assert res["verdict"] == "inconclusive" and np.isnan(res["p_equiv"]) and np.isnan(res["sesoi"])
    assert res["mde"] == pytest.approx(mde_factor(2) * res["se"])
    assert res["negligible"] is False
    for key, value in res.items():  # plain Python types only (the scorecard writes them out)
        assert type(value) in (float, int, str, bool), key
    # a prompt variance below the residual one is truncated at 0: MS_prompt = 0 → se² = 12/9
    flat = paired_verdict(_long(_known_table(b=0.0)))
    assert flat["se"] == pytest.approx(np.sqrt(12 / 9))
    # the order of rows does not matter
    assert paired_verdict(_long(_known_table()).sample(frac=1.0, random_state=1))["se"] == pytest.approx(res["se"])


def test_paired_verdict_the_scarcer_factor_sets_the_df():
    """4 seeds × 2 prompts: prompts are the scarcer factor, df = P − 1 = 1, and the answer is the
    one for the transposed table (roles swapped)."""
    table = np.random.default_rng(3).normal(size=(4, 2)) + 0.3
    res = paired_verdict(_long(table))
    swapped = paired_verdict(_long(table.T))
    assert res["df"] == 1.0 and swapped["df"] == 1.0
    assert res["se"] == pytest.approx(swapped["se"]) and res["estimate"] == pytest.approx(swapped["estimate"])
    est, se, df = crossed_mean_se(table)
    assert float(se) == pytest.approx(res["se"]) and df == 1


def test_paired_verdict_seed_level_and_rows():
    # one number per seed: a one-sample t over seeds. 1, 2, 3: mean 2, se 1/√3, df 2
    seeds = pd.DataFrame({"seed": [0, 1, 2], "d": [1.0, 2.0, 3.0]})
    res = paired_verdict(seeds)
    t = 2 / (1 / np.sqrt(3))
    assert res["estimate"] == 2.0 and res["se"] == pytest.approx(1 / np.sqrt(3)) and res["df"] == 2.0
    assert res["p"] == pytest.approx(1 - t / np.sqrt(t * t + 2))
    assert res["n_seeds"] == 3 and res["n_prompts"] == 0 and np.isnan(res["es_prompt"])
    assert res["es_seed"] == pytest.approx(2.0) and "seed-level" in res["method"]
    # a single prompt_id is the same test
    assert paired_verdict(seeds.assign(prompt_id="p0"))["se"] == pytest.approx(res["se"])
    # no seed, no prompt: every row is a unit (e.g. clips)
    rows = pd.DataFrame({"d": [0.5, 1.5, 1.0, 2.0]})
    r = paired_verdict(rows)
    assert r["df"] == 3.0 and r["se"] == pytest.approx(np.std([0.5, 1.5, 1.0, 2.0], ddof=1) / 2)
    assert r["n"] == 4 and np.isnan(r["es_seed"]) and "rows" in r["method"]
    # one seed, several prompts: one-sample over prompts, and the method says the seed variance is missing
    one = paired_verdict(_long(np.array([[0.1, 0.4, 0.2, 0.6]])))
    assert one["df"] == 3.0 and "one seed" in one["method"]
    # fewer than 2 units: no CI, inconclusive
    single = paired_verdict(pd.DataFrame({"seed": [0], "prompt_id": ["a"], "d": [5.0]}))
    assert single["verdict"] == "inconclusive" and np.isnan(single["ci_lo"]) and np.isnan(single["mde"])
    assert single["estimate"] == 5.0
    empty = paired_verdict(pd.DataFrame({"seed": [0], "prompt_id": ["a"], "d": [np.nan]}))
    assert empty["verdict"] == "inconclusive" and empty["n"] == 0 and np.isnan(empty["estimate"])
    with pytest.raises(KeyError, match="no column 'diff'"):
        paired_verdict(seeds, value="diff")


def test_paired_verdict_direction_and_verdicts():
    table = _known_table(mu=8.0)  # estimate 8, se √(14/9) ≈ 1.25, CI ≈ [2.6, 13.4]
    up = paired_verdict(_long(table))
    assert up["verdict"] == "supported" and up["ci_lo"] > 0
    assert paired_verdict(_long(table), direction=-1)["verdict"] == "contradicted"
    assert paired_verdict(_long(-table), direction=-1)["verdict"] == "supported"
    assert paired_verdict(_long(-table))["verdict"] == "contradicted"
    # equivalence: a precise zero effect inside a wide sesoi
    zero = np.random.default_rng(0).normal(0.0, 0.01, size=(5, 12))
    zero -= zero.mean()
    eq = paired_verdict(_long(zero), sesoi=0.5)
    assert eq["verdict"] == "equivalent" and eq["p_equiv"] < 0.05 and eq["sesoi"] == 0.5
    assert paired_verdict(_long(zero), sesoi=1e-4)["verdict"] == "inconclusive"
    assert paired_verdict(_long(zero))["verdict"] == "inconclusive"
    with pytest.raises(ValueError):
        paired_verdict(_long(zero), direction=0)


def test_paired_verdict_zero_variance():
    zeros = paired_verdict(_long(np.zeros((3, 4))), sesoi=0.1)
    assert zeros["p"] == 1.0 and zeros["ci_lo"] == 0.0 == zeros["ci_hi"] and zeros["verdict"] == "equivalent"
    assert zeros["p_equiv"] == 0.0 and zeros["es_seed"] == 0.0
    const = paired_verdict(_long(np.full((3, 4), 0.25)))  # exactly representable: se exactly 0
    assert const["se"] == 0.0 and const["p"] == 0.0 and const["verdict"] == "supported" and const["es_seed"] == np.inf
    near = paired_verdict(_long(np.full((3, 4), 0.3)))  # rounding leaves a se of ~1e-17: same verdict
    assert near["p"] < 1e-12 and near["verdict"] == "supported"


def test_paired_verdict_equivalence_before_significance():
    """Lakens et al. (2018): an effect of 0.05 sesoi measured with a tiny SE is equivalent (and
    negligible: established, but inside ±sesoi), not supported; 2 sesoi with the same SE is
    supported; without a sesoi the old significance verdict stands."""
    rng = np.random.default_rng(11)
    noise = rng.normal(0.0, 1.0, size=(8, 16))
    noise = 1e-3 * (noise - noise.mean())  # tiny SE, mean exactly 0
    sesoi = 1.0
    small = paired_verdict(_long(0.05 * sesoi + noise), sesoi=sesoi)
    assert small["ci_lo"] > 0 and small["p"] < 1e-6  # clearly "significant"
    assert small["verdict"] == "equivalent" and small["negligible"] is True and small["note"].startswith("negligible")
    assert small["p_equiv"] < 1e-6
    big = paired_verdict(_long(2.0 * sesoi + noise), sesoi=sesoi)
    assert big["verdict"] == "supported" and big["negligible"] is False
    assert paired_verdict(_long(-2.0 * sesoi + noise), sesoi=sesoi)["verdict"] == "contradicted"
    assert paired_verdict(_long(-0.05 * sesoi + noise), sesoi=sesoi, direction=-1)["verdict"] == "equivalent"
    plain = paired_verdict(_long(0.05 * sesoi + noise))
    assert plain["verdict"] == "supported" and plain["negligible"] is False and plain["note"] == ""
    # nothing there, precisely: equivalent but not negligible
    null = paired_verdict(_long(noise), sesoi=sesoi)
    assert null["verdict"] == "equivalent" and null["negligible"] is False
    # a CI reaching past +sesoi is not equivalent, whatever the point estimate
    wide = paired_verdict(_long(0.05 * sesoi + 1e4 * noise), sesoi=sesoi)
    assert wide["ci_hi"] > sesoi and wide["verdict"] != "equivalent"


def test_paired_verdict_nan_duplicates_and_missing_cells():
    rng = np.random.default_rng(4)
    table = rng.normal(size=(4, 6))
    full = _long(table)
    # a NaN cell drops that prompt (missing 1/4 of its seeds) rather than a seed (missing 1/6)
    with_nan = full.copy()
    with_nan.loc[(with_nan.seed == 2) & (with_nan.prompt_id == "p3"), "d"] = np.nan
    res = paired_verdict(with_nan)
    ref = paired_verdict(full[full.prompt_id != "p3"])
    assert res["se"] == pytest.approx(ref["se"]) and res["n"] == 20 and res["n_prompts"] == 5
    assert "1 non-finite rows dropped" in res["note"] and "prompts ['p3']" in res["note"]
    # a missing row behaves the same
    assert paired_verdict(full.drop(index=with_nan.index[with_nan.d.isna()]))["se"] == pytest.approx(ref["se"])
    # a seed that misses most prompts is dropped instead
    sparse = full[~((full.seed == 1) & full.prompt_id.isin(["p0", "p1", "p2", "p4"]))]
    res = paired_verdict(sparse)
    assert res["n_seeds"] == 3 and res["n_prompts"] == 6 and "seeds [1]" in res["note"]
    assert res["se"] == pytest.approx(paired_verdict(full[full.seed != 1])["se"])
    # rows sharing a cell (samples of a prompt) are averaged first
    doubled = pd.concat([full.assign(d=full.d - 1.0), full.assign(d=full.d + 1.0)])
    assert paired_verdict(doubled)["se"] == pytest.approx(paired_verdict(full)["se"])
    assert paired_verdict(doubled)["n"] == 24
    t, seeds, prompts, note = crossed_table(doubled)
    assert t.shape == (4, 6) and np.allclose(t, table) and note == ""


def test_decide_rule():
    assert decide(0.1, 0.5) == "supported"
    assert decide(-0.5, -0.1) == "contradicted"
    assert decide(-0.1, 0.5) == "inconclusive"
    assert decide(0.0, 0.5) == "inconclusive"  # touching 0 does not exclude it
    assert decide(-0.5, -0.1, direction=-1) == "supported"
    assert decide(0.1, 0.5, direction=-1) == "contradicted"
    assert decide(np.nan, 0.5, sesoi=1.0) == "inconclusive"
    # equivalence: the (1 − 2α) interval inside (−sesoi, sesoi); the (1 − α) CI when none is given
    assert decide(-0.3, 0.3, eq_lo=-0.2, eq_hi=0.2, sesoi=0.25) == "equivalent"
    assert decide(-0.3, 0.3, sesoi=0.25) == "inconclusive"
    assert decide(-0.3, 0.3, sesoi=0.35) == "equivalent"
    assert decide(-0.3, 0.3, eq_lo=-0.2, eq_hi=0.25, sesoi=0.25) == "inconclusive"  # on the bound: not inside
    # equivalence before significance (Lakens et al. 2018): a detected but small effect is equivalent
    assert decide(0.01, 0.05, sesoi=0.5) == "equivalent" and negligible(0.01, 0.05, sesoi=0.5)
    assert decide(0.01, 0.05) == "supported" and not negligible(0.01, 0.05)  # no sesoi: the old rule
    assert decide(0.01, 0.6, eq_lo=0.02, eq_hi=0.55, sesoi=0.5) == "supported"  # 90 % CI crosses +sesoi
    assert decide(-0.05, -0.01, eq_lo=-0.04, eq_hi=-0.02, sesoi=0.5) == "equivalent"
    assert not negligible(-0.1, 0.1, sesoi=0.5)  # equivalent, 0 inside: not "negligible", just nothing
    out = decide(np.array([0.1, -0.5, -0.1, 0.05]), np.array([0.5, -0.1, 0.1, 0.15]), sesoi=0.2)
    assert list(out) == ["supported", "contradicted", "equivalent", "equivalent"]
    assert list(negligible(np.array([0.1, -0.1, 0.05]), np.array([0.5, 0.1, 0.15]), sesoi=0.2)) == [False, False, True]
    with pytest.raises(ValueError):
        decide(0.1, 0.5, direction=2)
    with pytest.raises(ValueError):
        decide(0.1, 0.5, sesoi=0.0)


def test_verdict_from_se_and_mde():
    # z-limit: mde / se = z_0.975 + z_0.8
    assert mde_factor(1e6) == pytest.approx(1.959964 + 0.841621, abs=1e-4)
    # at small df it solves the noncentral-t power equation exactly
    for df in (2, 4, 11):
        k = mde_factor(df)
        assert scipy.stats.nct.sf(scipy.stats.t.ppf(0.975, df), df, k) == pytest.approx(0.8, abs=1e-6)
        assert k > scipy.stats.t.ppf(0.975, df) + scipy.stats.t.ppf(0.8, df)
    assert np.isnan(mde_factor(0)) and np.isnan(mde_factor(np.nan))
    # TOST: estimate 0.1, se 0.1, df 30, sesoi 0.5 → p_equiv = P(T < (0.1 − 0.5)/0.1) = t.cdf(−4, 30)
    res = verdict_from_se(0.1, 0.1, 30, sesoi=0.5)
    assert float(res["p_equiv"]) == pytest.approx(scipy.stats.t.cdf(-4.0, 30))
    assert str(res["verdict"]) == "equivalent"
    # TOST at α ⇔ the (1 − 2α) CI inside ±sesoi
    for est in np.linspace(-0.5, 0.5, 21):
        r = verdict_from_se(est, 0.1, 30, sesoi=0.4)
        inside = abs(est) + scipy.stats.t.ppf(0.95, 30) * 0.1 < 0.4
        assert (float(r["p_equiv"]) < 0.05) == inside
        assert (str(r["verdict"]) == "equivalent") == inside  # whatever the p-value
        assert bool(r["negligible"]) == (inside and abs(est) > scipy.stats.t.ppf(0.975, 30) * 0.1)
        if not inside:
            decisive = abs(est) > scipy.stats.t.ppf(0.975, 30) * 0.1
            assert str(r["verdict"]) == ("inconclusive" if not decisive else "supported" if est > 0 else "contradicted")


def test_noninferiority_known_answers():
    t95 = scipy.stats.t.ppf(0.95, 10)
    # higher is better, harm = a drop; margin 0.5
    ok = noninferiority_from_se(-0.2, 0.1, 10, 0.5)
    assert str(ok["verdict"]) == "supported" and float(ok["ci_lo"]) == pytest.approx(-0.2 - t95 * 0.1)
    assert float(ok["p"]) == pytest.approx(scipy.stats.t.sf(3.0, 10))
    assert str(noninferiority_from_se(-0.9, 0.1, 10, 0.5)["verdict"]) == "contradicted"
    assert str(noninferiority_from_se(-0.45, 0.1, 10, 0.5)["verdict"]) == "inconclusive"
    # lower is better (e.g. FD), harm = a rise: the mirror image
    assert str(noninferiority_from_se(0.2, 0.1, 10, 0.5, direction=-1)["verdict"]) == "supported"
    assert str(noninferiority_from_se(0.9, 0.1, 10, 0.5, direction=-1)["verdict"]) == "contradicted"
    assert float(noninferiority_from_se(0.2, 0.1, 10, 0.5, direction=-1)["p"]) == pytest.approx(scipy.stats.t.sf(3.0, 10))
    # a clear improvement is non-inferior too
    assert str(noninferiority_from_se(2.0, 0.1, 10, 0.5)["verdict"]) == "supported"
    # the NI mde: one-sided test at α = the two-sided MDE factor at 2α
    assert float(ok["mde"]) == pytest.approx(mde_factor(10, 0.1) * 0.1)
    with pytest.raises(ValueError):
        noninferiority_from_se(0.0, 0.1, 10, 0.0)
    # the DataFrame entry point: same estimate/se/df as paired_verdict
    diffs = _long(_known_table(mu=0.0))
    res = noninferiority(diffs, margin=10.0)
    base = paired_verdict(diffs)
    assert res["estimate"] == base["estimate"] and res["se"] == base["se"] and res["margin"] == 10.0
    assert res["verdict"] == "supported"  # |harm| bound ≈ 0 − 2.92·1.25 = −3.6 > −10
    assert noninferiority(diffs, margin=1.0)["verdict"] == "inconclusive"
    assert set(res) >= {"estimate", "ci_lo", "ci_hi", "p", "margin", "mde", "verdict"}


# ----------------------------------------------------------------------------- per-unit summaries


def test_trend_slopes():
    t = np.arange(5.0)
    df = pd.concat([pd.DataFrame({"run": "a", "step": t, "share": 1 + 2 * t}),
                    pd.DataFrame({"run": "b", "step": t, "share": 3 - t}),
                    pd.DataFrame({"run": "c", "step": [1.0, 1.0], "share": [0.0, 1.0]})])
    df.loc[len(df)] = {"run": "a", "step": 9.0, "share": np.nan}  # a NaN row is ignored
    out = trend_slopes(df, "share", "step", "run")
    assert list(out.columns) == ["run", "slope", "n"]
    assert out.slope.tolist()[:2] == pytest.approx([2.0, -1.0]) and out.n.tolist() == [5, 5, 2]
    assert np.isnan(out.slope.iloc[2])  # one distinct time: no slope
    # several unit columns
    two = trend_slopes(df.assign(arm="x"), "share", "step", ["arm", "run"])
    assert list(two.columns) == ["arm", "run", "slope", "n"] and two.slope.iloc[0] == pytest.approx(2.0)
    # a least-squares slope on noisy data equals numpy's polyfit
    rng = np.random.default_rng(0)
    noisy = pd.DataFrame({"u": 0, "t": rng.uniform(size=30), "y": rng.normal(size=30)})
    assert trend_slopes(noisy, "y", "t", "u").slope.iloc[0] == pytest.approx(np.polyfit(noisy.t, noisy.y, 1)[0])


def test_within_unit_rank_corr():
    t = np.linspace(0, 1, 8)
    df = pd.concat([pd.DataFrame({"clip": 0, "t": t, "h": t**3}),
                    pd.DataFrame({"clip": 1, "t": t, "h": -t}),
                    pd.DataFrame({"clip": 2, "t": t, "h": 0.5}),
                    pd.DataFrame({"clip": 3, "t": t[:2], "h": t[:2]})])
    out = within_unit_rank_corr(df, "t", "h", "clip")
    assert list(out.columns) == ["clip", "rho", "n"]
    assert out.rho.iloc[0] == pytest.approx(1.0) and out.rho.iloc[1] == pytest.approx(-1.0)
    assert np.isnan(out.rho.iloc[2]) and np.isnan(out.rho.iloc[3])  # constant side; < 3 pairs
    assert out.n.tolist() == [8, 8, 8, 2]
    # a non-monotone pooled pattern: every clip rises, but clips with later t sit lower, so the
    # pooled ρ is negative while each within-clip ρ is +1; the per-clip test sees the rise
    rows = [{"clip": c, "t": c + s, "h": -10 * c + s} for c in range(6) for s in np.linspace(0, 0.5, 5)]
    rising = pd.DataFrame(rows)
    assert spearman(rising.t, rising.h)[0] < 0
    per_clip = within_unit_rank_corr(rising, "t", "h", "clip")
    assert np.allclose(per_clip.rho, 1.0)
    assert paired_verdict(per_clip.rename(columns={"rho": "d"})[["d"]])["verdict"] == "supported"
