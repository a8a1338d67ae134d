"""Reproducible figures: the same data and seed give the same PNG bytes; the seed really moves the
bootstrap band (so the test above is not passing because the band ignores it)."""

import hashlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from eisbach_lib.plots import ci_lineplot, save_png  # noqa: E402


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
