"""Reproducible figures: the same data and seed give the same PNG bytes; the seed really moves the
bootstrap band (so the test above is not passing because the band ignores it). `ci_errorbars`
draws each row's bar from its lower to its upper bound, as notebook 06 drew them by hand."""

import hashlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import pandas as pd  # noqa: E402

from eisbach_lib.plots import ci_errorbars, ci_lineplot, save_png  # noqa: E402


def _data() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = [{"step": s, "arm": arm, "seed": k, "loss": 1 / (1 + s) + 0.2 * rng.standard_normal()}
            for arm in ("none", "eisbach") for k in range(5) for s in range(0, 50, 5)]
    return pd.DataFrame(rows)


def _figure_bytes(tmp_path, name: str, seed: int) -> bytes:
    fig, ax = plt.subplots(figsize=(5, 3))
    ci_lineplot(_data(), x="step", y="loss", hue="arm", ax=ax, seed=seed, n_boot=200)
    path = save_png(fig, tmp_path / name)
    plt.close(fig)
    return path.read_bytes()


def test_same_seed_same_png_bytes(tmp_path):
    a = _figure_bytes(tmp_path, "a.png", seed=3)
    b = _figure_bytes(tmp_path, "b.png", seed=3)
    assert a[:8] == b"\x89PNG\r\n\x1a\n" and len(a) > 5_000
    assert hashlib.sha256(a).hexdigest() == hashlib.sha256(b).hexdigest()
    assert b"Software" not in a  # no version-bearing chunk


def test_another_seed_moves_the_band(tmp_path):
    assert _figure_bytes(tmp_path, "a.png", seed=3) != _figure_bytes(tmp_path, "c.png", seed=4)


def _ci_table() -> pd.DataFrame:
    # asymmetric intervals: a bar drawn from distances instead of bounds would not match
    return pd.DataFrame({"arm": ["none", "eisbach", "minsnr"], "mean": [1.0, 2.0, 1.5],
                         "lo": [0.5, 1.9, 0.0], "hi": [1.2, 3.0, 1.6]})


def test_ci_errorbars_bars_span_lo_to_hi():
    t = _ci_table()
    for x in (None, "arm"):  # positions 0..n-1, or the labels of a categorical axis (also 0..n-1)
        fig, ax = plt.subplots()
        bars = ci_errorbars(ax, t, x=x)
        points, _, (lines,) = bars.lines
        np.testing.assert_allclose(np.asarray(points.get_ydata(), float), t["mean"])
        segments = np.array(lines.get_segments(), float)  # one [[x, lo], [x, hi]] per row
        np.testing.assert_allclose(segments[:, 0, 0], [0, 1, 2])
        np.testing.assert_allclose(segments[:, :, 1], t[["lo", "hi"]].to_numpy())
        plt.close(fig)


def test_ci_errorbars_draws_what_the_notebook_drew_by_hand(tmp_path):
    t = _ci_table()
    pngs = []
    for by_hand in (True, False):
        fig, ax = plt.subplots(figsize=(3, 2))
        if by_hand:  # notebook 06 before ci_errorbars
            ax.errorbar(range(len(t)), t["mean"], yerr=[t["mean"] - t["lo"], t["hi"] - t["mean"]], fmt="o", capsize=4)
        else:
            ci_errorbars(ax, t)
        pngs.append(save_png(fig, tmp_path / f"{by_hand}.png").read_bytes())
        plt.close(fig)
    assert pngs[0] == pngs[1]


def test_seed_bands_are_t_intervals_over_seeds():
    """Two seeds at 1 and 3: mean 2, sd √2, half-width t(0.975, 1)·√2/√2 = 12.706; one seed: no width."""
    import pandas as pd

    from eisbach_lib.anatomy import seed_bands

    per_step = pd.DataFrame({"arm": ["a", "a", "b"], "seed": [0, 1, 0], "step": [1, 1, 1], "loss_smooth": [1.0, 3.0, 5.0]})
    bands = seed_bands(per_step).set_index("arm")
    assert bands.loc["a", "mean"] == 2.0 and bands.loc["a", "n"] == 2
    assert bands.loc["a", "hi"] - 2.0 == pytest.approx(12.7062, abs=1e-4)
    assert bands.loc["b", "lo"] == bands.loc["b", "hi"] == 5.0


def test_band_lines_draws_a_line_and_a_band_per_group():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from eisbach_lib.plots import band_lines

    bands = pd.DataFrame({"arm": ["x", "x", "y", "y"], "step": [1, 2, 1, 2], "mean": [0.0, 1.0, 2.0, 3.0],
                          "lo": [-1.0, 0.0, 1.0, 2.0], "hi": [1.0, 2.0, 3.0, 4.0]})
    fig, ax = plt.subplots()
    band_lines(ax, bands)
    assert [line.get_label() for line in ax.get_lines()] == ["x", "y"]
    assert len(ax.collections) == 2 and ax.get_legend().get_title().get_text() == "arm"
    assert list(ax.get_lines()[1].get_ydata()) == [2.0, 3.0]
    plt.close(fig)
