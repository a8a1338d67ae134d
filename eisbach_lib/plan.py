"""How many seeds, prompts and samples a recorded run needs: the design planner (`eisbach plan`).

A pilot (`pilot.run_pilot`) measures, for the primary outcome (the texture readout's flat share on the
primary prompts) and for each arm it trained, the paired differences d_spk = readout(arm) −
readout(none) of seed s, prompt p and sample k, and the wall time of each stage. This module turns
them into a design:

1. Variance components of the crossed random design d_spk = δ + a_s + b_p + (ab)_sp + e_spk
   (`variance_components`, method of moments on a balanced S × P × n array; each truncated at 0):

       MS_within = Σ(d_spk − d̄_sp)² / (S·P·(n − 1))            E = σ²_e
       MS_resid, MS_seed, MS_prompt of the S × P cell means    E = σ²_ab + σ²_e/n,
                                                                   P·σ²_a + …, S·σ²_b + …

2. The SE that `stats.paired_verdict` will have for S seeds × P prompts × n samples (`expected_se`):
   E[se²] = σ²_a/S + σ²_b/P + (σ²_ab + σ²_e/n)/(S·P) (`stats.crossed_mean_se`'s estimator has this
   expectation), and the minimum detectable effect MDE = `stats.mde_factor`(min(S, P) − 1)·se.

3. The wall time of the design on the machine that ran the pilot (`projected_seconds`): fixed stages
   (corpus, pretraining, anatomy) + per trained run × arms × S + per generated clip × clips + per
   evaluated clip × clips, each measured by the pilot (seconds per unit), not assumed.

A pilot with 2 seeds estimates σ²_a with one degree of freedom: the plan says so, and its MDE for few
seeds is only as good as that estimate. The planner never sees an `eisbach` outcome: the pilot trains
`none` and `oracle_texture` only, so the design is fixed before any claim is looked at.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .config import Profile
from .stats import _mean_squares, mde_factor


@dataclass(frozen=True)
class Components:
    """Variance components of a paired difference (units of the outcome) and the pilot's shape."""

    seed: float
    prompt: float
    cell: float
    sample: float
    n_seeds: int
    n_prompts: int
    n_samples: int


def variance_components(d: pd.DataFrame, value: str = "d") -> Components:
    """Method-of-moments components from rows (seed, prompt_id, sample, `value`); the largest balanced
    block is used (seeds × prompts with the smallest common number of samples)."""
    g = d.groupby(["seed", "prompt_id"])[value]
    n = int(g.size().min())
    block = d.assign(_k=g.cumcount())
    block = block[block["_k"] < n]
    arr = block.pivot_table(index=["seed", "prompt_id"], columns="_k", values=value).dropna()
    seeds, prompts = sorted(arr.index.get_level_values(0).unique()), sorted(arr.index.get_level_values(1).unique())
    y = arr.to_numpy(dtype=np.float64).reshape(len(seeds), len(prompts), n)
    cells = y.mean(axis=2)
    ms_within = float(((y - cells[..., None]) ** 2).sum() / (y.size - cells.size)) if n > 1 else 0.0
    S, P = cells.shape
    if S < 2 or P < 2:
        raise ValueError(f"variance_components: needs ≥ 2 seeds and ≥ 2 prompts, got {S} × {P}")
    ms_s, ms_p, ms_e = (float(x) for x in _mean_squares(cells))
    return Components(seed=max((ms_s - ms_e) / P, 0.0), prompt=max((ms_p - ms_e) / S, 0.0),
                      cell=max(ms_e - ms_within / n, 0.0), sample=ms_within, n_seeds=S, n_prompts=P, n_samples=n)


def expected_se(c: Components, seeds: int, prompts: int, samples: int) -> float:
    """E[se] of the paired rule for a design: √(σ²_a/S + σ²_b/P + (σ²_ab + σ²_e/n)/(S·P))."""
    return float(np.sqrt(c.seed / seeds + c.prompt / prompts + (c.cell + c.sample / samples) / (seeds * prompts)))


def expected_mde(c: Components, seeds: int, prompts: int, samples: int, alpha: float = 0.05) -> float:
    """The MDE (80 % power, two-sided α) the rule will report: mde_factor(min(S, P) − 1)·E[se]."""
    return float(mde_factor(min(seeds, prompts) - 1, alpha)) * expected_se(c, seeds, prompts, samples)


@dataclass(frozen=True)
class Costs:
    """Measured seconds: fixed stages, one trained run, one generated clip, one evaluated clip."""

    fixed_s: float
    train_run_s: float
    generate_clip_s: float
    evaluate_clip_s: float


@dataclass(frozen=True)
class Shape:
    """What a profile generates besides the primary prompts: `rows_per_prompt` generated rows per primary
    prompt (2 when the same captions are also generated at the profile's CFG), `extra_rows` rows that do
    not scale with the prompts (unconditional + card prompts), `checkpoint_models` extra generations per
    seed (checkpoints of the checkpoint arms)."""

    rows_per_prompt: int = 2
    extra_rows: int = 5
    checkpoint_models: int = 0


def shape_of(cfg: Profile) -> Shape:
    """The generation shape of a profile (`generate.prompt_set`'s sets, `config.checkpoint_arms`)."""
    gen, ft = cfg.generate, cfg.finetune
    two = gen.primary_cfg != gen.cfg and gen.primary_at_cfg
    extra = gen.unconditional_prompts + (4 if gen.card_prompts else 0)
    ckpts = ft.checkpoint_steps[:-1]
    return Shape(2 if two else 1, extra, len(ckpts) * len(gen.checkpoint_arms or ft.arms))


