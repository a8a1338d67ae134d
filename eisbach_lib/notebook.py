"""The notebooks' one set-up call: `cfg, paths = setup(profile)`.

Every notebook of the series starts the same way: quiet FutureWarnings, seaborn's whitegrid theme,
the profile loaded, the figures folder made, torch seeded with the profile's seed, and one line
saying where the runs and figures go. `setup` does all of that and returns the profile and its
`layout.Layout` (paths.runs, paths.figures, paths.anatomy, paths.metrics, ...).
"""

from __future__ import annotations

import warnings

from .config import load_profile
from .layout import Layout


def setup(profile: str) -> tuple[dict, Layout]:
    """Load `profile` (smoke | cpu | gpu, or a YAML path) for a notebook: FutureWarnings ignored,
    seaborn theme "whitegrid"/"notebook", <figures_dir> created, torch.manual_seed(cfg.seed),
    and the line "profile NAME: runs in RUNS, figures in FIGS" printed. Returns (cfg, Layout.of(cfg))."""
    import seaborn as sns  # heavy: seaborn
    import torch  # heavy: torch

    warnings.filterwarnings("ignore", category=FutureWarning)
    sns.set_theme(style="whitegrid", context="notebook")
    cfg = load_profile(profile)
    paths = Layout.of(cfg)
    paths.figures.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    print(f"profile {cfg.name}: runs in {paths.runs}, figures in {paths.figures}")
    return cfg, paths


__all__ = ["setup"]
