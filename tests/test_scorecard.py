"""The scorecard's rules on small synthetic evaluation tables where the truth is known: every verdict
branch of every claim, the gates (seeds, metric validation, positive control), Holm, and the rows
that are not claims (controls, manipulation checks, ceilings)."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from eisbach_lib import scorecard
from eisbach_lib.config import Profile, load_profile
from eisbach_lib.layout import Layout

STEPS = 20
METRICS = ("motif_recurrence", "novelty_sections", "spectral_contrast", "temporal_flatness", "flat_share")


def make_cfg(tmp_path, seeds=5, adapters=("dora",), sweet_spot=10, checkpoints=(10, 20), **overrides) -> Profile:
    return load_profile("smoke", {
        "runs_dir": str(tmp_path), "figures_dir": str(tmp_path / "figures"), "finetune.steps": STEPS,
        "finetune.seeds": list(range(seeds)), "finetune.adapters": list(adapters), "finetune.sweet_spot": sweet_spot,
        "finetune.checkpoints": list(checkpoints), "generate.samples_per_prompt": 2, "evaluate.n_boot": 300,
        **overrides})


def write_eval(tmp_path, effects: dict | None = None, seeds: int = 5, prompts: int = 12, noise: float = 0.05,
               arms=("none", "eisbach", "oracle_texture", "constant"), adapters=("dora",), steps=(10, 20),
               win_rate: float = 0.9, ref_sd: float = 1.0, seed: int = 0) -> None:
    """Evaluation tables with known effects: effects[(arm, metric)] is added to that arm's metric
    (metric 'vendi_intra' for the set table, 'fd_ref'/'kid_ref'/'vendi_inter' for the runs table)."""
    effects = effects or {}
    rng = np.random.default_rng(seed)
    L = Layout(tmp_path, tmp_path / "figures")
    L.metrics.mkdir(parents=True, exist_ok=True)
    seed_eff = rng.normal(0, noise, size=seeds)
    prompt_eff = rng.normal(0, noise, size=prompts)
    clips, intra, runs = [], [], []
    for adapter in adapters:
        for arm in arms:
            for s in range(seeds):
                for step in steps:
                    run = f"{adapter}_{arm}_s{s}"
                    for p in range(prompts):
                        for k in range(2):
                            row = {"run": run, "adapter": adapter, "arm": arm, "seed": s, "step": step, "prompt_id": p,
                                   "sample": k, "path": f"{run}/{step}/{p}_{k}.wav"}
                            for m in METRICS:
                                row[m] = (1.0 + prompt_eff[p] + seed_eff[s] + rng.normal(0, noise)
                                          + effects.get((arm, m), 0.0))
                            clips.append(row)
                        intra.append({"run": run, "adapter": adapter, "arm": arm, "seed": s, "step": step, "prompt_id": p,
                                      "vendi_intra": 1.5 + prompt_eff[p] + rng.normal(0, noise)
                                      + effects.get((arm, "vendi_intra"), 0.0)
                                      + effects.get((arm, f"vendi_intra@{step}"), 0.0)})
                    runs.append({"run": run, "adapter": adapter, "arm": arm, "seed": s, "step": step,
                                 **{m: base * (1 + rng.normal(0, noise / 10)) + effects.get((arm, m), 0.0)
                                    for m, base in (("vendi_inter", 5.0), ("fd_ref", 80.0), ("kid_ref", 0.5))}})
    for p in range(prompts):  # the base model, generated once (seed -1, step 0)
        for k in range(2):
            clips.append({"run": "base", "adapter": "none", "arm": "base", "seed": -1, "step": 0, "prompt_id": p,
                          "sample": k, "path": f"base/{p}_{k}.wav",
                          **{m: 1.0 + prompt_eff[p] + effects.get(("base", m), 0.0) for m in METRICS}})
    pd.DataFrame(clips).to_parquet(L.metrics_table("clips"), index=False)
    pd.DataFrame(intra).to_csv(L.metrics_table("intra"), index=False)
    pd.DataFrame(runs).to_csv(L.metrics_table("runs"), index=False)
    ref = pd.DataFrame({m: rng.normal(1.0, ref_sd, 60) for m in METRICS})
    for i in range(6):
        ref[f"emb_{i}"] = rng.normal(0, 1, 60)
    ref.to_parquet(L.metrics_table("raw"), index=False)  # the raw one only: the sesoi falls back to it
    pd.DataFrame([{"comparison": "reference A vs B (codec)", "n_a": 30, "n_b": 30, "fd": 10.0, "kid": 0.1,
                   "fd_sd": 2.0, "kid_sd": 0.05, "n_splits": 20}]).to_csv(L.metrics_table("ceiling"), index=False)
    pd.DataFrame([{"metric": m, "seconds": 4.0, "n_tunes": 20, "win_rate": win_rate}
                  for m in ("motif_recurrence", "novelty_sections")]).to_csv(L.metrics_table("structure"), index=False)


def card_row(card: pd.DataFrame, claim: str, role: str = "primary", contains: str = "") -> pd.Series:
    rows = card[(card["claim"] == claim) & (card["role"] == role) & card["evidence"].str.contains(contains, regex=False)]
    assert len(rows) >= 1, (claim, role, contains, card[["claim", "role", "evidence"]])
    return rows.iloc[0]


PC_MOVES = {("oracle_texture", "flat_share"): -1.0, ("oracle_texture", "temporal_flatness"): -1.0,
            ("oracle_texture", "spectral_contrast"): 1.0}


# --------------------------------------------------------------------------------------------
# C5-C7: every verdict, and the gates


@pytest.mark.parametrize("effect,noise,expected", [
    (+1.0, 0.05, "supported"),
    (-1.0, 0.05, "contradicted"),
    (0.0, 0.01, "equivalent"),      # sesoi = 0.2 reference SDs = 0.2; a 90 % CI far inside ±0.2
    (0.0, 1.5, "inconclusive"),     # the same null, but too noisy to rule anything out
])
def test_outcome_claim_every_verdict(tmp_path, effect, noise, expected):
    write_eval(tmp_path, {("eisbach", "spectral_contrast"): effect, **PC_MOVES}, noise=noise)
    card = scorecard.build_scorecard(make_cfg(tmp_path))
    row = card_row(card, "C7")
    assert row["verdict"] == expected, row.to_dict()
    assert np.isfinite(row["mde"]) and row["mde"] > 0
    raw = pd.read_parquet(Layout(tmp_path, tmp_path / "figures").metrics_table("raw"))
    assert row["sesoi"] == pytest.approx(0.2 * raw["spectral_contrast"].std(), rel=1e-6)


def test_too_few_seeds_is_not_testable(tmp_path):
    write_eval(tmp_path, {("eisbach", "spectral_contrast"): 1.0, **PC_MOVES}, seeds=2)
    card = scorecard.build_scorecard(make_cfg(tmp_path, seeds=2))
    row = card_row(card, "C7")
    assert row["verdict"] == "not testable" and "only 2 seeds" in row["note"]


def test_positive_control_that_does_not_move_blocks_the_outcome_verdicts(tmp_path):
    # oracle_texture has no effect here (seed 1: neither control metric's CI excludes 0 by chance)
    write_eval(tmp_path, {("eisbach", "spectral_contrast"): 1.0}, noise=0.05, seed=1)
    card = scorecard.build_scorecard(make_cfg(tmp_path))
    for claim in ("C5", "C6", "C7"):
        row = card_row(card, claim)
        assert row["verdict"] == "not testable" and "positive control" in row["note"], row.to_dict()


def test_no_positive_control_arm_is_said(tmp_path):
    write_eval(tmp_path, {("eisbach", "spectral_contrast"): 1.0}, arms=("none", "eisbach"))
    card = scorecard.build_scorecard(make_cfg(tmp_path))
    assert "no positive control" in card_row(card, "C7")["note"]


def test_a_metric_failing_its_validation_makes_c6_not_testable(tmp_path):
    write_eval(tmp_path, {("eisbach", "motif_recurrence"): 1.0, **PC_MOVES}, win_rate=0.55)
    card = scorecard.build_scorecard(make_cfg(tmp_path))
    row = card_row(card, "C6")
    assert row["verdict"] == "not testable" and "55%" in row["note"]
    write_eval(tmp_path, {("eisbach", "motif_recurrence"): 1.0, **PC_MOVES}, win_rate=0.95)
    assert card_row(scorecard.build_scorecard(make_cfg(tmp_path)), "C6")["verdict"] == "supported"


def test_holm_downgrades_a_decisive_verdict_whose_adjusted_p_is_too_large():
    rows = [{"claim": c, "verdict": v, "p": p, "p_holm": np.nan, "note": ""}
            for c, v, p in (("C5", "supported", 0.04), ("C6", "inconclusive", 0.5), ("C7", "contradicted", 0.001))]
    scorecard._holm(rows, alpha=0.05)
    assert rows[0]["verdict"] == "inconclusive" and rows[0]["p_holm"] == pytest.approx(0.08)
    assert rows[2]["verdict"] == "contradicted" and rows[2]["p_holm"] == pytest.approx(0.003)


# --------------------------------------------------------------------------------------------
# controls, manipulation checks, C8-C10


def test_controls_positive_moves_negative_is_equivalent(tmp_path):
    write_eval(tmp_path, PC_MOVES, noise=0.01)
    card = scorecard.build_scorecard(make_cfg(tmp_path))
    pc = card[card["claim"] == "PC"]
    assert set(pc["verdict"]) == {"supported"} and pc.iloc[0]["note"].startswith("gate passed"), pc[["evidence", "verdict"]]
    nc = card[card["claim"] == "NC"]
    assert len(nc) == 4 and set(nc["verdict"]) == {"equivalent"}, nc[["evidence", "verdict", "note"]]


def test_negative_control_that_differs_is_flagged(tmp_path):
    write_eval(tmp_path, {**PC_MOVES, ("constant", "spectral_contrast"): 1.0}, noise=0.01)
    card = scorecard.build_scorecard(make_cfg(tmp_path))
    assert card_row(card, "NC", "control", "spectral_contrast")["verdict"] == "supported"


def test_manipulation_check_fine_tune_moves_generations(tmp_path):
    write_eval(tmp_path, {**PC_MOVES, ("none", "spectral_contrast"): 0.5, ("eisbach", "spectral_contrast"): 0.5}, noise=0.05)
    card = scorecard.build_scorecard(make_cfg(tmp_path))
    assert card_row(card, "M1", "manipulation", "spectral_contrast")["verdict"] == "supported"


@pytest.mark.parametrize("fd_shift,expected", [(0.0, "supported"), (40.0, "contradicted")])
def test_c8_non_inferiority(tmp_path, fd_shift, expected):
    write_eval(tmp_path, {**PC_MOVES, ("eisbach", "fd_ref"): fd_shift}, noise=0.05)
    card = scorecard.build_scorecard(make_cfg(tmp_path))
    row = card_row(card, "C8")
    assert row["verdict"] == expected, row.to_dict()


def test_c9_needs_both_adapters(tmp_path):
    write_eval(tmp_path, PC_MOVES)
    assert "not tested" in card_row(scorecard.build_scorecard(make_cfg(tmp_path)), "C9", "exploratory")["note"]
    write_eval(tmp_path, {**PC_MOVES, ("eisbach", "vendi_intra"): 0.5}, adapters=("dora", "lora"))
    row = card_row(scorecard.build_scorecard(make_cfg(tmp_path, adapters=("dora", "lora"))), "C9", "exploratory")
    assert row["verdict"] in ("equivalent", "inconclusive") and row["n"] > 0  # same gap with both adapters


@pytest.mark.parametrize("gaps,expected", [
    ({5: 0.0, 10: 1.0, 20: 0.0}, "supported"),      # a peak at the sweet spot
    ({5: 2.0, 10: 1.0, 20: 0.0}, "contradicted"),   # a gap that simply shrinks: the earlier neighbour beats it
    ({5: 0.0, 10: 1.0, 20: 1.0}, "inconclusive"),   # a plateau: not larger than the later neighbour
])
def test_c10_intersection_union_against_each_neighbour(tmp_path, gaps, expected):
    write_eval(tmp_path, {**PC_MOVES, **{("eisbach", f"vendi_intra@{s}"): g for s, g in gaps.items()}}, noise=0.05,
               steps=tuple(gaps))
    row = card_row(scorecard.build_scorecard(make_cfg(tmp_path, sweet_spot=10, checkpoints=tuple(gaps))), "C10",
                   "exploratory")
    assert row["verdict"] == expected, row.to_dict()


def test_c10_needs_three_checkpoints(tmp_path):
    write_eval(tmp_path, {**PC_MOVES, ("eisbach", "vendi_intra@10"): 1.0}, noise=0.05)
    row = card_row(scorecard.build_scorecard(make_cfg(tmp_path, sweet_spot=10)), "C10", "exploratory")
    assert row["verdict"] == "not testable" and "needs ≥ 3" in row["note"]
    row = card_row(scorecard.build_scorecard(make_cfg(tmp_path, sweet_spot=None)), "C10", "exploratory")
    assert row["verdict"] == "not testable" and "not tested" in row["note"]


def test_c8_a_collapsed_generator_fails(tmp_path):
    """Every prompt the same clip: inter-prompt Vendi falls to 1 and FD/KID to the reference rise far
    beyond the reference-anchored margins (FD 2 × 2.0, KID 2 × 0.05)."""
    write_eval(tmp_path, {**PC_MOVES, ("eisbach", "vendi_inter"): -4.0, ("eisbach", "fd_ref"): 50.0,
                          ("eisbach", "kid_ref"): 1.0}, noise=0.05)
    row = card_row(scorecard.build_scorecard(make_cfg(tmp_path)), "C8")
    assert row["verdict"] == "contradicted" and "2 SDs of the reference-halves ceiling" in row["note"], row.to_dict()
    assert row["p"] < 0.05


def test_holm_covers_every_primary_claim_with_a_verdict_and_names_the_family(tmp_path):
    write_eval(tmp_path, {**PC_MOVES, ("eisbach", "spectral_contrast"): 1.0}, noise=0.05)
    write_anatomy(tmp_path)
    card = scorecard.build_scorecard(make_cfg(tmp_path))
    prim = card[(card["role"] == "primary") & (card["verdict"] != "not testable")]
    assert {"C1", "C2", "C4", "C7", "C8"} <= set(prim["claim"])
    assert prim["p_holm"].notna().all() and (prim["p_holm"] >= prim["p"] - 1e-12).all()
    assert all("Holm family: C1, C2" in n for n in prim["note"])


# --------------------------------------------------------------------------------------------
# C1-C4 from the anatomy tables


def write_anatomy(tmp_path, cos_final=0.999, floor=0.5, rho_sign=-1, slope_eisbach=-0.02, h_slope=0.05, seed=0, seeds=5,
                  mass_noise=0.002):
    rng = np.random.default_rng(seed)
    L = Layout(tmp_path, tmp_path / "figures")
    L.anatomy.mkdir(parents=True, exist_ok=True)
    finals = {"eisbach": cos_final, "eisbach_shuffle": cos_final, "none_other_batches": floor}
    rows = [{"init": i, "arm": arm, "seq": q, "step": k, "cos": 1 - (1 - c) * k / 10 + rng.normal(0, 1e-3)}
            for i in range(3) for arm, c in finals.items() for q in range(4) for k in range(1, 11)]
    pd.DataFrame(rows).to_csv(L.anatomy_table("update_cosines"), index=False)
    gc = [{"arm": a, "kind": "per_sample", "batch": 0, "sample": b, "cos": 1.0 if a != "eisbach_grad" else 0.3, "w": 0.1}
          for a in ("eisbach", "eisbach_norm", "eisbach_grad") for b in range(4)]
    gc += [{"arm": "eisbach", "kind": "batch", "batch": 0, "sample": -1, "cos": 0.95, "w": np.nan}]
    pd.DataFrame(gc).to_csv(L.anatomy_table("grad_cosines"), index=False)
    flat = rng.uniform(0.3, 1.0, 80)
    pd.DataFrame({"id": range(80), "texture": np.where(flat > 0.7, "sustained", "plucked"),
                  "h": flat, "w": rho_sign * flat + rng.normal(0, 0.05, 80), "flatness": flat}).to_csv(
        L.anatomy_table("weights_by_clip"), index=False)
    mass = []
    for arm, slope in (("none", 0.0), ("eisbach", slope_eisbach)):
        for s in range(seeds):
            for ph in range(5):
                share = 0.4 + slope * ph + rng.normal(0, mass_noise)
                mass += [{"run": f"dora_{arm}_s{s}", "arm": arm, "seed": s, "phase": ph, "texture": "sustained",
                          "share": share, "share_unweighted": 0.4},
                         {"run": f"dora_{arm}_s{s}", "arm": arm, "seed": s, "phase": ph, "texture": "plucked",
                          "share": 1 - share, "share_unweighted": 0.6}]
    pd.DataFrame(mass).to_csv(L.anatomy_table("gradient_mass"), index=False)
    t = np.round(np.linspace(0.05, 0.95, 10), 3)
    ev = [{"id": c, "texture": "x", "t": tt, "h": h, "w": (1 - h + 1e-6) ** 0.5, "stage": "base"}
          for c in range(24) for tt in t for h in [0.9 + h_slope * tt + rng.normal(0, 0.01)]]
    pd.DataFrame(ev).to_csv(L.anatomy_table("entropy_vs_t"), index=False)


@pytest.mark.parametrize("cos_final,expected", [(0.98, "supported"), (0.6, "contradicted"), (0.875, "inconclusive")])
def test_c1_the_turn_is_measured_against_the_minibatch_noise_floor(tmp_path, cos_final, expected):
    """Floor cos 0.5 (turn 0.5): cos 0.98 turns 0.04 (ratio 0.08 < 0.25), cos 0.6 turns 0.4 (ratio 0.8),
    cos 0.875 turns 0.125 (ratio 0.25: on the threshold, undecided)."""
    write_anatomy(tmp_path, cos_final=cos_final)
    card = scorecard.build_scorecard(make_cfg(tmp_path))
    row = card_row(card, "C1")
    assert row["verdict"] == expected, row.to_dict()
    assert row["estimate"] == pytest.approx((1 - cos_final) / 0.5, abs=0.02) and "eisbach_shuffle" in row["note"]
    sanity = card_row(card, "C1", "sanity")
    assert sanity["verdict"] == "supported" and "eisbach_grad" in sanity["note"]


@pytest.mark.parametrize("sign,expected", [(-1, "supported"), (+1, "contradicted")])
def test_c2_weight_against_flatness(tmp_path, sign, expected):
    write_anatomy(tmp_path, rho_sign=sign)
    row = card_row(scorecard.build_scorecard(make_cfg(tmp_path)), "C2")
    assert row["verdict"] == expected and np.sign(row["estimate"]) == sign


@pytest.mark.parametrize("slope,noise,expected", [(-0.02, 0.002, "supported"), (0.02, 0.002, "contradicted"),
                                                  (0.0, 0.002, "equivalent"), (0.0, 0.05, "inconclusive")])
def test_c3_the_curriculum_must_emerge(tmp_path, slope, noise, expected):
    """sesoi = 0.1 × none's flat share (0.4) / 4 phases = 0.01 a phase: a slope of 0.02 is beyond it,
    a slope of 0 with share noise 0.002 inside it; noise 0.05 (slope SE ≈ 0.016) decides nothing."""
    write_anatomy(tmp_path, slope_eisbach=slope, mass_noise=noise)
    row = card_row(scorecard.build_scorecard(make_cfg(tmp_path)), "C3")
    assert row["verdict"] == expected, row.to_dict()


def test_c3_with_two_seeds_is_not_testable(tmp_path):
    write_anatomy(tmp_path, seeds=2)
    assert card_row(scorecard.build_scorecard(make_cfg(tmp_path)), "C3")["verdict"] == "not testable"


@pytest.mark.parametrize("h_slope,expected,word", [(0.05, "supported", "falls"), (-0.05, "supported", "rises"),
                                                  (0.0, "contradicted", "")])
def test_c4_share_of_log_w_explained_by_t(tmp_path, h_slope, expected, word):
    """h = 0.9 + slope·t + noise(0.01) within clips: with slope ±0.05 t explains most of the variance of
    log w (w falls as h rises); with slope 0 it explains ≈ 0 %, far below the 10 % minimum."""
    write_anatomy(tmp_path, h_slope=h_slope)
    row = card_row(scorecard.build_scorecard(make_cfg(tmp_path)), "C4")
    assert row["verdict"] == expected, row.to_dict()
    assert f"w {word}" in row["note"] if word else row["ci_hi"] < scorecard.C4_MIN_SHARE


def test_missing_inputs_say_which_file_and_who_writes_it(tmp_path):
    card = scorecard.build_scorecard(make_cfg(tmp_path))
    assert set(card[card["claim"].isin([f"C{i}" for i in range(1, 11)])]["verdict"]) == {"not testable"}
    assert "update_cosines.csv" in card_row(card, "C1")["note"]
    assert "gradient_mass.csv" in card_row(card, "C3")["note"]
    assert set(card["verdict"]) <= set(scorecard.VERDICTS)


def test_written_scorecard_has_the_new_columns(tmp_path):
    write_eval(tmp_path, PC_MOVES)
    write_anatomy(tmp_path)
    card = scorecard.build_scorecard(make_cfg(tmp_path))
    scorecard.write_scorecard(card, tmp_path / "figures")
    md = (tmp_path / "figures" / "scorecard.md").read_text()
    assert "| MDE |" in md and "| sesoi |" in md and "**equivalent**" in md
    back = pd.read_csv(tmp_path / "figures" / "scorecard.csv")
    assert list(back.columns) == scorecard.COLUMNS


def _pc(estimate, lo, hi, sesoi=0.1):
    return scorecard._row("PC", "flat_share, oracle_texture − none", "control", -1, "supported", estimate=estimate,
                          ci_lo=lo, ci_hi=hi, sesoi=sesoi, mde=0.05, n=96)


@pytest.mark.parametrize("row,fails_with", [
    (_pc(-0.30, -0.40, -0.20), None),                      # fewer flat clips, beyond sesoi, CI excludes 0
    (_pc(+0.30, +0.20, +0.40), "wrong way"),               # more flat clips: a move the wrong way fails
    (_pc(-0.05, -0.08, -0.02), "less than its sesoi"),     # significant but below the sesoi fails
    (_pc(-0.30, -0.70, +0.10), "CI includes 0"),           # large but undecided fails
])
def test_the_positive_control_gate_is_directional_and_sized(row, fails_with):
    reason = scorecard.pc_gate(row)
    assert (reason is None) if fails_with is None else (fails_with in reason), reason


def test_a_failed_gate_blocks_the_outcome_verdicts_and_says_why(tmp_path):
    write_eval(tmp_path, {("oracle_texture", "flat_share"): +1.0, ("eisbach", "spectral_contrast"): 1.0}, noise=0.05)
    card = scorecard.build_scorecard(make_cfg(tmp_path))
    for claim in ("C5", "C6", "C7"):
        row = card_row(card, claim)
        assert row["verdict"] == "not testable" and "wrong way" in row["note"], row.to_dict()
    assert "gate failed" in card[card["claim"] == "PC"].iloc[0]["note"]


@pytest.mark.parametrize("move,passes", [(1.0, True), (0.3, False)])
def test_m1_gate_needs_three_sesoi(tmp_path, move, passes):
    """sesoi of flat_share = 0.2 reference SDs = 0.2: a move of 1.0 is 5 sesoi, of 0.3 only 1.5."""
    write_eval(tmp_path, {**PC_MOVES, ("none", "flat_share"): move, ("eisbach", "flat_share"): move,
                          ("oracle_texture", "flat_share"): move - 1.0, ("constant", "flat_share"): move}, noise=0.02)
    card = scorecard.build_scorecard(make_cfg(tmp_path))
    row = card_row(card, "M1", "manipulation", "flat_share")
    assert row["note"].startswith("gate passed" if passes else "gate failed"), row.to_dict()


def test_the_readouts_validation_rows_say_passed_or_failed(tmp_path):
    write_eval(tmp_path, PC_MOVES)
    pd.DataFrame([{"check": "texture accuracy (reference split)", "target": 0.9, "read_back": 0.98, "error": 0.08,
                   "tolerance": np.nan, "pass": True, "n": 150, "note": ""},
                  {"check": "spike-in 5 % flat", "target": 0.05, "read_back": 0.12, "error": 0.07, "tolerance": 0.03,
                   "pass": False, "n": 117, "note": "20 draws"}]).to_csv(
        Layout(tmp_path, tmp_path / "figures").metrics_table("readout"), index=False)
    card = scorecard.build_scorecard(make_cfg(tmp_path))
    rows = card[card["claim"] == "READ"]
    assert list(rows["verdict"]) == ["passed", "failed"] and set(rows["role"]) == {"validation"}
    assert set(card["verdict"]) <= set(scorecard.VERDICTS)


def test_metric_direction_reads_each_metric_on_its_claims_side():
    """paired_differences.csv reads "supported" on the side the scorecard does: fewer flat clips (the
    readout, as the positive control's gate), less flatness, more contrast, Vendi and recurrence."""
    from eisbach_lib.scorecard import READOUT, metric_direction

    assert metric_direction(READOUT) == -1
    assert metric_direction("temporal_flatness") == -1
    assert [metric_direction(m) for m in ("spectral_contrast", "vendi_intra", "motif_recurrence")] == [1, 1, 1]


# --------------------------------------------------------------------------------------------
# MIX: the weighting arms' own move of the texture readout (descriptive, outside Holm)


def test_mix_row_reads_a_shift_of_two_sesoi_as_supported(tmp_path):
    """sesoi of flat_share ≈ 0.2 (0.2 reference SDs): eisbach −0.4 is 2 sesoi fewer flat clips, 40 % of
    the oracle's −1.0."""
    write_eval(tmp_path, {**PC_MOVES, ("eisbach", "flat_share"): -0.4}, noise=0.05)
    card = scorecard.build_scorecard(make_cfg(tmp_path))
    row = card_row(card, "MIX", "readout", "eisbach − none")
    assert row["verdict"] == "supported" and row["estimate"] < 0 and row["direction"] == "−", row.to_dict()
    assert row["estimate"] == pytest.approx(-0.4, abs=0.05) and row["sesoi"] == pytest.approx(0.2, rel=0.3)
    assert "40 % of the oracle's move" in row["note"], row["note"]
    assert row["statement"].startswith("eisbach shifts the texture mix")


def test_mix_row_without_a_shift_is_never_supported(tmp_path):
    write_eval(tmp_path, PC_MOVES, noise=0.05)
    row = card_row(scorecard.build_scorecard(make_cfg(tmp_path)), "MIX", "readout")
    assert row["verdict"] in ("equivalent", "inconclusive"), row.to_dict()


def test_mix_row_is_not_testable_when_the_positive_control_failed(tmp_path):
    write_eval(tmp_path, {("oracle_texture", "flat_share"): +1.0, ("eisbach", "flat_share"): -0.4}, noise=0.05)
    row = card_row(scorecard.build_scorecard(make_cfg(tmp_path)), "MIX", "readout")
    assert row["verdict"] == "not testable", row.to_dict()
    assert "could not be trusted to see a shift" in row["note"] and "wrong way" in row["note"], row["note"]


def test_mix_rows_one_per_weighting_arm_of_the_profile_after_the_controls(tmp_path):
    write_eval(tmp_path, {**PC_MOVES, ("eisbach_shuffle", "flat_share"): -0.4}, noise=0.05,
               arms=("none", "eisbach", "eisbach_shuffle", "oracle_texture", "constant"))
    cfg = make_cfg(tmp_path, **{"finetune.arms": ["none", "eisbach", "eisbach_norm", "eisbach_shuffle", "oracle_texture",
                                                  "constant"]})
    card = scorecard.build_scorecard(cfg)  # eisbach_norm is in the profile but was not generated: no row
    mix = card[card["claim"] == "MIX"]
    assert [e.split(",")[1].strip() for e in mix["evidence"]] == ["eisbach − none", "eisbach_shuffle − none"]
    assert list(mix["verdict"]) == ["equivalent", "supported"], mix[["evidence", "verdict", "note"]]
    claims = list(card["claim"])
    assert max(i for i, c in enumerate(claims) if c in ("PC", "NC")) < claims.index("MIX") < claims.index("M1")


def test_mix_rows_stay_out_of_holm_and_the_claim_counts(tmp_path):
    from eisbach_lib import report

    write_eval(tmp_path, {**PC_MOVES, ("eisbach", "flat_share"): -0.4, ("eisbach", "spectral_contrast"): 1.0},
               noise=0.05)
    write_anatomy(tmp_path)
    card = scorecard.build_scorecard(make_cfg(tmp_path))
    mix = card[card["claim"] == "MIX"]
    assert len(mix) == 1 and mix["p_holm"].isna().all() and np.isfinite(mix["p"]).all()
    assert not any("MIX" in n.split("Holm family:")[-1] for n in card["note"] if "Holm family:" in n)
    assert scorecard.verdict_counts(card).sum() == 10  # C1-C10, one each
    assert not scorecard.effects_in_sesoi(card)["label"].str.startswith("MIX").any()
    page = report.scorecard_html(card)
    verdicts, checks = page.split('id="checks"')
    assert "<td>MIX</td>" not in verdicts and "<td>MIX</td>" in checks
    scorecard.write_scorecard(card, tmp_path / "figures")
    line = next(x for x in (tmp_path / "figures" / "scorecard.md").read_text().splitlines() if x.startswith("| MIX |"))
    assert "| readout |" in line and "**supported**" in line and "(Holm" not in line, line
