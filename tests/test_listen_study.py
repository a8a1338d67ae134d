"""The listening study: kit, import, clustered verdicts, their calibration by simulation, the widget."""

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eisbach_lib.study import (
    clustered_win_rate,
    decide_win_rate,
    family_adjust,
    screen_raters,
    study_verdicts,
    t_interval,
    t_pvalue,
)
from eisbach_lib.study_design import (
    MAX_CATCH_FAIL,
    MIN_RATERS,
    VOTE_COLUMNS,
    StudyError,
    default_comparisons,
    draw_trials,
    load_study,
    study_config,
    trials_of,
)
from eisbach_lib.study_kit import degrade, make_kit
from eisbach_lib.study_votes import import_votes, read_votes
from eisbach_lib.study_widget import StudyAB, rater_plan
from helpers import page_csv, prefer, smoke_at, tiny_samples
from series_run import profile_copy


@pytest.fixture(scope="module")
def kit_made(tmp_path_factory):
    """A tiny kit (tiny_samples, then make_kit), made once per module."""
    runs = tmp_path_factory.mktemp("kit")
    tiny_samples(runs)
    make_kit(smoke_at(runs, {"name": "tiny"}))
    return runs


@pytest.fixture
def kit(kit_made, tmp_path):
    """(profile, study) of the tiny kit, copied into this test's tmp_path (its runs_dir): a test's
    imports and votes stay its own. make_kit is deterministic, so the copy is the kit it would make."""
    shutil.copytree(kit_made, tmp_path, dirs_exist_ok=True)
    cfg = smoke_at(tmp_path, {"name": "tiny"})
    return cfg, load_study(tmp_path / "listening" / "study.json")


# ----------------------------------------------------------------------------- the study as data


def test_study_config_defaults_and_refusals(tmp_path):
    s = study_config(smoke_at(tmp_path, {"listening": {"pairs_per_comparison": 4}}))
    assert s["pairs_per_comparison"] == 4 and [q["id"] for q in s["questions"]] == ["development", "preference"]
    assert all(q["claim"] for q in s["questions"])
    with pytest.raises(StudyError, match="unknown study key.*'pairs'"):
        study_config(smoke_at(tmp_path, {"listening": {"pairs": 3}}))
    f = tmp_path / "study.yaml"
    f.write_text("catch_question: nope\n")
    with pytest.raises(StudyError, match="catch_question 'nope'"):
        study_config(smoke_at(tmp_path), f)


def test_default_comparisons_only_present_arms():
    assert default_comparisons(["none", "eisbach"]) == [("eisbach", "none")]
    got = default_comparisons(["none", "eisbach", "minsnr", "constant", "oracle_texture", "base"])
    assert got == [("eisbach", "none"), ("eisbach", "minsnr"), ("eisbach", "oracle_texture"), ("eisbach", "constant")]
    assert default_comparisons(["none", "minsnr"]) == []


def test_draw_trials_pairs_share_prompt_seed_noise(tmp_path):
    m = tiny_samples(tmp_path, arms=("none", "eisbach", "constant"), seeds=(0, 1, 2), prompts=(0, 1, 2, 3),
                     samples=(0, 1))
    study = study_config(smoke_at(tmp_path, {"listening": {"pairs_per_comparison": 10}}))
    t = draw_trials(m, study)
    real = t[~t["is_catch"]]
    # balanced over the 3 training seeds: ⌈10 / 3⌉ = 4 pairs from each seed, 12 per comparison
    assert real.groupby("comparison").size().to_dict() == {"eisbach vs none": 12, "eisbach vs constant": 12}
    assert (real.groupby(["comparison", "seed"]).size() == 4).all()
    by = m.set_index("path")
    for r in real.itertuples():
        a, b = by.loc[r.clip_a], by.loc[r.clip_b]
        assert (a["arm"], b["arm"]) == (r.arm_a, r.arm_b)
        assert all(a[k] == b[k] for k in ("seed", "prompt_id", "sample", "step"))
    for _, g in real.groupby("comparison"):
        assert g["prompt"].value_counts().max() - g["prompt"].value_counts().min() <= 1  # spread over prompts
        assert abs((g["page_first"] == "a").sum() - len(g) / 2) <= 0.5
    catch = t[t["is_catch"]]
    assert len(catch) == max(2, round(24 / 7)) and (catch["arm_b"] == "anchor").all()
    assert t["pair_id"].is_unique and t["pair_id"].str.fullmatch(r"t\d+").all()
    pd.testing.assert_frame_equal(t, draw_trials(m, study))


