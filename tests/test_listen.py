"""Listening tools: loudness matching and the side-by-side grid."""

import math

import ipywidgets as widgets
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from eisbach_lib.listen import listen_grid, loudness_match, rms_dbfs


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
