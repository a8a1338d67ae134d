"""The run registry: where the profile's runs are and what they wrote, read back without training.

- `base_dir_for`, `base_model`: the base model of the adapter runs (model.base_dir, else
  <runs_dir>/base) and that model loaded;
- `grid_items`, `grid_status`: the profile's paired grid of adapter runs (adapter x seed x arm) and
  which of them are finished (done.json);
- `list_checkpoints`, `run_steps`, `load_run_model`: a run's complete checkpoints, the steps to
  generate at, and its model at a checkpoint or at the end;
- `read_log`, `pretrain_log`: a run's training log (per sample or per step).

The run folder layout is train.py's (its module docstring); train.py writes runs, and generate.py,
anatomy.py and probes.py read them through this module. Loading a model imports models.py (and with
it diffusers) only when one is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from .config import Profile
from .basedir import check_base_for
from .layout import LOG_DIR, RUN_META, Layout, is_finished, log_chunk_glob, log_file, read_done

if TYPE_CHECKING:
    from .models import EisbachDiT


def base_dir_for(cfg: Profile, base_dir: str | Path | None = None) -> Path:
    """The base model of adapter runs: `base_dir`, else cfg model.base_dir (real SA3), else
    <runs_dir>/base (the pretrained embedded DiT)."""
    if base_dir:
        return Path(base_dir)
    if cfg.model.base_dir:
        return Path(cfg.model.base_dir)
    return Layout.of(cfg).base


def base_model(cfg: Profile):
    """The base model of the profile's adapter runs (`base_dir_for`: model.base_dir, else
    <runs_dir>/base), loaded in eval mode on the CPU; checked first with models.check_base_dir so a missing or
    broken part fails at once, naming the files."""
    from .models import load_base  # heavy: diffusers (.models imports it)

    check_base_for(cfg, dit=True)
    return load_base(base_dir_for(cfg)).eval()


def grid_items(cfg: Profile) -> list[dict]:
    """The profile's paired grid in a fixed order: adapters, then seeds, then arms (each seed's paired
    set of arms is contiguous). Each item: adapter, arm, seed, run_dir = <runs_dir>/adapters/<adapter>_<arm>_s<seed>."""
    ft = cfg.finetune
    layout = Layout.of(cfg)
    return [{"adapter": a, "arm": arm, "seed": int(s), "run_dir": layout.adapter_run(a, arm, s)}
            for a in ft.adapters for s in ft.seeds for arm in ft.arms]


def grid_status(cfg: Profile) -> pd.DataFrame:
    """One row per run of the grid (`grid_items`): adapter, arm, seed and its done.json summary, or
    status "missing" for a run not finished. Also written to <runs_dir>/adapters/grid.csv."""
    rows = []
    for it in grid_items(cfg):
        done = read_done(it["run_dir"]) if is_finished(it["run_dir"]) else {"status": "missing"}
        rows.append({**{k: it[k] for k in ("adapter", "arm", "seed")}, **done})
    runs = pd.DataFrame(rows)
    layout = Layout.of(cfg)
    layout.adapters.mkdir(parents=True, exist_ok=True)
    runs.to_csv(layout.grid, index=False)
    return runs


def list_checkpoints(run_dir: Path) -> dict[int, Path]:
    """{step: folder} of the complete checkpoints of a run."""
    out = {}
    for p in Path(run_dir).glob("ckpt_*"):
        if p.is_dir() and not p.name.endswith(".tmp") and p.name[5:].isdigit():
            out[int(p.name[5:])] = p
    return dict(sorted(out.items()))


def run_steps(run_dir: Path) -> tuple[list[int], int]:
    """(checkpoint steps to generate at, final step) of a finished run, from its own record: the
    final step is done.json's `steps`; the checkpoints are the complete ckpt_* folders present below
    it (the ones done.json lists, when it lists any). A run trained with `--steps 5` under a profile
    whose checkpoints are [10, 20] is generated at step 5, not at 10 and 20."""
    done = read_done(run_dir)
    final = int(done["steps"])
    present = set(list_checkpoints(run_dir))
    listed = set(int(s) for s in done.get("checkpoints") or present)
    return sorted(s for s in present & listed if s < final), final


def load_run_model(cfg: Profile, run_dir: str | Path, step: int | None = None) -> EisbachDiT:
    """The model of a run (base + adapter, or the base itself for a base run) at checkpoint `step`
    (None: the final weights), in eval mode on the CPU."""
    from .models import load_adapter, load_base  # heavy: diffusers (.models imports it)

    run_dir = Path(run_dir)
    if not (run_dir / RUN_META).exists():
        raise FileNotFoundError(f"{run_dir}: not a training run (no {RUN_META})")
    meta = json.loads((run_dir / RUN_META).read_text())
    if step is None:
        if not is_finished(run_dir):
            raise FileNotFoundError(f"{run_dir}: the run is not finished (no done.json); pass a checkpoint step")
        folder = run_dir
    else:
        ckpts = list_checkpoints(run_dir)
        if step not in ckpts:
            raise FileNotFoundError(f"{run_dir}: no checkpoint at step {step} (have: {sorted(ckpts) or 'none'})")
        folder = ckpts[step]
    if meta["adapter"] is None:
        return load_base(folder).eval()
    base = meta.get("base_dir")
    if not base or not Path(base).exists():
        base = base_dir_for(cfg)
    return load_adapter(load_base(base), folder).eval()


def read_log(run_dir: str | Path, which: str = "samples") -> pd.DataFrame:
    """The training log of a run, `which` = samples (one row per step and sample: run, adapter, arm,
    seed, step, id, [texture], t, h, w, loss, dropped, noise_sum) or steps (one row per step: step,
    loss, loss_unweighted, w_mean, h_mean, lr, grad_norm, samples_per_s). Reads the whole-run file of a
    finished run, else the chunks written so far."""
    if which not in ("samples", "steps"):
        raise ValueError(f"which must be samples or steps, got {which!r}")
    run_dir = Path(run_dir)
    whole = run_dir / log_file(which)
    if whole.exists():
        return pd.read_parquet(whole)
    chunks = sorted((run_dir / LOG_DIR).glob(log_chunk_glob(which)))
    if not chunks:
        raise FileNotFoundError(f"{run_dir}: no training log ({log_file(which)} or {LOG_DIR}/{log_chunk_glob(which)})")
    return pd.concat([pd.read_parquet(c) for c in chunks], ignore_index=True)


def pretrain_log(base_dir: str | Path) -> pd.DataFrame:
    """The base model's pretraining log (`read_log`), or an empty frame for a base with no run
    record (real Stable Audio 3 weights)."""
    return read_log(base_dir) if (Path(base_dir) / RUN_META).exists() else pd.DataFrame()