def test_degrade_is_a_clearly_worse_copy():
    sr = 22050
    t = np.arange(sr) / sr
    y = (0.3 * np.sin(2 * np.pi * 6000 * t) + 0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    d = degrade(y, sr, seed=1)
    spec_y, spec_d = np.abs(np.fft.rfft(y)), np.abs(np.fft.rfft(d))
    f = np.fft.rfftfreq(sr, 1 / sr)
    assert spec_d[np.argmin(abs(f - 6000))] < 0.01 * spec_y[np.argmin(abs(f - 6000))]  # 6 kHz gone
    assert spec_d[np.argmin(abs(f - 440))] > 0.9 * spec_y[np.argmin(abs(f - 440))]     # 440 Hz kept
    noise = d - degrade(y, sr, seed=1, snr_db=200)
    snr = 10 * np.log10(np.mean((d - noise) ** 2) / np.mean(noise**2))
    assert 11 < snr < 13


def test_make_kit_files_and_no_arm_in_page(kit):
    cfg, doc = kit
    out = Path(cfg.runs_dir) / "listening"
    assert (out / "study.html").exists() and doc["study_id"].startswith("tiny-")
    need = {"pair_id", "question", "arm_a", "arm_b", "prompt", "seed", "clip_a", "clip_b", "is_catch"}
    assert need <= set(doc["pairs"].columns)
    assert len(doc["pairs"]) == 2 * len(trials_of(doc["pairs"]))  # every trial asked both questions
    for p in doc["pairs"].itertuples():
        assert (Path(cfg.runs_dir) / p.clip_a).exists() and (Path(cfg.runs_dir) / p.clip_b).exists()
    page = (out / "study.html").read_text()
    data = json.loads(page.split('type="application/json">')[1].split("</script>")[0])
    assert all(c.startswith("data:audio/mpeg;base64,") for c in data["clips"])
    blob = json.dumps(data["trials"]) + json.dumps(data["questions"])
    for arm in ("eisbach", "none", "anchor", "catch"):
        assert arm not in blob
    assert "http://" not in page and "https://" not in page  # nothing fetched
    before = page
    make_kit(cfg)  # deterministic: same study id and page
    assert (out / "study.html").read_text() == before


@pytest.mark.skipif(shutil.which("node") is None, reason="no node on PATH (the browser test checks the same in chromium)")
def test_page_end_screen_leads_back_to_the_answers(kit):
    """The page's own script, run by node over a minimal DOM (tests/page_dom.js): after the last
    trial the end screen shows; "back to the last trial" reopens it with its answers checked,
    "next" returns to the end, "review from the first trial" opens trial 1 with its answers."""
    cfg, doc = kit
    page = Path(cfg.runs_dir) / "listening" / "study.html"
    out = subprocess.run(["node", str(Path(__file__).parent / "page_dom.js"), str(page), "ann"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    steps = {d["step"]: d for d in map(json.loads, out.stdout.splitlines())}
    n = len(trials_of(doc["pairs"]))
    assert not steps["done"]["end_hidden"] and steps["done"]["trial_hidden"]
    assert steps["back"]["progress"] == f"trial {n} of {n}" and steps["back"]["end_hidden"]
    assert sorted(steps["back"]["checked"]) == [f"q_development={['A', 'B', 'tie'][(n - 1) % 3]}", "q_preference=A"]
    assert not steps["next"]["end_hidden"]
    assert steps["review"]["progress"] == f"trial 1 of {n}" and not steps["review"]["trial_hidden"]
    assert sorted(steps["review"]["checked"]) == ["q_development=A", "q_preference=A"]


# ----------------------------------------------------------------------------- import


def test_import_maps_positions_to_arms_and_is_idempotent(kit, tmp_path):
    cfg, doc = kit
    study = Path(cfg.runs_dir) / "listening" / "study.json"
    f = page_csv(tmp_path / "r1.csv", doc, "r1", prefer("eisbach"))
    assert import_votes(study, [f]) == len(doc["pairs"])
    votes = read_votes(study.parent / "votes.csv")
    assert list(votes.columns) == list(VOTE_COLUMNS)
    real = votes.merge(doc["pairs"], on=["pair_id", "question"])
    assert (real.loc[real["arm_b"] != "anchor", "preferred_arm"] == "eisbach").all()
    assert (real["is_catch_x"] == real["is_catch_y"].astype(str)).all()
    assert import_votes(study, [f]) == 0  # the same file twice adds nothing
    assert len(read_votes(study.parent / "votes.csv")) == len(doc["pairs"])


@pytest.mark.parametrize("tamper, message", [
    (lambda df: df.assign(study_id="other-study"), "line 2: study_id 'other-study'"),
    (lambda df: df.assign(pair_id=df["pair_id"].where(df.index != 3, "t99")), "line 5: unknown pair_id"),
    (lambda df: df.assign(choice=df["choice"].where(df.index != 1, "C")), "line 3: choice 'C'"),
    (lambda df: df.assign(clip_at_a=df["clip_at_a"].where(df.index != 2, 3)), "line 4: clip_at_a '3'"),
    (lambda df: df.assign(timestamp=df["timestamp"].where(df.index != 0, "yesterday")), "line 2: timestamp"),
    (lambda df: df.drop(columns="rater"), "line 1: unexpected header"),
])
def test_import_refuses_tampered_file_and_changes_nothing(kit, tmp_path, tamper, message):
    cfg, doc = kit
    study = Path(cfg.runs_dir) / "listening" / "study.json"
    import_votes(study, [page_csv(tmp_path / "ok.csv", doc, "r1", prefer("none"))])
    before = (study.parent / "votes.csv").read_bytes()
    good = page_csv(tmp_path / "good.csv", doc, "r2", prefer("eisbach"))
    bad = tmp_path / "bad.csv"
    tamper(pd.read_csv(good, dtype=str, keep_default_na=False)).to_csv(bad, index=False)
    with pytest.raises(StudyError, match=f"bad.csv, {message}"):
        import_votes(study, [good, bad])  # the good file is not imported either
    assert (study.parent / "votes.csv").read_bytes() == before


def test_import_refuses_a_changed_answer_with_the_same_timestamp(kit, tmp_path):
    """Same rater, pair, question and timestamp but another choice: one of the copies was edited, so
    the import is refused naming the file, the rater and the pair, and votes.csv is unchanged. A
    changed answer with a later timestamp is a new vote (the latest counts)."""
    cfg, doc = kit
    study = Path(cfg.runs_dir) / "listening" / "study.json"
    f = page_csv(tmp_path / "r1.csv", doc, "r1", prefer("eisbach"))
    import_votes(study, [f])
    before = (study.parent / "votes.csv").read_bytes()
    df = pd.read_csv(f, dtype=str, keep_default_na=False)
    real = df.merge(doc["pairs"][["pair_id", "question", "is_catch"]], on=["pair_id", "question"])
    i = int(np.flatnonzero(~real["is_catch"].astype(bool))[0])
    changed = df.copy()
    changed.loc[i, "choice"] = "B" if df.loc[i, "choice"] == "A" else "A"
    bad = tmp_path / "r1_edited.csv"
    changed.to_csv(bad, index=False)
    with pytest.raises(StudyError, match=rf"r1_edited.csv: rater 'r1', pair {df.loc[i, 'pair_id']} .*conflicts"):
        import_votes(study, [bad])
    assert (study.parent / "votes.csv").read_bytes() == before
    with pytest.raises(StudyError, match="conflicts"):  # the same conflict between two new files
        import_votes(study, [f, bad], votes_path=tmp_path / "fresh.csv")
    later = changed.iloc[[i]].assign(timestamp="2026-12-01T08:00:00.000Z")
    later.to_csv(tmp_path / "later.csv", index=False)
    assert import_votes(study, [tmp_path / "later.csv"]) == 1


# ----------------------------------------------------------------------------- statistics: known answers


def test_clustered_se_reduces_to_rater_level_t_test():
    """Each rater the same score on every pair: the pairs add nothing and the SE is sd(x)/√R."""
    x = np.array([1.0, 0.0, 1.0, 1.0, 0.5, 1.0, 0.0, 1.0])
    W = np.repeat(x[:, None], 6, axis=1)
    r = clustered_win_rate(W)
    assert r["estimate"] == pytest.approx(x.mean())
    assert r["se"] == pytest.approx(x.std(ddof=1) / math.sqrt(len(x)))
    assert (r["n_votes"], r["n_raters"], r["n_pairs"], r["df"]) == (48, 8, 6, 5)
    W[0, :3] = np.nan  # missing votes are skipped
    assert clustered_win_rate(W)["n_votes"] == 45


def test_clustered_se_is_wider_than_the_per_vote_binomial():
    """Three raters who always pick arm_a and three who never do: 50 % with a wide interval,
    where the per-vote binomial would call ±0.08 at 144 votes."""
    W = np.vstack([np.ones((3, 24)), np.zeros((3, 24))])
    r = clustered_win_rate(W)
    assert r["estimate"] == 0.5 and r["se"] > 3 * math.sqrt(0.25 / 144)


def test_decide_win_rate_rule():
    got = decide_win_rate([0.55, 0.2, 0.45, 0.3, 0.6], [0.8, 0.45, 0.55, 0.9, 0.9], [0.56, 0.22, 0.46, 0.35, 0.62],
                          [0.78, 0.44, 0.54, 0.85, 0.88], [6, 6, 6, 6, MIN_RATERS - 1])
    assert list(got) == ["supported", "contradicted", "equivalent", "inconclusive", "too few votes"]
    assert decide_win_rate(np.nan, np.nan, np.nan, np.nan, 10) == "inconclusive"


def test_decide_win_rate_checks_equivalence_first_and_the_adjusted_p():
    """Lakens' order: a precise small preference (95 % CI [0.52, 0.56] excludes 0.5, 90 % CI inside
    0.5 ± 0.10) is 'equivalent' (negligible), not 'supported'; a CI that excludes 0.5 is decisive
    only when the multiplicity-adjusted p is below α."""
    assert decide_win_rate(0.52, 0.56, 0.523, 0.557, 12) == "equivalent"
    got = decide_win_rate([0.55, 0.55, 0.2], [0.8, 0.8, 0.45], [0.56, 0.56, 0.22], [0.78, 0.78, 0.44], [12, 12, 12],
                          p_adj=[0.01, 0.2, np.nan])
    assert list(got) == ["supported", "inconclusive", "inconclusive"]


def test_t_pvalue_agrees_with_the_interval():
    est, se, df = np.array([0.6, 0.6, 0.5, 0.7]), np.array([0.05, 0.03, 0.0, 0.0]), np.array([7, 7, 7, 7])
    p = t_pvalue(est, se, df)
    lo, _ = t_interval(est, se, df, 0.95)
    assert ((p < 0.05) == (lo > 0.5))[:2].all() and p[2] == 1.0 and p[3] == 0.0
    assert math.isnan(t_pvalue(0.6, 0.05, 0))


def test_family_adjust_gatekeeping_and_holm():
    p = np.array([0.04, 0.01, 0.02, 0.5, np.nan])
    # primary row 0 at α alone; the rest Holm among themselves (m = 3 finite), then max with the primary's p
    np.testing.assert_allclose(family_adjust(p, 0), [0.04, 0.04, 0.04, 0.5, np.nan])
    # a primary that fails closes the gate: nothing else can pass
    np.testing.assert_allclose(family_adjust(np.array([0.3, 0.001, 0.002]), 0), [0.3, 0.3, 0.3])
    # no primary: plain Holm over the finite p (m = 4)
    np.testing.assert_allclose(family_adjust(p, None), [0.08, 0.04, 0.06, 0.5, np.nan])
    from eisbach_lib.stats import holm
    rng = np.random.default_rng(1)
    q = rng.uniform(0, 0.2, (50, 7))
    np.testing.assert_allclose(family_adjust(q, None), np.array([holm(r) for r in q]))  # batched = stats.holm
    with pytest.raises(ValueError, match="exactly one primary"):
        family_adjust(p, np.zeros(5, dtype=bool))


def test_clustered_se_by_seed_is_the_seed_level_t_test():
    """Each seed's pairs get one score from every rater (the preference varies by seed only): the
    raters add nothing and the SE is sd(seed means)/√S, df = min(R, S) − 1 = S − 1."""
    seed_score = np.array([1.0, 0.0, 1.0, 0.5, 1.0, 1.0, 0.0, 1.0])
    groups = np.repeat(np.arange(8), 2)
    W = np.tile(seed_score[groups], (12, 1))
    r = clustered_win_rate(W, groups)
    assert r["estimate"] == pytest.approx(seed_score.mean())
    assert r["se"] == pytest.approx(seed_score.std(ddof=1) / math.sqrt(8))
    assert (r["n_seeds"], r["n_raters"], r["df"]) == (8, 12, 7)
    # clustering by pair instead treats the 16 pairs as independent: too narrow
    assert clustered_win_rate(W)["se"] < 0.8 * r["se"]


def votes_frame(doc, raters_choose):
    rows = []
    for rater, choose in raters_choose.items():
        for p in doc["pairs"].to_dict("records"):
            choice, preferred = choose(p)
            rows.append({"study_id": doc["study_id"], "rater": rater, "pair_id": p["pair_id"], "question": p["question"],
                         "choice": choice, "preferred_arm": preferred, "is_catch": str(p["is_catch"]),
                         "timestamp": "2026-12-01T07:00:00+00:00"})
    return pd.DataFrame(rows, columns=list(VOTE_COLUMNS))


def test_study_verdicts_counts_excludes_and_decides(kit):
    cfg, doc = kit

    def likes(arm, pos="A", fail_catch=False):
        def choose(p):
            if p["is_catch"]:
                return pos, (p["arm_b"] if fail_catch else p["arm_a"])
            return pos, arm
        return choose

    raters = {f"r{i}": likes("eisbach", pos="AB"[i % 2]) for i in range(6)}
    raters["cheat"] = likes("none", fail_catch=True)
    v = votes_frame(doc, raters)
    table = study_verdicts(v, doc["pairs"])
    assert set(table["question"]) == {"development", "preference"}
    assert table.attrs["excluded"] == ["cheat"]
    catch = table.attrs["catch"].set_index("rater")
    assert catch.loc["cheat", "pass_rate"] == 0 and catch.loc["r0", "pass_rate"] == 1
    n_real = int((~trials_of(doc["pairs"])["is_catch"]).sum())
    for r in table.itertuples():
        assert (r.arm_a, r.arm_b) == ("eisbach", "none")
        assert r.n_votes == 6 * n_real and r.n_raters == 6
        assert r.win_rate == 1.0 and r.verdict == "supported"
        assert r.position_bias == pytest.approx(0.5)
    # a changed answer: the latest vote counts
    late = v[(v["rater"] == "r0")].assign(preferred_arm="none", timestamp="2026-12-01T08:00:00+00:00")
    late.loc[late["is_catch"] == "True", "preferred_arm"] = v.loc[late.index[late["is_catch"] == "True"], "preferred_arm"]
    t2 = study_verdicts(pd.concat([v, late]), doc["pairs"])
    assert t2["n_votes"].iloc[0] == 6 * n_real and t2["win_rate"].iloc[0] == pytest.approx(5 / 6)
    # below the rater minimum
    few = study_verdicts(v[v["rater"].isin(["r0", "r1"])], doc["pairs"])
    assert (few["verdict"] == "too few votes").all()
    assert study_verdicts(v.iloc[0:0], doc["pairs"])["n_votes"].eq(0).all()


def test_study_verdicts_primary_basis_and_development_note(kit):
    """study.json declares one primary row; every row says which interval its verdict used (the
    90 % one beside 'equivalent'); the development question carries the structure-metric note."""
    cfg, doc = kit
    from eisbach_lib.study import question_notes
    from eisbach_lib.study_design import STRUCTURE_NOTE

    assert doc["primary"] == {"arm_a": "eisbach", "arm_b": "none", "question": "preference"}
    assert doc["pairs"].loc[doc["pairs"]["primary"], "question"].eq("preference").all()

    def tie(p):
        return ("A", p["arm_a"]) if p["is_catch"] else ("tie", "")

    v = votes_frame(doc, {f"r{i}": tie for i in range(8)})
    table = study_verdicts(v, doc["pairs"], notes=question_notes(doc))
    row = table.set_index("question")
    assert row.loc["preference", "role"] == "primary" and row.loc["development", "role"] == "secondary"
    assert (table["verdict"] == "equivalent").all() and (table["win_rate"] == 0.5).all()
    for r in table.itertuples():
        assert r.basis.startswith(f"90 % CI [{r.ci90_low:.3f}, {r.ci90_high:.3f}] inside 0.5 ± 0.1")
        assert r.ci_low <= r.ci90_low and r.ci90_high <= r.ci_high
    assert row.loc["development", "note"] == STRUCTURE_NOTE and row.loc["preference", "note"] == ""
    assert set(table["n_seeds"]) == {2}


# ----------------------------------------------------------------------------- calibration by simulation

N_SEEDS = 8                                  # the cpu and gpu profiles' training seeds
PER_SEED = 2                                 # ⌈12 / 8⌉: the kit's pairs per seed at pairs_per_comparison 12
N_COMPARISONS = 6                            # eisbach vs none, minsnr and the controls the cpu profile trains
N_QUESTIONS = 2                              # development, preference
N_CATCH = max(2, round(N_COMPARISONS * N_SEEDS * PER_SEED / 7))  # the kit's catch trials


def _correlated(rng, shape, n_c, n_q, rho_c, rho_q):
    """Standard normals [*shape, n_c·n_q] with corr(c q, c' q') = (1 or rho_c)·(1 or rho_q)."""
    cc = np.full((n_c, n_c), rho_c) + (1 - rho_c) * np.eye(n_c)
    cq = np.full((n_q, n_q), rho_q) + (1 - rho_q) * np.eye(n_q)
    L = np.linalg.cholesky(np.kron(cc, cq))
    return rng.standard_normal((*shape, n_c * n_q)) @ L.T


def simulate_study(n_sims, n_raters, rng, pref=0.0, seed_sd=0.5, rater_sd=1.0, pair_sd=0.5, n_seeds=N_SEEDS,
                   per_seed=PER_SEED, n_comparisons=N_COMPARISONS, n_questions=N_QUESTIONS, rho_comparison=0.5,
                   rho_question=0.7, pos_mu=0.5, pos_sd=0.5, share_random=0.25, tie_max=0.2, catch_pass=0.97,
                   n_catch=None):
    """A whole simulated study: scores for arm_a, W [n_sims, rows, R, P] (NaN for excluded raters),
    rows = comparisons × questions (row 0: the first comparison's first... question order as given;
    the primary is row `PRIMARY_ROW`), P = n_seeds·per_seed pairs per comparison, and the seed of
    each pair, groups [P].

    Rater r judging pair p (training seed k) of comparison c on question q picks arm_a with
    logit = pref[c q] + u_{r c q} + s_{k c q} + v_{p c q}:
    - s: the arm preference varies by training seed, SD `seed_sd`; a seed's effects are correlated
      across comparisons (`rho_comparison`: arm_a's seed-k adapter is in every comparison) and
      across questions (`rho_question`);
    - u: the rater's own leaning, SD `rater_sd`, correlated the same way; v: the pair's, SD
      `pair_sd` (independent across comparisons, `rho_question` across the two questions);
    so with `pref` 0 the population (new raters, new seeds) has no preference. The pair is shown
    with arm_a as "A" in half a comparison's trials (balanced per rater, as the page does), with a
    rater-specific position bias (logit N(pos_mu, pos_sd)) for answering "A"; a rater says "no
    preference" with a rater-specific probability up to `tie_max`; a share `share_random` of raters
    answers A/B/tie at random. Catch trials: an attentive rater prefers the original with
    probability `catch_pass`, a random one 1/3; raters failing more than MAX_CATCH_FAIL of them are
    excluded (`screen_raters`), from every row."""
    S, R, C, Q = n_sims, n_raters, n_comparisons, n_questions
    P = n_seeds * per_seed
    rows = C * Q
    groups = np.repeat(np.arange(n_seeds), per_seed)
    pref = np.broadcast_to(np.asarray(pref, dtype=float), (rows,))
    s = seed_sd * _correlated(rng, (S, n_seeds), C, Q, rho_comparison, rho_question)      # [S, K, rows]
    u = rater_sd * _correlated(rng, (S, R), C, Q, rho_comparison, rho_question)           # [S, R, rows]
    v = pair_sd * _correlated(rng, (S, P, C), 1, Q, 0.0, rho_question).reshape(S, P, rows)  # [S, P, rows]
    logit = (pref[None, :, None, None] + np.moveaxis(u, 2, 1)[..., None]
             + np.moveaxis(s[:, groups, :] + v, 2, 1)[:, :, None, :])                     # [S, rows, R, P]
    left = np.where(np.argsort(rng.random((S, C, R, P)), axis=-1) < P // 2, 1.0, -1.0)   # arm_a shown as A
    left = np.repeat(left, Q, axis=1)                                                      # both questions of a trial
    b = rng.normal(pos_mu, pos_sd, (S, 1, R, 1))
    choose_a_pos = rng.random((S, rows, R, P)) < 1 / (1 + np.exp(-(left * logit + b)))
    w = (choose_a_pos == (left > 0)).astype(float)
    w = np.where(rng.random((S, rows, R, P)) < rng.uniform(0, tie_max, (S, 1, R, 1)), 0.5, w)
    random_rater = rng.random((S, 1, R, 1)) < share_random
    w = np.where(random_rater, rng.integers(0, 3, (S, rows, R, P)) / 2.0, w)
    n_catch = N_CATCH if n_catch is None else n_catch
    passed = rng.random((S, R, n_catch)) < np.where(random_rater[:, 0, :, :], 1 / 3, catch_pass)
    excluded = screen_raters((~passed).sum(-1), np.full((S, R), n_catch))
    return np.where(excluded[:, None, :, None], np.nan, w), groups


PRIMARY_ROW = 1                              # eisbach vs none × preference (comparison 0, question 1)


def analyse(W, groups, primary=PRIMARY_ROW, alpha=0.05):
    """The study's analysis, vectorised over simulated studies [n_sims, rows]: the same functions
    `study_verdicts` uses (clustered_win_rate, t_interval, t_pvalue, family_adjust, decide_win_rate).
    Returns (raw decisive: the 95 % CI excludes 0.5, the verdicts after the family adjustment)."""
    r = clustered_win_rate(W, groups)
    lo, hi = t_interval(r["estimate"], r["se"], r["df"], 0.95)
    elo, ehi = t_interval(r["estimate"], r["se"], r["df"], 1 - 2 * alpha)
    p = np.where(r["n_raters"] >= MIN_RATERS, t_pvalue(r["estimate"], r["se"], r["df"]), np.nan)
    p_adj = family_adjust(p, primary)
    verdict = decide_win_rate(lo, hi, elo, ehi, r["n_raters"], p_adj=p_adj, alpha=alpha)
    raw = (r["n_raters"] >= MIN_RATERS) & ((lo > 0.5) | (hi < 0.5))
    return raw, verdict


def decisive(verdict):
    return np.isin(verdict, ["supported", "contradicted"])


# A rate is estimated from n simulated studies; the rows of one study share raters and seeds, so the
# MCSE is taken at the worst case (rows perfectly correlated: n independent draws, not n × rows):
# sqrt(0.05 · 0.95 / n). Bound: 0.05 + 3 MCSE, the same margin as tests/test_calibration.py (a correct
# rule exceeds it by chance with probability ~0.13 % per check).
N_SIMS = 600
BOUND = 0.05 + 3 * math.sqrt(0.05 * 0.95 / N_SIMS)


# "biased raters": rater SD 1.0 on the logit, position bias, ties, a quarter random raters (catch
# trials screen most of them out); "attentive raters": rater SD 0.3, no random raters, ties up to 10 %,
# so the seed effect dominates the variance, where ignoring it hurts most.
SCENARIOS = {"biased raters": {}, "attentive raters": dict(rater_sd=0.3, pair_sd=0.3, share_random=0.0, tie_max=0.1)}


@pytest.mark.parametrize("n_raters", [6, 12, 24])
@pytest.mark.parametrize("seed_sd", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_calibration_no_preference_is_rarely_decisive(scenario, seed_sd, n_raters):
    """No preference in the population; the preference varies by training seed (SD seed_sd on the
    logit), by rater and by pair: per row, the 95 % CI excludes 0.5 at most 5 % (+3 MCSE) of the
    time, and over the study's 12 listener rows some row is decisive after the family adjustment
    at most 5 % (+3 MCSE) of the time."""
    rng = np.random.default_rng(1000 + 10 * n_raters + int(10 * seed_sd) + 7 * len(scenario))
    W, groups = simulate_study(N_SIMS, n_raters, rng, seed_sd=seed_sd, **SCENARIOS[scenario])
    raw, verdict = analyse(W, groups)
    per_row = raw.mean()
    fwer = decisive(verdict).any(axis=1).mean()
    print(f"\n{scenario}, seed SD {seed_sd}, {n_raters} raters: per-row raw {per_row:.4f} "
          f"(max row {raw.mean(0).max():.4f}), family-wise {fwer:.4f}, bound {BOUND:.4f}")
    assert per_row <= BOUND and fwer <= BOUND


def test_the_bound_catches_the_rule_that_ignores_seeds():
    """The rule this replaces (clusters rater and pair, no seed; no multiplicity) at seed SD 1.0,
    12 attentive raters: per-row and family-wise rates far above the bound — the check can fail."""
    rng = np.random.default_rng(5)
    W, groups = simulate_study(N_SIMS, 12, rng, seed_sd=1.0, **SCENARIOS["attentive raters"])
    r = clustered_win_rate(W)  # every pair its own cluster
    lo, hi = t_interval(r["estimate"], r["se"], r["df"], 0.95)
    raw = (r["n_raters"] >= MIN_RATERS) & ((lo > 0.5) | (hi < 0.5))
    print(f"\nold rule, seed SD 1.0, 12 attentive raters: per-row {raw.mean():.4f}, family-wise {raw.any(axis=1).mean():.4f}")
    assert raw.mean() > BOUND and raw.any(axis=1).mean() > BOUND


def test_power_at_70_percent():
    """A true 70 % preference (logit 0.85) on the primary row, 12 raters (rater SD 0.3, pair SD 0.3,
    attentive, ties up to 10 %): without seed variation it is found at least 80 % of the time;
    with seed SD 0.5 less often, and never called 'contradicted'. More raters help less than
    more seeds would: the seed term does not shrink with raters."""
    kw = dict(rater_sd=0.3, pair_sd=0.3, share_random=0.0, tie_max=0.1)
    power = {}
    for seed_sd in (0.0, 0.5):
        rng = np.random.default_rng(7)
        pref = np.zeros(N_COMPARISONS * N_QUESTIONS)
        pref[PRIMARY_ROW] = math.log(0.7 / 0.3)
        W, groups = simulate_study(N_SIMS, 12, rng, pref=pref, seed_sd=seed_sd, **kw)
        _, verdict = analyse(W, groups)
        power[seed_sd] = np.mean(verdict[:, PRIMARY_ROW] == "supported")
        assert np.mean(verdict[:, PRIMARY_ROW] == "contradicted") == 0
    print(f"\npower at 70 %, 12 raters, 8 seeds x 2 pairs: {power}")
    mcse = math.sqrt(0.25 / N_SIMS)
    assert power[0.0] >= 0.80 - 3 * mcse and power[0.5] < power[0.0]


def test_screening_excludes_random_raters_more_than_attentive():
    rng = np.random.default_rng(3)
    W, _ = simulate_study(4000, 1, rng, share_random=0.5, n_comparisons=1, n_questions=1)
    excluded_share = np.isnan(W[:, 0, 0, 0]).mean()
    # attentive: 1 − 0.97^k excluded; random: P(fail more than a quarter of k catch trials at 2/3 each)
    k = N_CATCH
    p_random = sum(math.comb(k, j) * (2 / 3) ** j * (1 / 3) ** (k - j) for j in range(k + 1) if j / k > MAX_CATCH_FAIL)
    p_att = sum(math.comb(k, j) * 0.03 ** j * 0.97 ** (k - j) for j in range(k + 1) if j / k > MAX_CATCH_FAIL)
    se = math.sqrt(0.25 / 4000)
    assert excluded_share == pytest.approx(0.5 * p_att + 0.5 * p_random, abs=4 * se)
    assert MAX_CATCH_FAIL < 0.5


# ----------------------------------------------------------------------------- the live widget


def test_rater_plan_balanced_and_stable(kit):
    _, doc = kit
    trials = trials_of(doc["pairs"])
    p1, p2 = rater_plan(trials, doc["study_id"], "ann"), rater_plan(trials, doc["study_id"], "ann")
    pd.testing.assert_frame_equal(p1, p2)
    assert not p1["pair_id"].equals(rater_plan(trials, doc["study_id"], "bob")["pair_id"])
    for _, g in p1.groupby("comparison"):
        assert abs((g["a_is"] == "a").sum() - len(g) / 2) <= 0.5


def test_study_widget_writes_votes_with_hidden_arm(kit):
    cfg, doc = kit
    study = Path(cfg.runs_dir) / "listening" / "study.json"
    w = StudyAB(study, rater="ann")
    text = " ".join(str(getattr(x, "value", "")) for x in [w.progress, w.caption, w.question])
    assert "eisbach" not in text and "anchor" not in text
    first = w.plan.iloc[0]
    w.button_a.click()
    assert "ann: 1 vote saved · votes.csv: 1 vote from 1 rater " in w.summary.value  # refreshed after every vote
    w.button_tie.click()
    assert "ann: 2 votes saved · votes.csv: 2 votes from 1 rater " in w.summary.value
    votes = read_votes(study.parent / "votes.csv")
    assert list(votes["question"]) == ["development", "preference"] and (votes["rater"] == "ann").all()
    at_a = first["arm_a"] if first["a_is"] == "a" else first["arm_b"]
    assert votes.loc[0, "preferred_arm"] == at_a and votes.loc[1, "preferred_arm"] == ""
    assert votes.loc[0, "pair_id"] == first["pair_id"]
    w2 = StudyAB(study, rater="ann")  # resumes after the answered trial; another rater starts afresh
    assert len(w2.plan) == len(w.plan) - 1 and len(StudyAB(study, rater="bob").plan) == len(w.plan)
    with pytest.raises(ValueError, match="rater is empty"):
        StudyAB(study, rater=" ")
    while not w2.done:
        w2.choose("B")
    assert w2.button_a.disabled and "win_rate" in w2.result.outputs[0]["data"]["text/html"]


# ----------------------------------------------------------------------------- players and command line


def test_static_players_embed_labelled_mp3(tmp_path):
    from eisbach_lib.study_kit import static_players

    m = tiny_samples(tmp_path, arms=("none", "eisbach"), seeds=(0, 1), prompts=(0, 1, 2))
    page = static_players(m, tmp_path, max_clips=8)
    assert page.count("<audio controls") == 8 and page.count("data:audio/mpeg;base64,") == 8
    assert "none · seed 0 · prompt 0" in page and "eisbach · seed 1 · prompt 1" in page
    assert "8 clips shown of 12" in page


def test_cli_listen_kit_import_summary(tmp_path, capsys):
    from eisbach_lib.cli import main

    runs = tmp_path / "runs"
    runs.mkdir()
    tiny_samples(runs)
    prof = profile_copy(tmp_path / "profile.yaml", runs)
    main(["listen", "kit", "--profile", str(prof)])
    out = capsys.readouterr().out
    assert "8 trials (2 catch)" in out and "study.html" in out
    doc = load_study(runs / "listening" / "study.json")
    f = page_csv(tmp_path / "r1.csv", doc, "r1", prefer("eisbach"))
    main(["listen", "import", str(f), "--profile", str(prof)])
    assert "16 new votes" in capsys.readouterr().out
    main(["listen", "summary", "--profile", str(prof)])
    out = capsys.readouterr().out
    assert "too few votes" in out and "eisbach" in out and "r1" in out
    from eisbach_lib.config import load_profile
    from eisbach_lib.study import listener_rows

    rows = listener_rows(load_profile(str(prof)))
    assert list(rows["claim"].unique()) == ["listeners"] and len(rows) == 2
    assert rows["n"].tolist() == [6, 6] and (rows["estimate"] == 1.0).all()
    assert (rows["verdict"] == "too few votes").all()
    with pytest.raises(SystemExit) as e:
        main(["listen", "import", "--profile", str(prof)])
    assert e.value.code == 2
    # seven more raters with no preference: every row printed with the intervals its verdict used,
    # labelled (2 training seeds: df 1, so nothing is decided yet)
    for i in range(2, 9):
        main(["listen", "import", str(page_csv(tmp_path / f"r{i}.csv", doc, f"r{i}", lambda p, q: (
            ("A" if (p["page_first"] == "a") else "B", 1) if p["is_catch"] else ("tie", 1)))), "--profile", str(prof)])
    capsys.readouterr()
    main(["listen", "summary", "--profile", str(prof)])
    lines = [ln for ln in capsys.readouterr().out.splitlines() if " inconclusive " in ln]
    assert len(lines) == 2 and all("95 % CI [" in ln and "90 % CI [" in ln for ln in lines)


def test_bradley_terry_recovers_known_strengths():
    from eisbach_lib.study import bt_strengths

    true = np.log(np.array([1.0, 2.0, 4.0]))
    true -= true.mean()
    p = np.exp(true)
    n = 4000
    wins = np.array([[0 if i == j else n * p[i] / (p[i] + p[j]) for j in range(3)] for i in range(3)])
    np.testing.assert_allclose(bt_strengths(wins, prior=0), true, atol=1e-6)
    np.testing.assert_allclose(bt_strengths(np.full((3, 3), 5.0) * (1 - np.eye(3))), 0, atol=1e-9)
    assert np.isfinite(bt_strengths(np.array([[0, 10.0], [0, 0]]))).all()  # a clean sweep stays finite


def test_bradley_terry_orders_the_arms(tmp_path):
    from eisbach_lib.study import bradley_terry

    m = tiny_samples(tmp_path, arms=("none", "eisbach", "constant"), seeds=(0, 1), prompts=(0, 1, 2))
    cfg = smoke_at(tmp_path, {"name": "bt"})
    doc = load_study(make_kit(cfg, samples=m))

    def choose(p):
        if p["is_catch"]:
            return "A", p["arm_a"]
        return "A", ("eisbach" if p["arm_b"] == "none" else "constant")  # none < eisbach < constant

    v = votes_frame(doc, {f"r{i}": choose for i in range(6)})
    bt = bradley_terry(v, doc["pairs"], "preference", n_boot=200)
    assert list(bt["arm"]) == ["constant", "eisbach", "none"]
    assert (bt["ci_low"] <= bt["strength"]).all() and (bt["strength"] <= bt["ci_high"]).all()


def test_decide_win_rate_matches_stats_decide():
    """The local rule equals stats.decide on (win rate − 0.5) once stats.decide checks equivalence
    first (docs/design.md §4); skipped where stats has no decide."""
    from eisbach_lib import stats

    if not hasattr(stats, "decide"):
        pytest.skip("stats.decide not merged on this branch")
    if stats.decide(0.01, 0.05, +1, 0.015, 0.045, sesoi=0.10) != "equivalent":
        pytest.skip("stats.decide still puts significance before equivalence on this branch")
    rng = np.random.default_rng(0)
    c = rng.uniform(0.2, 0.8, 5000)
    h95, h90 = rng.uniform(0.01, 0.3, 5000), rng.uniform(0.01, 0.3, 5000) * 0.84
    ours = decide_win_rate(c - h95, c + h95, c - h90, c + h90, np.full(5000, 12))
    theirs = stats.decide(c - h95 - 0.5, c + h95 - 0.5, +1, c - h90 - 0.5, c + h90 - 0.5, sesoi=0.10)
    assert (ours == theirs).all()


def test_listen_study_verdicts_is_the_contracts_name_for_the_study_rule(kit):
    """DESIGN.md names `eisbach_lib.listen.study_verdicts(votes, pairs)`: on the same votes it gives the
    table of study.study_verdicts, which holds the rule."""
    from eisbach_lib import listen

    cfg, doc = kit
    raters = {f"r{i}": (lambda p, i=i: ("AB"[i % 2], p["arm_a"])) for i in range(6)}
    v = votes_frame(doc, raters)
    pd.testing.assert_frame_equal(listen.study_verdicts(v, doc["pairs"]), study_verdicts(v, doc["pairs"]))
