"""The pilot's analysis on generated-clip tables where the truth is known: the dose-response reads
each dose's effect in sesoi, says whether the readout falls monotonically with the dose, and pairs
the base model with every seed by prompt and sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eisbach_lib import pilot


def clips_table(effects: dict[str, float], seeds=3, prompts=8, samples=4, noise=0.02, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    prompt_eff = rng.normal(0, 0.05, prompts)
    rows = []
    for p in range(prompts):
        for k in range(samples):
            rows.append({"label": "base", "seed": -1, "prompt_id": p, "sample": k, "set": "primary",
                         "flat_share": 0.3 + prompt_eff[p] + effects.get("base", 0.0) + rng.normal(0, noise)})
    for label in ("none", "oracle0.3", "oracle0.1"):
        for s in range(seeds):
            for p in range(prompts):
                for k in range(samples):
                    rows.append({"label": label, "seed": s, "prompt_id": p, "sample": k, "set": "primary",
                                 "flat_share": 0.4 + prompt_eff[p] + effects.get(label, 0.0) + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def row(table, comparison):
    return table[table["comparison"] == comparison].iloc[0]


def test_a_monotone_dose_response_is_read_in_sesoi():
    t = pilot.dose_response(clips_table({"oracle0.3": -0.1, "oracle0.1": -0.25}), sesoi=0.05)
    assert row(t, "oracle0.1 − none")["effect_sesoi"] == pytest.approx(-5.0, abs=0.5)
    assert row(t, "oracle0.3 − none")["verdict"] == "supported"  # direction −: fewer flat clips
    assert row(t, "oracle0.1 − none")["monotone"] == 1.0
    assert row(t, "none − base")["estimate"] == pytest.approx(0.1, abs=0.03)


def test_a_reversed_dose_is_not_monotone():
    t = pilot.dose_response(clips_table({"oracle0.3": -0.25, "oracle0.1": -0.1}), sesoi=0.05)
    assert row(t, "oracle0.1 − none")["monotone"] == 0.0


def test_paired_rows_pair_base_with_every_seed_by_prompt_and_sample():
    c = clips_table({})
    d = pilot.paired_rows(c, "none", "base", "primary")
    assert len(d) == 3 * 8 * 4 and set(d["seed"]) == {0, 1, 2}


def test_pilot_labels():
    assert pilot.arm_label("none", 1.0, "recipe") == "none"
    assert pilot.arm_label("oracle_texture", 0.1, "lr=2e-4") == "oracle0.1@lr=2e-4"