def projected_seconds(costs: Costs, arms: int, seeds: int, prompts: int, samples: int, shape: Shape = Shape()) -> float:
    """fixed + train·arms·S + (generate + evaluate)·clips, with clips = models·rows·n:
    models = arms·S + checkpoint_models·S + 1 (the base), rows = rows_per_prompt·P + extra_rows."""
    models = arms * seeds + shape.checkpoint_models * seeds + 1
    clips = models * (shape.rows_per_prompt * prompts + shape.extra_rows) * samples
    return costs.fixed_s + costs.train_run_s * arms * seeds + (costs.generate_clip_s + costs.evaluate_clip_s) * clips


def design_table(c: Components, costs: Costs, sesoi: float, arms: int, seeds=range(3, 17),
                 prompts=(8, 12, 16, 24), samples=(4, 8), alpha: float = 0.05, shape: Shape = Shape()) -> pd.DataFrame:
    """Every candidate design with its expected MDE (outcome units and in sesoi) and projected
    minutes, cheapest first."""
    rows = [{"seeds": s, "prompts": p, "samples": n, "mde": expected_mde(c, s, p, n, alpha),
             "minutes": projected_seconds(costs, arms, s, p, n, shape) / 60}
            for s, p, n in itertools.product(seeds, prompts, samples)]
    df = pd.DataFrame(rows)
    df["mde_sesoi"] = df["mde"] / sesoi
    return df.sort_values(["minutes", "mde"]).reset_index(drop=True)


def choose(table: pd.DataFrame, target_mde_sesoi: float = 0.5, budget_minutes: float | None = None) -> pd.Series | None:
    """The cheapest design whose MDE is at most `target_mde_sesoi` sesoi (and within the budget), or None."""
    ok = table[table["mde_sesoi"] <= target_mde_sesoi]
    if budget_minutes is not None:
        ok = ok[ok["minutes"] <= budget_minutes]
    return ok.iloc[0] if len(ok) else None


def write_plan_inputs(path: Path, components: dict[str, Components], costs: Costs, sesoi: float, arms: int,
                      shape: Shape = Shape()) -> None:
    """The pilot's measurements as JSON (what `eisbach plan` reads)."""
    path.write_text(json.dumps({"components": {k: asdict(v) for k, v in components.items()}, "costs": asdict(costs),
                                "sesoi": sesoi, "arms": arms, "shape": asdict(shape)}, indent=2))


def read_plan_inputs(path: Path) -> tuple[dict[str, Components], Costs, float, int, Shape]:
    """(components by comparison, costs, sesoi, arms, shape) from `write_plan_inputs`' file; a missing
    file raises FileNotFoundError naming it and the command that writes it."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no pilot measurements; run `eisbach pilot --profile …` first")
    raw = json.loads(path.read_text())
    return ({k: Components(**v) for k, v in raw["components"].items()}, Costs(**raw["costs"]), float(raw["sesoi"]),
            int(raw["arms"]), Shape(**raw.get("shape", {})))


def plan_report(path: Path, target_mde_sesoi: float = 0.5, budget_minutes: float | None = 60.0,
                arms: int | None = None) -> tuple[str, pd.DataFrame]:
    """(text, table): for each measured comparison, the cheapest design reaching the target MDE (in
    sesoi) within the budget, with the pilot's components; the table holds every candidate."""
    comps, costs, sesoi, pilot_arms, shape = read_plan_inputs(path)
    arms = arms or pilot_arms
    lines = [f"pilot: {path}", f"sesoi of the readout {sesoi:.4g}; target MDE {target_mde_sesoi} sesoi; {arms} arms; "
             f"costs: fixed {costs.fixed_s / 60:.1f} min, {costs.train_run_s:.1f} s a run, "
             f"{costs.generate_clip_s + costs.evaluate_clip_s:.3f} s a clip"]
    tables = []
    for name, c in comps.items():
        t = design_table(c, costs, sesoi, arms, shape=shape).assign(comparison=name)
        tables.append(t)
        best = choose(t, target_mde_sesoi, budget_minutes)
        lines.append(f"{name}: components (sd) seed {np.sqrt(c.seed):.3g}, prompt {np.sqrt(c.prompt):.3g}, cell "
                     f"{np.sqrt(c.cell):.3g}, sample {np.sqrt(c.sample):.3g} (pilot {c.n_seeds} seeds × {c.n_prompts} "
                     f"prompts × {c.n_samples}{'; the seed component has 1 df' if c.n_seeds == 2 else ''})")
        if best is None:
            fastest = t.sort_values("mde").iloc[0]
            lines.append(f"  no design within {budget_minutes} min reaches {target_mde_sesoi} sesoi; the best: "
                         f"{int(fastest.seeds)} seeds × {int(fastest.prompts)} prompts × {int(fastest.samples)}: MDE "
                         f"{fastest.mde_sesoi:.2f} sesoi, {fastest.minutes:.0f} min")
        else:
            lines.append(f"  {int(best.seeds)} seeds × {int(best.prompts)} prompts × {int(best.samples)} samples: "
                         f"MDE {best.mde:.3g} ({best.mde_sesoi:.2f} sesoi), projected {best.minutes:.0f} min")
    return "\n".join(lines), pd.concat(tables, ignore_index=True)
