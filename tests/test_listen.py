"""Listening tools: loudness matching, the grid, blind A/B pairs, the A/B widget and its summary."""

import math

import ipywidgets as widgets
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from eisbach_lib.listen import (
    AB_COLUMNS,
    BlindAB,
    ab_pairs,
    listen_grid,
    loudness_match,
    rms_dbfs,
    summarise_ab,
)


def write_wav(path, seconds=0.5, sr=16000, freq=440.0, amp=0.3):
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, subtype="FLOAT")
    return str(path)


def make_manifest(tmp_path, arms=("none", "eisbach"), seeds=(0,), prompts=(0, 1), samples=(0,),
                  steps=(100,), write=True, adapter="dora"):
    rows = []
    for arm in arms:
        for seed in seeds:
            for step in steps:
                run = f"{adapter}_{arm}_s{seed}"
                for p in prompts:
                    for s in samples:
                        path = tmp_path / f"{run}_k{step}_p{p}_s{s}.wav"
                        if write:
                            write_wav(path, freq=220.0 * (1 + p) + 10 * s, amp=0.05 + 0.1 * arms.index(arm))
                        rows.append({"run": run, "adapter": adapter, "arm": arm, "seed": seed, "step": step,
                                     "prompt_id": p, "caption": f"caption {p}", "sample": s, "path": str(path)})
    return pd.DataFrame(rows)


def walk(w):
    yield w
    for c in getattr(w, "children", ()):
        yield from walk(c)


# ----------------------------------------------------------------------------- loudness


@pytest.mark.parametrize("target", [-30.0, -20.0, -16.0])  # noise crest ≈ 4.3: −16 dBFS peaks < 0.99
def test_loudness_match_hits_target(target):
    rng = np.random.default_rng(0)
    for y in (0.5 * np.sin(np.linspace(0, 200 * np.pi, 22050)), 0.01 * rng.standard_normal(22050)):
        out = loudness_match(y.astype(np.float32), target)
        assert out.dtype == np.float32
        assert abs(rms_dbfs(out) - target) < 0.1
        assert np.max(np.abs(out)) <= 0.99


def test_loudness_match_silence_stays_silent():
    assert np.all(loudness_match(np.zeros(1000, np.float32)) == 0)
    tiny = np.full(1000, 1e-7, np.float32)
    np.testing.assert_array_equal(loudness_match(tiny), tiny)  # below −100 dBFS: not amplified
    assert loudness_match(np.zeros(0, np.float32)).size == 0


def test_loudness_match_peak_limited():
    y = np.zeros(10000, np.float32)
    y[0] = 1.0  # one click: reaching −20 dBFS RMS would need a peak of 10
    out = loudness_match(y, -20.0)
    assert math.isclose(float(np.max(np.abs(out))), 0.99, rel_tol=1e-5)
    assert rms_dbfs(out) < -20.0


# ----------------------------------------------------------------------------- grid


def test_listen_grid_one_player_per_arm_per_row(tmp_path):
    arms = ("none", "eisbach", "eisbach_norm")
    m = make_manifest(tmp_path, arms=arms, seeds=(0, 1), prompts=(0, 1, 2))
    grid = listen_grid(m, seeds=[0], max_rows=8)
    assert isinstance(grid, widgets.Widget)
    rows = [c for c in grid.children if isinstance(c, widgets.HBox)]
    assert len(rows) == 3
    for row in rows:
        players = [w for w in walk(row) if isinstance(w, widgets.Output)]
        assert len(players) == len(arms)
        for p in players:
            assert "<audio" in p.outputs[0]["data"]["text/html"]
    assert "none" in rows[0].children[1].children[0].value  # `none` is the first column

    small = listen_grid(m, arms=["eisbach", "none"], max_rows=2)
    rows = [c for c in small.children if isinstance(c, widgets.HBox)]
    assert len(rows) == 2 and "showing 2 of 6" in small.children[-1].value
    assert sum(isinstance(w, widgets.Output) for w in walk(small)) == 4


def test_listen_grid_uses_final_step_by_default(tmp_path):
    m = make_manifest(tmp_path, prompts=(0,), steps=(50, 100))
    grid = listen_grid(m)
    assert sum(isinstance(w, widgets.Output) for w in walk(grid)) == 2


# ----------------------------------------------------------------------------- pairs


def test_ab_pairs_matches_keys_only(tmp_path):
    m = make_manifest(tmp_path, seeds=(0, 1), prompts=(0, 1), samples=(0, 1), write=False)
    extra = m[m["arm"] == "eisbach"].head(1).assign(step=999)  # no `none` partner at step 999
    base = m[m["arm"] == "none"].head(1).assign(arm="base")   # a third arm is ignored
    pairs = ab_pairs(pd.concat([m, extra, base]), "eisbach", "none", seed=3)
    assert len(pairs) == 8
    assert set(pairs["pair_id"]).__len__() == 8
    assert {"pair_id", "path_left", "path_right", "arm_left", "arm_right", "caption"} <= set(pairs.columns)
    by_path = m.set_index("path")
    for r in pairs.itertuples():
        left, right = by_path.loc[r.path_left], by_path.loc[r.path_right]
        assert {left["arm"], right["arm"]} == {"eisbach", "none"}
        assert left["arm"] == r.arm_left and right["arm"] == r.arm_right
        for k in ("seed", "prompt_id", "sample", "step"):
            assert left[k] == right[k]
        assert r.caption == left["caption"]


