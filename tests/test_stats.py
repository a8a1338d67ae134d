"""Statistics of the scorecard against simulated data and hand-computed answers (DESIGN.md §6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eisbach_lib.stats import (arm_summary, bootstrap_ci, holm, paired_differences, paired_test, spearman,
                               verdict)


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


# ----------------------------------------------------------------------------- paired tests


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
            rows.append({"arm": "none", "seed": s, "prompt": f"p{p}", "score": base + rng.normal(0.0, noise)})
            rows.append({"arm": "eisbach", "seed": s, "prompt": f"p{p}", "score": base + shift + rng.normal(0.0, noise)})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)  # order must not matter


def test_paired_differences_match_on_seed_and_prompt():
    df = _experiment(1.0)
    pairs = paired_differences(df, "score", "eisbach")
    assert len(pairs) == 36
    row = pairs.iloc[0]
    none = df[(df.arm == "none") & (df.seed == row.seed) & (df.prompt == row.prompt)].score.item()
    eis = df[(df.arm == "eisbach") & (df.seed == row.seed) & (df.prompt == row.prompt)].score.item()
    assert row["diff"] == pytest.approx(eis - none)
    # an unpaired row is dropped, and a `sample` column joins the key
    extra = pd.DataFrame([{"arm": "eisbach", "seed": 9, "prompt": "p0", "score": 100.0}])
    assert len(paired_differences(pd.concat([df, extra]), "score", "eisbach")) == 36
    with_samples = pd.concat([df.assign(sample=0), df.assign(sample=1, score=df.score + 1.0)])
    assert len(paired_differences(with_samples, "score", "eisbach")) == 72


def test_paired_test_finds_a_real_shift_and_not_a_null_one():
    real = paired_test(_experiment(0.8, seed=1), "score", "eisbach")
    null = paired_test(_experiment(0.0, seed=2), "score", "eisbach")
    print("shift 0.8:", real)
    print("shift 0  :", null)
    assert real["n"] == 12 and real["n_pairs"] == 36
    assert real["p_wilcoxon"] < 0.01 and real["ci_lo"] > 0 and real["effect_size"] > 1.0
    assert real["ci_lo"] < 0.8 < real["ci_hi"]
    assert null["p_wilcoxon"] > 0.05 and null["ci_lo"] < 0 < null["ci_hi"]


def test_paired_test_false_positive_rate_is_controlled():
    """Under the null, Wilcoxon p < 0.05 in about 5% of experiments (not 20%)."""
    ps = [paired_test(_experiment(0.0, seed=s), "score", "eisbach", n_boot=200)["p_wilcoxon"] for s in range(60)]
    rate = np.mean(np.array(ps) < 0.05)
    print("null rejection rate at 0.05 over 60 experiments:", rate)
    assert rate <= 0.15


def test_paired_test_all_zero_differences():
    df = _experiment(0.0, noise=0.0)
    res = paired_test(df, "score", "eisbach")
    assert res["p_wilcoxon"] == 1.0 and res["mean_diff"] == 0.0 and res["effect_size"] == 0.0
    assert res["ci_lo"] == 0.0 and res["ci_hi"] == 0.0


# ----------------------------------------------------------------------------- verdict and summaries


def test_verdict_rule():
    assert verdict(0.1, 0.5) == "supported"
    assert verdict(-0.5, -0.1) == "contradicted"
    assert verdict(-0.1, 0.5) == "inconclusive"
    assert verdict(0.1, 0.5, guard_ok=False) == "inconclusive"  # the C8 guard failed: not supported
    assert verdict(-0.5, -0.1, guard_ok=False) == "contradicted"
    assert verdict(-0.5, -0.1, direction=-1) == "supported"  # claim: the metric goes down
    assert verdict(0.1, 0.5, direction=-1) == "contradicted"
    assert verdict(0.0, 0.5) == "inconclusive"  # touching 0 does not exclude it
    assert verdict(np.nan, 0.5) == "inconclusive"
    with pytest.raises(ValueError):
        verdict(0.1, 0.5, direction=0)


def test_verdict_from_a_paired_test_end_to_end():
    up = paired_test(_experiment(1.0, seed=3), "score", "eisbach")
    down = paired_test(_experiment(-1.0, seed=4), "score", "eisbach")
    assert verdict(up["ci_lo"], up["ci_hi"]) == "supported"
    assert verdict(down["ci_lo"], down["ci_hi"]) == "contradicted"


def test_arm_summary_per_arm_mean_and_ci():
    df = _experiment(2.0, seed=6)
    summary = arm_summary(df, "score", n_boot=500, seed=0)
    assert list(summary.arm) == ["eisbach", "none"]
    for _, row in summary.iterrows():
        values = df[df.arm == row.arm].score
        assert row["mean"] == pytest.approx(values.mean())
        assert row.ci_lo < row["mean"] < row.ci_hi and row.n == 36 and row.n_clusters == 3
    gap = summary.set_index("arm")["mean"]
    assert gap["eisbach"] - gap["none"] == pytest.approx(2.0, abs=0.5)


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
