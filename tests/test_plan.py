"""The design planner on data where the truth is known: components recovered, the projected SE equal
to the spread of the rule's estimate over simulated experiments, the cheapest adequate design chosen."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eisbach_lib import plan
from eisbach_lib.stats import crossed_mean_se

TRUE = {"seed": 0.04, "prompt": 0.09, "cell": 0.01, "sample": 0.16}


def simulate(rng, S, P, n, comp=TRUE, delta=0.0) -> np.ndarray:
    a = rng.normal(0, np.sqrt(comp["seed"]), (S, 1, 1))
    b = rng.normal(0, np.sqrt(comp["prompt"]), (1, P, 1))
    ab = rng.normal(0, np.sqrt(comp["cell"]), (S, P, 1))
    e = rng.normal(0, np.sqrt(comp["sample"]), (S, P, n))
    return delta + a + b + ab + e


def as_rows(y: np.ndarray) -> pd.DataFrame:
    S, P, n = y.shape
    s, p, k = np.meshgrid(range(S), range(P), range(n), indexing="ij")
    return pd.DataFrame({"seed": s.ravel(), "prompt_id": p.ravel(), "sample": k.ravel(), "d": y.ravel()})


def test_components_are_recovered_on_average():
    """Method-of-moments estimates are unbiased before truncation; 200 pilots of 6 × 16 × 8: the mean
    of each estimate lies within 4 Monte Carlo SEs of the truth."""
    rng = np.random.default_rng(0)
    est = pd.DataFrame([plan.variance_components(as_rows(simulate(rng, 6, 16, 8))).__dict__ for _ in range(200)])
    for k, v in TRUE.items():
        assert abs(est[k].mean() - v) < 4 * est[k].std() / np.sqrt(len(est)) + 1e-3 * v, (k, est[k].mean(), v)


def test_expected_se_matches_the_spread_of_the_rules_estimate():
    """The SD of the grand mean over 4000 simulated 8 × 12 × 8 experiments equals expected_se within
    3 Monte Carlo SEs of an SD (SE(sd) ≈ sd/√(2R))."""
    rng = np.random.default_rng(1)
    S, P, n, R = 8, 12, 8, 4000
    means = np.array([simulate(rng, S, P, n).mean() for _ in range(R)])
    c = plan.Components(**TRUE, n_seeds=S, n_prompts=P, n_samples=n)
    want = plan.expected_se(c, S, P, n)
    assert abs(means.std(ddof=1) - want) < 3 * want / np.sqrt(2 * R)
    _, se, _ = crossed_mean_se(np.stack([simulate(rng, S, P, n).mean(axis=2) for _ in range(400)]))
    assert np.sqrt(np.mean(se**2)) == pytest.approx(want, rel=0.1)  # the rule's SE² is unbiased for it


def test_more_seeds_lower_the_mde_and_the_cheapest_adequate_design_is_chosen():
    c = plan.Components(**TRUE, n_seeds=2, n_prompts=12, n_samples=8)
    costs = plan.Costs(fixed_s=600, train_run_s=40, generate_clip_s=0.05, evaluate_clip_s=0.02)
    assert plan.expected_mde(c, 8, 12, 8) < plan.expected_mde(c, 4, 12, 8) < plan.expected_mde(c, 3, 12, 8)
    table = plan.design_table(c, costs, sesoi=1.0, arms=6)
    best = plan.choose(table, 0.5)
    assert best is not None and best["mde_sesoi"] <= 0.5
    cheaper = table[table["minutes"] < best["minutes"]]
    assert (cheaper["mde_sesoi"] > 0.5).all()
    assert plan.choose(table, 0.01) is None


def test_plan_report_reads_the_pilots_file_and_names_a_missing_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="eisbach pilot"):
        plan.read_plan_inputs(tmp_path / "plan_inputs.json")
    c = plan.Components(**TRUE, n_seeds=2, n_prompts=12, n_samples=8)
    plan.write_plan_inputs(tmp_path / "plan_inputs.json", {"oracle_texture − none": c},
                           plan.Costs(600, 40, 0.05, 0.02), sesoi=0.3, arms=6)
    text, table = plan.plan_report(tmp_path / "plan_inputs.json")
    assert "oracle_texture − none" in text and "seeds ×" in text and "1 df" in text and len(table)