def test_ab_pairs_deterministic_and_balanced(tmp_path):
    m = make_manifest(tmp_path, seeds=tuple(range(10)), prompts=tuple(range(10)), samples=(0, 1), write=False)
    p1 = ab_pairs(m, seed=7)
    p2 = ab_pairs(m, seed=7)
    pd.testing.assert_frame_equal(p1, p2)
    assert len(p1) == 200
    share_left = (p1["arm_left"] == "eisbach").mean()
    assert 0.4 <= share_left <= 0.6
    p3 = ab_pairs(m, seed=8)
    assert not (p3["arm_left"].to_numpy() == p1["arm_left"].to_numpy()).all()


def test_ab_pairs_rejects_ambiguous(tmp_path):
    m = make_manifest(tmp_path, write=False)
    with pytest.raises(ValueError):
        ab_pairs(pd.concat([m, m[m["arm"] == "eisbach"]]))


# ----------------------------------------------------------------------------- widget


def test_blind_ab_records_preferred_arm_and_appends(tmp_path):
    m = make_manifest(tmp_path, prompts=(0, 1, 2))
    pairs = ab_pairs(m, "eisbach", "none", seed=0)
    csv_path = tmp_path / "listening" / "ab.csv"

    ab = BlindAB(pairs, csv_path, rater="r1")
    assert ab.progress.value == "1 / 3"
    text = " ".join(str(getattr(w, "value", "")) for w in walk(ab.widget))
    assert "eisbach" not in text and "none" not in text  # arms hidden
    assert [w.description for w in (ab.button_a, ab.button_b, ab.button_tie)] == \
        ["A is better", "B is better", "no preference"]
    ab.button_a.click()
    assert ab.progress.value == "2 / 3"
    ab.button_b.click()
    assert "eisbach" not in ab.summary.value
    ab.button_tie.click()
    assert ab.done and ab.button_a.disabled
    assert "eisbach" in ab.summary.value  # revealed at the end
    ab.button_a.click()  # ignored after the end

    got = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    assert list(got.columns) == list(AB_COLUMNS)
    assert list(got["choice"]) == ["A", "B", "tie"]
    assert list(got["pair_id"]) == list(pairs["pair_id"])
    assert got.loc[0, "preferred_arm"] == pairs.loc[0, "arm_left"]
    assert got.loc[1, "preferred_arm"] == pairs.loc[1, "arm_right"]
    assert got.loc[2, "preferred_arm"] == ""
    assert (got["rater"] == "r1").all() and all(got["timestamp"])

    BlindAB(pairs, csv_path, rater="r2").choose("A")  # a second session appends
    got = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    assert len(got) == 4 and list(got["rater"]) == ["r1"] * 3 + ["r2"]

    resumed = BlindAB(pairs, csv_path, rater="r2", resume=True)
    assert resumed.n == 2


# ----------------------------------------------------------------------------- summary


def write_choices(path, prefs):
    rows = [{"pair_id": f"p{i}", "choice": c, "preferred_arm": arm, "rater": "r", "timestamp": "t"}
            for i, (c, arm) in enumerate(prefs)]
    pd.DataFrame(rows, columns=list(AB_COLUMNS)).to_csv(path, index=False)


def test_summarise_ab_counts_and_p(tmp_path):
    path = tmp_path / "ab.csv"
    prefs = [("A", "eisbach")] * 10 + [("B", "eisbach")] * 5 + [("A", "none")] * 3 + [("B", "none")] * 2 \
        + [("tie", "")] * 4
    write_choices(path, prefs)
    s = summarise_ab(path, arm_a="eisbach")
    assert (s["n"], s["wins_a"], s["wins_b"], s["ties"]) == (24, 15, 5, 4)
    assert s["share_a"] == pytest.approx(0.75)
    assert s["p_binomial"] == pytest.approx(0.041389, abs=1e-5)
    s_none = summarise_ab(path, arm_a="none")
    assert (s_none["wins_a"], s_none["wins_b"]) == (5, 15)
    assert s_none["p_binomial"] == pytest.approx(s["p_binomial"])


def test_summarise_ab_empty_and_missing(tmp_path):
    for path in (tmp_path / "missing.csv", tmp_path / "empty.csv", tmp_path / "header.csv", tmp_path / "ties.csv"):
        if path.name == "empty.csv":
            path.write_text("")
        elif path.name == "header.csv":
            write_choices(path, [])
        elif path.name == "ties.csv":
            write_choices(path, [("tie", "")] * 3)
        s = summarise_ab(path)
        assert s["n"] == (3 if path.name == "ties.csv" else 0)
        assert s["wins_a"] == s["wins_b"] == 0
        assert math.isnan(s["p_binomial"]) and math.isnan(s["share_a"])
