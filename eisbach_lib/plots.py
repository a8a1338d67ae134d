"""Figures that come out the same, byte for byte, for the same data.

Two things make a rerun's PNG differ: seaborn's confidence bands are bootstrapped with an
unseeded generator unless `seed=` is given (`sns.lineplot(..., errorbar=("ci", 95))` draws
different resamples each call), and matplotlib writes its version into the PNG's "Software"
text chunk (a different matplotlib changes the bytes though the picture is the same).
`ci_lineplot` fixes the first, `save_png` the second. `ci_errorbars` draws a table of estimates
with their confidence intervals as points with error bars (notebook 06), `band_lines` a table of
lines with precomputed intervals (notebook 04).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def ci_lineplot(data: pd.DataFrame, x: str, y: str, hue: str | None = None, ax=None, seed: int = 0,
                n_boot: int = 1000, **kwargs):
    """`sns.lineplot` with its 95 % bootstrap band (percentile CI of the mean over `n_boot`
    resamples, seaborn's default estimator) drawn from a fixed `seed`. Returns the Axes."""
    import seaborn as sns  # heavy: seaborn

    return sns.lineplot(data=data, x=x, y=y, hue=hue, errorbar=("ci", 95), n_boot=n_boot, seed=seed, ax=ax, **kwargs)


def ci_errorbars(ax, table: pd.DataFrame, y: str = "mean", lo: str = "lo", hi: str = "hi", x: str | None = None,
                 fmt: str = "o", capsize: float = 4, **kwargs):
    """One point per row of `table` at ``table[y]`` with a vertical error bar from ``table[lo]`` to
    ``table[hi]`` (the bounds of its CI, not distances from the point), drawn on `ax`.

    The points sit at ``table[x]`` (numbers, or labels for a categorical axis) or, when `x` is
    None, at 0, 1, …, n − 1 (label those ticks yourself). `fmt`, `capsize` and `kwargs` go to
    ``ax.errorbar``. Returns its ErrorbarContainer."""
    est = table[y]
    pos = np.arange(len(table)) if x is None else table[x]
    return ax.errorbar(pos, est, yerr=[est - table[lo], table[hi] - est], fmt=fmt, capsize=capsize, **kwargs)


def band_lines(ax, bands: pd.DataFrame, x: str = "step", hue: str = "arm", y: str = "mean", lo: str = "lo",
               hi: str = "hi", alpha: float = 0.2):
    """One line per `hue` group of a precomputed table (``bands[y]`` against ``bands[x]``) with its
    interval ``bands[lo]``–``bands[hi]`` shaded (for example `anatomy.seed_bands`), in the order the
    groups first appear, with a legend titled `hue`. Returns `ax`."""
    for name, g in bands.groupby(hue, sort=False):
        line, = ax.plot(g[x], g[y], label=str(name))
        ax.fill_between(g[x], g[lo], g[hi], color=line.get_color(), alpha=alpha, linewidth=0)
    ax.set_xlabel(x)
    ax.legend(title=hue)
    return ax


def save_png(fig, path: str | Path, dpi: int = 120, **kwargs) -> Path:
    """fig.savefig as PNG without the version-bearing "Software" chunk (matplotlib writes no time
    stamp into a PNG), so equal figures give equal files."""
    path = Path(path)
    fig.savefig(path, dpi=dpi, format="png", metadata={"Software": None}, **kwargs)
    return path


__all__ = ["band_lines", "ci_errorbars", "ci_lineplot", "save_png"]
